// src/cpu/cpu_fused.cpp — the fused primitives of functional.h on the CPU: loops around the
// shared per-element math of src/kernels/fused_math.h and the row rules of src/kernels/row_math.h.
//
// Pointwise kernels are one pass: the vector kernel of src/cpu/simd.h where the kind has one, else
// the functor loop. Softmax-family kernels walk one distribution (row) at a time: a max pass and
// a Σ e^x pass per chunk of the row (the chunks' statistics merged by the shared rule), then a
// write pass; a chunk stays in L1 between its passes. Contiguous rows shorter than a vector
// register go through blocks of rows instead (see "short rows"), and distributions along a
// non-last axis through strided loops. Big kernels are split over threads (src/cpu/thread_pool.h):
// pointwise kernels in fixed pieces of elements, row kernels in whole rows or blocks of rows.
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "../kernels/fused_math.h"
#include "cpu_backend.h"
#include "simd.h"
#include "thread_pool.h"

namespace tg {

namespace k = kernels;
namespace simd = cpu::simd;

namespace {

using cpu::kParallelGrain;  // thread_pool.h

template <class T> constexpr DType dtype_of() {
  return std::is_same<T, float>::value ? DType::f32 : DType::f64;
}

// ---------------------------------------------------------------- pointwise

// The kind's inputs at element i; inputs the kind does not take read as 0 (and are never loaded).
template <class F, class T>
struct Operands {
  const T *a, *b, *c, *d;
  explicit Operands(const Backend::PointwiseInputs& in)
      : a(static_cast<const T*>(in.data[0])), b(static_cast<const T*>(in.data[1])),
        c(static_cast<const T*>(in.data[2])), d(static_cast<const T*>(in.data[3])) {}
  T A(int64_t i) const { return a[i]; }
  T B(int64_t i) const {
    if constexpr (F::arity > 1) return b[i];
    else return T(0);
  }
  T C(int64_t i) const {
    if constexpr (F::arity > 2) return c[i];
    else return T(0);
  }
  T D(int64_t i) const {
    if constexpr (F::arity > 3) return d[i];
    else return T(0);
  }
};

// The functor loops over elements [begin, end): out[i] = f(...), or the Σ of the blocks of
// simd::kSumBlock elements (each summed in T, the blocks' sums in double).
template <class F, class T>
void pointwise_functors(const Backend::PointwiseInputs& inputs, T* out, int64_t begin,
                        int64_t end, T param) {
  Operands<F, T> in(inputs);
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) out[i] = F::value(in.A(i), in.B(i), in.C(i), in.D(i), param);
}

template <class F, class T>
double pointwise_sum_functors(const Backend::PointwiseInputs& inputs, int64_t begin, int64_t end,
                              T param) {
  Operands<F, T> in(inputs);
  double total = 0;
  for (int64_t start = begin; start < end; start += simd::kSumBlock) {
    const int64_t stop = start + simd::kSumBlock < end ? start + simd::kSumBlock : end;
    T block = 0;
#pragma omp simd reduction(+ : block)
    for (int64_t i = start; i < stop; ++i) block += F::value(in.A(i), in.B(i), in.C(i), in.D(i), param);
    total += static_cast<double>(block);
  }
  return total;
}

// A summed pointwise kernel: pieces of kSumPiece elements (each the Σ of its blocks), the pieces'
// sums added in order, so the result is the same for every thread count.
constexpr int64_t kSumPiece = 64 * simd::kSumBlock;

template <class F, class T>
void pointwise_rows(Backend::Pointwise kind, const Backend::PointwiseInputs& inputs, T* out,
                    int64_t n, T param, bool sum, double scale) {
  if (!sum) {
    cpu::parallel_for(n, kParallelGrain, [&](int64_t begin, int64_t end) {
      if (!simd::pointwise(kind, dtype_of<T>(), inputs.data, out, begin, end, param))
        pointwise_functors<F, T>(inputs, out, begin, end, param);
    });
    return;
  }
  const int64_t pieces = (n + kSumPiece - 1) / kSumPiece;
  double few[8];
  std::vector<double> many(pieces > 8 ? pieces : 0);
  double* partial = pieces > 8 ? many.data() : few;
  auto piece = [&](int64_t p) {
    const int64_t begin = p * kSumPiece, end = begin + kSumPiece < n ? begin + kSumPiece : n;
    if (!simd::pointwise_sum(kind, dtype_of<T>(), inputs.data, begin, end, param, &partial[p]))
      partial[p] = pointwise_sum_functors<F, T>(inputs, begin, end, param);
  };
  cpu::parallel_tasks(pieces, piece);
  double total = 0;
  for (int64_t p = 0; p < pieces; ++p) total += partial[p];
  out[0] = static_cast<T>(total * scale);
}

template <class F, int K, class T>
void pointwise_grad(const T* grad, bool grad_is_scalar, T scale, const Operands<F, T>& in,
                    T* out, int64_t begin, int64_t end, T param) {
  if (grad_is_scalar) {
    const T g = grad[0] * scale;
#pragma omp simd
    for (int64_t i = begin; i < end; ++i)
      out[i] = g * F::template grad<K>(in.A(i), in.B(i), in.C(i), in.D(i), param);
    return;
  }
#pragma omp simd
  for (int64_t i = begin; i < end; ++i)
    out[i] = grad[i] * scale * F::template grad<K>(in.A(i), in.B(i), in.C(i), in.D(i), param);
}

template <class F, class T>
void pointwise_grad_functors(int input, const T* grad, bool grad_is_scalar, T scale,
                             const Backend::PointwiseInputs& inputs, T* out, int64_t begin,
                             int64_t end, T param) {
  Operands<F, T> in(inputs);
  if (input == 0) return pointwise_grad<F, 0>(grad, grad_is_scalar, scale, in, out, begin, end, param);
  if constexpr (F::arity > 1)
    if (input == 1) return pointwise_grad<F, 1>(grad, grad_is_scalar, scale, in, out, begin, end, param);
  if constexpr (F::arity > 2)
    if (input == 2) return pointwise_grad<F, 2>(grad, grad_is_scalar, scale, in, out, begin, end, param);
  if constexpr (F::arity > 3)
    if (input == 3) return pointwise_grad<F, 3>(grad, grad_is_scalar, scale, in, out, begin, end, param);
}

template <class F, class T>
void pointwise_grad_rows(Backend::Pointwise kind, int input, const T* grad, bool grad_is_scalar,
                         T scale, const Backend::PointwiseInputs& inputs, T* out, int64_t n,
                         T param) {
  check(input >= 0 && input < F::arity, "pointwise_backward", "input ", input,
        " out of range for a kind with ", F::arity, " inputs");
  cpu::parallel_for(n, kParallelGrain, [&](int64_t begin, int64_t end) {
    if (!simd::pointwise_grad(kind, dtype_of<T>(), input, grad, grad_is_scalar, scale,
                              inputs.data, out, begin, end, param))
      pointwise_grad_functors<F, T>(input, grad, grad_is_scalar, scale, inputs, out, begin, end,
                                    param);
  });
}

using k::dispatch_pointwise;  // Pointwise kind -> functor: src/kernels/dispatch.h

// ---------------------------------------------------------------- softmax rows

using Contiguous = std::integral_constant<int64_t, 1>;

// Calls row(offset, stride, d) for each distribution d of the layout: its elements are
// x[offset + j*stride], j < n. Contiguous rows (inner == 1) get a compile-time stride of 1.
// Many distributions go to the threads in whole ones (each writes only its own outputs).
template <class Row>
void for_each_distribution(const Backend::SoftmaxLayout& layout, Row row) {
  const int64_t n = layout.n, inner = layout.inner;
  const int64_t per_outer = n * inner;  // elements per outer index
  const int64_t grain = cpu::units_per_grain(per_outer);
  cpu::parallel_for(layout.outer, grain, [&](int64_t first, int64_t end) {
    if (inner == 1) {
      for (int64_t o = first; o < end; ++o) row(o * n, Contiguous{}, o);
      return;
    }
    for (int64_t o = first; o < end; ++o)
      for (int64_t i = 0; i < inner; ++i) row(o * n * inner + i, inner, o * inner + i);
  });
}

template <class S> constexpr bool is_contiguous() { return std::is_same<S, Contiguous>::value; }

// 1/T of distribution d (k::inverse_temperature).
template <class T>
T inverse_temperature(const Backend::SoftmaxLayout& layout, int64_t d) {
  return k::inverse_temperature(layout.temperature, static_cast<const T*>(layout.temperatures),
                                layout.single_temperature, d);
}

using k::RowStats;

// The statistics of a row (k::RowStats: shift and log Σ, with the rules for all -inf and NaN
// rows), gathered one chunk at a time: each chunk's max and Σ while it is in L1, then merged into
// the row's with k::merge_row_partials, the same merge the CUDA kernels use between threads.
constexpr int64_t kRowChunk = 1024;

template <class T, class S>
RowStats<T> row_stats(const T* x, int64_t n, S stride, T inv_t) {
  if constexpr (is_contiguous<S>()) {
    double max, log_sum;
    if (simd::row_stats(dtype_of<T>(), x, n, inv_t, &max, &log_sum))
      return {static_cast<T>(max), static_cast<T>(log_sum)};
  }
  k::RowPartial<T> whole = k::empty_row_partial<T>();
  for (int64_t start = 0; start < n; start += kRowChunk) {
    const int64_t end = start + kRowChunk < n ? start + kRowChunk : n;
    T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
    for (int64_t j = start; j < end; ++j) m = k::row_max(m, x[j * stride]);
    const T shift = k::row_shift(m);
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = start; j < end; ++j) s += std::exp(k::shifted(x[j * stride], shift, inv_t));
    whole = k::merge_row_partials(whole, {m, s}, inv_t);
  }
  return k::finish_row_stats(whole);
}

