// src/ops/elementwise.cpp — elementwise ops, each forward followed by its backward.
//
// Notation in the comments (PyTorch's derivatives.yaml): `grad` is the gradient of the op's
// output, `y` the output, grad_<input> what flows to that input. Broadcasting needs no code here:
// Gradients::add sums a gradient back to its input's shape.
#include <cmath>

#include "op_helpers.h"

namespace tg {

using detail::binary_kernel;
using detail::unary_kernel;

// ---------------------------------------------------------------- two inputs

// y = a + b                      grad_a = grad                  grad_b = grad
Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = binary_kernel("add", BinaryOp::add, a, b);
  if (is_recording(a, b))
    record("add", y, {a, b}, [](const Tensor& grad, Gradients& g) {
      g.add(0, grad);
      g.add(1, grad);
    });
  return y;
}

// y = a - b                      grad_a = grad                  grad_b = -grad
Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = binary_kernel("sub", BinaryOp::sub, a, b);
  if (is_recording(a, b))
    record("sub", y, {a, b}, [](const Tensor& grad, Gradients& g) {
      g.add(0, grad);
      if (g.wants(1)) g.add(1, neg(grad));
    });
  return y;
}

// y = a * b                      grad_a = grad * b              grad_b = grad * a
Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = binary_kernel("mul", BinaryOp::mul, a, b);
  if (is_recording(a, b))
    record("mul", y, {a, b}, save(a, b),
           [](const Tensor& grad, Gradients& g, const Tensor& a, const Tensor& b) {
      if (g.wants(0)) g.add(0, mul(grad, b));
      if (g.wants(1)) g.add(1, mul(grad, a));
    });
  return y;
}

// y = a / b                      grad_a = grad / b              grad_b = -grad * y / b
Tensor div(const Tensor& a, const Tensor& b) {
  Tensor y = binary_kernel("div", BinaryOp::div, a, b);
  if (is_recording(a, b))
    record("div", y, {a, b}, save(b, y),
           [](const Tensor& grad, Gradients& g, const Tensor& b, const Tensor& y) {
      Tensor grad_over_b = div(grad, b);
      g.add(0, grad_over_b);
      if (g.wants(1)) g.add(1, neg(mul(grad_over_b, y)));
    });
  return y;
}

// y = a^b                        grad_a = grad * b * a^(b-1)    grad_b = grad * y * ln a
// As in PyTorch, grad_a is 0 where b == 0 (not 0 * a^-1, NaN at a == 0), and grad_b is 0 where
// a == 0 and b >= 0 (where y * ln a is 0 * -inf).
Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor y = binary_kernel("pow", BinaryOp::pow, a, b);
  if (is_recording(a, b))
    record("pow", y, {a, b}, save(a, b, y), [](const Tensor& grad, Gradients& g, const Tensor& a,
                                               const Tensor& b, const Tensor& y) {
      Tensor zero = zeros({}, y.dtype(), y.device());
      if (g.wants(0))
        g.add(0, mul(grad, where(equal(b, zero), zero, mul(b, pow(a, sub(b, 1.0))))));
      if (g.wants(1)) {
        Tensor zero_base = mul(equal(a, zero), greater_equal(b, zero));
        g.add(1, mul(grad, where(zero_base, zero, mul(y, log(a)))));
      }
    });
  return y;
}

// minimum and maximum: y = a or b, whichever `a_wins` picks        grad_a = grad * share
// grad_b = grad * (1 - share), share = 1 where a wins, 0 where b wins, ½ on ties
static Tensor pick(const char* name, BinaryOp op, BinaryOp a_wins, const Tensor& a,
                   const Tensor& b) {
  Tensor y = binary_kernel(name, op, a, b);
  if (is_recording(a, b))
    record(name, y, {a, b}, save(a, b),
           [a_wins](const Tensor& grad, Gradients& g, const Tensor& a, const Tensor& b) {
      Tensor wins = binary_kernel("winner", a_wins, a, b);
      Tensor ties = binary_kernel("winner", BinaryOp::equal, a, b);
      Tensor share = add(wins, mul(ties, 0.5));
      if (g.wants(0)) g.add(0, mul(grad, share));
      if (g.wants(1)) g.add(1, mul(grad, sub(1.0, share)));
    });
  return y;
}

