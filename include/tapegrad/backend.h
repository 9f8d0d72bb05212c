// tapegrad/backend.h — the kernel interface every device implements.
//
// Ops (src/ops/) call these functions and nothing lower: they never include BLAS or CUDA headers.
// A backend never knows about the tape. Adding a device means implementing this class and
// registering it with register_backend(); nothing else changes.
//
// Conventions for every kernel:
//   - pointers are device pointers to contiguous row-major data of the given dtype;
//   - sizes and strides are counted in elements, not bytes;
//   - the per-element math and the row rules live in src/kernels/*.h as __host__ __device__
//     functions, so a CPU and a CUDA backend compute each element with the same formula.
//
// The device contract (what a GPU backend promises, and what callers may rely on):
//   - Order: every kernel and copy is queued on one stream per device and runs in call order, so
//     a kernel always sees the results of every call made before it. Memory freed by a tensor may
//     be handed to a new one at once: later work on the same stream cannot overtake earlier work.
//   - Synchronisation: only reads to the host wait for the device: copy_to_host (item(),
//     to_vector(), printing, .cpu(), saving a checkpoint) and synchronize(). Nothing else blocks,
//     so a training step queues its kernels and returns.
//   - Kernels never throw and never read or write out of bounds, whatever the data. A check that
//     needs device data (index ranges, class labels, temperature tensors) is a kernel that records
//     the first bad value in a device-side error flag; the next synchronisation throws it as a
//     tg::Error naming the op (results computed after the bad value, which kernels treat as
//     harmless, are meaningless). The CPU backend runs the same checks and throws at once.
//   - Launch errors (and errors of earlier kernels that a launch reports) are checked after
//     every launch and thrown as a tg::Error naming the op.
//   - Memory comes from a caching allocator (memory_stats().system_allocations counts cudaMalloc
//     calls), so a training step in steady state asks the system for nothing.
//   - Device::cuda_device(i) is served by a backend of its own for GPU i; a backend refuses
//     pointers of another device only by contract: the ops check that all tensors of one call
//     share a device and throw a tg::Error otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "tapegrad/dtype.h"
#include "tapegrad/shape.h"

