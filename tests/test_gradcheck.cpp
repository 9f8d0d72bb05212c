// tests/test_gradcheck.cpp — gradcheck itself: it passes correct gradients and catches wrong ones.
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
    record("broken_square", y, {x}, [x](const Tensor& grad, Gradients& g) { g.add(0, grad * x); });
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
