// src/ops/normalization.cpp — batch_norm and layer_norm.
//
// batch_norm in training mode is one fused kernel forward (the batch statistics and the output)
// and one backward (src/cpu/cpu_norm.cpp, src/cuda/cuda_norm.cu; the math in
// src/kernels/norm_math.h): a tape entry instead of about ten, and two or three passes over
// memory each way instead of one per op. When the sweep records (create_graph), its backward is
// the same closed form written with recorded ops instead, statistics included, so second
// derivatives come from those ops. Eval mode and layer_norm are compositions of recorded ops
// (means, a subtraction, a power, products), whose gradients come from those ops' backwards.
// docs/math.md ("batch_norm, layer_norm") derives the backward.
#include "op_helpers.h"

namespace tg {

namespace {

void check_parameter(const char* op, const char* what, const Tensor& x, const Tensor& p,
                     const Shape& expected) {
  if (!p.defined()) return;
  detail::check_compatible(op, x, p);
  check(p.shape() == expected, op, what, " must be ", expected, ", got ", p.shape(),
        " (input ", x.shape(), ")");
}

using detail::backend_of;
using detail::data_or_null;

// Σ over the batch and the positions of x viewed as [N, C, S]: a [C] tensor.
Tensor channel_sum(const Tensor& x3) { return reshape(sum(sum(x3, 2, true), 0, true), {x3.size(1)}); }

// The gradients of training-mode batch_norm in recorded ops (a create_graph sweep), with the
// batch statistics recomputed from x so that their dependence on x is differentiated too
// (g = grad·weight; means and sums per channel):
//   grad_x = (g - mean(g) - x̂·mean(g·x̂)) / σ      grad_weight = Σ grad·x̂      grad_bias = Σ grad
void batch_norm_backward_recorded(const Tensor& grad, const Tensor& x, const Tensor& weight,
                                  double eps, Gradients& g) {
  const int64_t n = x.size(0), c = x.size(1), rest = x.numel() / (n * c);
  Tensor x3 = reshape(x, {n, c, rest}), grad3 = reshape(grad, {n, c, rest});
  auto channel_mean = [](const Tensor& t) { return mean(mean(t, 2, true), 0, true); };
  Tensor centered = x3 - channel_mean(x3);
  Tensor invstd = pow(channel_mean(square(centered)) + eps, -0.5);
  Tensor xhat = centered * invstd;
  if (g.wants(0)) {
    Tensor gw = weight.defined() ? grad3 * reshape(weight, {1, c, 1}) : grad3;
    Tensor grad_x = (gw - channel_mean(gw) - xhat * channel_mean(gw * xhat)) * invstd;
    g.add(0, reshape(grad_x, x.shape()));
  }
  if (g.wants(1)) g.add(1, channel_sum(grad3 * xhat));
  if (g.wants(2)) g.add(2, channel_sum(grad3));
}

// Training mode: the fused kernel, with the running statistics updated from its mean and var.
//   y = (x - mean)·invstd·weight + bias
//   grad_x = weight·invstd·(grad - mean(grad) - x̂·mean(grad·x̂))   grad_weight = Σ grad·x̂
//   grad_bias = Σ grad                                             (sums and means per channel)
Tensor batch_norm_training(const Tensor& x, Tensor& running_mean, Tensor& running_var,
                           const Tensor& weight, const Tensor& bias, double momentum,
                           double eps) {
  Backend::BatchNormLayout layout;
  layout.batch = x.size(0);
  layout.channels = x.size(1);
  layout.inner = x.numel() / (layout.batch * layout.channels);
  layout.eps = eps;
  const Shape channels{layout.channels};
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  Tensor batch_mean = empty(channels, x.dtype(), x.device());
  Tensor batch_var = empty(channels, x.dtype(), x.device());
  Tensor invstd = empty(channels, x.dtype(), x.device());
  backend_of(x).batch_norm(x.dtype(), x.raw_data(), data_or_null(weight), data_or_null(bias),
                           y.raw_data(),
                           batch_mean.raw_data(), batch_var.raw_data(), invstd.raw_data(), layout);
  if (running_mean.defined()) {
    NoGrad no_grad;
    const double count = double(layout.batch * layout.inner);
    running_mean.copy_(running_mean * (1 - momentum) + batch_mean * momentum);
    running_var.copy_(running_var * (1 - momentum) + batch_var * (momentum * count / (count - 1)));
  }
  if (is_recording(x, weight, bias))
    record(with_scalars("batch_norm", eps), y, {x, weight, bias},
           save(x, weight, batch_mean, invstd),
           [layout](const Tensor& grad, Gradients& g, const Tensor& x, const Tensor& weight,
                    const Tensor& mean, const Tensor& invstd) {
             if (is_recording(grad, x, weight))  // create_graph: recorded ops
               return batch_norm_backward_recorded(grad, x, weight, layout.eps, g);
             Tensor grad_x, grad_weight, grad_bias;
             if (g.wants(0)) grad_x = empty(x.shape(), x.dtype(), x.device());
             if (g.wants(1)) grad_weight = empty(mean.shape(), x.dtype(), x.device());
             if (g.wants(2)) grad_bias = empty(mean.shape(), x.dtype(), x.device());
             backend_of(x).batch_norm_backward(
                 x.dtype(), grad.raw_data(), x.raw_data(), data_or_null(weight), mean.raw_data(),
                 invstd.raw_data(), data_or_null(grad_x), data_or_null(grad_weight),
                 data_or_null(grad_bias), layout);
             if (grad_x.defined()) g.add(0, grad_x);
             if (grad_weight.defined()) g.add(1, grad_weight);
             if (grad_bias.defined()) g.add(2, grad_bias);
           });
  return y;
}

}  // namespace

// x̂ = (x - mean) / √(var + eps)      y = x̂·weight + bias       (statistics per channel)
//   training: the fused kernel above; eval: a composition of recorded ops, an affine map of x:
//   grad_x = weight/σ·grad
Tensor batch_norm(const Tensor& x, Tensor running_mean, Tensor running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  const char* op = "batch_norm";
  detail::check_floating(op, x);
  check(x.dim() >= 2, op, "expected [N, C] or [N, C, *], got ", x.shape());
  const int64_t n = x.size(0), c = x.size(1), rest = x.numel() / std::max<int64_t>(1, n * c);
  const Shape channels{c};
  check_parameter(op, "weight", x, weight, channels);
  check_parameter(op, "bias", x, bias, channels);
  check_parameter(op, "running_mean", x, running_mean, channels);
  check_parameter(op, "running_var", x, running_var, channels);
  check(running_mean.defined() == running_var.defined(), op,
        "give both running_mean and running_var, or neither");
  check(eps >= 0 && momentum >= 0 && momentum <= 1, op, "expected eps >= 0 and momentum in [0, 1], got eps ",
        eps, ", momentum ", momentum);
  if (training) {
    check(n * rest > 1, op, "training needs more than one value per channel, got input ",
          x.shape());
    return batch_norm_training(x, running_mean, running_var, weight, bias, momentum, eps);
  }
  check(running_mean.defined(), op, "eval mode needs running_mean and running_var");
  Tensor x3 = reshape(x, {n, c, rest});
  Tensor scale = pow(reshape(running_var, {1, c, 1}) + eps, -0.5);
  if (weight.defined()) scale = scale * reshape(weight, {1, c, 1});
  Tensor y = (x3 - reshape(running_mean, {1, c, 1})) * scale;
  if (bias.defined()) y = y + reshape(bias, {1, c, 1});
  return reshape(y, x.shape());
}

// x̂ = (x - mean) / √(var + eps) over each sample's last axes     y = x̂·weight + bias
//   grad_x = weight/σ · (grad - mean(grad) - x̂·mean(grad·x̂)) with the means over those axes
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  const char* op = "layer_norm";
  detail::check_floating(op, x);
  const int k = normalized_shape.rank();
  check(k >= 1 && x.dim() >= k, op, "normalized_shape ", normalized_shape,
        " must be non-empty and no longer than the input's shape ", x.shape());
  int64_t features = 1;
  for (int d = 0; d < k; ++d) {
    check(x.size(x.dim() - k + d) == normalized_shape[d], op, "input ", x.shape(),
          " does not end in normalized_shape ", normalized_shape);
    features *= normalized_shape[d];
  }
  check_parameter(op, "weight", x, weight, normalized_shape);
  check_parameter(op, "bias", x, bias, normalized_shape);
  check(eps >= 0, op, "expected eps >= 0, got ", eps);
  check(features > 0, op, "normalized_shape ", normalized_shape, " has no elements");
  Tensor rows = reshape(x, {x.numel() / features, features});
  Tensor centered = rows - mean(rows, 1, true);
  Tensor y = centered * pow(mean(square(centered), 1, true) + eps, -0.5);
  if (weight.defined()) y = y * reshape(weight, {1, features});
  if (bias.defined()) y = y + reshape(bias, {1, features});
  return reshape(y, x.shape());
}

}  // namespace tg
