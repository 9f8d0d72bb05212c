// tapegrad/optim.h — optimizers (SGD, Adam, AdamW with PyTorch's semantics), global-norm gradient
// clipping and learning-rate schedules.
//
//   tg::optim::AdamOptions options;   // PyTorch's defaults: lr 1e-3, betas (0.9, 0.999)
//   tg::optim::Adam adam(model.parameters(), options);
//   for (...) {
//     adam.zero_grad();
//     tg::backward(loss(model, batch));
//     adam.step();
//   }
//
// step() updates every parameter that has a gradient, outside the tape, with one fused backend
// kernel per parameter (Backend::adam_step / sgd_step). Parameters without a gradient are skipped
// and their state is left alone, as in PyTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/state_dict.h"
#include "tapegrad/tensor.h"

namespace tg::optim {

// A parameter group (torch.optim's param_groups): parameters that share hyperparameters. Each
// group has its own learning rate, weight decay, betas or momentum:
//   tg::optim::AdamOptions decayed, plain;
//   decayed.weight_decay = 0.01;  plain.lr = 3e-4;
//   tg::optim::Adam adam({{weights, decayed}, {biases_and_norms, plain}});
template <class Options>
struct ParamGroup {
  std::vector<Tensor> parameters;
  Options options;
};

class Optimizer {
 public:
  // groups[k] holds group k's parameters and lrs[k] its learning rate. Parameters are numbered
  // across the groups in order (state.i in the state dict), as in PyTorch.
  Optimizer(std::vector<std::vector<Tensor>> groups, std::vector<double> lrs, const char* name);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  virtual void step() = 0;
  // Forgets every parameter's gradient (the next backward starts afresh).
  void zero_grad();

  // Learning rates by group (group 0 by default). set_lr(lr) sets every group's (what a closed-form
  // Schedule does); schedulers (StepLR, ...) scale each group's own base rate.
  double lr(size_t group = 0) const { return lrs_.at(group); }
  void set_lr(double lr);
  void set_lr(size_t group, double lr);
  size_t group_count() const { return lrs_.size(); }
  size_t group_of(size_t parameter) const { return group_of_.at(parameter); }
  const std::vector<Tensor>& parameters() const { return parameters_; }
  const char* name() const { return name_; }

  // The optimizer's hyperparameters and per-parameter state, named by parameter index
  // ("lr", "state.3.exp_avg"); the tensors are the live ones. Group 0's hyperparameters have
  // plain names ("lr", "beta1"), group k ≥ 1's are "group.k.lr", ... (so a one-group file reads
  // as before groups existed).
  virtual StateDict state_dict() const = 0;
  // Throws a tg::Error naming the first entry that does not fit these parameters.
  virtual void check_state_dict(const StateDict& state) const = 0;
  // check_state_dict, then restores hyperparameters and state (PyTorch's load_state_dict also
  // restores the learning rate). A state that fails the check changes nothing.
  void load_state_dict(const StateDict& state);

 protected:
  virtual void apply_state_dict(const StateDict& state) = 0;
  // The parameters that have a gradient now, with their index; checks dtype/device agreement.
  std::vector<size_t> parameters_with_grad() const;

  // Group 0's entries are named `key`, group k's "group.k.key".
  static std::string group_key(size_t group, const char* key);

  std::vector<Tensor> parameters_;  // every group's, in order
  std::vector<size_t> group_of_;    // the group of each parameter
  std::vector<double> lrs_;         // each group's learning rate
  const char* name_;
};

// ---------------------------------------------------------------- SGD

struct SgdOptions {
  double lr = 1e-2;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;  // L2 penalty added to the gradient
  bool nesterov = false;
};

// torch.optim.SGD:  g = grad + wd·p;  b = first ? g : μ·b + (1 - dampening)·g;
//                   d = nesterov ? g + μ·b : b;  p -= lr·d   (b and d only with momentum μ ≠ 0)
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> parameters, const SgdOptions& options = {});
  explicit SGD(std::vector<ParamGroup<SgdOptions>> groups);
  void step() override;
  StateDict state_dict() const override;
  void check_state_dict(const StateDict& state) const override;
  // The options in force for a group: lr is its current learning rate (set_lr, a loaded state).
  SgdOptions options(size_t group = 0) const {
    SgdOptions current = options_.at(group);
    current.lr = lrs_.at(group);
    return current;
  }

 protected:
  void apply_state_dict(const StateDict& state) override;

 private:
  std::vector<SgdOptions> options_;  // per group
  std::vector<Tensor> momentum_buffers_;  // undefined until a parameter's first step
};

