// tests/test_safety.cpp — no silent wrong gradients: in-place writes after recording (version
// counters), and each case raises the error it should.
#include <cmath>
#include <memory>
#include <string>
#include <thread>

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

// ---------------------------------------------------------------- bounded tape memory

namespace {
size_t cpu_bytes_in_use() {
  return backend_for(Device::cpu_device()).memory_stats().bytes_in_use;
}
}  // namespace

TEST_CASE("forward passes dropped without backward leave the tape bounded (1000 passes)",
          "[safety]") {
  tape().clear();
  Generator generator(5);
  nn::MLP model({64, 128, 128, 10}, generator);
  Tensor x = rand({32, 64}, generator);
  auto pass = [&] {
    Tensor loss = sum(square(model.forward(x)));  // an evaluation loop that forgot NoGrad
    return loss.item();
  };
  pass();
  const size_t entries_per_pass = tape().size();
  REQUIRE(entries_per_pass > 5);
  pass();
  const size_t bytes_after_two = cpu_bytes_in_use();
  for (int i = 0; i < 1000; ++i) {
    pass();
    REQUIRE(tape().size() <= 2 * entries_per_pass);
  }
  // One pass's entries at most (the last, not yet released), and no more memory than after two.
  REQUIRE(tape().size() == entries_per_pass);
  REQUIRE(cpu_bytes_in_use() <= bytes_after_two);
  REQUIRE_FALSE(tape().reachable());
  tape().clear();
}

TEST_CASE("a recorded tensor still alive keeps the tape, and backward through it still works",
          "[safety]") {
  tape().clear();
  Tensor w = tensor({1, 2}, DType::f64).set_requires_grad();
  Tensor kept = sum(w * w);  // alive: its entries must stay
  for (int i = 0; i < 3; ++i) {
    Tensor dropped = sum(exp(w));
    (void)dropped;
  }
  REQUIRE(tape().reachable());
  backward(kept);
  require_values(w.grad(), {2, 4});
}

TEST_CASE("the tape's saved handles do not keep a recording alive, but keep the data",
          "[safety]") {
  tape().clear();
  Tensor x = tensor({0.5, 1.5}, DType::f64).set_requires_grad();
  Tensor y = exp(x);  // saves its output y
  std::weak_ptr<Storage> data = y.impl()->storage;
  Tensor loss = sum(y);
  y = Tensor();
  REQUIRE_FALSE(data.expired());  // loss is alive, so the entry that needs y's values is too
  backward(loss);
  require_values(x.grad(), {std::exp(0.5), std::exp(1.5)});
  REQUIRE(data.expired());
}

TEST_CASE("a second derivative through saved outputs still works", "[safety]") {
  Tensor x = tensor({0.3, -0.7}, DType::f64).set_requires_grad();
  // tanh saves its output; its backward's backward needs that output's entry.
  Tensor g = grad({sum(tanh(x))}, {x}, {}, true)[0];
  Tensor h = grad({sum(g)}, {x})[0];
  std::vector<double> expected;
  for (double v : {0.3, -0.7}) {
    double t = std::tanh(v);
    expected.push_back(-2 * t * (1 - t * t));
  }
  require_values(h, expected);
}

// ---------------------------------------------------------------- retain_grad, .grad() of a non-leaf

TEST_CASE("retain_grad keeps a non-leaf's gradient; .grad() of a non-leaf without it raises",
          "[safety]") {
  Tensor x = tensor({1, 2, 3}, DType::f64).set_requires_grad();
  Tensor h = x * 2.0;
  Tensor y = h * h;
  h.retain_grad();
  REQUIRE(h.retains_grad());
  require_error([&] { y.grad(); }, {"grad", "not a leaf", "retain_grad()"});
  backward(sum(y));
  require_values(h.grad(), {4, 8, 12});   // d sum(h²)/dh = 2h
  require_values(x.grad(), {8, 16, 24});
  REQUIRE(x.retain_grad().grad().defined());  // a no-op on a leaf
  require_error([&] { tensor({1}).retain_grad(); }, {"retain_grad", "does not require grad"});
}

TEST_CASE("retain_grad accumulates over retained backwards like a leaf", "[safety]") {
  Tensor x = tensor({1, 2}, DType::f64).set_requires_grad();
  Tensor h = x * 3.0;
  h.retain_grad();
  Tensor loss = sum(h);
  backward(loss, {false, true});
  backward(loss);
  require_values(h.grad(), {2, 2});
}

// ---------------------------------------------------------------- threads

TEST_CASE("backward in another thread says so, not that the tape was cleared", "[safety]") {
  Tensor x = tensor({1, 2}, DType::f64).set_requires_grad();
  Tensor loss = sum(x * x);
  std::string message;
  std::thread other([&] {
    try {
      backward(loss);
    } catch (const Error& e) {
      message = e.what();
    }
  });
  other.join();
  INFO(message);
  REQUIRE(message.find("another thread") != std::string::npos);
  REQUIRE(message.find("cleared") == std::string::npos);
  std::thread op_in_other([&] {
    try {
      Tensor z = loss * 2.0;
      (void)z;
      message.clear();
    } catch (const Error& e) {
      message = e.what();
    }
  });
  op_in_other.join();
  REQUIRE(message.find("another thread") != std::string::npos);
  backward(loss);  // in the thread that recorded it, it works
  require_values(x.grad(), {2, 4});
}

