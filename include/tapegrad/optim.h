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

class Optimizer {
 public:
  Optimizer(std::vector<Tensor> parameters, double lr, const char* name);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  virtual void step() = 0;
  // Forgets every parameter's gradient (the next backward starts afresh).
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr);  // for schedules
  const std::vector<Tensor>& parameters() const { return parameters_; }
  const char* name() const { return name_; }

  // The optimizer's hyperparameters and per-parameter state, named by parameter index
  // ("lr", "state.3.exp_avg"); the tensors are the live ones.
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

  std::vector<Tensor> parameters_;
  double lr_;
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
  void step() override;
  StateDict state_dict() const override;
  void check_state_dict(const StateDict& state) const override;
  // The options in force: lr is the current learning rate (set_lr, a loaded state).
  SgdOptions options() const {
    SgdOptions current = options_;
    current.lr = lr_;
    return current;
  }

 protected:
  void apply_state_dict(const StateDict& state) override;

 private:
  SgdOptions options_;
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
  void step() override;
  StateDict state_dict() const override;
  void check_state_dict(const StateDict& state) const override;
  // The options in force: lr is the current learning rate (set_lr, a loaded state).
  AdamOptions options() const {
    AdamOptions current = options_;
    current.lr = lr_;
    return current;
  }
  // The number of updates parameter i has had (0 before its first).
  int64_t step_count(size_t parameter) const { return steps_.at(parameter); }

 protected:
  Adam(std::vector<Tensor> parameters, const AdamOptions& options, bool decoupled,
       const char* name);
  void apply_state_dict(const StateDict& state) override;

 private:
  AdamOptions options_;
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

}  // namespace tg::optim
