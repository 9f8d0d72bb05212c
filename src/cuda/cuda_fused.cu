// src/cuda/cuda_fused.cu — the fused primitives of functional.h on the GPU.
//
// Pointwise kinds are one thread per element around the functors of src/kernels/fused_math.h;
// summed ones reduce in double, per block and then over the blocks in a fixed order. The
// softmax family runs the row bodies of kernel_bodies.h: a block per contiguous row (BlockRow)
// or a thread per distribution along a strided axis (SingleThread). Backward steps that need no
// reduction (KL from logits, cross-entropy against labels) are one thread per element.
#include "../kernels/fused_math.h"
#include "cuda_common.cuh"

namespace tg::cuda {

namespace {

using Pointwise = Backend::Pointwise;
using SoftmaxLayout = Backend::SoftmaxLayout;

// ---------------------------------------------------------------- pointwise

// The kind's inputs at element i; inputs the kind does not take read as 0 and are never loaded.
template <class F, class T>
struct Operands {
  const T *a, *b, *c, *d;
  __device__ T A(int64_t i) const { return a[i]; }
  __device__ T B(int64_t i) const {
    if constexpr (F::arity > 1) return b[i];
    else return T(0);
  }
  __device__ T C(int64_t i) const {
    if constexpr (F::arity > 2) return c[i];
    else return T(0);
  }
  __device__ T D(int64_t i) const {
    if constexpr (F::arity > 3) return d[i];
    else return T(0);
  }
  __device__ T value(int64_t i, T param) const { return F::value(A(i), B(i), C(i), D(i), param); }
};

template <class F, class T>
Operands<F, T> operands(const Backend::PointwiseInputs& in) {
  return {static_cast<const T*>(in.data[0]), static_cast<const T*>(in.data[1]),
          static_cast<const T*>(in.data[2]), static_cast<const T*>(in.data[3])};
}

template <class F, class T>
__global__ void pointwise_kernel(Operands<F, T> in, T* out, int64_t n, T param) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) out[i] = in.value(i, param);
}

constexpr int kSumThreads = 256;
constexpr int64_t kMaxSumBlocks = 1024;

// Σ f(inputs) in double: each block's share into partials[block] ...
template <class F, class T>
__global__ void pointwise_sum_kernel(Operands<F, T> in, kernels::SumType* partials, int64_t n,
                                     T param) {
  __shared__ alignas(16) unsigned char shared[kRowSharedBytes];
  BlockRow<kSumThreads> row{shared};
  kernels::SumType mine = 0;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) mine += in.value(i, param);
  const kernels::SumType total = row.reduce_all(mine, Plus{});
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// ... then the partials in order, by one block: out[0] = scale · Σ.
template <class T>
__global__ void sum_partials_kernel(const kernels::SumType* partials, int64_t count, T* out,
                                    double scale) {
  __shared__ alignas(16) unsigned char shared[kRowSharedBytes];
  BlockRow<kSumThreads> row{shared};
  const SumReduce<T> sum{scale};
  const kernels::SumType total = merge_accumulators(row, sum, partials, count);
  if (threadIdx.x == 0) out[0] = sum.finish(total);
}

// grad_input = scale·grad·∂f/∂input_K, in the CPU's order of operations.
template <class F, int K, class T>
__global__ void pointwise_grad_kernel(const T* grad, bool grad_is_scalar, T scale,
                                      Operands<F, T> in, T* out, int64_t n, T param) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const T slope = F::template grad<K>(in.A(i), in.B(i), in.C(i), in.D(i), param);
    out[i] = grad_is_scalar ? grad[0] * scale * slope : grad[i] * scale * slope;
  }
}

using kernels::dispatch_pointwise;  // Pointwise kind -> functor: src/kernels/dispatch.h

// ---------------------------------------------------------------- softmax family

// 1/T of distribution d, on the device (the temperatures, if any, are device memory).
template <class T>
struct Temperatures {
  double temperature;
  const T* temperatures;
  bool single;
  __device__ T inverse(int64_t d) const {
    return kernels::inverse_temperature(temperature, temperatures, single, d);
  }
};

template <class T>
Temperatures<T> temperatures(const SoftmaxLayout& layout) {
  return {layout.temperature, static_cast<const T*>(layout.temperatures), layout.single_temperature};
}

// A block per contiguous row, of 64 threads for rows up to 1024 elements, else 512.
template <class Launch>
void by_row_length(int64_t n, Launch launch) {
  if (n <= 1024) launch(std::integral_constant<int, 64>{});
  else launch(std::integral_constant<int, 512>{});
}