// ---------------------------------------------------------------- Adam, AdamW

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
};

// torch.optim.Adam (and AdamW with decoupled weight decay), per parameter with its own step t:
//   g = grad + wd·p (Adam)  or  p *= 1 - lr·wd (AdamW)
//   m = β1 m + (1 - β1) g;  v = β2 v + (1 - β2) g²
//   p -= lr / (1 - β1^t) · m / (√v / √(1 - β2^t) + ε)
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> parameters, const AdamOptions& options = {});
  explicit Adam(std::vector<ParamGroup<AdamOptions>> groups);
  void step() override;
  StateDict state_dict() const override;
  void check_state_dict(const StateDict& state) const override;
  // The options in force for a group: lr is its current learning rate (set_lr, a loaded state).
  AdamOptions options(size_t group = 0) const {
    AdamOptions current = options_.at(group);
    current.lr = lrs_.at(group);
    return current;
  }
  // The number of updates parameter i has had (0 before its first).
  int64_t step_count(size_t parameter) const { return steps_.at(parameter); }

 protected:
  Adam(std::vector<ParamGroup<AdamOptions>> groups, bool decoupled, const char* name);
  void apply_state_dict(const StateDict& state) override;

 private:
  std::vector<AdamOptions> options_;  // per group
  bool decoupled_;
  std::vector<int64_t> steps_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;  // undefined until a parameter's first step
};

// AdamW: Adam with decoupled weight decay (Loshchilov & Hutter). PyTorch's default decay is 0.01.
struct AdamWOptions : AdamOptions {
  AdamWOptions() { weight_decay = 1e-2; }
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> parameters, const AdamWOptions& options = {});
  explicit AdamW(std::vector<ParamGroup<AdamWOptions>> groups);
};

// ---------------------------------------------------------------- gradient clipping

// Scales the gradients of `parameters` together so that their global 2-norm is at most
// `max_norm` (torch.nn.utils.clip_grad_norm_: every gradient times min(1, max_norm / (norm +
// 1e-6))). Returns the norm before clipping as a 0-d tensor on the parameters' device, so no
// host synchronisation is needed; call .item() to read it. Parameters without a gradient are
// ignored.
// A NaN or infinite norm scales every gradient by NaN (as PyTorch does by default). With
// error_if_nonfinite it raises a tg::Error instead, naming the first parameter whose gradient
// is not finite, and leaves the gradients as they were; that reads the norm on the host (on a
// GPU: waits for the device).
Tensor clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm,
                      bool error_if_nonfinite = false);

// Clamps every gradient element of `parameters` to [-clip_value, clip_value], in place
// (torch.nn.utils.clip_grad_value_). Parameters without a gradient are skipped.
void clip_grad_value(const std::vector<Tensor>& parameters, double clip_value);

// ---------------------------------------------------------------- learning-rate schedules
// Closed-form schedules: lr(step) depends on the step alone, so a checkpoint's step restores it.
// Use: optimizer.set_lr(schedule.lr(step)) before each optimizer.step().

class Schedule {
 public:
  virtual ~Schedule() = default;
  virtual double lr(int64_t step) const = 0;
};

// torch.optim.lr_scheduler.LinearLR: base_lr · f, with f going linearly from start_factor at step 0
// to end_factor at step total_steps, and staying there afterwards. A warm-up is
// LinearSchedule(lr, 0.01, 1.0, warmup_steps); a linear decay LinearSchedule(lr, 1.0, 0.0, n).
class LinearSchedule : public Schedule {
 public:
  LinearSchedule(double base_lr, double start_factor, double end_factor, int64_t total_steps);
  double lr(int64_t step) const override;

 private:
  double base_lr_, start_factor_, end_factor_;
  int64_t total_steps_;
};

// torch.optim.lr_scheduler.CosineAnnealingLR's closed form:
//   lr(t) = min_lr + (base_lr - min_lr) · (1 + cos(π t / total_steps)) / 2   for t ≤ total_steps,
// and min_lr afterwards (PyTorch's formula would rise again after total_steps).
class CosineSchedule : public Schedule {
 public:
  CosineSchedule(double base_lr, int64_t total_steps, double min_lr = 0);
  double lr(int64_t step) const override;