// The loss of one row from its stats (k::label_cross_entropy for a label, Σ of
// k::weighted_log_probability for probabilities; the Σ log p_j of a label's smoothing term only
// when ε > 0).
template <class T, class S>
T cross_entropy_row(const T* x, S stride, int64_t n, int64_t label, const T* t, T smoothing,
                    T inv_n, T inv_t, RowStats<T> st) {
  if (!t) {
    T picked = k::log_probability(x[label * stride], st, inv_t);
    T sum = 0;
    if (smoothing > T(0)) {
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < n; ++j) sum += k::log_probability(x[j * stride], st, inv_t);
    }
    return k::label_cross_entropy(picked, sum, smoothing, inv_n);
  }
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    T weight = k::smoothed_target(t[j * stride], smoothing, inv_n);
    sum += k::weighted_log_probability(weight, k::log_probability(x[j * stride], st, inv_t));
  }
  return -sum;
}

// ---------------------------------------------------------------- short rows, in blocks
// A row shorter than a vector register (10 classes of MNIST and CIFAR) would leave every exp in
// the loops above scalar. Contiguous short rows are therefore processed a block of rows at a
// time: the per-row arithmetic (max, shifts, sums) in short loops, and every exp in one long
// vectorised loop over the whole block, through scratch arrays that stay in L1.