// The distribution d of a strided layout starts at o·n·inner + i and steps by inner.
__device__ inline int64_t strided_start(int64_t d, int64_t n, int64_t inner) {
  const int64_t o = d / inner;
  return o * n * inner + (d - o * inner);
}

// Each row kernel exists twice: Rows<Threads> for inner == 1 (grid-stride over rows, one block
// each) and Strided for inner > 1 (one thread per distribution). `body(row, d, start, stride)`
// runs the row body for distribution d.
template <int Threads, class Body>
__device__ void for_each_row(int64_t rows, int64_t n, Body body) {
  __shared__ alignas(16) unsigned char shared[kRowSharedBytes];
  BlockRow<Threads> row{shared};
  for (int64_t d = blockIdx.x; d < rows; d += gridDim.x) body(row, d, d * n, int64_t(1));
}

template <class Body>
__device__ void for_each_strided(int64_t outer, int64_t n, int64_t inner, Body body) {
  SingleThread single;
  for (int64_t d = global_thread(); d < outer * inner; d += grid_threads())
    body(single, d, strided_start(d, n, inner), inner);
}

// --- the row bodies, one per kernel
template <class T>
struct SoftmaxBody {
  bool log;
  const T* x;
  T* y;
  int64_t n;
  Temperatures<T> t;
  template <class Row>
  __device__ void operator()(Row& row, int64_t d, int64_t start, int64_t stride) const {
    softmax_row(row, log, x + start, y + start, n, stride, t.inverse(d));
  }
};

template <class T>
struct SoftmaxBackwardBody {
  bool log;
  const T *g, *y;
  T* gx;
  int64_t n;
  Temperatures<T> t;
  template <class Row>
  __device__ void operator()(Row& row, int64_t d, int64_t start, int64_t stride) const {
    softmax_backward_row(row, log, g + start, y + start, gx + start, n, stride, t.inverse(d));
  }
};

template <class T>
struct KlLogitsBody {
  const T *p, *q;
  T *kl, *stats;
  int64_t n;
  Temperatures<T> t;
  template <class Row>
  __device__ void operator()(Row& row, int64_t d, int64_t start, int64_t stride) const {
    kl_logits_row(row, p + start, q ? q + start : nullptr, kl + d, stats + 4 * d, n, stride,
                  t.inverse(d));
  }
};

template <class T>
struct CrossEntropyBody {
  const T* x;
  const int64_t* labels;
  const T* target;
  T smoothing;
  T *loss, *stats;
  int64_t n;
  Temperatures<T> t;
  template <class Row>
  __device__ void operator()(Row& row, int64_t d, int64_t start, int64_t stride) const {
    cross_entropy_row(row, x + start, labels ? labels[d] : int64_t(-1),
                      target ? target + start : nullptr, smoothing, loss + d, stats + 2 * d, n,
                      stride, t.inverse(d));
  }
};

template <class T>
struct CrossEntropyProbsBackwardBody {
  const T *grad_loss, *x, *target;
  T smoothing;
  const T* stats;
  T *gx, *gt;
  int64_t n;
  Temperatures<T> t;
  template <class Row>
  __device__ void operator()(Row& row, int64_t d, int64_t start, int64_t stride) const {
    const kernels::RowStats<T> st = {stats[2 * d], stats[2 * d + 1]};
    cross_entropy_probs_backward_row(row, grad_loss[d], x + start, target + start, smoothing, st,
                                     gx ? gx + start : nullptr, gt ? gt + start : nullptr, n,
                                     stride, t.inverse(d));
  }
};

template <int Threads, class Body>
__global__ void __launch_bounds__(Threads, 1) rows_kernel(Body body, int64_t rows, int64_t n) {
  for_each_row<Threads>(rows, n, body);
}

template <class Body>
__global__ void strided_kernel(Body body, int64_t outer, int64_t n, int64_t inner) {
  for_each_strided(outer, n, inner, body);
}

// Runs `body` over every distribution of the layout.
template <class Body>
void run_rows(CudaBackend& backend, const char* op, const SoftmaxLayout& layout, const Body& body) {
  const int64_t distributions = layout.outer * layout.inner;
  if (distributions == 0 || layout.n == 0) return;
  if (layout.inner == 1) {
    by_row_length(layout.n, [&](auto threads) {
      constexpr int kThreadsPerRow = decltype(threads)::value;
      rows_kernel<kThreadsPerRow><<<blocks_for(layout.outer, 1), kThreadsPerRow, 0, backend.stream()>>>(
          body, layout.outer, layout.n);
    });
  } else {
    strided_kernel<<<blocks_for(distributions), kThreads, 0, backend.stream()>>>(
        body, layout.outer, layout.n, layout.inner);
  }
  check_launch(op, backend.index());
}

