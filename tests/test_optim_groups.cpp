// tests/test_optim_groups.cpp — parameter groups (each with its own lr, weight decay, betas,
// momentum) on SGD/Adam/AdamW, the schedulers with state (StepLR, WarmupCosineLR,
// ReduceLROnPlateau) against PyTorch's numbers, their state through a checkpoint, and
// clip_grad_value.
#include <cmath>
#include <memory>

#include "file_helpers.h"
#include "helpers.h"

using namespace tg;
using tgtest::require_error;
using tgtest::require_values;

namespace {

Tensor parameter(std::vector<double> values) {
  return tensor(values, DType::f64).set_requires_grad();
}

// Sets every parameter's gradient to `g` (a fixed value, the same at every step).
void set_gradients(const std::vector<Tensor>& parameters, double g) {
  for (Tensor p : parameters) p.set_grad(full_like(p.detach(), g));
}

}  // namespace

TEST_CASE("SGD parameter groups apply their own lr, momentum and weight decay", "[optim]") {
  Tensor a = parameter({1, 2}), b = parameter({1, 2});
  optim::SgdOptions fast, slow;
  fast.lr = 0.1;
  slow.lr = 0.01;
  slow.momentum = 0.9;
  slow.weight_decay = 0.5;
  optim::SGD sgd({{{a}, fast}, {{b}, slow}});
  REQUIRE(sgd.group_count() == 2);
  REQUIRE(sgd.lr(0) == 0.1);
  REQUIRE(sgd.lr(1) == 0.01);
  REQUIRE(sgd.group_of(1) == 1);
  set_gradients({a, b}, 1.0);
  sgd.step();
  // a: p -= 0.1·1.    b: g = 1 + 0.5·p, buffer = g (first step), p -= 0.01·g.
  require_values(a, {0.9, 1.9}, 1e-15);
  require_values(b, {1 - 0.01 * 1.5, 2 - 0.01 * 2.0}, 1e-15);
  REQUIRE(sgd.options(1).momentum == 0.9);
  sgd.set_lr(1, 0.02);
  REQUIRE(sgd.lr(0) == 0.1);
  REQUIRE(sgd.options(1).lr == 0.02);
  sgd.set_lr(0.3);  // every group
  REQUIRE(sgd.lr(0) == 0.3);
  REQUIRE(sgd.lr(1) == 0.3);
  require_error([&] { sgd.set_lr(2, 0.1); }, {"SGD", "no parameter group 2"});
  require_error([&] { optim::SGD({{{a}, fast}, {{}, slow}}); }, {"SGD", "group 1", "no parameters"});
  require_error([&] { optim::SGD({{{a}, fast}, {{a}, slow}}); }, {"same tensor as parameter 0"});
}

TEST_CASE("Adam and AdamW groups match separate optimizers with each group's options", "[optim]") {
  for (bool decoupled : {false, true}) {
    INFO((decoupled ? "AdamW" : "Adam"));
    Tensor a = parameter({0.5, -1.0, 2.0}), b = parameter({3.0, -0.25});
    Tensor a_alone = parameter({0.5, -1.0, 2.0}), b_alone = parameter({3.0, -0.25});
    optim::AdamWOptions first, second;
    first.lr = 1e-2;
    first.weight_decay = 0.0;
    second.lr = 3e-3;
    second.beta1 = 0.8;
    second.beta2 = 0.99;
    second.eps = 1e-6;
    second.weight_decay = 0.1;
    std::unique_ptr<optim::Adam> grouped, only_a, only_b;
    if (decoupled) {
      grouped = std::make_unique<optim::AdamW>(
          std::vector<optim::ParamGroup<optim::AdamWOptions>>{{{a}, first}, {{b}, second}});
      only_a = std::make_unique<optim::AdamW>(std::vector<Tensor>{a_alone}, first);
      only_b = std::make_unique<optim::AdamW>(std::vector<Tensor>{b_alone}, second);
    } else {
      grouped = std::make_unique<optim::Adam>(
          std::vector<optim::ParamGroup<optim::AdamOptions>>{{{a}, first}, {{b}, second}});
      only_a = std::make_unique<optim::Adam>(std::vector<Tensor>{a_alone}, first);
      only_b = std::make_unique<optim::Adam>(std::vector<Tensor>{b_alone}, second);
    }
    for (int step = 0; step < 3; ++step) {
      for (const Tensor& p : {a, b, a_alone, b_alone}) {
        Tensor param = p;
        param.set_grad(mul(p.detach(), 0.5 + step));  // a gradient that changes with p
      }
      grouped->step();
      only_a->step();
      only_b->step();
    }
    REQUIRE(a.to_vector() == a_alone.to_vector());  // bit for bit: the same kernel and scalars
    REQUIRE(b.to_vector() == b_alone.to_vector());
    REQUIRE(a.to_vector() != std::vector<double>{0.5, -1.0, 2.0});
    REQUIRE(grouped->options(1).beta1 == 0.8);
  }
}

