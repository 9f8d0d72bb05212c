// src/cuda/cuda_window.cu — the sliding-window kernels of conv2d and the pools on the GPU (the
// geometry is Window2d in backend.h; src/cpu/cpu_window.cpp is the CPU's version):
//   im2col            a thread per column entry, consecutive threads along a column row
//                     (coalesced writes);
//   col2im            a thread per image pixel, summing the entries read from it in a fixed
//                     order (no atomics: results repeat bit for bit, and equal the CPU's up to
//                     the order of the sum);
//   max_pool2d_index  a thread per output.
#include "cuda_common.cuh"

namespace tg::cuda {

namespace {

// columns[(c·kh + i)·kw + j, (b·oh + oy)·ow + ox] = x[b, c, y, x], 0 outside the image
template <class T>
__global__ void im2col_kernel(const T* x, T* columns, Window2d w) {
  const int64_t column_count = w.batch * w.out_h * w.out_w;
  const int64_t total = w.channels * w.kernel_h * w.kernel_w * column_count;
  for (int64_t flat = global_thread(); flat < total; flat += grid_threads()) {
    const int64_t row = flat / column_count, col = flat - row * column_count;
    const int64_t j = row % w.kernel_w, i = (row / w.kernel_w) % w.kernel_h;
    const int64_t c = row / (w.kernel_w * w.kernel_h);
    const int64_t ox = col % w.out_w, oy = (col / w.out_w) % w.out_h, b = col / (w.out_w * w.out_h);
    const int64_t y = oy * w.stride_h - w.pad_h + i * w.dilation_h;
    const int64_t xx = ox * w.stride_w - w.pad_w + j * w.dilation_w;
    const bool inside = y >= 0 && y < w.height && xx >= 0 && xx < w.width;
    columns[flat] = inside ? x[((b * w.channels + c) * w.height + y) * w.width + xx] : T(0);
  }
}

// x[b, c, y, x] = Σ over the window offsets (i, j) and outputs (oy, ox) that read it
template <class T>
__global__ void col2im_kernel(const T* columns, T* x, Window2d w) {
  const int64_t column_count = w.batch * w.out_h * w.out_w;
  const int64_t total = w.batch * w.channels * w.height * w.width;
  for (int64_t flat = global_thread(); flat < total; flat += grid_threads()) {
    const int64_t xx = flat % w.width, y = (flat / w.width) % w.height;
    const int64_t c = (flat / (w.width * w.height)) % w.channels;
    const int64_t b = flat / (w.width * w.height * w.channels);
    T sum = T(0);
    for (int64_t i = 0; i < w.kernel_h; ++i) {
      const int64_t ty = y + w.pad_h - i * w.dilation_h;  // = oy·stride_h
      if (ty < 0 || ty % w.stride_h != 0 || ty / w.stride_h >= w.out_h) continue;
      const int64_t oy = ty / w.stride_h;
      for (int64_t j = 0; j < w.kernel_w; ++j) {
        const int64_t tx = xx + w.pad_w - j * w.dilation_w;
        if (tx < 0 || tx % w.stride_w != 0 || tx / w.stride_w >= w.out_w) continue;
        const int64_t ox = tx / w.stride_w;
        const int64_t row = (c * w.kernel_h + i) * w.kernel_w + j;
        sum += columns[row * column_count + (b * w.out_h + oy) * w.out_w + ox];
      }
    }
    x[flat] = sum;
  }
}

// index[b, c, oy, ox] = y·width + x of the first largest pixel of the window, or its last NaN
template <class T>
__global__ void max_pool2d_index_kernel(const T* x, int64_t* index, Window2d w) {
  const int64_t total = w.batch * w.channels * w.out_h * w.out_w;
  for (int64_t flat = global_thread(); flat < total; flat += grid_threads()) {
    const int64_t ox = flat % w.out_w, oy = (flat / w.out_w) % w.out_h;
    const int64_t plane = flat / (w.out_w * w.out_h);
    const T* in = x + plane * w.height * w.width;
    int64_t best = -1;
    T best_value = T(0);
    for (int64_t i = 0; i < w.kernel_h; ++i) {
      const int64_t y = oy * w.stride_h - w.pad_h + i * w.dilation_h;
      if (y < 0 || y >= w.height) continue;
      for (int64_t j = 0; j < w.kernel_w; ++j) {
        const int64_t xx = ox * w.stride_w - w.pad_w + j * w.dilation_w;
        if (xx < 0 || xx >= w.width) continue;
        const T v = in[y * w.width + xx];
        if (best < 0 || v > best_value || v != v) {
          best = y * w.width + xx;
          best_value = v;
        }
      }
    }
    index[flat] = best < 0 ? 0 : best;
  }
}

}  // namespace

void CudaBackend::im2col(DType dtype, const void* x, void* columns, const Window2d& w) {
  const int64_t total = w.channels * w.kernel_h * w.kernel_w * w.batch * w.out_h * w.out_w;
  if (total == 0) return;
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "im2col", [&](auto zero) {
    using T = decltype(zero);
    im2col_kernel<<<blocks_for(total), kThreads, 0, stream_>>>(static_cast<const T*>(x),
                                                                static_cast<T*>(columns), w);
  });
  check_launch("im2col", index_);
}

void CudaBackend::col2im(DType dtype, const void* columns, void* x, const Window2d& w) {
  const int64_t total = w.batch * w.channels * w.height * w.width;
  if (total == 0) return;
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "col2im", [&](auto zero) {
    using T = decltype(zero);
    col2im_kernel<<<blocks_for(total), kThreads, 0, stream_>>>(static_cast<const T*>(columns),
                                                                static_cast<T*>(x), w);
  });
  check_launch("col2im", index_);
}

void CudaBackend::max_pool2d_index(DType dtype, const void* x, int64_t* index,
                                   const Window2d& w) {
  const int64_t total = w.batch * w.channels * w.out_h * w.out_w;
  if (total == 0) return;
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "max_pool2d_index", [&](auto zero) {
    using T = decltype(zero);
    max_pool2d_index_kernel<<<blocks_for(total), kThreads, 0, stream_>>>(
        static_cast<const T*>(x), index, w);
  });
  check_launch("max_pool2d_index", index_);
}

}  // namespace tg::cuda