// --- per-element backward steps

template <class T>
__global__ void kl_logits_backward_kernel(const T* grad_kl, const T* p, const T* q, const T* kl,
                                          const T* stats, T* grad_p, T* grad_q, int64_t total,
                                          int64_t n, int64_t inner, Temperatures<T> t) {
  for (int64_t flat = global_thread(); flat < total; flat += grid_threads()) {
    const RowElement e = row_element(flat, n, inner);
    kl_logits_grads(grad_kl[e.d], p[flat], q ? q + flat : nullptr, kl[e.d], stats + 4 * e.d,
                    t.inverse(e.d), grad_p ? grad_p + flat : nullptr,
                    grad_q && q ? grad_q + flat : nullptr);
  }
}

template <class T>
__global__ void cross_entropy_label_backward_kernel(const T* grad_loss, const T* x,
                                                    const int64_t* labels, T smoothing,
                                                    const T* stats, T* gx, int64_t total,
                                                    int64_t n, int64_t inner, Temperatures<T> t) {
  const T inv_n = T(1) / static_cast<T>(n);
  for (int64_t flat = global_thread(); flat < total; flat += grid_threads()) {
    const RowElement e = row_element(flat, n, inner);
    const kernels::RowStats<T> st = {stats[2 * e.d], stats[2 * e.d + 1]};
    gx[flat] = cross_entropy_label_grad(grad_loss[e.d], x[flat], e.j, labels[e.d], st, smoothing,
                                        inv_n, t.inverse(e.d));
  }
}

}  // namespace

// ---------------------------------------------------------------- entry points

void CudaBackend::pointwise(Pointwise kind, DType dtype, const PointwiseInputs& inputs, void* out,
                            int64_t n, double param, bool sum, double scale) {
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "pointwise", [&](auto zero) {
    using T = decltype(zero);
    dispatch_pointwise(kind, [&](auto functor) {
      using F = decltype(functor);
      const Operands<F, T> in = operands<F, T>(inputs);
      if (!sum) {
        if (n > 0)
          pointwise_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(in, static_cast<T*>(out), n,
                                                                    static_cast<T>(param));
        return;
      }
      const int64_t blocks = std::clamp<int64_t>((n + 4 * kSumThreads - 1) / (4 * kSumThreads), 1,
                                                 kMaxSumBlocks);
      Scratch partials(*this, blocks * sizeof(kernels::SumType));
      pointwise_sum_kernel<<<static_cast<unsigned>(blocks), kSumThreads, 0, stream_>>>(
          in, partials.as<kernels::SumType>(), n, static_cast<T>(param));
      check_launch("pointwise", index_);
      sum_partials_kernel<<<1, kSumThreads, 0, stream_>>>(partials.as<kernels::SumType>(), blocks,
                                                          static_cast<T*>(out), scale);
    });
  });
  check_launch("pointwise", index_);
}

void CudaBackend::pointwise_backward(Pointwise kind, DType dtype, int input, const void* grad,
                                     bool grad_is_scalar, double scale,
                                     const PointwiseInputs& inputs, void* grad_input, int64_t n,
                                     double param) {
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "pointwise_backward", [&](auto zero) {
    using T = decltype(zero);
    dispatch_pointwise(kind, [&](auto functor) {
      using F = decltype(functor);
      check(input >= 0 && input < F::arity, "pointwise_backward", "input ", input,
            " out of range for a kind with ", F::arity, " inputs");
      if (n == 0) return;
      const Operands<F, T> in = operands<F, T>(inputs);
      auto run = [&](auto k) {
        pointwise_grad_kernel<F, decltype(k)::value, T><<<blocks_for(n), kThreads, 0, stream_>>>(
            static_cast<const T*>(grad), grad_is_scalar, static_cast<T>(scale), in,
            static_cast<T*>(grad_input), n, static_cast<T>(param));
      };
      if (input == 0) return run(std::integral_constant<int, 0>{});
      if constexpr (F::arity > 1)
        if (input == 1) return run(std::integral_constant<int, 1>{});
      if constexpr (F::arity > 2)
        if (input == 2) return run(std::integral_constant<int, 2>{});
      if constexpr (F::arity > 3)
        if (input == 3) return run(std::integral_constant<int, 3>{});
    });
  });
  check_launch("pointwise_backward", index_);
}

