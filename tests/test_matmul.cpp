// tests/test_matmul.cpp — matmul in every transpose and batch form, and linear, against a naive
// triple loop and through gradcheck.
#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;
using tgtest::require_values;

namespace {
// C = A·B for 2-D row-major f64 tensors, the slow obvious way.
std::vector<double> naive_matmul(const Tensor& a, const Tensor& b) {
  int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  std::vector<double> c(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p) c[i * n + j] += a.at({i, p}) * b.at({p, j});
  return c;
}
}  // namespace

TEST_CASE("matmul matches a naive product for every transpose flag", "[matmul]") {
  Tensor a = random_input({3, 5}, 51).detach(), b = random_input({5, 4}, 52).detach();
  std::vector<double> expected = naive_matmul(a, b);
  require_values(matmul(a, b), expected, 1e-12);
  require_values(matmul(transpose(a), b, true, false), expected, 1e-12);
  require_values(matmul(a, transpose(b), false, true), expected, 1e-12);
  require_values(matmul(transpose(a), transpose(b), true, true), expected, 1e-12);
  require_values(matmul(a.to(DType::f32), b.to(DType::f32)), expected, 1e-5);
}

TEST_CASE("gradcheck: matmul with every transpose flag", "[matmul]") {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Tensor a = random_input(ta ? Shape{4, 3} : Shape{3, 4}, 53);
      Tensor b = random_input(tb ? Shape{2, 4} : Shape{4, 2}, 54);
      REQUIRE_GRADCHECK([=](const std::vector<Tensor>& in) { return matmul(in[0], in[1], ta, tb); },
                        {a, b});
    }
}

TEST_CASE("batched matmul: equal batches, batch × matrix, matrix × batch", "[matmul]") {
  Tensor a = random_input({2, 3, 4}, 55), b = random_input({2, 4, 5}, 56);
  Tensor c = matmul(a, b);
  REQUIRE(c.shape() == Shape{2, 3, 5});
  auto matrix = [](const Tensor& t, int64_t i) { return reshape(slice(t, 0, i, i + 1), {t.size(1), t.size(2)}); };
  require_values(matrix(c, 1), naive_matmul(matrix(a, 1), matrix(b, 1)), 1e-12);

  Tensor w = random_input({4, 6}, 57);
  Tensor aw = matmul(a, w);
  REQUIRE(aw.shape() == Shape{2, 3, 6});
  require_values(matrix(aw, 1), naive_matmul(matrix(a, 1), w), 1e-12);

  Tensor m = random_input({5, 3}, 59);
  Tensor mb = matmul(m, a, false, false);  // [5, 3] · [2, 3, 4]
  REQUIRE(mb.shape() == Shape{2, 5, 4});
  require_values(matrix(mb, 0), naive_matmul(m, matrix(a, 0)), 1e-12);
}

TEST_CASE("gradcheck: batched matmul forms", "[matmul]") {
  Tensor a = random_input({2, 3, 4}, 60), b = random_input({2, 4, 2}, 61);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {a, b});
  Tensor w = random_input({4, 2}, 62);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {a, w});
  Tensor wt = random_input({2, 4}, 63);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return matmul(in[0], in[1], false, true); },
                    {a, wt});
  Tensor at = random_input({2, 4, 3}, 64);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return matmul(in[0], in[1], true, false); },
                    {at, w});
  Tensor m = random_input({5, 3}, 65);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {m, a});
}

TEST_CASE("linear is x·wᵀ + b", "[matmul]") {
  Tensor x = random_input({4, 3}, 66), w = random_input({2, 3}, 67), b = random_input({2}, 68);
  Tensor y = linear(x, w, b);
  REQUIRE(y.shape() == Shape{4, 2});
  std::vector<double> expected = naive_matmul(x, transpose(w).detach());
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 2; ++j) expected[i * 2 + j] += b.at({j});
  require_values(y, expected, 1e-12);
  require_values(linear(x, w, Tensor()), naive_matmul(x, transpose(w).detach()), 1e-12);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); },
                    {x, w, b});
  Tensor x3 = random_input({2, 2, 3}, 69);
  REQUIRE(linear(x3, w, b).shape() == Shape{2, 2, 2});
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); },
                    {x3, w, b});
  tape().clear();
}

TEST_CASE("matmul errors name both shapes", "[matmul]") {
  require_error([] { matmul(ones({2, 3}), ones({4, 2})); }, {"matmul", "[2, 3]", "[4, 2]", "3 vs 4"});
  require_error([] { matmul(ones({3}), ones({3, 2})); }, {"matmul", "at least 2-D"});
  require_error([] { matmul(ones({2, 2, 3}), ones({3, 3, 2})); }, {"matmul", "batch"});
  // a batch times a matrix is folded into one gemm; the error still shows the shapes as given
  require_error([] { matmul(ones({2, 3, 5}), ones({4, 6})); }, {"matmul", "[2, 3, 5]", "[4, 6]"});
  require_error([] { linear(ones({2, 3}), ones({4, 5}), Tensor()); }, {"linear", "[2, 3]", "[4, 5]"});
  require_error([] { linear(ones({2, 3}), ones({4, 3}), ones({5})); }, {"linear", "bias", "[5]"});
}

TEST_CASE("products over an empty inner dimension are zeros, batched or not", "[matmul]") {
  // PyTorch: [2, 3, 0] @ [0, 4] is a [2, 3, 4] tensor of zeros (an empty sum).
  Tensor y = matmul(ones({2, 3, 0}), ones({0, 4}));
  REQUIRE(y.shape() == Shape{2, 3, 4});
  tgtest::require_values(y, std::vector<double>(24, 0.0));
  Tensor z = linear(ones({2, 3, 0}), ones({4, 0}), ones({4}));
  REQUIRE(z.shape() == Shape{2, 3, 4});
  tgtest::require_values(z, std::vector<double>(24, 1.0));
}
