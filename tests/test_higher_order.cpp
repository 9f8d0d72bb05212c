// tests/test_higher_order.cpp — gradients of gradients: tg::grad, create_graph and retain_graph,
// a sweep that records onto the tape it walks, Hessian-vector products against finite
// differences, a gradient penalty trained, the error for an op without a second derivative, a
// chain long enough to show there is no recursion, and gradgradcheck for every op and primitive.
#include <cmath>
#include <thread>

#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;
using tgtest::require_values;

// 10^6 in the release build, 10^5 under the sanitizers (tests/meson.build sets it).
#ifndef TG_TEST_CHAIN_LENGTH
#define TG_TEST_CHAIN_LENGTH 100000
#endif

using Inputs = std::vector<Tensor>;

namespace {

// y = x³ whose backward is computed outside the engine's ops, as a custom op with a raw kernel
// would be, and says so with first_order_only.
Tensor cube_first_order(const Tensor& x) {
  Tensor y;
  {
    NoGrad no_grad;
    y = x * x * x;
  }
  if (is_recording(x))
    record("cube", y, {x}, save(x), [](const Tensor& grad, Gradients& g, const Tensor& x) {
      Tensor slope;
      {
        NoGrad no_grad;
        slope = grad * x * x * 3.0;
      }
      g.add(0, first_order_only("cube_backward", slope, {grad, x}));
    });
  return y;
}

}  // namespace

// ---------------------------------------------------------------- tg::grad and the options

TEST_CASE("grad returns gradients of leaves and intermediates without touching grad()",
          "[higher_order]") {
  Tensor x = tensor({1, 2, 3}, DType::f64).set_requires_grad();
  Tensor h = x * x;
  Tensor w = tensor({5}, DType::f64).set_requires_grad();
  Tensor unrelated = w * 2.0;  // on the tape between x and y, but y does not depend on it
  Tensor y = sum(h * 3.0);
  std::vector<Tensor> g = grad({y}, {x, h}, {}, {false, true});
  require_values(g[0], {6, 12, 18});
  require_values(g[1], {3, 3, 3});
  REQUIRE_FALSE(g[0].requires_grad());
  REQUIRE_FALSE(x.grad().defined());
  // Inputs the output does not depend on get zeros, whether on the tape or not; without
  // retain_graph the tape is cleared.
  Tensor unused = tensor({7}, DType::f64).set_requires_grad();
  g = grad({y}, {unused, w, x});
  require_values(g[0], {0});
  require_values(g[1], {0});
  require_values(g[2], {6, 12, 18});
  REQUIRE(tape().size() == 0);
}

TEST_CASE("grad sums over several outputs and checks its arguments", "[higher_order]") {
  Tensor x = tensor({1, 2}, DType::f64).set_requires_grad();
  Tensor a = x * 2.0, b = x * x;
  std::vector<Tensor> g = grad({a, b}, {x}, {ones({2}, DType::f64), tensor({0.5, 2}, DType::f64)},
                               {false, true});
  require_values(g[0], {2 + 0.5 * 2, 2 + 2 * 4});
  require_error([&] { grad({sum(a)}, {tensor({1.0}, DType::f64)}); },
                {"grad", "input 0", "does not require grad"});
  require_error([&] { grad({a, b}, {x}, {ones({2}, DType::f64)}); },
                {"grad", "1 gradients for 2 outputs"});
  require_error([&] { grad({a}, {x}); }, {"backward", "[2]", "not a scalar"});
  tape().clear();
}

TEST_CASE("grad computes, and records, only the gradients that reach its inputs",
          "[higher_order]") {
  tape().clear();
  Tensor x = tensor({0.1, 0.7}, {1, 2}, DType::f64).set_requires_grad();
  Tensor w = tensor({0.5, -0.3, 0.2, 0.8}, {2, 2}, DType::f64).set_requires_grad();
  Tensor y = sum(tanh(linear(x, w, Tensor())));
  const size_t forward = tape().size();  // leaf x, leaf w, linear, tanh, sum
  Tensor g = grad({y}, {x}, {}, true)[0];
  INFO(tape().to_string());
  // tanh_backward and the matmul that makes x's gradient; w's gradient is not wanted
  REQUIRE(tape().size() == forward + 2);
  REQUIRE(tape().entry(forward).op == std::string("tanh_backward"));
  REQUIRE(tape().entry(forward + 1).shape == Shape{1, 2});
  // g = Σ_i (1 - tanh²(x·wᵀ)_i)·w[i, :]
  double d0 = 1 - std::pow(std::tanh(0.1 * 0.5 - 0.7 * 0.3), 2);
  double d1 = 1 - std::pow(std::tanh(0.1 * 0.2 + 0.7 * 0.8), 2);
  require_values(g, {d0 * 0.5 + d1 * 0.2, -d0 * 0.3 + d1 * 0.8}, 1e-12);
  tape().clear();
  // An input computed from tensors whose gradients are not wanted: its own backward is skipped.
  Tensor doubled = x * 2.0;
  Tensor h = tanh(w);
  std::vector<Tensor> gs = grad({sum(linear(doubled, h, Tensor()))}, {x, h}, {}, true);
  INFO(tape().to_string());
  REQUIRE(tape().to_string().find("tanh_backward") == std::string::npos);
  require_values(gs[1], {0.2, 1.4, 0.2, 1.4}, 1e-12);  // each row of h meets 2x
  tape().clear();
}

