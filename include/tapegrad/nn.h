// tapegrad/nn.h — modules: parameters with names, children, train/eval, and the layers built on
// them (Linear, activations, Sequential, MLP), plus the initialisers.
//
// A Module owns named parameters (leaf tensors with requires_grad) and named child modules. Names
// compose into paths the way PyTorch's state_dict does, so a checkpoint says "fc1.weight" or
// "encoder.0.bias":
//
//   struct Net : tg::nn::Module {
//     std::shared_ptr<tg::nn::Linear> fc1, fc2;
//     explicit Net(tg::Generator& g)
//         : fc1(register_module("fc1", std::make_shared<tg::nn::Linear>(784, 100, g))),
//           fc2(register_module("fc2", std::make_shared<tg::nn::Linear>(100, 10, g))) {}
//     tg::Tensor forward(const tg::Tensor& x) override { return (*fc2)(tg::relu((*fc1)(x))); }
//   };
//
// Parameters are tensor handles: the module, its optimizer and a checkpoint all refer to the same
// storage, and loading a state dict writes into that storage in place.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/ops.h"
#include "tapegrad/random.h"
#include "tapegrad/state_dict.h"
#include "tapegrad/tensor.h"

namespace tg::nn {

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  // Modules are held by shared_ptr and never copied: a copy would share parameters silently.
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The single-input forward pass that Sequential chains. Modules with another signature (a VAE
  // returning several tensors) define their own methods instead; calling this one on them throws.
  virtual Tensor forward(const Tensor& input);
  Tensor operator()(const Tensor& input) { return forward(input); }

  // Every parameter of this module and its children, depth first in registration order, named
  // by its path ("encoder.0.weight").
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<Tensor> parameters() const;
  int64_t parameter_count() const;  // total number of elements
  // Forgets every parameter's gradient (the next backward starts afresh).
  void zero_grad();

  // Moves every parameter (with its gradient) and buffer of this module and its children to
  // `device`, in place: handles to them held elsewhere (an optimizer's, a state dict's) see the
  // move, as in PyTorch's Module.to. Optimizer state follows its parameter at the next step.
  Module& to(Device device);

  // Training mode (the default) or evaluation mode, for this module and all its children. Layers
  // such as dropout behave differently in each; the layers here behave the same in both.
  void train(bool training = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Parameters and buffers by path. The tensors share the live parameters' storage (not copies)
  // but are detached: reading or saving them records nothing on the tape.
  StateDict state_dict() const;
  // Checks that `state` has exactly this module's entries with the same shapes and dtypes (a
  // buffer registered with zero_if_missing may be absent); throws a tg::Error naming the first
  // mismatch.
  void check_state_dict(const StateDict& state) const;
  // check_state_dict, then copies every value in place (and sets absent zero_if_missing buffers
  // to 0). A state that fails the check changes nothing.
  void load_state_dict(const StateDict& state);

  // Direct children with their names.
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }
  // A one-line-per-module summary: names, types and parameter shapes.
  std::string to_string() const;
  virtual std::string type_name() const { return "Module"; }

 protected:
  // Registers `tensor` as a parameter named `name`, marks it requires_grad and returns it.
  Tensor register_parameter(const std::string& name, Tensor tensor);
  // A buffer is saved in the state dict but not trained (running statistics, masks). With
  // zero_if_missing, a state dict without it still loads and sets it to 0: for a buffer added
  // after checkpoints were written without it (BatchNorm's num_batches_tracked).
  Tensor register_buffer(const std::string& name, Tensor tensor, bool zero_if_missing = false);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name) const;
  void collect(const std::string& prefix, bool parameters_only,
               std::vector<std::pair<std::string, Tensor>>& out) const;
  // The paths of the buffers registered with zero_if_missing, here and in every child.
  void collect_zero_if_missing(const std::string& prefix, std::vector<std::string>& out) const;
  void describe(const std::string& name, int depth, std::string& out) const;

