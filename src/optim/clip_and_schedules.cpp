// src/optim/clip_and_schedules.cpp — global-norm gradient clipping and learning-rate schedules.
#include <algorithm>
#include <cmath>
#include <limits>

#include "tapegrad/error.h"
#include "tapegrad/ops.h"
#include "tapegrad/optim.h"
#include "tapegrad/tape.h"

namespace tg::optim {

// norm = √(Σ_p Σ g²)     g *= min(1, max_norm / (norm + 1e-6))
// Built from tensor ops, so it runs on any backend and never reads a value back to the host.
Tensor clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm,
                      bool error_if_nonfinite) {
  check(max_norm > 0 && std::isfinite(max_norm), "clip_grad_norm",
        "max_norm must be positive and finite, got ", max_norm);
  NoGrad no_grad;
  Tensor total;
  for (const Tensor& p : parameters) {
    Tensor g = p.defined() ? p.grad() : Tensor();
    if (!g.defined()) continue;
    Tensor squares = sum(square(g));
    if (total.defined()) {
      check(squares.dtype() == total.dtype() && squares.device() == total.device(),
            "clip_grad_norm", "gradients mix dtypes or devices: ", total.dtype(), " on ",
            total.device(), " and ", squares.dtype(), " on ", squares.device());
      total = add(total, squares);
    } else {
      total = squares;
    }
  }
  if (!total.defined()) return scalar(0.0);
  Tensor norm = sqrt(total);
  if (error_if_nonfinite && !std::isfinite(norm.item())) {
    for (size_t k = 0; k < parameters.size(); ++k) {
      Tensor g = parameters[k].defined() ? parameters[k].grad() : Tensor();
      if (!g.defined() || all(isfinite(g)).item() != 0) continue;
      const std::string& name = parameters[k].name();
      fail("clip_grad_norm", "the total norm of the gradients is ", norm.item(),
           ", so they cannot be clipped: parameter ", k, name.empty() ? "" : " '" + name + "'", " ",
           parameters[k].shape(), " has a gradient with ", any(isnan(g)).item() != 0 ? "NaN" : "infinite",
           " values (run with tg::AnomalyMode or TAPEGRAD_ANOMALY=1 to find the op that made them). "
           "The gradients are left unscaled");
    }
    fail("clip_grad_norm", "the total norm of the gradients is ", norm.item(),
         " (their squares overflow), so they cannot be clipped; the gradients are left unscaled");
  }
  Tensor coefficient =
      clamp(div(max_norm, add(norm, 1e-6)), -std::numeric_limits<double>::infinity(), 1.0);
  for (const Tensor& p : parameters) {
    Tensor g = p.defined() ? p.grad() : Tensor();
    if (!g.defined()) continue;
    Tensor param = p;
    param.set_grad(mul(g, coefficient));
  }
  return norm;
}

// ---------------------------------------------------------------- schedules

LinearSchedule::LinearSchedule(double base_lr, double start_factor, double end_factor,
                               int64_t total_steps)
    : base_lr_(base_lr), start_factor_(start_factor), end_factor_(end_factor),
      total_steps_(total_steps) {
  check(total_steps > 0, "LinearSchedule", "total_steps must be positive, got ", total_steps);
  check(base_lr >= 0 && start_factor >= 0 && end_factor >= 0, "LinearSchedule",
        "the learning rate and factors must be >= 0");
}

double LinearSchedule::lr(int64_t step) const {
  double progress = static_cast<double>(std::clamp<int64_t>(step, 0, total_steps_)) /
                    static_cast<double>(total_steps_);
  return base_lr_ * (start_factor_ + (end_factor_ - start_factor_) * progress);
}

CosineSchedule::CosineSchedule(double base_lr, int64_t total_steps, double min_lr)
    : base_lr_(base_lr), min_lr_(min_lr), total_steps_(total_steps) {
  check(total_steps > 0, "CosineSchedule", "total_steps must be positive, got ", total_steps);
  check(base_lr >= 0 && min_lr >= 0, "CosineSchedule", "learning rates must be >= 0");
}

double CosineSchedule::lr(int64_t step) const {
  double t = static_cast<double>(std::clamp<int64_t>(step, 0, total_steps_));
  const double pi = 3.14159265358979323846;
  return min_lr_ +
         (base_lr_ - min_lr_) * (1 + std::cos(pi * t / static_cast<double>(total_steps_))) / 2;
}

}  // namespace tg::optim
