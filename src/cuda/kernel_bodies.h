// src/cuda/kernel_bodies.h — what the CUDA kernels compute, written as __host__ __device__
// templates around the shared math of src/kernels/, with no CUDA header in sight.
//
// A row kernel (softmax family, reductions) is written once against a thread-group policy `Row`:
//   row.thread()              this thread's rank in the group that shares the row
//   row.threads()             the group's size
//   row.reduce_all(v, op)     the group-wide reduction of everyone's v, returned to every thread
// The CUDA backend runs a row per block (BlockRow, CUB's BlockReduce; src/cuda/cuda_rows.cuh) or
// a row per thread for distributions along a strided axis (SingleThread below). Because nothing
// here needs a GPU, tests/test_cuda_bodies.cpp also runs these bodies on the CPU — with a group of
// std::threads standing in for a block — and compares them with the CPU backend.
//
// Thread j of a group owns elements j, j + threads, j + 2·threads, ... (coalesced on a GPU). A
// row's statistics are gathered in tiles of kTile elements per thread: the tile's max and Σ, then
// merged into the thread's running partial (row_math.h), then merged across the group.
#pragma once

#include <cmath>
#include <cstdint>

#include "../kernels/elementwise_math.h"
#include "../kernels/fused_math.h"
#include "../kernels/row_math.h"

