// tests/test_optim.cpp — SGD, Adam, AdamW against values computed with PyTorch 1.13 (float64,
// hardcoded below), clipping, schedules, and the optimizers' state dicts.
#include <cmath>

#include "helpers.h"

using namespace tg;
using tgtest::require_error;

namespace {
// Three steps on loss_t = Σ (0.5 + 0.25 t) p² + Σ d·p, starting from p = [0.5, -1, 2, 0], the
// same as the PyTorch script that produced the expected values:
//   p = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64, requires_grad=True)
//   loss = (c * p * p).sum() + (torch.tensor([1.0, -2.0, 0.5, 3.0]) * p).sum()
template <class MakeOptimizer>
std::vector<double> three_steps(MakeOptimizer make, DType dtype = DType::f64) {
  Tensor p = tensor({0.5, -1.0, 2.0, 0.0}, dtype).set_requires_grad();
  Tensor d = tensor({1.0, -2.0, 0.5, 3.0}, dtype);
  auto optimizer = make(std::vector<Tensor>{p});
  for (int t = 0; t < 3; ++t) {
    optimizer->zero_grad();
    Tensor loss = add(sum(mul(mul(p, p), 0.5 + 0.25 * t)), sum(mul(d, p)));
    backward(loss);
    optimizer->step();
  }
  return p.to_vector();
}

void require_close(const std::vector<double>& got, const std::vector<double>& expected,
                   double tolerance) {
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", expected " << expected[i]);
    REQUIRE(std::fabs(got[i] - expected[i]) <= tolerance * (1 + std::fabs(expected[i])));
  }
}
}  // namespace

TEST_CASE("Adam matches torch.optim.Adam", "[optim]") {
  auto adam = [](std::vector<Tensor> ps) {
    optim::AdamOptions o;
    o.lr = 0.1;
    return std::make_unique<optim::Adam>(ps, o);
  };
  std::vector<double> expected = {0.1997119391372154, -0.6995142319795178, 1.7005351405493632,
                                  -0.29916864668808385};
  require_close(three_steps(adam), expected, 1e-14);
  require_close(three_steps(adam, DType::f32), expected, 1e-6);  // the f32 kernel path
}

TEST_CASE("Adam with L2 weight decay and other betas matches PyTorch", "[optim]") {
  auto adam = [](std::vector<Tensor> ps) {
    optim::AdamOptions o;
    o.lr = 0.1;
    o.beta1 = 0.8;
    o.beta2 = 0.99;
    o.eps = 1e-6;
    o.weight_decay = 0.1;
    return std::make_unique<optim::Adam>(ps, o);
  };
  require_close(three_steps(adam), {0.19944080750249893, -0.6986404958646983, 1.6980166591916626,
                                    -0.2984222699524529}, 1e-14);
}

TEST_CASE("AdamW decouples weight decay like torch.optim.AdamW", "[optim]") {
  auto adamw = [](std::vector<Tensor> ps) {
    optim::AdamWOptions o;  // weight_decay defaults to 0.01 as in PyTorch
    REQUIRE(o.weight_decay == 0.01);
    o.lr = 0.1;
    o.weight_decay = 0.1;
    return std::make_unique<optim::AdamW>(ps, o);
  };
  require_close(three_steps(adamw), {0.18788627370199895, -0.6728104566201328, 1.64400625409358,
                                     -0.2961848081172166}, 1e-14);
}

TEST_CASE("SGD, with momentum, dampening, weight decay and Nesterov, matches PyTorch", "[optim]") {
  auto sgd = [](double momentum, double dampening, double weight_decay, bool nesterov) {
    return [=](std::vector<Tensor> ps) {
      optim::SgdOptions o;
      o.lr = 0.1;
      o.momentum = momentum;
      o.dampening = dampening;
      o.weight_decay = weight_decay;
      o.nesterov = nesterov;
      return std::make_unique<optim::SGD>(ps, o);
    };
  };
  require_close(three_steps(sgd(0, 0, 0, false)), {0.058, -0.116, 1.1, -0.744}, 1e-14);
  require_close(three_steps(sgd(0.9, 0.1, 0.01, false)),
                {-0.2729478236550001, 0.5458956473100002, 0.5111577138799999, -1.3739562930000002},
                1e-14);
  require_close(three_steps(sgd(0.9, 0, 0, true)),
                {-0.5042930000000001, 1.0085860000000002, -0.011455000000000081, -1.719186}, 1e-14);
}

