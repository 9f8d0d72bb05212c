// src/autograd/gradcheck.cpp — analytic derivatives (backward sweeps through tg::grad) against
// central differences (forward passes), for first derivatives (gradcheck) and, by checking the
// recorded gradient as a function, second ones (gradgradcheck).
#include "tapegrad/gradcheck.h"

#include <cmath>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "tapegrad/error.h"
#include "tapegrad/ops.h"
#include "tapegrad/random.h"
#include "tapegrad/tape.h"

namespace tg {

std::ostream& operator<<(std::ostream& os, const GradcheckResult& result) {
  return os << (result.ok ? "gradcheck passed" : result.message);
}

namespace {

// "[1, 2]" for flat index 5 of shape [2, 3].
std::string unravel(int64_t flat, const Shape& shape) {
  std::vector<int64_t> index(shape.rank());
  for (int d = shape.rank() - 1; d >= 0; --d) {
    index[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  std::ostringstream os;
  os << '[';
  for (size_t d = 0; d < index.size(); ++d) os << (d ? ", " : "") << index[d];
  return os.str() + ']';
}

// The op names f recorded, in order: what a failure message blames.
std::string recorded_ops(const Tape& tape) {
  std::ostringstream os;
  bool first = true;
  for (size_t i = 0; i < tape.size(); ++i) {
    const TapeEntry& entry = tape.entry(i);
    if (entry.leaf) continue;
    os << (first ? "" : ", ") << entry.op;
    first = false;
  }
  return os.str();
}

void check_inputs(const char* name, const std::vector<Tensor>& inputs) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    check(inputs[i].defined(), name, "input ", i, " is undefined");
    check(inputs[i].dtype() == DType::f64 || !inputs[i].requires_grad(), name, "input ", i,
          " is ", inputs[i].dtype(),
          "; gradcheck needs f64 inputs (finite differences in f32 are too coarse)");
    check(inputs[i].is_leaf(), name, "input ", i, " must be a leaf tensor");
    check(inputs[i].device().is_cpu(), name, "input ", i, " is on ", inputs[i].device(),
          "; gradcheck perturbs inputs on the CPU");
  }
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double total = 0;
  for (size_t i = 0; i < a.size(); ++i) total += a[i] * b[i];
  return total;
}

// One comparison of an analytic value against a numeric one, PyTorch's rule.
struct Comparison {
  const GradcheckOptions& options;
  GradcheckResult& result;
  // Records the first failure with `where` describing it; returns whether the values agree.
  bool operator()(double analytic, double numeric, const std::string& where) {
    double error = std::fabs(analytic - numeric);
    bool close = error <= options.atol + options.rtol * std::fabs(numeric);
    if (std::isnan(analytic) != std::isnan(numeric)) close = false;
    if (!std::isnan(error)) result.max_abs_error = std::max(result.max_abs_error, error);
    if (!close && result.ok) {
      std::ostringstream message;
      message << std::setprecision(8) << where << ": analytic " << analytic << " vs numeric "
              << numeric << " (|diff| " << error << " > atol " << options.atol << " + rtol "
              << options.rtol << " * |numeric|)";
      result.ok = false;
      result.message = message.str();
    }
    return close;
  }
};

GradcheckResult failure(const std::string& message) {
  GradcheckResult result;
  result.ok = false;
  result.message = message;
  return result;
}

// The checks every backward must pass before its values are compared: the same tape swept twice
// gives the same bits, and a zero output gradient gives zero input gradients.
std::string check_sweeps(const Tensor& output, const std::vector<Tensor>& wrt,
                         const std::vector<size_t>& positions, const Tensor& seed) {
  BackwardOptions retain{false, true};
  std::vector<Tensor> first = grad({output}, wrt, {seed}, retain);
  std::vector<Tensor> second = grad({output}, wrt, {seed}, retain);
  std::vector<Tensor> from_zero = grad({output}, wrt, {zeros_like(seed)}, retain);
  for (size_t w = 0; w < wrt.size(); ++w) {
    std::vector<double> a = first[w].to_vector(), b = second[w].to_vector();
    for (size_t e = 0; e < a.size(); ++e)
      if (std::memcmp(&a[e], &b[e], sizeof(double)) != 0) {
        std::ostringstream message;
        message << std::setprecision(17) << "two backward passes over the same tape gave "
                << "different gradients for input " << positions[w] << " element "
                << unravel(e, wrt[w].shape()) << ": " << a[e] << " then " << b[e];
        return message.str();
      }
    std::vector<double> z = from_zero[w].to_vector();
    for (size_t e = 0; e < z.size(); ++e)
      if (z[e] != 0) {
        std::ostringstream message;
        message << std::setprecision(8) << "a zero output gradient gave the gradient " << z[e]
                << " for input " << positions[w] << " element " << unravel(e, wrt[w].shape());
        return message.str();
      }
  }
  return {};
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFunction& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  check_inputs("gradcheck", inputs);
  std::vector<Tensor> wrt;           // the inputs that require grad
  std::vector<size_t> positions;     // ... and where they are in `inputs`
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].requires_grad()) {
      wrt.push_back(inputs[i]);
      positions.push_back(i);
    }
  Generator random(options.seed);

