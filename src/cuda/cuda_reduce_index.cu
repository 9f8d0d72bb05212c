// src/cuda/cuda_reduce_index.cu — reductions, argmax and indexing on the GPU.
//
// Reductions over [outer, n, inner] use the accumulators of kernel_bodies.h (sum in double,
// NaN-propagating max/min, logsumexp and argmax merges of row_math.h): contiguous rows get a
// block each (and a very long row several blocks, whose accumulators a second kernel merges in
// order); a strided axis gets a thread per output. Every order is fixed, so results repeat bit
// for bit.
//
// scatter_add (the gradient of gather and index_select) adds no floats atomically: it sorts
// (target, source) pairs with CUB's stable radix sort and lets the first thread of each run of
// equal targets add the run in source order (kernel_bodies.h), the CPU's order.
#include <cub/device/device_radix_sort.cuh>

#include "cuda_common.cuh"

namespace tg::cuda {

namespace {

constexpr int kRowThreads = 256;
// A row longer than this is split into pieces when there are too few rows to fill the GPU.
constexpr int64_t kPieceLength = 32768;

// ---------------------------------------------------------------- reductions

// One block per contiguous row (grid-stride over rows); out = finish(the row's accumulator).
template <class R, class T>
__global__ void __launch_bounds__(kRowThreads, 1)
    reduce_rows_kernel(R reduce, const T* x, typename R::Out* out, int64_t rows, int64_t n) {
  __shared__ alignas(16) unsigned char shared[kRowSharedBytes];
  BlockRow<kRowThreads> row{shared};
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    typename R::Acc acc = reduce_row(row, reduce, x + r * n, n, 1, 0);
    if (threadIdx.x == 0) out[r] = reduce.finish(acc);
  }
}

// The pieces of long rows: piece p of row r covers [p·length, (p+1)·length).
template <class R, class T>
__global__ void __launch_bounds__(kRowThreads, 1)
    reduce_pieces_kernel(R reduce, const T* x, typename R::Acc* pieces, int64_t rows, int64_t n,
                         int64_t per_row, int64_t length) {
  __shared__ alignas(16) unsigned char shared[kRowSharedBytes];
  BlockRow<kRowThreads> row{shared};
  for (int64_t piece = blockIdx.x; piece < rows * per_row; piece += gridDim.x) {
    const int64_t r = piece / per_row, begin = (piece % per_row) * length;
    const int64_t count = begin < n ? (n - begin < length ? n - begin : length) : 0;
    typename R::Acc acc = reduce_row(row, reduce, x + r * n + begin, count, 1, begin);
    if (threadIdx.x == 0) pieces[piece] = acc;
  }
}

template <class R>
__global__ void __launch_bounds__(kRowThreads, 1)
    merge_pieces_kernel(R reduce, const typename R::Acc* pieces, typename R::Out* out,
                        int64_t rows, int64_t per_row) {
  __shared__ alignas(16) unsigned char shared[kRowSharedBytes];
  BlockRow<kRowThreads> row{shared};
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    typename R::Acc acc = merge_accumulators(row, reduce, pieces + r * per_row, per_row);
    if (threadIdx.x == 0) out[r] = reduce.finish(acc);
  }
}

// A strided axis: one thread per output (o, i), walking j with stride inner (coalesced in i).
template <class R, class T>
__global__ void reduce_columns_kernel(R reduce, const T* x, typename R::Out* out, int64_t outer,
                                      int64_t n, int64_t inner) {
  SingleThread single;
  for (int64_t c = global_thread(); c < outer * inner; c += grid_threads()) {
    const int64_t o = c / inner, i = c - o * inner;
    out[c] = reduce.finish(reduce_row(single, reduce, x + o * n * inner + i, n, inner, 0));
  }
}

template <class R, class T>
void run_reduce(CudaBackend& backend, const char* op, const R& reduce, const T* x,
                typename R::Out* out, int64_t outer, int64_t n, int64_t inner) {
  const int64_t outputs = outer * inner;
  if (outputs == 0) return;
  cudaStream_t stream = backend.stream();
  if (inner > 1) {
    reduce_columns_kernel<<<blocks_for(outputs), kThreads, 0, stream>>>(reduce, x, out, outer, n,
                                                                        inner);
    return check_launch(op, backend.index());
  }
  const int64_t per_row = outer < 64 && n > 2 * kPieceLength ? (n + kPieceLength - 1) / kPieceLength : 1;
  if (per_row == 1) {
    reduce_rows_kernel<<<blocks_for(outer, 1), kRowThreads, 0, stream>>>(reduce, x, out, outer, n);
    return check_launch(op, backend.index());
  }
  CudaBackend::Scratch pieces(backend, outer * per_row * sizeof(typename R::Acc));
  reduce_pieces_kernel<<<blocks_for(outer * per_row, 1), kRowThreads, 0, stream>>>(
      reduce, x, pieces.as<typename R::Acc>(), outer, n, per_row, kPieceLength);
  check_launch(op, backend.index());
  merge_pieces_kernel<<<blocks_for(outer, 1), kRowThreads, 0, stream>>>(
      reduce, pieces.as<typename R::Acc>(), out, outer, per_row);
  check_launch(op, backend.index());
}

