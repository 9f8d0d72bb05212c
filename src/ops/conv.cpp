// src/ops/conv.cpp — conv2d, max_pool2d and avg_pool2d, built on one adjoint pair of recorded ops:
// unfold (im2col: every window of the image as a column) and fold (col2im: every column added
// back onto the pixels it came from). Each is the other's backward, so the three public ops are
// compositions of recorded ops and differentiate to any order:
//
//   conv2d     = weight [O, C·kh·kw] · unfold(x) [C·kh·kw, N·oh·ow]   one gemm, then NCHW order
//                backward: two gemms (matmul's) and a fold — grad_x = fold(weightᵀ·grad)
//   avg_pool2d = mean over the rows of unfold(x viewed as N·C one-channel images)
//   max_pool2d = gather(x, index of each window's largest pixel); the backward is gather's
//                scatter-add (src/ops/index.cpp)
//
// docs/math.md ("Convolution and pooling") derives the backward of each.
#include "op_helpers.h"

namespace tg {

using detail::backend_of;

namespace {

// The window geometry of an op over an NCHW input, with its arguments checked.
Window2d make_window(const char* op, const Tensor& x, Size2d kernel, Size2d stride,
                     Size2d padding, Size2d dilation) {
  detail::check_floating(op, x);
  check(x.dim() == 4, op, "expected an NCHW input [N, C, H, W], got ", x.shape());
  check(kernel.h > 0 && kernel.w > 0, op, "kernel size must be positive, got ", kernel.h, "x",
        kernel.w);
  check(stride.h > 0 && stride.w > 0, op, "stride must be positive, got ", stride.h, "x",
        stride.w);
  check(padding.h >= 0 && padding.w >= 0, op, "padding must be >= 0, got ", padding.h, "x",
        padding.w);
  check(dilation.h > 0 && dilation.w > 0, op, "dilation must be positive, got ", dilation.h, "x",
        dilation.w);
  Window2d w;
  w.batch = x.size(0);
  w.channels = x.size(1);
  w.height = x.size(2);
  w.width = x.size(3);
  w.kernel_h = kernel.h;
  w.kernel_w = kernel.w;
  w.stride_h = stride.h;
  w.stride_w = stride.w;
  w.pad_h = padding.h;
  w.pad_w = padding.w;
  w.dilation_h = dilation.h;
  w.dilation_w = dilation.w;
  const int64_t span_h = dilation.h * (kernel.h - 1) + 1, span_w = dilation.w * (kernel.w - 1) + 1;
  check(w.height + 2 * w.pad_h >= span_h && w.width + 2 * w.pad_w >= span_w, op, "input ",
        x.shape(), " padded by ", padding.h, "x", padding.w, " is smaller than the window (kernel ",
        kernel.h, "x", kernel.w, ", dilation ", dilation.h, "x", dilation.w, ")");
  w.out_h = (w.height + 2 * w.pad_h - span_h) / w.stride_h + 1;
  w.out_w = (w.width + 2 * w.pad_w - span_w) / w.stride_w + 1;
  return w;
}

Tensor fold_windows(const Tensor& columns, const Window2d& w);

// columns = im2col(x)        x: [N, C, H, W]  ->  columns: [C·kh·kw, N·oh·ow]
//   grad_x = col2im(grad)    (the adjoint: each entry goes back to the pixel it was read from)
Tensor unfold_windows(const Tensor& x, const Window2d& w) {
  Tensor columns = empty({w.channels * w.kernel_h * w.kernel_w, w.batch * w.out_h * w.out_w},
                         x.dtype(), x.device());
  backend_of(x).im2col(x.dtype(), x.raw_data(), columns.raw_data(), w);
  if (is_recording(x))
    record("unfold", columns, {x}, [w](const Tensor& grad, Gradients& g) {
      g.add(0, fold_windows(grad, w));
    });
  return columns;
}

// x = col2im(columns)        columns: [C·kh·kw, N·oh·ow]  ->  x: [N, C, H, W]
//   grad_columns = im2col(grad)   (fold is linear; its adjoint is unfold)
Tensor fold_windows(const Tensor& columns, const Window2d& w) {
  Tensor x = empty({w.batch, w.channels, w.height, w.width}, columns.dtype(), columns.device());
  backend_of(columns).col2im(columns.dtype(), columns.raw_data(), x.raw_data(), w);
  if (is_recording(columns))
    record("fold", x, {columns}, [w](const Tensor& grad, Gradients& g) {
      g.add(0, unfold_windows(grad, w));
    });
  return x;
}

Size2d default_stride(Size2d stride, Size2d kernel) {
  return {stride.h == 0 ? kernel.h : stride.h, stride.w == 0 ? kernel.w : stride.w};
}

void check_pool_padding(const char* op, Size2d kernel, Size2d padding) {
  check(padding.h <= kernel.h / 2 && padding.w <= kernel.w / 2, op, "padding ", padding.h, "x",
        padding.w, " must be at most half the kernel size ", kernel.h, "x", kernel.w,
        " (as in PyTorch: every window must hold a pixel of the image)");
}

}  // namespace

// y = W·unfold(x) + bias, per group: y_g [O/G, N·L] = W_g [O/G, K] · columns_g [K, N·L]
//   grad_W_g = grad_g · columns_gᵀ      grad_x = fold(W_gᵀ · grad_g)      grad_bias = Σ_{N, L} grad
// (the gemms and their gradients are matmul's; docs/math.md derives the fold)
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Size2d stride,
              Size2d padding, Size2d dilation, int64_t groups) {
  detail::check_floating("conv2d", x);
  detail::check_compatible("conv2d", x, weight);
  check(weight.dim() == 4, "conv2d", "weight must be [out, in/groups, kh, kw], got ",
        weight.shape());
  check(x.dim() == 4, "conv2d", "expected an NCHW input [N, C, H, W], got ", x.shape());
  check(groups >= 1, "conv2d", "groups must be >= 1, got ", groups);
  const int64_t n = x.size(0), c = x.size(1), o = weight.size(0);
  check(c % groups == 0 && o % groups == 0, "conv2d", "channels in (", c, ") and out (", o,
        ") must both be divisible by groups = ", groups);
  check(weight.size(1) == c / groups, "conv2d", "weight ", weight.shape(), " expects ",
        weight.size(1) * groups, " input channels (groups = ", groups, "), input ", x.shape(),
        " has ", c);
  if (bias.defined()) {
    detail::check_compatible("conv2d", x, bias);
    check(bias.dim() == 1 && bias.size(0) == o, "conv2d", "bias must be [", o, "], got ",
          bias.shape());
  }
  Window2d w = make_window("conv2d", x, {weight.size(2), weight.size(3)}, stride, padding,
                           dilation);
  const int64_t positions = w.out_h * w.out_w, k = weight.size(1) * w.kernel_h * w.kernel_w;
  Tensor columns = unfold_windows(x, w);  // [C·kh·kw, N·L]
  Tensor out;                             // [O, N·L]
  if (groups == 1) {
    out = matmul(reshape(weight, {o, k}), columns);
  } else {
    out = reshape(matmul(reshape(weight, {groups, o / groups, k}),
                         reshape(columns, {groups, k, n * positions})),
                  {o, n * positions});
  }
  if (bias.defined()) out = out + reshape(bias, {o, 1});
  if (n == 1) return reshape(out, {1, o, w.out_h, w.out_w});
  return reshape(transpose(reshape(out, {o, n, positions}), 0, 1), {n, o, w.out_h, w.out_w});
}