  std::vector<std::pair<std::string, Tensor>> parameters_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::string> zero_if_missing_;  // names of own buffers that may be absent
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// ---------------------------------------------------------------- layers

// y = x·wᵀ + b, with PyTorch's layout and default initialisation:
// weight [out, in] ~ kaiming_uniform(a = √5) = U(-1/√in, 1/√in), bias [out] ~ U(-1/√in, 1/√in).
// The weight is drawn before the bias, as in PyTorch.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, Generator& generator, bool bias = true,
         DType dtype = DType::f32, Device device = Device::cpu_device());
  Tensor forward(const Tensor& input) override;  // [..., in] -> [..., out]
  std::string type_name() const override;

  int64_t in_features, out_features;
  Tensor weight;  // [out, in]
  Tensor bias;    // [out], undefined when built without bias
};

// Activations as modules, for Sequential and MLP, each with torch.nn's defaults: gelu is exact
// (x·Φ(x)) and gelu_tanh its tanh approximation, leaky_relu has slope 0.01, softplus β = 1 and
// threshold 20, elu α = 1 (ops.h). For other parameters use the modules below (LeakyReLU(0.2)).
enum class Activation {
  relu, tanh, sigmoid, identity, gelu, gelu_tanh, silu, leaky_relu, softplus, elu
};
// The name of the torch.nn module with those defaults, as its type_name() prints it: "ReLU",
// "GELU(approximate = tanh)", "LeakyReLU(negative_slope = 0.01)", ...
const char* activation_name(Activation activation);
Tensor activate(Activation activation, const Tensor& x);

class ActivationLayer : public Module {
 public:
  explicit ActivationLayer(Activation activation) : activation(activation) {}
  Tensor forward(const Tensor& input) override { return activate(activation, input); }
  std::string type_name() const override { return activation_name(activation); }
  Activation activation;
};

// torch.nn.Dropout: in training mode each element is zeroed with probability p and the survivors
// are scaled by 1/(1 - p), so the expected output is the input (tg::dropout); in eval mode it is
// the identity. The masks come from `generator`, which the module refers to and which must
// outlive it: one generator can serve every dropout layer of a model, and putting it in a
// TrainingState's generators makes a resumed run draw the same masks. No parameters.
class Dropout : public Module {
 public:
  explicit Dropout(double p, Generator& generator);
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override;
  double p;

 private:
  Generator* generator_;
};

// ---------------------------------------------------------------- more activations, Embedding
// (src/nn/embedding_activations.cpp) Modules for Sequential, with torch.nn's names and defaults.
class ReLU : public ActivationLayer {
 public:
  ReLU() : ActivationLayer(Activation::relu) {}
};
class Tanh : public ActivationLayer {
 public:
  Tanh() : ActivationLayer(Activation::tanh) {}
};
class Sigmoid : public ActivationLayer {
 public:
  Sigmoid() : ActivationLayer(Activation::sigmoid) {}
};

class GELU : public Module {
 public:
  explicit GELU(GeluApproximation approximation = GeluApproximation::none)
      : approximation(approximation) {}
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override;
  GeluApproximation approximation;
};

class SiLU : public Module {
 public:
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override { return "SiLU"; }
};

class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double negative_slope = 0.01);
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override;
  double negative_slope;
};

class Softplus : public Module {
 public:
  explicit Softplus(double beta = 1.0, double threshold = 20.0);
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override;
  double beta, threshold;
};

class ELU : public Module {
 public:
  explicit ELU(double alpha = 1.0);
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override;
  double alpha;
};

// torch.nn.Embedding: a lookup table weight [num_embeddings, embedding_dim] ~ N(0, 1), indexed by
// an i64 tensor of any shape: forward(index) = weight[index], index.shape + [embedding_dim].
// With padding_idx (negative counts from the end) that row starts at zero and never receives a
// gradient (tg::embedding).
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator& generator,
            std::optional<int64_t> padding_idx = std::nullopt, DType dtype = DType::f32,
            Device device = Device::cpu_device());
  Tensor forward(const Tensor& index) override;
  std::string type_name() const override;

  int64_t num_embeddings, embedding_dim;
  std::optional<int64_t> padding_idx;  // in [0, num_embeddings) once constructed
  Tensor weight;                       // [num_embeddings, embedding_dim]
};

