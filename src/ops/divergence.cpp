// src/ops/divergence.cpp — divergences between discrete distributions and entropy: kl_div
// (PyTorch's F.kl_div), KL straight from logits, entropy, Jensen-Shannon and total variation.
// docs/math.md derives every forward formula and gradient.
#include <cmath>

#include "fused_helpers.h"

namespace tg {

using detail::backend_of;
using detail::pointwise_op;
using detail::Tempered;
using Pointwise = Backend::Pointwise;

namespace {

// The pointwise kernels' gradients (src/kernels/fused_math.h) in engine ops, for a recorded
// sweep. Where a formula is taken as 0 (0·log 0), its inputs are made safe first, so that a
// second derivative is 0 there too, not NaN.
Tensor positive(const Tensor& x) {
  NoGrad no_grad;
  return greater(x, zeros({}, x.dtype(), x.device()));
}

// (log q, p):  ∂/∂log q = -p      ∂/∂p = log p + 1 - log q    (0 where p = 0)
Tensor kl_div_partial(const std::vector<Tensor>& in, int k, double) {
  if (k == 0) return neg(in[1]);
  Tensor mask = positive(in[1]);
  return detail::masked(mask, sub(add(log(detail::safe_input(mask, in[1], 1)), 1.0),
                                  detail::safe_input(mask, in[0], 0)));
}

// (log q, log p):  ∂/∂log q = -p      ∂/∂log p = p·(log p - log q + 1)    (0 where p = 0)
Tensor kl_div_log_target_partial(const std::vector<Tensor>& in, int k, double) {
  if (k == 0) return neg(exp(in[1]));
  Tensor mask = positive(exp(in[1]));
  Tensor log_p = detail::safe_input(mask, in[1], 0), log_q = detail::safe_input(mask, in[0], 0);
  return detail::masked(mask, mul(exp(log_p), add(sub(log_p, log_q), 1.0)));
}

// (p):  ∂/∂p = -(log p + 1)    (0 where p = 0)
Tensor entropy_partial(const std::vector<Tensor>& in, int, double) {
  Tensor mask = positive(in[0]);
  return detail::masked(mask, neg(add(log(detail::safe_input(mask, in[0], 1)), 1.0)));
}

// (p, q):  ∂/∂p = ½·log(p/m), m = (p + q)/2    (0 where p = 0; likewise for q)
Tensor js_partial(const std::vector<Tensor>& in, int k, double) {
  Tensor mask = positive(in[k]);
  Tensor own = detail::safe_input(mask, in[k], 1);
  Tensor middle = detail::safe_input(mask, mul(add(in[0], in[1]), 0.5), 1);
  return detail::masked(mask, mul(sub(log(own), log(middle)), 0.5));
}

// (p, q):  ∂/∂p = ½·sign(p - q) = -∂/∂q: piecewise constant
Tensor total_variation_partial(const std::vector<Tensor>& in, int k, double) {
  NoGrad no_grad;
  Tensor half_sign = mul(sub(greater(in[0], in[1]), less(in[0], in[1])), 0.5);
  return k == 0 ? half_sign : neg(half_sign);
}

// Σ over `axis` of a pointwise term: one value per distribution, then the reduction.
Tensor per_distribution(const char* name, Pointwise kind, detail::PointwisePartial partial,
                        const Tensor& p, const Tensor& q, int axis, Reduction reduction) {
  if (q.defined()) {
    detail::check_floating_group(name, {p, q});
    detail::check_same_shape(name, p, q, "p", "q");
  } else {
    detail::check_floating(name, p);
  }
  int a = p.shape().axis(axis, name);
  std::vector<Tensor> inputs = {p};
  if (q.defined()) inputs.push_back(q);
  Tensor values = sum(pointwise_op(name, kind, inputs, Reduction::none, partial), a);
  return detail::reduce_values(values, reduction, p.dim() > 1 ? p.shape()[0] : 1);
}

// kl_logits_op's gradients in engine ops, for a recorded sweep (create_graph), from the
// per-distribution gradient grad_kl of the KL. With P = softmax(p/T), Q = softmax(q/T) (uniform
// when q is undefined) and d = log P - log Q (0 where P = 0):
//   grad_p = softmax_backward(grad_kl·d, P) = grad_kl·P·(d - KL)/T     (Σ P·d = KL)
//   grad_q = grad_kl·(Q - P)/T
void kl_logits_recorded(const Tensor& grad_kl, const Tensor& p, const Tensor& q,
                        const Tempered& t, bool want_p, bool want_q, Tensor& grad_p,
                        Tensor& grad_q) {
  using detail::SoftmaxKind;
  Tensor per_distribution = detail::along_axis(grad_kl, p.shape(), t.axis);
  Tensor probs_p = detail::softmax_op(SoftmaxKind::softmax, p, t);
  if (want_p) {
    const double log_n = t.layout.n > 0 ? std::log(static_cast<double>(t.layout.n)) : 0.0;
    Tensor log_q = q.defined() ? detail::softmax_op(SoftmaxKind::log_softmax, q, t)
                               : full({}, -log_n, p.dtype(), p.device());  // uniform
    Tensor positive;
    {
      NoGrad no_grad;
      positive = greater(probs_p, zeros({}, p.dtype(), p.device()));
    }
    Tensor log_ratio =
        sub(detail::safe_input(positive, detail::softmax_op(SoftmaxKind::log_softmax, p, t), 0),
            detail::safe_input(positive, log_q, 0));
    grad_p = detail::softmax_backward(SoftmaxKind::softmax, mul(per_distribution, log_ratio),
                                      probs_p, t);
  }
  if (want_q && q.defined()) {
    Tensor probs_q = detail::softmax_op(SoftmaxKind::softmax, q, t);
    grad_q = detail::divide_by_temperature(mul(per_distribution, sub(probs_q, probs_p)), t);
  }
}

// kl = KL(softmax(p/T) ‖ softmax(q/T)) per distribution, or KL(softmax(p/T) ‖ uniform) when q is
// undefined (entropy_logits uses it).
// grad_p = grad·P·(log P - log Q - kl)/T     grad_q = grad·(Q - P)/T
// grad_T = -Σ_axis (p·grad_p + q·grad_q)/T
Tensor kl_logits_op(const char* name, const Tensor& p, const Tensor& q, const Tempered& t,
                    double sign, double offset) {
  // Distributions over an empty axis have KL 0 (and entropy 0), as in PyTorch; the kernels
  // have nothing to compute for them, forward or backward.
  const bool empty_axis = t.layout.n == 0;
  Shape kl_shape = detail::reduced_shape(p.shape(), t.axis, false);
  Tensor kl = empty_axis ? zeros(kl_shape, p.dtype(), p.device())
                         : empty(kl_shape, p.dtype(), p.device());
  Tensor stats = empty({t.layout.outer * t.layout.inner * 4}, p.dtype(), p.device());
  if (!empty_axis)
    backend_of(p).kl_logits(p.dtype(), p.raw_data(), detail::data_or_null(q),
                            kl.raw_data(), stats.raw_data(), t.layout);
  // entropy_logits reports log n - kl: the same kernel, a sign and an offset.
  Tensor y = sign == 1 && offset == 0
                 ? kl
                 : detail::unary_kernel(name, UnaryOp::add_scalar,
                                        detail::unary_kernel(name, UnaryOp::mul_scalar, kl, sign),
                                        offset);
  if (is_recording(p, q, t.temperature))
    record(with_scalars(name, t.axis), y, {p, q, t.temperature},
           save(p, q, t.temperature, t.expanded, kl, stats),
           [layout = t.layout_only(), sign, empty_axis](
               const Tensor& grad, Gradients& g, const Tensor& p, const Tensor& q,
               const Tensor& temperature, const Tensor& expanded, const Tensor& kl,
               const Tensor& stats) {
      const Tempered t = layout.with(temperature, expanded);
      const bool want_t = g.wants(2);
      Tensor grad_kl = sign == 1 ? grad : mul(grad, sign);
      Tensor grad_p, grad_q;
      if (grad_enabled() && (needs_grad(grad) || needs_grad(p) || needs_grad(q) ||
                             needs_grad(t.temperature))) {
        kl_logits_recorded(grad_kl, p, q, t, g.wants(0) || want_t, g.wants(1) || want_t, grad_p,
                           grad_q);
      } else {
        if (g.wants(0) || want_t) grad_p = empty(p.shape(), p.dtype(), p.device());
        if (q.defined() && (g.wants(1) || want_t))
          grad_q = empty(q.shape(), q.dtype(), q.device());
        if (!empty_axis)
          backend_of(p).kl_logits_backward(
              p.dtype(), grad_kl.raw_data(), p.raw_data(), detail::data_or_null(q),
              kl.raw_data(), stats.raw_data(), detail::data_or_null(grad_p),
              detail::data_or_null(grad_q), t.layout);
      }
      if (want_t) {
        Tensor grad_t = detail::temperature_grad(p, grad_p, t);
        if (grad_q.defined()) grad_t = add(grad_t, detail::temperature_grad(q, grad_q, t));
        g.add(2, grad_t);
      }
      g.add(0, grad_p);
      g.add(1, grad_q);
    });
  return y;
}

Tensor kl_logits_checked(const Tensor& p_logits, const Tensor& q_logits, const Tempered& t,
                         Reduction reduction) {
  const char* name = "kl_divergence_logits";
  detail::check_floating_group(name, {p_logits, q_logits});
  detail::check_same_shape(name, p_logits, q_logits, "p_logits", "q_logits");
  Tensor kl = kl_logits_op(name, p_logits, q_logits, t, 1, 0);
  return detail::reduce_values(kl, reduction, p_logits.dim() > 1 ? p_logits.shape()[0] : 1);
}

Tensor entropy_logits_checked(const Tensor& logits, const Tempered& t, Reduction reduction) {
  // H(P) = log n - KL(P ‖ uniform)
  // (log n - KL is 0 for an empty distribution: no log 0 there.)
  const double log_n = t.layout.n > 0 ? std::log(static_cast<double>(t.layout.n)) : 0.0;
  Tensor h = kl_logits_op("entropy_logits", logits, Tensor(), t, -1, log_n);
  return detail::reduce_values(h, reduction, logits.dim() > 1 ? logits.shape()[0] : 1);
}

}  // namespace

// ℓ = p·(log p - log q) (0 where p = 0)     grad_log_q = -grad·p     grad_p = grad·(log p + 1 - log q)
// With log_target, the target is log p:     grad_log_p = grad·p·(log p - log q + 1)
Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction, bool log_target) {
  detail::check_floating_group("kl_div", {input, target});
  return pointwise_op("kl_div", log_target ? Pointwise::kl_div_log_target : Pointwise::kl_div,
                      {input, target}, reduction,
                      log_target ? kl_div_log_target_partial : kl_div_partial);
}