// y[b, c, oy, ox] = x[b, c, index[b, c, oy, ox]]   (the window's first largest pixel)
//   grad_x = scatter-add of grad at index          (gather's backward)
Tensor max_pool2d(const Tensor& x, Size2d kernel, Size2d stride, Size2d padding,
                  Size2d dilation) {
  stride = default_stride(stride, kernel);
  Window2d w = make_window("max_pool2d", x, kernel, stride, padding, dilation);
  check_pool_padding("max_pool2d", kernel, padding);
  const int64_t planes = w.batch * w.channels, positions = w.out_h * w.out_w;
  Tensor index = empty({planes, positions}, DType::i64, x.device());
  backend_of(x).max_pool2d_index(x.dtype(), x.raw_data(), static_cast<int64_t*>(index.raw_data()),
                                 w);
  Tensor y = detail::gather_along(reshape(x, {planes, w.height * w.width}), 1, index, false);
  return reshape(y, {w.batch, w.channels, w.out_h, w.out_w});
}

// y = mean over the window's kh·kw entries of unfold(x) (padding counts as 0)
//   grad_x = fold(grad / (kh·kw) repeated over the window)   (mean's backward, then unfold's)
Tensor avg_pool2d(const Tensor& x, Size2d kernel, Size2d stride, Size2d padding) {
  stride = default_stride(stride, kernel);
  make_window("avg_pool2d", x, kernel, stride, padding, 1);  // checks x and the arguments
  check_pool_padding("avg_pool2d", kernel, padding);
  const int64_t n = x.size(0), c = x.size(1);
  Tensor planes = reshape(x, {n * c, 1, x.size(2), x.size(3)});
  Window2d w = make_window("avg_pool2d", planes, kernel, stride, padding, 1);
  Tensor y = mean(unfold_windows(planes, w), 0);  // [N·C·L]
  return reshape(y, {n, c, w.out_h, w.out_w});
}

}  // namespace tg