// ---------------------------------------------------------------- indexing

// out[o, j, i] = x[o, index, i]; an index outside [0, n) (reported by the index check at the next
// synchronisation) reads nothing and gives 0.
template <class T>
__global__ void gather_kernel(const T* x, const int64_t* index, T* out, int64_t outer, int64_t n,
                              int64_t k, int64_t inner, bool shared_index) {
  const int64_t total = outer * k * inner;
  for (int64_t flat = global_thread(); flat < total; flat += grid_threads()) {
    const int64_t o = flat / (k * inner), rest = flat - o * k * inner;
    const int64_t j = rest / inner, i = rest - j * inner;
    const int64_t idx = shared_index ? index[j] : index[flat];
    out[flat] = idx >= 0 && idx < n ? x[(o * n + idx) * inner + i] : T(0);
  }
}

template <class T>
__global__ void one_hot_kernel(const int64_t* index, T* out, int64_t rows, int64_t classes) {
  for (int64_t flat = global_thread(); flat < rows * classes; flat += grid_threads())
    out[flat] = index[flat / classes] == flat % classes ? T(1) : T(0);
}

// k == 1: every source element has a target of its own, so plain adds cannot collide.
template <class T>
__global__ void scatter_single_kernel(const T* src, const int64_t* index, T* out, int64_t outer,
                                      int64_t n, int64_t inner, bool shared_index) {
  for (int64_t flat = global_thread(); flat < outer * inner; flat += grid_threads()) {
    const int64_t o = flat / inner, i = flat - o * inner;
    const int64_t idx = shared_index ? index[0] : index[flat];
    if (idx >= 0 && idx < n) out[(o * n + idx) * inner + i] += src[flat];
  }
}

// Sort keys: the target row of each shared index (k of them), -1 for a bad one.
__global__ void shared_keys_kernel(const int64_t* index, int64_t k, int64_t n, int64_t* keys,
                                   int64_t* positions) {
  for (int64_t j = global_thread(); j < k; j += grid_threads()) {
    keys[j] = shared_scatter_key(index[j], n);
    positions[j] = j;
  }
}

// Sort keys for a per-element index: the flat target (o·inner + i)·n + index, -1 for a bad one.
__global__ void element_keys_kernel(const int64_t* index, int64_t outer, int64_t n, int64_t k,
                                    int64_t inner, int64_t* keys, int64_t* positions) {
  const int64_t total = outer * k * inner;
  for (int64_t flat = global_thread(); flat < total; flat += grid_threads()) {
    const int64_t o = flat / (k * inner), i = flat % inner;
    keys[flat] = element_scatter_key(o, i, index[flat], n, inner);
    positions[flat] = flat;
  }
}

// index_select's gradient: thread (o, s, i) adds the run of sorted index s, if s starts one.
template <class T>
__global__ void scatter_shared_runs_kernel(const T* src, const int64_t* keys,
                                           const int64_t* positions, T* out, int64_t outer,
                                           int64_t n, int64_t k, int64_t inner) {
  const int64_t total = outer * k * inner;
  for (int64_t flat = global_thread(); flat < total; flat += grid_threads()) {
    const int64_t o = flat / (k * inner), rest = flat - o * k * inner;
    const int64_t s = rest / inner, i = rest - s * inner;
    if (!starts_run(keys, s)) continue;
    add_run(keys, k, s, src, [&](int64_t e) { return (o * k + positions[e]) * inner + i; }, out,
            (o * n + keys[s]) * inner + i);
  }
}

// gather's gradient: thread s adds the run of sorted element s, if s starts one.
template <class T>
__global__ void scatter_element_runs_kernel(const T* src, const int64_t* keys,
                                            const int64_t* positions, T* out, int64_t count,
                                            int64_t n, int64_t inner) {
  for (int64_t s = global_thread(); s < count; s += grid_threads()) {
    if (!starts_run(keys, s)) continue;
    add_run(keys, count, s, src, [&](int64_t e) { return positions[e]; }, out,
            element_scatter_target(keys[s], n, inner));
  }
}

// Sorts `count` (key, position) pairs by key, stably, into sorted_keys / sorted_positions.
void sort_pairs(CudaBackend& backend, const int64_t* keys, const int64_t* positions,
                int64_t* sorted_keys, int64_t* sorted_positions, int64_t count) {
  size_t bytes = 0;
  check_cuda(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys, sorted_keys, positions,
                                             sorted_positions, count, 0, 64, backend.stream()),
             "scatter_add", "sizing CUB's radix sort", backend.index());
  CudaBackend::Scratch scratch(backend, bytes);
  check_cuda(cub::DeviceRadixSort::SortPairs(scratch.data(), bytes, keys, sorted_keys, positions,
                                             sorted_positions, count, 0, 64, backend.stream()),
             "scatter_add", "CUB's radix sort", backend.index());
}

}  // namespace

