// src/ops/gaussian.cpp — diagonal Gaussians: the KL terms of a VAE and the reparameterization
// trick. Each is one fused pointwise kernel (src/kernels/fused_math.h has the formulas next to
// their gradients; docs/math.md derives them), with the same gradients in engine ops for a
// recorded sweep (create_graph).
#include "fused_helpers.h"

namespace tg {

using detail::pointwise_op;
using Pointwise = Backend::Pointwise;

// ℓ = ½(μ² + e^v - v - 1)             grad_μ = grad·μ           grad_v = grad·½(e^v - 1)
Tensor gaussian_kl_standard(const Tensor& mu, const Tensor& logvar, Reduction reduction) {
  detail::check_floating_group("gaussian_kl_standard", {mu, logvar});
  detail::check_same_shape("gaussian_kl_standard", mu, logvar, "mu", "logvar");
  return pointwise_op("gaussian_kl_standard", Pointwise::gaussian_kl_standard, {mu, logvar},
                      reduction, [](const std::vector<Tensor>& in, int k, double) {
                        return k == 0 ? in[0] : mul(sub(exp(in[1]), 1.0), 0.5);
                      });
}

// ℓ = ½(e^(v1-v2) - (v1-v2) - 1 + (μ1-μ2)²·e^-v2)
// grad_μ1 = grad·(μ1-μ2)·e^-v2 = -grad_μ2     grad_v1 = grad·½(e^(v1-v2) - 1)
// grad_v2 = -grad·½(e^(v1-v2) - 1 + (μ1-μ2)²·e^-v2)
Tensor gaussian_kl(const Tensor& mu1, const Tensor& logvar1, const Tensor& mu2,
                   const Tensor& logvar2, Reduction reduction) {
  detail::check_floating_group("gaussian_kl", {mu1, logvar1, mu2, logvar2});
  return pointwise_op("gaussian_kl", Pointwise::gaussian_kl, {mu1, logvar1, mu2, logvar2},
                      reduction, [](const std::vector<Tensor>& in, int k, double) {
                        if (k == 1) return mul(sub(exp(sub(in[1], in[3])), 1.0), 0.5);
                        Tensor scaled_diff = mul(sub(in[0], in[2]), exp(neg(in[3])));  // Δ·e^-v2
                        if (k == 0) return scaled_diff;
                        if (k == 2) return neg(scaled_diff);
                        Tensor half_expm1 = mul(sub(exp(sub(in[1], in[3])), 1.0), 0.5);
                        return neg(add(half_expm1, mul(mul(scaled_diff, sub(in[0], in[2])), 0.5)));
                      });
}

// z = μ + e^(v/2)·ε                   grad_μ = grad             grad_v = grad·½·e^(v/2)·ε
// ε is a constant input: it is never recorded, so no gradient can reach it.
Tensor reparameterize(const Tensor& mu, const Tensor& logvar, const Tensor& eps) {
  detail::check_floating_group("reparameterize", {mu, logvar, eps});
  detail::check_same_shape("reparameterize", mu, logvar, "mu", "logvar");
  detail::check_same_shape("reparameterize", mu, eps, "mu", "eps");
  return pointwise_op("reparameterize", Pointwise::reparameterize, {mu, logvar, eps.detach()},
                      Reduction::none,
                      [](const std::vector<Tensor>& in, int k, double) {
                        if (k == 0) return ones({}, in[0].dtype(), in[0].device());
                        return mul(mul(exp(mul(in[1], 0.5)), in[2]), 0.5);
                      },
                      0, 2);
}

Tensor reparameterize(const Tensor& mu, const Tensor& logvar, Generator& generator) {
  detail::check_floating("reparameterize", mu);
  return reparameterize(mu, logvar, randn_like(mu, generator));
}

}  // namespace tg
