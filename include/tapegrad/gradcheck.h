// tapegrad/gradcheck.h — compare every analytic gradient with central finite differences.
//
// For f: inputs -> output, builds the full Jacobian twice: analytically (one backward per output
// element) and numerically, column by column, as (f(x + eps) - f(x - eps)) / 2eps. Passes when
// |analytic - numeric| <= atol + rtol * |numeric| for every element (PyTorch's rule and defaults).
// Inputs must be float64 (float32 differences are too coarse); those with requires_grad are checked.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "tapegrad/tensor.h"

namespace tg {

struct GradcheckResult {
  bool ok = true;
  std::string message;  // on failure: input, element, analytic vs numeric, and the ops f recorded
  double max_abs_error = 0;
  explicit operator bool() const { return ok; }
};

std::ostream& operator<<(std::ostream& os, const GradcheckResult& result);

using GradcheckFunction = std::function<Tensor(const std::vector<Tensor>&)>;

GradcheckResult gradcheck(const GradcheckFunction& f, const std::vector<Tensor>& inputs,
                          double eps = 1e-6, double atol = 1e-5, double rtol = 1e-3);

}  // namespace tg
