// src/cpu/simd.h — the CPU backend's vector kernels (Google Highway, src/cpu/simd_kernels.cpp).
//
// Every kernel here is compiled once per SIMD target (SSE4, AVX2, AVX-512; NEON and SVE on Arm;
// SCALAR or EMU128, portable C++, everywhere) and the best one the CPU supports is chosen at run time
// (HWY_DYNAMIC_DISPATCH: an indirect call through a table, no allocation). Each computes the same
// formula as the src/kernels/ functor it stands for (the CUDA backend's), with the vector math of
// simd_math-inl.h; tests/test_simd.cpp checks every one element by element against its functor
// on every target the CPU supports.
//
// Each entry point returns false when it has no vector version of the requested op, kind or
// dtype: the caller then runs the functor loop (so a new UnaryOp or Pointwise kind works before
// it gets a vector version). All take contiguous arrays; the callers split big ones over threads.
//
// TAPEGRAD_SIMD (read once, at the first kernel) forces a target: avx3 (= avx512), avx2, sse4,
// neon, sve, ..., scalar (= emu128: Highway's portable C++ target, whichever of the two this
// compiler builds), any target the build and the CPU have; or `none`: no vector kernels at all,
// only the functor loops. An unknown or unsupported name is an error.
#pragma once

#include <cstdint>
#include <vector>

#include "tapegrad/backend.h"

namespace tg::cpu::simd {

// The target the kernels run on: "AVX3", "AVX2", "SSE4", "EMU128" or "SCALAR", ..., or "none".
const char* target_name();
// Whether the vector kernels run (false under TAPEGRAD_SIMD=none).
bool enabled();

// For tests and benchmarks: the Highway targets (HWY_AVX2, ...) this build has and this CPU runs,
// best first; run everything on `target` (one of them), or on the functor loops (`0`). Not
// thread-safe against running kernels.
std::vector<int64_t> available_targets();
void select_target(int64_t target);
// The name of a Highway target bit.
const char* name_of(int64_t target);

// y[i] = op(x[i]; a, b)
bool unary(UnaryOp op, DType dtype, const void* x, void* y, int64_t n, double a, double b);
// out[i] = op(a[i], b[i]); where `broadcast` is 1, b is one value for all i; where 2, a is.
bool binary(BinaryOp op, DType dtype, const void* a, const void* b, void* out, int64_t n,
            int broadcast);

// Pointwise kinds over elements [begin, end) of the inputs.
bool pointwise(Backend::Pointwise kind, DType dtype, const void* const* inputs, void* out,
               int64_t begin, int64_t end, double param);
// Σ over [begin, end) (begin a multiple of kSumBlock): each block of kSumBlock elements summed in
// T (in a fixed lane order), the blocks' sums added in double, in order, into *total.
constexpr int64_t kSumBlock = 512;
bool pointwise_sum(Backend::Pointwise kind, DType dtype, const void* const* inputs,
                   int64_t begin, int64_t end, double param, double* total);
bool pointwise_grad(Backend::Pointwise kind, DType dtype, int input, const void* grad,
                    bool grad_is_scalar, double scale, const void* const* inputs, void* out,
                    int64_t begin, int64_t end, double param);

// v[i] = e^v[i]
bool exp_in_place(DType dtype, void* v, int64_t n);

// One contiguous softmax-family row of n elements at inverse temperature inv_t (the rules of
// src/kernels/row_math.h and fused_math.h). row_stats returns {max, log Σ} (k::RowStats).
bool row_stats(DType dtype, const void* x, int64_t n, double inv_t, double* max, double* log_sum);
// *sum = Σ e^((x[j] - shift)·inv_t), j < n, summed in the dtype (the logsumexp reduction's sum).
bool exp_sum(DType dtype, const void* x, int64_t n, double shift, double inv_t, double* sum);
bool log_softmax_row(DType dtype, const void* x, void* y, int64_t n, double inv_t);
bool softmax_row(DType dtype, const void* x, void* y, int64_t n, double inv_t);
bool log_softmax_backward_row(DType dtype, const void* grad_y, const void* y, void* grad_x,
                              int64_t n, double inv_t);
bool softmax_backward_row(DType dtype, const void* grad_y, const void* y, void* grad_x,
                          int64_t n, double inv_t);

// One contiguous row of kl_logits (k::log_probability, k::p_log_ratio, k::kl_logits_grad_p/q):
// q null means the uniform Q (every log q = -q_log_sum). kl_row returns Σ_j p_j·(log p_j - log q_j);
// kl_row_backward writes grad_p and/or grad_q (either may be null) = grad·∂KL/∂logits.
struct KlRow {
  const void* p = nullptr;
  const void* q = nullptr;
  int64_t n = 0;
  double p_max = 0, p_log_sum = 0, q_max = 0, q_log_sum = 0, inv_t = 1;
  double grad = 0, kl = 0;          // backward only
  void* grad_p = nullptr;
  void* grad_q = nullptr;
};
bool kl_row(DType dtype, const KlRow& row, double* total);
bool kl_row_backward(DType dtype, const KlRow& row);

// The fused optimizer updates over [0, n) (src/kernels/optimizer_math.h).
bool adam(DType dtype, void* param, const void* grad, void* exp_avg, void* exp_avg_sq, int64_t n,
          const AdamStep& step);

}  // namespace tg::cpu::simd
