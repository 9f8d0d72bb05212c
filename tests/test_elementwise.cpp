// tests/test_elementwise.cpp — elementwise ops: known values, gradcheck (plain, broadcast and
// scalar forms), and behaviour at the edges (NaN, ±inf, ties).
#include <cmath>
#include <limits>

#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;
using tgtest::require_values;

namespace {
using Binary = Tensor (*)(const Tensor&, const Tensor&);
using Unary = Tensor (*)(const Tensor&);
}  // namespace

TEST_CASE("binary ops compute known values", "[elementwise]") {
  Tensor a = tensor({1, 4, -2}), b = tensor({2, 2, 3});
  require_values(add(a, b), {3, 6, 1});
  require_values(sub(a, b), {-1, 2, -5});
  require_values(mul(a, b), {2, 8, -6});
  require_values(div(a, b), {0.5, 2, -2.0 / 3});
  require_values(pow(b, a), {2, 16, 1.0 / 9});
  require_values(minimum(a, b), {1, 2, -2});
  require_values(maximum(a, b), {2, 4, 3});
  require_values(equal(a, b), {0, 0, 0});
  require_values(less(a, b), {1, 0, 1});
  require_values(greater_equal(a, b), {0, 1, 0});
  require_values(a + 1.0, {2, 5, -1});
  require_values(1.0 - a, {0, -3, 3});
  require_values(a * 2.0, {2, 8, -4});
  require_values(a / 4.0, {0.25, 1, -0.5});
  require_values(2.0 / b, {1, 1, 2.0 / 3});
  require_values(pow(a, 2.0), {1, 16, 4});
  require_values(pow(b, 0.5), {std::sqrt(2.0), std::sqrt(2.0), std::sqrt(3.0)});
}

TEST_CASE("unary ops compute known values", "[elementwise]") {
  Tensor x = tensor({-1, 0, 2}, DType::f64);
  require_values(neg(x), {1, 0, -2});
  require_values(exp(x), {std::exp(-1.0), 1, std::exp(2.0)}, 1e-12);
  require_values(log(tensor({1, 2}, DType::f64)), {0, std::log(2.0)}, 1e-12);
  require_values(log1p(tensor({1e-10}, DType::f64)), {1e-10}, 1e-20);
  require_values(sqrt(tensor({4, 2}, DType::f64)), {2, std::sqrt(2.0)}, 1e-12);
  require_values(square(x), {1, 0, 4});
  require_values(abs(x), {1, 0, 2});
  require_values(tanh(x), {std::tanh(-1.0), 0, std::tanh(2.0)}, 1e-12);
  require_values(sigmoid(x), {1 / (1 + std::exp(1.0)), 0.5, 1 / (1 + std::exp(-2.0))}, 1e-12);
  require_values(relu(x), {0, 0, 2});
  require_values(clamp(x, -0.5, 1), {-0.5, 0, 1});
}

TEST_CASE("float32 kernels agree with the float64 ones", "[elementwise]") {
  Tensor x64 = random_input({257}, 3, -5, 5).detach();
  Tensor x32 = x64.to(DType::f32);
  for (Unary f : {Unary(exp), Unary(tanh), Unary(sigmoid), Unary(relu), Unary(abs)}) {
    std::vector<double> a = f(x64).to_vector(), b = f(x32).to_vector();
    for (size_t i = 0; i < a.size(); ++i) REQUIRE(b[i] == Approx(a[i]).epsilon(1e-6).margin(1e-6));
  }
}

TEST_CASE("gradcheck: binary ops, same shape", "[elementwise]") {
  for (Binary op : {Binary(add), Binary(sub), Binary(mul), Binary(div), Binary(minimum),
                    Binary(maximum)}) {
    Tensor a = random_input({3, 4}, 1), b = random_input({3, 4}, 2, 0.5, 2);
    REQUIRE_GRADCHECK([op](const std::vector<Tensor>& in) { return op(in[0], in[1]); }, {a, b});
  }
  Tensor base = random_input({3, 4}, 3, 0.5, 2), exponent = random_input({3, 4}, 4, -2, 2);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return pow(in[0], in[1]); },
                    {base, exponent});
}