Tensor kl_divergence_logits(const Tensor& p_logits, const Tensor& q_logits, int axis,
                            double temperature, Reduction reduction) {
  return kl_logits_checked(p_logits, q_logits,
                           detail::tempered_layout("kl_divergence_logits", p_logits, axis, temperature),
                           reduction);
}

Tensor kl_divergence_logits(const Tensor& p_logits, const Tensor& q_logits, int axis,
                            const Tensor& temperature, Reduction reduction) {
  return kl_logits_checked(p_logits, q_logits,
                           detail::tempered_layout("kl_divergence_logits", p_logits, axis, temperature),
                           reduction);
}

// H = -Σ p·log p                grad_p = -grad·(log p + 1)   (0 where p = 0)
Tensor entropy(const Tensor& probs, int axis, Reduction reduction) {
  return per_distribution("entropy", Pointwise::entropy, entropy_partial, probs, Tensor(), axis,
                          reduction);
}

// H = log n - KL(softmax(x/T) ‖ uniform)      grad_x = -grad·P·(log P + H)/T
Tensor entropy_logits(const Tensor& logits, int axis, double temperature, Reduction reduction) {
  return entropy_logits_checked(
      logits, detail::tempered_layout("entropy_logits", logits, axis, temperature), reduction);
}

// JS = ½Σ p·log(p/m) + ½Σ q·log(q/m), m = (p+q)/2     grad_p = ½·grad·log(p/m)   grad_q = ½·grad·log(q/m)
Tensor js_divergence(const Tensor& p, const Tensor& q, int axis, Reduction reduction) {
  return per_distribution("js_divergence", Pointwise::js_divergence, js_partial, p, q, axis,
                          reduction);
}

// TV = ½Σ|p - q|                grad_p = ½·grad·sign(p - q) = -grad_q
Tensor total_variation(const Tensor& p, const Tensor& q, int axis, Reduction reduction) {
  return per_distribution("total_variation", Pointwise::total_variation, total_variation_partial,
                          p, q, axis, reduction);
}

}  // namespace tg
