// src/ops/fused_helpers.cpp — the pointwise fused-op skeleton and the small checks and helpers
// shared by softmax.cpp, divergence.cpp, gaussian.cpp and losses.cpp.
#include "fused_helpers.h"

#include <cmath>

namespace tg::detail {

const char* reduction_name(Reduction reduction) {
  switch (reduction) {
    case Reduction::none: return "none";
    case Reduction::sum: return "sum";
    case Reduction::mean: return "mean";
    case Reduction::batchmean: return "batchmean";
  }
  return "?";
}

void check_floating_group(const char* op,
                          std::initializer_list<std::reference_wrapper<const Tensor>> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor& t : tensors) {
    check_floating(op, t);
    if (first) check_compatible(op, *first, t);
    else first = &t;
  }
}

void check_same_shape(const char* op, const Tensor& a, const Tensor& b, const char* a_name,
                      const char* b_name) {
  check(a.shape() == b.shape(), op, a_name, " ", a.shape(), " and ", b_name, " ", b.shape(),
        " must have the same shape");
}

void check_temperature(const char* op, double temperature) {
  check(temperature > 0 && std::isfinite(temperature), op,
        "the temperature must be a finite number > 0, got ", temperature);
}

// scale that turns Σ values into the reduction: 1, 1/count or 1/batch.
static double reduction_scale(Reduction reduction, int64_t count, int64_t batch) {
  switch (reduction) {
    case Reduction::mean: return 1.0 / static_cast<double>(count);
    case Reduction::batchmean: return 1.0 / static_cast<double>(batch);
    default: return 1.0;
  }
}

Tensor reduce_values(const Tensor& values, Reduction reduction, int64_t batch) {
  switch (reduction) {
    case Reduction::none: return values;
    case Reduction::sum: return sum(values);
    case Reduction::mean: return mean(values);
    case Reduction::batchmean: return mul(sum(values), 1.0 / static_cast<double>(batch));
  }
  return values;
}

Tensor masked(const Tensor& mask, const Tensor& x) {
  return where(mask, x, zeros({}, x.dtype(), x.device()));
}

Tensor safe_input(const Tensor& mask, const Tensor& x, double fill) {
  return where(mask, x, full({}, fill, x.dtype(), x.device()));
}

Tensor along_axis(const Tensor& grad, const Shape& x_shape, int axis) {
  return reshape(grad, reduced_shape(x_shape, axis, true));
}

// ℓ = reduce_i f(inputs_i)      grad_input_k = scale·grad·∂f/∂input_k   (grad per element for
// reduction none, else the one element of the scalar loss's gradient)
Tensor pointwise_op(const char* name, Backend::Pointwise kind, std::vector<Tensor> inputs,
                    Reduction reduction, PointwisePartial partial, double param,
                    int differentiable) {
  check(!inputs.empty() && inputs.size() <= 4, name, "takes 1 to 4 inputs");
  Shape shape = inputs[0].shape();
  for (const Tensor& t : inputs) {
    check_floating(name, t);
    check_compatible(name, inputs[0], t);
    shape = broadcast_shapes(shape, t.shape(), name);
  }
  // Broadcast inputs to the common shape first (recorded: their gradients are summed back).
  for (Tensor& t : inputs) t = broadcast_to(t, shape);
  const int recorded = differentiable < 0 ? static_cast<int>(inputs.size()) : differentiable;

  const int64_t n = shape.numel();
  const int64_t batch = shape.rank() > 0 ? shape[0] : 1;
  const bool reduce = reduction != Reduction::none;
  const double scale = reduction_scale(reduction, n, batch);
  Backend::PointwiseInputs pointers;
  for (size_t k = 0; k < inputs.size(); ++k) pointers.data[k] = inputs[k].raw_data();

  Tensor y = empty(reduce ? Shape{} : shape, inputs[0].dtype(), inputs[0].device());
  backend_of(inputs[0]).pointwise(kind, y.dtype(), pointers, y.raw_data(), n, param, reduce,
                                  scale);

  std::vector<Tensor> tracked(inputs.begin(), inputs.begin() + recorded);
  bool recording = false;
  for (const Tensor& t : tracked) recording = recording || needs_grad(t);
  if (recording && grad_enabled())
    record(name, y, tracked, inputs, [kind, param, reduce, scale, n, recorded,
                                      partial](const Tensor& grad, Gradients& g) {
      std::vector<Tensor> inputs;  // the saved inputs, broadcast to the common shape
      for (size_t k = 0; k < g.saved_count(); ++k) inputs.push_back(g.saved(k));
      bool differentiable = needs_grad(grad);
      for (const Tensor& t : inputs) differentiable = differentiable || needs_grad(t);
      if (differentiable && grad_enabled()) {  // create_graph: the formula in engine ops
        Tensor upstream = scale == 1.0 ? grad : mul(grad, scale);
        for (int k = 0; k < recorded; ++k)
          if (g.wants(k)) g.add(k, mul(upstream, partial(inputs, k, param)));
        return;
      }
      Backend::PointwiseInputs pointers;
      for (size_t k = 0; k < inputs.size(); ++k) pointers.data[k] = inputs[k].raw_data();
      for (int k = 0; k < recorded; ++k) {
        if (!g.wants(k)) continue;
        Tensor grad_input = empty(inputs[k].shape(), grad.dtype(), grad.device());
        backend_of(grad).pointwise_backward(kind, grad.dtype(), k, grad.raw_data(), reduce, scale,
                                            pointers, grad_input.raw_data(), n, param);
        g.add(k, grad_input);
      }
    });
  return y;
}

Tempered tempered_layout(const char* op, const Tensor& x, int axis, double temperature) {
  check_floating(op, x);
  check_temperature(op, temperature);
  Tempered t;
  t.axis = x.shape().axis(axis, op);
  AxisView view(x.shape(), t.axis);  // n may be 0: the ops then skip their kernels
  t.layout.outer = view.outer, t.layout.n = view.n, t.layout.inner = view.inner;
  t.layout.temperature = temperature;
  return t;
}

Tempered tempered_layout(const char* op, const Tensor& x, int axis, const Tensor& temperature) {
  Tempered t = tempered_layout(op, x, axis, 1.0);
  check_floating(op, temperature);
  check_compatible(op, x, temperature);
  Shape per_distribution = reduced_shape(x.shape(), t.axis, true);
  check(broadcast_shapes(temperature.shape(), per_distribution, op) == per_distribution, op,
        "the temperature's shape ", temperature.shape(), " must broadcast to ", per_distribution,
        " (one temperature, or one per distribution along axis ", axis, " of ", x.shape(), ")");
  // T ≤ 0 must be an error, not a NaN later: checked where T lives (on a GPU without a host read,
  // reported at the next synchronisation).
  backend_of(temperature).check_temperatures(op, temperature.dtype(), temperature.raw_data(),
                                             temperature.numel());
  t.temperature = temperature;
  t.layout.single_temperature = temperature.numel() == 1;
  {
    NoGrad no_grad;
    t.expanded = t.layout.single_temperature ? temperature.detach()
                                             : broadcast_to(temperature.detach(), per_distribution);
  }
  t.layout.temperatures = t.expanded.raw_data();
  return t;
}

Tensor temperature_grad(const Tensor& x, const Tensor& grad_x, const Tempered& tempered) {
  return neg(div(sum(mul(x, grad_x), tempered.axis, true), tempered.temperature));
}

}  // namespace tg::detail
