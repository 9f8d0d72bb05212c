// tapegrad/gradcheck.h — compare analytic gradients with central finite differences.
//
// gradcheck(f, inputs): for f: inputs -> output, builds the full Jacobian twice: analytically (one
// backward per output element) and numerically, column by column, as
// (f(x + eps) - f(x - eps)) / 2eps. Passes when |analytic - numeric| <= atol + rtol * |numeric|
// for every element (PyTorch's rule and defaults). It also checks that two backward passes over
// the same tape give bit-identical gradients and that a zero output gradient gives zero
// gradients. With `fast`, it compares the scalar vᵀJu for random u, v instead of the Jacobian:
// one backward and two forward passes per input, for inputs too large for the full Jacobian.
//
// gradgradcheck(f, inputs): the same for second derivatives: gradcheck of
// (inputs, v) -> ∂⟨f(inputs), v⟩/∂inputs, recorded with create_graph, for a random v (itself an
// input, so the gradient's dependence on the output gradient is checked too). It first checks
// that the recorded gradient equals the ordinary one.
//
// Inputs must be float64 (float32 differences are too coarse) leaves on the CPU; those with
// requires_grad are checked, the others are constants.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "tapegrad/tensor.h"

namespace tg {

struct GradcheckResult {
  bool ok = true;
  std::string message;  // on failure: what differed, where, and the ops f recorded
  double max_abs_error = 0;
  explicit operator bool() const { return ok; }
};

std::ostream& operator<<(std::ostream& os, const GradcheckResult& result);

using GradcheckFunction = std::function<Tensor(const std::vector<Tensor>&)>;

struct GradcheckOptions {
  double eps = 1e-6;   // the finite-difference step
  double atol = 1e-5;  // pass when |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-3;
  bool fast = false;   // compare vᵀJu for random u, v instead of the full Jacobian
  uint64_t seed = 0;   // of the random u, v (Philox)
};

GradcheckResult gradcheck(const GradcheckFunction& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});
GradcheckResult gradcheck(const GradcheckFunction& f, const std::vector<Tensor>& inputs,
                          double eps, double atol = 1e-5, double rtol = 1e-3);

GradcheckResult gradgradcheck(const GradcheckFunction& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options = {});

}  // namespace tg
