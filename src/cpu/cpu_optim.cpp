// src/cpu/cpu_optim.cpp — the fused optimizer updates: one pass over each parameter, reading
// param, grad and the optimizer state once and writing them once (src/kernels/optimizer_math.h
// has the per-element math).
#include <cmath>

#include "../kernels/optimizer_math.h"
#include "cpu_backend.h"
#include "simd.h"
#include "thread_pool.h"

namespace tg {

namespace k = kernels;

using cpu::kParallelGrain;  // thread_pool.h

// param, grad, exp_avg, exp_avg_sq: [n]
void CpuBackend::adam_step(DType dtype, void* param_, const void* grad_, void* exp_avg_,
                           void* exp_avg_sq_, int64_t n, const AdamStep& step) {
  dispatch_floating(dtype, "adam_step", [&](auto zero) {
    using T = decltype(zero);
    T* p = static_cast<T*>(param_);
    const T* g = static_cast<const T*>(grad_);
    T* m = static_cast<T*>(exp_avg_);
    T* v = static_cast<T*>(exp_avg_sq_);
    const k::AdamScalars<T> s = k::adam_scalars<T>(step);
    cpu::parallel_for(n, kParallelGrain, [&](int64_t begin, int64_t end) {
      if (cpu::simd::adam(dtype, p + begin, g + begin, m + begin, v + begin, end - begin, step))
        return;
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) k::adam_update(p[i], g[i], m[i], v[i], s);
    });
  });
}

// param, grad, momentum_buffer: [n]
void CpuBackend::sgd_step(DType dtype, void* param_, const void* grad_, void* momentum_buffer,
                          int64_t n, const SgdStep& step) {
  dispatch_floating(dtype, "sgd_step", [&](auto zero) {
    using T = decltype(zero);
    T* p = static_cast<T*>(param_);
    const T* g = static_cast<const T*>(grad_);
    const k::SgdScalars<T> s = k::sgd_scalars<T>(step);
    if (step.momentum == 0) {
      cpu::parallel_for(n, kParallelGrain, [&](int64_t begin, int64_t end) {
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) k::sgd_update(p[i], g[i], s);
      });
      return;
    }
    check(momentum_buffer != nullptr, "sgd_step", "momentum ", step.momentum,
          " needs a momentum buffer");
    T* b = static_cast<T*>(momentum_buffer);
    cpu::parallel_for(n, kParallelGrain, [&](int64_t begin, int64_t end) {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) k::sgd_update_momentum(p[i], g[i], b[i], s);
    });
  });
}

}  // namespace tg
