// src/ops/op_helpers.cpp — argument checks and kernel launches shared by the op files.
#include "op_helpers.h"

namespace tg::detail {

void check_floating(const char* op, const Tensor& x) {
  check(x.defined(), op, "the input tensor is undefined");
  check(is_floating(x.dtype()), op, "expected an f32 or f64 tensor, got ", x.dtype(), " ",
        x.shape());
}

void check_compatible(const char* op, const Tensor& a, const Tensor& b) {
  check(a.defined() && b.defined(), op, "an input tensor is undefined");
  check(a.dtype() == b.dtype(), op, "dtypes differ: ", a.dtype(), " ", a.shape(), " and ",
        b.dtype(), " ", b.shape(), " (convert one with .to(DType))");
  check(a.device() == b.device(), op, "tensors are on different devices: ", a.device(), " and ",
        b.device(), " (move one with .to(Device))");
}

int64_t check_index_range(const char* op, const Tensor& index, int64_t limit, const char* what,
                          std::optional<int64_t> ignored) {
  Backend::IndexCheck range;
  range.op = op;
  range.what = what;
  range.limit = limit;
  range.has_ignored = ignored.has_value();
  range.ignored = ignored.value_or(0);
  return backend_of(index).check_indices(range, static_cast<const int64_t*>(index.raw_data()),
                                         index.numel());
}

Tensor unary_kernel(const char* name, UnaryOp op, const Tensor& x, double a, double b) {
  check_floating(name, x);
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  backend_of(x).unary(op, x.dtype(), x.raw_data(), y.raw_data(), x.numel(), a, b);
  return y;
}

BroadcastLayout broadcast_layout(const Shape& out, std::initializer_list<Shape> inputs) {
  BroadcastLayout layout;
  layout.shape = out;
  int rank = out.rank();
  for (const Shape& in : inputs) {
    Strides contiguous(in);
    int shift = rank - in.rank();
    for (int d = 0; d < rank; ++d) {
      int di = d - shift;
      layout.strides[layout.inputs][d] = (di < 0 || in[di] == 1) ? 0 : contiguous.values[di];
    }
    ++layout.inputs;
  }
  return layout;
}

Tensor binary_kernel(const char* name, BinaryOp op, const Tensor& a, const Tensor& b) {
  check_compatible(name, a, b);
  if (!(is_comparison(op) && a.dtype() == DType::i64)) check_floating(name, a);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(shape, a.dtype(), a.device());
  backend_of(a).binary(op, a.dtype(), a.raw_data(), b.raw_data(), out.raw_data(),
                       broadcast_layout(shape, {a.shape(), b.shape()}));
  return out;
}

AxisView::AxisView(const Shape& shape, int axis) {
  for (int d = 0; d < shape.rank(); ++d) {
    if (d < axis) outer *= shape[d];
    else if (d == axis) n = shape[d];
    else inner *= shape[d];
  }
}

Shape reduced_shape(const Shape& shape, int axis, bool keepdim) {
  Shape out;
  for (int d = 0; d < shape.rank(); ++d) {
    if (d != axis) out.push_back(shape[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

}  // namespace tg::detail