TEST_CASE("parameters without a gradient are skipped and keep no state", "[optim]") {
  Tensor a = tensor({1.0, 2.0}).set_requires_grad(), b = tensor({3.0}).set_requires_grad();
  optim::Adam adam({a, b});
  backward(sum(mul(a, a)));
  adam.step();
  REQUIRE(b.to_vector() == std::vector<double>{3.0});
  REQUIRE(adam.step_count(0) == 1);
  REQUIRE(adam.step_count(1) == 0);
  REQUIRE(adam.state_dict().contains("state.0.exp_avg"));
  REQUIRE_FALSE(adam.state_dict().contains("state.1.exp_avg"));
  adam.zero_grad();
  REQUIRE_FALSE(a.grad().defined());
}

TEST_CASE("optimizer arguments are validated", "[optim]") {
  Tensor p = zeros({2}).set_requires_grad();
  require_error([] { optim::Adam(std::vector<Tensor>{}); }, {"Adam", "no parameters"});
  require_error([] { optim::SGD({zeros({2})}); }, {"SGD", "requires_grad"});
  require_error([&] { optim::Adam({p, p}); }, {"same tensor as parameter 0"});
  optim::AdamOptions bad;
  bad.beta1 = 1.0;
  require_error([&] { optim::Adam({p}, bad); }, {"betas"});
  optim::SgdOptions nesterov;
  nesterov.nesterov = true;
  require_error([&] { optim::SGD({p}, nesterov); }, {"Nesterov"});
}

TEST_CASE("an optimizer state dict restores the exact trajectory", "[optim]") {
  // Run 2 steps, save, run 2 more; a fresh optimizer loaded with the saved state (and the
  // parameters at that point) must produce the same final parameters bit for bit.
  auto step = [](optim::Optimizer& opt, const Tensor& p, int t) {
    opt.zero_grad();
    backward(sum(mul(mul(p, p), 1.0 + t)));
    opt.step();
  };
  for (int kind = 0; kind < 2; ++kind) {
    Tensor p = tensor({0.3, -0.7, 1.1}).set_requires_grad();
    optim::SgdOptions sgd_options;
    sgd_options.momentum = 0.5;
    std::unique_ptr<optim::Optimizer> opt =
        kind == 0 ? std::unique_ptr<optim::Optimizer>(new optim::Adam({p}))
                  : std::unique_ptr<optim::Optimizer>(new optim::SGD({p}, sgd_options));
    step(*opt, p, 0);
    step(*opt, p, 1);
    StateDict saved;
    for (auto& e : opt->state_dict()) saved.add(e.first, e.second.clone());
    Tensor p_saved = p.detach().clone();
    step(*opt, p, 2);
    step(*opt, p, 3);

    Tensor q = p_saved.clone().set_requires_grad();
    std::unique_ptr<optim::Optimizer> fresh =
        kind == 0 ? std::unique_ptr<optim::Optimizer>(new optim::Adam({q}))
                  : std::unique_ptr<optim::Optimizer>(new optim::SGD({q}, sgd_options));
    fresh->load_state_dict(saved);
    step(*fresh, q, 2);
    step(*fresh, q, 3);
    REQUIRE(q.to_vector() == p.to_vector());
  }
}

TEST_CASE("a mismatched optimizer state is rejected and changes nothing", "[optim]") {
  Tensor p = zeros({3}).set_requires_grad();
  optim::Adam adam({p});
  backward(sum(mul(p, 2.0)));
  adam.step();
  std::vector<double> m_before = adam.state_dict().find("state.0.exp_avg")->to_vector();

  Tensor other = zeros({4}).set_requires_grad();
  optim::Adam other_adam({other});
  backward(sum(other));
  other_adam.step();
  other_adam.set_lr(0.5);
  require_error([&] { adam.load_state_dict(other_adam.state_dict()); },
                {"Adam::load_state_dict", "state.0.exp_avg", "[4]", "expected [3]"});
  REQUIRE(adam.lr() == 1e-3);  // the learning rate was not restored either
  REQUIRE(adam.state_dict().find("state.0.exp_avg")->to_vector() == m_before);

  StateDict partial;
  for (auto& e : adam.state_dict())
    if (e.first != "state.0.step") partial.add(e.first, e.second);
  require_error([&] { adam.load_state_dict(partial); }, {"only part of its state"});
}

