// src/cpu/cpu_window.cpp — the sliding-window kernels of conv2d and the pools on the CPU: im2col,
// its adjoint col2im, and the argmax of each max-pooling window. The gemm that follows im2col is
// OpenBLAS's (cpu_backend.cpp). Window2d in backend.h has the geometry.
//
// Both im2col and col2im walk one row of the columns matrix at a time — a fixed (channel, i, j)
// — and within it one output row (b, oy) at a time, for which the valid output columns
// [ox_begin, ox_end) are computed once, so the inner loop has no bounds test (and is a plain copy
// at stride 1).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu_backend.h"

namespace tg {

namespace {

// The output columns ox whose input column ox·stride - pad + offset lies in [0, size).
struct ValidRange {
  int64_t begin, end;
};
ValidRange valid_outputs(int64_t offset, int64_t stride, int64_t pad, int64_t size,
                         int64_t out_size) {
  // ox·stride + (offset - pad) >= 0   and   < size
  int64_t shift = offset - pad;
  int64_t begin = shift >= 0 ? 0 : (-shift + stride - 1) / stride;
  int64_t end = size - shift <= 0 ? 0 : (size - shift + stride - 1) / stride;
  if (end > out_size) end = out_size;
  if (begin > end) begin = end;
  return {begin, end};
}

// Calls body(row_of_x, row_of_columns, valid ox range, x offset of ox = 0) for every
// (c, i, j, b, oy); rows of x outside the image get row_of_x = nullptr.
template <class T, class Body>
void for_each_window_row(const Window2d& w, T* x, T* columns, Body body) {
  const int64_t plane = w.height * w.width;
  const int64_t out_plane = w.out_h * w.out_w;
  const int64_t column_count = w.batch * out_plane;
  for (int64_t c = 0; c < w.channels; ++c)
    for (int64_t i = 0; i < w.kernel_h; ++i)
      for (int64_t j = 0; j < w.kernel_w; ++j) {
        T* column_row = columns + ((c * w.kernel_h + i) * w.kernel_w + j) * column_count;
        const int64_t x_shift = j * w.dilation_w - w.pad_w;
        const ValidRange range = valid_outputs(j * w.dilation_w, w.stride_w, w.pad_w, w.width,
                                               w.out_w);
        for (int64_t b = 0; b < w.batch; ++b)
          for (int64_t oy = 0; oy < w.out_h; ++oy) {
            const int64_t y = oy * w.stride_h - w.pad_h + i * w.dilation_h;
            T* out_row = column_row + b * out_plane + oy * w.out_w;
            T* x_row = (y >= 0 && y < w.height) ? x + (b * w.channels + c) * plane + y * w.width
                                                : nullptr;
            body(x_row, out_row, range, x_shift);
          }
      }
}

}  // namespace

// columns[(c, i, j), (b, oy, ox)] = x[b, c, y, x], or 0 outside the image
void CpuBackend::im2col(DType dtype, const void* x, void* columns, const Window2d& w) {
  dispatch_floating(dtype, "im2col", [&](auto zero) {
    using T = decltype(zero);
    const T pad = T(0);
    const int64_t stride = w.stride_w, out_w = w.out_w;
    for_each_window_row(w, const_cast<T*>(static_cast<const T*>(x)), static_cast<T*>(columns),
                        [&](const T* x_row, T* out, ValidRange r, int64_t shift) {
                          if (!x_row) {
                            for (int64_t ox = 0; ox < out_w; ++ox) out[ox] = pad;
                            return;
                          }
                          for (int64_t ox = 0; ox < r.begin; ++ox) out[ox] = pad;
                          if (stride == 1) {
#pragma omp simd
                            for (int64_t ox = r.begin; ox < r.end; ++ox) out[ox] = x_row[ox + shift];
                          } else {
                            for (int64_t ox = r.begin; ox < r.end; ++ox)
                              out[ox] = x_row[ox * stride + shift];
                          }
                          for (int64_t ox = r.end; ox < out_w; ++ox) out[ox] = pad;
                        });
  });
}

// x[b, c, y, x] = Σ over the column entries read from it (im2col's adjoint)
void CpuBackend::col2im(DType dtype, const void* columns, void* x, const Window2d& w) {
  dispatch_floating(dtype, "col2im", [&](auto zero) {
    using T = decltype(zero);
    T* image = static_cast<T*>(x);
    const int64_t total = w.batch * w.channels * w.height * w.width;
    for (int64_t k = 0; k < total; ++k) image[k] = T(0);
    const int64_t stride = w.stride_w;
    for_each_window_row(w, image, const_cast<T*>(static_cast<const T*>(columns)),
                        [&](T* x_row, const T* in, ValidRange r, int64_t shift) {
                          if (!x_row) return;
                          if (stride == 1) {
#pragma omp simd
                            for (int64_t ox = r.begin; ox < r.end; ++ox) x_row[ox + shift] += in[ox];
                          } else {
                            for (int64_t ox = r.begin; ox < r.end; ++ox)
                              x_row[ox * stride + shift] += in[ox];
                          }
                        });
  });
}

// index[b, c, oy, ox] = argmax over the window's pixels inside the image, as y·width + x: the
// first largest, or the last NaN (PyTorch's rule: a value replaces the best when it is larger or
// NaN). The window's valid rows and columns are found first, so the inner loops test nothing.
void CpuBackend::max_pool2d_index(DType dtype, const void* x, int64_t* index,
                                  const Window2d& window) {
  const Window2d w = window;  // a local copy: the int64 index writes cannot alias it
  dispatch_floating(dtype, "max_pool2d_index", [&](auto zero) {
    using T = decltype(zero);
    const T* image = static_cast<const T*>(x);
    const int64_t plane = w.height * w.width;
    // For each output column: the first valid window column j and the count of valid ones.
    std::vector<int64_t> j_begin(w.out_w), j_end(w.out_w);
    for (int64_t ox = 0; ox < w.out_w; ++ox) {
      const int64_t x0 = ox * w.stride_w - w.pad_w;
      int64_t b = 0, e = w.kernel_w;
      while (b < e && x0 + b * w.dilation_w < 0) ++b;
      while (e > b && x0 + (e - 1) * w.dilation_w >= w.width) --e;
      j_begin[ox] = b;
      j_end[ox] = e;
    }
    for (int64_t p = 0; p < w.batch * w.channels; ++p) {
      const T* in = image + p * plane;
      int64_t* out = index + p * w.out_h * w.out_w;
      for (int64_t oy = 0; oy < w.out_h; ++oy) {
        const int64_t y0 = oy * w.stride_h - w.pad_h;
        int64_t i_begin = 0, i_end = w.kernel_h;
        while (i_begin < i_end && y0 + i_begin * w.dilation_h < 0) ++i_begin;
        while (i_end > i_begin && y0 + (i_end - 1) * w.dilation_h >= w.height) --i_end;
        // Output columns whose whole window row lies inside the image: [inner_begin, inner_end).
        // There the window offsets are the outer loops and ox the inner one, which the compiler
        // vectorises with branch-free selects (after a ReLU the comparisons are unpredictable).
        int64_t* row_out = out + oy * w.out_w;
        int64_t inner_begin = 0, inner_end = 0;
        if (i_begin < i_end) {
          inner_begin = (w.pad_w + w.stride_w - 1) / w.stride_w;
          const int64_t last = w.width - 1 - (w.kernel_w - 1) * w.dilation_w + w.pad_w;
          inner_end = last < 0 ? 0 : std::min(w.out_w, last / w.stride_w + 1);
          if (inner_end < inner_begin) inner_end = inner_begin;
        }
        constexpr int64_t kChunk = 64;
        for (int64_t c0 = inner_begin; c0 < inner_end; c0 += kChunk) {
          const int64_t count = std::min(kChunk, inner_end - c0);
          T best_value[kChunk];
          int64_t best[kChunk];
          const int64_t first = (y0 + i_begin * w.dilation_h) * w.width + c0 * w.stride_w - w.pad_w;
          for (int64_t k = 0; k < count; ++k) {
            best[k] = first + k * w.stride_w;
            best_value[k] = in[best[k]];
          }
          for (int64_t i = i_begin; i < i_end; ++i)
            for (int64_t j = 0; j < w.kernel_w; ++j) {
              const int64_t base =
                  (y0 + i * w.dilation_h) * w.width + c0 * w.stride_w - w.pad_w + j * w.dilation_w;
              const int64_t step = w.stride_w;
#pragma omp simd
              for (int64_t k = 0; k < count; ++k) {
                const T v = in[base + k * step];
                const bool take = (v > best_value[k]) | (v != v);
                best[k] = take ? base + k * step : best[k];
                best_value[k] = take ? v : best_value[k];
              }
            }
          for (int64_t k = 0; k < count; ++k) row_out[c0 + k] = best[k];
        }
        for (int64_t ox = 0; ox < w.out_w; ++ox) {
          if (ox == inner_begin && inner_end > inner_begin) ox = inner_end;
          if (ox >= w.out_w) break;
          const int64_t x0 = ox * w.stride_w - w.pad_w, jb = j_begin[ox], je = j_end[ox];
          if (i_begin == i_end || jb == je) {  // a window wholly outside the image (excluded)
            row_out[ox] = 0;
            continue;
          }
          int64_t best = (y0 + i_begin * w.dilation_h) * w.width + x0 + jb * w.dilation_w;
          T best_value = in[best];
          for (int64_t i = i_begin; i < i_end; ++i) {
            const int64_t row = (y0 + i * w.dilation_h) * w.width + x0;
            for (int64_t j = jb; j < je; ++j) {
              const int64_t at = row + j * w.dilation_w;
              const T v = in[at];
              if (v > best_value || v != v) {
                best = at;
                best_value = v;
              }
            }
          }
          row_out[ox] = best;
        }
      }
    }
  });
}

}  // namespace tg