// torch.nn.Conv2d: conv2d(x, weight, bias, stride, padding, dilation, groups) (ops.h), with
// PyTorch's default initialisation: weight [out, in/groups, kh, kw] ~ kaiming_uniform(a = √5) =
// U(-1/√fan_in, 1/√fan_in) and bias [out] ~ U(-1/√fan_in, 1/√fan_in), fan_in = in/groups·kh·kw;
// the weight is drawn before the bias.                      [N, in, H, W] -> [N, out, oh, ow]
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Size2d kernel, Generator& generator,
         Size2d stride = 1, Size2d padding = 0, Size2d dilation = 1, int64_t groups = 1,
         bool bias = true, DType dtype = DType::f32, Device device = Device::cpu_device());
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override;

  int64_t in_channels, out_channels;
  Size2d kernel, stride, padding, dilation;
  int64_t groups;
  Tensor weight;  // [out, in/groups, kh, kw]
  Tensor bias;    // [out], undefined when built without bias
};

// torch.nn.MaxPool2d and AvgPool2d (ops.h's max_pool2d, avg_pool2d); stride 0 = the kernel size.
// No parameters.
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Size2d kernel, Size2d stride = 0, Size2d padding = 0, Size2d dilation = 1)
      : kernel(kernel), stride(stride), padding(padding), dilation(dilation) {}
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override;
  Size2d kernel, stride, padding, dilation;
};
class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Size2d kernel, Size2d stride = 0, Size2d padding = 0)
      : kernel(kernel), stride(stride), padding(padding) {}
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override;
  Size2d kernel, stride, padding;
};

// torch.nn.BatchNorm1d / BatchNorm2d (ops.h's batch_norm): weight [C] = 1 and bias [C] = 0 when
// `affine`; buffers running_mean [C] = 0, running_var [C] = 1 and num_batches_tracked (0-d i64,
// 0) when `track_running_stats`, saved in the state dict (and so in checkpoints) under PyTorch's
// names. In training mode the batch's statistics normalise and update the running ones, and
// num_batches_tracked counts the batches; in eval mode the running ones normalise (a module
// without them uses the batch's in both modes, as PyTorch). Each update weighs the batch by
// `momentum` (an exponential moving average), or, with momentum = std::nullopt (PyTorch's
// momentum=None), by 1/num_batches_tracked: the cumulative average of every batch so far. A
// state dict without num_batches_tracked (tapegrad's checkpoints before it existed) loads, with
// the count set to 0, as PyTorch loads its older ones.
class BatchNorm : public Module {
 public:
  BatchNorm(int64_t num_features, double eps, std::optional<double> momentum, bool affine,
            bool track_running_stats, DType dtype, Device device);
  Tensor forward(const Tensor& input) override;

  int64_t num_features;
  double eps;
  std::optional<double> momentum;      // in [0, 1], or std::nullopt: the cumulative average
  Tensor weight, bias;                 // [C], undefined unless affine
  Tensor running_mean, running_var;    // [C], undefined unless track_running_stats
  Tensor num_batches_tracked;          // [] i64, undefined unless track_running_stats

 protected:
  virtual void check_input(const Tensor& input) const = 0;

 private:
  // The count as last written by forward() and that write's version of the buffer, so that a
  // training step reads the count from the device only after something else wrote it (a loaded
  // state dict, Module::to): a read would wait for the GPU at every batch norm of every step.
  int64_t batches_ = 0;
  uint64_t batches_version_ = 0;
};
// Input [N, C] or [N, C, L].
class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t num_features, double eps = 1e-5,
                       std::optional<double> momentum = 0.1, bool affine = true,
                       bool track_running_stats = true,
                       DType dtype = DType::f32, Device device = Device::cpu_device())
      : BatchNorm(num_features, eps, momentum, affine, track_running_stats, dtype, device) {}
  std::string type_name() const override;

 protected:
  void check_input(const Tensor& input) const override;
};
// Input [N, C, H, W].
class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5,
                       std::optional<double> momentum = 0.1, bool affine = true,
                       bool track_running_stats = true,
                       DType dtype = DType::f32, Device device = Device::cpu_device())
      : BatchNorm(num_features, eps, momentum, affine, track_running_stats, dtype, device) {}
  std::string type_name() const override;

 protected:
  void check_input(const Tensor& input) const override;
};

