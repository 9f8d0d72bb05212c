// src/ops/random.cpp — sampling, and dropout. The samplers are not differentiable by themselves
// (the reparameterization trick in functional.h is how gradients pass through a sample); dropout
// is, with its mask a constant drawn here.
#include "tapegrad/random.h"

#include <algorithm>
#include <cmath>

#include "op_helpers.h"
#include "tapegrad/functional.h"

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

// y = x·m/(1 - p), m ~ Bernoulli(1 - p)       grad_x = grad·m/(1 - p)
// The scaled mask m/(1 - p) is drawn once, outside the tape, and saved for the backward.
Tensor dropout(const Tensor& x, double p, Generator& generator, bool training) {
  detail::check_floating("dropout", x);
  check(p >= 0 && p <= 1, "dropout", "drop probability p must lie in [0, 1], got ", p);
  if (!training || p == 0) return x;
  Tensor scaled_mask, y;
  {
    NoGrad no_grad;
    Tensor u = rand(x.shape(), generator, x.dtype(), x.device());
    Tensor keep = less(u, full({}, 1 - p, x.dtype(), x.device()));  // P(u < 1 - p) = 1 - p
    scaled_mask = mul(keep, p < 1 ? 1 / (1 - p) : 0.0);  // p = 1 keeps nothing: 0, not 0·inf
    y = mul(x, scaled_mask);
  }
  if (is_recording(x))
    record(with_scalars("dropout", p), y, {x}, save(scaled_mask),
           [](const Tensor& grad, Gradients& g, const Tensor& scaled_mask) {
      g.add(0, mul(grad, scaled_mask));
    });
  return y;
}

}  // namespace tg
