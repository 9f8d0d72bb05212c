// src/ops/fused_helpers.h — what the functional.h op files share: the skeleton of a pointwise
// fused op (one kernel forward, one kernel per input backward, one tape entry), reductions of
// per-distribution values, and temperature checks.
#pragma once

#include <vector>

#include "op_helpers.h"
#include "tapegrad/functional.h"

namespace tg::detail {

// ∂f/∂input_k of a pointwise function f, elementwise, written with the engine's ops (so that it
// is recorded and differentiable): what a fused primitive's backward computes when the sweep
// records (create_graph). The same formula as the kernel's grad<k> in src/kernels/fused_math.h.
using PointwisePartial = Tensor (*)(const std::vector<Tensor>& inputs, int k, double param);

// Runs a Backend::Pointwise kernel over `inputs` (broadcast to a common shape) and reduces it,
// in one pass, recording one tape entry `name` whose backward calls the kernel's gradient for
// each input that wants one — or, when the sweep records, multiplies grad by `partial`, so that
// second derivatives come from the engine's ops. Only the first `differentiable` inputs are
// recorded (the rest, like reparameterize's noise, are constants); -1 means all.
Tensor pointwise_op(const char* name, Backend::Pointwise kind, std::vector<Tensor> inputs,
                    Reduction reduction, PointwisePartial partial, double param = 0,
                    int differentiable = -1);

// where(mask, x, 0) for a formula that is only defined where `mask` holds (a log of p where
// p > 0): `x` must then be computed from inputs made safe with safe_input (below), so that the
// discarded positions get a zero gradient, not 0·inf = NaN, when it is differentiated again.
Tensor masked(const Tensor& mask, const Tensor& x);
// where(mask, x, fill): x where the formula is defined, a harmless stand-in elsewhere.
Tensor safe_input(const Tensor& mask, const Tensor& x, double fill);

// Applies `reduction` to per-distribution values (engine ops, recorded as usual). batchmean
// divides the sum by `batch`.
Tensor reduce_values(const Tensor& values, Reduction reduction, int64_t batch);

// Throws unless every tensor is defined, floating, and shares dtype and device with the first.
void check_floating_group(const char* op,
                          std::initializer_list<std::reference_wrapper<const Tensor>> tensors);
// Throws unless a and b have the same shape.
void check_same_shape(const char* op, const Tensor& a, const Tensor& b, const char* a_name,
                      const char* b_name);

// Throws unless T is a finite positive temperature.
void check_temperature(const char* op, double temperature);

const char* reduction_name(Reduction reduction);

// The kernel view of softmax-like op over `axis` of x, with its temperature: a double, or a
// tensor that broadcasts to x's shape with `axis` of size 1 (checked > 0 on the host).
struct Tempered {
  Backend::SoftmaxLayout layout;
  int axis = 0;
  Tensor temperature;  // the tensor T as given (undefined for a double T)
  Tensor expanded;     // T as the kernel reads it: one element, or [outer, inner]

  // What a backward function captures: the layout without the tensors, which the entry saves
  // (record(..., save(..., t.temperature, t.expanded), ...)); with() puts them back.
  Tempered layout_only() const {
    Tempered t = *this;
    t.temperature = Tensor();
    t.expanded = Tensor();
    return t;
  }
  Tempered with(const Tensor& saved_temperature, const Tensor& saved_expanded) const {
    Tempered t = *this;
    t.temperature = saved_temperature;
    t.expanded = saved_expanded;
    if (saved_expanded.defined()) t.layout.temperatures = saved_expanded.raw_data();
    return t;
  }
};
Tempered tempered_layout(const char* op, const Tensor& x, int axis, double temperature);
Tempered tempered_layout(const char* op, const Tensor& x, int axis, const Tensor& temperature);

// The gradient of a function of x/T with respect to T, from its gradient grad_x with respect
// to x: grad_T = -Σ_j x_j·grad_x_j / T over the axis (the sum over the batch is left to
// Gradients::add, which sums it to T's shape).
Tensor temperature_grad(const Tensor& x, const Tensor& grad_x, const Tempered& tempered);
// x / T: by the temperature tensor (recorded) or the number.
Tensor divide_by_temperature(const Tensor& x, const Tempered& tempered);

// softmax / log_softmax of x / T along the tempered axis (src/ops/softmax.cpp), and its backward
// kernel from the saved output y, an op of its own.
using SoftmaxKind = Backend::SoftmaxKind;
Tensor softmax_op(SoftmaxKind kind, const Tensor& x, const Tempered& tempered);
Tensor softmax_backward(SoftmaxKind kind, const Tensor& grad, const Tensor& y,
                        const Tempered& tempered);

// `grad` of per-distribution values (x's shape without `axis`) reshaped to broadcast against x.
Tensor along_axis(const Tensor& grad, const Shape& x_shape, int axis);

}  // namespace tg::detail
