// src/cpu/cpu_norm.cpp — the fused batch norm on the CPU: the training-mode forward (statistics
// and normalised output) and its backward, each a task per run of channels. The math of a channel
// and of an element is src/kernels/norm_math.h's, shared with the CUDA backend.
//
// A task does all passes over its channels before moving on: one channel of a CNN activation
// (batch · height · width values, 400 KB for the CNN example's first layer) stays in the core's
// L2 cache, so only the first pass reads main memory.
//
// Sums run in double over kLanes partial sums — lane l takes the values at offsets ≡ l (mod
// kLanes) within each contiguous run of a channel — added up in lane order at the end. The order
// is fixed by the shapes alone (not by the thread count, nor by the vector width the compiler
// picks), and the lanes vectorise.
#include <algorithm>

#include "../kernels/norm_math.h"
#include "cpu_backend.h"
#include "thread_pool.h"

namespace tg {

namespace k = kernels;
using k::SumType;

namespace {

constexpr int kLanes = 8;

struct Lanes {
  SumType lane[kLanes] = {};
  SumType total() const {
    SumType s = 0;
    for (int l = 0; l < kLanes; ++l) s += lane[l];
    return s;
  }
};

// Calls add(i, l) for i in [0, n), value i going to lane l = i mod kLanes (the lanes of a full
// group of kLanes values vectorise).
template <class Add>
inline void for_lanes(int64_t n, Add add) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) add(i + l, l);
  for (int l = 0; i + l < n; ++l) add(i + l, l);
}

// lanes += term(p[i]) for i in [0, n).
template <class T, class Term>
inline void add_run(const T* p, int64_t n, Lanes& lanes, Term term) {
  for_lanes(n, [&](int64_t i, int l) { lanes.lane[l] += term(p[i]); });
}

// Both sums of the backward in one pass: Σ grad and Σ grad·(x - mean).
template <class T>
inline void add_grad_run(const T* grad, const T* x, SumType mean, int64_t n, Lanes& sum_grad,
                         Lanes& sum_centered) {
  for_lanes(n, [&](int64_t i, int l) {
    const SumType g = grad[i];
    sum_grad.lane[l] += g;
    sum_centered.lane[l] += g * (static_cast<SumType>(x[i]) - mean);
  });
}

// Splits the channels over the threads, a whole number of channels per task.
template <class Body>
void for_channels(const Backend::BatchNormLayout& layout, int64_t passes, Body body) {
  const int64_t work = passes * layout.batch * layout.inner;
  cpu::parallel_for(layout.channels, cpu::units_per_grain(work), [&](int64_t first, int64_t end) {
    for (int64_t c = first; c < end; ++c) body(c);
  });
}

}  // namespace

// mean = Σx/m, var = Σ(x - mean)²/m, invstd = 1/√(var + eps), y = (x - mean)·invstd·w + b
void CpuBackend::batch_norm(DType dtype, const void* x_, const void* weight_, const void* bias_,
                            void* y_, void* mean_, void* var_, void* invstd_,
                            const BatchNormLayout& layout) {
  dispatch_floating(dtype, "batch_norm", [&](auto zero) {
    using T = decltype(zero);
    const T* x = static_cast<const T*>(x_);
    const T* weight = static_cast<const T*>(weight_);
    const T* bias = static_cast<const T*>(bias_);
    T* y = static_cast<T*>(y_);
    const int64_t inner = layout.inner, stride = layout.channels * inner;
    const double m = static_cast<double>(layout.batch * inner);
    for_channels(layout, 3, [&](int64_t c) {
      const T* xc = x + c * inner;
      Lanes sum;
      for (int64_t b = 0; b < layout.batch; ++b)
        add_run(xc + b * stride, inner, sum, [](T v) { return static_cast<SumType>(v); });
      const SumType mean = sum.total() / m;
      Lanes squares;
      for (int64_t b = 0; b < layout.batch; ++b)
        add_run(xc + b * stride, inner, squares, [mean](T v) {
          const SumType d = static_cast<SumType>(v) - mean;
          return d * d;
        });
      const SumType var = squares.total() / m;
      const double invstd = k::batch_norm_invstd(var, layout.eps);
      static_cast<T*>(mean_)[c] = static_cast<T>(mean);
      static_cast<T*>(var_)[c] = static_cast<T>(var);
      static_cast<T*>(invstd_)[c] = static_cast<T>(invstd);
      const k::BatchNormAffine<T> affine = k::batch_norm_affine(mean, invstd, weight, bias, c);
      for (int64_t b = 0; b < layout.batch; ++b) {
        const T* in = xc + b * stride;
        T* out = y + c * inner + b * stride;
#pragma omp simd
        for (int64_t r = 0; r < inner; ++r) out[r] = k::batch_norm_value(in[r], affine);
      }
    });
  });
}

// grad_bias = Σ grad, grad_weight = invstd·Σ grad·(x - mean),
// grad_x = grad·k_grad + (x - mean)·k_centered + k_constant (norm_math.h)
void CpuBackend::batch_norm_backward(DType dtype, const void* grad_y_, const void* x_,
                                     const void* weight_, const void* mean_, const void* invstd_,
                                     void* grad_x_, void* grad_weight_, void* grad_bias_,
                                     const BatchNormLayout& layout) {
  dispatch_floating(dtype, "batch_norm_backward", [&](auto zero) {
    using T = decltype(zero);
    const T* grad = static_cast<const T*>(grad_y_);
    const T* x = static_cast<const T*>(x_);
    const T* weight = static_cast<const T*>(weight_);
    T* grad_x = static_cast<T*>(grad_x_);
    const int64_t inner = layout.inner, stride = layout.channels * inner;
    const int64_t m = layout.batch * inner;
    for_channels(layout, grad_x ? 2 : 1, [&](int64_t c) {
      const T mean = static_cast<const T*>(mean_)[c];
      const T invstd = static_cast<const T*>(invstd_)[c];
      Lanes sum_grad, sum_centered;
      for (int64_t b = 0; b < layout.batch; ++b) {
        const int64_t at = c * inner + b * stride;
        add_grad_run(grad + at, x + at, static_cast<SumType>(mean), inner, sum_grad,
                     sum_centered);
      }
      const k::BatchNormGrad<T> coefficients = k::batch_norm_grad(
          mean, invstd, weight, c, sum_grad.total(), sum_centered.total(), m);
      if (grad_weight_)
        static_cast<T*>(grad_weight_)[c] = static_cast<T>(coefficients.grad_weight);
      if (grad_bias_) static_cast<T*>(grad_bias_)[c] = static_cast<T>(coefficients.grad_bias);
      if (!grad_x) return;
      for (int64_t b = 0; b < layout.batch; ++b) {
        const int64_t at = c * inner + b * stride;
        const T* g = grad + at;
        const T* in = x + at;
        T* out = grad_x + at;
#pragma omp simd
        for (int64_t r = 0; r < inner; ++r)
          out[r] = k::batch_norm_grad_x(g[r], in[r], coefficients);
      }
    });
  });
}

}  // namespace tg