TEST_CASE("create_graph records the gradient, which can be differentiated again",
          "[higher_order]") {
  Tensor x = tensor({0.5, -1, 2}, DType::f64).set_requires_grad();
  Tensor g = grad({sum(x * x * x)}, {x}, {}, true)[0];  // 3x², recorded
  REQUIRE(g.requires_grad());
  require_values(g, {0.75, 3, 12});
  Tensor g2 = grad({sum(g)}, {x}, {}, true)[0];  // 6x, recorded too
  require_values(g2, {3, -6, 12});
  require_values(grad({sum(g2)}, {x})[0], {6, 6, 6});
  REQUIRE(tape().size() == 0);
}

TEST_CASE("backward with create_graph leaves gradients with history in grad()",
          "[higher_order]") {
  Tensor x = tensor({1, 2}, DType::f64).set_requires_grad();
  backward(sum(exp(x) * x), {true});  // grad = (1 + x)·e^x
  Tensor first = x.grad();
  REQUIRE(first.requires_grad());
  require_values(first, {2 * std::exp(1.0), 3 * std::exp(2.0)}, 1e-12);
  REQUIRE(tape().size() > 4);  // retain_graph followed create_graph: the tape is kept
  x.zero_grad();
  backward(sum(first));  // (2 + x)·e^x
  require_values(x.grad(), {3 * std::exp(1.0), 4 * std::exp(2.0)}, 1e-12);
  REQUIRE(tape().size() == 0);
}

TEST_CASE("create_graph without retain_graph releases the entries the sweep ran",
          "[higher_order]") {
  Tensor x = tensor({0.5, -0.25}, DType::f64).set_requires_grad();
  Tensor g = grad({sum(tanh(x))}, {x}, {}, {true, false})[0];  // 1 - tanh², from tanh's output
  require_error([&] { grad({sum(g)}, {x}); },
                {"backward", "(tanh)", "already differentiated", "retain_graph"});
  tape().clear();
}

TEST_CASE("a recording sweep appends to the tape it walks, and what it records survives",
          "[higher_order]") {
  // Each sweep runs in a fresh thread, whose tape has room for only the few forward entries, so
  // the entries the sweep records move the vector it is walking (AddressSanitizer catches a
  // reference into it held across a backward call; without retain_graph the sweep writes
  // through one after the call).
  struct Result {
    size_t forward_entries = 0, after_sweep = 0;
    std::string tape;
    std::vector<double> first, second;
  };
  auto run = [](BackwardOptions options) {
    Result r;
    std::thread worker([&] {
      Tensor x = tensor({0.5, -1.5}, DType::f64).set_requires_grad();
      Tensor y = sum(tanh(tanh(x)));
      r.forward_entries = tape().size();
      Tensor g = grad({y}, {x}, {}, options)[0];
      r.after_sweep = tape().size();
      r.tape = tape().to_string();
      r.first = g.to_vector();
      if (options.retain_graph.value_or(true)) r.second = grad({sum(g)}, {x})[0].to_vector();
      tape().clear();
    });
    worker.join();
    return r;
  };
  std::vector<double> expected_first, expected_second;
  for (double x : {0.5, -1.5}) {
    double t1 = std::tanh(x), t2 = std::tanh(t1), d1 = 1 - t1 * t1, d2 = 1 - t2 * t2;
    expected_first.push_back(d2 * d1);
    expected_second.push_back(-2 * t2 * d2 * d1 * d1 - 2 * t1 * d1 * d2);
  }
  for (bool retain : {true, false}) {
    Result r = run({true, retain});
    INFO("retain_graph " << retain << "\n" << r.tape);
    REQUIRE(r.forward_entries == 4);
    REQUIRE(r.after_sweep > r.forward_entries);
    REQUIRE(r.tape.find("tanh_backward(") != std::string::npos);
    require_values(tensor(r.first, DType::f64), expected_first, 1e-12);
    if (retain) require_values(tensor(r.second, DType::f64), expected_second, 1e-12);
  }
}

TEST_CASE("a backward function cannot start another sweep", "[higher_order]") {
  Tensor x = tensor({1, 2}, DType::f64).set_requires_grad();
  Tensor y = x.detach();
  record("nested", y, {x}, [&](const Tensor& grad, Gradients& g) {
    backward(sum(x * 2.0));
    g.add(0, grad);
  });
  require_error([&] { backward(sum(y)); }, {"backward", "inside a backward function"});
  tape().clear();
}

