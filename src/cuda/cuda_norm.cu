// src/cuda/cuda_norm.cu — the fused batch norm on the GPU (src/cpu/cpu_norm.cpp is the CPU's
// version; the math of a channel and of an element is src/kernels/norm_math.h's): a block per
// channel, each thread summing a strided share of the channel's values in double, combined by
// CUB's block reduction (a fixed order: results repeat bit for bit, and equal the CPU's up to the
// order of the sums). The forward makes its two passes for the statistics and the pass for y in
// one kernel, the backward its pass for the sums and the pass for grad_x in one.
#include "../kernels/norm_math.h"
#include "cuda_common.cuh"

namespace tg::cuda {

namespace {

namespace k = kernels;
using k::SumType;
using Layout = Backend::BatchNormLayout;

constexpr int kNormThreads = 256;

template <class T>
__global__ void __launch_bounds__(kNormThreads, 1) batch_norm_kernel(
    const T* x, const T* weight, const T* bias, T* y, T* mean_out, T* var_out, T* invstd_out,
    Layout layout) {
  __shared__ alignas(16) unsigned char shared[kRowSharedBytes];
  BlockRow<kNormThreads> row{shared};
  const int64_t m = layout.batch * layout.inner;
  const double inv_m = 1.0 / static_cast<double>(m);
  for (int64_t c = blockIdx.x; c < layout.channels; c += gridDim.x) {
    auto at = [&](int64_t i) { return k::channel_element(i, c, layout.channels, layout.inner); };
    SumType sum = 0;
    for (int64_t i = threadIdx.x; i < m; i += kNormThreads) sum += static_cast<SumType>(x[at(i)]);
    const SumType mean = row.reduce_all(sum, Plus{}) * inv_m;
    SumType squares = 0;
    for (int64_t i = threadIdx.x; i < m; i += kNormThreads) {
      const SumType d = static_cast<SumType>(x[at(i)]) - mean;
      squares += d * d;
    }
    const SumType var = row.reduce_all(squares, Plus{}) * inv_m;
    const double invstd = k::batch_norm_invstd(var, layout.eps);
    if (threadIdx.x == 0) {
      mean_out[c] = static_cast<T>(mean);
      var_out[c] = static_cast<T>(var);
      invstd_out[c] = static_cast<T>(invstd);
    }
    const k::BatchNormAffine<T> affine = k::batch_norm_affine(mean, invstd, weight, bias, c);
    for (int64_t i = threadIdx.x; i < m; i += kNormThreads) {
      const int64_t e = at(i);
      y[e] = k::batch_norm_value(x[e], affine);
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kNormThreads, 1) batch_norm_backward_kernel(
    const T* grad, const T* x, const T* weight, const T* mean_in, const T* invstd_in, T* grad_x,
    T* grad_weight, T* grad_bias, Layout layout) {
  __shared__ alignas(16) unsigned char shared[kRowSharedBytes];
  BlockRow<kNormThreads> row{shared};
  const int64_t m = layout.batch * layout.inner;
  for (int64_t c = blockIdx.x; c < layout.channels; c += gridDim.x) {
    auto at = [&](int64_t i) { return k::channel_element(i, c, layout.channels, layout.inner); };
    const T mean = mean_in[c];
    SumType sum_grad = 0, sum_centered = 0;
    for (int64_t i = threadIdx.x; i < m; i += kNormThreads) {
      const int64_t e = at(i);
      const SumType g = grad[e];
      sum_grad += g;
      sum_centered += g * (static_cast<SumType>(x[e]) - static_cast<SumType>(mean));
    }
    sum_grad = row.reduce_all(sum_grad, Plus{});
    sum_centered = row.reduce_all(sum_centered, Plus{});
    const k::BatchNormGrad<T> coefficients =
        k::batch_norm_grad(mean, invstd_in[c], weight, c, sum_grad, sum_centered, m);
    if (threadIdx.x == 0) {
      if (grad_weight) grad_weight[c] = static_cast<T>(coefficients.grad_weight);
      if (grad_bias) grad_bias[c] = static_cast<T>(coefficients.grad_bias);
    }
    if (!grad_x) continue;
    for (int64_t i = threadIdx.x; i < m; i += kNormThreads) {
      const int64_t e = at(i);
      grad_x[e] = k::batch_norm_grad_x(grad[e], x[e], coefficients);
    }
  }
}

}  // namespace

void CudaBackend::batch_norm(DType dtype, const void* x, const void* weight, const void* bias,
                             void* y, void* mean, void* var, void* invstd,
                             const BatchNormLayout& layout) {
  if (layout.channels == 0 || layout.batch * layout.inner == 0) return;
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "batch_norm", [&](auto zero) {
    using T = decltype(zero);
    batch_norm_kernel<<<blocks_for(layout.channels, 1), kNormThreads, 0, stream_>>>(
        static_cast<const T*>(x), static_cast<const T*>(weight), static_cast<const T*>(bias),
        static_cast<T*>(y), static_cast<T*>(mean), static_cast<T*>(var), static_cast<T*>(invstd),
        layout);
  });
  check_launch("batch_norm", index_);
}

void CudaBackend::batch_norm_backward(DType dtype, const void* grad_y, const void* x,
                                      const void* weight, const void* mean, const void* invstd,
                                      void* grad_x, void* grad_weight, void* grad_bias,
                                      const BatchNormLayout& layout) {
  if (layout.channels == 0 || layout.batch * layout.inner == 0) return;
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "batch_norm_backward", [&](auto zero) {
    using T = decltype(zero);
    batch_norm_backward_kernel<<<blocks_for(layout.channels, 1), kNormThreads, 0, stream_>>>(
        static_cast<const T*>(grad_y), static_cast<const T*>(x), static_cast<const T*>(weight),
        static_cast<const T*>(mean), static_cast<const T*>(invstd), static_cast<T*>(grad_x),
        static_cast<T*>(grad_weight), static_cast<T*>(grad_bias), layout);
  });
  check_launch("batch_norm_backward", index_);
}

}  // namespace tg::cuda
