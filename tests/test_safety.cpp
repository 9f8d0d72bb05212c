// tests/test_safety.cpp — no silent wrong gradients: in-place writes after recording (version
// counters), and each case raises the error it should.
#include <cmath>
#include <memory>

#include "helpers.h"

using namespace tg;
using tgtest::require_error;
using tgtest::require_values;

// ---------------------------------------------------------------- version counters

TEST_CASE("every in-place write bumps the version its views share", "[safety]") {
  Tensor x = tensor({1, 2, 3, 4}, DType::f64);
  REQUIRE(x.version() == 0);
  x.fill_(1);
  x.copy_(tensor({4, 3, 2, 1}, DType::f64));
  x.set({0}, 7);
  REQUIRE(x.version() == 3);
  Tensor view = reshape(x, {2, 2}), detached = x.detach();
  view.fill_(0);
  REQUIRE(x.version() == 4);
  REQUIRE(detached.version() == 4);
  REQUIRE(x.clone().version() == 0);  // a copy has storage of its own
}

TEST_CASE("an in-place write into a saved tensor makes backward raise, naming op and tensor",
          "[safety]") {
  // The case: w.grad() was [5, 5, 5] instead of x's values at recording time.
  Tensor x = tensor({1, 2, 3}, DType::f64).set_name("x");
  Tensor w = tensor({1, 1, 1}, DType::f64).set_requires_grad();
  Tensor loss = sum(x * w);
  x.fill_(5);
  require_error([&] { backward(loss); },
                {"modified by an inplace operation", "(mul)", "input 0 'x'", "fill_",
                 "version 0", "now version 1"});
  tape().clear();
  REQUIRE_FALSE(w.grad().defined());
}

TEST_CASE("a write through a view (reshape, detach) is seen as well", "[safety]") {
  Tensor x = tensor({1, 2, 3, 4}, DType::f64);
  Tensor w = tensor({1, 1, 1, 1}, DType::f64).set_requires_grad();
  SECTION("reshape") {
    Tensor loss = sum(x * w);
    reshape(x, {2, 2}).copy_(zeros({2, 2}, DType::f64));
    require_error([&] { backward(loss); }, {"(mul)", "copy_"});
  }
  SECTION("detach") {
    Tensor loss = sum(x * w);
    x.detach().set({1}, 9);
    require_error([&] { backward(loss); }, {"(mul)", "set"});
  }
  tape().clear();
}

TEST_CASE("a saved output written in place is named as the output", "[safety]") {
  Tensor x = tensor({0.5, 1.0}, DType::f64).set_requires_grad();
  Tensor y = exp(x);  // exp saves y
  Tensor loss = sum(y);
  y.detach().fill_(0);
  require_error([&] { backward(loss); }, {"(exp)", "its output", "fill_"});
  tape().clear();
}

TEST_CASE("an optimizer step between forward and backward is caught", "[safety]") {
  Tensor w = tensor({1, 2}, DType::f64).set_requires_grad().set_name("w");
  Tensor x = tensor({3, 4}, DType::f64);
  optim::SGD sgd({w}, {0.1});
  w.set_grad(ones({2}, DType::f64));
  Tensor loss = sum(square(w) * x);  // square saves w
  sgd.step();
  require_error([&] { backward(loss); }, {"(square)", "'w'", "SGD.step"});
  tape().clear();

  optim::Adam adam({w});
  Tensor loss2 = sum(square(w));
  adam.step();
  require_error([&] { backward(loss2); }, {"(square)", "Adam.step"});
  tape().clear();
}

TEST_CASE("load_state_dict between forward and backward is caught", "[safety]") {
  Generator generator(3);
  nn::Linear layer(2, 2, generator);
  StateDict state = layer.state_dict();
  Tensor x = tensor({1, 2}, {1, 2});
  Tensor loss = sum(layer.forward(x));  // linear saves its weight
  layer.load_state_dict(state);
  require_error([&] { backward(loss); }, {"(linear)", "copy_"});
  tape().clear();
}

TEST_CASE("writes after backward, or into tensors nothing saved, are fine", "[safety]") {
  Tensor x = tensor({1, 2, 3}, DType::f64);
  Tensor w = tensor({1, 1, 1}, DType::f64).set_requires_grad();
  Tensor unrelated = zeros({3}, DType::f64);
  Tensor loss = sum(x * w);
  unrelated.fill_(1);
  Tensor y = x + 1.0;  // add saves nothing: writing its input changes no gradient
  (void)y;
  backward(loss);
  require_values(w.grad(), {1, 2, 3});
  x.fill_(5);  // after backward: nothing needs the old values any more
  REQUIRE(x.version() == 1);
}

TEST_CASE("a retained tape checks the versions again in the second backward", "[safety]") {
  Tensor x = tensor({1, 2}, DType::f64);
  Tensor w = tensor({1, 1}, DType::f64).set_requires_grad();
  Tensor loss = sum(x * w);
  backward(loss, {false, true});
  require_values(w.grad(), {1, 2});
  x.fill_(3);
  require_error([&] { backward(loss); }, {"(mul)", "fill_"});
  tape().clear();
}