// ---------------------------------------------------------------- Hessian-vector products

TEST_CASE("hvp matches finite differences of the gradient", "[higher_order]") {
  Tensor a = random_input({3, 5}, 11).detach();
  Tensor labels = index_tensor({2});
  // Ops and fused primitives mixed: linear, softmax cross-entropy, sigmoid, a product.
  auto f = [&](const Tensor& z) {
    Tensor logits = reshape(matmul(a, reshape(z, {5, 1})), {1, 3});
    return cross_entropy(logits, labels, 0.1) + sum(sigmoid(z) * z) * 0.5;
  };
  auto gradient = [&](const Tensor& at) {
    Tensor leaf = at.detach().set_requires_grad();
    return grad({f(leaf)}, {leaf})[0];
  };
  Tensor x = random_input({5}, 12).detach(), v = random_input({5}, 13).detach();
  Tensor hv = hvp(f, x, v);
  const double eps = 1e-5;
  Tensor numeric = (gradient(x + v * eps) - gradient(x - v * eps)) / (2 * eps);
  require_values(hv, numeric.to_vector(), 1e-7);
  REQUIRE(tape().size() == 0);
  REQUIRE_FALSE(x.grad().defined());
}

TEST_CASE("hvp of a quadratic is the matrix times v, of a linear function zero",
          "[higher_order]") {
  Tensor m = tensor({2, 1, 0, 1, 3, -1, 0, -1, 4}, {3, 3}, DType::f64);  // symmetric
  Tensor x = tensor({0.3, -0.7, 1.1}, DType::f64), v = tensor({1, 2, -1}, DType::f64);
  auto quadratic = [&](const Tensor& z) {
    return sum(z * reshape(matmul(m, reshape(z, {3, 1})), {3})) * 0.5;
  };
  require_values(hvp(quadratic, x, v), {2 + 2, 1 + 6 + 1, -2 - 4}, 1e-12);
  require_values(hvp([&](const Tensor& z) { return sum(z * 3.0); }, x, v), {0, 0, 0}, 0);
  require_error([&] { hvp(quadratic, x, ones({2}, DType::f64)); }, {"hvp", "[2]", "[3]"});
}

// ---------------------------------------------------------------- a gradient penalty

TEST_CASE("a gradient penalty ‖∂f/∂x‖² has correct gradients and trains", "[higher_order]") {
  Generator init(5);
  nn::MLP critic({2, 8, 1}, init, nn::Activation::tanh, false, DType::f64);
  Tensor x = random_input({6, 2}, 21).detach();
  // The penalty of WGAN-GP and of input-gradient regularisation: the critic's gradient with
  // respect to its input, recorded, then its squared norm as a loss of the parameters.
  // (Recorded when its caller records; gradcheck also evaluates it under NoGrad.)
  auto penalty = [&] {
    const bool create_graph = grad_enabled();
    EnableGrad enable_grad;
    Tensor input = x.detach().set_requires_grad();
    Tensor g = grad({sum(critic(input))}, {input}, {}, create_graph)[0];
    return mean(sum(square(g), 1));
  };
  REQUIRE_GRADCHECK([&](const Inputs&) { return penalty(); }, critic.parameters());

  optim::Adam adam(critic.parameters(), {1e-2});
  double start = 0, end = 0;
  for (int step = 0; step < 30; ++step) {
    Tensor loss = penalty();
    if (step == 0) start = loss.item();
    end = loss.item();
    adam.zero_grad();
    backward(loss);
    adam.step();
  }
  INFO("penalty " << start << " -> " << end);
  REQUIRE(end < 0.3 * start);
}

// ---------------------------------------------------------------- no second derivative

TEST_CASE("an op without a second derivative raises naming it, never a silent zero",
          "[higher_order]") {
  Tensor x = tensor({0.5, -2}, DType::f64).set_requires_grad();
  REQUIRE_GRADCHECK([](const Inputs& in) { return cube_first_order(in[0]); }, {x});
  Tensor g = grad({sum(cube_first_order(x))}, {x}, {}, true)[0];
  require_values(g, {0.75, 12});
  REQUIRE(g.requires_grad());  // recorded, so that differentiating it can fail loudly
  require_error([&] { grad({sum(g)}, {x}); },
                {"cube_backward", "second derivative", "not implemented"});
  tape().clear();
  require_error(
      [&] { gradgradcheck([](const Inputs& in) { return cube_first_order(in[0]); }, {x}); },
      {"cube_backward", "not implemented"});
  tape().clear();
}

// ---------------------------------------------------------------- no recursion

