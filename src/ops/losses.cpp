// src/ops/losses.cpp — training losses: binary and categorical cross-entropy, nll, mse,
// knowledge distillation and PPO's clipped surrogate. Pointwise ones are a single fused kernel
// that also reduces; softmax-based ones go through the cross_entropy / kl_logits row kernels.
// docs/math.md derives every formula.
#include "fused_helpers.h"

namespace tg {

using detail::pointwise_op;
using Pointwise = Backend::Pointwise;

// ℓ = max(x,0) - x·y + log(1 + e^-|x|)      grad_x = grad·(σ(x) - y)      grad_y = -grad·x
Tensor bce_with_logits(const Tensor& logits, const Tensor& targets, Reduction reduction) {
  detail::check_floating_group("bce_with_logits", {logits, targets});
  detail::check_same_shape("bce_with_logits", logits, targets, "logits", "targets");
  return pointwise_op("bce_with_logits", Pointwise::bce_with_logits, {logits, targets}, reduction);
}

}  // namespace tg