namespace tg {

// y = f(x; a, b), elementwise. `a` and `b` are the scalar parameters some functions take.
enum class UnaryOp : uint8_t {
  neg,          // -x
  exp,          // e^x
  log,          // ln x
  log1p,        // ln(1 + x), accurate near 0
  sqrt,         // √x
  abs,          // |x|
  sign,         // -1, 0 or 1
  tanh,         // tanh x
  sigmoid,      // 1 / (1 + e^-x), never overflows
  relu,         // max(x, 0)
  square,       // x²
  reciprocal,   // 1 / x
  add_scalar,   // x + a
  mul_scalar,   // x * a
  rsub_scalar,  // a - x
  pow_scalar,   // x^a
  clamp,        // min(max(x, a), b)
  in_range,     // 1 if a ≤ x ≤ b else 0 (clamp's gradient mask)
  isfinite,     // 1 if x is neither NaN nor ±inf else 0
  isnan,        // 1 if x is NaN else 0
  // Activations (src/ops/activations.cpp; docs/math.md §activations), with PyTorch's formulas.
  gelu,               // x·Φ(x), Φ the standard normal CDF: ½x(1 + erf(x/√2))
  gelu_tanh,          // ½x(1 + tanh(√(2/π)(x + 0.044715x³)))
  silu,               // x·σ(x)
  leaky_relu,         // x > 0 ? x : a·x                                  a = negative slope
  softplus,           // a·x > b ? x : log(1 + e^(a·x)) / a               a = β, b = threshold
  elu,                // x > 0 ? x : a·(e^x - 1)                           a = α
  sin, cos,
  // Slopes f'(x) of the activations with parameters (their gradients are grad · slope).
  leaky_relu_slope,   // x > 0 ? 1 : a
  softplus_slope,     // a·x > b ? 1 : σ(a·x)
  elu_slope,          // x > 0 ? 1 : a·e^x
};

// out = f(a, b), elementwise with NumPy broadcasting.
enum class BinaryOp : uint8_t {
  add, sub, mul, div,
  pow,                  // a^b
  minimum, maximum,
  equal, less, less_equal, greater, greater_equal,  // 1 or 0, in the inputs' dtype
  // Gradient helpers, f(grad, saved): fused so that a backward step is one pass over memory.
  relu_backward,        // grad * (x > 0)        saved = relu's input x
  tanh_backward,        // grad * (1 - y²)       saved = tanh's output y
  sigmoid_backward,     // grad * y * (1 - y)    saved = sigmoid's output y
  abs_backward,         // grad * sign(x)        saved = x
  gelu_backward,        // grad * (Φ(x) + x·φ(x))                       saved = x
  gelu_tanh_backward,   // grad * d/dx of gelu_tanh                     saved = x
  silu_backward,        // grad * σ(x)·(1 + x·(1 - σ(x)))               saved = x
};
// The comparisons (equal ... greater_equal) also take i64 inputs (labels, argmax results) and
// then give 1 or 0 as i64; every other BinaryOp needs f32 or f64.
inline bool is_comparison(BinaryOp op) {
  return op == BinaryOp::equal || op == BinaryOp::less || op == BinaryOp::less_equal ||
         op == BinaryOp::greater || op == BinaryOp::greater_equal;
}

// Distributions the random kernel can draw from (src/kernels/philox.h has the math).
enum class RandomDistribution : uint8_t {
  uniform,  // a + (b - a) * U[0, 1)
  normal,   // a + b * N(0, 1)
};

// Reductions over the middle axis of a [outer, n, inner] view: out[o, i] = reduce_j x[o, j, i].
// sum, max and min also take i64 (labels, counts), exactly: an i64 sum wraps around modulo 2^64
// as PyTorch's does; mean and logsumexp need f32 or f64.
enum class ReduceOp : uint8_t { sum, mean, max, min, logsumexp };
// Whether a reduction takes i64 (the rule above; the ops check it, the backends dispatch on it).
constexpr bool reduce_takes_i64(ReduceOp op) {
  return op == ReduceOp::sum || op == ReduceOp::max || op == ReduceOp::min;
}

// How a broadcast elementwise op walks its inputs: the output shape, and for each input its
// strides over that shape (0 along a dimension the input is broadcast in).
struct BroadcastLayout {
  static constexpr int kMaxInputs = 3;
  Shape shape;
  int64_t strides[kMaxInputs][kMaxRank] = {};
  int inputs = 0;
};

// A 2-D sliding window over a batch of images [batch, channels, height, width] (NCHW): the
// geometry conv2d and the pools share. Output position (oy, ox) and window offset (i, j) read the
// input pixel at
//   y = oy·stride_h - pad_h + i·dilation_h,   x = ox·stride_w - pad_w + j·dilation_w,
// outside the image where y ∉ [0, height) or x ∉ [0, width). The output sizes are
//   out_h = (height + 2·pad_h - dilation_h·(kernel_h - 1) - 1) / stride_h + 1 (and alike out_w).
struct Window2d {
  int64_t batch = 1, channels = 1, height = 1, width = 1;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  int64_t out_h = 1, out_w = 1;
};

// Counters of a backend's caching allocator.
struct MemoryStats {
  size_t bytes_in_use = 0;       // held by live tensors
  size_t bytes_cached = 0;       // freed by tensors, kept for reuse
  size_t peak_bytes_in_use = 0;
  uint64_t system_allocations = 0;  // times the allocator had to ask the OS for memory
};

// The scalars of one fused optimizer update, the same for every element; computed on the host
// by src/optim/ (src/kernels/optimizer_math.h has the per-element formulas).
struct AdamStep {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0;
  bool decoupled_weight_decay = false;  // AdamW: p *= 1 - lr*wd; Adam: grad += wd*p
  int64_t step = 1;                     // this update's number, 1 for the first (bias corrections)
};

struct SgdStep {
  double lr = 1e-2, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  bool first_step = false;  // the momentum buffer starts as the first gradient
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // What the backend runs on, for people ("cpu", "NVIDIA H200 (cuda:0, sm_90, 140 GB)").
  virtual std::string description() const { return name(); }

  // Waits for every queued kernel and copy; throws a pending device error (see the contract).
  virtual void synchronize() = 0;