TEST_CASE("a chain of 10^6 ops runs backward and double backward without recursion",
          "[higher_order]") {
  const int n = TG_TEST_CHAIN_LENGTH;
  Tensor x = scalar(0.8, DType::f64).set_requires_grad();
  Tensor y = x;
  for (int i = 0; i < n; ++i) y = tanh(y);
  Tensor g = grad({y}, {x}, {}, true)[0];  // a sweep over n entries that records n more
  Tensor h = grad({g}, {x})[0];            // a sweep over all of them
  // The same derivatives by forward recurrence: t' = (1 - t²)·t_prev',
  // t'' = (1 - t²)·t_prev'' - 2t(1 - t²)·t_prev'².
  double t = 0.8, first = 1, second = 0;
  for (int i = 0; i < n; ++i) {
    double next = std::tanh(t), slope = 1 - next * next;
    second = slope * second - 2 * next * slope * first * first;
    first = slope * first;
    t = next;
  }
  REQUIRE(g.item() == Approx(first).epsilon(1e-9));
  REQUIRE(h.item() == Approx(second).epsilon(1e-9));
  REQUIRE(tape().size() == 0);
}

// ---------------------------------------------------------------- gradgradcheck, every op

TEST_CASE("second derivatives of the elementwise ops", "[higher_order]") {
  Tensor a = random_input({2, 3}, 31), b = random_input({2, 3}, 32);
  Tensor positive = random_input({2, 3}, 33, 0.5, 2.0), row = random_input({3}, 34);
  using Unary = Tensor (*)(const Tensor&);
  using Binary = Tensor (*)(const Tensor&, const Tensor&);
  auto check1 = [](Tensor x, Unary op) {
    REQUIRE_GRADGRADCHECK([op](const Inputs& in) { return op(in[0]); }, {x});
  };
  for (Unary op : std::initializer_list<Unary>{tg::neg, tg::exp, tg::tanh, tg::sigmoid,
                                                tg::square, tg::abs, tg::relu})
    check1(a, op);
  for (Unary op : std::initializer_list<Unary>{tg::log, tg::log1p, tg::sqrt}) check1(positive, op);
  auto check2 = [](Tensor x, Tensor y, Binary op) {
    REQUIRE_GRADGRADCHECK([op](const Inputs& in) { return op(in[0], in[1]); }, {x, y});
  };
  for (Binary op : std::initializer_list<Binary>{tg::add, tg::sub, tg::mul, tg::minimum,
                                                 tg::maximum})
    check2(a, b, op);
  check2(a, positive, tg::div);
  check2(positive, a, tg::pow);
  // Broadcasting: the gradient of the [3] operand is summed back (a recorded sum_to).
  for (Binary op : std::initializer_list<Binary>{tg::add, tg::sub, tg::mul}) check2(a, row, op);
  check2(row, positive, tg::div);
  auto scalars = [](const Inputs& in) {
    const Tensor& x = in[0];
    return (x + 1.5) * (2.5 - x) * (x - 0.5) * (x * 3.0) / (1.5 + x) + 2.0 / (x + 3.0) +
           pow(x + 2.0, 2.5) + pow(x, 2.0) + pow(x, 0.0) + x / 4.0;
  };
  REQUIRE_GRADGRADCHECK(scalars, {a});
  REQUIRE_GRADGRADCHECK([](const Inputs& in) { return clamp(in[0], -0.5, 0.5) * in[0]; }, {a});
  Tensor condition = tensor({1, 0, 1, 0, 0, 1}, {2, 3}, DType::f64);
  REQUIRE_GRADGRADCHECK(
      [condition](const Inputs& in) { return where(condition, in[0] * in[1], square(in[1])); },
      {a, row});
}

TEST_CASE("second derivatives of the reductions", "[higher_order]") {
  Tensor x = random_input({2, 3, 2}, 41);
  std::vector<std::function<Tensor(const Tensor&)>> reductions = {
      [](const Tensor& t) { return sum(t); },
      [](const Tensor& t) { return sum(t, 1, true); },
      [](const Tensor& t) { return mean(t); },
      [](const Tensor& t) { return mean(t, -1); },
      [](const Tensor& t) { return max(t); },
      [](const Tensor& t) { return max(t, 1); },
      [](const Tensor& t) { return min(t, 0, true); },
      [](const Tensor& t) { return min(t); },
      [](const Tensor& t) { return logsumexp(t); },
      [](const Tensor& t) { return logsumexp(t, 1, true); },
  };
  // Each reduction of x·x·(1 + x), so that its second derivative is not zero.
  for (auto& reduce : reductions)
    REQUIRE_GRADGRADCHECK(
        [&reduce](const Inputs& in) { return reduce(in[0] * in[0] * (in[0] + 1.0)); }, {x});
  Tensor small = random_input({3}, 42);
  REQUIRE_GRADGRADCHECK(
      [](const Inputs& in) { return sum_to(square(broadcast_to(in[0], {2, 3})), {1, 3}); },
      {small});
}

