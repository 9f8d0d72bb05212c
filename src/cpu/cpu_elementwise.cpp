// src/cpu/cpu_elementwise.cpp — elementwise and reduction kernels: the vector kernels of
// src/cpu/simd.h where an op has one, else loops around the shared per-element functors of
// src/kernels/elementwise_math.h; both split over threads above kParallelGrain elements.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "../kernels/broadcast_walk.h"
#include "../kernels/elementwise_math.h"
#include "../kernels/row_math.h"
#include "cpu_backend.h"
#include "simd.h"
#include "thread_pool.h"

namespace tg {

namespace k = kernels;

using cpu::kParallelGrain;  // thread_pool.h
// Up to this many elements an op without a transcendental function runs its functor loop inlined
// here: the call into the dispatched vector kernel costs more than it saves (same bits either way).
constexpr int64_t kInlineElements = 256;

namespace {
template <class T> T* at(T* p, int64_t i, size_t element) {
  using Byte = std::conditional_t<std::is_const<T>::value, const char, char>;
  return reinterpret_cast<T*>(reinterpret_cast<Byte*>(p) + i * static_cast<int64_t>(element));
}
}  // namespace

// ---------------------------------------------------------------- unary

// y[i] = f(x[i], a, b). x may equal y (no element depends on another, so simd stays valid).
template <class T, class F>
static void map_unary(const T* x, T* y, int64_t n, T a, T b, F f) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i], a, b);
}

// The functor loop of every unary op (the fallback of the vector kernels).
static void unary_functors(UnaryOp op, DType dtype, const void* x_, void* y_, int64_t n,
                           double a_, double b_) {
  dispatch_floating(dtype, "unary", [&](auto zero) {
    using T = decltype(zero);
    const T* x = static_cast<const T*>(x_);
    T* y = static_cast<T*>(y_);
    T a = static_cast<T>(a_), b = static_cast<T>(b_);
    switch (op) {
      case UnaryOp::neg: return map_unary(x, y, n, a, b, k::Neg{});
      case UnaryOp::exp: return map_unary(x, y, n, a, b, k::Exp{});
      case UnaryOp::log: return map_unary(x, y, n, a, b, k::Log{});
      case UnaryOp::log1p: return map_unary(x, y, n, a, b, k::Log1p{});
      case UnaryOp::sqrt: return map_unary(x, y, n, a, b, k::Sqrt{});
      case UnaryOp::abs: return map_unary(x, y, n, a, b, k::Abs{});
      case UnaryOp::sign: return map_unary(x, y, n, a, b, k::Sign{});
      case UnaryOp::tanh: return map_unary(x, y, n, a, b, k::Tanh{});
      case UnaryOp::sigmoid: return map_unary(x, y, n, a, b, k::Sigmoid{});
      case UnaryOp::relu: return map_unary(x, y, n, a, b, k::Relu{});
      case UnaryOp::square: return map_unary(x, y, n, a, b, k::Square{});
      case UnaryOp::reciprocal: return map_unary(x, y, n, a, b, k::Reciprocal{});
      case UnaryOp::add_scalar: return map_unary(x, y, n, a, b, k::AddScalar{});
      case UnaryOp::mul_scalar: return map_unary(x, y, n, a, b, k::MulScalar{});
      case UnaryOp::rsub_scalar: return map_unary(x, y, n, a, b, k::RsubScalar{});
      case UnaryOp::pow_scalar: return map_unary(x, y, n, a, b, k::PowScalar{});
      case UnaryOp::clamp: return map_unary(x, y, n, a, b, k::Clamp{});
      case UnaryOp::in_range: return map_unary(x, y, n, a, b, k::InRange{});
      case UnaryOp::isfinite: return map_unary(x, y, n, a, b, k::IsFinite{});
      case UnaryOp::isnan: return map_unary(x, y, n, a, b, k::IsNan{});
      case UnaryOp::gelu: return map_unary(x, y, n, a, b, k::Gelu{});
      case UnaryOp::gelu_tanh: return map_unary(x, y, n, a, b, k::GeluTanh{});
      case UnaryOp::silu: return map_unary(x, y, n, a, b, k::Silu{});
      case UnaryOp::leaky_relu: return map_unary(x, y, n, a, b, k::LeakyRelu{});
      case UnaryOp::softplus: return map_unary(x, y, n, a, b, k::Softplus{});
      case UnaryOp::elu: return map_unary(x, y, n, a, b, k::Elu{});
      case UnaryOp::sin: return map_unary(x, y, n, a, b, k::Sin{});
      case UnaryOp::cos: return map_unary(x, y, n, a, b, k::Cos{});
      case UnaryOp::leaky_relu_slope: return map_unary(x, y, n, a, b, k::LeakyReluSlope{});
      case UnaryOp::softplus_slope: return map_unary(x, y, n, a, b, k::SoftplusSlope{});
      case UnaryOp::elu_slope: return map_unary(x, y, n, a, b, k::EluSlope{});
    }
  });
}

