// src/kernels/optimizer_math.h — the per-element math of the fused optimizer updates.
//
// Shared by the CPU loops (src/cpu/cpu_optim.cpp) and the CUDA kernels, so both backends
// update every element with the same formula. The scalars that are the same for every element
// (bias corrections, step sizes) are computed once on the host and passed in.
#pragma once

#include <cmath>

#include "elementwise_math.h"  // TG_HOST_DEVICE
#include "tapegrad/backend.h"   // AdamStep, SgdStep

namespace tg::kernels {

// One Adam / AdamW update of one element, in PyTorch 1.13's order of operations
// (torch.optim.Adam / AdamW, the single-tensor path used on the CPU):
//   g  = grad + weight_decay * p                    (Adam's L2 penalty; 0 for AdamW)
//   p  = p * (1 - lr * weight_decay)                 (AdamW's decoupled decay; 1 for Adam)
//   m  = β1 m + (1 - β1) g
//   v  = β2 v + (1 - β2) g²
//   p  = p - step_size * m / (√v · (1 / √(1 - β2^t)) + ε)   step_size = lr / (1 - β1^t)
// PyTorch divides √v by √(1 - β2^t); multiplying by its reciprocal, computed once per step,
// leaves one division per element (the divider is what bounds this loop) and differs from
// PyTorch's rounding by at most an ulp of the denominator.
template <class T>
struct AdamScalars {
  T beta1, one_minus_beta1, beta2, one_minus_beta2;
  T l2_weight_decay;     // Adam's weight_decay, else 0
  T decay_factor;        // AdamW's 1 - lr * weight_decay, else 1
  T step_size;           // lr / (1 - β1^t)
  T inv_bias_correction2_sqrt;  // 1 / √(1 - β2^t)
  T eps;
};

// The scalars of one Adam step, computed on the host in double and rounded to T once, the same
// for every backend.
template <class T>
inline AdamScalars<T> adam_scalars(const AdamStep& step) {
  const double t = static_cast<double>(step.step);
  AdamScalars<T> s;
  s.beta1 = static_cast<T>(step.beta1);
  s.one_minus_beta1 = static_cast<T>(1 - step.beta1);
  s.beta2 = static_cast<T>(step.beta2);
  s.one_minus_beta2 = static_cast<T>(1 - step.beta2);
  s.l2_weight_decay = static_cast<T>(step.decoupled_weight_decay ? 0.0 : step.weight_decay);
  s.decay_factor =
      static_cast<T>(step.decoupled_weight_decay ? 1 - step.lr * step.weight_decay : 1.0);
  s.step_size = static_cast<T>(step.lr / (1 - std::pow(step.beta1, t)));
  s.inv_bias_correction2_sqrt = static_cast<T>(1 / std::sqrt(1 - std::pow(step.beta2, t)));
  s.eps = static_cast<T>(step.eps);
  return s;
}

template <class T>
TG_HOST_DEVICE inline void adam_update(T& p, T grad, T& m, T& v, const AdamScalars<T>& s) {
  T g = grad + s.l2_weight_decay * p;
  T decayed = p * s.decay_factor;
  T m_new = s.beta1 * m + s.one_minus_beta1 * g;
  T v_new = s.beta2 * v + s.one_minus_beta2 * g * g;
  T denom = sqrt(v_new) * s.inv_bias_correction2_sqrt + s.eps;
  m = m_new;
  v = v_new;
  p = decayed - s.step_size * m_new / denom;
}

// One SGD update of one element, PyTorch's torch.optim.SGD:
//   g = grad + weight_decay * p
//   b = first step ? g : momentum * b + (1 - dampening) * g      (only when momentum != 0)
//   d = nesterov ? g + momentum * b : b                          (d = g when momentum == 0)
//   p = p - lr * d
template <class T>
struct SgdScalars {
  T lr, momentum, one_minus_dampening, weight_decay;
  bool nesterov, first_step;
};

template <class T>
inline SgdScalars<T> sgd_scalars(const SgdStep& step) {
  SgdScalars<T> s;
  s.lr = static_cast<T>(step.lr);
  s.momentum = static_cast<T>(step.momentum);
  s.one_minus_dampening = static_cast<T>(1 - step.dampening);
  s.weight_decay = static_cast<T>(step.weight_decay);
  s.nesterov = step.nesterov;
  s.first_step = step.first_step;
  return s;
}

template <class T>
TG_HOST_DEVICE inline void sgd_update_momentum(T& p, T grad, T& b, const SgdScalars<T>& s) {
  T g = grad + s.weight_decay * p;
  T b_new = s.first_step ? g : s.momentum * b + s.one_minus_dampening * g;
  T d = s.nesterov ? g + s.momentum * b_new : b_new;
  b = b_new;
  p = p - s.lr * d;
}

template <class T>
TG_HOST_DEVICE inline void sgd_update(T& p, T grad, const SgdScalars<T>& s) {
  T g = grad + s.weight_decay * p;
  p = p - s.lr * g;
}

}  // namespace tg::kernels
