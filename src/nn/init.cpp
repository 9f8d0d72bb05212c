// src/nn/init.cpp — parameter initialisers. Each draws on the CPU-independent Philox generator
// (random.h) in the tensor's own dtype and device, then writes the draw in place outside the tape.
#include <cmath>
#include <vector>

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

Tensor& kaiming_normal_(Tensor& tensor, Generator& generator, double a, bool fan_out_mode) {
  double gain = std::sqrt(2.0 / (1.0 + a * a));
  double fan = static_cast<double>(fan_out_mode ? fan_out(tensor) : fan_in(tensor));
  return normal_(tensor, 0.0, gain / std::sqrt(fan), generator);
}

Tensor& xavier_normal_(Tensor& tensor, Generator& generator, double gain) {
  double stddev = gain * std::sqrt(2.0 / static_cast<double>(fan_in(tensor) + fan_out(tensor)));
  return normal_(tensor, 0.0, stddev, generator);
}

// Gram-Schmidt on the columns of A (m × n, m ≥ n) gives the Q of A = Q·R with R's diagonal
// positive (each column is divided by its own positive norm) — the Q PyTorch obtains from
// linalg.qr after flipping signs by sign(diag R). Each column is orthogonalised twice against
// the earlier ones ("twice is enough", Giraud et al. 2005), which keeps Q orthogonal to rounding
// error even for an ill-conditioned A.
Tensor& orthogonal_(Tensor& tensor, Generator& generator, double gain) {
  check(tensor.defined() && tensor.dim() >= 2, "orthogonal_",
        "needs a tensor with at least 2 dimensions, got ",
        tensor.defined() ? tensor.shape() : Shape{});
  const int64_t rows = tensor.shape()[0], cols = tensor.numel() / rows;
  if (rows == 0 || cols == 0) return tensor;
  Tensor draw = normal({rows, cols}, 0, 1, generator, DType::f64);
  const double* a = draw.data<double>();
  // A is the draw, transposed when rows < cols: m × n with m ≥ n, column j contiguous in q.
  const bool transposed = rows < cols;
  const int64_t m = transposed ? cols : rows, n = transposed ? rows : cols;
  std::vector<double> q(m * n);  // column j at q[j * m, (j + 1) * m)
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < m; ++i) q[j * m + i] = transposed ? a[j * cols + i] : a[i * cols + j];
  for (int64_t j = 0; j < n; ++j) {
    double* v = &q[j * m];
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t k = 0; k < j; ++k) {
        const double* u = &q[k * m];
        double dot = 0;
        for (int64_t i = 0; i < m; ++i) dot += u[i] * v[i];
        for (int64_t i = 0; i < m; ++i) v[i] -= dot * u[i];
      }
    double norm = 0;
    for (int64_t i = 0; i < m; ++i) norm += v[i] * v[i];
    norm = std::sqrt(norm);
    check(norm > 0, "orthogonal_", "the normal draw was rank-deficient");  // probability 0
    for (int64_t i = 0; i < m; ++i) v[i] /= norm;
  }
  // W = gain·Q, or gain·Qᵀ when A was transposed; W is [rows, cols] row-major.
  std::vector<double> w(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      w[r * cols + c] = gain * (transposed ? q[r * m + c] : q[c * m + r]);
  return assign(tensor, tg::tensor(w, tensor.shape(), tensor.dtype()).to(tensor.device()));
}

}  // namespace tg::nn::init