  // --- checks of device data (index ranges, labels, temperatures) ---
  // Each throws a tg::Error naming `op` for the first bad value: the CPU at once, a GPU at the
  // next synchronisation. `op` and `what` must be string literals (a GPU keeps the pointers
  // until it reports).
  struct IndexCheck {
    const char* op = "";
    const char* what = "index";  // what a value is called in the message: "index", "label"
    int64_t limit = 0;           // valid values lie in [0, limit) ...
    bool has_ignored = false;    // ... or equal `ignored` (a loss's ignore_index)
    int64_t ignored = 0;
  };
  // Checks index[0, n). Returns how many values equal `ignored`, or -1 where counting would need
  // a synchronisation (a GPU).
  virtual int64_t check_indices(const IndexCheck& check, const int64_t* index, int64_t n) = 0;
  // Checks that temperatures[0, n) are finite and > 0.
  virtual void check_temperatures(const char* op, DType dtype, const void* temperatures,
                                  int64_t n) = 0;

  // --- memory: a caching allocator, aligned to at least 64 bytes ---
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* pointer, size_t bytes) = 0;
  virtual MemoryStats memory_stats() const = 0;
  virtual void release_cached_memory() = 0;
  virtual void copy_to_host(void* host_destination, const void* source, size_t bytes) = 0;
  virtual void copy_from_host(void* destination, const void* host_source, size_t bytes) = 0;

  // --- data movement ---
  virtual void fill(DType dtype, void* out, int64_t n, double value) = 0;
  // out = in, converting element types.
  virtual void convert(DType from, const void* in, DType to, void* out, int64_t n) = 0;
  // Copies a strided view of `in` into a strided view of `out`, both over `shape`:
  //   out[Σ i_k*out_strides[k]] = in[Σ i_k*in_strides[k]]. Serves transpose, slice and concat.
  virtual void copy_strided(DType dtype, const Shape& shape, const void* in,
                            const int64_t* in_strides, void* out, const int64_t* out_strides) = 0;

  // --- elementwise ---
  // y[i] = op(x[i]; a, b)                                           x, y: [n]
  virtual void unary(UnaryOp op, DType dtype, const void* x, void* y, int64_t n, double a,
                     double b) = 0;
  // out = op(a, b) over layout.shape                                a, b broadcast to out
  virtual void binary(BinaryOp op, DType dtype, const void* a, const void* b, void* out,
                      const BroadcastLayout& layout) = 0;
  // out = condition != 0 ? a : b                                    all broadcast to out
  virtual void where(DType dtype, const void* condition, const void* a, const void* b, void* out,
                     const BroadcastLayout& layout) = 0;

  // --- random numbers ---
  // out[i] = sample i of the Philox stream (seed, stream) starting at block `offset`, mapped to
  // `distribution` with parameters a, b. The caller advances its Generator by
  // ceil(n / samples_per_block) blocks (samples_per_block = 4 for f32, 2 for f64).
  virtual void fill_random(RandomDistribution distribution, DType dtype, void* out, int64_t n,
                           double a, double b, uint64_t seed, uint64_t stream,
                           uint64_t offset) = 0;

  // --- reductions ---
  // x: [outer, n, inner] -> out: [outer, inner], both of `dtype` (i64 for sum, max, min only)
  virtual void reduce(ReduceOp op, DType dtype, const void* x, void* out, int64_t outer, int64_t n,
                      int64_t inner) = 0;
  // out[o, i] = the first j with the largest x[o, j, i] (NaN counts as largest); x of any dtype
  //                                                                                 out: i64
  virtual void argmax(DType dtype, const void* x, int64_t* out, int64_t outer, int64_t n,
                      int64_t inner) = 0;

  // --- optimizers ---
  // One fused Adam/AdamW update over a flat parameter, in place:        all: [n]
  //   param, exp_avg (m), exp_avg_sq (v) updated from grad (see optimizer_math.h).
  virtual void adam_step(DType dtype, void* param, const void* grad, void* exp_avg,
                         void* exp_avg_sq, int64_t n, const AdamStep& step) = 0;
  // One fused SGD update, in place; momentum_buffer may be null when step.momentum == 0.
  virtual void sgd_step(DType dtype, void* param, const void* grad, void* momentum_buffer,
                        int64_t n, const SgdStep& step) = 0;