void CudaBackend::softmax(SoftmaxKind kind, DType dtype, const void* x, void* y,
                          const SoftmaxLayout& layout) {
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "softmax", [&](auto zero) {
    using T = decltype(zero);
    run_rows(*this, "softmax", layout,
             SoftmaxBody<T>{kind == SoftmaxKind::log_softmax, static_cast<const T*>(x),
                            static_cast<T*>(y), layout.n, temperatures<T>(layout)});
  });
}

void CudaBackend::softmax_backward(SoftmaxKind kind, DType dtype, const void* grad_y,
                                   const void* y, void* grad_x, const SoftmaxLayout& layout) {
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "softmax_backward", [&](auto zero) {
    using T = decltype(zero);
    run_rows(*this, "softmax_backward", layout,
             SoftmaxBackwardBody<T>{kind == SoftmaxKind::log_softmax, static_cast<const T*>(grad_y),
                                    static_cast<const T*>(y), static_cast<T*>(grad_x), layout.n,
                                    temperatures<T>(layout)});
  });
}

void CudaBackend::kl_logits(DType dtype, const void* p_logits, const void* q_logits, void* kl,
                            void* stats, const SoftmaxLayout& layout) {
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "kl_logits", [&](auto zero) {
    using T = decltype(zero);
    run_rows(*this, "kl_logits", layout,
             KlLogitsBody<T>{static_cast<const T*>(p_logits), static_cast<const T*>(q_logits),
                             static_cast<T*>(kl), static_cast<T*>(stats), layout.n,
                             temperatures<T>(layout)});
  });
}

void CudaBackend::kl_logits_backward(DType dtype, const void* grad_kl, const void* p_logits,
                                     const void* q_logits, const void* kl, const void* stats,
                                     void* grad_p, void* grad_q, const SoftmaxLayout& layout) {
  const int64_t total = layout.outer * layout.n * layout.inner;
  if (total == 0 || (!grad_p && !grad_q)) return;
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "kl_logits_backward", [&](auto zero) {
    using T = decltype(zero);
    kl_logits_backward_kernel<<<blocks_for(total), kThreads, 0, stream_>>>(
        static_cast<const T*>(grad_kl), static_cast<const T*>(p_logits),
        static_cast<const T*>(q_logits), static_cast<const T*>(kl), static_cast<const T*>(stats),
        static_cast<T*>(grad_p), static_cast<T*>(grad_q), total, layout.n, layout.inner,
        temperatures<T>(layout));
  });
  check_launch("kl_logits_backward", index_);
}

void CudaBackend::cross_entropy(DType dtype, const void* logits, const int64_t* labels,
                                const void* target, double smoothing, void* loss, void* stats,
                                const SoftmaxLayout& layout) {
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "cross_entropy", [&](auto zero) {
    using T = decltype(zero);
    run_rows(*this, "cross_entropy", layout,
             CrossEntropyBody<T>{static_cast<const T*>(logits), labels,
                                 static_cast<const T*>(target), static_cast<T>(smoothing),
                                 static_cast<T*>(loss), static_cast<T*>(stats), layout.n,
                                 temperatures<T>(layout)});
  });
}

void CudaBackend::cross_entropy_backward(DType dtype, const void* grad_loss, const void* logits,
                                         const int64_t* labels, const void* target,
                                         double smoothing, const void* stats, void* grad_logits,
                                         void* grad_target, const SoftmaxLayout& layout) {
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "cross_entropy_backward", [&](auto zero) {
    using T = decltype(zero);
    if (labels) {  // no grad_target: labels are not differentiable
      const int64_t total = layout.outer * layout.n * layout.inner;
      if (!grad_logits || total == 0) return;
      cross_entropy_label_backward_kernel<<<blocks_for(total), kThreads, 0, stream_>>>(
          static_cast<const T*>(grad_loss), static_cast<const T*>(logits), labels,
          static_cast<T>(smoothing), static_cast<const T*>(stats), static_cast<T*>(grad_logits),
          total, layout.n, layout.inner, temperatures<T>(layout));
      return check_launch("cross_entropy_backward", index_);
    }
    if (!grad_logits && !grad_target) return;
    run_rows(*this, "cross_entropy_backward", layout,
             CrossEntropyProbsBackwardBody<T>{
                 static_cast<const T*>(grad_loss), static_cast<const T*>(logits),
                 static_cast<const T*>(target), static_cast<T>(smoothing),
                 static_cast<const T*>(stats), static_cast<T*>(grad_logits),
                 static_cast<T*>(grad_target), layout.n, temperatures<T>(layout)});
  });
}

}  // namespace tg::cuda