// The ops without a transcendental function, whose vector kernels give the functors' bits.
static bool exact_op(UnaryOp op) {
  switch (op) {
    case UnaryOp::neg: case UnaryOp::sqrt: case UnaryOp::abs: case UnaryOp::sign:
    case UnaryOp::relu: case UnaryOp::square: case UnaryOp::reciprocal: case UnaryOp::add_scalar:
    case UnaryOp::mul_scalar: case UnaryOp::rsub_scalar: case UnaryOp::clamp:
    case UnaryOp::in_range: case UnaryOp::isfinite: case UnaryOp::isnan:
    case UnaryOp::leaky_relu: case UnaryOp::leaky_relu_slope:
      return true;
    default: return false;
  }
}

void CpuBackend::unary(UnaryOp op, DType dtype, const void* x, void* y, int64_t n, double a,
                       double b) {
  if (n <= kInlineElements && exact_op(op)) return unary_functors(op, dtype, x, y, n, a, b);
  const size_t element = dtype_size(dtype);
  cpu::parallel_for(n, kParallelGrain, [&](int64_t begin, int64_t end) {
    const void* xs = at(x, begin, element);
    void* ys = at(y, begin, element);
    if (!cpu::simd::unary(op, dtype, xs, ys, end - begin, a, b))
      unary_functors(op, dtype, xs, ys, end - begin, a, b);
  });
}

// ---------------------------------------------------------------- broadcasting