constexpr int64_t kShortRow = 64;         // rows shorter than this use blocks
constexpr int64_t kBlockElements = 1024;  // elements per block (rows · n)

bool short_rows(const Backend::SoftmaxLayout& layout) {
  return layout.inner == 1 && layout.n < kShortRow;
}

// Calls block(first_row, rows) over the distributions of a contiguous short-row layout; the
// blocks go to the threads when there are many (each block keeps its scratch on its own stack).
template <class Block>
void for_each_row_block(const Backend::SoftmaxLayout& layout, Block block) {
  const int64_t per_block = kBlockElements / layout.n;
  const int64_t blocks = (layout.outer + per_block - 1) / per_block;
  auto run = [&](int64_t b) {
    const int64_t first = b * per_block;
    block(first, first + per_block < layout.outer ? per_block : layout.outer - first);
  };
  if (layout.outer * layout.n < 2 * kParallelGrain) {
    for (int64_t b = 0; b < blocks; ++b) run(b);
    return;
  }
  cpu::parallel_tasks(blocks, run);
}

template <class T>
void exp_in_place(T* v, int64_t count) {
  if (simd::exp_in_place(dtype_of<T>(), v, count)) return;
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) v[i] = std::exp(v[i]);
}

// to[i] = e^from[i], from an input array to another.
template <class T>
void exp_of(const T* from, T* to, int64_t count) {
  if (simd::unary(UnaryOp::exp, dtype_of<T>(), from, to, count, 0, 0)) return;
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) to[i] = std::exp(from[i]);
}

// k::row_max over a short row in four interleaved chains (a row of 10 would otherwise be one
// chain of 10 dependent compares). Exact: no chain ever holds a NaN, so combining them is too.
template <class T>
T short_row_max(const T* x, int64_t n) {
  T m[4] = {-std::numeric_limits<T>::infinity(), m[0], m[0], m[0]};
  int64_t j = 0;
  for (; j + 4 <= n; j += 4)
    for (int c = 0; c < 4; ++c) m[c] = k::row_max(m[c], x[j + c]);
  for (; j < n; ++j) m[0] = k::row_max(m[0], x[j]);
  return k::row_max(k::row_max(m[0], m[1]), k::row_max(m[2], m[3]));
}

// Σ over a short row in two interleaved chains, for the same reason.
template <class T>
T short_row_sum(const T* x, int64_t n) {
  T s[2] = {0, 0};
  int64_t j = 0;
  for (; j + 2 <= n; j += 2) s[0] += x[j], s[1] += x[j + 1];
  if (j < n) s[0] += x[j];
  return s[0] + s[1];
}

// RowStats of `rows` rows starting at x (row r is distribution first + r): the max and the
// shifts row by row, every exp of the block in one vector loop, the sums row by row, and the logs
// of the block's sums in one vector loop. Leaves e^((x - shift)/T) of every element in e (a
// scratch array of kBlockElements).
template <class T>
void block_row_stats(const T* x, int64_t first, int64_t rows, const Backend::SoftmaxLayout& layout,
                     T* e, RowStats<T>* stats) {
  const int64_t n = layout.n;
  T sum[kBlockElements], log_sum[kBlockElements];
  const bool one_temperature = layout.temperatures == nullptr;
  const T inv_t_all = inverse_temperature<T>(layout, first);
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    const T inv_t = one_temperature ? inv_t_all : inverse_temperature<T>(layout, first + r);
    const T m = short_row_max(xr, n);
    const T shift = k::row_shift(m);  // 0 for an all -inf row: every e is then 0
    for (int64_t j = 0; j < n; ++j) e[r * n + j] = k::shifted(xr[j], shift, inv_t);
    stats[r].max = m;
  }
  exp_in_place(e, rows * n);
  for (int64_t r = 0; r < rows; ++r) sum[r] = short_row_sum(e + r * n, n);
  if (!simd::unary(UnaryOp::log, dtype_of<T>(), sum, log_sum, rows, 0, 0))
    for (int64_t r = 0; r < rows; ++r) log_sum[r] = std::log(sum[r]);
  for (int64_t r = 0; r < rows; ++r)
    stats[r] = k::finish_row_stats<T>({stats[r].max, sum[r]}, log_sum[r]);
}

