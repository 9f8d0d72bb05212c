// src/nn/init.cpp — parameter initialisers. Each draws on the CPU-independent Philox generator
// (random.h) in the tensor's own dtype and device, then writes the draw in place outside the tape.
#include <cmath>

#include "tapegrad/error.h"
#include "tapegrad/nn.h"
#include "tapegrad/tape.h"

namespace tg::nn::init {

namespace {
int64_t receptive_field(const Tensor& weight, const char* op) {
  check(weight.defined() && weight.dim() >= 2, op,
        "fan in/out need a weight with at least 2 dimensions [out, in, ...], got ",
        weight.defined() ? weight.shape() : Shape{});
  int64_t field = 1;
  for (int d = 2; d < weight.dim(); ++d) field *= weight.shape()[d];
  return field;
}

Tensor& assign(Tensor& tensor, const Tensor& values) {
  NoGrad no_grad;  // parameters require grad; an initialiser is not an op
  tensor.copy_(values);
  return tensor;
}
}  // namespace

// The receptive field first: it checks the weight before its sizes are read.
int64_t fan_in(const Tensor& weight) {
  int64_t field = receptive_field(weight, "fan_in");
  return weight.shape()[1] * field;
}
int64_t fan_out(const Tensor& weight) {
  int64_t field = receptive_field(weight, "fan_out");
  return weight.shape()[0] * field;
}

Tensor& uniform_(Tensor& tensor, double low, double high, Generator& generator) {
  return assign(tensor,
                uniform(tensor.shape(), low, high, generator, tensor.dtype(), tensor.device()));
}

Tensor& normal_(Tensor& tensor, double mean, double stddev, Generator& generator) {
  return assign(tensor,
                normal(tensor.shape(), mean, stddev, generator, tensor.dtype(), tensor.device()));
}

Tensor& zeros_(Tensor& tensor) { return constant_(tensor, 0.0); }

Tensor& constant_(Tensor& tensor, double value) {
  NoGrad no_grad;
  tensor.fill_(value);
  return tensor;
}

Tensor& kaiming_uniform_(Tensor& tensor, Generator& generator, double a) {
  double gain = std::sqrt(2.0 / (1.0 + a * a));
  double bound = gain * std::sqrt(3.0 / static_cast<double>(fan_in(tensor)));
  return uniform_(tensor, -bound, bound, generator);
}

Tensor& xavier_uniform_(Tensor& tensor, Generator& generator, double gain) {
  double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in(tensor) + fan_out(tensor)));
  return uniform_(tensor, -bound, bound, generator);
}

}  // namespace tg::nn::init
