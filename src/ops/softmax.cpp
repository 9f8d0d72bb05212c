// src/ops/softmax.cpp — softmax and log_softmax with a temperature, each one fused kernel
// forward and one backward (src/cpu/cpu_fused.cpp; the element math in src/kernels/fused_math.h,
// derived in docs/math.md). The backward kernel is an op of its own with its own backward.
//
// With a temperature tensor T, the op records T as a second input. Every function of x/T has
// grad_T = -Σ_j x_j·grad_x_j / T, so T's gradient comes from the same grad_x the kernel makes.
#include "fused_helpers.h"

namespace tg {

using detail::backend_of;
using detail::SoftmaxKind;
using detail::Tempered;

namespace detail {

Tensor divide_by_temperature(const Tensor& x, const Tempered& t) {
  return t.temperature.defined() ? div(x, t.temperature) : mul(x, 1.0 / t.layout.temperature);
}

// grad_x of softmax and log_softmax from the saved output y, an op of its own (ggml's
// soft_max_ext_back), so that gradients of gradients go through it (docs/math.md §second
// derivatives). Sums run over the distribution axis:
//   softmax:      z = y·(grad - Σ grad·y) / T
//                 grad_grad = softmax_backward(u, y)       (the Jacobian is symmetric)
//                 grad_y    = (u·(grad - Σ grad·y) - grad·Σ u·y) / T
//   log_softmax:  z = (grad - e^y·Σ grad) / T
//                 grad_grad = (u - Σ u·e^y) / T            grad_y = -u·e^y·Σ grad / T
//   both:         grad_T = -Σ u·z / T
Tensor softmax_backward(SoftmaxKind kind, const Tensor& grad, const Tensor& y, const Tempered& t) {
  Tensor z = empty(y.shape(), y.dtype(), y.device());
  if (t.layout.n > 0)  // an empty axis: nothing to compute
    backend_of(y).softmax_backward(kind, y.dtype(), grad.raw_data(), y.raw_data(), z.raw_data(),
                                   t.layout);
  const bool softmax = kind == SoftmaxKind::softmax;
  if (is_recording(grad, y, t.temperature))
    record(with_scalars(softmax ? "softmax_backward" : "log_softmax_backward", t.axis), z,
           {grad, y, t.temperature}, save(grad, y, z, t.temperature, t.expanded),
           [softmax, kind, layout = t.layout_only()](
               const Tensor& u, Gradients& g, const Tensor& grad, const Tensor& y, const Tensor& z,
               const Tensor& temperature, const Tensor& expanded) {
             const Tempered t = layout.with(temperature, expanded);
             auto row_sum = [&t](const Tensor& v) { return sum(v, t.axis, true); };
             if (softmax) {
               if (g.wants(0)) g.add(0, softmax_backward(kind, u, y, t));
               if (g.wants(1))
                 g.add(1, divide_by_temperature(sub(mul(u, sub(grad, row_sum(mul(grad, y)))),
                                                    mul(grad, row_sum(mul(u, y)))),
                                                t));
             } else {
               Tensor p = exp(y);
               if (g.wants(0)) g.add(0, divide_by_temperature(sub(u, row_sum(mul(u, p))), t));
               if (g.wants(1))
                 g.add(1, neg(divide_by_temperature(mul(mul(u, p), row_sum(grad)), t)));
             }
             if (g.wants(2)) g.add(2, temperature_grad(u, z, t));
           });
  return z;
}

// softmax:      y = e^(x/T) / Σ e^(x/T)     grad_x = y·(grad - Σ grad·y) / T
// log_softmax:  y = x/T - log Σ e^(x/T)     grad_x = (grad - e^y·Σ grad) / T
// both:         grad_T = -Σ_axis x·grad_x / T
Tensor softmax_op(SoftmaxKind kind, const Tensor& x, const Tempered& t) {
  const char* name = kind == SoftmaxKind::softmax ? "softmax" : "log_softmax";
  // An empty axis (softmax of [0, 5] over axis 0) gives an empty result, as in PyTorch: there
  // is nothing for the kernels to compute, forward or backward.
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  if (t.layout.n > 0)
    backend_of(x).softmax(kind, x.dtype(), x.raw_data(), y.raw_data(), t.layout);
  if (is_recording(x, t.temperature))
    record(with_scalars(name, t.axis), y, {x, t.temperature}, save(x, y, t.temperature, t.expanded),
           [kind, layout = t.layout_only()](const Tensor& grad, Gradients& g, const Tensor& x,
                                            const Tensor& y, const Tensor& temperature,
                                            const Tensor& expanded) {
      const Tempered t = layout.with(temperature, expanded);
      Tensor grad_x = softmax_backward(kind, grad, y, t);
      if (g.wants(1)) g.add(1, temperature_grad(x, grad_x, t));
      g.add(0, grad_x);
    });
  return y;
}

}  // namespace detail

Tensor softmax(const Tensor& x, int axis, double temperature) {
  return detail::softmax_op(SoftmaxKind::softmax, x,
                    detail::tempered_layout("softmax", x, axis, temperature));
}

Tensor softmax(const Tensor& x, int axis, const Tensor& temperature) {
  return detail::softmax_op(SoftmaxKind::softmax, x,
                    detail::tempered_layout("softmax", x, axis, temperature));
}

Tensor log_softmax(const Tensor& x, int axis, double temperature) {
  return detail::softmax_op(SoftmaxKind::log_softmax, x,
                    detail::tempered_layout("log_softmax", x, axis, temperature));
}

Tensor log_softmax(const Tensor& x, int axis, const Tensor& temperature) {
  return detail::softmax_op(SoftmaxKind::log_softmax, x,
                    detail::tempered_layout("log_softmax", x, axis, temperature));
}

}  // namespace tg
