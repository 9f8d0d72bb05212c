// src/nn/layers.cpp — Linear, the activation layers, Dropout, Sequential and MLP.
#include <cmath>
#include <sstream>

#include "tapegrad/error.h"
#include "tapegrad/functional.h"
#include "tapegrad/nn.h"
#include "tapegrad/ops.h"

namespace tg::nn {

// ---------------------------------------------------------------- Linear

Linear::Linear(int64_t in, int64_t out, Generator& generator, bool with_bias, DType dtype,
               Device device)
    : in_features(in), out_features(out) {
  check(in > 0 && out > 0, "Linear", "sizes must be positive, got in ", in, ", out ", out);
  weight = register_parameter("weight", empty({out, in}, dtype, device));
  init::kaiming_uniform_(weight, generator, std::sqrt(5.0));
  if (with_bias) {
    double bound = 1.0 / std::sqrt(static_cast<double>(in));
    bias = register_parameter("bias", empty({out}, dtype, device));
    init::uniform_(bias, -bound, bound, generator);
  }
}

Tensor Linear::forward(const Tensor& input) { return linear(input, weight, bias); }

std::string Linear::type_name() const {
  return "Linear(" + std::to_string(in_features) + " -> " + std::to_string(out_features) +
         (bias.defined() ? "" : ", no bias") + ")";
}

// ---------------------------------------------------------------- Conv2d, pools

namespace {
std::string size_text(Size2d s) {
  return s.h == s.w ? std::to_string(s.h) : std::to_string(s.h) + "x" + std::to_string(s.w);
}
}  // namespace

Conv2d::Conv2d(int64_t in, int64_t out, Size2d kernel, Generator& generator, Size2d stride,
               Size2d padding, Size2d dilation, int64_t groups, bool with_bias, DType dtype,
               Device device)
    : in_channels(in), out_channels(out), kernel(kernel), stride(stride), padding(padding),
      dilation(dilation), groups(groups) {
  check(in > 0 && out > 0 && kernel.h > 0 && kernel.w > 0, "Conv2d",
        "channels and kernel sizes must be positive, got in ", in, ", out ", out, ", kernel ",
        size_text(kernel));
  check(groups >= 1 && in % groups == 0 && out % groups == 0, "Conv2d", "channels in (", in,
        ") and out (", out, ") must be divisible by groups = ", groups);
  weight = register_parameter("weight", empty({out, in / groups, kernel.h, kernel.w}, dtype, device));
  init::kaiming_uniform_(weight, generator, std::sqrt(5.0));
  if (with_bias) {
    double bound = 1.0 / std::sqrt(static_cast<double>(init::fan_in(weight)));
    bias = register_parameter("bias", empty({out}, dtype, device));
    init::uniform_(bias, -bound, bound, generator);
  }
}

Tensor Conv2d::forward(const Tensor& input) {
  return conv2d(input, weight, bias, stride, padding, dilation, groups);
}

std::string Conv2d::type_name() const {
  std::string name = "Conv2d(" + std::to_string(in_channels) + " -> " +
                     std::to_string(out_channels) + ", kernel " + size_text(kernel);
  if (stride.h != 1 || stride.w != 1) name += ", stride " + size_text(stride);
  if (padding.h != 0 || padding.w != 0) name += ", padding " + size_text(padding);
  if (dilation.h != 1 || dilation.w != 1) name += ", dilation " + size_text(dilation);
  if (groups != 1) name += ", groups " + std::to_string(groups);
  return name + (bias.defined() ? ")" : ", no bias)");
}

Tensor MaxPool2d::forward(const Tensor& input) {
  return max_pool2d(input, kernel, stride, padding, dilation);
}
std::string MaxPool2d::type_name() const { return "MaxPool2d(" + size_text(kernel) + ")"; }

Tensor AvgPool2d::forward(const Tensor& input) {
  return avg_pool2d(input, kernel, stride, padding);
}
std::string AvgPool2d::type_name() const { return "AvgPool2d(" + size_text(kernel) + ")"; }

// ---------------------------------------------------------------- normalisation

BatchNorm::BatchNorm(int64_t features, double eps, std::optional<double> momentum, bool affine,
                     bool track_running_stats, DType dtype, Device device)
    : num_features(features), eps(eps), momentum(momentum) {
  check(features > 0, "BatchNorm", "num_features must be positive, got ", features);
  check(!momentum || (*momentum >= 0 && *momentum <= 1), "BatchNorm",
        "momentum must lie in [0, 1] or be std::nullopt (a cumulative average), got ",
        momentum.value_or(0));
  if (affine) {
    weight = register_parameter("weight", ones({features}, dtype, device));
    bias = register_parameter("bias", zeros({features}, dtype, device));
  }
  if (track_running_stats) {
    running_mean = register_buffer("running_mean", zeros({features}, dtype, device));
    running_var = register_buffer("running_var", ones({features}, dtype, device));
    num_batches_tracked =
        register_buffer("num_batches_tracked", zeros({}, DType::i64, device), true);
    batches_version_ = num_batches_tracked.version();
  }
}

Tensor BatchNorm::forward(const Tensor& input) {
  check_input(input);
  // Nothing to update: eval mode normalises with the running statistics, or, without them, with
  // the batch's (PyTorch's rule), as training mode without them does.
  if (!is_training() || !running_mean.defined())
    return batch_norm(input, running_mean, running_var, weight, bias, !running_mean.defined(),
                      0.0, eps);
  // A training step with running statistics: this batch is number batches + 1.
  if (num_batches_tracked.version() != batches_version_)
    batches_ = static_cast<int64_t>(num_batches_tracked.item());
  const int64_t batches = batches_ + 1;
  const double factor = momentum ? *momentum : 1.0 / static_cast<double>(batches);
  Tensor y = batch_norm(input, running_mean, running_var, weight, bias, true, factor, eps);
  // Counted once the batch went in (a rejected input counts nothing).
  num_batches_tracked.fill_(static_cast<double>(batches));
  batches_ = batches;
  batches_version_ = num_batches_tracked.version();
  return y;
}

void BatchNorm1d::check_input(const Tensor& input) const {
  check(input.defined() && (input.dim() == 2 || input.dim() == 3) && input.size(1) == num_features,
        "BatchNorm1d", "expected [N, ", num_features, "] or [N, ", num_features, ", L], got ",
        input.defined() ? input.shape() : Shape{});
}
std::string BatchNorm1d::type_name() const {
  return "BatchNorm1d(" + std::to_string(num_features) + ")";
}

void BatchNorm2d::check_input(const Tensor& input) const {
  check(input.defined() && input.dim() == 4 && input.size(1) == num_features, "BatchNorm2d",
        "expected [N, ", num_features, ", H, W], got ", input.defined() ? input.shape() : Shape{});
}
std::string BatchNorm2d::type_name() const {
  return "BatchNorm2d(" + std::to_string(num_features) + ")";
}

LayerNorm::LayerNorm(Shape shape, double eps, bool affine, DType dtype, Device device)
    : normalized_shape(std::move(shape)), eps(eps) {
  check(normalized_shape.rank() >= 1 && normalized_shape.numel() > 0, "LayerNorm",
        "normalized_shape must be non-empty, got ", normalized_shape);
  if (affine) {
    weight = register_parameter("weight", ones(normalized_shape, dtype, device));
    bias = register_parameter("bias", zeros(normalized_shape, dtype, device));
  }
}

Tensor LayerNorm::forward(const Tensor& input) {
  return layer_norm(input, normalized_shape, weight, bias, eps);
}

std::string LayerNorm::type_name() const {
  std::ostringstream name;
  name << "LayerNorm(" << normalized_shape << ")";
  return name.str();
}

// ---------------------------------------------------------------- activations

const char* activation_name(Activation activation) {
  switch (activation) {
    case Activation::relu: return "ReLU";
    case Activation::tanh: return "Tanh";
    case Activation::sigmoid: return "Sigmoid";
    case Activation::identity: return "Identity";
    case Activation::gelu: return "GELU";
    case Activation::gelu_tanh: return "GELU(approximate = tanh)";
    case Activation::silu: return "SiLU";
    case Activation::leaky_relu: return "LeakyReLU(negative_slope = 0.01)";
    case Activation::softplus: return "Softplus(beta = 1, threshold = 20)";
    case Activation::elu: return "ELU(alpha = 1)";
  }
  return "?";
}

Tensor activate(Activation activation, const Tensor& x) {
  switch (activation) {
    case Activation::relu: return relu(x);
    case Activation::tanh: return tanh(x);
    case Activation::sigmoid: return sigmoid(x);
    case Activation::identity: return x;
    case Activation::gelu: return gelu(x);
    case Activation::gelu_tanh: return gelu(x, GeluApproximation::tanh);
    case Activation::silu: return silu(x);
    case Activation::leaky_relu: return leaky_relu(x);
    case Activation::softplus: return softplus(x);
    case Activation::elu: return elu(x);
  }
  return x;
}

// ---------------------------------------------------------------- Dropout

Dropout::Dropout(double p, Generator& generator) : p(p), generator_(&generator) {
  check(p >= 0 && p <= 1, "Dropout", "drop probability p must lie in [0, 1], got ", p);
}

Tensor Dropout::forward(const Tensor& input) {
  return dropout(input, p, *generator_, is_training());
}

std::string Dropout::type_name() const {
  std::ostringstream name;
  name << "Dropout(p = " << p << ")";
  return name.str();
}

// ---------------------------------------------------------------- Sequential, MLP

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) {
  for (auto& m : modules) append(std::move(m));
}

Sequential& Sequential::append(std::shared_ptr<Module> module) {
  register_module(std::to_string(children().size()), std::move(module));
  return *this;
}

Tensor Sequential::forward(const Tensor& input) {
  Tensor x = input;
  for (const auto& child : children()) x = child.second->forward(x);
  return x;
}

MLP::MLP(const std::vector<int64_t>& sizes, Generator& generator, Activation activation,
         bool activate_last, DType dtype, Device device) {
  check(sizes.size() >= 2, "MLP", "needs at least an input and an output size, got ",
        sizes.size(), " sizes");
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    append(std::make_shared<Linear>(sizes[i], sizes[i + 1], generator, true, dtype, device));
    bool last = i + 2 == sizes.size();
    if (!last || activate_last) append(std::make_shared<ActivationLayer>(activation));
  }
}

}  // namespace tg::nn