 private:
  double base_lr_, min_lr_;
  int64_t total_steps_;
};

// ---------------------------------------------------------------- schedulers with state
// (src/optim/schedulers.cpp) Each drives an optimizer's learning rates, group by group, and has a
// state dict, so TrainingState::scheduler puts it in checkpoints and a resumed run continues
// the schedule where it stopped. Call step() after optimizer.step(), as in PyTorch.

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual StateDict state_dict() const = 0;
  // Throws a tg::Error naming the first entry that does not fit this scheduler and optimizer.
  virtual void check_state_dict(const StateDict& state) const = 0;
  // check_state_dict, then restores. The optimizer's rates come back with its own state dict.
  void load_state_dict(const StateDict& state);

 protected:
  virtual void apply_state_dict(const StateDict& state) = 0;
};

// A schedule where each group's rate is a function of its base rate (its lr when the scheduler
// was made) and the number of step() calls so far. The constructor sets the step-0 rates.
// State: "step" and "base_lr.k" per group.
class EpochScheduler : public Scheduler {
 public:
  EpochScheduler(Optimizer& optimizer, const char* name);
  void step();
  int64_t last_step() const { return step_; }
  double base_lr(size_t group) const { return base_lrs_.at(group); }
  StateDict state_dict() const override;
  void check_state_dict(const StateDict& state) const override;
  // The rate of a group with base rate `base_lr` after `step` steps.
  virtual double lr_at(double base_lr, int64_t step) const = 0;

 protected:
  void apply_state_dict(const StateDict& state) override;
  void apply_rates();  // sets every group's lr to lr_at(base, step_)

  Optimizer& optimizer_;
  const char* name_;
  std::vector<double> base_lrs_;
  int64_t step_ = 0;
};

// torch.optim.lr_scheduler.StepLR: lr = base·gamma^⌊step / step_size⌋.
class StepLR : public EpochScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);
  double lr_at(double base_lr, int64_t step) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// Linear warm-up, then cosine decay to min_lr (transformers' get_cosine_schedule_with_warmup,
// with a floor): lr = base·t/warmup for t < warmup_steps, then
// min_lr + (base - min_lr)·(1 + cos(π·min(1, (t - warmup)/(total - warmup))))/2, and min_lr
// after total_steps. warmup_steps may be 0; total_steps > warmup_steps.
class WarmupCosineLR : public EpochScheduler {
 public:
  WarmupCosineLR(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps,
                 double min_lr = 0);
  double lr_at(double base_lr, int64_t step) const override;

 private:
  int64_t warmup_steps_, total_steps_;
  double min_lr_;
};

// torch.optim.lr_scheduler.ReduceLROnPlateau with its defaults: after more than `patience`
// steps without improvement of the metric (relative to `threshold`: better means
// metric < best·(1 - threshold) in min mode with relative thresholds), every group's lr becomes
// max(lr·factor, min_lr) (skipped when that changes it by at most eps), followed by `cooldown`
// steps in which bad steps are not counted. State: best, bad steps, cooldown left, steps.
struct PlateauOptions {
  enum class Mode { min, max } mode = Mode::min;
  double factor = 0.1;
  int64_t patience = 10;
  double threshold = 1e-4;
  enum class ThresholdMode { rel, abs } threshold_mode = ThresholdMode::rel;
  int64_t cooldown = 0;
  double min_lr = 0;
  double eps = 1e-8;
};

class ReduceLROnPlateau : public Scheduler {
 public:
  explicit ReduceLROnPlateau(Optimizer& optimizer, const PlateauOptions& options = {});
  // One evaluation: `metric` is the monitored value (a validation loss in min mode).
  void step(double metric);
  double best() const { return best_; }
  int64_t bad_steps() const { return bad_steps_; }
  int64_t cooldown_left() const { return cooldown_left_; }
  StateDict state_dict() const override;
  void check_state_dict(const StateDict& state) const override;

 protected:
  void apply_state_dict(const StateDict& state) override;

 private:
  bool is_better(double metric) const;

  Optimizer& optimizer_;
  PlateauOptions options_;
  double best_;
  int64_t bad_steps_ = 0, cooldown_left_ = 0, steps_ = 0;
};

}  // namespace tg::optim