namespace {

using Walk = k::BroadcastWalk;  // the collapsed layout: src/kernels/broadcast_walk.h

// Calls row(offsets, inner) for every innermost row of the walk, where offsets[i] is where input
// i's row starts; the row's own strides are w.stride[i][rank-1].
template <class Row>
void for_each_row(const Walk& w, int inputs, Row row) {
  int last = w.rank - 1;
  int64_t inner = w.size[last];
  int64_t rows = 1;
  for (int d = 0; d < last; ++d) rows *= w.size[d];
  int64_t offsets[BroadcastLayout::kMaxInputs] = {};
  int64_t counter[kMaxRank] = {};
  for (int64_t r = 0; r < rows; ++r) {
    row(offsets, r * inner, inner);
    for (int d = last - 1; d >= 0; --d) {
      for (int i = 0; i < inputs; ++i) offsets[i] += w.stride[i][d];
      if (++counter[d] < w.size[d]) break;
      for (int i = 0; i < inputs; ++i) offsets[i] -= w.stride[i][d] * w.size[d];
      counter[d] = 0;
    }
  }
}

// Like for_each_row, for rows [first, last) only (offsets computed from the row index).
template <class Row>
void for_rows(const Walk& w, int inputs, int64_t first, int64_t end, Row row) {
  const int last = w.rank - 1;
  const int64_t inner = w.size[last];
  for (int64_t r = first; r < end; ++r) {
    int64_t offsets[BroadcastLayout::kMaxInputs] = {};
    int64_t rest = r;
    for (int d = last - 1; d >= 0; --d) {
      const int64_t index = rest % w.size[d];
      rest /= w.size[d];
      for (int i = 0; i < inputs; ++i) offsets[i] += index * w.stride[i][d];
    }
    row(offsets, r * inner, inner);
  }
}

// The rows of a walk spread over threads when there are many elements: a single row is cut
// into pieces, many rows are dealt out whole.
template <class Row>
void for_each_row_parallel(const Walk& w, int inputs, Row row) {
  const int last = w.rank - 1;
  const int64_t inner = w.size[last];
  int64_t rows = 1;
  for (int d = 0; d < last; ++d) rows *= w.size[d];
  if (rows * inner < 2 * kParallelGrain || cpu::kernel_threads() <= 1)
    return for_each_row(w, inputs, row);
  if (rows == 1) {
    // One row: pieces of it, each a row of its own for `row` (offsets advanced by its strides).
    return cpu::parallel_for(inner, kParallelGrain, [&](int64_t begin, int64_t end) {
      int64_t offsets[BroadcastLayout::kMaxInputs] = {};
      for (int i = 0; i < inputs; ++i) offsets[i] = begin * w.stride[i][last];
      row(offsets, begin, end - begin);
    });
  }
  const int64_t grain = cpu::units_per_grain(inner);
  cpu::parallel_for(rows, grain, [&](int64_t first, int64_t end) {
    for_rows(w, inputs, first, end, row);
  });
}

// The binary ops without a transcendental function (their vector kernels give the functors' bits).
// A list of the exact ones, like exact_op's, so that a new kind is not counted exact by default.
bool exact_binary(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: case BinaryOp::sub: case BinaryOp::mul: case BinaryOp::div:
    case BinaryOp::minimum: case BinaryOp::maximum: case BinaryOp::equal: case BinaryOp::less:
    case BinaryOp::less_equal: case BinaryOp::greater: case BinaryOp::greater_equal:
    case BinaryOp::relu_backward: case BinaryOp::tanh_backward: case BinaryOp::sigmoid_backward:
    case BinaryOp::abs_backward:
      return true;
    default: return false;
  }
}

template <class T, class F>
void map_binary(BinaryOp op, const T* a, const T* b, T* out, const BroadcastLayout& layout, F f) {
  Walk w = k::collapse_walk(layout);
  int last = w.rank - 1;
  int64_t sa = w.stride[0][last], sb = w.stride[1][last];
  constexpr DType dtype = std::is_same<T, float>::value ? DType::f32 : DType::f64;
  for_each_row_parallel(w, 2, [&](const int64_t* offsets, int64_t out_offset, int64_t inner) {
    const T* pa = a + offsets[0];
    const T* pb = b + offsets[1];
    T* po = out + out_offset;
    const int broadcast = sa == 1 && sb == 1 ? 0 : sa == 1 && sb == 0 ? 1 : sa == 0 && sb == 1 ? 2 : -1;
    // i64 comparisons, rows shorter than two AVX-512 vectors, and short rows of the ops whose
    // vector kernel gives the functor's bits stay in the functor loop (no call per short row).
    if (std::is_floating_point<T>::value && broadcast >= 0 &&
        inner >= (exact_binary(op) ? kInlineElements + 1 : 32) &&
        cpu::simd::binary(op, dtype, pa, pb, po, inner, broadcast))
      return;
    if (sa == 1 && sb == 1) {
#pragma omp simd
      for (int64_t i = 0; i < inner; ++i) po[i] = f(pa[i], pb[i]);
    } else if (sa == 1 && sb == 0) {
      const T vb = pb[0];
#pragma omp simd
      for (int64_t i = 0; i < inner; ++i) po[i] = f(pa[i], vb);
    } else if (sa == 0 && sb == 1) {
      const T va = pa[0];
#pragma omp simd
      for (int64_t i = 0; i < inner; ++i) po[i] = f(va, pb[i]);
    } else {
      for (int64_t i = 0; i < inner; ++i) po[i] = f(pa[i * sa], pb[i * sb]);
    }
  });
}

}  // namespace