// log p_j = (x_j - max)/T - log Σ for a block of rows, into `out`.
template <class T>
void block_log_probs(const T* x, int64_t first, int64_t rows, const Backend::SoftmaxLayout& layout,
                     const RowStats<T>* stats, T* out) {
  const int64_t n = layout.n;
  for (int64_t r = 0; r < rows; ++r) {
    const T inv_t = inverse_temperature<T>(layout, first + r);
    for (int64_t j = 0; j < n; ++j) out[r * n + j] = k::log_probability(x[r * n + j], stats[r], inv_t);
  }
}

template <class T>
void softmax_short(Backend::SoftmaxKind kind, const T* x, T* y, const Backend::SoftmaxLayout& layout) {
  const int64_t n = layout.n;
  for_each_row_block(layout, [&](int64_t first, int64_t rows) {
    T e[kBlockElements];
    RowStats<T> stats[kBlockElements];
    const T* xb = x + first * n;
    T* yb = y + first * n;
    block_row_stats(xb, first, rows, layout, e, stats);
    if (kind == Backend::SoftmaxKind::log_softmax)
      return block_log_probs(xb, first, rows, layout, stats, yb);
    for (int64_t r = 0; r < rows; ++r) {
      const T scale = std::exp(-stats[r].log_sum);  // 1/Σ, and 0 for the zero distribution
      for (int64_t j = 0; j < n; ++j) yb[r * n + j] = e[r * n + j] * scale;
    }
  });
}

template <class T>
void log_softmax_backward_short(const T* grad_y, const T* y, T* grad_x,
                                const Backend::SoftmaxLayout& layout) {
  const int64_t n = layout.n;
  for_each_row_block(layout, [&](int64_t first, int64_t rows) {
    T e[kBlockElements];
    const int64_t offset = first * n;
    exp_of(y + offset, e, rows * n);  // softmax = e^y
    for (int64_t r = 0; r < rows; ++r) {
      const T* g = grad_y + offset + r * n;
      T* gx = grad_x + offset + r * n;
      const T inv_t = inverse_temperature<T>(layout, first + r);
      const T sum = short_row_sum(g, n);
      for (int64_t j = 0; j < n; ++j) gx[j] = (g[j] - e[r * n + j] * sum) * inv_t;
    }
  });
}

template <class T>
void kl_logits_short(const T* p_logits, const T* q_logits, T* kl, T* stats,
                     const Backend::SoftmaxLayout& layout) {
  const int64_t n = layout.n;
  const RowStats<T> uniform = k::uniform_row_stats<T>(n);
  for_each_row_block(layout, [&](int64_t first, int64_t rows) {
    T log_p[kBlockElements], log_q[kBlockElements], p[kBlockElements];
    RowStats<T> sp[kBlockElements], sq[kBlockElements];
    const T* a = p_logits + first * n;
    block_row_stats(a, first, rows, layout, p, sp);
    block_log_probs(a, first, rows, layout, sp, log_p);
    if (q_logits) {
      const T* b = q_logits + first * n;
      block_row_stats(b, first, rows, layout, log_q, sq);
      block_log_probs(b, first, rows, layout, sq, log_q);
    } else {
      for (int64_t r = 0; r < rows; ++r) sq[r] = uniform;
      for (int64_t i = 0; i < rows * n; ++i) log_q[i] = -uniform.log_sum;
    }
    for (int64_t i = 0; i < rows * n; ++i) p[i] = log_p[i];
    exp_in_place(p, rows * n);
    for (int64_t r = 0; r < rows; ++r) {
      T total = 0;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t i = r * n + j;
        total += k::p_log_ratio(p[i], log_p[i], log_q[i]);
      }
      const int64_t d = first + r;
      kl[d] = total;
      T* st = stats + 4 * d;
      st[0] = sp[r].max, st[1] = sp[r].log_sum, st[2] = sq[r].max, st[3] = sq[r].log_sum;
    }
  });
}

