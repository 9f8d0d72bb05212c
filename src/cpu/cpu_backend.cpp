// src/cpu/cpu_backend.cpp — CPU memory, data movement, gemm (OpenBLAS) and indexing kernels.
#include "cpu_backend.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

#include "../kernels/elementwise_math.h"
#include "simd.h"
#include "thread_pool.h"

namespace tg {

namespace {
void* aligned_system_allocate(size_t bytes) { return std::aligned_alloc(64, bytes); }
void system_free(void* pointer) { std::free(pointer); }
constexpr size_t kMaxCachedBytes = size_t(4) << 30;
}  // namespace

CpuBackend::CpuBackend() : allocator_(aligned_system_allocate, system_free, kMaxCachedBytes) {
  cpu::set_kernel_threads(openblas_get_num_threads());
}

const char* cpu_simd_target() { return cpu::simd::target_name(); }

void set_num_threads(int threads) {
  static const int default_threads = openblas_get_num_threads();
  check(threads >= 0, "set_num_threads", "expected a thread count >= 0, got ", threads);
  openblas_set_num_threads(threads == 0 ? default_threads : threads);
  cpu::set_kernel_threads(threads == 0 ? default_threads : threads);
}

int num_threads() { return openblas_get_num_threads(); }

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

// ---------------------------------------------------------------- memory and data movement

void CpuBackend::copy_to_host(void* host_destination, const void* source, size_t bytes) {
  if (bytes) std::memcpy(host_destination, source, bytes);
}

void CpuBackend::copy_from_host(void* destination, const void* host_source, size_t bytes) {
  if (bytes) std::memcpy(destination, host_source, bytes);
}

void CpuBackend::fill(DType dtype, void* out, int64_t n, double value) {
  dispatch_any(dtype, [&](auto zero) {
    using T = decltype(zero);
    T* y = static_cast<T*>(out);
    T v = kernels::ConvertTo<T>{}(value);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = v;
  });
}

void CpuBackend::convert(DType from, const void* in, DType to, void* out, int64_t n) {
  if (from == to) {
    if (in != out && n) std::memcpy(out, in, n * dtype_size(from));
    return;
  }
  dispatch_any(from, [&](auto from_zero) {
    using From = decltype(from_zero);
    dispatch_any(to, [&](auto to_zero) {
      using To = decltype(to_zero);
      const From* x = static_cast<const From*>(in);
      To* y = static_cast<To*>(out);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) y[i] = kernels::ConvertTo<To>{}(x[i]);
    });
  });
}

// Walks every index of `shape` with an odometer, keeping both flat offsets up to date.
void CpuBackend::copy_strided(DType dtype, const Shape& shape, const void* in,
                              const int64_t* in_strides, void* out, const int64_t* out_strides) {
  int64_t total = shape.numel();
  if (total == 0) return;
  int rank = shape.rank();
  dispatch_any(dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* x = static_cast<const T*>(in);
    T* y = static_cast<T*>(out);
    if (rank == 0) {
      y[0] = x[0];
      return;
    }
    int64_t inner = shape[rank - 1], sx = in_strides[rank - 1], sy = out_strides[rank - 1];
    int64_t counter[kMaxRank] = {};
    int64_t ox = 0, oy = 0;
    for (int64_t done = 0; done < total; done += inner) {
      if (sx == 1 && sy == 1) {
        std::memcpy(y + oy, x + ox, inner * sizeof(T));
      } else {
        for (int64_t i = 0; i < inner; ++i) y[oy + i * sy] = x[ox + i * sx];
      }
      for (int axis = rank - 2; axis >= 0; --axis) {
        ox += in_strides[axis];
        oy += out_strides[axis];
        if (++counter[axis] < shape[axis]) break;
        ox -= in_strides[axis] * shape[axis];
        oy -= out_strides[axis] * shape[axis];
        counter[axis] = 0;
      }
    }
  });
}

// ---------------------------------------------------------------- checks of data

int64_t CpuBackend::check_indices(const IndexCheck& c, const int64_t* index, int64_t n) {
  int64_t ignored_count = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (c.has_ignored && index[i] == c.ignored) {
      ++ignored_count;
      continue;
    }
    if (index[i] >= 0 && index[i] < c.limit) continue;
    if (c.has_ignored)
      fail(c.op, c.what, " ", index[i], " at position ", i, " is out of range [0, ", c.limit,
           ") and is not ignore_index (", c.ignored, ")");
    fail(c.op, c.what, " ", index[i], " at position ", i, " is out of range [0, ", c.limit, ")");
  }
  return ignored_count;
}

void CpuBackend::check_temperatures(const char* op, DType dtype, const void* temperatures,
                                    int64_t n) {
  dispatch_floating(dtype, op, [&](auto zero) {
    using T = decltype(zero);
    const T* t = static_cast<const T*>(temperatures);
    for (int64_t i = 0; i < n; ++i)
      check(t[i] > 0 && std::isfinite(t[i]), op,
            "the temperature must be a finite number > 0, got ", t[i]);
  });
}

