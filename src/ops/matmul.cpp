// src/ops/matmul.cpp — matrix products through the backend's gemm. Transposes are flags passed
// to gemm, never copies, in the forward and in the backward.
#include "op_helpers.h"

namespace tg {

using detail::backend_of;

namespace {

struct MatmulShape {
  int64_t m, k, n, batch;
  Shape out;
};

// a: [..., m, k] (or [..., k, m] when transpose_a), b likewise; batch dims equal, or one 2-D.
MatmulShape matmul_shape(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  check(a.dim() >= 2 && b.dim() >= 2, "matmul", "expected matrices (at least 2-D), got ",
        a.shape(), " and ", b.shape());
  const Shape &sa = a.shape(), &sb = b.shape();
  int ra = sa.rank(), rb = sb.rank();
  MatmulShape s;
  s.m = ta ? sa[ra - 1] : sa[ra - 2];
  s.k = ta ? sa[ra - 2] : sa[ra - 1];
  int64_t kb = tb ? sb[rb - 1] : sb[rb - 2];
  s.n = tb ? sb[rb - 2] : sb[rb - 1];
  check(s.k == kb, "matmul", "inner sizes differ: ", sa, (ta ? "ᵀ" : ""), " · ", sb,
        (tb ? "ᵀ" : ""), " (", s.k, " vs ", kb, ")");
  bool batch_ok = ra == 2 || rb == 2 || (ra == rb && std::equal(sa.begin(), sa.end() - 2, sb.begin()));
  check(batch_ok, "matmul", "batch dimensions of ", sa, " and ", sb,
        " must be equal (or one operand 2-D)");
  s.batch = 1;
  for (int d = 0; d < ra - 2; ++d) {
    s.out.push_back(sa[d]);
    s.batch *= sa[d];
  }
  if (ra == 2)  // a 2-D matrix times a batch of matrices
    for (int d = 0; d < rb - 2; ++d) {
      s.out.push_back(sb[d]);
      s.batch *= sb[d];
    }
  s.out.push_back(s.m);
  s.out.push_back(s.n);
  return s;
}

}  // namespace

// y = op(a)·op(b)       op(x) = xᵀ when its transpose flag is set
//   grad_a = grad·op(b)ᵀ  (transposed back when ta)      grad_b = op(a)ᵀ·grad  (likewise)
Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  detail::check_compatible("matmul", a, b);
  detail::check_floating("matmul", a);
  MatmulShape s = matmul_shape(a, b, ta, tb);
  // A batch of matrices times one matrix is one tall gemm: fold the batch into the rows.
  if (a.dim() > 2 && b.dim() == 2 && !ta)
    return reshape(matmul(reshape(a, {s.batch * s.m, s.k}), b, false, tb), s.out);
  Tensor y = empty(s.out, a.dtype(), a.device());
  int64_t stride_a = a.dim() > 2 ? s.m * s.k : 0, stride_b = b.dim() > 2 ? s.k * s.n : 0;
  backend_of(a).gemm(a.dtype(), ta, tb, s.m, s.n, s.k, 1.0, a.raw_data(), b.raw_data(), 0.0,
                     y.raw_data(), s.batch, stride_a, stride_b, s.m * s.n);
  if (is_recording(a, b))
    record("matmul", y, {a, b}, save(a, b),
           [ta, tb](const Tensor& grad, Gradients& g, const Tensor& a, const Tensor& b) {
      if (g.wants(0)) g.add(0, ta ? matmul(b, grad, tb, true) : matmul(grad, b, false, !tb));
      if (g.wants(1)) g.add(1, tb ? matmul(grad, a, true, ta) : matmul(a, grad, !ta, false));
    });
  return y;
}

// y = x·wᵀ + bias       grad_x = grad·w      grad_w = gradᵀ·x      grad_bias = Σ_rows grad
// The bias is copied into y first and gemm adds the product onto it (beta = 1): one pass.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  detail::check_compatible("linear", x, weight);
  detail::check_floating("linear", x);
  check(weight.dim() == 2, "linear", "weight must be [out, in], got ", weight.shape());
  check(x.dim() >= 1 && x.shape()[x.dim() - 1] == weight.shape()[1], "linear", "input ",
        x.shape(), " does not end in the weight's input size ", weight.shape()[1], " (weight ",
        weight.shape(), ")");
  if (x.dim() != 2) {  // fold leading dims into rows and restore them afterwards
    Shape out = x.shape();
    out[out.rank() - 1] = weight.shape()[0];
    int64_t rows = 1;
    for (int d = 0; d + 1 < x.dim(); ++d) rows *= x.shape()[d];
    return reshape(linear(reshape(x, {rows, weight.shape()[1]}), weight, bias), out);
  }
  int64_t rows = x.shape()[0], in = weight.shape()[1], out = weight.shape()[0];
  Tensor y = empty({rows, out}, x.dtype(), x.device());
  double beta = 0;
  if (bias.defined()) {
    detail::check_compatible("linear", x, bias);
    check(bias.dim() == 1 && bias.shape()[0] == out, "linear", "bias must be [", out, "], got ",
          bias.shape());
    int64_t bias_strides[2] = {0, 1}, y_strides[2] = {out, 1};
    backend_of(x).copy_strided(x.dtype(), y.shape(), bias.raw_data(), bias_strides, y.raw_data(),
                               y_strides);
    beta = 1;
  }
  backend_of(x).gemm(x.dtype(), false, true, rows, out, in, 1.0, x.raw_data(), weight.raw_data(),
                     beta, y.raw_data(), 1, 0, 0, 0);
  if (is_recording(x, weight, bias))
    record("linear", y, {x, weight, bias}, save(x, weight),
           [](const Tensor& grad, Gradients& g, const Tensor& x, const Tensor& weight) {
      if (g.wants(0)) g.add(0, matmul(grad, weight));
      if (g.wants(1)) g.add(1, matmul(grad, x, true, false));
      if (g.wants(2)) g.add(2, sum(grad, 0));
    });
  return y;
}

}  // namespace tg