template <class T>
void kl_logits_backward_short(const T* grad_kl, const T* p_logits, const T* q_logits, const T* kl,
                              const T* stats, T* grad_p, T* grad_q,
                              const Backend::SoftmaxLayout& layout) {
  const int64_t n = layout.n;
  for_each_row_block(layout, [&](int64_t first, int64_t rows) {
    T log_p[kBlockElements], log_q[kBlockElements], p[kBlockElements];
    RowStats<T> sp[kBlockElements], sq[kBlockElements];
    for (int64_t r = 0; r < rows; ++r) {
      const T* st = stats + 4 * (first + r);
      sp[r] = {st[0], st[1]};
      sq[r] = {st[2], st[3]};
    }
    block_log_probs(p_logits + first * n, first, rows, layout, sp, log_p);
    if (q_logits) block_log_probs(q_logits + first * n, first, rows, layout, sq, log_q);
    else
      for (int64_t i = 0; i < rows * n; ++i) log_q[i] = -sq[0].log_sum;
    for (int64_t i = 0; i < rows * n; ++i) p[i] = log_p[i];
    exp_in_place(p, rows * n);
    if (grad_p)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t d = first + r;
        const T g = grad_kl[d], inv_t = inverse_temperature<T>(layout, d);
        for (int64_t j = 0; j < n; ++j) {
          const int64_t i = r * n + j;
          grad_p[d * n + j] = g * k::kl_logits_grad_p(p[i], log_p[i], log_q[i], kl[d], inv_t);
        }
      }
    if (grad_q && q_logits) {
      exp_in_place(log_q, rows * n);  // now q
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t d = first + r;
        const T g = grad_kl[d], inv_t = inverse_temperature<T>(layout, d);
        for (int64_t j = 0; j < n; ++j)
          grad_q[d * n + j] = g * k::kl_logits_grad_q(p[r * n + j], log_q[r * n + j], inv_t);
      }
    }
  });
}


template <class T>
void cross_entropy_short(const T* logits, const int64_t* labels, const T* target, T smoothing,
                         T* loss, T* stats, const Backend::SoftmaxLayout& layout) {
  const int64_t n = layout.n;
  const T inv_n = T(1) / static_cast<T>(n);
  for_each_row_block(layout, [&](int64_t first, int64_t rows) {
    T e[kBlockElements];
    RowStats<T> st[kBlockElements];
    block_row_stats(logits + first * n, first, rows, layout, e, st);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t d = first + r;
      loss[d] = cross_entropy_row(logits + d * n, Contiguous{}, n, labels ? labels[d] : -1,
                                  target ? target + d * n : nullptr, smoothing, inv_n,
                                  inverse_temperature<T>(layout, d), st[r]);
      stats[2 * d] = st[r].max;
      stats[2 * d + 1] = st[r].log_sum;
    }
  });
}

template <class T>
void cross_entropy_backward_short(const T* grad_loss, const T* logits, const int64_t* labels,
                                  const T* target, T smoothing, const T* stats, T* grad_logits,
                                  T* grad_target, const Backend::SoftmaxLayout& layout) {
  const int64_t n = layout.n;
  const T inv_n = T(1) / static_cast<T>(n);
  for_each_row_block(layout, [&](int64_t first, int64_t rows) {
    T log_p[kBlockElements], p[kBlockElements];
    RowStats<T> st[kBlockElements];
    for (int64_t r = 0; r < rows; ++r) st[r] = {stats[2 * (first + r)], stats[2 * (first + r) + 1]};
    block_log_probs(logits + first * n, first, rows, layout, st, log_p);
    for (int64_t i = 0; i < rows * n; ++i) p[i] = log_p[i];
    exp_in_place(p, rows * n);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t d = first + r;
      const T g = grad_loss[d], inv_t = inverse_temperature<T>(layout, d);
      const T* t = target ? target + d * n : nullptr;
      if (grad_logits) {
        T* gx = grad_logits + d * n;
        if (labels) {
          const int64_t label = labels[d];
          for (int64_t j = 0; j < n; ++j)
            gx[j] = g * inv_t *
                    k::cross_entropy_grad(p[r * n + j], k::label_target(j == label, smoothing, inv_n), T(1));
        } else {
          T target_sum = 0;
          for (int64_t j = 0; j < n; ++j) target_sum += k::smoothed_target(t[j], smoothing, inv_n);
          for (int64_t j = 0; j < n; ++j)
            gx[j] = g * inv_t *
                    k::cross_entropy_grad(p[r * n + j], k::smoothed_target(t[j], smoothing, inv_n),
                                          target_sum);
        }
      }
      if (grad_target && !labels)
        for (int64_t j = 0; j < n; ++j)
          grad_target[d * n + j] = -g * (T(1) - smoothing) * log_p[r * n + j];
    }
  });
}

// ---------------------------------------------------------------- softmax / log_softmax