namespace tg::cuda {

namespace k = tg::kernels;
using std::exp;  // the float overload on the host too, as the CPU backend calls it

// One thread owns the whole row.
struct SingleThread {
  TG_HOST_DEVICE int64_t thread() const { return 0; }
  TG_HOST_DEVICE int64_t threads() const { return 1; }
  template <class V, class Op> TG_HOST_DEVICE V reduce_all(V mine, Op) const { return mine; }
};

// ---------------------------------------------------------------- reduction operators

template <class T>
struct MergeRowPartials {
  T inv_t;
  TG_HOST_DEVICE k::RowPartial<T> operator()(k::RowPartial<T> a, k::RowPartial<T> b) const {
    return k::merge_row_partials(a, b, inv_t);
  }
};

struct Plus {
  template <class V> TG_HOST_DEVICE V operator()(V a, V b) const { return a + b; }
};

// ---------------------------------------------------------------- row statistics

constexpr int kTile = 4;

// The partial statistics of the row x[j·stride], j < n, at 1/T = inv_t, merged over the group.
template <class Row, class T>
TG_HOST_DEVICE k::RowPartial<T> row_partial(Row& row, const T* x, int64_t n, int64_t stride,
                                            T inv_t) {
  k::RowPartial<T> part = k::empty_row_partial<T>();
  const int64_t step = row.threads();
  for (int64_t base = row.thread(); base < n; base += kTile * step) {
    T v[kTile];
    T m = -k::infinity<T>();
    for (int u = 0; u < kTile; ++u) {  // padding with -inf adds e^-inf = 0 to the tile's Σ
      const int64_t j = base + u * step;
      v[u] = j < n ? x[j * stride] : -k::infinity<T>();
      m = k::row_max(m, v[u]);
    }
    const T shift = k::row_shift(m);
    T s = 0;
    for (int u = 0; u < kTile; ++u) s += exp(k::shifted(v[u], shift, inv_t));
    part = k::merge_row_partials(part, k::RowPartial<T>{m, s}, inv_t);
  }
  return row.reduce_all(part, MergeRowPartials<T>{inv_t});
}

template <class Row, class T>
TG_HOST_DEVICE k::RowStats<T> row_stats(Row& row, const T* x, int64_t n, int64_t stride, T inv_t) {
  return k::finish_row_stats(row_partial(row, x, n, stride, inv_t));
}

// ---------------------------------------------------------------- softmax family, one row each
// Pointers point at the row's first element; element j is at [j * stride].

// softmax: e^((x - m)/T)·(1/Σ), as the CPU; log_softmax: (x - m)/T - log Σ.
template <class Row, class T>
TG_HOST_DEVICE void softmax_row(Row& row, bool log_softmax, const T* x, T* y, int64_t n,
                                int64_t stride, T inv_t) {
  const k::RowPartial<T> whole = row_partial(row, x, n, stride, inv_t);
  if (log_softmax) {
    const k::RowStats<T> st = k::finish_row_stats(whole);
    for (int64_t j = row.thread(); j < n; j += row.threads())
      y[j * stride] = k::log_probability(x[j * stride], st, inv_t);
    return;
  }
  const T shift = k::row_shift(whole.max), r = k::inverse_row_sum(whole.sum);
  for (int64_t j = row.thread(); j < n; j += row.threads())
    y[j * stride] = exp(k::shifted(x[j * stride], shift, inv_t)) * r;
}

// softmax:      grad_x = y·(grad_y - Σ grad_y·y)/T
// log_softmax:  grad_x = (grad_y - e^y·Σ grad_y)/T
template <class Row, class T>
TG_HOST_DEVICE void softmax_backward_row(Row& row, bool log_softmax, const T* g, const T* y,
                                         T* gx, int64_t n, int64_t stride, T inv_t) {
  T mine = 0;
  for (int64_t j = row.thread(); j < n; j += row.threads())
    mine += log_softmax ? g[j * stride] : g[j * stride] * y[j * stride];
  const T total = row.reduce_all(mine, Plus{});
  for (int64_t j = row.thread(); j < n; j += row.threads())
    gx[j * stride] = log_softmax ? k::log_softmax_grad(g[j * stride], y[j * stride], total, inv_t)
                                 : k::softmax_grad(g[j * stride], y[j * stride], total, inv_t);
}

// KL(P ‖ Q) of one distribution, Q uniform when q is null; writes kl and the 4 stats
// (max_p, log Σ_p, max_q, log Σ_q) from thread 0.
template <class Row, class T>
TG_HOST_DEVICE void kl_logits_row(Row& row, const T* p, const T* q, T* kl, T* stats, int64_t n,
                                  int64_t stride, T inv_t) {
  const k::RowStats<T> sp = row_stats(row, p, n, stride, inv_t);
  const k::RowStats<T> sq = q ? row_stats(row, q, n, stride, inv_t) : k::uniform_row_stats<T>(n);
  T mine = 0;
  for (int64_t j = row.thread(); j < n; j += row.threads()) {
    const T log_p = k::log_probability(p[j * stride], sp, inv_t);
    const T log_q = q ? k::log_probability(q[j * stride], sq, inv_t) : -sq.log_sum;
    mine += k::p_log_ratio(exp(log_p), log_p, log_q);
  }
  const T total = row.reduce_all(mine, Plus{});
  if (row.thread() == 0) {
    *kl = total;
    stats[0] = sp.max, stats[1] = sp.log_sum, stats[2] = sq.max, stats[3] = sq.log_sum;
  }
}

// Cross-entropy of one row against a label (target null) or probabilities; writes the loss and
// the 2 stats (max, log Σ) from thread 0. A label outside [0, n) — which the label check reports
// at the next synchronisation — gives NaN instead of a read out of bounds.
template <class Row, class T>
TG_HOST_DEVICE void cross_entropy_row(Row& row, const T* x, int64_t label, const T* target,
                                      T smoothing, T* loss, T* stats, int64_t n, int64_t stride,
                                      T inv_t) {
  const k::RowStats<T> st = row_stats(row, x, n, stride, inv_t);
  const T inv_n = T(1) / static_cast<T>(n);
  T mine = 0;
  for (int64_t j = row.thread(); j < n; j += row.threads()) {
    const T log_p = k::log_probability(x[j * stride], st, inv_t);
    if (target)
      mine += k::weighted_log_probability(k::smoothed_target(target[j * stride], smoothing, inv_n),
                                          log_p);
    else if (smoothing > T(0))
      mine += log_p;
  }
  const T total = row.reduce_all(mine, Plus{});
  if (row.thread() == 0) {
    if (target) {
      *loss = -total;
    } else {
      const T picked = label >= 0 && label < n ? k::log_probability(x[label * stride], st, inv_t)
                                               : k::quiet_nan<T>();
      *loss = k::label_cross_entropy(picked, total, smoothing, inv_n);
    }
    stats[0] = st.max, stats[1] = st.log_sum;
  }
}

// The backward of cross_entropy against probabilities for one row (it needs Σ_j t'_j):
//   grad_logits = g·(softmax·Σ t' - t')/T        grad_target = -g·(1-ε)·log_softmax
template <class Row, class T>
TG_HOST_DEVICE void cross_entropy_probs_backward_row(Row& row, T g, const T* x, const T* target,
                                                     T smoothing, k::RowStats<T> st, T* gx, T* gt,
                                                     int64_t n, int64_t stride, T inv_t) {
  const T inv_n = T(1) / static_cast<T>(n);
  if (gx) {
    T mine = 0;
    for (int64_t j = row.thread(); j < n; j += row.threads())
      mine += k::smoothed_target(target[j * stride], smoothing, inv_n);
    const T target_sum = row.reduce_all(mine, Plus{});
    for (int64_t j = row.thread(); j < n; j += row.threads()) {
      const T p = exp(k::log_probability(x[j * stride], st, inv_t));
      const T weight = k::smoothed_target(target[j * stride], smoothing, inv_n);
      gx[j * stride] = g * inv_t * k::cross_entropy_grad(p, weight, target_sum);
    }
  }
  if (gt)
    for (int64_t j = row.thread(); j < n; j += row.threads())
      gt[j * stride] = -g * (T(1) - smoothing) * k::log_probability(x[j * stride], st, inv_t);
}

// ---------------------------------------------------------------- per-element backward steps
// These need no reduction (the forward saved the row statistics), so they run one thread per
// element of the [outer, n, inner] layout.

// The element (d, j) of a flat index into [outer, n, inner]: distribution d = o·inner + i.
struct RowElement {
  int64_t d, j;
};
TG_HOST_DEVICE inline RowElement row_element(int64_t flat, int64_t n, int64_t inner) {
  const int64_t o = flat / (n * inner), rest = flat - o * n * inner;
  const int64_t j = rest / inner, i = rest - j * inner;
  return {o * inner + i, j};
}

// ∂CE/∂logits_j against a label: g·(softmax_j - t'_j)/T, t' the smoothed one-hot.
template <class T>
TG_HOST_DEVICE T cross_entropy_label_grad(T g, T x, int64_t j, int64_t label, k::RowStats<T> st,
                                          T smoothing, T inv_n, T inv_t) {
  const T p = exp(k::log_probability(x, st, inv_t));
  return g * inv_t * k::cross_entropy_grad(p, k::label_target(j == label, smoothing, inv_n), T(1));
}

// ∂KL/∂p_logits_j and ∂KL/∂q_logits_j (q null: Q uniform, no grad_q).
template <class T>
TG_HOST_DEVICE void kl_logits_grads(T g, T p_logit, const T* q_logit, T kl, const T* stats, T inv_t,
                                    T* grad_p, T* grad_q) {
  const k::RowStats<T> sp = {stats[0], stats[1]}, sq = {stats[2], stats[3]};
  const T log_p = k::log_probability(p_logit, sp, inv_t);
  const T log_q = q_logit ? k::log_probability(*q_logit, sq, inv_t) : -sq.log_sum;
  const T p = exp(log_p);
  if (grad_p) *grad_p = g * k::kl_logits_grad_p(p, log_p, log_q, kl, inv_t);
  if (grad_q) *grad_q = g * k::kl_logits_grad_q(p, exp(log_q), inv_t);
}

// ---------------------------------------------------------------- reductions (ReduceOp, argmax)
// Each is an accumulator: identity, of(x, j) for element j, a commutative merge, finish. A row is
// reduced by folding of(x_j) into identity and merging across the group.

template <class T>
struct SumReduce {
  using Acc = typename k::SumAccumulator<T>::type;
  using Out = T;
  double scale;  // 1 for sum, 1/n for mean
  TG_HOST_DEVICE Acc identity() const { return 0; }
  TG_HOST_DEVICE Acc of(T x, int64_t) const { return static_cast<Acc>(x); }
  TG_HOST_DEVICE Acc operator()(Acc a, Acc b) const { return a + b; }
  TG_HOST_DEVICE Out finish(Acc a) const { return k::SumAccumulator<T>::finish(a, scale); }
};

template <class T, class Pick>
struct ExtremeReduce {  // max (Pick = Maximum, identity -inf) or min (Minimum, +inf); NaN wins
  using Acc = T;
  using Out = T;
  T start;
  TG_HOST_DEVICE Acc identity() const { return start; }
  TG_HOST_DEVICE Acc of(T x, int64_t) const { return x; }
  TG_HOST_DEVICE Acc operator()(Acc a, Acc b) const { return Pick{}(a, b); }
  TG_HOST_DEVICE Out finish(Acc a) const { return a; }
};

template <class T>
struct LogSumExpReduce {
  using Acc = k::LogSumExpPartial<T>;
  using Out = T;
  TG_HOST_DEVICE Acc identity() const { return k::empty_logsumexp_partial<T>(); }
  TG_HOST_DEVICE Acc of(T x, int64_t) const { return {x, k::is_finite_value(x) ? T(1) : T(0)}; }
  TG_HOST_DEVICE Acc operator()(Acc a, Acc b) const { return k::merge_logsumexp(a, b); }
  TG_HOST_DEVICE Out finish(Acc a) const { return k::finish_logsumexp(a); }
};

template <class T>
struct ArgmaxReduce {
  using Acc = k::ArgBest<T>;
  using Out = int64_t;
  TG_HOST_DEVICE Acc identity() const { return k::empty_arg_best<T>(); }
  TG_HOST_DEVICE Acc of(T x, int64_t j) const { return {x, j}; }
  TG_HOST_DEVICE Acc operator()(Acc a, Acc b) const { return k::merge_arg_best(a, b); }
  TG_HOST_DEVICE Out finish(Acc a) const { return a.index; }
};

// The accumulator of x[j·stride], j < n, merged over the group (not finished: a row split over
// several blocks merges the pieces' accumulators first). Element j counts as index first + j.
template <class Row, class R, class T>
TG_HOST_DEVICE typename R::Acc reduce_row(Row& row, const R& reduce, const T* x, int64_t n,
                                          int64_t stride, int64_t first) {
  typename R::Acc acc = reduce.identity();
  for (int64_t j = row.thread(); j < n; j += row.threads())
    acc = reduce(acc, reduce.of(x[j * stride], first + j));
  return row.reduce_all(acc, reduce);
}

// The same over accumulators already made (the pieces of split rows).
template <class Row, class R>
TG_HOST_DEVICE typename R::Acc merge_accumulators(Row& row, const R& reduce,
                                                  const typename R::Acc* pieces, int64_t count) {
  typename R::Acc acc = reduce.identity();
  for (int64_t j = row.thread(); j < count; j += row.threads()) acc = reduce(acc, pieces[j]);
  return row.reduce_all(acc, reduce);
}

// ---------------------------------------------------------------- deterministic scatter-add
// scatter_add without float atomics: the (key, source position) pairs are sorted by key with a
// stable sort (CUB's radix sort), so equal keys — sources that land on the same output element —
// sit together in their original order. The thread at the start of each run of equal keys adds
// the run's sources in that order, the order the CPU adds them in, so the result is the CPU's bit
// for bit and repeats run after run.

// The sort key of a source element: its target row index[j] for a shared index (index_select),
// or the flat target (o·inner + i)·n + index for a per-element one (gather); -1 for an index
// outside [0, n), which the index check reports and the runs skip.
TG_HOST_DEVICE inline int64_t shared_scatter_key(int64_t index, int64_t n) {
  return index >= 0 && index < n ? index : -1;
}
TG_HOST_DEVICE inline int64_t element_scatter_key(int64_t o, int64_t i, int64_t index, int64_t n,
                                                  int64_t inner) {
  return index >= 0 && index < n ? (o * inner + i) * n + index : -1;
}
// The output offset an element key stands for: (o·n + index)·inner + i.
TG_HOST_DEVICE inline int64_t element_scatter_target(int64_t key, int64_t n, int64_t inner) {
  const int64_t column = key / n, r = key - column * n;
  const int64_t o = column / inner, i = column - o * inner;
  return (o * n + r) * inner + i;
}

// Whether sorted position s starts a run of equal keys (key -1 marks an index that failed the
// range check: it is skipped).
TG_HOST_DEVICE inline bool starts_run(const int64_t* keys, int64_t s) {
  return keys[s] >= 0 && (s == 0 || keys[s] != keys[s - 1]);
}

// Adds the run starting at sorted position s: out[target] += src[source(s')] for each s' of the
// run, in order. `source` maps a sorted position to the source element's offset.
template <class T, class Source>
TG_HOST_DEVICE void add_run(const int64_t* keys, int64_t count, int64_t s, const T* src,
                            Source source, T* out, int64_t target) {
  T total = out[target];
  for (int64_t e = s; e < count && keys[e] == keys[s]; ++e) total += src[source(e)];
  out[target] = total;
}

}  // namespace tg::cuda