// ---------------------------------------------------------------- gemm

void CpuBackend::gemm(DType dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n,
                      int64_t k, double alpha, const void* a, const void* b, double beta, void* c,
                      int64_t batch, int64_t stride_a, int64_t stride_b, int64_t stride_c) {
  // cblas takes sizes as blasint (32 bits in most OpenBLAS builds): a larger one would wrap.
  constexpr int64_t kMaxBlas = std::numeric_limits<blasint>::max();
  check(m <= kMaxBlas && n <= kMaxBlas && k <= kMaxBlas, "gemm", "sizes m ", m, ", n ", n,
        ", k ", k, " exceed the BLAS library's limit of ", kMaxBlas);
  // Row-major leading dimensions: op(A) is [m, k], so A itself is [k, m] when transposed.
  const blasint lda = transpose_a ? m : k, ldb = transpose_b ? k : n, ldc = n;
  const CBLAS_TRANSPOSE ta = transpose_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = transpose_b ? CblasTrans : CblasNoTrans;
  if (m == 0 || n == 0) return;
  dispatch_floating(dtype, "gemm", [&](auto zero) {
    using T = decltype(zero);
    for (int64_t i = 0; i < batch; ++i) {
      const T* ai = static_cast<const T*>(a) + i * stride_a;
      const T* bi = static_cast<const T*>(b) + i * stride_b;
      T* ci = static_cast<T*>(c) + i * stride_c;
      if (k == 0) {  // BLAS leaves C untouched when k == 0 only if beta == 1; be explicit
        for (int64_t j = 0; j < m * n; ++j) ci[j] = beta == 0 ? T(0) : static_cast<T>(beta) * ci[j];
        continue;
      }
      if constexpr (std::is_same_v<T, float>)
        cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, static_cast<float>(alpha), ai, lda, bi, ldb,
                    static_cast<float>(beta), ci, ldc);
      else
        cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, ai, lda, bi, ldb, beta, ci, ldc);
    }
  });
}

// ---------------------------------------------------------------- indexing

// Rows of `inner` elements are copied independently, so big gathers (a data loader's batch,
// max_pool2d's outputs) are split over the threads in pieces of whole rows; a copy is exact,
// whatever the thread count.
void CpuBackend::gather(DType dtype, const void* x, const int64_t* index, void* out, int64_t outer,
                        int64_t n, int64_t k, int64_t inner, bool shared_index) {
  dispatch_any(dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* src = static_cast<const T*>(x);
    T* dst = static_cast<T*>(out);
    cpu::parallel_for(outer * k, cpu::units_per_grain(inner), [&](int64_t first, int64_t end) {
      for (int64_t r = first; r < end; ++r) {  // r = o·k + j
        const int64_t o = r / k, j = r % k;
        T* row = dst + r * inner;
        if (shared_index) {
          std::memcpy(row, src + (o * n + index[j]) * inner, inner * sizeof(T));
        } else {
          const int64_t* idx = index + r * inner;
          for (int64_t i = 0; i < inner; ++i) row[i] = src[(o * n + idx[i]) * inner + i];
        }
      }
    });
  });
}

// Indices may repeat within one outer slice, so each slice is added in index order by one
// thread; slices write disjoint outputs and are split over the threads (max_pool2d's backward
// has one per image plane). The sums are the same for any thread count.
void CpuBackend::scatter_add(DType dtype, const void* src, const int64_t* index, void* out,
                             int64_t outer, int64_t n, int64_t k, int64_t inner,
                             bool shared_index) {
  dispatch_floating(dtype, "scatter_add", [&](auto zero) {
    using T = decltype(zero);
    const T* from = static_cast<const T*>(src);
    T* to = static_cast<T*>(out);
    cpu::parallel_for(outer, cpu::units_per_grain(k * inner), [&](int64_t first, int64_t end) {
      for (int64_t o = first; o < end; ++o)
        for (int64_t j = 0; j < k; ++j) {
          const T* row = from + (o * k + j) * inner;
          if (shared_index) {
            T* target = to + (o * n + index[j]) * inner;
#pragma omp simd
            for (int64_t i = 0; i < inner; ++i) target[i] += row[i];
          } else {
            const int64_t* idx = index + (o * k + j) * inner;
            for (int64_t i = 0; i < inner; ++i) to[(o * n + idx[i]) * inner + i] += row[i];
          }
        }
    });
  });
}

void CpuBackend::one_hot(DType dtype, const int64_t* index, void* out, int64_t rows,
                         int64_t classes) {
  fill(dtype, out, rows * classes, 0);
  dispatch_any(dtype, [&](auto zero) {
    using T = decltype(zero);
    T* y = static_cast<T*>(out);
    for (int64_t r = 0; r < rows; ++r) y[r * classes + index[r]] = T(1);
  });
}

}  // namespace tg