void CpuBackend::binary(BinaryOp op, DType dtype, const void* a_, const void* b_, void* out_,
                        const BroadcastLayout& layout) {
  if (dtype == DType::i64) {  // comparisons only (backend.h)
    check(is_comparison(op), "binary", "only comparisons take i64 inputs");
    const int64_t* a = static_cast<const int64_t*>(a_);
    const int64_t* b = static_cast<const int64_t*>(b_);
    int64_t* out = static_cast<int64_t*>(out_);
    switch (op) {
      case BinaryOp::equal: return map_binary(op, a, b, out, layout, k::Equal{});
      case BinaryOp::less: return map_binary(op, a, b, out, layout, k::Less{});
      case BinaryOp::less_equal: return map_binary(op, a, b, out, layout, k::LessEqual{});
      case BinaryOp::greater: return map_binary(op, a, b, out, layout, k::Greater{});
      case BinaryOp::greater_equal: return map_binary(op, a, b, out, layout, k::GreaterEqual{});
      default: return;
    }
  }
  dispatch_floating(dtype, "binary", [&](auto zero) {
    using T = decltype(zero);
    const T* a = static_cast<const T*>(a_);
    const T* b = static_cast<const T*>(b_);
    T* out = static_cast<T*>(out_);
    switch (op) {
      case BinaryOp::add: return map_binary(op, a, b, out, layout, k::Add{});
      case BinaryOp::sub: return map_binary(op, a, b, out, layout, k::Sub{});
      case BinaryOp::mul: return map_binary(op, a, b, out, layout, k::Mul{});
      case BinaryOp::div: return map_binary(op, a, b, out, layout, k::Div{});
      case BinaryOp::pow: return map_binary(op, a, b, out, layout, k::Pow{});
      case BinaryOp::minimum: return map_binary(op, a, b, out, layout, k::Minimum{});
      case BinaryOp::maximum: return map_binary(op, a, b, out, layout, k::Maximum{});
      case BinaryOp::equal: return map_binary(op, a, b, out, layout, k::Equal{});
      case BinaryOp::less: return map_binary(op, a, b, out, layout, k::Less{});
      case BinaryOp::less_equal: return map_binary(op, a, b, out, layout, k::LessEqual{});
      case BinaryOp::greater: return map_binary(op, a, b, out, layout, k::Greater{});
      case BinaryOp::greater_equal: return map_binary(op, a, b, out, layout, k::GreaterEqual{});
      case BinaryOp::relu_backward: return map_binary(op, a, b, out, layout, k::ReluBackward{});
      case BinaryOp::tanh_backward: return map_binary(op, a, b, out, layout, k::TanhBackward{});
      case BinaryOp::sigmoid_backward: return map_binary(op, a, b, out, layout, k::SigmoidBackward{});
      case BinaryOp::abs_backward: return map_binary(op, a, b, out, layout, k::AbsBackward{});
      case BinaryOp::gelu_backward: return map_binary(op, a, b, out, layout, k::GeluBackward{});
      case BinaryOp::gelu_tanh_backward: return map_binary(op, a, b, out, layout, k::GeluTanhBackward{});
      case BinaryOp::silu_backward: return map_binary(op, a, b, out, layout, k::SiluBackward{});
    }
  });
}

void CpuBackend::where(DType dtype, const void* condition_, const void* a_, const void* b_,
                       void* out_, const BroadcastLayout& layout) {
  dispatch_floating(dtype, "where", [&](auto zero) {
    using T = decltype(zero);
    const T* condition = static_cast<const T*>(condition_);
    const T* a = static_cast<const T*>(a_);
    const T* b = static_cast<const T*>(b_);
    T* out = static_cast<T*>(out_);
    Walk w = k::collapse_walk(layout);
    int last = w.rank - 1;
    int64_t sc = w.stride[0][last], sa = w.stride[1][last], sb = w.stride[2][last];
    for_each_row(w, 3, [&](const int64_t* offsets, int64_t out_offset, int64_t inner) {
      const T* pc = condition + offsets[0];
      const T* pa = a + offsets[1];
      const T* pb = b + offsets[2];
      T* po = out + out_offset;
      for (int64_t i = 0; i < inner; ++i) po[i] = pc[i * sc] != T(0) ? pa[i * sa] : pb[i * sb];
    });
  });
}

