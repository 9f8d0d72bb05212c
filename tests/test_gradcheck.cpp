// tests/test_gradcheck.cpp — gradcheck and gradgradcheck themselves: they pass correct
// derivatives and catch wrong ones, each kind of wrong with a message that says which.
#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;

namespace {
// y = x², recorded with a deliberately wrong backward (grad * x instead of grad * 2x).
Tensor broken_square(const Tensor& x) {
  Tensor y;
  {
    NoGrad no_grad;
    y = x * x;
  }
  if (is_recording(x))
    record("broken_square", y, {x}, save(x),
           [](const Tensor& grad, Gradients& g, const Tensor& x) { g.add(0, grad * x); });
  return y;
}
// y = x², with a backward given as `slope(grad, x)` (grad * 2x when right).
template <class Slope>
Tensor custom_square(const Tensor& x, Slope slope) {
  Tensor y;
  {
    NoGrad no_grad;
    y = x * x;
  }
  if (is_recording(x))
    record("custom_square", y, {x}, save(x),
           [slope](const Tensor& grad, Gradients& g, const Tensor& x) {
      g.add(0, slope(grad, x));
    });
  return y;
}
}  // namespace

TEST_CASE("gradcheck passes a correct gradient", "[gradcheck]") {
  Tensor x = random_input({3}, 71);
  GradcheckResult result = gradcheck([](const std::vector<Tensor>& in) { return in[0] * in[0]; }, {x});
  REQUIRE(result.ok);
  REQUIRE(result.max_abs_error < 1e-8);
}

TEST_CASE("gradcheck catches a wrong gradient and says where", "[gradcheck]") {
  Tensor x = tensor({0.5, 1.5}, DType::f64).set_requires_grad();
  GradcheckResult result = gradcheck([](const std::vector<Tensor>& in) { return broken_square(in[0]); }, {x});
  REQUIRE_FALSE(result.ok);
  INFO(result.message);
  REQUIRE(result.message.find("input 0") != std::string::npos);
  REQUIRE(result.message.find("element [0]") != std::string::npos);
  REQUIRE(result.message.find("analytic 0.5") != std::string::npos);
  REQUIRE(result.message.find("numeric 1") != std::string::npos);
  REQUIRE(result.message.find("broken_square") != std::string::npos);
}

TEST_CASE("gradcheck leaves inputs unchanged and checks only inputs that require grad", "[gradcheck]") {
  Tensor x = tensor({0.25, -0.75}, DType::f64).set_requires_grad();
  Tensor constant = tensor({2, 3}, DType::f64);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return exp(in[0]) * in[1]; }, {x, constant});
  tgtest::require_values(x, {0.25, -0.75}, 0);
  REQUIRE_FALSE(x.grad().defined());
}

TEST_CASE("gradcheck insists on float64", "[gradcheck]") {
  Tensor x = tensor({1.0}).set_requires_grad();
  require_error([&] { gradcheck([](const std::vector<Tensor>& in) { return in[0]; }, {x}); },
                {"gradcheck", "f64"});
}

TEST_CASE("gradcheck catches a backward that changes between two sweeps", "[gradcheck]") {
  Tensor x = tensor({0.5, 1.5}, DType::f64).set_requires_grad();
  auto calls = std::make_shared<int>(0);
  GradcheckResult result = gradcheck(
      [calls](const std::vector<Tensor>& in) {
        return custom_square(in[0], [calls](const Tensor& grad, const Tensor& x) {
          return grad * x * (2.0 + 1e-12 * ++*calls);  // right to 12 digits, not bit for bit
        });
      },
      {x});
  REQUIRE_FALSE(result.ok);
  INFO(result.message);
  REQUIRE(result.message.find("two backward passes") != std::string::npos);
  REQUIRE(result.message.find("custom_square") != std::string::npos);
}

TEST_CASE("gradcheck catches a nonzero gradient from a zero output gradient", "[gradcheck]") {
  Tensor x = tensor({0.5, 1.5}, DType::f64).set_requires_grad();
  GradcheckResult result = gradcheck(
      [](const std::vector<Tensor>& in) {
        return custom_square(in[0], [](const Tensor& grad, const Tensor& x) {
          return grad * x * 2.0 + 1e-9;  // within gradcheck's tolerance, but not 0 for grad = 0
        });
      },
      {x});
  REQUIRE_FALSE(result.ok);
  INFO(result.message);
  REQUIRE(result.message.find("zero output gradient") != std::string::npos);
}

TEST_CASE("gradcheck's fast mode checks vᵀJu for inputs too large for the Jacobian",
          "[gradcheck]") {
  GradcheckOptions fast;
  fast.fast = true;
  Tensor a = random_input({30, 40}, 72), b = random_input({40, 20}, 73);
  GradcheckResult result = gradcheck(
      [](const std::vector<Tensor>& in) { return tanh(matmul(in[0], in[1])); }, {a, b}, fast);
  INFO(result.message);
  REQUIRE(result.ok);
  Tensor x = random_input({50}, 74);
  result = gradcheck([](const std::vector<Tensor>& in) { return broken_square(in[0]); }, {x}, fast);
  REQUIRE_FALSE(result.ok);
  INFO(result.message);
  REQUIRE(result.message.find("(fast)") != std::string::npos);
  REQUIRE(result.message.find("input 0 [50]") != std::string::npos);
}

TEST_CASE("gradgradcheck passes second derivatives and catches a wrong one", "[gradcheck]") {
  Tensor x = random_input({3}, 75);
  REQUIRE_GRADGRADCHECK([](const std::vector<Tensor>& in) { return tanh(in[0]) * in[0]; }, {x});
  // Right first derivative, from a detached x: its own derivative in x is missing.
  auto detached = [](const std::vector<Tensor>& in) {
    return custom_square(in[0], [](const Tensor& grad, const Tensor& x) {
      return grad * x.detach() * 2.0;
    });
  };
  REQUIRE_GRADCHECK(detached, {x});
  GradcheckResult result = gradgradcheck(detached, {x});
  REQUIRE_FALSE(result.ok);
  INFO(result.message);
  REQUIRE(result.message.find("gradgradcheck") != std::string::npos);
  REQUIRE(result.message.find("input 0 [3]") != std::string::npos);
}

TEST_CASE("gradgradcheck catches a recorded gradient that differs from the ordinary one",
          "[gradcheck]") {
  Tensor x = random_input({3}, 76);
  GradcheckResult result = gradgradcheck(
      [](const std::vector<Tensor>& in) {
        return custom_square(in[0], [](const Tensor& grad, const Tensor& x) {
          return grad * x * (grad_enabled() ? 3.0 : 2.0);  // a wrong formula for create_graph
        });
      },
      {x});
  REQUIRE_FALSE(result.ok);
  INFO(result.message);
  REQUIRE(result.message.find("recorded with create_graph differs") != std::string::npos);
}