TEST_CASE("second derivatives of the shape ops, indexing and copies", "[higher_order]") {
  Tensor x = random_input({2, 3}, 51), y = random_input({2, 2}, 52);
  REQUIRE_GRADGRADCHECK([](const Inputs& in) { return square(reshape(in[0], {3, 2})); }, {x});
  REQUIRE_GRADGRADCHECK([](const Inputs& in) { return square(flatten(in[0])) * in[0]; }, {x});
  REQUIRE_GRADGRADCHECK([](const Inputs& in) { return square(transpose(in[0])); }, {x});
  REQUIRE_GRADGRADCHECK([](const Inputs& in) { return tanh(transpose(in[0], 0, 1)); }, {x});
  REQUIRE_GRADGRADCHECK(
      [](const Inputs& in) { return slice(in[0], 1, 1, 3) * slice(in[0], 1, 0, 2); }, {x});
  REQUIRE_GRADGRADCHECK(
      [](const Inputs& in) { return square(concat({in[0], in[1], in[0]}, 1)); }, {x, y});
  Tensor index = index_tensor({2, 0, 0, 1, 1, 1}, {2, 3});
  REQUIRE_GRADGRADCHECK([index](const Inputs& in) { return square(gather(in[0], 1, index)); },
                        {x});
  Tensor rows = index_tensor({1, 1, 0});
  REQUIRE_GRADGRADCHECK(
      [rows](const Inputs& in) { return exp(index_select(in[0], 0, rows)) * 0.5; }, {x});
  REQUIRE_GRADGRADCHECK([](const Inputs& in) { return square(in[0].clone()); }, {x});
  GradcheckOptions coarse;  // through float32 and back: differences of 1e-3
  coarse.eps = 1e-3;
  coarse.atol = coarse.rtol = 1e-2;
  REQUIRE_GRADGRADCHECK(
      [](const Inputs& in) { return square(in[0].to(DType::f32)).to(DType::f64); }, {x},
      coarse);
}

TEST_CASE("second derivatives of matmul and linear", "[higher_order]") {
  Tensor a = random_input({2, 3}, 61), b = random_input({3, 2}, 62), c = random_input({2, 3}, 63);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Tensor left = ta ? random_input({3, 2}, 64) : a, right = tb ? random_input({2, 3}, 65) : b;
      REQUIRE_GRADGRADCHECK(
          [ta, tb](const Inputs& in) { return square(matmul(in[0], in[1], ta, tb)); },
          {left, right});
    }
  Tensor batch = random_input({2, 2, 3}, 66);
  REQUIRE_GRADGRADCHECK([](const Inputs& in) { return tanh(matmul(in[0], in[1])); }, {batch, b});
  Tensor weight = random_input({4, 3}, 67), bias = random_input({4}, 68);
  REQUIRE_GRADGRADCHECK(
      [](const Inputs& in) { return sigmoid(linear(in[0], in[1], in[2])); }, {c, weight, bias});
}

TEST_CASE("second derivatives of softmax and log_softmax, with temperatures",
          "[higher_order]") {
  Tensor x = random_input({2, 3}, 71, -2, 2);
  Tensor t = random_input({2, 1}, 72, 0.5, 2.0);
  for (int axis : {0, 1}) {
    REQUIRE_GRADGRADCHECK([axis](const Inputs& in) { return softmax(in[0], axis, 0.7); }, {x});
    REQUIRE_GRADGRADCHECK([axis](const Inputs& in) { return log_softmax(in[0], axis, 1.5); }, {x});
  }
  REQUIRE_GRADGRADCHECK([](const Inputs& in) { return softmax(in[0], -1, in[1]); }, {x, t});
  REQUIRE_GRADGRADCHECK([](const Inputs& in) { return log_softmax(in[0], -1, in[1]); }, {x, t});
  // An empty distribution axis: nothing to compute, at any order.
  Tensor none = zeros({2, 0}, DType::f64).set_requires_grad();
  Tensor g = grad({sum(softmax(none, 1) * 2.0)}, {none}, {}, true)[0];
  REQUIRE(g.shape() == Shape{2, 0});
  REQUIRE(grad({sum(square(g))}, {none})[0].shape() == Shape{2, 0});
}

