// src/ops/activations.cpp — the activations beyond relu/tanh/sigmoid (GELU, SiLU, leaky ReLU,
// softplus, ELU) and sin/cos, each forward followed by its backward, with PyTorch's formulas and
// defaults. The per-element math is in src/kernels/elementwise_math.h (shared with CUDA); the
// derivatives are derived in docs/math.md §activations.
//
// Every backward is recordable, so gradients of gradients work to any order:
//   - GELU (both forms) and SiLU have a fused gradient kernel z = grad·f'(x) (one pass), recorded
//     as an op of its own whose backward is grad_grad = the same kernel of u and
//     grad_x = u·grad·f''(x), f'' written with recorded ops (so it differentiates again);
//   - leaky ReLU, softplus and ELU take scalar parameters, which BinaryOp kernels do not: their
//     gradient is grad·slope(x), slope a UnaryOp kernel recorded with its own derivative.
#include <cmath>

#include "../kernels/elementwise_math.h"  // the constants of GELU
#include "op_helpers.h"

namespace tg {

using detail::binary_kernel;
using detail::unary_kernel;

namespace {

// Shorthand for recorded scalar arithmetic in the second derivatives below.
Tensor scaled(const Tensor& x, double s) { return mul(x, s); }

// ---------------------------------------------------------------- second derivatives f''(x)
// Built from recorded ops (docs/math.md §activations has each derivation).

// gelu:       f'' = φ(x)·(2 - x²),  φ(x) = e^(-x²/2)/√(2π)
Tensor gelu_second(const Tensor& x) {
  Tensor x2 = square(x);
  return mul(scaled(exp(scaled(x2, -0.5)), kernels::kInvSqrt2Pi), sub(2.0, x2));
}

// gelu_tanh:  f'' = (1 - t²)·(u' - x·t·u'² + ½x·u''),  t = tanh u,  u = k(x + c x³),
//             u' = k(1 + 3c x²),  u'' = 6kc x,  k = √(2/π),  c = 0.044715
Tensor gelu_tanh_second(const Tensor& x) {
  const double k = kernels::kSqrt2OverPi, c = kernels::kGeluTanhCubic;
  Tensor x2 = square(x);
  Tensor t = tanh(scaled(add(x, scaled(mul(x2, x), c)), k));
  Tensor du = scaled(add(scaled(x2, 3 * c), 1.0), k);
  Tensor d2u = scaled(x, 6 * k * c);
  Tensor bracket = add(sub(du, mul(mul(x, t), square(du))), scaled(mul(x, d2u), 0.5));
  return mul(sub(1.0, square(t)), bracket);
}

// silu:       f'' = s(1 - s)·(2 + x(1 - 2s)),  s = σ(x)
Tensor silu_second(const Tensor& x) {
  Tensor s = sigmoid(x);
  Tensor ds = mul(s, sub(1.0, s));
  return mul(ds, add(mul(x, sub(1.0, scaled(s, 2.0))), 2.0));
}

using SecondDerivative = Tensor (*)(const Tensor&);

// z = grad·f'(x), one kernel            grad_grad = kernel(u, x)      grad_x = u·grad·f''(x)
Tensor slope_times_grad(const char* name, BinaryOp kernel, SecondDerivative second,
                        const Tensor& grad, const Tensor& x) {
  Tensor z = binary_kernel(name, kernel, grad, x);
  if (is_recording(grad, x))
    record(name, z, {grad, x}, save(grad, x),
           [name, kernel, second](const Tensor& u, Gradients& g, const Tensor& grad, const Tensor& x) {
      if (g.wants(0)) g.add(0, slope_times_grad(name, kernel, second, u, x));
      if (g.wants(1)) g.add(1, mul(mul(u, grad), second(x)));
    });
  return z;
}

// y = f(x) with a fused gradient kernel (gelu, gelu_tanh, silu)     grad_x = grad·f'(x)
Tensor fused_activation(const char* name, const char* backward_name, UnaryOp op, BinaryOp kernel,
                        SecondDerivative second, const Tensor& x) {
  Tensor y = unary_kernel(name, op, x);
  if (is_recording(x))
    record(name, y, {x}, save(x),
           [backward_name, kernel, second](const Tensor& grad, Gradients& g, const Tensor& x) {
      g.add(0, slope_times_grad(backward_name, kernel, second, grad, x));
    });
  return y;
}

// The slopes of the activations with parameters, recorded with their own derivatives:
//   leaky_relu_slope  s = x > 0 ? 1 : a          s' = 0 (piecewise constant: not recorded)
//   softplus_slope    s = σ(βx) (1 above the threshold)
//                     s' = β·s·(1 - s), which is 0 above the threshold, where s = 1 exactly
//   elu_slope         s = x > 0 ? 1 : α·e^x      s' = s·[x ≤ 0]
Tensor slope(UnaryOp kind, const Tensor& x, double a, double b) {
  const char* name = kind == UnaryOp::leaky_relu_slope ? "leaky_relu_slope"
                     : kind == UnaryOp::softplus_slope ? "softplus_slope"
                                                       : "elu_slope";
  Tensor s = unary_kernel(name, kind, x, a, b);
  if (kind != UnaryOp::leaky_relu_slope && is_recording(x)) {
    OpName op_name = kind == UnaryOp::softplus_slope ? with_scalars(name, a, b) : with_scalars(name, a);
    record(op_name, s, {x}, save(x, s),
           [kind, a](const Tensor& u, Gradients& g, const Tensor& x, const Tensor& s) {
      if (kind == UnaryOp::softplus_slope) return g.add(0, mul(u, scaled(mul(s, sub(1.0, s)), a)));
      Tensor at_most_zero = less_equal(x, zeros({}, x.dtype(), x.device()));  // constant
      g.add(0, mul(u, mul(s, at_most_zero)));
    });
  }
  return s;
}

// y = f(x; a, b)                         grad_x = grad·slope(x; a, b)
Tensor activation_with_slope(const char* name, UnaryOp op, UnaryOp slope_kind, const Tensor& x,
                             double a, double b) {
  Tensor y = unary_kernel(name, op, x, a, b);
  if (is_recording(x)) {
    OpName op_name = op == UnaryOp::softplus ? with_scalars(name, a, b) : with_scalars(name, a);
    record(op_name, y, {x}, save(x),
           [slope_kind, a, b](const Tensor& grad, Gradients& g, const Tensor& x) {
      g.add(0, mul(grad, slope(slope_kind, x, a, b)));
    });
  }
  return y;
}

}  // namespace

// y = x·Φ(x)                                     grad_x = grad·(Φ(x) + x·φ(x))
// y = ½x(1 + tanh(√(2/π)(x + 0.044715x³)))       grad_x = grad·(½(1 + t) + ½x(1 - t²)·u')
Tensor gelu(const Tensor& x, GeluApproximation approximation) {
  if (approximation == GeluApproximation::tanh)
    return fused_activation("gelu_tanh", "gelu_tanh_backward", UnaryOp::gelu_tanh,
                            BinaryOp::gelu_tanh_backward, gelu_tanh_second, x);
  return fused_activation("gelu", "gelu_backward", UnaryOp::gelu, BinaryOp::gelu_backward,
                          gelu_second, x);
}

// y = x·σ(x)                                     grad_x = grad·σ(x)·(1 + x(1 - σ(x)))
Tensor silu(const Tensor& x) {
  return fused_activation("silu", "silu_backward", UnaryOp::silu, BinaryOp::silu_backward,
                          silu_second, x);
}

// y = x > 0 ? x : slope·x                        grad_x = grad·(x > 0 ? 1 : slope)
Tensor leaky_relu(const Tensor& x, double negative_slope) {
  check(std::isfinite(negative_slope), "leaky_relu", "negative_slope must be finite, got ",
        negative_slope);
  return activation_with_slope("leaky_relu", UnaryOp::leaky_relu, UnaryOp::leaky_relu_slope, x,
                               negative_slope, 0);
}

// y = βx > threshold ? x : log(1 + e^(βx))/β     grad_x = grad·(βx > threshold ? 1 : σ(βx))
Tensor softplus(const Tensor& x, double beta, double threshold) {
  check(beta > 0 && std::isfinite(beta), "softplus", "beta must be positive and finite, got ",
        beta);
  check(!std::isnan(threshold), "softplus", "threshold is NaN");
  return activation_with_slope("softplus", UnaryOp::softplus, UnaryOp::softplus_slope, x, beta,
                               threshold);
}

// y = x > 0 ? x : α(e^x - 1)                     grad_x = grad·(x > 0 ? 1 : α·e^x)
Tensor elu(const Tensor& x, double alpha) {
  check(std::isfinite(alpha), "elu", "alpha must be finite, got ", alpha);
  return activation_with_slope("elu", UnaryOp::elu, UnaryOp::elu_slope, x, alpha, 0);
}

// y = sin x                                      grad_x = grad·cos x
Tensor sin(const Tensor& x) {
  Tensor y = unary_kernel("sin", UnaryOp::sin, x);
  if (is_recording(x))
    record("sin", y, {x}, save(x), [](const Tensor& grad, Gradients& g, const Tensor& x) {
      g.add(0, mul(grad, cos(x)));
    });
  return y;
}

// y = cos x                                      grad_x = -grad·sin x
Tensor cos(const Tensor& x) {
  Tensor y = unary_kernel("cos", UnaryOp::cos, x);
  if (is_recording(x))
    record("cos", y, {x}, save(x), [](const Tensor& grad, Gradients& g, const Tensor& x) {
      g.add(0, neg(mul(grad, sin(x))));
    });
  return y;
}

}  // namespace tg