TEST_CASE("gradcheck: binary ops with broadcasting both ways", "[elementwise]") {
  for (Binary op : {Binary(add), Binary(sub), Binary(mul), Binary(div), Binary(maximum)}) {
    Tensor a = random_input({2, 1, 4}, 5), b = random_input({3, 1}, 6, 0.5, 2);
    REQUIRE_GRADCHECK([op](const std::vector<Tensor>& in) { return op(in[0], in[1]); }, {a, b});
    Tensor row = random_input({4}, 7, 0.5, 2), matrix = random_input({3, 4}, 8);
    REQUIRE_GRADCHECK([op](const std::vector<Tensor>& in) { return op(in[0], in[1]); },
                      {matrix, row});
    Tensor s = random_input({}, 9, 0.5, 2);
    REQUIRE_GRADCHECK([op](const std::vector<Tensor>& in) { return op(in[0], in[1]); },
                      {s, matrix});
  }
}

TEST_CASE("gradcheck: inputs that arrive transposed", "[elementwise]") {
  Tensor a = random_input({4, 3}, 15), b = random_input({3, 4}, 16, 0.5, 2);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return mul(transpose(in[0]), in[1]); }, {a, b});
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return div(in[1], transpose(in[0]) + 3.0); },
                    {a, b});
}

TEST_CASE("gradcheck: scalar forms", "[elementwise]") {
  Tensor x = random_input({2, 3}, 10, 0.5, 2);
  auto one = [&](auto f) { REQUIRE_GRADCHECK([f](const std::vector<Tensor>& in) { return f(in[0]); }, {x}); };
  one([](const Tensor& t) { return t + 1.5; });
  one([](const Tensor& t) { return t - 1.5; });
  one([](const Tensor& t) { return 1.5 - t; });
  one([](const Tensor& t) { return t * -2.0; });
  one([](const Tensor& t) { return t / 3.0; });
  one([](const Tensor& t) { return 3.0 / t; });
  one([](const Tensor& t) { return pow(t, 2.0); });
  one([](const Tensor& t) { return pow(t, -1.5); });
}

TEST_CASE("gradcheck: unary ops", "[elementwise]") {
  Tensor anywhere = random_input({3, 5}, 11, -2, 2);
  Tensor positive = random_input({3, 5}, 12, 0.2, 3);
  for (Unary op : {Unary(neg), Unary(exp), Unary(tanh), Unary(sigmoid), Unary(square)})
    REQUIRE_GRADCHECK([op](const std::vector<Tensor>& in) { return op(in[0]); }, {anywhere});
  for (Unary op : {Unary(log), Unary(log1p), Unary(sqrt)})
    REQUIRE_GRADCHECK([op](const std::vector<Tensor>& in) { return op(in[0]); }, {positive});
  // kinks: keep the points away from 0 and from the clamp bounds
  Tensor away = tensor({-1.5, -0.7, 0.3, 0.9, 1.7}, DType::f64).set_requires_grad();
  for (Unary op : {Unary(abs), Unary(relu)})
    REQUIRE_GRADCHECK([op](const std::vector<Tensor>& in) { return op(in[0]); }, {away});
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return clamp(in[0], -1, 1); }, {away});
}

TEST_CASE("gradcheck: where, with a broadcast condition", "[elementwise]") {
  Tensor condition = tensor({1, 0, 1}, DType::f64);
  Tensor a = random_input({2, 3}, 13), b = random_input({3}, 14);
  REQUIRE_GRADCHECK([condition](const std::vector<Tensor>& in) { return where(condition, in[0], in[1]); },
                    {a, b});
  require_values(where(condition, tensor({1, 2, 3}, DType::f64), tensor({-1, -2, -3}, DType::f64)),
                 {1, -2, 3});
}