TEST_CASE("second derivatives of the divergences and entropies", "[higher_order]") {
  Tensor p_logits = random_input({2, 3}, 81, -2, 2), q_logits = random_input({2, 3}, 82, -2, 2);
  Tensor t = random_input({2, 1}, 83, 0.5, 2.0);
  Tensor p = random_input({2, 3}, 84, 0.1, 1.0), q = random_input({2, 3}, 85, 0.1, 1.0);
  Tensor log_q = random_input({2, 3}, 86, -2.0, -0.1);
  for (Reduction r : {Reduction::none, Reduction::sum, Reduction::batchmean}) {
    REQUIRE_GRADGRADCHECK([r](const Inputs& in) { return kl_div(in[0], in[1], r); }, {log_q, p});
    REQUIRE_GRADGRADCHECK([r](const Inputs& in) { return kl_div(in[0], in[1], r, true); },
                          {log_q, log_q.detach().clone().set_requires_grad()});
  }
  REQUIRE_GRADGRADCHECK(
      [](const Inputs& in) { return kl_divergence_logits(in[0], in[1], -1, 1.5); },
      {p_logits, q_logits});
  REQUIRE_GRADGRADCHECK(
      [](const Inputs& in) {
        return kl_divergence_logits(in[0], in[1], 0, 1.0, Reduction::batchmean);
      },
      {p_logits, q_logits});
  REQUIRE_GRADGRADCHECK(
      [](const Inputs& in) { return kl_divergence_logits(in[0], in[1], -1, in[2]); },
      {p_logits, q_logits, t});
  REQUIRE_GRADGRADCHECK([](const Inputs& in) { return entropy(in[0], -1, Reduction::mean); }, {p});
  REQUIRE_GRADGRADCHECK([](const Inputs& in) { return entropy_logits(in[0], -1, 0.8); },
                        {p_logits});
  REQUIRE_GRADGRADCHECK([](const Inputs& in) { return js_divergence(in[0], in[1]); }, {p, q});
  REQUIRE_GRADGRADCHECK(
      [](const Inputs& in) { return square(total_variation(in[0], in[1], -1, Reduction::sum)); },
      {p, q});
}

TEST_CASE("second derivatives of the losses", "[higher_order]") {
  Tensor logits = random_input({3, 4}, 91, -2, 2), targets = random_input({3, 4}, 92, 0, 1);
  Tensor labels = index_tensor({3, 0, 1});
  for (Reduction r : {Reduction::none, Reduction::mean})
    REQUIRE_GRADGRADCHECK([r](const Inputs& in) { return bce_with_logits(in[0], in[1], r); },
                          {logits, targets});
  for (double smoothing : {0.0, 0.2}) {
    REQUIRE_GRADGRADCHECK(
        [labels, smoothing](const Inputs& in) { return cross_entropy(in[0], labels, smoothing); },
        {logits});
    REQUIRE_GRADGRADCHECK(
        [smoothing](const Inputs& in) {
          return cross_entropy(in[0], softmax(in[1], 1), smoothing, Reduction::sum);
        },
        {logits, targets});
  }
  Tensor partly_ignored = index_tensor({3, -100, 1});
  REQUIRE_GRADGRADCHECK(
      [partly_ignored](const Inputs& in) { return cross_entropy(in[0], partly_ignored, 0.1); },
      {logits});
  Tensor spatial = random_input({2, 3, 2}, 93, -2, 2);  // [N, C, d]: the class axis is 1
  REQUIRE_GRADGRADCHECK(
      [](const Inputs& in) { return cross_entropy(in[0], index_tensor({0, 2, 1, 1}, {2, 2})); },
      {spatial});
  REQUIRE_GRADGRADCHECK(
      [labels](const Inputs& in) { return nll(log_softmax(in[0], 1), labels, Reduction::sum); },
      {logits});
  REQUIRE_GRADGRADCHECK([](const Inputs& in) { return mse(in[0], in[1], Reduction::sum); },
                        {logits, targets});
  Tensor teacher = random_input({3, 4}, 94, -2, 2);
  REQUIRE_GRADGRADCHECK(
      [labels](const Inputs& in) { return distillation_loss(in[0], in[1], 2.0, 0.5, labels); },
      {logits, teacher});
  // Log-ratios clipped above, clipped below and inside, for positive and negative advantages.
  Tensor logp_new = tensor({-1.0, -0.5, -2.0, -0.3, -1.2, -0.8}, DType::f64).set_requires_grad();
  Tensor logp_old = tensor({-1.5, -0.45, -1.0, -0.9, -1.25, -0.2}, DType::f64).set_requires_grad();
  Tensor advantages = tensor({1.0, -0.5, 2.0, -1.5, 0.7, -0.4}, DType::f64).set_requires_grad();
  for (Reduction r : {Reduction::none, Reduction::mean})
    REQUIRE_GRADGRADCHECK(
        [r](const Inputs& in) { return ppo_clip_loss(in[0], in[1], in[2], 0.2, r); },
        {logp_new, logp_old, advantages});
}