template <class T>
void softmax_rows(Backend::SoftmaxKind kind, const T* x, T* y,
                  const Backend::SoftmaxLayout& layout) {
  if (short_rows(layout)) return softmax_short(kind, x, y, layout);
  const int64_t n = layout.n;
  for_each_distribution(layout, [&](int64_t offset, auto stride, int64_t d) {
    const T* xr = x + offset;
    T* yr = y + offset;
    const T inv_t = inverse_temperature<T>(layout, d);
    if constexpr (is_contiguous<decltype(stride)>()) {
      if (kind == Backend::SoftmaxKind::log_softmax ? simd::log_softmax_row(dtype_of<T>(), xr, yr, n, inv_t)
                                                    : simd::softmax_row(dtype_of<T>(), xr, yr, n, inv_t))
        return;
    }
    if (kind == Backend::SoftmaxKind::log_softmax) {
      RowStats<T> st = row_stats(xr, n, stride, inv_t);
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) yr[j * stride] = k::log_probability(xr[j * stride], st, inv_t);
      return;
    }
    // softmax: keep each e^((x - m)/T) in y, then scale by 1/Σ (one exp per element). The whole
    // row is one part here (k::row_shift and k::inverse_row_sum give the special rows).
    T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < n; ++j) m = k::row_max(m, xr[j * stride]);
    const T shift = k::row_shift(m);
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < n; ++j) {
      T e = std::exp(k::shifted(xr[j * stride], shift, inv_t));
      yr[j * stride] = e;
      s += e;
    }
    const T r = k::inverse_row_sum(s);
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) yr[j * stride] *= r;
  });
}

template <class T>
void softmax_backward_rows(Backend::SoftmaxKind kind, const T* grad_y, const T* y, T* grad_x,
                           const Backend::SoftmaxLayout& layout) {
  if (kind == Backend::SoftmaxKind::log_softmax && short_rows(layout))
    return log_softmax_backward_short(grad_y, y, grad_x, layout);
  const int64_t n = layout.n;
  for_each_distribution(layout, [&](int64_t offset, auto stride, int64_t d) {
    const T* g = grad_y + offset;
    const T* yr = y + offset;
    T* gx = grad_x + offset;
    const T inv_t = inverse_temperature<T>(layout, d);
    if constexpr (is_contiguous<decltype(stride)>()) {
      if (kind == Backend::SoftmaxKind::log_softmax
              ? simd::log_softmax_backward_row(dtype_of<T>(), g, yr, gx, n, inv_t)
              : simd::softmax_backward_row(dtype_of<T>(), g, yr, gx, n, inv_t))
        return;
    }
    if (kind == Backend::SoftmaxKind::log_softmax) {
      T sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < n; ++j) sum += g[j * stride];
#pragma omp simd
      for (int64_t j = 0; j < n; ++j)
        gx[j * stride] = k::log_softmax_grad(g[j * stride], yr[j * stride], sum, inv_t);
      return;
    }
    T dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < n; ++j) dot += g[j * stride] * yr[j * stride];
#pragma omp simd
    for (int64_t j = 0; j < n; ++j)
      gx[j * stride] = k::softmax_grad(g[j * stride], yr[j * stride], dot, inv_t);
  });
}

// ---------------------------------------------------------------- KL from logits

// stats per distribution: (max_p, log Σ_p, max_q, log Σ_q); a uniform Q has (0, log n).
template <class T>
void kl_logits_rows(const T* p_logits, const T* q_logits, T* kl, T* stats,
                    const Backend::SoftmaxLayout& layout) {
  if (short_rows(layout)) return kl_logits_short(p_logits, q_logits, kl, stats, layout);
  const int64_t n = layout.n;
  for_each_distribution(layout, [&](int64_t offset, auto stride, int64_t d) {
    const T* a = p_logits + offset;
    const T inv_t = inverse_temperature<T>(layout, d);
    RowStats<T> sp = row_stats(a, n, stride, inv_t);
    RowStats<T> sq = k::uniform_row_stats<T>(n);
    T total = 0;
    if constexpr (is_contiguous<decltype(stride)>()) {
      if (q_logits) sq = row_stats(q_logits + offset, n, stride, inv_t);
      simd::KlRow row;
      row.p = a, row.q = q_logits ? q_logits + offset : nullptr, row.n = n;
      row.p_max = sp.max, row.p_log_sum = sp.log_sum, row.q_max = sq.max, row.q_log_sum = sq.log_sum;
      row.inv_t = inv_t;
      double vector_total;
      if (simd::kl_row(dtype_of<T>(), row, &vector_total)) {
        kl[d] = static_cast<T>(vector_total);
        T* s = stats + 4 * d;
        s[0] = sp.max, s[1] = sp.log_sum, s[2] = sq.max, s[3] = sq.log_sum;
        return;
      }
    }
    if (q_logits) {
      const T* b = q_logits + offset;
      sq = row_stats(b, n, stride, inv_t);
#pragma omp simd reduction(+ : total)
      for (int64_t j = 0; j < n; ++j) {
        T log_p = k::log_probability(a[j * stride], sp, inv_t);
        T log_q = k::log_probability(b[j * stride], sq, inv_t);
        total += k::p_log_ratio(std::exp(log_p), log_p, log_q);
      }
    } else {
      const T log_q = -sq.log_sum;
#pragma omp simd reduction(+ : total)
      for (int64_t j = 0; j < n; ++j) {
        T log_p = k::log_probability(a[j * stride], sp, inv_t);
        total += k::p_log_ratio(std::exp(log_p), log_p, log_q);
      }
    }
    kl[d] = total;
    T* s = stats + 4 * d;
    s[0] = sp.max, s[1] = sp.log_sum, s[2] = sq.max, s[3] = sq.log_sum;
  });
}