// ---------------------------------------------------------------- NaN: isfinite, anomaly mode, clipping

TEST_CASE("isfinite, isnan, any and all", "[safety]") {
  const double inf = INFINITY, nan = NAN;
  for (DType dtype : {DType::f32, DType::f64}) {
    Tensor x = tensor({1, -inf, nan, 0, inf, -2.5}, dtype);
    require_values(isfinite(x), {1, 0, 0, 1, 0, 1});
    require_values(isnan(x), {0, 0, 1, 0, 0, 0});
    REQUIRE(isfinite(x).dtype() == dtype);
    REQUIRE(any(x).item() == 1);
    REQUIRE(all(x).item() == 0);  // the 0
    REQUIRE(all(tensor({nan, 1}, dtype)).item() == 1);  // NaN is non-zero, as in PyTorch
    REQUIRE(any(zeros({3}, dtype)).item() == 0);
    REQUIRE(any(zeros({0}, dtype)).item() == 0);
    REQUIRE(all(zeros({0}, dtype)).item() == 1);
    REQUIRE(all(isfinite(tensor({1, 2}, dtype))).item() == 1);
    REQUIRE(any(isnan(x)).shape() == Shape{});
  }
  Tensor labels = index_tensor({0, 3});
  require_values(isfinite(labels), {1, 1});
  REQUIRE(any(labels).item() == 1);
  REQUIRE(all(labels).item() == 0);
  // Never recorded: no gradient flows through a test.
  Tensor w = tensor({1, 2}).set_requires_grad();
  REQUIRE_FALSE(isfinite(w).requires_grad());
  REQUIRE_FALSE(any(w).requires_grad());
}

TEST_CASE("anomaly mode names the op that made a NaN in forward", "[safety]") {
  Tensor x = tensor({1, -1, 2}, DType::f64).set_requires_grad();
  Tensor h = x * 2.0;  // #0 leaf, #1 mul_scalar
  {
    AnomalyMode anomaly;
    REQUIRE(anomaly_mode());
    require_error([&] { log(h); }, {"anomaly mode", "tape entry #2 (log)", "NaN",
                                    "inputs [3] f64", "#1 [3] f64"});
    // A value that arrives non-finite passes: only where one is made counts.
    Tensor mask = tensor({0, -INFINITY, 0}, DType::f64);
    Tensor masked = h + mask;
    REQUIRE_NOTHROW(softmax(masked, 0));
  }
  REQUIRE_FALSE(anomaly_mode());
  REQUIRE_NOTHROW(log(h));  // off again: NaN flows, as before
  tape().clear();
}

TEST_CASE("anomaly mode names the backward that made a NaN, and the forward op", "[safety]") {
  // sqrt(0) is finite, but its gradient 1/(2·sqrt(0)) is infinite: made in backward.
  Tensor x = tensor({0, 4}, DType::f64).set_requires_grad();
  Tensor y = sum(sqrt(x));
  AnomalyMode anomaly;
  require_error([&] { backward(y); },
                {"anomaly mode", "backward of tape entry #1 (sqrt(#0 [2] f64)", "infinity",
                 "gradient of its input 0 [2] f64"});
  tape().clear();
}

TEST_CASE("anomaly mode in a recorded backward says which backward recorded the op", "[safety]") {
  Tensor x = tensor({0, 1}, DType::f64).set_requires_grad();
  Tensor y = sum(sqrt(x));
  AnomalyMode anomaly;
  // create_graph records sqrt's backward, div(grad, 2·y), which makes the infinity.
  require_error([&] { grad({y}, {x}, {}, true); },
                {"anomaly mode", "(div)", "recorded by the backward of tape entry #1 (sqrt)"});
  tape().clear();
}

TEST_CASE("AnomalyMode scopes nest and restore", "[safety]") {
  const bool before = anomaly_mode();
  {
    AnomalyMode on;
    {
      AnomalyMode off(false);
      REQUIRE_FALSE(anomaly_mode());
    }
    REQUIRE(anomaly_mode());
  }
  REQUIRE(anomaly_mode() == before);
}

TEST_CASE("clip_grad_norm can refuse a non-finite norm, naming the parameter", "[safety]") {
  Tensor a = tensor({3, 4}).set_requires_grad().set_name("fc1.weight");
  Tensor b = tensor({1}).set_requires_grad().set_name("fc1.bias");
  a.set_grad(tensor({3, 4}));
  b.set_grad(tensor({NAN}));
  REQUIRE(std::isnan(optim::clip_grad_norm({a, b}, 1.0).item()));  // the default: as PyTorch
  a.set_grad(tensor({3, 4}));
  b.set_grad(tensor({NAN}));
  require_error([&] { optim::clip_grad_norm({a, b}, 1.0, true); },
                {"clip_grad_norm", "parameter 1 'fc1.bias'", "NaN", "left unscaled"});
  require_values(a.grad(), {3, 4});  // untouched
  b.set_grad(tensor({1}));
  REQUIRE(optim::clip_grad_norm({a, b}, 100.0, true).item() == Approx(std::sqrt(26.0)));
}
