// tests/test_nn.cpp — modules: parameter names and registration, Linear's math and PyTorch's
// initialisation bounds, Sequential/MLP, train/eval, state dicts.
#include <cmath>
#include <functional>

#include "helpers.h"

using namespace tg;
using tgtest::require_error;

namespace {
struct TwoLayer : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  std::shared_ptr<nn::MLP> head;
  explicit TwoLayer(Generator& g)
      : fc1(register_module("fc1", std::make_shared<nn::Linear>(4, 3, g))),
        fc2(register_module("fc2", std::make_shared<nn::Linear>(3, 2, g, false))),
        head(register_module("head", std::make_shared<nn::MLP>(std::vector<int64_t>{2, 5, 1}, g))) {
  }
  Tensor forward(const Tensor& x) override { return (*head)((*fc2)(relu((*fc1)(x)))); }
};
}  // namespace

TEST_CASE("parameters are named by their path, depth first in registration order", "[nn]") {
  Generator g(1);
  TwoLayer net(g);
  std::vector<std::string> names;
  for (auto& p : net.named_parameters()) names.push_back(p.first);
  REQUIRE(names == std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight",
                                            "head.0.weight", "head.0.bias", "head.2.weight",
                                            "head.2.bias"});
  REQUIRE(net.parameter_count() == 4 * 3 + 3 + 3 * 2 + 2 * 5 + 5 + 5 * 1 + 1);
  for (const Tensor& p : net.parameters()) REQUIRE(p.requires_grad());
  REQUIRE(net.fc1->weight.shape() == Shape{3, 4});
  REQUIRE_FALSE(net.fc2->bias.defined());
}

TEST_CASE("Linear computes x·wᵀ + b and its gradients reach the parameters", "[nn]") {
  Generator g(2);
  nn::Linear layer(3, 2, g, true, DType::f64);
  Tensor x = tensor({1, 2, 3, -1, 0, 2}, {2, 3}, DType::f64);
  Tensor y = layer(x);
  std::vector<double> w = layer.weight.to_vector(), b = layer.bias.to_vector(), xs = x.to_vector();
  for (int r = 0; r < 2; ++r)
    for (int o = 0; o < 2; ++o) {
      double expected = b[o];
      for (int i = 0; i < 3; ++i) expected += xs[r * 3 + i] * w[o * 3 + i];
      REQUIRE(y.at({r, o}) == Approx(expected).epsilon(1e-12));
    }
  backward(sum(y));
  tgtest::require_values(layer.bias.grad(), {2, 2});
  tgtest::require_values(layer.weight.grad(), {0, 2, 5, 0, 2, 5});
}

TEST_CASE("Linear's default init is U(-1/√in, 1/√in) for weight and bias, like PyTorch", "[nn]") {
  Generator g(3);
  nn::Linear layer(400, 50, g);
  double bound = 1.0 / std::sqrt(400.0);
  double largest = 0, mean = 0;
  for (double v : layer.weight.to_vector()) {
    REQUIRE(std::fabs(v) <= bound);
    largest = std::max(largest, std::fabs(v));
    mean += v / layer.weight.numel();
  }
  REQUIRE(largest > 0.99 * bound);  // 20000 draws reach the edge
  REQUIRE(std::fabs(mean) < 0.01 * bound * 10);
  for (double v : layer.bias.to_vector()) REQUIRE(std::fabs(v) <= bound);
  // Same seed, same parameters; the weight is drawn before the bias.
  Generator g2(3);
  nn::Linear again(400, 50, g2);
  REQUIRE(again.weight.to_vector() == layer.weight.to_vector());
  REQUIRE(again.bias.to_vector() == layer.bias.to_vector());
}

TEST_CASE("kaiming and xavier bounds follow their formulas", "[nn]") {
  Generator g(4);
  Tensor w = empty({30, 60});
  nn::init::kaiming_uniform_(w, g);  // a = 0: bound √(6 / fan_in)
  double largest = 0;
  for (double v : w.to_vector()) largest = std::max(largest, std::fabs(v));
  REQUIRE(largest <= std::sqrt(6.0 / 60));
  REQUIRE(largest > 0.95 * std::sqrt(6.0 / 60));
  nn::init::xavier_uniform_(w, g);
  largest = 0;
  for (double v : w.to_vector()) largest = std::max(largest, std::fabs(v));
  REQUIRE(largest <= std::sqrt(6.0 / 90));
  REQUIRE(largest > 0.95 * std::sqrt(6.0 / 90));
  REQUIRE(nn::init::fan_in(empty({8, 3, 5, 5})) == 75);
  REQUIRE(nn::init::fan_out(empty({8, 3, 5, 5})) == 200);
  require_error([] { nn::init::fan_in(empty({8})); }, {"fan_in", "at least 2 dimensions"});
  require_error([] { nn::init::fan_out(Tensor()); }, {"fan_out", "at least 2 dimensions"});
}