// ---------------------------------------------------------------- reductions

namespace {

// Sums accumulate as k::SumAccumulator says: in double for f32 and f64 (float sums over a whole
// dataset would otherwise lose digits), exactly for i64.
template <class T>
void reduce_sum(const T* x, T* out, int64_t outer, int64_t n, int64_t inner, double scale) {
  using Sum = k::SumAccumulator<T>;
  using Acc = typename Sum::type;
  if (inner == 1) {
    for (int64_t o = 0; o < outer; ++o) {
      const T* row = x + o * n;
      Acc total = 0;
#pragma omp simd reduction(+ : total)
      for (int64_t j = 0; j < n; ++j) total += static_cast<Acc>(row[j]);
      out[o] = Sum::finish(total, scale);
    }
    return;
  }
  std::vector<Acc> totals(inner);
  for (int64_t o = 0; o < outer; ++o) {
    std::fill(totals.begin(), totals.end(), Acc(0));
    Acc* t = totals.data();
    for (int64_t j = 0; j < n; ++j) {
      const T* row = x + (o * n + j) * inner;
#pragma omp simd
      for (int64_t i = 0; i < inner; ++i) t[i] += static_cast<Acc>(row[i]);
    }
    T* dst = out + o * inner;
    for (int64_t i = 0; i < inner; ++i) dst[i] = Sum::finish(t[i], scale);
  }
}

// Max/min propagate NaN, like the elementwise maximum/minimum.
template <class T, class Pick>
void reduce_extreme(const T* x, T* out, int64_t outer, int64_t n, int64_t inner, T start,
                    Pick pick) {
  for (int64_t o = 0; o < outer; ++o) {
    T* dst = out + o * inner;
    for (int64_t i = 0; i < inner; ++i) dst[i] = start;
    for (int64_t j = 0; j < n; ++j) {
      const T* row = x + (o * n + j) * inner;
      for (int64_t i = 0; i < inner; ++i) dst[i] = pick(row[i], dst[i]);
    }
  }
}

// log Σ e^x = m + log Σ e^(x - m) with m = max x, so nothing overflows; the special values
// (NaN, +inf, an all -inf axis) follow k::finish_logsumexp.
template <class T>
void reduce_logsumexp(const T* x, T* out, int64_t outer, int64_t n, int64_t inner) {
  reduce_extreme(x, out, outer, n, inner, -std::numeric_limits<T>::infinity(), k::Maximum{});
  std::vector<T> totals(inner);
  for (int64_t o = 0; o < outer; ++o) {
    T* m = out + o * inner;
    std::fill(totals.begin(), totals.end(), T(0));
    for (int64_t j = 0; j < n; ++j) {
      const T* row = x + (o * n + j) * inner;
      T* t = totals.data();
#pragma omp simd
      for (int64_t i = 0; i < inner; ++i) t[i] += std::exp(row[i] - m[i]);
    }
    // Where m is not finite the total is NaN or meaningless, and finish_logsumexp ignores it.
    for (int64_t i = 0; i < inner; ++i) m[i] = k::finish_logsumexp<T>({m[i], totals[i]});
  }
}

// Contiguous rows are summed in chunks that stay in L1, merged with k::merge_logsumexp (the
// form the CUDA kernels use for their parts of a row).
constexpr int64_t kLogSumExpChunk = 1024;

// Rows shorter than kShortRow: blocks of rows, x - max of every element in one scratch array and
// one vector exp over it (cpu_fused.cpp's short rows do the same), then the sums per row.
constexpr int64_t kShortRow = 64;
constexpr int64_t kBlockElements = 1024;

template <class T>
void reduce_logsumexp_short_rows(const T* x, T* out, int64_t rows, int64_t n) {
  const int64_t per_block = kBlockElements / n;
  constexpr DType dtype = std::is_same<T, float>::value ? DType::f32 : DType::f64;
  for (int64_t first = 0; first < rows; first += per_block) {
    const int64_t count = std::min(per_block, rows - first);
    T e[kBlockElements], m[kBlockElements];
    for (int64_t r = 0; r < count; ++r) {
      const T* row = x + (first + r) * n;
      T mr = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j < n; ++j) mr = k::Maximum{}(row[j], mr);
      m[r] = mr;
      // where the max is not finite the terms are not used (finish_logsumexp)
      const T shift = k::is_finite_value(mr) ? mr : T(0);
      for (int64_t j = 0; j < n; ++j) e[r * n + j] = row[j] - shift;
    }
    if (!cpu::simd::exp_in_place(dtype, e, count * n))
      for (int64_t i = 0; i < count * n; ++i) e[i] = std::exp(e[i]);
    for (int64_t r = 0; r < count; ++r) {
      T total = 0;
      for (int64_t j = 0; j < n; ++j) total += e[r * n + j];
      out[first + r] = k::finish_logsumexp<T>({m[r], k::is_finite_value(m[r]) ? total : T(0)});
    }
  }
}

