// src/optim/schedulers.cpp — learning-rate schedulers with state (StepLR, warm-up + cosine,
// ReduceLROnPlateau) and clip_grad_value. Each scheduler's state dict goes into checkpoints
// (TrainingState::scheduler), so a resumed run continues its schedule.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "tapegrad/error.h"
#include "tapegrad/ops.h"
#include "tapegrad/optim.h"
#include "tapegrad/tape.h"

namespace tg::optim {

// g = clamp(g, -c, c), outside the tape, on the gradients' device.
void clip_grad_value(const std::vector<Tensor>& parameters, double clip_value) {
  check(clip_value >= 0 && !std::isnan(clip_value), "clip_grad_value",
        "clip_value must be >= 0, got ", clip_value);
  NoGrad no_grad;
  for (const Tensor& p : parameters) {
    Tensor g = p.defined() ? p.grad() : Tensor();
    if (!g.defined()) continue;
    Tensor param = p;
    param.set_grad(clamp(g, -clip_value, clip_value));
  }
}

void Scheduler::load_state_dict(const StateDict& state) {
  check_state_dict(state);  // everything is checked before anything changes
  apply_state_dict(state);
}

namespace {
std::string base_lr_key(size_t group) { return "base_lr." + std::to_string(group); }
}  // namespace

// ---------------------------------------------------------------- EpochScheduler

EpochScheduler::EpochScheduler(Optimizer& optimizer, const char* name)
    : optimizer_(optimizer), name_(name) {
  for (size_t k = 0; k < optimizer.group_count(); ++k) base_lrs_.push_back(optimizer.lr(k));
}

void EpochScheduler::apply_rates() {
  for (size_t k = 0; k < base_lrs_.size(); ++k)
    optimizer_.set_lr(k, lr_at(base_lrs_[k], step_));
}

void EpochScheduler::step() {
  ++step_;
  apply_rates();
}

StateDict EpochScheduler::state_dict() const {
  StateDict state;
  state.add_integer("step", step_);
  for (size_t k = 0; k < base_lrs_.size(); ++k) state.add_real(base_lr_key(k), base_lrs_[k]);
  return state;
}

void EpochScheduler::check_state_dict(const StateDict& state) const {
  std::string who = std::string(name_) + "::load_state_dict";
  std::vector<std::string> known = {"step"};
  check(expect_integer(state, "step", who.c_str()) >= 0, who.c_str(), "entry 'step' must be >= 0");
  for (size_t k = 0; k < base_lrs_.size(); ++k) {
    known.push_back(base_lr_key(k));
    check(expect_real(state, base_lr_key(k), who.c_str()) >= 0, who.c_str(), "entry '",
          base_lr_key(k), "' must be >= 0");
  }
  expect_no_other_entries(state, known, who.c_str());
}

void EpochScheduler::apply_state_dict(const StateDict& state) {
  step_ = expect_integer(state, "step", name_);
  for (size_t k = 0; k < base_lrs_.size(); ++k)
    base_lrs_[k] = expect_real(state, base_lr_key(k), name_);
}

// ---------------------------------------------------------------- StepLR

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : EpochScheduler(optimizer, "StepLR"), step_size_(step_size), gamma_(gamma) {
  check(step_size > 0, "StepLR", "step_size must be positive, got ", step_size);
  check(gamma >= 0 && std::isfinite(gamma), "StepLR", "gamma must be >= 0, got ", gamma);
  apply_rates();
}

// lr = base·γ^⌊t / step_size⌋
double StepLR::lr_at(double base_lr, int64_t step) const {
  return base_lr * std::pow(gamma_, static_cast<double>(step / step_size_));
}

// ---------------------------------------------------------------- WarmupCosineLR

WarmupCosineLR::WarmupCosineLR(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps,
                               double min_lr)
    : EpochScheduler(optimizer, "WarmupCosineLR"),
      warmup_steps_(warmup_steps),
      total_steps_(total_steps),
      min_lr_(min_lr) {
  check(warmup_steps >= 0 && total_steps > warmup_steps, "WarmupCosineLR",
        "needs 0 <= warmup_steps < total_steps, got warmup_steps ", warmup_steps,
        ", total_steps ", total_steps);
  check(min_lr >= 0, "WarmupCosineLR", "min_lr must be >= 0, got ", min_lr);
  apply_rates();
}

// t < w: base·t/w      else: min + (base - min)·(1 + cos(π·min(1, (t - w)/(T - w))))/2
double WarmupCosineLR::lr_at(double base_lr, int64_t step) const {
  if (step < warmup_steps_)
    return base_lr * static_cast<double>(step) / static_cast<double>(warmup_steps_);
  const double pi = 3.14159265358979323846;
  double progress = std::min(1.0, static_cast<double>(step - warmup_steps_) /
                                      static_cast<double>(total_steps_ - warmup_steps_));
  return min_lr_ + (base_lr - min_lr_) * (1 + std::cos(pi * progress)) / 2;
}

// ---------------------------------------------------------------- ReduceLROnPlateau

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, const PlateauOptions& options)
    : optimizer_(optimizer), options_(options) {
  const char* who = "ReduceLROnPlateau";
  check(options.factor >= 0 && options.factor < 1, who, "factor must lie in [0, 1), got ",
        options.factor);
  check(options.patience >= 0 && options.cooldown >= 0, who,
        "patience and cooldown must be >= 0, got ", options.patience, " and ", options.cooldown);
  check(options.threshold >= 0 && options.min_lr >= 0 && options.eps >= 0, who,
        "threshold, min_lr and eps must be >= 0");
  best_ = options.mode == PlateauOptions::Mode::min ? std::numeric_limits<double>::infinity()
                                                    : -std::numeric_limits<double>::infinity();
}

