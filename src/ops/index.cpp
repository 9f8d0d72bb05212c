// src/ops/index.cpp — gather, index_select and one_hot, and the scatter that is their backward.
// Index tensors are i64; every index is checked before a kernel sees it, so a bad label is an
// error, never an out-of-bounds read.
#include "op_helpers.h"

namespace tg {

using detail::AxisView;
using detail::backend_of;

namespace {

// Throws unless `index` is an i64 tensor of values in [0, limit).
void check_indices(const char* op, const Tensor& index, int64_t limit) {
  check(index.defined(), op, "the index tensor is undefined");
  check(index.dtype() == DType::i64, op, "indices must be i64, got ", index.dtype(),
        " (make them with tg::index_tensor or .to(DType::i64))");
  detail::check_index_range(op, index, limit, "index");
}

}  // namespace

namespace detail {

// y[..j..] = x[..index[..j..]..] along axis (or, with shared_index, the slices x[index[j]])
//   grad_x = scatter_along(grad): grad added into zeros of x's shape at index
Tensor gather_along(const Tensor& x, int axis, const Tensor& index, bool shared_index) {
  AxisView view(x.shape(), axis);
  Shape shape = index.shape();
  if (shared_index) {
    shape = x.shape();
    shape[axis] = index.numel();
  }
  Tensor y = empty(shape, x.dtype(), x.device());
  backend_of(x).gather(x.dtype(), x.raw_data(), static_cast<const int64_t*>(index.raw_data()),
                       y.raw_data(), view.outer, view.n, shape[axis], view.inner, shared_index);
  if (is_recording(x)) {
    Shape x_shape = x.shape();
    record(with_scalars(shared_index ? "index_select" : "gather", axis), y, {x}, save(index),
           [x_shape, axis, shared_index](const Tensor& grad, Gradients& g, const Tensor& index) {
             g.add(0, scatter_along(grad, axis, index, x_shape, shared_index));
           });
  }
  return y;
}

// z = zeros(shape) with grad added at index along axis (gather's backward, an op of its own)
//   grad_grad = gather_along(u): the two are each other's adjoint
Tensor scatter_along(const Tensor& grad, int axis, const Tensor& index, const Shape& shape,
                     bool shared_index) {
  Tensor out = zeros(shape, grad.dtype(), grad.device());
  AxisView view(shape, axis);
  backend_of(grad).scatter_add(grad.dtype(), grad.raw_data(),
                               static_cast<const int64_t*>(index.raw_data()), out.raw_data(),
                               view.outer, view.n, grad.shape()[axis], view.inner, shared_index);
  if (is_recording(grad))
    record(with_scalars(shared_index ? "index_select_backward" : "gather_backward", axis), out,
           {grad}, save(index),
           [axis, shared_index](const Tensor& u, Gradients& g, const Tensor& index) {
             g.add(0, gather_along(u, axis, index, shared_index));
           });
  return out;
}

}  // namespace detail

// y[..j..] = x[..index[..j..]..] along axis     grad_x = scatter-add of grad at index
Tensor gather(const Tensor& x, int axis, const Tensor& index) {
  detail::check_floating("gather", x);
  int a = x.shape().axis(axis, "gather");
  check(index.defined() && index.dim() == x.dim(), "gather", "index shape ",
        index.defined() ? index.shape() : Shape{}, " must have the rank of x ", x.shape());
  for (int d = 0; d < x.dim(); ++d)
    check(d == a || index.shape()[d] == x.shape()[d], "gather", "index shape ", index.shape(),
          " must match x ", x.shape(), " on every axis but ", axis);
  check(index.device() == x.device(), "gather", "index is on ", index.device(), ", x on ",
        x.device());
  check_indices("gather", index, x.shape()[a]);
  return detail::gather_along(x, a, index, false);
}

// y = the slices x[index[j]] along axis     grad_x = grad's slices added back at index
Tensor index_select(const Tensor& x, int axis, const Tensor& index) {
  detail::check_floating("index_select", x);
  int a = x.shape().axis(axis, "index_select");
  check(index.defined() && index.dim() == 1, "index_select", "index must be 1-D, got shape ",
        index.defined() ? index.shape() : Shape{});
  check(index.device() == x.device(), "index_select", "index is on ", index.device(), ", x on ",
        x.device());
  check_indices("index_select", index, x.shape()[a]);
  return detail::gather_along(x, a, index, true);
}

Tensor one_hot(const Tensor& index, int64_t classes, DType dtype) {
  check(classes > 0, "one_hot", "classes must be positive, got ", classes);
  check_indices("one_hot", index, classes);
  Shape shape = index.shape();
  shape.push_back(classes);
  Tensor y = empty(shape, dtype, index.device());
  backend_of(index).one_hot(dtype, static_cast<const int64_t*>(index.raw_data()), y.raw_data(),
                            index.numel(), classes);
  return y;
}

// ---------------------------------------------------------------- embedding

// torch.nn.functional.embedding: y[..., :] = weight[index[...], :]      weight: [V, D]
//   index: i64, any shape      y: index.shape + [D]
//   grad_weight = Σ over positions p of grad[p, :] added into row index[p] (repeated indices
//   accumulate), except that positions holding padding_idx add nothing (PyTorch's rule: the
//   padding row receives no gradient). The backward is scatter_along, recorded, so it
//   differentiates again.
Tensor embedding(const Tensor& index, const Tensor& weight, std::optional<int64_t> padding_idx) {
  detail::check_floating("embedding", weight);
  check(weight.dim() == 2, "embedding", "weight must be [num_embeddings, embedding_dim], got ",
        weight.shape());
  check(index.defined() && index.device() == weight.device(), "embedding", "index is ",
        index.defined() ? "on " + index.device().to_string() : std::string("undefined"),
        ", weight on ", weight.device());
  const int64_t rows = weight.shape()[0];
  if (padding_idx) {
    check(*padding_idx >= -rows && *padding_idx < rows, "embedding", "padding_idx ",
          *padding_idx, " is out of range for ", rows, " embeddings");
    if (*padding_idx < 0) *padding_idx += rows;
  }
  check_indices("embedding", index, rows);
  Shape shape = index.shape();
  check(shape.rank() < kMaxRank, "embedding", "index shape ", shape, " has too many axes");
  shape.push_back(weight.shape()[1]);
  Tensor flat = reshape(index, {index.numel()});
  Tensor y;
  {
    NoGrad no_grad;
    y = reshape(detail::gather_along(weight, 0, flat, true), shape);
  }
  if (is_recording(weight)) {
    Shape weight_shape = weight.shape();
    auto backward = [weight_shape](const Tensor& grad, Gradients& g, const Tensor& flat,
                                   const Tensor* keep) {
      Tensor rows_grad = reshape(grad, {flat.numel(), weight_shape[1]});
      if (keep) rows_grad = mul(rows_grad, *keep);
      g.add(0, detail::scatter_along(rows_grad, 0, flat, weight_shape, true));
    };
    if (!padding_idx) {
      record("embedding", y, {weight}, save(flat),
             [backward](const Tensor& grad, Gradients& g, const Tensor& flat) {
               backward(grad, g, flat, nullptr);
             });
    } else {
      // keep [N, 1]: 0 at the positions holding padding_idx, else 1
      Tensor padding = full({}, static_cast<double>(*padding_idx), DType::i64, index.device());
      Tensor keep = reshape(sub(1.0, equal(flat, padding).to(weight.dtype())), {index.numel(), 1});
      record(with_scalars("embedding", *padding_idx), y, {weight}, save(flat, keep),
             [backward](const Tensor& grad, Gradients& g, const Tensor& flat, const Tensor& keep) {
               backward(grad, g, flat, &keep);
             });
    }
  }
  return y;
}

}  // namespace tg