TEST_CASE("Sequential chains its children; MLP puts activations between layers", "[nn]") {
  Generator g(5);
  nn::MLP mlp({3, 4, 2}, g, nn::Activation::tanh);
  REQUIRE(mlp.size() == 3);  // Linear, Tanh, Linear
  Tensor x = tensor({0.5, -1, 2}, {1, 3});
  auto& first = static_cast<nn::Linear&>(*mlp.children()[0].second);
  auto& last = static_cast<nn::Linear&>(*mlp.children()[2].second);
  Tensor expected = linear(tanh(linear(x, first.weight, first.bias)), last.weight, last.bias);
  tgtest::require_values(mlp(x), expected.to_vector(), 1e-6);
  nn::MLP activated({3, 4}, g, nn::Activation::relu, true);
  for (double v : activated(tensor({5, -5, 1, 2, 3, -4}, {2, 3})).to_vector()) REQUIRE(v >= 0);
}

TEST_CASE("every Activation is its op with torch.nn's defaults, named as that module prints",
          "[nn]") {
  const double pi = std::acos(-1.0);
  auto phi = [](double v) { return 0.5 * (1 + std::erf(v / std::sqrt(2.0))); };
  struct Case {
    nn::Activation activation;
    std::function<double(double)> f;     // the formula, in float64
    std::shared_ptr<nn::Module> module;  // the torch.nn module with the defaults
  };
  const std::vector<Case> cases = {
      {nn::Activation::relu, [](double v) { return v > 0 ? v : 0.0; }, std::make_shared<nn::ReLU>()},
      {nn::Activation::tanh, [](double v) { return std::tanh(v); }, std::make_shared<nn::Tanh>()},
      {nn::Activation::sigmoid, [](double v) { return 1 / (1 + std::exp(-v)); },
       std::make_shared<nn::Sigmoid>()},
      {nn::Activation::identity, [](double v) { return v; }, nullptr},
      {nn::Activation::gelu, [&](double v) { return v * phi(v); }, std::make_shared<nn::GELU>()},
      {nn::Activation::gelu_tanh,
       [&](double v) {
         return 0.5 * v * (1 + std::tanh(std::sqrt(2 / pi) * (v + 0.044715 * v * v * v)));
       },
       std::make_shared<nn::GELU>(GeluApproximation::tanh)},
      {nn::Activation::silu, [](double v) { return v / (1 + std::exp(-v)); },
       std::make_shared<nn::SiLU>()},
      {nn::Activation::leaky_relu, [](double v) { return v > 0 ? v : 0.01 * v; },
       std::make_shared<nn::LeakyReLU>()},
      // threshold 20: 25 is returned as it is
      {nn::Activation::softplus, [](double v) { return v > 20 ? v : std::log1p(std::exp(v)); },
       std::make_shared<nn::Softplus>()},
      {nn::Activation::elu, [](double v) { return v > 0 ? v : std::expm1(v); },
       std::make_shared<nn::ELU>()},
  };
  const std::vector<double> points = {-25, -3, -0.5, 0, 0.75, 2, 25};
  Tensor x = tensor(points, DType::f64);
  for (const Case& c : cases) {
    INFO(nn::activation_name(c.activation));
    std::vector<double> expected;
    for (double v : points) expected.push_back(c.f(v));
    tgtest::require_values(nn::activate(c.activation, x), expected, 1e-12);
    nn::ActivationLayer layer(c.activation);
    tgtest::require_values(layer(x), expected, 1e-12);
    if (c.module) {
      REQUIRE(layer.type_name() == c.module->type_name());
      tgtest::require_values(layer(x), c.module->forward(x).to_vector(), 0);
    }
  }
  REQUIRE(std::string(nn::activation_name(nn::Activation::identity)) == "Identity");
}