template <class T>
void reduce_logsumexp_rows(const T* x, T* out, int64_t rows, int64_t n) {
  if (n < kShortRow && n > 0) return reduce_logsumexp_short_rows(x, out, rows, n);
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * n;
    k::LogSumExpPartial<T> whole = k::empty_logsumexp_partial<T>();
    for (int64_t start = 0; start < n; start += kLogSumExpChunk) {
      const int64_t end = std::min(start + kLogSumExpChunk, n);
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t j = start; j < end; ++j) m = k::Maximum{}(row[j], m);
      T total = 0;
      double vector_total;
      if (!k::is_finite_value(m)) {
      } else if (cpu::simd::exp_sum(std::is_same<T, float>::value ? DType::f32 : DType::f64,
                                    row + start, end - start, m, 1.0, &vector_total)) {
        total = static_cast<T>(vector_total);  // summed in T: the cast is exact
      } else {
#pragma omp simd reduction(+ : total)
        for (int64_t j = start; j < end; ++j) total += std::exp(row[j] - m);
      }
      whole = k::merge_logsumexp(whole, {m, total});
    }
    out[r] = k::finish_logsumexp(whole);
  }
}

}  // namespace

void CpuBackend::reduce(ReduceOp op, DType dtype, const void* x_, void* out_, int64_t outer,
                        int64_t n, int64_t inner) {
  dispatch_reduce(op, dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* x = static_cast<const T*>(x_);
    T* out = static_cast<T*>(out_);
    switch (op) {
      case ReduceOp::sum: return reduce_sum(x, out, outer, n, inner, 1.0);
      case ReduceOp::max:
        return reduce_extreme(x, out, outer, n, inner, k::lowest_value<T>(), k::Maximum{});
      case ReduceOp::min:
        return reduce_extreme(x, out, outer, n, inner, k::highest_value<T>(), k::Minimum{});
      case ReduceOp::mean:
      case ReduceOp::logsumexp:
        if constexpr (std::is_floating_point<T>::value) {  // dispatch_reduce refuses i64 here
          if (op == ReduceOp::mean) return reduce_sum(x, out, outer, n, inner, k::mean_scale(n));
          if (inner == 1) return reduce_logsumexp_rows(x, out, outer, n);
          return reduce_logsumexp(x, out, outer, n, inner);
        }
    }
  });
}

void CpuBackend::argmax(DType dtype, const void* x_, int64_t* out, int64_t outer, int64_t n,
                        int64_t inner) {
  dispatch_any(dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* x = static_cast<const T*>(x_);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        // A left-to-right scan with the shared rule (k::argmax_prefers): the first largest,
        // and the first NaN once one is seen.
        int64_t best = 0;
        T best_value = x[o * n * inner + i];
        for (int64_t j = 1; j < n && best_value == best_value; ++j) {
          T v = x[(o * n + j) * inner + i];
          if (k::argmax_prefers(v, j, best_value, best)) {
            best = j;
            best_value = v;
          }
        }
        out[o * inner + i] = best;
      }
  });
}

}  // namespace tg