  // ---- analytic: f recorded once, every sweep over the same tape
  tape().clear();
  Tensor output = f(inputs);
  check(output.defined() && output.dtype() == DType::f64, "gradcheck",
        "f must return an f64 tensor");
  check(output.requires_grad(), "gradcheck",
        "the output does not depend on any input with requires_grad");
  const std::string ops = "; ops recorded by f: " + recorded_ops(tape());
  const int64_t outputs = output.numel();
  Tensor v = randn(output.shape(), random, DType::f64);
  std::string sweep_error = check_sweeps(output, wrt, positions, v);
  if (!sweep_error.empty()) {
    tape().clear();
    return failure("gradcheck failed: " + sweep_error + ops);
  }
  std::vector<std::vector<double>> v_jacobian;                // fast: vᵀJ, per input
  std::vector<std::vector<std::vector<double>>> jacobian;     // full: [input][out][elem]
  if (options.fast) {
    for (const Tensor& g : grad({output}, wrt, {v}, {false, true}))
      v_jacobian.push_back(g.to_vector());
  } else {
    jacobian.resize(wrt.size(), std::vector<std::vector<double>>(outputs));
    for (int64_t j = 0; j < outputs; ++j) {
      Tensor seed = zeros(output.shape(), DType::f64);
      seed.data<double>()[j] = 1.0;
      std::vector<Tensor> row = grad({output}, wrt, {seed}, {false, true});
      for (size_t w = 0; w < wrt.size(); ++w) jacobian[w][j] = row[w].to_vector();
    }
  }
  tape().clear();

  // ---- numeric: central differences, one input element (or direction) at a time
  GradcheckResult result;
  Comparison compare{options, result};
  NoGrad no_grad;
  const std::vector<double> v_values = v.to_vector();
  for (size_t w = 0; w < wrt.size(); ++w) {
    Tensor input = wrt[w];
    double* values = input.data<double>();
    std::string name = "input " + std::to_string(positions[w]) + " " + input.shape().to_string();
    if (options.fast) {
      // vᵀJu = d/dt ⟨v, f(x + t·u)⟩ at t = 0
      std::vector<double> u = randn(input.shape(), random, DType::f64).to_vector();
      std::vector<double> original(values, values + input.numel());
      for (int64_t e = 0; e < input.numel(); ++e) values[e] = original[e] + options.eps * u[e];
      double plus = dot(v_values, f(inputs).to_vector());
      for (int64_t e = 0; e < input.numel(); ++e) values[e] = original[e] - options.eps * u[e];
      double minus = dot(v_values, f(inputs).to_vector());
      std::copy(original.begin(), original.end(), values);
      compare(dot(v_jacobian[w], u), (plus - minus) / (2 * options.eps),
              "gradcheck (fast) failed for " + name + ", vᵀJu for random u, v");
      continue;
    }
    for (int64_t e = 0; e < input.numel(); ++e) {
      const double original = values[e];
      values[e] = original + options.eps;
      std::vector<double> plus = f(inputs).to_vector();
      values[e] = original - options.eps;
      std::vector<double> minus = f(inputs).to_vector();
      values[e] = original;
      for (int64_t j = 0; j < outputs; ++j)
        compare(jacobian[w][j][e], (plus[j] - minus[j]) / (2 * options.eps),
                "gradcheck failed for " + name + " element " + unravel(e, input.shape()) +
                    ", output element " + unravel(j, output.shape()));
    }
  }
  if (!result.ok) result.message += ops;
  return result;
}

GradcheckResult gradcheck(const GradcheckFunction& f, const std::vector<Tensor>& inputs,
                          double eps, double atol, double rtol) {
  GradcheckOptions options;
  options.eps = eps;
  options.atol = atol;
  options.rtol = rtol;
  return gradcheck(f, inputs, options);
}

GradcheckResult gradgradcheck(const GradcheckFunction& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options) {
  check_inputs("gradgradcheck", inputs);
  std::vector<size_t> positions;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].requires_grad()) positions.push_back(i);
  check(!positions.empty(), "gradgradcheck", "no input requires grad");

  // The output gradient v: random, and an input of the checked function.
  Shape output_shape;
  {
    NoGrad no_grad;
    output_shape = f(inputs).shape();
  }
  Generator random(options.seed, 1);
  Tensor v = randn(output_shape, random, DType::f64).set_requires_grad();

  // (inputs, v) -> the gradient of ⟨f(inputs), v⟩, flattened and joined. Recorded (create_graph)
  // when gradcheck differentiates it, plain when gradcheck evaluates it under NoGrad.
  auto gradient = [&](const std::vector<Tensor>& in, bool create_graph) {
    EnableGrad enable_grad;
    std::vector<Tensor> arguments(in.begin(), in.end() - 1), wrt;
    for (size_t i : positions) wrt.push_back(in[i]);
    Tensor y = f(arguments);
    check(y.defined() && y.requires_grad(), "gradgradcheck",
          "the output does not depend on any input with requires_grad");
    std::vector<Tensor> flat;
    for (const Tensor& g : grad({y}, wrt, {in.back()}, create_graph))
      flat.push_back(reshape(g, {g.numel()}));
    return concat(flat, 0);
  };
  std::vector<Tensor> extended = inputs;
  extended.push_back(v);

  // The recorded gradient must equal the ordinary one (fused primitives compute it two ways).
  std::vector<double> recorded = gradient(extended, true).to_vector();
  tape().clear();
  std::vector<double> plain = gradient(extended, false).to_vector();
  GradcheckResult agreement;
  Comparison compare{options, agreement};
  for (size_t e = 0; e < plain.size() && agreement.ok; ++e)
    compare(recorded[e], plain[e],
            "gradgradcheck failed: the gradient recorded with create_graph differs from the "
            "ordinary one at element " + std::to_string(e) + " (of the inputs' gradients, joined)");
  if (!agreement.ok) return agreement;

  GradcheckResult result = gradcheck(
      [&](const std::vector<Tensor>& in) { return gradient(in, grad_enabled()); }, extended,
      options);
  if (!result.ok)
    result.message = "gradgradcheck (of the gradient; input " + std::to_string(inputs.size()) +
                     " is the output gradient v): " + result.message;
  return result;
}

}  // namespace tg
