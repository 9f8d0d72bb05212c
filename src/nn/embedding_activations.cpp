// src/nn/embedding_activations.cpp — the activation modules beyond ReLU/Tanh/Sigmoid (GELU, SiLU,
// LeakyReLU, Softplus, ELU) and Embedding, with torch.nn's defaults.
#include <cmath>
#include <sstream>

#include "tapegrad/error.h"
#include "tapegrad/nn.h"
#include "tapegrad/ops.h"
#include "tapegrad/tape.h"

namespace tg::nn {

namespace {
template <class... Parts>
std::string text(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace

// ---------------------------------------------------------------- activations

Tensor GELU::forward(const Tensor& input) { return gelu(input, approximation); }
std::string GELU::type_name() const {
  return approximation == GeluApproximation::tanh ? "GELU(approximate = tanh)" : "GELU";
}

Tensor SiLU::forward(const Tensor& input) { return silu(input); }

LeakyReLU::LeakyReLU(double negative_slope) : negative_slope(negative_slope) {
  check(std::isfinite(negative_slope), "LeakyReLU", "negative_slope must be finite, got ",
        negative_slope);
}
Tensor LeakyReLU::forward(const Tensor& input) { return leaky_relu(input, negative_slope); }
std::string LeakyReLU::type_name() const {
  return text("LeakyReLU(negative_slope = ", negative_slope, ")");
}

Softplus::Softplus(double beta, double threshold) : beta(beta), threshold(threshold) {
  check(beta > 0 && std::isfinite(beta), "Softplus", "beta must be positive and finite, got ",
        beta);
}
Tensor Softplus::forward(const Tensor& input) { return softplus(input, beta, threshold); }
std::string Softplus::type_name() const {
  return text("Softplus(beta = ", beta, ", threshold = ", threshold, ")");
}

ELU::ELU(double alpha) : alpha(alpha) {
  check(std::isfinite(alpha), "ELU", "alpha must be finite, got ", alpha);
}
Tensor ELU::forward(const Tensor& input) { return elu(input, alpha); }
std::string ELU::type_name() const { return text("ELU(alpha = ", alpha, ")"); }

// ---------------------------------------------------------------- Embedding

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator& generator,
                     std::optional<int64_t> padding, DType dtype, Device device)
    : num_embeddings(num_embeddings), embedding_dim(embedding_dim), padding_idx(padding) {
  check(num_embeddings > 0 && embedding_dim > 0, "Embedding",
        "sizes must be positive, got num_embeddings ", num_embeddings, ", embedding_dim ",
        embedding_dim);
  if (padding_idx) {
    check(*padding_idx >= -num_embeddings && *padding_idx < num_embeddings, "Embedding",
          "padding_idx ", *padding_idx, " is out of range for ", num_embeddings, " embeddings");
    if (*padding_idx < 0) *padding_idx += num_embeddings;
  }
  weight = register_parameter("weight", empty({num_embeddings, embedding_dim}, dtype, device));
  init::normal_(weight, 0.0, 1.0, generator);  // torch.nn.Embedding's N(0, 1)
  if (padding_idx) {  // the padding row starts at zero, as in PyTorch
    NoGrad no_grad;
    Tensor row = zeros({1, embedding_dim}, dtype, device);
    Tensor rest_before = slice(weight, 0, 0, *padding_idx);
    Tensor rest_after = slice(weight, 0, *padding_idx + 1, num_embeddings);
    weight.copy_(concat({rest_before, row, rest_after}, 0));
  }
}

Tensor Embedding::forward(const Tensor& index) { return embedding(index, weight, padding_idx); }

std::string Embedding::type_name() const {
  return text("Embedding(", num_embeddings, ", ", embedding_dim,
                  padding_idx ? text(", padding_idx = ", *padding_idx) : std::string(), ")");
}

}  // namespace tg::nn
