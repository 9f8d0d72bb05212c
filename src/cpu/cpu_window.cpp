// src/cpu/cpu_window.cpp — the sliding-window kernels of conv2d and the pools on the CPU: im2col,
// its adjoint col2im, and the argmax of each max-pooling window. The gemm that follows im2col is
// OpenBLAS's (cpu_backend.cpp). Window2d in backend.h has the geometry.
//
// Both im2col and col2im walk one row of the columns matrix at a time — a fixed (channel, i, j)
// — and within it one output row (b, oy) at a time, for which the valid output columns
// [ox_begin, ox_end) are computed once, so the inner loop has no bounds test (and is a plain copy
// at stride 1).
//
// Threads (thread_pool.h): each kernel is cut into tasks by its size alone, and each task writes
// only its own outputs — im2col a run of (column row, image) blocks, col2im a run of (channel,
// image) planes, max_pool2d_index a run of (image, channel) planes — so results are bit-identical
// for every thread count. col2im sums a pixel's entries in the order of the window offsets (i, j)
// whatever the split.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu_backend.h"
#include "thread_pool.h"

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

// Calls body(row_of_x, row_of_columns, valid ox range, x offset of ox = 0) for the out_h output
// rows oy of image b at window offset (i, j) of channel c: the block of the columns matrix at row
// (c, i, j) and columns (b, ·, ·). Rows of x outside the image get row_of_x = nullptr.
template <class T, class Body>
void for_each_window_row(const Window2d& w, T* x, T* columns, int64_t c, int64_t i, int64_t j,
                         int64_t b, Body body) {
  const int64_t plane = w.height * w.width;
  const int64_t out_plane = w.out_h * w.out_w;
  const int64_t column_count = w.batch * out_plane;
  T* column_row = columns + ((c * w.kernel_h + i) * w.kernel_w + j) * column_count;
  const int64_t x_shift = j * w.dilation_w - w.pad_w;
  const ValidRange range = valid_outputs(j * w.dilation_w, w.stride_w, w.pad_w, w.width, w.out_w);
  for (int64_t oy = 0; oy < w.out_h; ++oy) {
    const int64_t y = oy * w.stride_h - w.pad_h + i * w.dilation_h;
    T* out_row = column_row + b * out_plane + oy * w.out_w;
    T* x_row =
        (y >= 0 && y < w.height) ? x + (b * w.channels + c) * plane + y * w.width : nullptr;
    body(x_row, out_row, range, x_shift);
  }
}

// im2col's block for window offset (i, j) of one image plane when the window moves by one pixel
// and output rows are as long as input rows (stride 1, no dilation, out_w == width: a "same"
// convolution): the block is the plane shifted by (dy, dx) = (i - pad_h, j - pad_w), so the
// valid rows are one contiguous copy — the few entries that wrap around from a neighbouring row
// are then overwritten with the zeros of the padding columns. Same values as the row-by-row copy.
template <class T>
void shifted_plane(const T* plane, T* out, const Window2d& w, int64_t i, int64_t j) {
  const int64_t width = w.width, dy = i - w.pad_h, dx = j - w.pad_w;
  const int64_t row_begin = std::max<int64_t>(0, -dy);
  const int64_t row_end = std::max(row_begin, std::min(w.out_h, w.height - dy));
  const int64_t column_begin = std::max<int64_t>(0, -dx);
  const int64_t column_end = std::min(width, width - dx);
  if (column_begin >= column_end || row_begin == row_end) {
    std::fill(out, out + w.out_h * width, T(0));
    return;
  }
  std::fill(out, out + row_begin * width, T(0));
  std::fill(out + row_end * width, out + w.out_h * width, T(0));
  const int64_t first = row_begin * width + column_begin;
  const int64_t last = (row_end - 1) * width + column_end;
  std::copy(plane + first + dy * width + dx, plane + last + dy * width + dx, out + first);
  for (int64_t oy = row_begin; oy < row_end; ++oy) {
    std::fill(out + oy * width, out + oy * width + column_begin, T(0));
    std::fill(out + oy * width + column_end, out + (oy + 1) * width, T(0));
  }
}

}  // namespace

