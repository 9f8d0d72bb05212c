// tapegrad/ops.h — the differentiable tensor ops. Each is recorded on the tape when an input
// requires grad (see tape.h); src/ops/ holds each op's forward and backward side by side.
//
// Elementwise binary ops broadcast like NumPy. Axes may be negative (-1 = last).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "tapegrad/tensor.h"

namespace tg {

// ---------------------------------------------------------------- elementwise, two inputs
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);      // a^b, a > 0 where b is not an integer
Tensor minimum(const Tensor& a, const Tensor& b);  // ties send half the gradient to each
Tensor maximum(const Tensor& a, const Tensor& b);

// Scalar variants (no broadcast tensor is made for the scalar).
Tensor add(const Tensor& x, double s);
Tensor sub(const Tensor& x, double s);
Tensor sub(double s, const Tensor& x);
Tensor mul(const Tensor& x, double s);
Tensor div(const Tensor& x, double s);
Tensor div(double s, const Tensor& x);
Tensor pow(const Tensor& x, double exponent);

// ---------------------------------------------------------------- elementwise, one input
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor square(const Tensor& x);
Tensor abs(const Tensor& x);       // gradient 0 at 0
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);      // gradient 0 at 0
Tensor clamp(const Tensor& x, double low, double high);  // gradient 1 inside [low, high], else 0

// condition != 0 ? a : b, broadcast. The condition is not differentiated.
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);

// Comparisons: 1 or 0 in the inputs' dtype, broadcast; never recorded (they have no gradient).
// They take i64 inputs too (labels, argmax results), giving an i64 0/1 tensor: accuracy is
// mean(equal(argmax(logits, 1), labels).to(DType::f32)). Both inputs must share the dtype.
Tensor equal(const Tensor& a, const Tensor& b);
Tensor less(const Tensor& a, const Tensor& b);
Tensor less_equal(const Tensor& a, const Tensor& b);
Tensor greater(const Tensor& a, const Tensor& b);
Tensor greater_equal(const Tensor& a, const Tensor& b);

// Tests for bad values: 1 or 0 in x's dtype, like the comparisons; never recorded. isfinite is
// 0 for NaN and ±inf. any / all reduce to a 0-d tensor: 1 if some / every element is non-zero
// (NaN counts as non-zero, as in PyTorch; any of nothing is 0, all of nothing 1; f64 for an i64
// x). Reading the answer on the host (.item()) waits for the device.
//   if (!tg::all(tg::isfinite(loss)).item()) ...
Tensor isfinite(const Tensor& x);
Tensor isnan(const Tensor& x);
Tensor any(const Tensor& x);
Tensor all(const Tensor& x);

// ---------------------------------------------------------------- reductions
// Over all elements (result has shape []) or over one axis. sum, max, min and argmax also take
// i64 (labels, counts), as PyTorch: exact, with an i64 result (a sum wraps around modulo 2^64),
// and never recorded (i64 tensors have no gradient). mean and logsumexp need f32 or f64.
Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, int axis, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, int axis, bool keepdim = false);
Tensor max(const Tensor& x);                                  // ties share the gradient equally
Tensor max(const Tensor& x, int axis, bool keepdim = false);  // like torch.amax: ties share too
Tensor min(const Tensor& x);
Tensor min(const Tensor& x, int axis, bool keepdim = false);
Tensor logsumexp(const Tensor& x);                            // log Σ e^x, with max subtraction
Tensor logsumexp(const Tensor& x, int axis, bool keepdim = false);
Tensor argmax(const Tensor& x, int axis);                     // i64, not differentiable