TEST_CASE("MLP takes every activation, and its gradients pass gradcheck", "[nn]") {
  for (nn::Activation activation :
       {nn::Activation::gelu, nn::Activation::gelu_tanh, nn::Activation::silu,
        nn::Activation::leaky_relu, nn::Activation::softplus, nn::Activation::elu}) {
    INFO(nn::activation_name(activation));
    Generator g(8);
    nn::MLP mlp({2, 3, 1}, g, activation, true, DType::f64);
    REQUIRE(mlp.size() == 4);  // Linear, activation, Linear, activation
    REQUIRE(mlp.to_string().find(nn::activation_name(activation)) != std::string::npos);
    Tensor x = tensor({0.5, -1.5, 2.0, 0.25}, {2, 2}, DType::f64);
    auto& first = static_cast<nn::Linear&>(*mlp.children()[0].second);
    auto& last = static_cast<nn::Linear&>(*mlp.children()[2].second);
    Tensor hidden = nn::activate(activation, linear(x, first.weight, first.bias));
    Tensor expected = nn::activate(activation, linear(hidden, last.weight, last.bias));
    tgtest::require_values(mlp(x), expected.to_vector(), 1e-12);
    REQUIRE_GRADCHECK([&](const std::vector<Tensor>&) { return mlp(x); }, mlp.parameters());
  }
}

TEST_CASE("train() and eval() reach every child", "[nn]") {
  Generator g(6);
  TwoLayer net(g);
  net.eval();
  REQUIRE_FALSE(net.is_training());
  REQUIRE_FALSE(net.head->children()[0].second->is_training());
  net.train();
  REQUIRE(net.head->children()[2].second->is_training());
}

TEST_CASE("a module without a single-input forward says so", "[nn]") {
  nn::Module bare;
  require_error([&] { bare(zeros({1})); }, {"Module::forward", "no single-input forward"});
}

TEST_CASE("load_state_dict copies values in place and rejects mismatches without changes", "[nn]") {
  Generator g1(7), g2(8);
  TwoLayer a(g1), b(g2);
  Tensor held = b.fc1->weight;  // a handle taken before loading sees the new values
  b.load_state_dict(a.state_dict());
  REQUIRE(held.to_vector() == a.fc1->weight.to_vector());
  for (auto& p : b.named_parameters()) REQUIRE(p.second.requires_grad());

  Generator g3(9);
  TwoLayer c(g3);
  std::vector<double> before = c.fc1->weight.to_vector();
  StateDict wrong_shape;
  for (auto& e : a.state_dict())
    wrong_shape.add(e.first, e.first == "head.2.bias" ? zeros({2}) : e.second);
  require_error([&] { c.load_state_dict(wrong_shape); }, {"head.2.bias", "[2]", "expected [1]"});
  REQUIRE(c.fc1->weight.to_vector() == before);  // nothing changed, not even the earlier entries

  StateDict missing = a.state_dict().with_prefix("");
  StateDict partial;
  for (auto& e : missing)
    if (e.first != "fc2.weight") partial.add(e.first, e.second);
  require_error([&] { c.load_state_dict(partial); }, {"no entry 'fc2.weight'"});
  StateDict extra = a.state_dict();
  extra.add("fc3.weight", zeros({1}));
  require_error([&] { c.load_state_dict(extra); }, {"unexpected entry 'fc3.weight'"});
  REQUIRE(c.fc1->weight.to_vector() == before);
}

TEST_CASE("registering a name twice or a dotted name is an error", "[nn]") {
  struct Bad : nn::Module {
    void twice() {
      register_parameter("w", zeros({1}));
      register_parameter("w", zeros({1}));
    }
    void dotted() { register_parameter("a.b", zeros({1})); }
  };
  Bad bad;
  require_error([&] { bad.twice(); }, {"'w' is already a parameter"});
  require_error([&] { bad.dotted(); }, {"contain no '.'"});
}

TEST_CASE("the module summary lists layers and parameter shapes", "[nn]") {
  Generator g(10);
  TwoLayer net(g);
  std::string text = net.to_string();
  REQUIRE(text.find("(fc1): Linear(4 -> 3)  weight [3, 4]  bias [3]") != std::string::npos);
  REQUIRE(text.find("(1): ReLU") != std::string::npos);
  REQUIRE(text.find("parameters: 42") != std::string::npos);
}