  // --- matrix multiply ---
  // C = alpha * op(A) · op(B) + beta * C, row-major, for `batch` matrices spaced by the strides
  // (a stride of 0 reuses one matrix for every batch). op(X) = Xᵀ when transpose_x.
  //   op(A): [m, k]   op(B): [k, n]   C: [m, n]
  virtual void gemm(DType dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n,
                    int64_t k, double alpha, const void* a, const void* b, double beta, void* c,
                    int64_t batch, int64_t stride_a, int64_t stride_b, int64_t stride_c) = 0;

  // --- indexing along the middle axis of [outer, n, inner] ---
  // out[o, j, i] = x[o, index[o, j, i], i]       x: [outer, n, inner]   index, out: [outer, k, inner]
  // With shared_index, index is [k] and used for every o and i (index_select).
  // Indices are checked with check_indices first. A kernel that meets a bad one anyway (on a GPU
  // the check reports later) must stay in bounds: gather writes 0, scatter_add and one_hot skip it.
  virtual void gather(DType dtype, const void* x, const int64_t* index, void* out, int64_t outer,
                      int64_t n, int64_t k, int64_t inner, bool shared_index) = 0;
  // The adjoint of gather: out[o, index[o, j, i], i] += src[o, j, i]   out: [outer, n, inner]
  virtual void scatter_add(DType dtype, const void* src, const int64_t* index, void* out,
                           int64_t outer, int64_t n, int64_t k, int64_t inner,
                           bool shared_index) = 0;
  // out[r, c] = (index[r] == c), for r < rows, c < classes   index: [rows] i64
  virtual void one_hot(DType dtype, const int64_t* index, void* out, int64_t rows,
                       int64_t classes) = 0;

  // --- sliding windows (conv2d, the pools; src/ops/conv.cpp) ---
  // Unfolds every window into a column, with the batch folded into the columns so that a
  // convolution is one gemm (weight [out, channels·kernel_h·kernel_w] · columns):
  //   columns[(c·kernel_h + i)·kernel_w + j, (b·out_h + oy)·out_w + ox] = x[b, c, y, x] (Window2d),
  //   or 0 where (y, x) lies outside the image (zero padding).
  //   x: [batch, channels, height, width]   columns: [channels·kernel_h·kernel_w, batch·out_h·out_w]
  virtual void im2col(DType dtype, const void* x, void* columns, const Window2d& window) = 0;
  // The adjoint of im2col: every column entry is added back onto the pixel it was read from;
  // entries that fell outside the image are dropped. x is overwritten (not accumulated into).
  //   columns: [channels·kernel_h·kernel_w, batch·out_h·out_w]   x: [batch, channels, height, width]
  virtual void col2im(DType dtype, const void* columns, void* x, const Window2d& window) = 0;
  // index[b, c, oy, ox] = y·width + x of the first largest pixel of the window in row-major
  // window order, or of its last NaN (PyTorch's rule: a pixel replaces the best so far when it is
  // larger or NaN); pixels outside the image are never chosen. Every
  // window must hold at least one pixel of the image (pad ≤ kernel / 2, as PyTorch requires).
  //   x: [batch, channels, height, width]   index: [batch, channels, out_h, out_w] i64
  virtual void max_pool2d_index(DType dtype, const void* x, int64_t* index,
                                const Window2d& window) = 0;

  // --- batch normalisation in training mode (src/ops/normalization.cpp) ---
  // x is viewed as [batch, channels, inner]; channel c has the m = batch·inner values x[b, c, r]
  // (m >= 1). The math is in src/kernels/norm_math.h; sums run in double.
  struct BatchNormLayout {
    int64_t batch = 1, channels = 1, inner = 1;
    double eps = 1e-5;
  };
  // Per channel, in two passes over x:
  //   mean = Σ x / m    var = Σ (x - mean)² / m (biased)    invstd = 1/√(var + eps)
  //   y = (x - mean)·invstd·weight + bias           (weight, bias [channels], or null: 1 and 0)
  //   x, y: [batch, channels, inner]    mean, var, invstd: [channels]
  virtual void batch_norm(DType dtype, const void* x, const void* weight, const void* bias,
                          void* y, void* mean, void* var, void* invstd,
                          const BatchNormLayout& layout) = 0;
  // The backward, from the forward's mean and invstd (x̂ = (x - mean)·invstd; sums per channel):
  //   grad_bias = Σ grad_y    grad_weight = Σ grad_y·x̂
  //   grad_x = weight·invstd·(grad_y - grad_bias/m - x̂·grad_weight/m)
  // weight null means 1; any of grad_x, grad_weight, grad_bias may be null (not wanted).
  //   grad_y, x, grad_x: [batch, channels, inner]    the rest: [channels]
  virtual void batch_norm_backward(DType dtype, const void* grad_y, const void* x,
                                   const void* weight, const void* mean, const void* invstd,
                                   void* grad_x, void* grad_weight, void* grad_bias,
                                   const BatchNormLayout& layout) = 0;

