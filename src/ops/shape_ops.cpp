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

// ---------------------------------------------------------------- squeeze, unsqueeze, permute,
// stack, expand (torch's semantics). squeeze and unsqueeze are reshapes (views); stack is
// unsqueeze and concat; expand is broadcast_to: each differentiates through those ops.

namespace {

// An axis of a rank-`rank` result where a new size-1 axis goes: [-(rank_in + 1), rank_in].
int new_axis(int axis, int rank_in, const char* op) {
  check(axis >= -(rank_in + 1) && axis <= rank_in, op, "axis ", axis,
        " is out of range for a new axis of a rank-", rank_in, " tensor (expected ",
        -(rank_in + 1), " to ", rank_in, ")");
  return axis < 0 ? axis + rank_in + 1 : axis;
}

}  // namespace

// y = x without the size-1 axis `axis` (x itself, as torch.squeeze, when that size is not 1)
Tensor squeeze(const Tensor& x, int axis) {
  check(x.defined(), "squeeze", "the input tensor is undefined");
  int a = x.shape().axis(axis, "squeeze");
  if (x.shape()[a] != 1) return x;
  Shape shape;
  for (int d = 0; d < x.dim(); ++d)
    if (d != a) shape.push_back(x.shape()[d]);
  return reshape(x, shape);
}

// y = x without any size-1 axis
Tensor squeeze(const Tensor& x) {
  check(x.defined(), "squeeze", "the input tensor is undefined");
  Shape shape;
  for (int64_t size : x.shape())
    if (size != 1) shape.push_back(size);
  return reshape(x, shape);
}

// y = x with a new size-1 axis at `axis` (-1 appends one)
Tensor unsqueeze(const Tensor& x, int axis) {
  check(x.defined(), "unsqueeze", "the input tensor is undefined");
  check(x.dim() < kMaxRank, "unsqueeze", "shape ", x.shape(), " already has the most axes, ",
        kMaxRank);
  int a = new_axis(axis, x.dim(), "unsqueeze");
  Shape shape;
  for (int d = 0; d < x.dim(); ++d) {
    if (d == a) shape.push_back(1);
    shape.push_back(x.shape()[d]);
  }
  if (a == x.dim()) shape.push_back(1);
  return reshape(x, shape);
}

// y[i_0, ..., i_r] = x at index i_{p⁻¹(0)}, ...: y.shape[k] = x.shape[dims[k]] (a copy)
//   grad_x = permute(grad, p⁻¹), p⁻¹[dims[k]] = k
Tensor permute(const Tensor& x, const std::vector<int>& dims) {
  check(x.defined(), "permute", "the input tensor is undefined");
  check(static_cast<int>(dims.size()) == x.dim(), "permute", "got ", dims.size(),
        " axes for shape ", x.shape(), " (expected one per axis)");
  std::vector<int> axes(dims.size()), inverse(dims.size(), -1);
  for (size_t k = 0; k < dims.size(); ++k) {
    axes[k] = x.shape().axis(dims[k], "permute");
    check(inverse[axes[k]] < 0, "permute", "axis ", dims[k], " appears twice; expected a ",
          "permutation of the ", x.dim(), " axes of ", x.shape());
    inverse[axes[k]] = static_cast<int>(k);
  }
  Shape shape;
  Strides x_strides(x.shape());
  int64_t in_strides[kMaxRank] = {};
  for (size_t k = 0; k < axes.size(); ++k) {
    shape.push_back(x.shape()[axes[k]]);
    in_strides[k] = x_strides.values[axes[k]];  // walk x in y's index order
  }
  Strides out_strides(shape);
  Tensor y = empty(shape, x.dtype(), x.device());
  backend_of(x).copy_strided(x.dtype(), shape, x.raw_data(), in_strides, y.raw_data(),
                             out_strides.values);
  if (is_recording(x))
    record("permute", y, {x}, [inverse](const Tensor& grad, Gradients& g) {
      g.add(0, permute(grad, inverse));
    });
  return y;
}

// y = the tensors joined along a new axis      grad_ti = squeeze(slice of grad at i)
// (unsqueeze + concat, so the backward is theirs)
Tensor stack(const std::vector<Tensor>& tensors, int axis) {
  check(!tensors.empty(), "stack", "needs at least one tensor");
  check(tensors[0].defined(), "stack", "tensor 0 is undefined");
  for (size_t i = 1; i < tensors.size(); ++i)
    check(tensors[i].defined() && tensors[i].shape() == tensors[0].shape(), "stack", "tensor ", i,
          " has shape ", tensors[i].defined() ? tensors[i].shape() : Shape{},
          ", expected tensor 0's ", tensors[0].shape());
  int a = new_axis(axis, tensors[0].dim(), "stack");
  std::vector<Tensor> columns;
  for (const Tensor& t : tensors) columns.push_back(unsqueeze(t, a));
  return concat(columns, a);
}

// torch.Tensor.expand: x repeated along its size-1 axes (and new leading ones) to `shape`, where
// -1 keeps x's size. A copy here (tensors are contiguous): broadcast_to, whose gradient is sum_to.
Tensor expand(const Tensor& x, const Shape& shape) {
  check(x.defined(), "expand", "the input tensor is undefined");
  check(shape.rank() >= x.dim(), "expand", "cannot expand shape ", x.shape(), " to ", shape,
        " (fewer axes)");
  Shape resolved = shape;
  const int shift = shape.rank() - x.dim();
  for (int d = 0; d < shape.rank(); ++d) {
    if (shape[d] != -1) continue;
    check(d >= shift, "expand", "-1 is not allowed for the new leading axis ", d, " in ", shape);
    resolved[d] = x.shape()[d - shift];
  }
  for (int d = 0; d < resolved.rank(); ++d)
    check(resolved[d] >= 0 && (d < shift || x.shape()[d - shift] == 1 ||
                               x.shape()[d - shift] == resolved[d]),
          "expand", "cannot expand shape ", x.shape(), " to ", shape,
          " (only size-1 axes can grow)");
  return broadcast_to(x, resolved);
}

}  // namespace tg
