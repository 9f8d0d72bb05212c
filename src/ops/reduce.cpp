// src/ops/reduce.cpp — reductions, and the broadcast/sum_to pair that broadcasting's backward
// is built on.
#include <algorithm>

#include "op_helpers.h"

namespace tg {

using detail::AxisView;
using detail::backend_of;
using detail::reduced_shape;

namespace {

// sum, max, min (reduce_takes_i64, backend.h) and argmax take i64 too (labels, counts; exact,
// giving i64 as in PyTorch): an i64 tensor never requires grad, so they record nothing there.
// mean and logsumexp need f32/f64.
void check_input(const char* name, const Tensor& x, bool i64_too) {
  if (!(i64_too && x.defined() && x.dtype() == DType::i64)) detail::check_floating(name, x);
}

// Runs one backend reduction over `axis` (or over everything when axis < 0).
Tensor reduce_kernel(const char* name, ReduceOp op, const Tensor& x, int axis, bool keepdim) {
  check_input(name, x, reduce_takes_i64(op));
  Shape out_shape;
  AxisView view(Shape{x.numel()}, 0);
  if (axis >= 0) {
    view = AxisView(x.shape(), axis);
    out_shape = reduced_shape(x.shape(), axis, keepdim);
  }
  if (op == ReduceOp::max || op == ReduceOp::min)
    check(view.n > 0, name, "cannot reduce an empty axis of shape ", x.shape());
  Tensor y = empty(out_shape, x.dtype(), x.device());
  backend_of(x).reduce(op, x.dtype(), x.raw_data(), y.raw_data(), view.outer, view.n, view.inner);
  return y;
}

// The gradient of a reduction's output, reshaped so that it broadcasts against the input
// (the reduced axis kept as size 1).
Tensor expand_reduced(const Tensor& grad, const Shape& input_shape, int axis) {
  if (axis < 0) return broadcast_to(grad, input_shape);
  return broadcast_to(reshape(grad, reduced_shape(input_shape, axis, true)), input_shape);
}

// Shared by sum and mean: y = scale * Σ x   grad_x = scale * broadcast(grad)
Tensor sum_like(const char* name, ReduceOp op, const Tensor& x, int axis, bool keepdim) {
  Tensor y = reduce_kernel(name, op, x, axis, keepdim);
  if (is_recording(x)) {
    int64_t n = axis < 0 ? x.numel() : x.shape()[axis];
    double scale = op == ReduceOp::mean ? 1.0 / n : 1.0;
    Shape input_shape = x.shape();
    record(axis < 0 ? OpName(name) : with_scalars(name, axis), y, {x},
           [input_shape, axis, scale](const Tensor& grad, Gradients& g) {
      Tensor spread = expand_reduced(grad, input_shape, axis);
      g.add(0, scale == 1.0 ? spread : mul(spread, scale));
    });
  }
  return y;
}

// max/min: y = extreme of x        grad_x = grad * [x == y] / (number of ties)
Tensor extreme(const char* name, ReduceOp op, const Tensor& x, int axis, bool keepdim) {
  Tensor y = reduce_kernel(name, op, x, axis, keepdim);
  if (is_recording(x))
    record(axis < 0 ? OpName(name) : with_scalars(name, axis), y, {x}, save(x, y),
           [axis](const Tensor& grad, Gradients& g, const Tensor& x, const Tensor& y) {
      Tensor share;  // [x == y] / ties: piecewise constant, so never recorded
      {
        NoGrad no_grad;
        Tensor winners = equal(x, expand_reduced(y, x.shape(), axis));
        Tensor count = axis < 0 ? sum(winners) : sum(winners, axis, true);
        share = div(winners, expand_reduced(count, x.shape(), axis));
      }
      g.add(0, mul(share, expand_reduced(grad, x.shape(), axis)));
    });
  return y;
}

// y = log Σ e^x                    grad_x = grad * e^(x - y)   (the softmax of x)
Tensor logsumexp_impl(const Tensor& x, int axis, bool keepdim) {
  Tensor y = reduce_kernel("logsumexp", ReduceOp::logsumexp, x, axis, keepdim);
  if (is_recording(x))
    record(axis < 0 ? OpName("logsumexp") : with_scalars("logsumexp", axis), y, {x}, save(x, y),
           [axis](const Tensor& grad, Gradients& g, const Tensor& x, const Tensor& y) {
      Tensor softmax = exp(sub(x, expand_reduced(y, x.shape(), axis)));
      g.add(0, mul(softmax, expand_reduced(grad, x.shape(), axis)));
    });
  return y;
}

}  // namespace

Tensor sum(const Tensor& x) { return sum_like("sum", ReduceOp::sum, x, -1, false); }
Tensor sum(const Tensor& x, int axis, bool keepdim) {
  check_input("sum", x, true);
  return sum_like("sum", ReduceOp::sum, x, x.shape().axis(axis, "sum"), keepdim);
}
Tensor mean(const Tensor& x) { return sum_like("mean", ReduceOp::mean, x, -1, false); }
Tensor mean(const Tensor& x, int axis, bool keepdim) {
  detail::check_floating("mean", x);
  return sum_like("mean", ReduceOp::mean, x, x.shape().axis(axis, "mean"), keepdim);
}
Tensor max(const Tensor& x) { return extreme("max", ReduceOp::max, x, -1, false); }
Tensor max(const Tensor& x, int axis, bool keepdim) {
  check_input("max", x, true);
  return extreme("max", ReduceOp::max, x, x.shape().axis(axis, "max"), keepdim);
}
Tensor min(const Tensor& x) { return extreme("min", ReduceOp::min, x, -1, false); }
Tensor min(const Tensor& x, int axis, bool keepdim) {
  check_input("min", x, true);
  return extreme("min", ReduceOp::min, x, x.shape().axis(axis, "min"), keepdim);
}
Tensor logsumexp(const Tensor& x) { return logsumexp_impl(x, -1, false); }
Tensor logsumexp(const Tensor& x, int axis, bool keepdim) {
  detail::check_floating("logsumexp", x);
  return logsumexp_impl(x, x.shape().axis(axis, "logsumexp"), keepdim);
}

Tensor argmax(const Tensor& x, int axis) {
  check_input("argmax", x, true);
  int a = x.shape().axis(axis, "argmax");
  AxisView view(x.shape(), a);
  check(view.n > 0, "argmax", "cannot take the argmax of an empty axis of shape ", x.shape());
  Tensor out = empty(reduced_shape(x.shape(), a, false), DType::i64, x.device());
  backend_of(x).argmax(x.dtype(), x.raw_data(), static_cast<int64_t*>(out.raw_data()), view.outer,
                       view.n, view.inner);
  return out;
}

// ---------------------------------------------------------------- var and std
// torch.var / torch.std: the sum of squared deviations from the mean over max(0, n - c), where
// c = 1 when unbiased (Bessel's correction, PyTorch's default) and 0 otherwise. With n ≤ c the
// quotient is 0/0 = NaN, as in PyTorch.

namespace {

// y = Σ(x - x̄)² / max(0, n - c)          grad_x = grad·2(x - x̄) / max(0, n - c)
// (the gradient through x̄ vanishes: Σ(x - x̄) = 0; docs/math.md §var and std). The backward
// recomputes x̄ with a recorded mean, so it differentiates again.
Tensor var_impl(const Tensor& x, int axis, bool unbiased, bool keepdim) {
  const int64_t n = axis < 0 ? x.numel() : x.shape()[axis];
  const double scale = 1.0 / static_cast<double>(std::max<int64_t>(0, n - (unbiased ? 1 : 0)));
  auto deviations = [axis](const Tensor& t) {
    return sub(t, axis < 0 ? mean(t) : mean(t, axis, true));
  };
  Tensor y;
  {
    NoGrad no_grad;  // the forward's intermediates are not recorded
    Tensor squares = square(deviations(x));
    y = mul(axis < 0 ? sum(squares) : sum(squares, axis, keepdim), scale);
  }
  if (is_recording(x))
    record(with_scalars("var", axis, scale), y, {x}, save(x),
           [axis, scale, deviations](const Tensor& grad, Gradients& g, const Tensor& x) {
      Tensor spread = axis < 0 ? grad : reshape(grad, reduced_shape(x.shape(), axis, true));
      g.add(0, mul(mul(deviations(x), spread), 2 * scale));
    });
  return y;
}

}  // namespace

Tensor var(const Tensor& x, bool unbiased) {
  detail::check_floating("var", x);
  return var_impl(x, -1, unbiased, false);
}
Tensor var(const Tensor& x, int axis, bool unbiased, bool keepdim) {
  detail::check_floating("var", x);
  return var_impl(x, x.shape().axis(axis, "var"), unbiased, keepdim);
}

// y = √var(x)                            grad_x = grad·(x - x̄) / (max(0, n - c)·y), through
// sqrt's and var's backward (NaN where y = 0, as in PyTorch).
Tensor std(const Tensor& x, bool unbiased) { return sqrt(var(x, unbiased)); }
Tensor std(const Tensor& x, int axis, bool unbiased, bool keepdim) {
  return sqrt(var(x, axis, unbiased, keepdim));
}

// ---------------------------------------------------------------- broadcast_to and sum_to

// y = x repeated along broadcast dims      grad_x = sum_to(grad, x.shape)
Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  check(x.defined(), "broadcast_to", "the input tensor is undefined");
  check(broadcast_shapes(x.shape(), shape, "broadcast_to") == shape, "broadcast_to",
        "cannot broadcast shape ", x.shape(), " to ", shape);
  if (x.shape() == shape) return x;
  Tensor y = empty(shape, x.dtype(), x.device());
  BroadcastLayout layout = detail::broadcast_layout(shape, {x.shape()});
  detail::Strides out_strides(shape);
  backend_of(x).copy_strided(x.dtype(), shape, x.raw_data(), layout.strides[0], y.raw_data(),
                             out_strides.values);
  if (is_recording(x)) {
    Shape input_shape = x.shape();
    record("broadcast_to", y, {x}, [input_shape](const Tensor& grad, Gradients& g) {
      g.add(0, sum_to(grad, input_shape));
    });
  }
  return y;
}