// y = min(a, b)                  grad_a = grad * [a < b]        grad_b = grad * [b < a]
Tensor minimum(const Tensor& a, const Tensor& b) {
  return pick("minimum", BinaryOp::minimum, BinaryOp::less, a, b);
}

// y = max(a, b)                  grad_a = grad * [a > b]        grad_b = grad * [b > a]
Tensor maximum(const Tensor& a, const Tensor& b) {
  return pick("maximum", BinaryOp::maximum, BinaryOp::greater, a, b);
}

// ---------------------------------------------------------------- a tensor and a scalar

// y = x + s                      grad_x = grad
Tensor add(const Tensor& x, double s) {
  Tensor y = unary_kernel("add", UnaryOp::add_scalar, x, s);
  if (is_recording(x))
    record(with_scalars("add_scalar", s), y, {x},
           [](const Tensor& grad, Gradients& g) { g.add(0, grad); });
  return y;
}

Tensor sub(const Tensor& x, double s) { return add(x, -s); }

// y = s - x                      grad_x = -grad
Tensor sub(double s, const Tensor& x) {
  Tensor y = unary_kernel("sub", UnaryOp::rsub_scalar, x, s);
  if (is_recording(x))
    record(with_scalars("rsub_scalar", s), y, {x},
           [](const Tensor& grad, Gradients& g) { g.add(0, neg(grad)); });
  return y;
}

// y = x * s                      grad_x = grad * s
Tensor mul(const Tensor& x, double s) {
  Tensor y = unary_kernel("mul", UnaryOp::mul_scalar, x, s);
  if (is_recording(x))
    record(with_scalars("mul_scalar", s), y, {x},
           [s](const Tensor& grad, Gradients& g) { g.add(0, mul(grad, s)); });
  return y;
}

Tensor div(const Tensor& x, double s) { return mul(x, 1.0 / s); }

// y = s / x                      grad_x = -grad * y / x
Tensor div(double s, const Tensor& x) {
  Tensor y = unary_kernel("div", UnaryOp::reciprocal, x);
  if (s != 1.0) y = unary_kernel("div", UnaryOp::mul_scalar, y, s);
  if (is_recording(x))
    record(with_scalars("rdiv_scalar", s), y, {x}, save(x, y),
           [](const Tensor& grad, Gradients& g, const Tensor& x, const Tensor& y) {
      g.add(0, neg(mul(grad, div(y, x))));
    });
  return y;
}

// y = x^p                        grad_x = grad * p * x^(p-1)    (0 when p == 0, as in PyTorch)
Tensor pow(const Tensor& x, double p) {
  Tensor y = p == 2.0 ? unary_kernel("pow", UnaryOp::square, x)
                      : unary_kernel("pow", UnaryOp::pow_scalar, x, p);
  if (is_recording(x))
    record(with_scalars("pow_scalar", p), y, {x}, save(x),
           [p](const Tensor& grad, Gradients& g, const Tensor& x) {
      if (p == 0.0) return g.add(0, zeros_like(grad));  // not 0 * x^-1, NaN at x == 0
      Tensor slope = p == 2.0 ? mul(x, 2.0) : mul(pow(x, p - 1.0), p);
      g.add(0, mul(grad, slope));
    });
  return y;
}

// ---------------------------------------------------------------- one input

// y = -x                         grad_x = -grad
Tensor neg(const Tensor& x) {
  Tensor y = unary_kernel("neg", UnaryOp::neg, x);
  if (is_recording(x))
    record("neg", y, {x}, [](const Tensor& grad, Gradients& g) { g.add(0, neg(grad)); });
  return y;
}

// y = e^x                        grad_x = grad * y
Tensor exp(const Tensor& x) {
  Tensor y = unary_kernel("exp", UnaryOp::exp, x);
  if (is_recording(x))
    record("exp", y, {x}, save(y),
           [](const Tensor& grad, Gradients& g, const Tensor& y) { g.add(0, mul(grad, y)); });
  return y;
}

// y = ln x                       grad_x = grad / x
Tensor log(const Tensor& x) {
  Tensor y = unary_kernel("log", UnaryOp::log, x);
  if (is_recording(x))
    record("log", y, {x}, save(x),
           [](const Tensor& grad, Gradients& g, const Tensor& x) { g.add(0, div(grad, x)); });
  return y;
}