template <class T>
void kl_logits_backward_rows(const T* grad_kl, const T* p_logits, const T* q_logits,
                             const T* kl, const T* stats, T* grad_p, T* grad_q,
                             const Backend::SoftmaxLayout& layout) {
  if (short_rows(layout))
    return kl_logits_backward_short(grad_kl, p_logits, q_logits, kl, stats, grad_p, grad_q, layout);
  const int64_t n = layout.n;
  for_each_distribution(layout, [&](int64_t offset, auto stride, int64_t d) {
    const T* a = p_logits + offset;
    const T* b = q_logits ? q_logits + offset : nullptr;
    const T inv_t = inverse_temperature<T>(layout, d);
    const T g = grad_kl[d], divergence = kl[d];
    const T* s = stats + 4 * d;
    const RowStats<T> sp = {s[0], s[1]}, sq = {s[2], s[3]};
    if constexpr (is_contiguous<decltype(stride)>()) {
      simd::KlRow row;
      row.p = a, row.q = b, row.n = n;
      row.p_max = sp.max, row.p_log_sum = sp.log_sum, row.q_max = sq.max, row.q_log_sum = sq.log_sum;
      row.inv_t = inv_t, row.grad = g, row.kl = divergence;
      row.grad_p = grad_p ? grad_p + offset : nullptr;
      row.grad_q = grad_q && b ? grad_q + offset : nullptr;
      if (simd::kl_row_backward(dtype_of<T>(), row)) return;
    }
    if (grad_p) {
      T* gp = grad_p + offset;
      if (b) {
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          T log_p = k::log_probability(a[j * stride], sp, inv_t);
          T log_q = k::log_probability(b[j * stride], sq, inv_t);
          gp[j * stride] = g * k::kl_logits_grad_p(std::exp(log_p), log_p, log_q, divergence, inv_t);
        }
      } else {
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          T log_p = k::log_probability(a[j * stride], sp, inv_t);
          gp[j * stride] =
              g * k::kl_logits_grad_p(std::exp(log_p), log_p, -sq.log_sum, divergence, inv_t);
        }
      }
    }
    if (grad_q && b) {
      T* gq = grad_q + offset;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        T p = std::exp(k::log_probability(a[j * stride], sp, inv_t));
        T q = std::exp(k::log_probability(b[j * stride], sq, inv_t));
        gq[j * stride] = g * k::kl_logits_grad_q(p, q, inv_t);
      }
    }
  });
}

// ---------------------------------------------------------------- cross-entropy

// stats per distribution: (max, log Σ).
template <class T>
void cross_entropy_rows(const T* logits, const int64_t* labels, const T* target, T smoothing,
                        T* loss, T* stats, const Backend::SoftmaxLayout& layout) {
  if (short_rows(layout))
    return cross_entropy_short(logits, labels, target, smoothing, loss, stats, layout);
  const int64_t n = layout.n;
  const T inv_n = T(1) / static_cast<T>(n);
  for_each_distribution(layout, [&](int64_t offset, auto stride, int64_t d) {
    const T* x = logits + offset;
    const T inv_t = inverse_temperature<T>(layout, d);
    RowStats<T> st = row_stats(x, n, stride, inv_t);
    loss[d] = cross_entropy_row(x, stride, n, labels ? labels[d] : -1,
                                target ? target + offset : nullptr, smoothing, inv_n, inv_t, st);
    stats[2 * d] = st.max;
    stats[2 * d + 1] = st.log_sum;
  });
}

template <class T>
void cross_entropy_backward_rows(const T* grad_loss, const T* logits, const int64_t* labels,
                                 const T* target, T smoothing, const T* stats, T* grad_logits,
                                 T* grad_target, const Backend::SoftmaxLayout& layout) {
  if (short_rows(layout))
    return cross_entropy_backward_short(grad_loss, logits, labels, target, smoothing, stats,
                                        grad_logits, grad_target, layout);
  const int64_t n = layout.n;
  const T inv_n = T(1) / static_cast<T>(n);
  for_each_distribution(layout, [&](int64_t offset, auto stride, int64_t d) {
    const T* x = logits + offset;
    const T inv_t = inverse_temperature<T>(layout, d);
    const T g = grad_loss[d];
    const RowStats<T> st = {stats[2 * d], stats[2 * d + 1]};
    if (grad_logits) {
      T* gx = grad_logits + offset;
      if (labels) {
        const int64_t label = labels[d];
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          T p = std::exp(k::log_probability(x[j * stride], st, inv_t));
          gx[j * stride] =
              g * inv_t * k::cross_entropy_grad(p, k::label_target(j == label, smoothing, inv_n), T(1));
        }
      } else {
        const T* t = target + offset;
        T target_sum = 0;
#pragma omp simd reduction(+ : target_sum)
        for (int64_t j = 0; j < n; ++j)
          target_sum += k::smoothed_target(t[j * stride], smoothing, inv_n);
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          T p = std::exp(k::log_probability(x[j * stride], st, inv_t));
          T weight = k::smoothed_target(t[j * stride], smoothing, inv_n);
          gx[j * stride] = g * inv_t * k::cross_entropy_grad(p, weight, target_sum);
        }
      }
    }
    if (grad_target && !labels) {
      T* gt = grad_target + offset;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j)
        gt[j * stride] = -g * (T(1) - smoothing) * k::log_probability(x[j * stride], st, inv_t);
    }
  });
}

}  // namespace

