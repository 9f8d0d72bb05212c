// src/ops/softmax.cpp — softmax and log_softmax with a temperature, each one fused kernel
// forward and one backward (src/cpu/cpu_fused.cpp; the element math in src/kernels/fused_math.h,
// derived in docs/math.md).
//
// With a temperature tensor T, the op records T as a second input. Every function of x/T has
// grad_T = -Σ_j x_j·grad_x_j / T, so T's gradient comes from the same grad_x the kernel makes.
#include "fused_helpers.h"

namespace tg {

using detail::backend_of;
using detail::Tempered;
using SoftmaxKind = Backend::SoftmaxKind;

namespace {

// softmax:      y = e^(x/T) / Σ e^(x/T)     grad_x = y·(grad - Σ grad·y) / T
// log_softmax:  y = x/T - log Σ e^(x/T)     grad_x = (grad - e^y·Σ grad) / T
// both:         grad_T = -Σ_axis x·grad_x / T
Tensor softmax_op(const char* name, SoftmaxKind kind, const Tensor& x, const Tempered& t) {
  // An empty axis (softmax of [0, 5] over axis 0) gives an empty result, as in PyTorch: there
  // is nothing for the kernels to compute, forward or backward.
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  if (t.layout.n > 0)
    backend_of(x).softmax(kind, x.dtype(), x.raw_data(), y.raw_data(), t.layout);
  if (is_recording(x, t.temperature))
    record(name, y, {x, t.temperature}, [kind, x, y, t](const Tensor& grad, Gradients& g) {
      Tensor grad_x = empty(x.shape(), x.dtype(), x.device());
      if (t.layout.n > 0)
        backend_of(x).softmax_backward(kind, x.dtype(), grad.raw_data(), y.raw_data(),
                                       grad_x.raw_data(), t.layout);
      if (g.wants(1)) g.add(1, detail::temperature_grad(x, grad_x, t));
      g.add(0, grad_x);
    });
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x, int axis, double temperature) {
  return softmax_op("softmax", SoftmaxKind::softmax, x,
                    detail::tempered_layout("softmax", x, axis, temperature));
}

Tensor softmax(const Tensor& x, int axis, const Tensor& temperature) {
  return softmax_op("softmax", SoftmaxKind::softmax, x,
                    detail::tempered_layout("softmax", x, axis, temperature));
}

Tensor log_softmax(const Tensor& x, int axis, double temperature) {
  return softmax_op("log_softmax", SoftmaxKind::log_softmax, x,
                    detail::tempered_layout("log_softmax", x, axis, temperature));
}

Tensor log_softmax(const Tensor& x, int axis, const Tensor& temperature) {
  return softmax_op("log_softmax", SoftmaxKind::log_softmax, x,
                    detail::tempered_layout("log_softmax", x, axis, temperature));
}

}  // namespace tg