// y = ln(1 + x)                  grad_x = grad / (1 + x)
Tensor log1p(const Tensor& x) {
  Tensor y = unary_kernel("log1p", UnaryOp::log1p, x);
  if (is_recording(x))
    record("log1p", y, {x}, save(x), [](const Tensor& grad, Gradients& g, const Tensor& x) {
      g.add(0, div(grad, add(x, 1.0)));
    });
  return y;
}

// y = √x                         grad_x = grad / (2y)
Tensor sqrt(const Tensor& x) {
  Tensor y = unary_kernel("sqrt", UnaryOp::sqrt, x);
  if (is_recording(x))
    record("sqrt", y, {x}, save(y), [](const Tensor& grad, Gradients& g, const Tensor& y) {
      g.add(0, div(grad, mul(y, 2.0)));
    });
  return y;
}

// y = x²                         grad_x = grad * 2x
Tensor square(const Tensor& x) {
  Tensor y = unary_kernel("square", UnaryOp::square, x);
  if (is_recording(x))
    record("square", y, {x}, save(x), [](const Tensor& grad, Gradients& g, const Tensor& x) {
      g.add(0, mul(grad, mul(x, 2.0)));
    });
  return y;
}

// Ops whose gradient is a single fused kernel of (grad, saved): the kernels' formulas are in
// src/kernels/elementwise_math.h (AbsBackward, TanhBackward, ...). `saved` is the op's input or
// output, whichever the formula needs.
//
// The gradient kernel is an op of its own, recorded like any other (ggml's soft_max_ext_back
// pattern), so a gradient of a gradient goes through it. It is linear in `grad`, so its gradient
// with respect to grad is the same kernel applied to the incoming u; docs/math.md §second
// derivatives has the rest:
//   relu_backward     z = grad·[x > 0]     grad_grad = relu_backward(u, x)     grad_x = 0
//   abs_backward      z = grad·sign(x)     grad_grad = abs_backward(u, x)      grad_x = 0
//   tanh_backward     z = grad·(1 - y²)    grad_grad = tanh_backward(u, y)     grad_y = -2·u·grad·y
//   sigmoid_backward  z = grad·y·(1 - y)   grad_grad = sigmoid_backward(u, y)
//                                          grad_y = u·grad·(1 - 2y)
// (relu's and abs's slopes are constant away from 0, where PyTorch takes them as 0 too.)
enum class Saved { input, output };

static Tensor gradient_kernel(const char* name, BinaryOp gradient, const Tensor& grad,
                              const Tensor& saved) {
  Tensor z = binary_kernel(name, gradient, grad, saved);
  if (is_recording(grad, saved))
    record(name, z, {grad, saved}, save(grad, saved),
           [name, gradient](const Tensor& u, Gradients& g, const Tensor& grad, const Tensor& saved) {
      if (g.wants(0)) g.add(0, gradient_kernel(name, gradient, u, saved));
      if (!g.wants(1)) return;
      if (gradient == BinaryOp::tanh_backward) g.add(1, mul(mul(u, grad), mul(saved, -2.0)));
      if (gradient == BinaryOp::sigmoid_backward)
        g.add(1, mul(mul(u, grad), sub(1.0, mul(saved, 2.0))));
    });
  return z;
}

static Tensor with_fused_gradient(const char* name, const char* gradient_name, UnaryOp op,
                                  BinaryOp gradient, Saved saved, const Tensor& x) {
  Tensor y = unary_kernel(name, op, x);
  if (is_recording(x)) {
    Tensor keep = saved == Saved::input ? x : y;
    record(name, y, {x}, save(keep), [gradient, gradient_name](const Tensor& grad, Gradients& g,
                                                               const Tensor& keep) {
      g.add(0, gradient_kernel(gradient_name, gradient, grad, keep));
    });
  }
  return y;
}

// y = |x|                        grad_x = grad * sign(x)
Tensor abs(const Tensor& x) {
  return with_fused_gradient("abs", "abs_backward", UnaryOp::abs, BinaryOp::abs_backward,
                             Saved::input, x);
}

// y = tanh x                     grad_x = grad * (1 - y²)
Tensor tanh(const Tensor& x) {
  return with_fused_gradient("tanh", "tanh_backward", UnaryOp::tanh, BinaryOp::tanh_backward,
                             Saved::output, x);
}

// y = 1 / (1 + e^-x)             grad_x = grad * y * (1 - y)
Tensor sigmoid(const Tensor& x) {
  return with_fused_gradient("sigmoid", "sigmoid_backward", UnaryOp::sigmoid,
                             BinaryOp::sigmoid_backward, Saved::output, x);
}