  // --- fused primitives (functional.h) ---
  // Each primitive of functional.h has a forward and a backward kernel that make one or two
  // passes over memory. The math of every element lives in src/kernels/fused_math.h, shared with
  // the CUDA backend. A gradient of a reduced (scalar) loss is passed as a device pointer to one
  // element, so no backward step reads device memory on the host.

  // Elementwise functions of up to four same-shaped inputs, each with its own gradient formula.
  // The inputs each kind takes are listed in order (a, b, c, d); `param` is its scalar parameter.
  enum class Pointwise : uint8_t {
    bce_with_logits,       // (logit x, target y)        max(x,0) - x·y + log1p(e^-|x|)
    kl_div,                // (log q, p)                 p·(log p - log q), 0 where p = 0
    kl_div_log_target,     // (log q, log p)             e^log p·(log p - log q), 0 where p = 0
    gaussian_kl_standard,  // (mu, logvar)               ½(mu² + e^logvar - logvar - 1)
    gaussian_kl,           // (mu1, logvar1, mu2, logvar2) KL(N(mu1, e^logvar1) ‖ N(mu2, e^logvar2))
    squared_error,         // (a, b)                     (a - b)²
    entropy,               // (p)                        -p·log p, 0 where p = 0
    js_divergence,         // (p, q)                     ½ p·log(p/m) + ½ q·log(q/m), m = (p+q)/2
    total_variation,       // (p, q)                     ½|p - q|
    ppo_clip,              // (logp_new, logp_old, A)    -min(r·A, clamp(r, 1-ε, 1+ε)·A), ε = param
    reparameterize,        // (mu, logvar, eps)          mu + e^(logvar/2)·eps
  };
  // Device pointers to a pointwise kernel's inputs, all [n]; unused ones are null.
  struct PointwiseInputs {
    const void* data[4] = {};
  };
  // out[i] = f(inputs[i])                                            inputs: [n]   out: [n]
  // or, when `sum`, out[0] = scale · Σ_i f(inputs[i]) (accumulated in double)     out: [1]
  virtual void pointwise(Pointwise kind, DType dtype, const PointwiseInputs& inputs, void* out,
                         int64_t n, double param, bool sum, double scale) = 0;
  // grad_input[i] = scale · grad[i] · ∂f/∂(input k)(inputs[i])        inputs, grad_input: [n]
  // grad is [n], or one element used for every i when grad_is_scalar (the gradient of a sum).
  virtual void pointwise_backward(Pointwise kind, DType dtype, int input, const void* grad,
                                  bool grad_is_scalar, double scale,
                                  const PointwiseInputs& inputs, void* grad_input, int64_t n,
                                  double param) = 0;

  // Softmax-like kernels work on distributions along the middle axis of an [outer, n, inner]
  // view, each divided by a temperature first: T = `temperature`, or, when `temperatures` is
  // set, a device array of the data's dtype with one T per distribution ([outer, inner]) or a
  // single T for all (single_temperature).
  struct SoftmaxLayout {
    int64_t outer = 1, n = 1, inner = 1;
    double temperature = 1;
    const void* temperatures = nullptr;
    bool single_temperature = false;
  };
  enum class SoftmaxKind : uint8_t { softmax, log_softmax };
  // y = softmax(x / T) or log_softmax(x / T) along the middle axis       x, y: [outer, n, inner]
  // A distribution whose logits are all -inf gives softmax 0 (log_softmax -inf), not NaN.
  virtual void softmax(SoftmaxKind kind, DType dtype, const void* x, void* y,
                       const SoftmaxLayout& layout) = 0;
  // From the saved output y:                                grad_y, y, grad_x: [outer, n, inner]
  //   softmax:      grad_x = y·(grad_y - Σ_j grad_y·y) / T
  //   log_softmax:  grad_x = (grad_y - e^y·Σ_j grad_y) / T
  virtual void softmax_backward(SoftmaxKind kind, DType dtype, const void* grad_y, const void* y,
                                void* grad_x, const SoftmaxLayout& layout) = 0;

