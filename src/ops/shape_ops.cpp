// src/ops/shape_ops.cpp — ops that move elements without changing them: reshape, transpose,
// slice (and its backward, an op of its own), concat. All but reshape copy (tensors stay
// contiguous); copy_strided does the walking.
#include "op_helpers.h"

namespace tg {

using detail::backend_of;
using detail::Strides;

namespace {

const char* byte_offset(const Tensor& t, int64_t elements) {
  return static_cast<const char*>(t.raw_data()) + elements * dtype_size(t.dtype());
}
char* byte_offset(Tensor& t, int64_t elements) {
  return static_cast<char*>(t.raw_data()) + elements * dtype_size(t.dtype());
}

// Resolves one -1 in a requested shape from the element count.
Shape resolve_shape(const Shape& requested, int64_t numel, const Shape& from) {
  Shape shape = requested;
  int inferred = -1;
  for (int d = 0; d < shape.rank(); ++d) {
    if (shape[d] != -1) continue;
    check(inferred < 0, "reshape", "only one size may be -1 in ", requested);
    inferred = d;
  }
  if (inferred >= 0) {
    int64_t known = 1;  // the product of the other sizes
    bool overflow = false;
    for (int d = 0; d < shape.rank(); ++d)
      if (d != inferred) overflow |= __builtin_mul_overflow(known, shape[d], &known);
    check(!overflow && known != 0 && numel % known == 0, "reshape", "cannot reshape ", from,
          " (", numel, " elements) to ", requested);
    shape[inferred] = numel / known;
  }
  check(shape.numel() == numel, "reshape", "cannot reshape ", from, " (", numel,
        " elements) to ", requested, " (", shape.numel(), " elements)");
  return shape;
}

// grad_x of slice, recorded as an op of its own: zeros of x's shape with `grad` written into
// [start, start + len) of `axis`.       z = embed(grad)       grad_grad = slice(u, axis, start, start + len)
Tensor slice_backward(const Tensor& grad, const Shape& shape, int axis, int64_t start) {
  Tensor out = zeros(shape, grad.dtype(), grad.device());
  Strides out_strides(shape), grad_strides(grad.shape());
  backend_of(grad).copy_strided(grad.dtype(), grad.shape(), grad.raw_data(), grad_strides.values,
                                byte_offset(out, start * out_strides.values[axis]),
                                out_strides.values);
  if (is_recording(grad)) {
    const int64_t end = start + grad.shape()[axis];
    record(with_scalars("slice_backward", axis, start, end), out, {grad},
           [axis, start, end](const Tensor& u, Gradients& g) {
      g.add(0, slice(u, axis, start, end));
    });
  }
  return out;
}

}  // namespace

// y = x viewed with a new shape (no copy)     grad_x = reshape(grad, x.shape)
Tensor reshape(const Tensor& x, const Shape& requested) {
  check(x.defined(), "reshape", "the input tensor is undefined");
  Shape shape = resolve_shape(requested, x.numel(), x.shape());
  if (shape == x.shape() && !is_recording(x)) return x;
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = x.dtype();
  impl->device = x.device();
  impl->storage = x.impl()->storage;
  impl->offset_bytes = x.impl()->offset_bytes;
  Tensor y(std::move(impl));
  if (is_recording(x)) {
    Shape input_shape = x.shape();
    record("reshape", y, {x}, [input_shape](const Tensor& grad, Gradients& g) {
      g.add(0, reshape(grad, input_shape));
    });
  }
  return y;
}

Tensor flatten(const Tensor& x) {
  check(x.defined() && x.dim() >= 1, "flatten", "expected at least a 1-D tensor");
  int64_t rest = 1;  // not -1: with a size-0 axis, -1 could not be inferred
  for (int d = 1; d < x.dim(); ++d) rest *= x.shape()[d];
  return reshape(x, {x.shape()[0], rest});
}

// y = x with two axes swapped (a copy)     grad_x = transpose(grad) with the same axes
Tensor transpose(const Tensor& x, int axis0, int axis1) {
  check(x.defined(), "transpose", "the input tensor is undefined");
  int a0 = x.shape().axis(axis0, "transpose"), a1 = x.shape().axis(axis1, "transpose");
  Shape shape = x.shape();
  std::swap(shape[a0], shape[a1]);
  Strides in_strides(x.shape()), out_strides(shape);
  std::swap(in_strides.values[a0], in_strides.values[a1]);  // walk x in y's index order
  Tensor y = empty(shape, x.dtype(), x.device());
  backend_of(x).copy_strided(x.dtype(), shape, x.raw_data(), in_strides.values, y.raw_data(),
                             out_strides.values);
  if (is_recording(x))
    record(with_scalars("transpose", a0, a1), y, {x}, [a0, a1](const Tensor& grad, Gradients& g) {
      g.add(0, transpose(grad, a0, a1));
    });
  return y;
}

Tensor transpose(const Tensor& x) {
  check(x.defined() && x.dim() >= 2, "transpose", "expected at least 2 dimensions, got shape ",
        x.defined() ? x.shape() : Shape{});
  return transpose(x, -2, -1);
}

// y = x[start:end] along axis     grad_x = zeros with grad written at [start:end]
Tensor slice(const Tensor& x, int axis, int64_t start, int64_t end) {
  check(x.defined(), "slice", "the input tensor is undefined");
  int a = x.shape().axis(axis, "slice");
  int64_t size = x.shape()[a];
  int64_t from = start < 0 ? start + size : start, to = end < 0 ? end + size : end;
  check(0 <= from && from <= to && to <= size, "slice", "range [", start, ", ", end,
        ") is out of bounds for axis ", axis, " of shape ", x.shape());
  Shape shape = x.shape();
  shape[a] = to - from;
  Strides in_strides(x.shape()), out_strides(shape);
  Tensor y = empty(shape, x.dtype(), x.device());
  backend_of(x).copy_strided(x.dtype(), shape, byte_offset(x, from * in_strides.values[a]),
                             in_strides.values, y.raw_data(), out_strides.values);
  if (is_recording(x)) {
    Shape input_shape = x.shape();
    record(with_scalars("slice", a, from, to), y, {x},
           [input_shape, a, from](const Tensor& grad, Gradients& g) {
      g.add(0, slice_backward(grad, input_shape, a, from));
    });
  }
  return y;
}

// y = [t0, t1, ...] joined along axis     grad_ti = the slice of grad that ti filled
Tensor concat(const std::vector<Tensor>& tensors, int axis) {
  check(!tensors.empty(), "concat", "needs at least one tensor");
  const Tensor& first = tensors[0];
  check(first.defined(), "concat", "tensor 0 is undefined");
  int a = first.shape().axis(axis, "concat");
  Shape shape = first.shape();
  shape[a] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    detail::check_compatible("concat", first, t);
    bool same_rank = t.dim() == first.dim();
    for (int d = 0; same_rank && d < t.dim(); ++d)
      check(d == a || t.shape()[d] == first.shape()[d], "concat", "tensor ", i, " has shape ",
            t.shape(), ", which differs from tensor 0's ", first.shape(), " outside axis ", axis);
    check(same_rank, "concat", "tensor ", i, " has shape ", t.shape(), ", expected rank ",
          first.dim());
    shape[a] += t.shape()[a];
  }
  Tensor y = empty(shape, first.dtype(), first.device());
  Strides out_strides(shape);
  std::vector<int64_t> starts;
  int64_t offset = 0;
  for (const Tensor& t : tensors) {
    Strides in_strides(t.shape());
    backend_of(t).copy_strided(t.dtype(), t.shape(), t.raw_data(), in_strides.values,
                               byte_offset(y, offset * out_strides.values[a]), out_strides.values);
    starts.push_back(offset);
    offset += t.shape()[a];
  }
  bool recording = false;
  for (const Tensor& t : tensors) recording = recording || is_recording(t);
  if (recording)
    record(with_scalars("concat", a), y, tensors, [starts, a](const Tensor& grad, Gradients& g) {
      for (size_t i = 0; i < starts.size(); ++i) {
        if (!g.wants(static_cast<int>(i))) continue;
        int64_t end = i + 1 < starts.size() ? starts[i + 1] : grad.shape()[a];
        g.add(static_cast<int>(i), slice(grad, a, starts[i], end));
      }
    });
  return y;
}

}  // namespace tg
