// tests/test_dropout_init.cpp — dropout (the op and nn::Dropout) and orthogonal initialisation:
// dropout keeps the expected value, drops about p of the elements, passes the gradient through
// the same mask and is the identity in eval mode; orthogonal_ gives W·Wᵀ = gain²·I or
// Wᵀ·W = gain²·I, whichever the shape allows, like torch.nn.init.orthogonal_.
#include <cmath>

#include "helpers.h"

using namespace tg;
using tgtest::require_error;

TEST_CASE("dropout keeps the expected value and drops about a fraction p", "[nn]") {
  Generator g(7);
  const int64_t n = 200000;
  for (double p : {0.1, 0.5, 0.8}) {
    Tensor x = full({n}, 3.0);
    std::vector<double> y = dropout(x, p, g).to_vector();
    double sum = 0;
    int64_t dropped = 0, wrongly_scaled = 0;
    for (double v : y) {
      sum += v;
      if (v == 0) ++dropped;
      else if (std::fabs(v - 3.0 / (1 - p)) > 1e-5) ++wrongly_scaled;  // survivors: 3/(1-p)
    }
    INFO("p = " << p);
    REQUIRE(wrongly_scaled == 0);
    // Binomial: the dropped fraction has standard deviation √(p(1-p)/n) ≤ 0.0012.
    REQUIRE(static_cast<double>(dropped) / n == Approx(p).margin(0.006));
    REQUIRE(sum / n == Approx(3.0).epsilon(0.02));
  }
}

TEST_CASE("dropout's gradient is the same scaled mask, and p = 0, p = 1, eval behave", "[nn]") {
  Generator g(8);
  Tensor x = tgtest::random_input({6, 50}, 3);
  Tensor y = dropout(x, 0.3, g);
  backward(sum(y));
  std::vector<double> xs = x.to_vector(), ys = y.to_vector(), grads = x.grad().to_vector();
  for (size_t i = 0; i < xs.size(); ++i) {
    bool kept = ys[i] != 0;
    REQUIRE(grads[i] == Approx(kept ? 1 / 0.7 : 0.0).epsilon(1e-12));
    if (kept) REQUIRE(ys[i] == Approx(xs[i] / 0.7).epsilon(1e-12));
  }
  // gradcheck through a fixed mask: the same generator state gives the same mask every call.
  Generator::State start = g.state();
  auto f = [&](const std::vector<Tensor>& in) {
    g.set_state(start);
    return sum(square(dropout(in[0], 0.4, g)));
  };
  REQUIRE_GRADCHECK(f, {x});

  REQUIRE(dropout(x, 0.5, g, false).same(x));  // not training: the input itself
  REQUIRE(dropout(x, 0.0, g).same(x));
  tgtest::require_values(dropout(x, 1.0, g), std::vector<double>(300, 0.0));
  require_error([&] { dropout(x, 1.5, g); }, {"dropout", "[0, 1]", "1.5"});
  require_error([&] { dropout(index_tensor({1, 2}), 0.5, g); }, {"dropout"});
}

TEST_CASE("nn::Dropout drops in train() and is the identity in eval()", "[nn]") {
  Generator init(1), masks(2);
  auto layer = std::make_shared<nn::Linear>(8, 64, init);
  nn::Sequential net({layer, std::make_shared<nn::Dropout>(0.5, masks)});
  REQUIRE(net.parameters().size() == 2);  // Dropout adds none
  Tensor x = randn({4, 8}, init);
  Tensor trained = net(x);
  int64_t zeros_seen = 0;
  for (double v : trained.to_vector()) zeros_seen += v == 0;
  REQUIRE(zeros_seen > 40);  // about half of 256
  REQUIRE(zeros_seen < 216);
  net.eval();
  Tensor evaluated = net(x);
  tgtest::require_values(evaluated, (*layer)(x).to_vector(), 0);
  REQUIRE(net.children()[1].second->type_name() == "Dropout(p = 0.5)");
  require_error([&] { nn::Dropout(-0.1, masks); }, {"Dropout", "[0, 1]"});
}

