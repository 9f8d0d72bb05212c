// src/kernels/dispatch.h — from the run-time tags of backend.h to the compile-time types and
// functors of src/kernels/: a dtype to its C++ type, a Backend::Pointwise kind to its functor.
// Host code, shared by the CPU and CUDA backends so that both map every tag alike.
#pragma once

#include <cstdint>

#include "fused_math.h"
#include "tapegrad/backend.h"
#include "tapegrad/error.h"

namespace tg::kernels {

// Calls f(T{}) with T = float or double for a floating dtype; throws naming `op` otherwise.
template <class F>
void dispatch_floating(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::f32: f(float{}); return;
    case DType::f64: f(double{}); return;
    default: fail(op, "expected an f32 or f64 tensor, got ", dtype);
  }
}

// The same for every dtype, i64 included.
template <class F>
void dispatch_any(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32: f(float{}); return;
    case DType::f64: f(double{}); return;
    case DType::i64: f(int64_t{}); return;
  }
}

// Calls f(T{}) for a reduction: T = float or double for every ReduceOp, and int64_t for the ones
// defined on integers (sum, max, min; backend.h); throws naming the kernel otherwise. f must
// compile for int64_t, so it guards the floating-only ops with is_floating_point.
template <class F>
void dispatch_reduce(ReduceOp op, DType dtype, F&& f) {
  if (dtype != DType::i64) return dispatch_floating(dtype, "reduce", f);
  check(reduce_takes_i64(op), "reduce", "only sum, max and min take an i64 tensor");
  f(int64_t{});
}

// Calls f(Functor{}) for a Pointwise kind (fused_math.h has the functors).
template <class Fn>
void dispatch_pointwise(Backend::Pointwise kind, Fn&& f) {
  using P = Backend::Pointwise;
  switch (kind) {
    case P::bce_with_logits: return f(BceWithLogits{});
    case P::kl_div: return f(KlDiv{});
    case P::kl_div_log_target: return f(KlDivLogTarget{});
    case P::gaussian_kl_standard: return f(GaussianKlStandard{});
    case P::gaussian_kl: return f(GaussianKl{});
    case P::squared_error: return f(SquaredError{});
    case P::entropy: return f(EntropyTerm{});
    case P::js_divergence: return f(JsDivergenceTerm{});
    case P::total_variation: return f(TotalVariationTerm{});
    case P::ppo_clip: return f(PpoClip{});
    case P::reparameterize: return f(Reparameterize{});
  }
  fail("pointwise", "unknown kind ", static_cast<int>(kind));
}

}  // namespace tg::kernels