// columns[(c, i, j), (b, oy, ox)] = x[b, c, y, x], or 0 outside the image
//   a task: a run of (column row, image) blocks of out_h·out_w entries
void CpuBackend::im2col(DType dtype, const void* x, void* columns, const Window2d& w) {
  dispatch_floating(dtype, "im2col", [&](auto zero) {
    using T = decltype(zero);
    const T pad = T(0);
    const int64_t stride = w.stride_w, out_w = w.out_w;
    T* image = const_cast<T*>(static_cast<const T*>(x));
    T* out_columns = static_cast<T*>(columns);
    auto copy_row = [&](const T* x_row, T* out, ValidRange r, int64_t shift) {
      if (!x_row) {
        for (int64_t ox = 0; ox < out_w; ++ox) out[ox] = pad;
        return;
      }
      for (int64_t ox = 0; ox < r.begin; ++ox) out[ox] = pad;
      if (stride == 1) {
#pragma omp simd
        for (int64_t ox = r.begin; ox < r.end; ++ox) out[ox] = x_row[ox + shift];
      } else {
        for (int64_t ox = r.begin; ox < r.end; ++ox) out[ox] = x_row[ox * stride + shift];
      }
      for (int64_t ox = r.end; ox < out_w; ++ox) out[ox] = pad;
    };
    const int64_t blocks = w.channels * w.kernel_h * w.kernel_w * w.batch;
    const bool same_rows = w.stride_h == 1 && w.stride_w == 1 && w.dilation_h == 1 &&
                           w.dilation_w == 1 && w.out_w == w.width;
    const int64_t out_plane = w.out_h * w.out_w;
    cpu::parallel_for(blocks, cpu::units_per_grain(out_plane), [&](int64_t first, int64_t end) {
      for (int64_t block = first; block < end; ++block) {
        const int64_t row = block / w.batch, b = block - row * w.batch;
        const int64_t j = row % w.kernel_w, i = (row / w.kernel_w) % w.kernel_h;
        const int64_t c = row / (w.kernel_w * w.kernel_h);
        if (same_rows)
          shifted_plane(image + (b * w.channels + c) * w.height * w.width,
                        out_columns + block * out_plane, w, i, j);
        else
          for_each_window_row(w, image, out_columns, c, i, j, b, copy_row);
      }
    });
  });
}

// x[b, c, y, x] = Σ over the column entries read from it (im2col's adjoint)
//   a task: a run of (channel, image) planes in channel-major order; within each channel of the
//   run, the window offsets (i, j) are the outer loops (the columns matrix is read row by row,
//   and the channel's planes stay in cache), so a pixel's sum is always in the order of (i, j)
void CpuBackend::col2im(DType dtype, const void* columns, void* x, const Window2d& w) {
  dispatch_floating(dtype, "col2im", [&](auto zero) {
    using T = decltype(zero);
    T* image = static_cast<T*>(x);
    T* in_columns = const_cast<T*>(static_cast<const T*>(columns));
    const int64_t plane = w.height * w.width, stride = w.stride_w;
    auto add_row = [&](T* x_row, const T* in, ValidRange r, int64_t shift) {
      if (!x_row) return;
      if (stride == 1) {
#pragma omp simd
        for (int64_t ox = r.begin; ox < r.end; ++ox) x_row[ox + shift] += in[ox];
      } else {
        for (int64_t ox = r.begin; ox < r.end; ++ox) x_row[ox * stride + shift] += in[ox];
      }
    };
    const int64_t plane_work = w.kernel_h * w.kernel_w * w.out_h * w.out_w + plane;
    cpu::parallel_for(w.channels * w.batch, cpu::units_per_grain(plane_work),
                      [&](int64_t first, int64_t end) {
      for (int64_t unit = first; unit < end;) {  // one channel's part of the run at a time
        const int64_t c = unit / w.batch, b_begin = unit - c * w.batch;
        const int64_t b_end = std::min(w.batch, b_begin + (end - unit));
        for (int64_t b = b_begin; b < b_end; ++b) {
          T* p = image + (b * w.channels + c) * plane;
          std::fill(p, p + plane, T(0));
        }
        for (int64_t i = 0; i < w.kernel_h; ++i)
          for (int64_t j = 0; j < w.kernel_w; ++j)
            for (int64_t b = b_begin; b < b_end; ++b)
              for_each_window_row(w, image, in_columns, c, i, j, b, add_row);
        unit += b_end - b_begin;
      }
    });
  });
}