// ---------------------------------------------------------------- entry points

void CudaBackend::reduce(ReduceOp op, DType dtype, const void* x_, void* out_, int64_t outer,
                         int64_t n, int64_t inner) {
  DeviceGuard guard(index_);
  dispatch_reduce(op, dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* x = static_cast<const T*>(x_);
    T* out = static_cast<T*>(out_);
    switch (op) {
      case ReduceOp::sum: return run_reduce(*this, "sum", SumReduce<T>{1.0}, x, out, outer, n, inner);
      case ReduceOp::max:
        return run_reduce(*this, "max",
                          ExtremeReduce<T, kernels::Maximum>{kernels::lowest_value<T>()}, x, out,
                          outer, n, inner);
      case ReduceOp::min:
        return run_reduce(*this, "min",
                          ExtremeReduce<T, kernels::Minimum>{kernels::highest_value<T>()}, x, out,
                          outer, n, inner);
      case ReduceOp::mean:
      case ReduceOp::logsumexp:
        if constexpr (std::is_floating_point<T>::value) {  // dispatch_reduce refuses i64 here
          if (op == ReduceOp::mean)
            return run_reduce(*this, "mean", SumReduce<T>{kernels::mean_scale(n)}, x, out, outer,
                              n, inner);
          return run_reduce(*this, "logsumexp", LogSumExpReduce<T>{}, x, out, outer, n, inner);
        }
    }
  });
}

void CudaBackend::argmax(DType dtype, const void* x, int64_t* out, int64_t outer, int64_t n,
                         int64_t inner) {
  DeviceGuard guard(index_);
  dispatch_any(dtype, [&](auto zero) {
    using T = decltype(zero);
    run_reduce(*this, "argmax", ArgmaxReduce<T>{}, static_cast<const T*>(x), out, outer, n, inner);
  });
}

void CudaBackend::gather(DType dtype, const void* x, const int64_t* index, void* out, int64_t outer,
                         int64_t n, int64_t k, int64_t inner, bool shared_index) {
  const int64_t total = outer * k * inner;
  if (total == 0) return;
  DeviceGuard guard(index_);
  dispatch_any(dtype, [&](auto zero) {
    using T = decltype(zero);
    gather_kernel<<<blocks_for(total), kThreads, 0, stream_>>>(
        static_cast<const T*>(x), index, static_cast<T*>(out), outer, n, k, inner, shared_index);
  });
  check_launch("gather", index_);
}

void CudaBackend::one_hot(DType dtype, const int64_t* index, void* out, int64_t rows,
                          int64_t classes) {
  if (rows * classes == 0) return;
  DeviceGuard guard(index_);
  dispatch_any(dtype, [&](auto zero) {
    using T = decltype(zero);
    one_hot_kernel<<<blocks_for(rows * classes), kThreads, 0, stream_>>>(
        index, static_cast<T*>(out), rows, classes);
  });
  check_launch("one_hot", index_);
}

void CudaBackend::scatter_add(DType dtype, const void* src_, const int64_t* index, void* out_,
                              int64_t outer, int64_t n, int64_t k, int64_t inner,
                              bool shared_index) {
  const int64_t total = outer * k * inner;
  if (total == 0) return;
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "scatter_add", [&](auto zero) {
    using T = decltype(zero);
    const T* src = static_cast<const T*>(src_);
    T* out = static_cast<T*>(out_);
    if (k == 1) {
      scatter_single_kernel<<<blocks_for(outer * inner), kThreads, 0, stream_>>>(
          src, index, out, outer, n, inner, shared_index);
      return check_launch("scatter_add", index_);
    }
    const int64_t count = shared_index ? k : total;
    Scratch pairs(*this, 4 * count * sizeof(int64_t));
    int64_t* keys = pairs.as<int64_t>();
    int64_t* positions = keys + count;
    int64_t* sorted_keys = keys + 2 * count;
    int64_t* sorted_positions = keys + 3 * count;
    if (shared_index)
      shared_keys_kernel<<<blocks_for(count), kThreads, 0, stream_>>>(index, k, n, keys, positions);
    else
      element_keys_kernel<<<blocks_for(count), kThreads, 0, stream_>>>(index, outer, n, k, inner,
                                                                       keys, positions);
    check_launch("scatter_add", index_);
    sort_pairs(*this, keys, positions, sorted_keys, sorted_positions, count);
    if (shared_index)
      scatter_shared_runs_kernel<<<blocks_for(total), kThreads, 0, stream_>>>(
          src, sorted_keys, sorted_positions, out, outer, n, k, inner);
    else
      scatter_element_runs_kernel<<<blocks_for(count), kThreads, 0, stream_>>>(
          src, sorted_keys, sorted_positions, out, count, n, inner);
    check_launch("scatter_add", index_);
  });
}

}  // namespace tg::cuda
