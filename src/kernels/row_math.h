// src/kernels/row_math.h — the rules every backend follows when it reduces a row: how the
// statistics of parts of a row combine, what an all -inf row or a NaN gives, which element argmax
// picks, what a sum accumulates in.
//
// A "row" is one distribution of a softmax-family kernel or one reduced axis of reduce/argmax.
// The CPU walks a row in cache-sized chunks and the CUDA kernels give each thread a strided share
// of it; both then combine the parts with the merge functions here, so the CPU test suite covers
// the rules of both backends. The loops themselves stay in the backends: only the arithmetic that
// decides a result lives here (docs/math.md §softmax derives the statistics).
#pragma once

#include <cmath>
#include <cstdint>

#include "elementwise_math.h"

namespace tg::kernels {

// Every sum of a reduction (sum, mean, a fused loss summed over a batch) accumulates in double:
// f32 sums over a whole dataset would otherwise lose digits. The result is rounded once.
using SumType = double;

// What a sum of T accumulates in, and its result (times `scale`: 1 for sum, 1/n for mean).
// i64 sums (labels, counts; ReduceOp::sum only) are exact and wrap around modulo 2^64 like
// PyTorch's; they accumulate as uint64, whose wrap-around C++ defines.
template <class T>
struct SumAccumulator {
  using type = SumType;
  static TG_HOST_DEVICE T finish(type total, double scale) { return static_cast<T>(total * scale); }
};
template <>
struct SumAccumulator<int64_t> {
  using type = uint64_t;
  static TG_HOST_DEVICE int64_t finish(type total, double) { return static_cast<int64_t>(total); }
};

// mean = Σ / n; the mean of nothing is NaN (0/0), as in PyTorch.
TG_HOST_DEVICE inline double mean_scale(int64_t n) {
  return n ? 1.0 / static_cast<double>(n) : quiet_nan<double>();
}

// ---------------------------------------------------------------- softmax-family row statistics
// A distribution x_0..x_{n-1} at temperature T (inv_t = 1/T) is described by m = max_j x_j and
// s = Σ_j e^((x_j - m)/T). Working with x_j - m keeps every exponent ≤ 0, so nothing overflows.
//
// The special rows:
//   - all -inf: the zero distribution (softmax 0, log_softmax -inf), not NaN. The shift is then 0
//     instead of -inf, so every term is e^-inf = 0 rather than e^(-inf + inf) = NaN; s = 0 and
//     log s = +inf, which makes every log-probability (x_j - 0)/T - inf = -inf.
//   - a NaN anywhere, or a +inf: the whole row is NaN (its term makes s NaN). The max skips NaN
//     (NaN > m is false) so that the NaN shows up in s, where every formula sees it.

// (x - m)/T, the exponent of every softmax-family formula.
template <class T> TG_HOST_DEVICE inline T shifted(T x, T max, T inv_t) { return (x - max) * inv_t; }

// One step of the max over a row: NaN is skipped (see above).
template <class T> TG_HOST_DEVICE inline T row_max(T running, T x) { return x > running ? x : running; }

// The shift a row's terms are taken against: its max, or 0 when every element is -inf.
template <class T> TG_HOST_DEVICE inline T row_shift(T max) {
  return max == -infinity<T>() ? T(0) : max;
}

// The statistics of part of a row (a chunk, one thread's share): its max (NaN skipped) and
// sum = Σ_j e^((x_j - row_shift(max))/T) over its elements. The empty part is {-inf, 0}.
template <class T>
struct RowPartial {
  T max, sum;
};

template <class T> TG_HOST_DEVICE inline RowPartial<T> empty_row_partial() {
  return {-infinity<T>(), T(0)};
}

// The partial of two disjoint parts: each sum is rescaled to the larger max. A part whose max is
// -inf (empty, all -inf, or only NaN and -inf) contributes 0·sum, so its NaN, if any, stays. The
// order of merges changes only the rounding: max is exact and the sums are positive.
template <class T>
TG_HOST_DEVICE inline RowPartial<T> merge_row_partials(RowPartial<T> a, RowPartial<T> b, T inv_t) {
  constexpr T minus_inf = -infinity<T>();
  const T m = row_max(a.max, b.max);
  const T shift = row_shift(m);
  const T scale_a = a.max == minus_inf ? T(0) : exp(shifted(a.max, shift, inv_t));
  const T scale_b = b.max == minus_inf ? T(0) : exp(shifted(b.max, shift, inv_t));
  return {m, a.sum * scale_a + b.sum * scale_b};
}

// What the kernels save for the backward: the shift and log s (+inf for the zero distribution).
// log_softmax_j = (x_j - max)/T - log_sum.
template <class T>
struct RowStats {
  T max, log_sum;
};

// log_of_sum is log(whole_row.sum), for a caller that takes the logs of many rows in one vector
// loop; the zero distribution's log_sum is +inf whatever it holds.
template <class T>
TG_HOST_DEVICE inline RowStats<T> finish_row_stats(RowPartial<T> whole_row, T log_of_sum) {
  return {row_shift(whole_row.max), whole_row.sum == T(0) ? infinity<T>() : log_of_sum};
}
template <class T> TG_HOST_DEVICE inline RowStats<T> finish_row_stats(RowPartial<T> whole_row) {
  return finish_row_stats(whole_row, log(whole_row.sum));  // log 0 = -inf, replaced by +inf
}

// 1/s for softmax_j = e^((x_j - m)/T)·(1/s): 0 for the zero distribution, whose terms are all 0
// (0·(1/0) would be NaN).
template <class T> TG_HOST_DEVICE inline T inverse_row_sum(T sum) { return sum == T(0) ? T(0) : T(1) / sum; }

// ---------------------------------------------------------------- logsumexp (ReduceOp)
// log Σ e^x over a reduced axis, a different convention from the softmax rows: NaN anywhere gives
// NaN, else +inf anywhere gives +inf, else an all -inf axis gives -inf (log 0); otherwise
// m + log Σ e^(x - m). Its max propagates NaN (Maximum), so a non-finite max decides alone.
template <class T>
struct LogSumExpPartial {
  T max, sum;  // sum = Σ e^(x - max) over the part (0 when max is not finite)
};

template <class T> TG_HOST_DEVICE inline LogSumExpPartial<T> empty_logsumexp_partial() {
  return {-infinity<T>(), T(0)};
}

template <class T> TG_HOST_DEVICE inline bool is_finite_value(T x) {
  return x - x == T(0);  // false for ±inf and NaN; no <cmath> classification needed on the GPU
}

template <class T>
TG_HOST_DEVICE inline LogSumExpPartial<T> merge_logsumexp(LogSumExpPartial<T> a,
                                                          LogSumExpPartial<T> b) {
  const T m = Maximum{}(a.max, b.max);
  if (!is_finite_value(m)) return {m, T(0)};
  const T scale_a = is_finite_value(a.max) ? exp(a.max - m) : T(0);  // a.max is -inf here
  const T scale_b = is_finite_value(b.max) ? exp(b.max - m) : T(0);
  return {m, a.sum * scale_a + b.sum * scale_b};
}

template <class T> TG_HOST_DEVICE inline T finish_logsumexp(LogSumExpPartial<T> whole) {
  return is_finite_value(whole.max) ? whole.max + log(whole.sum) : whole.max;
}

// ---------------------------------------------------------------- argmax
// The first index of the largest value; NaN counts as larger than everything, so the first NaN
// wins. Written as "does candidate (v, j) beat the best so far (best, best_j)", which holds for a
// left-to-right scan and for merging the winners of any two parts in any order.
template <class T>
struct ArgBest {
  T value;
  int64_t index;
};

// The identity of the merge: loses to every element (the lowest value, -inf or i64's least, at a
// larger index than any).
template <class T> TG_HOST_DEVICE inline ArgBest<T> empty_arg_best() {
  return {lowest_value<T>(), INT64_MAX};
}

template <class T>
TG_HOST_DEVICE inline bool argmax_prefers(T v, int64_t j, T best, int64_t best_j) {
  const bool v_nan = v != v, best_nan = best != best;
  if (best_nan) return v_nan && j < best_j;
  if (v_nan) return true;
  return v > best || (v == best && j < best_j);
}

template <class T> TG_HOST_DEVICE inline ArgBest<T> merge_arg_best(ArgBest<T> a, ArgBest<T> b) {
  return argmax_prefers(b.value, b.index, a.value, a.index) ? b : a;
}

}  // namespace tg::kernels