namespace {

// The first largest pixel (or the last NaN) of a KH x KW window wholly inside the image whose
// top-left pixel is in[at]: the sizes known at compile time, the selects branch-free (after a
// ReLU the comparisons are unpredictable).
template <int KH, int KW, class T>
inline int64_t window_argmax(const T* in, int64_t at, int64_t row_step, int64_t column_step) {
  int64_t best = at;
  T best_value = in[at];
  for (int i = 0; i < KH; ++i)
    for (int j = 0; j < KW; ++j) {
      if (i == 0 && j == 0) continue;
      const int64_t here = at + i * row_step + j * column_step;
      const T v = in[here];
      const bool take = (v > best_value) | (v != v);
      best = take ? here : best;
      best_value = take ? v : best_value;
    }
  return best;
}

// max_pool2d_index over the planes [plane_begin, plane_end) (a plane is one channel of one image).
// j_begin[ox], j_end[ox]: the window columns j inside the image for output column ox. KH, KW: the
// window's size when known at compile time (the common 2x2 and 3x3), else 0.
template <int KH, int KW, class T>
void pool_planes(const Window2d& window, const T* image, int64_t* index, const int64_t* j_begin,
                 const int64_t* j_end, int64_t plane_begin, int64_t plane_end) {
  const Window2d w = window;  // a local copy: the int64 index writes cannot alias it
  const int64_t plane = w.height * w.width;
  for (int64_t p = plane_begin; p < plane_end; ++p) {
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
      if (KH > 0 && i_begin == 0 && i_end == KH) {  // every row of the window in the image
        const int64_t first = y0 * w.width - w.pad_w;
        for (int64_t ox = inner_begin; ox < inner_end; ++ox)
          row_out[ox] = window_argmax<KH, KW>(in, first + ox * w.stride_w,
                                              w.dilation_h * w.width, w.dilation_w);
      } else {
        constexpr int64_t kChunk = 64;
        for (int64_t c0 = inner_begin; c0 < inner_end; c0 += kChunk) {
          const int64_t count = std::min(kChunk, inner_end - c0);
          T best_value[kChunk];
          int64_t best[kChunk];
          const int64_t first =
              (y0 + i_begin * w.dilation_h) * w.width + c0 * w.stride_w - w.pad_w;
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
}

}  // namespace

// index[b, c, oy, ox] = argmax over the window's pixels inside the image, as y·width + x: the
// first largest, or the last NaN (PyTorch's rule: a value replaces the best when it is larger or
// NaN). The window's valid rows and columns are found first, so the inner loops test nothing.
//   a task: a run of (image, channel) planes
void CpuBackend::max_pool2d_index(DType dtype, const void* x, int64_t* index,
                                  const Window2d& w) {
  dispatch_floating(dtype, "max_pool2d_index", [&](auto zero) {
    using T = decltype(zero);
    // For each output column: the first valid window column j and the end of the valid ones.
    std::vector<int64_t> j_begin(w.out_w), j_end(w.out_w);
    for (int64_t ox = 0; ox < w.out_w; ++ox) {
      const int64_t x0 = ox * w.stride_w - w.pad_w;
      int64_t b = 0, e = w.kernel_w;
      while (b < e && x0 + b * w.dilation_w < 0) ++b;
      while (e > b && x0 + (e - 1) * w.dilation_w >= w.width) --e;
      j_begin[ox] = b;
      j_end[ox] = e;
    }
    const int64_t plane_work = w.out_h * w.out_w * w.kernel_h * w.kernel_w;
    cpu::parallel_for(w.batch * w.channels, cpu::units_per_grain(plane_work),
                      [&](int64_t first, int64_t end) {
                        const T* image = static_cast<const T*>(x);
                        const int64_t* jb = j_begin.data();
                        const int64_t* je = j_end.data();
                        if (w.kernel_h == 2 && w.kernel_w == 2)
                          pool_planes<2, 2>(w, image, index, jb, je, first, end);
                        else if (w.kernel_h == 3 && w.kernel_w == 3)
                          pool_planes<3, 3>(w, image, index, jb, je, first, end);
                        else
                          pool_planes<0, 0>(w, image, index, jb, je, first, end);
                      });
  });
}

}  // namespace tg
