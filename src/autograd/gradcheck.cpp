// src/autograd/gradcheck.cpp — analytic Jacobian (one backward per output element) against the
// central-difference Jacobian (two forward passes per input element).
#include "tapegrad/gradcheck.h"

#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "tapegrad/error.h"
#include "tapegrad/ops.h"
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

// The op names f records, in order: what the failure message blames.
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

}  // namespace

GradcheckResult gradcheck(const GradcheckFunction& f, const std::vector<Tensor>& inputs,
                          double eps, double atol, double rtol) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    check(inputs[i].defined(), "gradcheck", "input ", i, " is undefined");
    check(inputs[i].dtype() == DType::f64 || !inputs[i].requires_grad(), "gradcheck", "input ",
          i, " is ", inputs[i].dtype(),
          "; gradcheck needs f64 inputs (finite differences in f32 are too coarse)");
    check(inputs[i].is_leaf(), "gradcheck", "input ", i, " must be a leaf tensor");
  }

  // Analytic Jacobian: row j is the gradient of output element j.
  tape().clear();
  Tensor output = f(inputs);
  check(output.defined() && output.dtype() == DType::f64, "gradcheck",
        "f must return an f64 tensor");
  check(output.requires_grad(), "gradcheck",
        "the output does not depend on any input with requires_grad");
  std::string ops = recorded_ops(tape());
  const int64_t outputs = output.numel();
  std::vector<std::vector<std::vector<double>>> analytic(inputs.size());  // [input][out][elem]
  for (size_t i = 0; i < inputs.size(); ++i) analytic[i].resize(outputs);
  for (int64_t j = 0; j < outputs; ++j) {
    for (const Tensor& input : inputs) const_cast<Tensor&>(input).zero_grad();
    Tensor seed = zeros(output.shape(), DType::f64);
    seed.data<double>()[j] = 1.0;
    tape().backward(output, seed, /*retain_graph=*/true);
    for (size_t i = 0; i < inputs.size(); ++i) {
      Tensor grad = inputs[i].grad();
      analytic[i][j] = grad.defined() ? grad.to_vector()
                                      : std::vector<double>(inputs[i].numel(), 0.0);
    }
  }
  for (const Tensor& input : inputs) const_cast<Tensor&>(input).zero_grad();
  tape().clear();

  // Numeric Jacobian, one input element at a time.
  GradcheckResult result;
  NoGrad no_grad;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    Tensor input = inputs[i];
    double* values = input.data<double>();
    for (int64_t e = 0; e < input.numel(); ++e) {
      const double original = values[e];
      values[e] = original + eps;
      std::vector<double> plus = f(inputs).to_vector();
      values[e] = original - eps;
      std::vector<double> minus = f(inputs).to_vector();
      values[e] = original;
      for (int64_t j = 0; j < outputs; ++j) {
        double numeric = (plus[j] - minus[j]) / (2 * eps);
        double exact = analytic[i][j][e];
        double error = std::fabs(exact - numeric);
        bool close = error <= atol + rtol * std::fabs(numeric);
        if (std::isnan(exact) != std::isnan(numeric)) close = false;
        if (!std::isnan(error)) result.max_abs_error = std::max(result.max_abs_error, error);
        if (!close && result.ok) {
          std::ostringstream message;
          message << std::setprecision(8) << "gradcheck failed for input " << i << " "
                  << input.shape() << " element " << unravel(e, input.shape())
                  << ", output element " << unravel(j, output.shape()) << ": analytic " << exact
                  << " vs numeric " << numeric << " (|diff| " << error << " > atol " << atol
                  << " + rtol " << rtol << " * |numeric|); ops recorded by f: " << ops;
          result.ok = false;
          result.message = message.str();
        }
      }
    }
  }
  return result;
}

}  // namespace tg