// ---------------------------------------------------------------- shape
Tensor reshape(const Tensor& x, const Shape& shape);  // one size may be -1 (inferred); a view
Tensor flatten(const Tensor& x);                      // [n, ...] -> [n, rest]
Tensor transpose(const Tensor& x, int axis0, int axis1);
Tensor transpose(const Tensor& x);                    // swaps the last two axes
Tensor slice(const Tensor& x, int axis, int64_t start, int64_t end);  // [start, end)
Tensor concat(const std::vector<Tensor>& tensors, int axis);
Tensor broadcast_to(const Tensor& x, const Shape& shape);
Tensor sum_to(const Tensor& x, const Shape& shape);   // the adjoint of broadcast_to

// ---------------------------------------------------------------- indexing (index: i64)
// out[..., j, ...] = x[..., index[..., j, ...], ...] along `axis`; index has x's rank and
// x's sizes on every other axis.
Tensor gather(const Tensor& x, int axis, const Tensor& index);
// Picks whole slices: out has x's shape with size index.numel() along `axis`. index is 1-D.
Tensor index_select(const Tensor& x, int axis, const Tensor& index);
// [n] labels -> [n, classes] with a 1 at each label. Not differentiable.
Tensor one_hot(const Tensor& index, int64_t classes, DType dtype = DType::f32);

// ---------------------------------------------------------------- matrix multiply
// a: [..., m, k]  b: [..., k, n]  ->  [..., m, n]. Batch dims must match, or one may be 2-D.
// transpose_a / transpose_b multiply by the transposed matrix without copying it.
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false,
              bool transpose_b = false);
// x·wᵀ + bias, the fully connected layer, with PyTorch's layout:
// x: [batch, in]  weight: [out, in]  bias: [out] (may be undefined)  ->  [batch, out]
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

// ---------------------------------------------------------------- activations, sin, cos
// PyTorch's formulas and defaults (src/ops/activations.cpp, docs/math.md §activations).
enum class GeluApproximation { none, tanh };
// x·Φ(x) (Φ the standard normal CDF); with tanh, ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
Tensor gelu(const Tensor& x, GeluApproximation approximation = GeluApproximation::none);
Tensor silu(const Tensor& x);                                 // x·σ(x), also called swish
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);  // gradient slope at 0
// log(1 + e^(βx))/β, and x itself where βx > threshold. beta > 0.
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
Tensor elu(const Tensor& x, double alpha = 1.0);             // x > 0 ? x : α(e^x - 1)
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);

// ---------------------------------------------------------------- var and std
// Σ(x - mean)² / max(0, n - c) over all elements or one axis, c = 1 when unbiased (Bessel's
// correction, the default, as torch.var) and 0 otherwise; NaN when n ≤ c. std = √var; call it
// tg::std (as libtorch's torch::std): after `using namespace tg` a bare std(x) is ambiguous.
Tensor var(const Tensor& x, bool unbiased = true);
Tensor var(const Tensor& x, int axis, bool unbiased = true, bool keepdim = false);
Tensor std(const Tensor& x, bool unbiased = true);
Tensor std(const Tensor& x, int axis, bool unbiased = true, bool keepdim = false);

// ---------------------------------------------------------------- more shape ops (torch's)
Tensor squeeze(const Tensor& x);             // removes every size-1 axis (a view)
Tensor squeeze(const Tensor& x, int axis);   // removes `axis` if its size is 1, else returns x
Tensor unsqueeze(const Tensor& x, int axis); // a new size-1 axis; axis in [-(rank+1), rank]
Tensor permute(const Tensor& x, const std::vector<int>& dims);  // y.shape[k] = x.shape[dims[k]]
Tensor stack(const std::vector<Tensor>& tensors, int axis = 0);  // same shapes, a new axis
// Repeats size-1 axes (and adds leading ones) up to `shape`; -1 keeps a size. A copy.
Tensor expand(const Tensor& x, const Shape& shape);

// ---------------------------------------------------------------- embedding
// weight[index]: index (i64, any shape) picks rows of weight [V, D] -> index.shape + [D].
// Repeated indices accumulate their gradients; positions equal to padding_idx (negative counts
// from V) send no gradient to that row, as in torch.nn.functional.embedding.
Tensor embedding(const Tensor& index, const Tensor& weight,
                 std::optional<int64_t> padding_idx = std::nullopt);