TEST_CASE("parameter groups round-trip through the optimizer's state dict", "[optim]") {
  Tensor a = parameter({1, 2}), b = parameter({3});
  optim::AdamOptions first, second;
  second.lr = 5e-4;
  second.beta2 = 0.95;
  optim::Adam adam({{{a}, first}, {{b}, second}});
  set_gradients({a, b}, 0.5);
  adam.step();
  adam.set_lr(1, 7e-4);
  StateDict state = adam.state_dict();
  // Group 0 keeps the names a one-group optimizer writes; group 1 is prefixed.
  REQUIRE(state.contains("lr"));
  REQUIRE(state.contains("group.1.lr"));
  REQUIRE(state.contains("group.1.beta2"));
  REQUIRE(state.contains("state.1.exp_avg"));
  Tensor a2 = parameter({1, 2}), b2 = parameter({3});
  optim::Adam restored({{{a2}, first}, {{b2}, first}});
  restored.load_state_dict(state);
  REQUIRE(restored.lr(1) == 7e-4);
  REQUIRE(restored.options(1).beta2 == 0.95);
  REQUIRE(restored.step_count(1) == 1);
  // A one-group optimizer refuses a two-group state (the extra entries are named).
  optim::Adam one_group(std::vector<Tensor>{a2, b2});
  require_error([&] { one_group.load_state_dict(state); }, {"Adam::load_state_dict", "group.1"});
  // And a two-group optimizer a one-group state (the missing entry is named).
  require_error([&] { restored.load_state_dict(one_group.state_dict()); },
                {"Adam::load_state_dict", "group.1.lr"});
}

TEST_CASE("StepLR scales each group's own base lr, as PyTorch's", "[optim]") {
  // PyTorch: SGD([{"params": [p], "lr": 1.0}, {"params": [q], "lr": 0.5}]), StepLR(opt, 3, 0.5):
  // the lrs before each of 8 steps.
  const std::vector<std::pair<double, double>> expected = {
      {1.0, 0.5}, {1.0, 0.5}, {1.0, 0.5}, {0.5, 0.25}, {0.5, 0.25}, {0.5, 0.25}, {0.25, 0.125},
      {0.25, 0.125}};
  Tensor p = parameter({0}), q = parameter({0});
  optim::SgdOptions one, half;
  one.lr = 1.0;
  half.lr = 0.5;
  optim::SGD sgd({{{p}, one}, {{q}, half}});
  optim::StepLR schedule(sgd, 3, 0.5);
  for (const auto& lrs : expected) {
    REQUIRE(sgd.lr(0) == lrs.first);
    REQUIRE(sgd.lr(1) == lrs.second);
    schedule.step();
  }
  require_error([&] { optim::StepLR(sgd, 0); }, {"StepLR", "step_size"});
}

TEST_CASE("WarmupCosineLR warms up linearly, then follows the cosine to min_lr", "[optim]") {
  Tensor p = parameter({0});
  optim::SgdOptions options;
  options.lr = 2.0;
  optim::SGD sgd({p}, options);
  optim::WarmupCosineLR schedule(sgd, 4, 12, 0.5);
  const double pi = 3.14159265358979323846;
  for (int64_t t = 0; t <= 14; ++t) {
    double expected = t < 4 ? 2.0 * t / 4.0
                            : 0.5 + 1.5 * (1 + std::cos(pi * std::min(1.0, (t - 4) / 8.0))) / 2;
    INFO("step " << t);
    REQUIRE(sgd.lr() == Approx(expected).epsilon(1e-15));
    REQUIRE(schedule.last_step() == t);
    schedule.step();
  }
  REQUIRE(sgd.lr() == 0.5);
  require_error([&] { optim::WarmupCosineLR(sgd, 5, 5); }, {"WarmupCosineLR", "warmup_steps"});
}

TEST_CASE("ReduceLROnPlateau follows PyTorch's patience, threshold, cooldown and min_lr",
          "[optim]") {
  // PyTorch: ReduceLROnPlateau(opt, "min", factor=0.5, patience=2, threshold=0.1, cooldown=1,
  // min_lr=0.1) over these metrics, the two groups' lrs after each step (lr 1.0 and 0.5).
  const std::vector<double> metrics = {10, 9.5, 9.2, 9.3, 8.0, 8.0, 7.9,
                                       7.9, 7.9, 7.9, 7.9, 7.9, 7.9, 1.0};
  const std::vector<std::pair<double, double>> expected = {
      {1.0, 0.5},     {1.0, 0.5},     {1.0, 0.5},     {0.5, 0.25},   {0.5, 0.25},
      {0.5, 0.25},    {0.5, 0.25},    {0.25, 0.125},  {0.25, 0.125}, {0.25, 0.125},
      {0.25, 0.125},  {0.125, 0.1},   {0.125, 0.1},   {0.125, 0.1}};
  Tensor p = parameter({0}), q = parameter({0});
  optim::SgdOptions one, half;
  one.lr = 1.0;
  half.lr = 0.5;
  optim::SGD sgd({{{p}, one}, {{q}, half}});
  optim::PlateauOptions options;
  options.factor = 0.5;
  options.patience = 2;
  options.threshold = 0.1;
  options.cooldown = 1;
  options.min_lr = 0.1;
  optim::ReduceLROnPlateau plateau(sgd, options);
  for (size_t i = 0; i < metrics.size(); ++i) {
    plateau.step(metrics[i]);
    INFO("step " << i);
    REQUIRE(sgd.lr(0) == Approx(expected[i].first).epsilon(1e-15));
    REQUIRE(sgd.lr(1) == Approx(expected[i].second).epsilon(1e-15));
  }
  REQUIRE(plateau.best() == 1.0);
}

