// tests/test_losses.cpp — the training losses of functional.h: known values (PyTorch 1.13's
// numbers), gradcheck at ordinary and extreme inputs, stability, identities and errors.
#include <cmath>
#include <limits>

#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;
using tgtest::require_values;

// ---------------------------------------------------------------- bce_with_logits

TEST_CASE("bce_with_logits matches PyTorch's values and gradients", "[losses]") {
  Tensor x = tensor({-3, -0.5, 0, 0.5, 3, 20}, DType::f64).set_requires_grad();
  Tensor y = tensor({0, 1, 0.3, 1, 0, 1}, DType::f64).set_requires_grad();
  // torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction='none')
  require_values(bce_with_logits(x, y, Reduction::none),
                 {0.048587351573741965, 0.9740769841801067, 0.6931471805599453,
                  0.4740769841801067, 3.048587351573742, 2.0611536900435727e-09},
                 1e-12);
  Tensor total = bce_with_logits(x, y, Reduction::sum);
  REQUIRE(total.item() == Approx(5.238475854128796).epsilon(1e-12));
  backward(total);
  require_values(x.grad(), {0.04742587317756678, -0.6224593312018546, 0.2, -0.3775406687981454,
                            0.9525741268224334, -2.06115369216775e-09},
                 1e-12);
  require_values(y.grad(), {3, 0.5, 0, -0.5, -3, -20}, 1e-12);
  REQUIRE(bce_with_logits(x, y, Reduction::mean).item() == Approx(5.238475854128796 / 6));
  REQUIRE(bce_with_logits(x, y, Reduction::batchmean).item() == Approx(5.238475854128796 / 6));
}

TEST_CASE("bce_with_logits equals -[y log σ(x) + (1-y) log(1-σ(x))] at moderate logits",
          "[losses]") {
  Tensor x = random_input({4, 5}, 1, -4, 4).detach(), y = random_input({4, 5}, 2, 0, 1).detach();
  Tensor s = sigmoid(x);
  Tensor reference = neg(add(mul(y, log(s)), mul(sub(1.0, y), log(sub(1.0, s)))));
  std::vector<double> expected = reference.to_vector();
  require_values(bce_with_logits(x, y, Reduction::none), expected, 1e-12);
}

TEST_CASE("gradcheck: bce_with_logits, every reduction, logits up to ±50", "[losses]") {
  Tensor y = random_input({3, 4}, 3, 0, 1);
  for (Reduction r : {Reduction::none, Reduction::sum, Reduction::mean, Reduction::batchmean}) {
    Tensor x = random_input({3, 4}, 4, -3, 3);
    REQUIRE_GRADCHECK([r](const std::vector<Tensor>& in) { return bce_with_logits(in[0], in[1], r); },
                      {x, y});
  }
  Tensor extreme = tensor({-50, -20, 20, 50, -35, 35}, {2, 3}, DType::f64).set_requires_grad();
  Tensor targets = tensor({0, 1, 0.5, 1, 0.2, 0}, {2, 3}, DType::f64).set_requires_grad();
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return bce_with_logits(in[0], in[1], Reduction::sum); },
                    {extreme, targets});
}

TEST_CASE("bce_with_logits is finite and exact for logits of ±1e4", "[losses]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    Tensor x = tensor({1e4, 1e4, -1e4, -1e4}, dtype).set_requires_grad();
    Tensor y = tensor({1, 0, 1, 0}, dtype);
    require_values(bce_with_logits(x, y, Reduction::none), {0, 1e4, 1e4, 0}, 1e-6);
    backward(bce_with_logits(x, y, Reduction::sum));
    require_values(x.grad(), {0, 1, -1, 0}, 1e-6);
  }
}

TEST_CASE("bce_with_logits sums a float32 batch in double: agrees with float64", "[losses]") {
  Tensor x64 = random_input({128, 784}, 5, -8, 8).detach();
  Tensor y64 = random_input({128, 784}, 6, 0, 1).detach();
  double reference = bce_with_logits(x64, y64, Reduction::sum).item();
  double single = bce_with_logits(x64.to(DType::f32), y64.to(DType::f32), Reduction::sum).item();
  REQUIRE(single == Approx(reference).epsilon(1e-6));
}

TEST_CASE("bce_with_logits rejects mismatched shapes and integer tensors", "[losses]") {
  require_error([] { bce_with_logits(zeros({2, 3}), zeros({3, 2})); },
                {"bce_with_logits", "[2, 3]", "[3, 2]", "same shape"});
  require_error([] { bce_with_logits(zeros({2}), zeros({2}, DType::f64)); },
                {"bce_with_logits", "dtypes differ"});
  require_error([] { bce_with_logits(index_tensor({1, 0}), zeros({2})); },
                {"bce_with_logits", "f32 or f64"});
}