// PyTorch's is_better: rel/min a < best·(1 - θ), abs/min a < best - θ, rel/max a > best·(1 + θ),
// abs/max a > best + θ.
bool ReduceLROnPlateau::is_better(double metric) const {
  const bool rel = options_.threshold_mode == PlateauOptions::ThresholdMode::rel;
  if (options_.mode == PlateauOptions::Mode::min)
    return metric < (rel ? best_ * (1 - options_.threshold) : best_ - options_.threshold);
  return metric > (rel ? best_ * (1 + options_.threshold) : best_ + options_.threshold);
}

void ReduceLROnPlateau::step(double metric) {
  ++steps_;
  if (is_better(metric)) {
    best_ = metric;
    bad_steps_ = 0;
  } else {
    ++bad_steps_;
  }
  if (cooldown_left_ > 0) {  // bad steps in the cooldown do not count
    --cooldown_left_;
    bad_steps_ = 0;
  }
  if (bad_steps_ > options_.patience) {
    for (size_t k = 0; k < optimizer_.group_count(); ++k) {
      double old_lr = optimizer_.lr(k);
      double new_lr = std::max(old_lr * options_.factor, options_.min_lr);
      if (old_lr - new_lr > options_.eps) optimizer_.set_lr(k, new_lr);
    }
    cooldown_left_ = options_.cooldown;
    bad_steps_ = 0;
  }
}

StateDict ReduceLROnPlateau::state_dict() const {
  StateDict state;
  state.add_real("best", best_);
  state.add_integer("bad_steps", bad_steps_);
  state.add_integer("cooldown_left", cooldown_left_);
  state.add_integer("steps", steps_);
  return state;
}

void ReduceLROnPlateau::check_state_dict(const StateDict& state) const {
  const char* who = "ReduceLROnPlateau::load_state_dict";
  expect_real(state, "best", who);
  for (const char* key : {"bad_steps", "cooldown_left", "steps"})
    check(expect_integer(state, key, who) >= 0, who, "entry '", key, "' must be >= 0");
  expect_no_other_entries(state, {"best", "bad_steps", "cooldown_left", "steps"}, who);
}

void ReduceLROnPlateau::apply_state_dict(const StateDict& state) {
  const char* who = "ReduceLROnPlateau";
  best_ = expect_real(state, "best", who);
  bad_steps_ = expect_integer(state, "bad_steps", who);
  cooldown_left_ = expect_integer(state, "cooldown_left", who);
  steps_ = expect_integer(state, "steps", who);
}

}  // namespace tg::optim