TEST_CASE("second derivatives of the Gaussian KLs and reparameterize", "[higher_order]") {
  Tensor mu = random_input({2, 3}, 101), logvar = random_input({2, 3}, 102);
  Tensor mu2 = random_input({3}, 103), logvar2 = random_input({3}, 104);
  Tensor eps = random_input({2, 3}, 105).detach();
  REQUIRE_GRADGRADCHECK([](const Inputs& in) { return gaussian_kl_standard(in[0], in[1]); },
                        {mu, logvar});
  REQUIRE_GRADGRADCHECK(
      [](const Inputs& in) {
        return gaussian_kl(in[0], in[1], in[2], in[3], Reduction::none);
      },
      {mu, logvar, mu2, logvar2});
  REQUIRE_GRADGRADCHECK(
      [eps](const Inputs& in) { return square(reparameterize(in[0], in[1], eps)); }, {mu, logvar});
}

TEST_CASE("second derivatives through dropout", "[higher_order]") {
  // A fresh generator per evaluation draws the same mask every time, as gradgradcheck needs: y is
  // x times a fixed scaled mask, so square(dropout(x)) has the Hessian 2·diag(mask²).
  Tensor x = random_input({3, 4}, 111);
  REQUIRE_GRADGRADCHECK(
      [](const Inputs& in) {
        Generator generator(7);
        return square(dropout(in[0], 0.3, generator));
      },
      {x});
}

TEST_CASE("second derivatives of the activations, var/std, the new shape ops and embedding",
          "[higher_order]") {
  Tensor x = random_input({2, 3}, 91, -3, 3), w = random_input({4, 3}, 92);
  std::vector<std::function<Tensor(const Tensor&)>> activations = {
      [](const Tensor& t) { return gelu(t); },
      [](const Tensor& t) { return gelu(t, GeluApproximation::tanh); },
      [](const Tensor& t) { return silu(t); },
      [](const Tensor& t) { return leaky_relu(t, 0.2) * t; },  // its own f'' is 0
      [](const Tensor& t) { return softplus(t); },
      [](const Tensor& t) { return softplus(t, 2.0, 1.0); },  // both regimes
      [](const Tensor& t) { return elu(t, 0.8); },
      [](const Tensor& t) { return sin(t); },
      [](const Tensor& t) { return cos(t) * t; },
      [](const Tensor& t) { return var(t); },
      [](const Tensor& t) { return var(t, 1, false, true) * t; },
      [](const Tensor& t) { return tg::std(t, 0); },
      [](const Tensor& t) { return square(permute(unsqueeze(t, 0), {2, 0, 1})); },
      [](const Tensor& t) { return square(squeeze(stack({t, t * 2.0}, 1), 0)); },
      [](const Tensor& t) { return square(expand(unsqueeze(t, 1), {2, 4, 3})); },
  };
  for (auto& f : activations) REQUIRE_GRADGRADCHECK([&f](const Inputs& in) { return f(in[0]); }, {x});
  Tensor index = index_tensor({3, 0, 3, 1}, {2, 2});
  REQUIRE_GRADGRADCHECK([index](const Inputs& in) { return square(embedding(index, in[0])); }, {w});
}

// ---------------------------------------------------------------- the window ops and the norms
// Against the public ops alone, so that a faster implementation (a fused kernel with a backward
// op of its own) must keep these second derivatives.

TEST_CASE("second derivatives of conv2d for every stride, padding, dilation, groups and bias",
          "[higher_order]") {
  // Each setting once at 1 and once different per axis, so that an h/w mix-up shows.
  const Size2d strides[] = {1, {2, 1}}, paddings[] = {0, {1, 2}}, dilations[] = {1, {1, 2}};
  unsigned seed = 121;
  for (Size2d stride : strides)
    for (Size2d padding : paddings)
      for (Size2d dilation : dilations)
        for (int64_t groups : {1, 2})
          for (bool with_bias : {true, false}) {
            // Two images (the batch is folded into unfold's columns).
            Inputs in = {random_input({2, 2, 5, 6}, ++seed),
                         random_input({2, 2 / groups, 2, 3}, ++seed)};
            if (with_bias) in.push_back(random_input({2}, ++seed));
            INFO("stride " << stride.h << "x" << stride.w << ", padding " << padding.h << "x"
                           << padding.w << ", dilation " << dilation.h << "x" << dilation.w
                           << ", groups " << groups << ", bias " << with_bias);
            // conv2d is bilinear in (x, weight): the second derivative is the cross term, which
            // runs unfold's and fold's backwards.
            REQUIRE_GRADGRADCHECK(
                [=](const Inputs& i) {
                  return conv2d(i[0], i[1], with_bias ? i[2] : Tensor(), stride, padding,
                                dilation, groups);
                },
                in);
          }
  // Through a nonlinearity, so that the x-x and weight-weight terms are not zero.
  REQUIRE_GRADGRADCHECK(
      [](const Inputs& i) { return tanh(conv2d(i[0], i[1], i[2], {1, 2}, 1, {2, 1}, 2)); },
      {random_input({2, 2, 6, 5}, 151), random_input({4, 1, 3, 2}, 152), random_input({4}, 153)});
}