TEST_CASE("gradients at kinks and ties follow PyTorch's choices", "[elementwise]") {
  Tensor x = tensor({-1, 0, 1}, DType::f64).set_requires_grad();
  backward(sum(relu(x)));
  require_values(x.grad(), {0, 0, 1});  // relu'(0) = 0
  x.zero_grad();
  backward(sum(abs(x)));
  require_values(x.grad(), {-1, 0, 1});  // |x|'(0) = 0
  x.zero_grad();
  backward(sum(clamp(x, -1, 1)));
  require_values(x.grad(), {1, 1, 1});  // bounds are inside
  Tensor a = tensor({2}, DType::f64).set_requires_grad();
  Tensor b = tensor({2}, DType::f64).set_requires_grad();
  backward(sum(maximum(a, b)));
  require_values(a.grad(), {0.5});  // a tie splits the gradient
  require_values(b.grad(), {0.5});
}

TEST_CASE("pow's exponent gradient is 0, not NaN, at a zero base", "[elementwise]") {
  Tensor base = tensor({0, 2}, DType::f64).set_requires_grad();
  Tensor exponent = tensor({2, 3}, DType::f64).set_requires_grad();
  backward(sum(pow(base, exponent)));
  require_values(exponent.grad(), {0, 8 * std::log(2.0)}, 1e-12);
  require_values(base.grad(), {0, 12});
}

TEST_CASE("pow's base gradient is 0, not NaN, for a zero exponent at a zero base", "[elementwise]") {
  // PyTorch: d(x^0)/dx = 0 everywhere, also at x = 0 where 0 * x^-1 would be NaN.
  Tensor base = tensor({0, 2}, DType::f64).set_requires_grad();
  Tensor exponent = tensor({0, 0}, DType::f64).set_requires_grad();
  backward(sum(pow(base, exponent)));
  require_values(base.grad(), {0, 0});
  require_values(exponent.grad(), {0, std::log(2.0)}, 1e-12);
  Tensor x = tensor({0, 3}, DType::f64).set_requires_grad();
  backward(sum(pow(x, 0.0)));
  require_values(x.grad(), {0, 0});
}

TEST_CASE("pow's exponent gradient at a zero base is masked only for exponents >= 0",
          "[elementwise]") {
  // PyTorch masks y * ln a where a == 0 and b >= 0; for b < 0, y = inf and the gradient is -inf.
  Tensor base = tensor({0}, DType::f64);
  Tensor exponent = tensor({-1}, DType::f64).set_requires_grad();
  backward(sum(pow(base, exponent)));
  REQUIRE(exponent.grad().item() == -std::numeric_limits<double>::infinity());
}

TEST_CASE("extreme inputs stay finite where the math is", "[elementwise]") {
  const double inf = std::numeric_limits<double>::infinity();
  Tensor big = tensor({-1e4, -100, 100, 1e4}, DType::f32);
  for (double v : sigmoid(big).to_vector()) REQUIRE(std::isfinite(v));
  require_values(sigmoid(big), {0, 0, 1, 1}, 1e-30);
  for (double v : tanh(big).to_vector()) REQUIRE(std::isfinite(v));
  Tensor with_nan = tensor({std::nan(""), 1}, DType::f64);
  REQUIRE(std::isnan(relu(with_nan).at({0})));        // NaN is not hidden
  REQUIRE(std::isnan(maximum(with_nan, tensor({0, 0}, DType::f64)).at({0})));
  REQUIRE(exp(tensor({-inf}, DType::f64)).item() == 0);
}

TEST_CASE("elementwise errors name the op and the shapes", "[elementwise]") {
  require_error([] { add(ones({2, 3}), ones({4})); }, {"add", "[2, 3]", "[4]", "broadcast"});
  require_error([] { mul(ones({2}), ones({2}, DType::f64)); }, {"mul", "f32", "f64"});
  require_error([] { exp(index_tensor({1, 2})); }, {"exp", "f32 or f64", "i64"});
  require_error([] { clamp(ones({2}), 1, 0); }, {"clamp", "greater than"});
  require_error([] { where(ones({2}), ones({3}), ones({3})); }, {"where", "[2]", "[3]"});
}
