// src/ops/fused_helpers.h — what the functional.h op files share: the skeleton of a pointwise
// fused op (one kernel forward, one kernel per input backward, one tape entry), reductions of
// per-distribution values, and temperature checks.
#pragma once

#include <vector>

#include "op_helpers.h"
#include "tapegrad/functional.h"

namespace tg::detail {

// Runs a Backend::Pointwise kernel over `inputs` (broadcast to a common shape) and reduces it,
// in one pass, recording one tape entry `name` whose backward calls the kernel's gradient for
// each input that wants one. Only the first `differentiable` inputs are recorded (the rest,
// like reparameterize's noise, are constants); -1 means all.
Tensor pointwise_op(const char* name, Backend::Pointwise kind, std::vector<Tensor> inputs,
                    Reduction reduction, double param = 0, int differentiable = -1);

// Applies `reduction` to per-distribution values (engine ops, recorded as usual). batchmean
// divides the sum by `batch`.
Tensor reduce_values(const Tensor& values, Reduction reduction, int64_t batch);

// Throws unless every tensor is defined, floating, and shares dtype and device with the first.
void check_floating_group(const char* op, std::initializer_list<std::reference_wrapper<const Tensor>> tensors);
// Throws unless a and b have the same shape.
void check_same_shape(const char* op, const Tensor& a, const Tensor& b, const char* a_name,
                      const char* b_name);

// Throws unless T is a finite positive temperature.
void check_temperature(const char* op, double temperature);

const char* reduction_name(Reduction reduction);

}  // namespace tg::detail
