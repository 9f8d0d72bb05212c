// src/cuda/device_compile_check.cu — compiles every per-element function of src/kernels/ for the
// GPU, so that the math the CPU backend runs today is known to build for the CUDA backend.
//
// The CUDA backend itself lands later (ROADMAP); until then this file is the contract: each
// functor the CPU loops call is instantiated here in a minimal kernel, for f32 and f64, and
// meson compiles it with nvcc (sm_90), warnings as errors and ptxas refusing register spills
// and local memory. It is never linked into the library and never run.
#include <cstdint>

#include "../kernels/elementwise_math.h"
#include "../kernels/fused_math.h"
#include "../kernels/optimizer_math.h"
#include "../kernels/philox.h"
#include "../kernels/row_math.h"

namespace tg::kernels {

namespace {

__device__ int64_t thread_index() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }

// ---------------------------------------------------------------- elementwise
template <class F, class T>
__global__ void unary_kernel(const T* x, T* y, int64_t n, T a, T b) {
  int64_t i = thread_index();
  if (i < n) y[i] = F{}(x[i], a, b);
}

template <class F, class T>
__global__ void binary_kernel(const T* a, const T* b, T* out, int64_t n) {
  int64_t i = thread_index();
  if (i < n) out[i] = F{}(a[i], b[i]);
}

// ---------------------------------------------------------------- fused pointwise: value + grads
template <class F, class T, int... k>
__device__ void write_grads(T* grads, int64_t i, int64_t n, T a, T b, T c, T d, T param) {
  ((grads[k * n + i] = F::template grad<k>(a, b, c, d, param)), ...);
}

template <class F, class T>
__global__ void pointwise_kernel(const T* in, T* value, T* grads, int64_t n, T param) {
  int64_t i = thread_index();
  if (i >= n) return;
  T a = in[i], b = in[n + i], c = in[2 * n + i], d = in[3 * n + i];
  value[i] = F::value(a, b, c, d, param);
  if constexpr (F::arity == 1) write_grads<F, T, 0>(grads, i, n, a, b, c, d, param);
  if constexpr (F::arity == 2) write_grads<F, T, 0, 1>(grads, i, n, a, b, c, d, param);
  if constexpr (F::arity == 3) write_grads<F, T, 0, 1, 2>(grads, i, n, a, b, c, d, param);
  if constexpr (F::arity == 4) write_grads<F, T, 0, 1, 2, 3>(grads, i, n, a, b, c, d, param);
}

// ---------------------------------------------------------------- softmax-row steps
template <class T>
__global__ void softmax_steps_kernel(const T* x, T* out, int64_t n, T max, T inv_t, T stat) {
  int64_t i = thread_index();
  if (i >= n) return;
  RowStats<T> stats = {max, stat};
  out[i] = shifted(x[i], max, inv_t) + softmax_grad(x[i], out[i], stat, inv_t) +
           log_softmax_grad(x[i], out[i], stat, inv_t) +
           kl_logits_grad_p(x[i], out[i], stat, stat, inv_t) + kl_logits_grad_q(x[i], stat, inv_t) +
           cross_entropy_grad(x[i], smoothed_target(out[i], stat, inv_t), stat) +
           p_log_ratio(x[i], out[i], stat) + log_probability(x[i], stats, inv_t) +
           label_target(i == 3, stat, inv_t) + weighted_log_probability(x[i], stat) +
           label_cross_entropy(x[i], stat, max, inv_t) +
           inverse_temperature<T>(2.0, x, i == 1, i) + uniform_row_stats<T>(n).log_sum;
}

// ---------------------------------------------------------------- row rules (row_math.h)
template <class T>
__global__ void row_rules_kernel(const T* x, T* out, int64_t* index, int64_t n, T inv_t) {
  int64_t i = thread_index();
  if (i >= n) return;
  RowPartial<T> part = merge_row_partials(empty_row_partial<T>(), {row_max(x[0], x[i]), x[i]}, inv_t);
  RowStats<T> stats = finish_row_stats(part);
  LogSumExpPartial<T> lse = merge_logsumexp(empty_logsumexp_partial<T>(), {x[i], T(1)});
  ArgBest<T> best = merge_arg_best(empty_arg_best<T>(), {x[i], i});
  out[i] = stats.max + stats.log_sum + inverse_row_sum(x[i]) + finish_logsumexp(lse) +
           T(mean_scale(n));
  index[i] = best.index;
}

// ---------------------------------------------------------------- optimizers
template <class T>
__global__ void optimizer_kernel(T* p, const T* g, T* m, T* v, int64_t n, AdamScalars<T> adam,
                                 SgdScalars<T> sgd) {
  int64_t i = thread_index();
  if (i >= n) return;
  adam_update(p[i], g[i], m[i], v[i], adam);
  sgd_update_momentum(p[i], g[i], m[i], sgd);
  sgd_update(p[i], g[i], sgd);
}

// ---------------------------------------------------------------- Philox
template <class T>
__global__ void random_kernel(T* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
  int64_t i = thread_index();
  constexpr int per_block = samples_per_block<T>();
  if (i >= n) return;
  PhiloxBlock block = philox_block(seed, stream, offset + i / per_block);
  out[i] = random_sample<T>(i % 2 == 0, block, int(i % per_block), T(1), T(2));
}

template <class From, class To>
__global__ void convert_kernel(const From* x, To* y, int64_t n) {
  int64_t i = thread_index();
  if (i < n) y[i] = ConvertTo<To>{}(x[i]);
}

// Taking a kernel's address instantiates it.
template <class T, class... F>
void unary_kernels() { (void)sizeof...(F); ((void)&unary_kernel<F, T>, ...); }
template <class T, class... F>
void binary_kernels() { ((void)&binary_kernel<F, T>, ...); }
template <class T, class... F>
void pointwise_kernels() { ((void)&pointwise_kernel<F, T>, ...); }

template <class T>
void instantiate_all() {
  unary_kernels<T, Neg, Exp, Log, Log1p, Sqrt, Abs, Sign, Tanh, Sigmoid, Relu, Square, Reciprocal,
                AddScalar, MulScalar, RsubScalar, PowScalar, Clamp, InRange>();
  binary_kernels<T, Add, Sub, Mul, Div, Pow, Minimum, Maximum, Equal, Less, LessEqual, Greater,
                 GreaterEqual, ReluBackward, TanhBackward, SigmoidBackward, AbsBackward>();
  pointwise_kernels<T, BceWithLogits, KlDiv, KlDivLogTarget, GaussianKlStandard, GaussianKl,
                    SquaredError, EntropyTerm, JsDivergenceTerm, TotalVariationTerm, PpoClip,
                    Reparameterize>();
  (void)&softmax_steps_kernel<T>;
  (void)&row_rules_kernel<T>;
  (void)&optimizer_kernel<T>;
  (void)&random_kernel<T>;
  (void)&convert_kernel<T, int64_t>;
  (void)&convert_kernel<int64_t, T>;
  (void)&convert_kernel<T, float>;
  (void)&convert_kernel<T, double>;
}

}  // namespace

void device_compile_check() {
  instantiate_all<float>();
  instantiate_all<double>();
}

}  // namespace tg::kernels