// y = max(x, 0)                  grad_x = grad * [x > 0]
Tensor relu(const Tensor& x) {
  return with_fused_gradient("relu", "relu_backward", UnaryOp::relu, BinaryOp::relu_backward,
                             Saved::input, x);
}

// y = min(max(x, low), high)     grad_x = grad * [low <= x <= high]
Tensor clamp(const Tensor& x, double low, double high) {
  check(!(low > high), "clamp", "low ", low, " is greater than high ", high);
  Tensor y = unary_kernel("clamp", UnaryOp::clamp, x, low, high);
  if (is_recording(x))
    record(with_scalars("clamp", low, high), y, {x}, save(x),
           [low, high](const Tensor& grad, Gradients& g, const Tensor& x) {
      g.add(0, mul(grad, unary_kernel("clamp", UnaryOp::in_range, x, low, high)));
    });
  return y;
}

// ---------------------------------------------------------------- selection and comparison

// y = c ? a : b                  grad_a = c ? grad : 0          grad_b = c ? 0 : grad
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
  detail::check_compatible("where", a, b);
  detail::check_compatible("where", condition, a);
  detail::check_floating("where", a);
  Shape shape = broadcast_shapes(broadcast_shapes(condition.shape(), a.shape(), "where"),
                                 b.shape(), "where");
  Tensor y = empty(shape, a.dtype(), a.device());
  detail::backend_of(a).where(a.dtype(), condition.raw_data(), a.raw_data(), b.raw_data(),
                              y.raw_data(),
                              detail::broadcast_layout(shape, {condition.shape(), a.shape(), b.shape()}));
  if (is_recording(a, b))
    record("where", y, {a, b}, save(condition),
           [](const Tensor& grad, Gradients& g, const Tensor& condition) {
      Tensor zero = zeros({}, grad.dtype(), grad.device());
      if (g.wants(0)) g.add(0, where(condition, grad, zero));
      if (g.wants(1)) g.add(1, where(condition, zero, grad));
    });
  return y;
}

Tensor equal(const Tensor& a, const Tensor& b) { return binary_kernel("equal", BinaryOp::equal, a, b); }
Tensor less(const Tensor& a, const Tensor& b) { return binary_kernel("less", BinaryOp::less, a, b); }
Tensor less_equal(const Tensor& a, const Tensor& b) {
  return binary_kernel("less_equal", BinaryOp::less_equal, a, b);
}
Tensor greater(const Tensor& a, const Tensor& b) {
  return binary_kernel("greater", BinaryOp::greater, a, b);
}
Tensor greater_equal(const Tensor& a, const Tensor& b) {
  return binary_kernel("greater_equal", BinaryOp::greater_equal, a, b);
}

// Integers are always finite and never NaN.
Tensor isfinite(const Tensor& x) {
  check(x.defined(), "isfinite", "the tensor is undefined");
  if (!is_floating(x.dtype())) return ones_like(x);
  return unary_kernel("isfinite", UnaryOp::isfinite, x);
}

Tensor isnan(const Tensor& x) {
  check(x.defined(), "isnan", "the tensor is undefined");
  if (!is_floating(x.dtype())) return zeros_like(x);
  return unary_kernel("isnan", UnaryOp::isnan, x);
}

// any = [Σ [x ≠ 0] > 0], all = [Σ [x = 0] = 0]: counts of a 0/1 mask, which a float sum never
// rounds to 0 when one element is 1. (x ≠ 0 is 1 - [x = 0], so NaN counts as non-zero.)
Tensor any(const Tensor& x) {
  check(x.defined(), "any", "the tensor is undefined");
  NoGrad no_grad;
  Tensor values = is_floating(x.dtype()) ? x.detach() : x.to(DType::f64);
  Tensor zero = zeros({}, values.dtype(), values.device());
  Tensor nonzero = sub(1.0, equal(values, zero));
  return greater(sum(nonzero), zero);
}

Tensor all(const Tensor& x) {
  check(x.defined(), "all", "the tensor is undefined");
  NoGrad no_grad;
  Tensor values = is_floating(x.dtype()) ? x.detach() : x.to(DType::f64);
  Tensor zero = zeros({}, values.dtype(), values.device());
  return equal(sum(equal(values, zero)), zero);
}

}  // namespace tg
