// src/ops/op_helpers.h — what every op file needs: argument checks and the kernel launches that
// produce an op's output. Nothing here records on the tape; the ops do that themselves.
#pragma once

#include <optional>

#include "tapegrad/backend.h"
#include "tapegrad/error.h"
#include "tapegrad/ops.h"
#include "tapegrad/tape.h"
#include "tapegrad/tensor.h"

namespace tg::detail {

// Throws unless x is defined and f32/f64.
void check_floating(const char* op, const Tensor& x);
// Throws unless a and b are defined and share dtype and device.
void check_compatible(const char* op, const Tensor& a, const Tensor& b);
// Throws unless every value of the i64 tensor `index` lies in [0, limit) or, when given, equals
// `ignored` (a loss's ignore_index): at once for a CPU tensor, at the next synchronisation on a
// GPU (Backend::check_indices; no host read inside a training step). `what` names a value in
// the message ("index", "label"); `op` and `what` must be string literals. Returns how many
// values equal `ignored`, or -1 when that is not known without a synchronisation.
int64_t check_index_range(const char* op, const Tensor& index, int64_t limit, const char* what,
                          std::optional<int64_t> ignored = std::nullopt);

// y = op(x; a, b) elementwise, into a new tensor shaped like x.
Tensor unary_kernel(const char* name, UnaryOp op, const Tensor& x, double a = 0, double b = 0);
// out = op(a, b) with broadcasting, into a new tensor of the broadcast shape. f32/f64, or i64 for
// the comparisons.
Tensor binary_kernel(const char* name, BinaryOp op, const Tensor& a, const Tensor& b);

// The strides each input uses to walk `out` (0 where it is broadcast). Inputs must already be
// known to broadcast to `out`.
BroadcastLayout broadcast_layout(const Shape& out, std::initializer_list<Shape> inputs);

// Row-major strides of a shape, as a fixed array.
struct Strides {
  int64_t values[kMaxRank] = {};
  explicit Strides(const Shape& shape) { shape.strides(values); }
};

inline Backend& backend_of(const Tensor& t) { return backend_for(t.device()); }

// A tensor's data for a kernel argument that may be absent (an optional weight, a gradient
// nobody wants): nullptr for an undefined tensor.
inline void* data_or_null(Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }
inline const void* data_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }

// The adjoint pair behind gather and index_select (src/ops/index.cpp), without the index checks
// (indices must already be validated): gather_along picks x[index] along `axis` (whole slices
// x[index[j]] with shared_index); scatter_along adds `grad` into zeros of `shape` at the same
// positions. Each is recorded with the other as its backward, so both differentiate to any order.
Tensor gather_along(const Tensor& x, int axis, const Tensor& index, bool shared_index);
Tensor scatter_along(const Tensor& grad, int axis, const Tensor& index, const Shape& shape,
                     bool shared_index);

// The sizes of the [outer, n, inner] view of `shape` around `axis`.
struct AxisView {
  int64_t outer = 1, n = 1, inner = 1;
  AxisView(const Shape& shape, int axis);
};

// `shape` with `axis` removed (or set to 1 when keepdim).
Shape reduced_shape(const Shape& shape, int axis, bool keepdim);

}  // namespace tg::detail