// ---------------------------------------------------------------- convolution and pooling
// Images are NCHW: [batch, channels, height, width]. A size or step given as one number applies
// to both axes; {h, w} gives each its own. Output sizes follow PyTorch (floor mode):
//   out = (in + 2·padding - dilation·(kernel - 1) - 1) / stride + 1.
struct Size2d {
  int64_t h, w;
  Size2d(int64_t both) : h(both), w(both) {}  // NOLINT: implicit, so conv2d(x, w, b, 2) reads well
  Size2d(int64_t h, int64_t w) : h(h), w(w) {}
};
// torch.nn.functional.conv2d (cross-correlation, as every framework computes it):
//   y[b, o, oy, ox] = bias[o] + Σ_{c, i, j} weight[o, c, i, j] · x[b, g·C/G + c, y, x]
// with g = o / (O/G) the group of o, (y, x) as in Window2d (zero padding).
//   x: [N, C, H, W]   weight: [O, C/groups, kh, kw]   bias: [O] or undefined   ->  [N, O, oh, ow]
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              Size2d stride = 1, Size2d padding = 0, Size2d dilation = 1, int64_t groups = 1);
// torch.nn.functional.max_pool2d: the largest pixel of each window (padding counts as -inf; the
// gradient goes to the first largest, as PyTorch's; a NaN in the window wins). stride defaults
// to the kernel size (0 = that).
// padding ≤ kernel / 2.                                  x: [N, C, H, W]   ->  [N, C, oh, ow]
Tensor max_pool2d(const Tensor& x, Size2d kernel, Size2d stride = 0, Size2d padding = 0,
                  Size2d dilation = 1);
// torch.nn.functional.avg_pool2d with count_include_pad = true (its default): each window's sum
// divided by kh·kw, padding counting as zeros. padding ≤ kernel / 2.
Tensor avg_pool2d(const Tensor& x, Size2d kernel, Size2d stride = 0, Size2d padding = 0);

// ---------------------------------------------------------------- normalisation
// torch.nn.functional.batch_norm over [N, C] or [N, C, *] (statistics per channel C over every
// other axis): y = (x - mean) / √(var + eps) · weight + bias, with weight and bias [C] (either
// may be undefined: 1 and 0).
//   training: mean and var (biased) are the batch's, and the running statistics (when defined,
//             [C] each) are updated in place, outside the tape:
//               running_mean ← (1 - momentum)·running_mean + momentum·mean
//               running_var  ← (1 - momentum)·running_var  + momentum·var·n/(n - 1)   (unbiased)
//             with n = N·Π(*) the elements per channel (n > 1 required, as PyTorch).
//   eval:     mean and var are running_mean and running_var (which must be defined).
Tensor batch_norm(const Tensor& x, Tensor running_mean, Tensor running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum = 0.1, double eps = 1e-5);
// torch.nn.functional.layer_norm: each sample normalised over its last `normalized_shape.rank()`
// axes (which must equal normalized_shape): y = (x - mean) / √(var + eps) · weight + bias, var
// biased; weight and bias have shape normalized_shape (either may be undefined).
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);

// ---------------------------------------------------------------- operators
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& x) { return neg(x); }
inline Tensor operator+(const Tensor& x, double s) { return add(x, s); }
inline Tensor operator+(double s, const Tensor& x) { return add(x, s); }
inline Tensor operator-(const Tensor& x, double s) { return sub(x, s); }
inline Tensor operator-(double s, const Tensor& x) { return sub(s, x); }
inline Tensor operator*(const Tensor& x, double s) { return mul(x, s); }
inline Tensor operator*(double s, const Tensor& x) { return mul(x, s); }
inline Tensor operator/(const Tensor& x, double s) { return div(x, s); }
inline Tensor operator/(double s, const Tensor& x) { return div(s, x); }

}  // namespace tg
