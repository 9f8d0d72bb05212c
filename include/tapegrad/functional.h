// tapegrad/functional.h — divergences, losses and probabilistic primitives.
//
// Each function here is one fused op: its own numerically stable forward kernel and backward
// kernel (src/kernels/fused_math.h), recorded as one tape entry (plus, for reduced results, the
// reduction). docs/math.md derives every forward formula and gradient.
//
// Conventions:
//   - Probabilities are the last axis by default (`axis`); "per distribution" results have the
//     input's shape without that axis.
//   - 0·log 0 = 0: terms with a zero probability contribute 0, and so does their gradient.
//   - Errors are tg::Error naming the function, the shapes and what was expected.
#pragma once

#include <cstdint>

#include "tapegrad/random.h"
#include "tapegrad/tensor.h"

namespace tg {

// How a loss turns its per-element (or per-distribution) values into its result, as in PyTorch:
//   none       the values themselves
//   sum        Σ values
//   mean       Σ values / (number of values)
//   batchmean  Σ values / (size of the first dimension)  — KL's mathematically correct mean
enum class Reduction { none, sum, mean, batchmean };

// ---------------------------------------------------------------- losses

// Binary cross-entropy on logits: ℓ = max(x, 0) - x·y + log(1 + e^-|x|), the stable form of
// -[y·log σ(x) + (1-y)·log(1-σ(x))]. Finite values and gradients for any finite logit.
// logits, targets: same shape (targets in [0, 1]); gradients reach both.
Tensor bce_with_logits(const Tensor& logits, const Tensor& targets,
                       Reduction reduction = Reduction::mean);

// ---------------------------------------------------------------- Gaussians

// KL(N(μ, e^logvar) ‖ N(0, 1)) = ½(μ² + e^logvar - logvar - 1) per element, reduced (default: the
// sum over every element, as in the VAE loss; batchmean gives the per-example mean).
// mu, logvar: same shape.
Tensor gaussian_kl_standard(const Tensor& mu, const Tensor& logvar,
                            Reduction reduction = Reduction::sum);

// KL(N(μ1, e^logvar1) ‖ N(μ2, e^logvar2)) for diagonal Gaussians, per element, reduced.
// The four inputs broadcast together (e.g. a prior of shape [latent] against a batch).
Tensor gaussian_kl(const Tensor& mu1, const Tensor& logvar1, const Tensor& mu2,
                   const Tensor& logvar2, Reduction reduction = Reduction::sum);

// z = μ + e^(logvar/2)·ε, ε ~ N(0, 1) drawn from `generator` (Philox: the same numbers on every
// backend for one seed). Gradients reach μ and logvar, never ε. mu, logvar: same shape.
Tensor reparameterize(const Tensor& mu, const Tensor& logvar, Generator& generator);
// The same with the noise given (shape of mu); eps is treated as a constant.
Tensor reparameterize(const Tensor& mu, const Tensor& logvar, const Tensor& eps);

}  // namespace tg