TEST_CASE("a scheduler's state round-trips through a checkpoint and the schedule continues",
          "[optim][checkpoint]") {
  tgtest::TempDir dir;
  const std::string path = dir.file("run.tgc");
  auto plateau_options = [] {
    optim::PlateauOptions o;
    o.patience = 1;
    o.factor = 0.5;
    return o;
  };
  struct Run {
    Generator generator{3};
    nn::Linear model{2, 1, generator};
    optim::SGD sgd{model.parameters()};
  };
  // The metrics stall, so that the plateau's counters are mid-way when the checkpoint is
  // written: a run that forgot them would reduce the lr at other steps.
  const std::vector<double> metrics = {5, 4, 4, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1};
  Run original, resumed, fresh;
  optim::ReduceLROnPlateau plateau(original.sgd, plateau_options());
  for (int i = 0; i < 5; ++i) plateau.step(metrics[i]);
  REQUIRE(plateau.bad_steps() == 1);
  TrainingState saving{&original.model, &original.sgd, {}};
  saving.scheduler = &plateau;
  save_checkpoint(path, saving);
  optim::ReduceLROnPlateau resumed_plateau(resumed.sgd, plateau_options());
  TrainingState loading{&resumed.model, &resumed.sgd, {}};
  loading.scheduler = &resumed_plateau;
  load_checkpoint(path, loading);
  REQUIRE(resumed_plateau.best() == plateau.best());
  REQUIRE(resumed_plateau.bad_steps() == plateau.bad_steps());
  REQUIRE(resumed_plateau.cooldown_left() == plateau.cooldown_left());
  // A fresh scheduler on the optimizer's restored lr, to show that the state matters.
  fresh.sgd.set_lr(original.sgd.lr());
  optim::ReduceLROnPlateau fresh_plateau(fresh.sgd, plateau_options());
  bool fresh_differs = false;
  for (size_t i = 5; i < metrics.size(); ++i) {
    plateau.step(metrics[i]);
    resumed_plateau.step(metrics[i]);
    fresh_plateau.step(metrics[i]);
    REQUIRE(resumed.sgd.lr() == original.sgd.lr());
    fresh_differs = fresh_differs || fresh.sgd.lr() != original.sgd.lr();
  }
  REQUIRE(fresh_differs);
  REQUIRE(original.sgd.lr() < 1e-2);

  // StepLR: the step count and base lrs come back, and the next steps match.
  Run a, b;
  optim::StepLR steps(a.sgd, 2, 0.9);
  for (int i = 0; i < 5; ++i) steps.step();
  TrainingState saving_steps{&a.model, &a.sgd, {}};
  saving_steps.scheduler = &steps;
  save_checkpoint(path, saving_steps);
  b.sgd.set_lr(0.5);  // overwritten by the checkpoint, and not a base lr of the schedule
  optim::StepLR steps_resumed(b.sgd, 2, 0.9);
  TrainingState loading_steps{&b.model, &b.sgd, {}};
  loading_steps.scheduler = &steps_resumed;
  load_checkpoint(path, loading_steps);
  REQUIRE(steps_resumed.last_step() == 5);
  REQUIRE(steps_resumed.base_lr(0) == 1e-2);
  for (int i = 0; i < 3; ++i) {
    steps.step();
    steps_resumed.step();
    REQUIRE(b.sgd.lr() == a.sgd.lr());
  }
  REQUIRE(a.sgd.lr() == Approx(1e-2 * std::pow(0.9, 4)).epsilon(1e-15));

  // A checkpoint with scheduler state refuses a run without one, and a scheduler of another kind.
  TrainingState without{&b.model, &b.sgd, {}};
  require_error([&] { load_checkpoint(path, without); }, {"scheduler state"});
  TrainingState wrong{&b.model, &b.sgd, {}};
  wrong.scheduler = &resumed_plateau;
  require_error([&] { load_checkpoint(path, wrong); }, {"ReduceLROnPlateau::load_state_dict"});
}

TEST_CASE("clip_grad_value clamps every gradient element", "[optim]") {
  Tensor a = parameter({0, 0, 0}), b = parameter({0}), c = parameter({0});
  a.set_grad(tensor({-3, 0.5, 2}, DType::f64));
  b.set_grad(tensor({-0.1}, DType::f64));
  optim::clip_grad_value({a, b, c}, 1.0);  // c has no gradient: skipped
  require_values(a.grad(), {-1, 0.5, 1});
  require_values(b.grad(), {-0.1});
  REQUIRE_FALSE(c.grad().defined());
  require_error([&] { optim::clip_grad_value({a}, -1.0); }, {"clip_grad_value", "-1"});
}