// ---------------------------------------------------------------- the Backend entry points

void CpuBackend::pointwise(Pointwise kind, DType dtype, const PointwiseInputs& inputs, void* out,
                           int64_t n, double param, bool sum, double scale) {
  dispatch_floating(dtype, "pointwise", [&](auto zero) {
    using T = decltype(zero);
    dispatch_pointwise(kind, [&](auto functor) {
      using F = decltype(functor);
      pointwise_rows<F, T>(kind, inputs, static_cast<T*>(out), n, static_cast<T>(param), sum, scale);
    });
  });
}

void CpuBackend::pointwise_backward(Pointwise kind, DType dtype, int input, const void* grad,
                                    bool grad_is_scalar, double scale,
                                    const PointwiseInputs& inputs, void* grad_input, int64_t n,
                                    double param) {
  dispatch_floating(dtype, "pointwise_backward", [&](auto zero) {
    using T = decltype(zero);
    dispatch_pointwise(kind, [&](auto functor) {
      using F = decltype(functor);
      pointwise_grad_rows<F, T>(kind, input, static_cast<const T*>(grad), grad_is_scalar,
                               static_cast<T>(scale), inputs, static_cast<T*>(grad_input), n,
                               static_cast<T>(param));
    });
  });
}

void CpuBackend::softmax(SoftmaxKind kind, DType dtype, const void* x, void* y,
                         const SoftmaxLayout& layout) {
  dispatch_floating(dtype, "softmax", [&](auto zero) {
    using T = decltype(zero);
    softmax_rows(kind, static_cast<const T*>(x), static_cast<T*>(y), layout);
  });
}

void CpuBackend::softmax_backward(SoftmaxKind kind, DType dtype, const void* grad_y,
                                  const void* y, void* grad_x, const SoftmaxLayout& layout) {
  dispatch_floating(dtype, "softmax_backward", [&](auto zero) {
    using T = decltype(zero);
    softmax_backward_rows(kind, static_cast<const T*>(grad_y), static_cast<const T*>(y),
                          static_cast<T*>(grad_x), layout);
  });
}

void CpuBackend::kl_logits(DType dtype, const void* p_logits, const void* q_logits, void* kl,
                           void* stats, const SoftmaxLayout& layout) {
  dispatch_floating(dtype, "kl_logits", [&](auto zero) {
    using T = decltype(zero);
    kl_logits_rows(static_cast<const T*>(p_logits), static_cast<const T*>(q_logits),
                   static_cast<T*>(kl), static_cast<T*>(stats), layout);
  });
}

void CpuBackend::kl_logits_backward(DType dtype, const void* grad_kl, const void* p_logits,
                                    const void* q_logits, const void* kl, const void* stats,
                                    void* grad_p, void* grad_q, const SoftmaxLayout& layout) {
  dispatch_floating(dtype, "kl_logits_backward", [&](auto zero) {
    using T = decltype(zero);
    kl_logits_backward_rows(static_cast<const T*>(grad_kl), static_cast<const T*>(p_logits),
                            static_cast<const T*>(q_logits), static_cast<const T*>(kl),
                            static_cast<const T*>(stats), static_cast<T*>(grad_p),
                            static_cast<T*>(grad_q), layout);
  });
}

void CpuBackend::cross_entropy(DType dtype, const void* logits, const int64_t* labels,
                               const void* target, double smoothing, void* loss, void* stats,
                               const SoftmaxLayout& layout) {
  dispatch_floating(dtype, "cross_entropy", [&](auto zero) {
    using T = decltype(zero);
    cross_entropy_rows(static_cast<const T*>(logits), labels, static_cast<const T*>(target),
                       static_cast<T>(smoothing), static_cast<T*>(loss), static_cast<T*>(stats),
                       layout);
  });
}

void CpuBackend::cross_entropy_backward(DType dtype, const void* grad_loss, const void* logits,
                                        const int64_t* labels, const void* target,
                                        double smoothing, const void* stats, void* grad_logits,
                                        void* grad_target, const SoftmaxLayout& layout) {
  dispatch_floating(dtype, "cross_entropy_backward", [&](auto zero) {
    using T = decltype(zero);
    cross_entropy_backward_rows(static_cast<const T*>(grad_loss), static_cast<const T*>(logits),
                                labels, static_cast<const T*>(target), static_cast<T>(smoothing),
                                static_cast<const T*>(stats), static_cast<T*>(grad_logits),
                                static_cast<T*>(grad_target), layout);
  });
}

}  // namespace tg
