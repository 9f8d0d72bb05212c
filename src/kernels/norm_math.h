// src/kernels/norm_math.h — the per-channel and per-element math of the fused batch norm
// (docs/math.md "batch_norm, layer_norm"), shared by the CPU loops (src/cpu/cpu_norm.cpp) and the
// CUDA kernels (src/cuda/cuda_norm.cu), so both backends compute each channel's statistics and
// each element with the same formulas; only the order of the sums differs.
//
// A channel's m values are summed in double (SumType), in two passes: first Σx for the mean,
// then Σ(x - mean)² for the variance, which cannot lose the digits that E[x²] - mean² does when
// the mean is large against the spread. The backward sums Σ grad and Σ grad·(x - mean) alike.
#pragma once

#include <cmath>
#include <cstdint>

#include "elementwise_math.h"  // TG_HOST_DEVICE
#include "row_math.h"          // SumType

namespace tg::kernels {

// Where value k of channel c lies in x viewed as [batch, channels, inner]: k = b·inner + r reads
// x[b, c, r].
TG_HOST_DEVICE inline int64_t channel_element(int64_t k, int64_t c, int64_t channels,
                                              int64_t inner) {
  const int64_t b = k / inner;
  return (b * channels + c) * inner + (k - b * inner);
}

// 1/√(var + eps) of a channel's biased variance, in double.
TG_HOST_DEVICE inline double batch_norm_invstd(SumType var, double eps) {
  return 1.0 / sqrt(var + eps);
}

// The forward of one channel: y = (x - mean)·scale + shift, scale = weight·invstd, shift = bias
// (weight 1 and bias 0 when absent), each rounded to T once.
template <class T>
struct BatchNormAffine {
  T mean, scale, shift;
};

template <class T>
TG_HOST_DEVICE inline BatchNormAffine<T> batch_norm_affine(SumType mean, double invstd,
                                                           const T* weight, const T* bias,
                                                           int64_t c) {
  const double w = weight ? static_cast<double>(weight[c]) : 1.0;
  return {static_cast<T>(mean), static_cast<T>(w * invstd), bias ? bias[c] : T(0)};
}

template <class T> TG_HOST_DEVICE inline T batch_norm_value(T x, BatchNormAffine<T> a) {
  return (x - a.mean) * a.scale + a.shift;
}

// The backward of one channel, from sum_grad = Σ grad and sum_grad_centered = Σ grad·(x - mean)
// over its m values (x̂ = (x - mean)·invstd):
//   grad_bias = Σ grad      grad_weight = Σ grad·x̂ = invstd·sum_grad_centered
//   grad_x = weight·invstd·(grad - grad_bias/m - x̂·grad_weight/m)
//          = grad·k_grad + (x - mean)·k_centered + k_constant
// with k_grad = weight·invstd, k_centered = -k_grad·invstd·grad_weight/m and
// k_constant = -k_grad·grad_bias/m, computed in double and rounded to T once.
template <class T>
struct BatchNormGrad {
  T mean, k_grad, k_centered, k_constant;
  SumType grad_weight, grad_bias;
};

template <class T>
TG_HOST_DEVICE inline BatchNormGrad<T> batch_norm_grad(T mean, T invstd, const T* weight,
                                                       int64_t c, SumType sum_grad,
                                                       SumType sum_grad_centered, int64_t m) {
  const double s = static_cast<double>(invstd);
  const double k_grad = (weight ? static_cast<double>(weight[c]) : 1.0) * s;
  const double grad_weight = s * sum_grad_centered;
  const double inv_m = 1.0 / static_cast<double>(m);
  return {mean,
          static_cast<T>(k_grad),
          static_cast<T>(-k_grad * s * grad_weight * inv_m),
          static_cast<T>(-k_grad * sum_grad * inv_m),
          grad_weight,
          sum_grad};
}

template <class T> TG_HOST_DEVICE inline T batch_norm_grad_x(T grad, T x, BatchNormGrad<T> k) {
  return grad * k.k_grad + (x - k.mean) * k.k_centered + k.k_constant;
}

}  // namespace tg::kernels
