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

// ---------------------------------------------------------------- activations

const char* activation_name(Activation activation) {
  switch (activation) {
    case Activation::relu: return "ReLU";
    case Activation::tanh: return "Tanh";
    case Activation::sigmoid: return "Sigmoid";
    case Activation::identity: return "Identity";
  }
  return "?";
}

Tensor activate(Activation activation, const Tensor& x) {
  switch (activation) {
    case Activation::relu: return relu(x);
    case Activation::tanh: return tanh(x);
    case Activation::sigmoid: return sigmoid(x);
    case Activation::identity: return x;
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
