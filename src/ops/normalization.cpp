// src/ops/normalization.cpp — batch_norm and layer_norm. Both are compositions of recorded ops
// (means, a subtraction, a power, products), so their gradients — including the batch
// statistics' share in training mode — come from those ops' backwards, and second derivatives
// follow. docs/math.md ("Normalisation") writes the resulting backward out in closed form.
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

}  // namespace

// x̂ = (x - mean) / √(var + eps)      y = x̂·weight + bias       (statistics per channel)
//   the gradient is that of the composition (docs/math.md):
//   grad_x = weight/σ · (grad - mean(grad) - x̂·mean(grad·x̂)) in training, weight/σ·grad in eval
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
  Tensor x3 = reshape(x, {n, c, rest});
  Tensor mu, var;  // [1, C, 1]
  if (training) {
    const int64_t count = n * rest;
    check(count > 1, op, "training needs more than one value per channel, got input ", x.shape());
    mu = mean(mean(x3, 2, true), 0, true);
    Tensor centered = x3 - mu;
    var = mean(mean(square(centered), 2, true), 0, true);
    if (running_mean.defined()) {
      NoGrad no_grad;
      const double unbiased = double(count) / double(count - 1);
      running_mean.copy_(running_mean * (1 - momentum) + reshape(mu, channels) * momentum);
      running_var.copy_(running_var * (1 - momentum) + reshape(var, channels) * (momentum * unbiased));
    }
    Tensor scale = pow(var + eps, -0.5);
    if (weight.defined()) scale = scale * reshape(weight, {1, c, 1});
    Tensor y = centered * scale;
    if (bias.defined()) y = y + reshape(bias, {1, c, 1});
    return reshape(y, x.shape());
  }
  check(running_mean.defined(), op, "eval mode needs running_mean and running_var");
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