  // kl = KL(P ‖ Q) per distribution, P = softmax(p_logits / T), Q = softmax(q_logits / T), or Q
  // uniform when q_logits is null (then kl = log n - H(P)). `stats` keeps, per distribution,
  // (max, log Σ e^((x - max)/T)) of the p and then the q logits, for the backward.
  //   p_logits, q_logits: [outer, n, inner]     kl: [outer, inner]     stats: [outer, inner, 4]
  virtual void kl_logits(DType dtype, const void* p_logits, const void* q_logits, void* kl,
                         void* stats, const SoftmaxLayout& layout) = 0;
  // grad_p = grad·P·(log P - log Q - kl) / T     grad_q = grad·(Q - P) / T; either may be null.
  //   grad_kl: [outer, inner]                    grad_p, grad_q: [outer, n, inner]
  virtual void kl_logits_backward(DType dtype, const void* grad_kl, const void* p_logits,
                                  const void* q_logits, const void* kl, const void* stats,
                                  void* grad_p, void* grad_q, const SoftmaxLayout& layout) = 0;

  // Cross-entropy of softmax(logits / T) against class labels (i64, [outer, inner]) smoothed to
  // t' = (1-ε)·onehot + ε/n, or, when labels is null, against probabilities `target` smoothed
  // alike: loss = -Σ_j t'_j·log_softmax_j. `stats` as for kl_logits, for the logits only.
  //   logits, target: [outer, n, inner]     loss: [outer, inner]     stats: [outer, inner, 2]
  virtual void cross_entropy(DType dtype, const void* logits, const int64_t* labels,
                             const void* target, double smoothing, void* loss, void* stats,
                             const SoftmaxLayout& layout) = 0;
  // grad_logits = grad·(softmax·Σ_j t'_j - t') / T     grad_target = -grad·(1-ε)·log_softmax
  // (probability targets only); either output may be null.     grad_loss: [outer, inner]
  virtual void cross_entropy_backward(DType dtype, const void* grad_loss, const void* logits,
                                      const int64_t* labels, const void* target,
                                      double smoothing, const void* stats, void* grad_logits,
                                      void* grad_target, const SoftmaxLayout& layout) = 0;
};

// Threads the CPU backend may use: OpenBLAS's gemm, and the elementwise, pointwise, row and
// optimizer kernels over large tensors (results are bit-identical for every thread count); 0
// restores the default (OpenBLAS's: all cores, or OPENBLAS_NUM_THREADS).
void set_num_threads(int threads);
int num_threads();

// The SIMD target the CPU kernels run on, chosen at run time: "AVX3" (AVX-512), "AVX2", "SSE4",
// "NEON", "SVE", "SCALAR" or "EMU128" (portable C++), ..., or "none" (no vector kernels: every
// kernel runs its functor loop). The environment variable TAPEGRAD_SIMD=avx2 (avx512, sse4,
// scalar, none, ...) forces one; a name the build or the CPU lacks is a tg::Error at the first
// kernel.
const char* cpu_simd_target();

// The backend that owns a device's memory. The first call for a GPU starts its backend. Throws a
// tg::Error naming the device when none can serve it: a build without CUDA, no usable GPU (the
// message gives CUDA's reason), or an index beyond the GPUs present.
Backend& backend_for(Device device);
// The same, but nullptr instead of an error and never starting a backend (for destructors, which
// must not throw).
Backend* find_backend(Device device) noexcept;
// Serves `device` with `backend` (nullptr to remove it) and returns the backend that served it
// before, if any. The CPU backend is always registered; GPU backends register themselves on first
// use. Tests use this to put a stand-in device in place.
Backend* register_backend(Device device, Backend* backend);

// How many CUDA GPUs this process can use: 0 in a build without CUDA or on a machine without a
// usable GPU (cuda_unavailable_reason() then says why).
int cuda_device_count();
std::string cuda_unavailable_reason();

// Waits for the device's queued work and throws any pending device error (backend.h's contract).
void synchronize(Device device);

}  // namespace tg