TEST_CASE("second derivatives of max_pool2d and avg_pool2d for every kernel, stride, padding "
          "and dilation",
          "[higher_order]") {
  // Distinct values, none tied (a tie has no derivative) nor closer than a finite difference.
  std::vector<double> values(2 * 1 * 7 * 6);
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = std::sin(1.3 * double(i)) + 0.002 * double(i);
  Tensor x = tensor(values, {2, 1, 7, 6}, DType::f64).set_requires_grad();
  const Size2d kernels[] = {2, {3, 2}}, strides[] = {0, 1, {1, 2}}, paddings[] = {0, 1};
  const Size2d dilations[] = {1, {2, 1}};
  for (Size2d kernel : kernels)
    for (Size2d stride : strides)
      for (Size2d padding : paddings) {
        INFO("kernel " << kernel.h << "x" << kernel.w << ", stride " << stride.h << "x"
                       << stride.w << ", padding " << padding.h);
        // The pools are linear in x where no tie changes (max) or everywhere (avg): the
        // gradient is a linear map of the output gradient (scatter-add, fold), checked by the
        // plain op; square() adds the x-x term.
        for (Size2d dilation : dilations) {
          INFO("dilation " << dilation.h << "x" << dilation.w);
          REQUIRE_GRADGRADCHECK(
              [=](const Inputs& i) { return max_pool2d(i[0], kernel, stride, padding, dilation); },
              {x});
          REQUIRE_GRADGRADCHECK(
              [=](const Inputs& i) {
                return square(max_pool2d(i[0], kernel, stride, padding, dilation));
              },
              {x});
        }
        REQUIRE_GRADGRADCHECK(
            [=](const Inputs& i) { return avg_pool2d(i[0], kernel, stride, padding); }, {x});
        REQUIRE_GRADGRADCHECK(
            [=](const Inputs& i) { return square(avg_pool2d(i[0], kernel, stride, padding)); },
            {x});
      }
}

TEST_CASE("second derivatives of batch_norm in training and eval mode, with and without weight "
          "and bias",
          "[higher_order]") {
  unsigned seed = 161;
  for (Shape shape : {Shape{5, 3}, Shape{3, 2, 2, 3}})
    for (bool training : {true, false})
      for (bool with_weight : {true, false})
        for (bool with_bias : {true, false}) {
          const int64_t c = shape[1];
          Inputs in = {random_input(shape, ++seed, -2, 2)};
          if (with_weight) in.push_back(random_input({c}, ++seed, 0.5, 2));
          if (with_bias) in.push_back(random_input({c}, ++seed));
          // Running statistics in both modes: eval normalises with them, training updates them
          // at every evaluation (outside the tape) and must not depend on them.
          Tensor running_mean = random_input({c}, ++seed).detach();
          Tensor running_var = random_input({c}, ++seed, 0.5, 2).detach();
          INFO("shape " << shape << ", training " << training << ", weight " << with_weight
                        << ", bias " << with_bias);
          REQUIRE_GRADGRADCHECK(
              [=](const Inputs& i) {
                Tensor weight = with_weight ? i[1] : Tensor();
                Tensor bias = with_bias ? i[with_weight ? 2 : 1] : Tensor();
                return batch_norm(i[0], running_mean, running_var, weight, bias, training, 0.1,
                                  1e-3);
              },
              in);
        }
  // Training without running statistics, as a module built without them normalises.
  REQUIRE_GRADGRADCHECK(
      [](const Inputs& i) { return batch_norm(i[0], Tensor(), Tensor(), i[1], i[2], true); },
      {random_input({4, 2, 3}, 181, -2, 2), random_input({2}, 182, 0.5, 2),
       random_input({2}, 183)});
}

TEST_CASE("second derivatives of layer_norm, with and without weight and bias",
          "[higher_order]") {
  unsigned seed = 191;
  for (Shape normalized : {Shape{4}, Shape{2, 3}})
    for (bool with_weight : {true, false})
      for (bool with_bias : {true, false}) {
        Shape shape = normalized.rank() == 1 ? Shape{3, 4} : Shape{2, 2, 3};
        Inputs in = {random_input(shape, ++seed, -2, 2)};
        if (with_weight) in.push_back(random_input(normalized, ++seed, 0.5, 2));
        if (with_bias) in.push_back(random_input(normalized, ++seed));
        INFO("normalized_shape " << normalized << ", weight " << with_weight << ", bias "
                                 << with_bias);
        REQUIRE_GRADGRADCHECK(
            [=](const Inputs& i) {
              Tensor weight = with_weight ? i[1] : Tensor();
              Tensor bias = with_bias ? i[with_weight ? 2 : 1] : Tensor();
              return layer_norm(i[0], normalized, weight, bias, 1e-3);
            },
            in);
      }
}