TEST_CASE("hyperparameters in a loaded optimizer state are validated like the constructor's",
          "[optim]") {
  Tensor p = zeros({3}).set_requires_grad();
  // A state dict whose entries have the right names and types but values the constructor refuses.
  auto with = [](const StateDict& state, const std::string& name, const Tensor& value) {
    StateDict out;
    for (auto& e : state) out.add(e.first, e.first == name ? value : e.second);
    return out;
  };
  optim::Adam adam({p});
  StateDict adam_state = adam.state_dict();
  require_error([&] { adam.load_state_dict(with(adam_state, "beta2", scalar(1.5, DType::f64))); },
                {"Adam::load_state_dict", "betas", "1.5"});
  require_error([&] { adam.load_state_dict(with(adam_state, "lr", scalar(-1, DType::f64))); },
                {"Adam::load_state_dict", "learning rate", "-1"});
  REQUIRE(adam.options().beta2 == 0.999);
  REQUIRE(adam.lr() == 1e-3);

  optim::SgdOptions momentum;
  momentum.momentum = 0.9;
  optim::SGD sgd({p}, momentum);
  StateDict sgd_state = sgd.state_dict();
  require_error([&] { sgd.load_state_dict(with(sgd_state, "momentum", scalar(-0.5, DType::f64))); },
                {"SGD::load_state_dict", "momentum", "-0.5"});
  StateDict nesterov_with_dampening = with(with(sgd_state, "nesterov", scalar(1, DType::i64)),
                                           "dampening", scalar(0.5, DType::f64));
  require_error([&] { sgd.load_state_dict(nesterov_with_dampening); },
                {"SGD::load_state_dict", "Nesterov"});
  REQUIRE(sgd.options().momentum == 0.9);
}

TEST_CASE("options() reports the learning rate in force, not the constructor's", "[optim]") {
  Tensor p = zeros({2}).set_requires_grad();
  optim::Adam adam({p});
  adam.set_lr(0.25);
  REQUIRE(adam.options().lr == 0.25);
  optim::SGD sgd({p});
  sgd.set_lr(0.5);
  REQUIRE(sgd.options().lr == 0.5);
}

TEST_CASE("clip_grad_norm scales all gradients by one factor, like PyTorch", "[optim]") {
  Tensor a = tensor({3.0, 4.0}, DType::f64).set_requires_grad();
  Tensor b = tensor({12.0}, DType::f64).set_requires_grad();
  Tensor unused = tensor({1.0}, DType::f64).set_requires_grad();
  a.set_grad(tensor({3.0, 4.0}, DType::f64));
  b.set_grad(tensor({12.0}, DType::f64));
  Tensor norm = optim::clip_grad_norm({a, b, unused}, 6.5);
  REQUIRE(norm.item() == Approx(13.0).epsilon(1e-15));
  tgtest::require_values(a.grad(), {1.4999998846153937, 1.9999998461538582}, 1e-14);
  tgtest::require_values(b.grad(), {5.999999538461575}, 1e-14);
  // Below the limit the gradients are (almost exactly) unchanged.
  optim::clip_grad_norm({a, b}, 100.0);
  tgtest::require_values(b.grad(), {5.999999538461575}, 1e-12);
  require_error([&] { optim::clip_grad_norm({a}, 0.0); }, {"max_norm must be positive"});
}

TEST_CASE("linear and cosine schedules match PyTorch's LinearLR and CosineAnnealingLR", "[optim]") {
  optim::LinearSchedule linear(0.1, 0.25, 1.0, 4);
  std::vector<double> expected_linear = {0.025, 0.04375, 0.0625, 0.08125, 0.1, 0.1};
  for (int t = 0; t < 6; ++t) REQUIRE(linear.lr(t) == Approx(expected_linear[t]).epsilon(1e-12));
  optim::CosineSchedule cosine(0.1, 4, 0.01);
  std::vector<double> expected_cosine = {0.1, 0.08681980515339464, 0.055, 0.023180194846605363,
                                         0.01};
  for (int t = 0; t < 5; ++t) REQUIRE(cosine.lr(t) == Approx(expected_cosine[t]).epsilon(1e-12));
  REQUIRE(cosine.lr(100) == Approx(0.01));  // held at the minimum after the end
  require_error([] { optim::CosineSchedule(0.1, 0); }, {"total_steps must be positive"});
}
