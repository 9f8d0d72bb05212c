// src/ops/random.cpp — sampling. None of these are differentiable by themselves; the
// reparameterization trick (functional.h) is how gradients pass through a sample.
#include "tapegrad/random.h"

#include <algorithm>
#include <cmath>

#include "op_helpers.h"

namespace tg {

namespace {

Tensor fill_random(const char* op, RandomDistribution distribution, const Shape& shape, double a,
                   double b, Generator& generator, DType dtype, Device device) {
  check(is_floating(dtype), op, "random tensors must be f32 or f64, got ", dtype);
  Tensor out = empty(shape, dtype, device);
  const uint64_t per_block = dtype == DType::f32 ? 4 : 2;
  uint64_t offset = generator.advance((out.numel() + per_block - 1) / per_block);
  backend_for(device).fill_random(distribution, dtype, out.raw_data(), out.numel(), a, b,
                                  generator.seed(), generator.stream(), offset);
  return out;
}

}  // namespace

Tensor uniform(const Shape& shape, double low, double high, Generator& generator, DType dtype,
               Device device) {
  check(low <= high, "uniform", "low ", low, " is greater than high ", high);
  return fill_random("uniform", RandomDistribution::uniform, shape, low, high, generator, dtype,
                     device);
}

Tensor rand(const Shape& shape, Generator& generator, DType dtype, Device device) {
  return uniform(shape, 0, 1, generator, dtype, device);
}

Tensor normal(const Shape& shape, double mean, double stddev, Generator& generator, DType dtype,
              Device device) {
  check(stddev >= 0, "normal", "standard deviation must be >= 0, got ", stddev);
  return fill_random("normal", RandomDistribution::normal, shape, mean, stddev, generator, dtype,
                     device);
}

Tensor randn(const Shape& shape, Generator& generator, DType dtype, Device device) {
  return normal(shape, 0, 1, generator, dtype, device);
}

Tensor randn_like(const Tensor& like, Generator& generator) {
  return randn(like.shape(), generator, like.dtype(), like.device());
}

Tensor bernoulli(const Tensor& probabilities, Generator& generator) {
  detail::check_floating("bernoulli", probabilities);
  NoGrad no_grad;
  Tensor u = rand(probabilities.shape(), generator, probabilities.dtype(), probabilities.device());
  return less(u, probabilities);
}

// Gumbel-max: argmax(logits + g) with g = -log(-log u) is a draw from softmax(logits).
Tensor categorical(const Tensor& logits, Generator& generator) {
  detail::check_floating("categorical", logits);
  check(logits.dim() >= 1 && logits.size(-1) > 0, "categorical",
        "expected logits with a non-empty last axis, got ", logits.shape());
  NoGrad no_grad;
  // u in [2^-24, 1) keeps both logarithms finite.
  Tensor u = uniform(logits.shape(), 0x1p-24, 1.0, generator, logits.dtype(), logits.device());
  Tensor gumbel = neg(log(neg(log(u))));
  return argmax(add(logits, gumbel), -1);
}

// Fisher-Yates, driven by one f64 uniform per swap.
Tensor randperm(int64_t n, Generator& generator) {
  check(n >= 0, "randperm", "n must be >= 0, got ", n);
  Tensor u = rand({n}, generator, DType::f64);
  const double* draws = u.data<double>();
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = std::min<int64_t>(i, static_cast<int64_t>(draws[i] * (i + 1)));
    std::swap(order[i], order[j]);
  }
  return index_tensor(order);
}

}  // namespace tg
