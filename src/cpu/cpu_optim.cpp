// src/cpu/cpu_optim.cpp — the fused optimizer updates: one pass over each parameter, reading
// param, grad and the optimizer state once and writing them once (src/kernels/optimizer_math.h
// has the per-element math).
#include <cmath>

#include "../kernels/optimizer_math.h"
#include "cpu_backend.h"

namespace tg {

namespace k = kernels;

// param, grad, exp_avg, exp_avg_sq: [n]
void CpuBackend::adam_step(DType dtype, void* param_, const void* grad_, void* exp_avg_,
                           void* exp_avg_sq_, int64_t n, const AdamStep& step) {
  dispatch_floating(dtype, "adam_step", [&](auto zero) {
    using T = decltype(zero);
    T* p = static_cast<T*>(param_);
    const T* g = static_cast<const T*>(grad_);
    T* m = static_cast<T*>(exp_avg_);
    T* v = static_cast<T*>(exp_avg_sq_);
    const double t = static_cast<double>(step.step);
    k::AdamScalars<T> s;
    s.beta1 = static_cast<T>(step.beta1);
    s.one_minus_beta1 = static_cast<T>(1 - step.beta1);
    s.beta2 = static_cast<T>(step.beta2);
    s.one_minus_beta2 = static_cast<T>(1 - step.beta2);
    s.l2_weight_decay = static_cast<T>(step.decoupled_weight_decay ? 0.0 : step.weight_decay);
    s.decay_factor =
        static_cast<T>(step.decoupled_weight_decay ? 1 - step.lr * step.weight_decay : 1.0);
    s.step_size = static_cast<T>(step.lr / (1 - std::pow(step.beta1, t)));
    s.bias_correction2_sqrt = static_cast<T>(std::sqrt(1 - std::pow(step.beta2, t)));
    s.eps = static_cast<T>(step.eps);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) k::adam_update(p[i], g[i], m[i], v[i], s);
  });
}

// param, grad, momentum_buffer: [n]
void CpuBackend::sgd_step(DType dtype, void* param_, const void* grad_, void* momentum_buffer,
                          int64_t n, const SgdStep& step) {
  dispatch_floating(dtype, "sgd_step", [&](auto zero) {
    using T = decltype(zero);
    T* p = static_cast<T*>(param_);
    const T* g = static_cast<const T*>(grad_);
    k::SgdScalars<T> s;
    s.lr = static_cast<T>(step.lr);
    s.momentum = static_cast<T>(step.momentum);
    s.one_minus_dampening = static_cast<T>(1 - step.dampening);
    s.weight_decay = static_cast<T>(step.weight_decay);
    s.nesterov = step.nesterov;
    s.first_step = step.first_step;
    if (step.momentum == 0) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) k::sgd_update(p[i], g[i], s);
      return;
    }
    check(momentum_buffer != nullptr, "sgd_step", "momentum ", step.momentum,
          " needs a momentum buffer");
    T* b = static_cast<T*>(momentum_buffer);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) k::sgd_update_momentum(p[i], g[i], b[i], s);
  });
}

}  // namespace tg
