// tapegrad/functional.h — softmax with temperature, divergences, losses and probabilistic
// primitives.
//
// Each function here is one fused op: its own numerically stable forward kernel and backward
// kernel (the per-element math in src/kernels/fused_math.h), recorded as one tape entry, plus
// the reduction for reduced results. docs/math.md derives every forward formula and gradient.
//
// Conventions:
//   - Distributions lie along `axis` (default: the last). "Per distribution" results have the
//     input's shape without that axis; `reduction` then reduces those values.
//   - Class-indexed losses (cross_entropy, nll) follow PyTorch: logits [N, C, ...] or [C], the
//     class axis is 1 (0 for a single [C] distribution), labels are i64 of the logits' shape
//     without the class axis. A label equal to `ignore_index` (default -100, PyTorch's) marks a
//     position that contributes neither loss nor gradient; mean then averages over the others.
//   - 0·log 0 = 0: terms with a zero probability contribute 0, and so does their gradient.
//   - A temperature T divides the logits: softmax(x / T). T must be finite and > 0 (else
//     tg::Error). A tensor T — one element, or one per distribution (x's shape with `axis` of
//     size 1) — receives a gradient too; its values are checked on the host.
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

// ---------------------------------------------------------------- softmax with temperature

// softmax(x / T) along `axis`. A distribution whose logits are all -inf gives zeros, not NaN.
Tensor softmax(const Tensor& x, int axis = -1, double temperature = 1.0);
Tensor softmax(const Tensor& x, int axis, const Tensor& temperature);
// log_softmax(x / T) = x/T - logsumexp(x/T) along `axis`, with max subtraction: finite for any
// finite logits (±1e4 at T = 0.05 included).
Tensor log_softmax(const Tensor& x, int axis = -1, double temperature = 1.0);
Tensor log_softmax(const Tensor& x, int axis, const Tensor& temperature);

// ---------------------------------------------------------------- divergences and entropy

// PyTorch's F.kl_div: the pointwise terms target·(log target - input), with `input` the
// log-probabilities log q and `target` the probabilities p (or log p when log_target), reduced.
// For p, q along the last axis of [N, C], kl_div(log q, p, batchmean) = mean over N of KL(p ‖ q).
// 0 where p = 0 (also when log q = -inf there). input and target broadcast together.
Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean,
              bool log_target = false);

// KL(P ‖ Q) per distribution with P = softmax(p_logits / T), Q = softmax(q_logits / T), straight
// from logits in one fused kernel; gradients reach both logits (and T). Forward KL of a model q
// against data p is kl_divergence_logits(p, q); reverse KL is kl_divergence_logits(q, p).
// With reduction, batchmean divides the sum by the first dimension (PyTorch's batchmean for
// [N, C] logits) and mean averages over distributions (the same for [N, C]).
Tensor kl_divergence_logits(const Tensor& p_logits, const Tensor& q_logits, int axis = -1,
                            double temperature = 1.0, Reduction reduction = Reduction::none);
Tensor kl_divergence_logits(const Tensor& p_logits, const Tensor& q_logits, int axis,
                            const Tensor& temperature, Reduction reduction = Reduction::none);

// H(P) = -Σ p·log p per distribution, from probabilities.
Tensor entropy(const Tensor& probs, int axis = -1, Reduction reduction = Reduction::none);
// H(softmax(logits / T)) per distribution, from logits (= log n - KL(P ‖ uniform)).
Tensor entropy_logits(const Tensor& logits, int axis = -1, double temperature = 1.0,
                      Reduction reduction = Reduction::none);

// Jensen-Shannon divergence ½KL(P ‖ M) + ½KL(Q ‖ M), M = (P + Q)/2, per distribution, from
// probabilities. Symmetric and ≤ ln 2.
Tensor js_divergence(const Tensor& p, const Tensor& q, int axis = -1,
                     Reduction reduction = Reduction::none);

// Total variation distance ½Σ|p - q| per distribution, from probabilities. In [0, 1].
Tensor total_variation(const Tensor& p, const Tensor& q, int axis = -1,
                       Reduction reduction = Reduction::none);

// ---------------------------------------------------------------- losses

// Binary cross-entropy on logits: ℓ = max(x, 0) - x·y + log(1 + e^-|x|), the stable form of
// -[y·log σ(x) + (1-y)·log(1-σ(x))]. Finite values and gradients for any finite logit.
// logits, targets: same shape (targets in [0, 1]); gradients reach both.
Tensor bce_with_logits(const Tensor& logits, const Tensor& targets,
                       Reduction reduction = Reduction::mean);

// PyTorch's F.cross_entropy: -Σ_j t'_j·log_softmax(logits)_j per sample, with t' = (1-ε)·t + ε/C
// and t either class labels (i64, one-hot) or probabilities (floating, the logits' shape; they
// receive a gradient too). mean averages over samples (N·d1·…, less the ignored ones), as
// PyTorch does.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, double label_smoothing = 0.0,
                     Reduction reduction = Reduction::mean, int64_t ignore_index = -100);

// Negative log-likelihood -log_probs[label] per sample (PyTorch's F.nll_loss without weights).
Tensor nll(const Tensor& log_probs, const Tensor& labels, Reduction reduction = Reduction::mean,
           int64_t ignore_index = -100);

// Squared error (input - target)², reduced. Same shapes.
Tensor mse(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);

// Knowledge distillation: T²·KL(softmax(teacher/T) ‖ softmax(student/T)), averaged over the batch
// (batchmean), plus alpha·cross_entropy(student, labels) when alpha ≠ 0 (labels required then).
// Logits [N, C]. The T² keeps the soft term's gradient O(1) as T grows. Gradients reach the
// teacher's logits too unless they are detached (as they usually are).
Tensor distillation_loss(const Tensor& student_logits, const Tensor& teacher_logits,
                         double temperature, double alpha = 0.0, const Tensor& labels = Tensor());

// PPO's clipped surrogate: -min(r·A, clamp(r, 1-ε, 1+ε)·A), r = e^(logp_new - logp_old), reduced
// (mean by default). Its gradient is exactly 0 where the clip blocks (A > 0 and r > 1+ε, or A < 0
// and r < 1-ε). The log-ratio is clamped at 20 before exp (r ≤ 4.9e8), so values stay finite.
// Same shapes; gradients reach all three (detach logp_old and advantages as usual).
Tensor ppo_clip_loss(const Tensor& logp_new, const Tensor& logp_old, const Tensor& advantages,
                     double clip_epsilon = 0.2, Reduction reduction = Reduction::mean);
// The clamp on the log-ratio above, for code that computes ratio statistics beside the loss.
constexpr double ppo_max_log_ratio = 20.0;

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
// Sampling without gradients — rand, randn, bernoulli, categorical — is in random.h.
Tensor reparameterize(const Tensor& mu, const Tensor& logvar, Generator& generator);
// The same with the noise given (shape of mu); eps is treated as a constant.
Tensor reparameterize(const Tensor& mu, const Tensor& logvar, const Tensor& eps);

// ---------------------------------------------------------------- dropout

// torch.nn.functional.dropout: when `training`, each element is zeroed with probability p and the
// survivors are scaled by 1/(1 - p), so E[y] = x; the mask m ~ Bernoulli(1 - p) comes from
// `generator` (Philox: the same mask on every backend for one seed). y = x·m/(1 - p),
// grad_x = grad·m/(1 - p). When not training, or p = 0, it returns x itself (no op is recorded);
// p = 1 gives zeros. p must lie in [0, 1].
Tensor dropout(const Tensor& x, double p, Generator& generator, bool training = true);

}  // namespace tg