namespace {
// ‖M - gain²·I‖_max for M = W·Wᵀ (rows) or Wᵀ·W (columns) of a 2-D f64 view of w.
double gram_error(const Tensor& w, bool rows, double gain) {
  Tensor m = reshape(w.to(DType::f64), {w.size(0), -1});
  Tensor gram = rows ? matmul(m, m, false, true) : matmul(m, m, true, false);
  int64_t k = gram.size(0);
  double worst = 0;
  std::vector<double> values = gram.to_vector();
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      worst = std::max(worst, std::fabs(values[i * k + j] - (i == j ? gain * gain : 0.0)));
  return worst;
}
}  // namespace

TEST_CASE("orthogonal_ gives W·Wᵀ = gain²·I when out ≤ in and Wᵀ·W = gain²·I when out ≥ in",
          "[nn]") {
  Generator g(5);
  const double root2 = std::sqrt(2.0);
  Tensor wide = empty({16, 64}, DType::f64);  // out < in: orthonormal rows
  nn::init::orthogonal_(wide, g, root2);
  REQUIRE(gram_error(wide, true, root2) < 1e-12);
  Tensor tall = empty({64, 16}, DType::f64);  // out > in: orthonormal columns
  nn::init::orthogonal_(tall, g, 0.01);
  REQUIRE(gram_error(tall, false, 0.01) < 1e-12);
  Tensor square = empty({64, 64});  // f32: both, to float rounding
  nn::init::orthogonal_(square, g, 1.0);
  REQUIRE(gram_error(square, true, 1.0) < 1e-5);
  REQUIRE(gram_error(square, false, 1.0) < 1e-5);
  Tensor conv = empty({8, 2, 3, 3}, DType::f64);  // viewed as [8, 18], as in PyTorch
  nn::init::orthogonal_(conv, g, 0.5);
  REQUIRE(gram_error(conv, true, 0.5) < 1e-12);

  // Each entry of a Haar-random orthogonal 64 × 64 matrix has variance 1/64; a different draw
  // gives a different matrix, the same generator state the same one.
  double second_moment = 0;
  for (double v : square.to_vector()) second_moment += v * v;
  REQUIRE(second_moment / 4096 == Approx(1.0 / 64).epsilon(1e-4));
  Generator a(9), b(9);
  Tensor wa = empty({4, 4}), wb = empty({4, 4});
  nn::init::orthogonal_(wa, a);
  nn::init::orthogonal_(wb, b);
  tgtest::require_values(wa, wb.to_vector(), 0);
  nn::init::orthogonal_(wb, b);
  REQUIRE(wa.to_vector() != wb.to_vector());
  require_error([&] {
    Tensor v = empty({5});
    nn::init::orthogonal_(v, g);
  }, {"orthogonal_", "2 dimensions"});
}

TEST_CASE("orthogonal_ is the sign-fixed Q of the QR decomposition of its normal draw", "[nn]") {
  // Redraw the same normal matrix and check that W = Q with Qᵀ·A upper triangular with a positive
  // diagonal (so A = Q·R is the QR decomposition PyTorch's orthogonal_ takes Q from).
  Generator g(11);
  Generator::State start = g.state();
  Tensor w = empty({6, 4}, DType::f64);
  nn::init::orthogonal_(w, g);
  g.set_state(start);
  Tensor a = normal({6, 4}, 0, 1, g, DType::f64);
  Tensor r = matmul(w, a, true, false);  // [4, 4] = Qᵀ·A
  for (int64_t i = 0; i < 4; ++i) {
    REQUIRE(r.at({i, i}) > 0);
    for (int64_t j = 0; j < i; ++j) REQUIRE(std::fabs(r.at({i, j})) < 1e-12);
  }
}