// y = x summed over the dims where `shape` is broadcast      grad_x = broadcast_to(grad, x.shape)
// Each run of neighbouring summed dims is one backend reduction, e.g. [B, T, C] -> [C] is a
// single [1, B*T, C] reduction.
Tensor sum_to(const Tensor& x, const Shape& shape) {
  detail::check_floating("sum_to", x);
  check(broadcast_shapes(shape, x.shape(), "sum_to") == x.shape(), "sum_to", "shape ", x.shape(),
        " cannot be summed to ", shape, " (", shape, " must broadcast to ", x.shape(), ")");
  if (x.shape() == shape) return x;
  int rank = x.dim(), shift = rank - shape.rank();
  auto summed = [&](int d) { return d < shift || (shape[d - shift] == 1 && x.shape()[d] != 1); };
  Tensor current = x.detach();
  Shape current_shape = x.shape();
  for (int d = 0; d < rank;) {
    if (!summed(d)) {
      ++d;
      continue;
    }
    int end = d;
    while (end < rank && summed(end)) ++end;
    int64_t outer = 1, n = 1, inner = 1;
    for (int i = 0; i < rank; ++i) (i < d ? outer : i < end ? n : inner) *= current_shape[i];
    for (int i = d; i < end; ++i) current_shape[i] = 1;
    Tensor reduced = empty(current_shape, x.dtype(), x.device());
    backend_of(x).reduce(ReduceOp::sum, x.dtype(), current.raw_data(), reduced.raw_data(), outer,
                         n, inner);
    current = reduced;
    d = end;
  }
  Tensor y = reshape(current, shape);
  if (is_recording(x)) {
    Shape input_shape = x.shape();
    record("sum_to", y, {x}, [input_shape](const Tensor& grad, Gradients& g) {
      g.add(0, broadcast_to(grad, input_shape));
    });
  }
  return y;
}

}  // namespace tg