// torch.nn.LayerNorm (ops.h's layer_norm) over the last axes, which must equal normalized_shape;
// weight = 1 and bias = 0 of that shape when elementwise_affine. The same in train and eval.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true,
                     DType dtype = DType::f32, Device device = Device::cpu_device());
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override;
  Shape normalized_shape;
  double eps;
  Tensor weight, bias;
};

// torch.nn.Flatten() (start_dim 1): [N, ...] -> [N, rest]. No parameters.
class Flatten : public Module {
 public:
  Tensor forward(const Tensor& input) override { return flatten(input); }
  std::string type_name() const override { return "Flatten"; }
};

// Runs its children in order, each on the previous one's output. Children are named "0", "1", ...
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> modules);
  Sequential& append(std::shared_ptr<Module> module);
  Tensor forward(const Tensor& input) override;
  size_t size() const { return children().size(); }
  std::string type_name() const override { return "Sequential"; }
};

// A multi-layer perceptron: Linear(sizes[0], sizes[1]), activation, Linear(sizes[1], sizes[2]),
// ..., with no activation after the last Linear unless `activate_last`. Names match PyTorch's
// nn.Sequential of the same layers: "0.weight", "2.weight", ...
class MLP : public Sequential {
 public:
  MLP(const std::vector<int64_t>& sizes, Generator& generator,
      Activation activation = Activation::relu, bool activate_last = false,
      DType dtype = DType::f32, Device device = Device::cpu_device());
  std::string type_name() const override { return "MLP"; }
};

// ---------------------------------------------------------------- initialisers
// Each fills a tensor in place (outside the tape) from `generator` and returns it.
namespace init {

// fan_in = size(1) * receptive field, fan_out = size(0) * receptive field (PyTorch's rule for a
// [out, in, ...] weight). Needs at least 2 dimensions.
int64_t fan_in(const Tensor& weight);
int64_t fan_out(const Tensor& weight);

Tensor& uniform_(Tensor& tensor, double low, double high, Generator& generator);
Tensor& normal_(Tensor& tensor, double mean, double stddev, Generator& generator);
Tensor& zeros_(Tensor& tensor);
Tensor& constant_(Tensor& tensor, double value);
// U(-bound, bound) with bound = gain * √(3 / fan_in), gain = √(2 / (1 + a²)) (leaky ReLU slope a).
// PyTorch's Linear uses a = √5, which makes bound = 1/√fan_in.
Tensor& kaiming_uniform_(Tensor& tensor, Generator& generator, double a = 0.0);
// U(-bound, bound) with bound = gain * √(6 / (fan_in + fan_out)).
Tensor& xavier_uniform_(Tensor& tensor, Generator& generator, double gain = 1.0);
// torch.nn.init.kaiming_normal_ (mode fan_in, or fan_out when `fan_out_mode`; nonlinearity
// leaky_relu with slope a, a = 0 being ReLU): N(0, std²), std = gain / √fan, gain = √(2 / (1 + a²)).
Tensor& kaiming_normal_(Tensor& tensor, Generator& generator, double a = 0.0,
                        bool fan_out_mode = false);
// torch.nn.init.xavier_normal_: N(0, std²), std = gain * √(2 / (fan_in + fan_out)).
Tensor& xavier_normal_(Tensor& tensor, Generator& generator, double gain = 1.0);
// torch.nn.init.orthogonal_: the weight viewed as a [rows = size(0), cols = numel / rows] matrix
// becomes gain times a (semi-)orthogonal matrix: W·Wᵀ = gain²·I when rows ≤ cols, Wᵀ·W = gain²·I
// when rows ≥ cols. As in PyTorch it is the Q factor of the QR decomposition (with R's diagonal
// positive) of a standard normal matrix, transposed first when rows < cols, so Q is uniformly
// (Haar) distributed. The normal draw is f64 on the CPU and Q is computed there in f64 (by
// Gram-Schmidt, twice), then converted to the tensor's dtype and device. Needs ≥ 2 dimensions.
Tensor& orthogonal_(Tensor& tensor, Generator& generator, double gain = 1.0);

}  // namespace init

}  // namespace tg::nn
