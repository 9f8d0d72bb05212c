// src/kernels/fused_math.h — the per-element math of the fused primitives (functional.h).
//
// Shared by the CPU loops (src/cpu/cpu_fused.cpp) and, later, the CUDA kernels, so that both
// backends compute every element with the same formula and the CPU tests cover both. The
// derivations are in docs/math.md; each formula here names the section it implements.
//
// Two families:
//   - Pointwise functors: value(a, b, c, d, param) and grad<k>(a, b, c, d, param) = ∂value/∂k.
//     Unused inputs are passed as 0. Every function is branch-free apart from selects. The CPU
//     runs each kind through its vector twin in src/cpu/simd_kernels.cpp (same operations, same
//     order), which tests/test_simd.cpp checks against these functors.
//   - Softmax-row helpers: the per-element steps of the row algorithms (max, Σ, then one
//     formula per element), written once here and used by both the CPU rows and CUDA blocks.
//
// 0·log 0 = 0 everywhere: a term p·log(p/q) is taken as 0 where p = 0, and so is its gradient
// (PyTorch's convention for kl_div's target gradient, where the true derivative is -inf).
#pragma once

#include <cmath>

#include "elementwise_math.h"
#include "row_math.h"

namespace tg::kernels {

using std::expm1;

// ---------------------------------------------------------------- helpers

// p·(log p - log_q), taken as 0 where p = 0 (the limit of p·log p). log_q may be -inf where
// p > 0 (then the term is +inf, as it should be).
template <class T>
TG_HOST_DEVICE inline T p_log_ratio(T p, T log_p, T log_q) {
  T term = p * (log_p - log_q);
  return p > T(0) ? term : T(0);
}

// The largest log-ratio log(π_new/π_old) that ppo_clip exponentiates: e^20 ≈ 4.9e8 keeps r·A
// and its mean finite in float32 for any sensible advantage. Beyond it the ratio is held at e^20
// (value and gradient of that clamped function: the gradient there is 0). See docs/math.md.
constexpr double kPpoMaxLogRatio = 20.0;

// ---------------------------------------------------------------- pointwise functors
// math.md §bce_with_logits.
// ℓ = max(x, 0) - x·y + log(1 + e^-|x|)      ∂ℓ/∂x = σ(x) - y      ∂ℓ/∂y = -x
// Never overflows: e^-|x| ≤ 1. σ(x) from the same e^-|x|: 1/(1+e) for x ≥ 0, e/(1+e) below.
struct BceWithLogits {
  static constexpr int arity = 2;
  template <class T> TG_HOST_DEVICE static T value(T x, T y, T, T, T) {
    T relu = x > T(0) ? x : T(0);
    return relu - x * y + log1p(exp(-abs(x)));
  }
  template <int k, class T> TG_HOST_DEVICE static T grad(T x, T y, T, T, T) {
    if constexpr (k == 0) {
      T e = exp(-abs(x));
      T sigmoid = (x >= T(0) ? T(1) : e) / (T(1) + e);
      return sigmoid - y;
    } else {
      return -x;
    }
  }
};

// math.md §kl_div.   inputs (log q, p)
// ℓ = p·(log p - log q)      ∂ℓ/∂log q = -p      ∂ℓ/∂p = log p + 1 - log q      (0 where p = 0)
struct KlDiv {
  static constexpr int arity = 2;
  template <class T> TG_HOST_DEVICE static T value(T log_q, T p, T, T, T) {
    return p_log_ratio(p, log(p), log_q);
  }
  template <int k, class T> TG_HOST_DEVICE static T grad(T log_q, T p, T, T, T) {
    if constexpr (k == 0) {
      return -p;
    } else {
      T slope = log(p) + T(1) - log_q;
      return p > T(0) ? slope : T(0);
    }
  }
};

// math.md §kl_div.   inputs (log q, log p)
// ℓ = e^log p·(log p - log q)    ∂ℓ/∂log q = -p    ∂ℓ/∂log p = p·(log p - log q + 1)   (0 where p = 0)
struct KlDivLogTarget {
  static constexpr int arity = 2;
  template <class T> TG_HOST_DEVICE static T value(T log_q, T log_p, T, T, T) {
    return p_log_ratio(exp(log_p), log_p, log_q);
  }
  template <int k, class T> TG_HOST_DEVICE static T grad(T log_q, T log_p, T, T, T) {
    T p = exp(log_p);
    if constexpr (k == 0) {
      return -p;
    } else {
      T slope = p * (log_p - log_q + T(1));
      return p > T(0) ? slope : T(0);
    }
  }
};

// math.md §gaussian_kl_standard.   inputs (μ, logvar)
// ℓ = ½(μ² + e^v - v - 1) = ½(μ² + expm1(v) - v)      ∂ℓ/∂μ = μ      ∂ℓ/∂v = ½·expm1(v)
// expm1 keeps the digits of e^v - 1 near v = 0, where the VAE's posteriors start.
struct GaussianKlStandard {
  static constexpr int arity = 2;
  template <class T> TG_HOST_DEVICE static T value(T mu, T logvar, T, T, T) {
    return T(0.5) * (mu * mu + expm1(logvar) - logvar);
  }
  template <int k, class T> TG_HOST_DEVICE static T grad(T mu, T logvar, T, T, T) {
    if constexpr (k == 0) return mu;
    else return T(0.5) * expm1(logvar);
  }
};

// math.md §gaussian_kl.   inputs (μ1, v1, μ2, v2), KL(N(μ1, e^v1) ‖ N(μ2, e^v2)); δ = v1 - v2
// ℓ = ½(expm1(δ) - δ + (μ1 - μ2)²·e^-v2)
// ∂ℓ/∂μ1 = (μ1 - μ2)·e^-v2 = -∂ℓ/∂μ2      ∂ℓ/∂v1 = ½·expm1(δ)
// ∂ℓ/∂v2 = -½(expm1(δ) + (μ1 - μ2)²·e^-v2)
struct GaussianKl {
  static constexpr int arity = 4;
  template <class T> TG_HOST_DEVICE static T value(T mu1, T logvar1, T mu2, T logvar2, T) {
    T delta = logvar1 - logvar2, diff = mu1 - mu2;
    return T(0.5) * (expm1(delta) - delta + diff * diff * exp(-logvar2));
  }
  template <int k, class T> TG_HOST_DEVICE static T grad(T mu1, T logvar1, T mu2, T logvar2, T) {
    T diff = mu1 - mu2;
    if constexpr (k == 0) return diff * exp(-logvar2);
    else if constexpr (k == 1) return T(0.5) * expm1(logvar1 - logvar2);
    else if constexpr (k == 2) return -diff * exp(-logvar2);
    else return T(-0.5) * (expm1(logvar1 - logvar2) + diff * diff * exp(-logvar2));
  }
};

// math.md §mse.   ℓ = (a - b)²      ∂ℓ/∂a = 2(a - b) = -∂ℓ/∂b
struct SquaredError {
  static constexpr int arity = 2;
  template <class T> TG_HOST_DEVICE static T value(T a, T b, T, T, T) { return (a - b) * (a - b); }
  template <int k, class T> TG_HOST_DEVICE static T grad(T a, T b, T, T, T) {
    return k == 0 ? T(2) * (a - b) : T(-2) * (a - b);
  }
};

// math.md §entropy.   ℓ = -p·log p      ∂ℓ/∂p = -(log p + 1)      (0 where p = 0)
struct EntropyTerm {
  static constexpr int arity = 1;
  template <class T> TG_HOST_DEVICE static T value(T p, T, T, T, T) {
    return -p_log_ratio(p, log(p), T(0));
  }
  template <int, class T> TG_HOST_DEVICE static T grad(T p, T, T, T, T) {
    T slope = -(log(p) + T(1));
    return p > T(0) ? slope : T(0);
  }
};

// math.md §js_divergence.   m = (p + q)/2
// ℓ = ½·p·log(p/m) + ½·q·log(q/m)      ∂ℓ/∂p = ½·log(p/m)      ∂ℓ/∂q = ½·log(q/m)   (0 where 0)
struct JsDivergenceTerm {
  static constexpr int arity = 2;
  template <class T> TG_HOST_DEVICE static T value(T p, T q, T, T, T) {
    T log_m = log(T(0.5) * (p + q));
    return T(0.5) * (p_log_ratio(p, log(p), log_m) + p_log_ratio(q, log(q), log_m));
  }
  template <int k, class T> TG_HOST_DEVICE static T grad(T p, T q, T, T, T) {
    T own = k == 0 ? p : q;
    T slope = T(0.5) * (log(own) - log(T(0.5) * (p + q)));
    return own > T(0) ? slope : T(0);
  }
};

// math.md §total_variation.   ℓ = ½|p - q|      ∂ℓ/∂p = ½·sign(p - q) = -∂ℓ/∂q   (0 at p = q)
struct TotalVariationTerm {
  static constexpr int arity = 2;
  template <class T> TG_HOST_DEVICE static T value(T p, T q, T, T, T) { return T(0.5) * abs(p - q); }
  template <int k, class T> TG_HOST_DEVICE static T grad(T p, T q, T, T, T) {
    T half_sign = p > q ? T(0.5) : (p < q ? T(-0.5) : T(0));
    return k == 0 ? half_sign : -half_sign;
  }
};

// math.md §ppo_clip_loss.   inputs (log π_new, log π_old, A), param ε
// r = e^(log π_new - log π_old)      ℓ = -min(r·A, clamp(r, 1-ε, 1+ε)·A)
// ∂ℓ/∂log π_new = -r·A where min picks r·A, else 0 (the clip blocks: A > 0 and r > 1+ε, or
// A < 0 and r < 1-ε)      ∂ℓ/∂log π_old = -∂ℓ/∂log π_new      ∂ℓ/∂A = -(the ratio min picked)
// The log-ratio is clamped at kPpoMaxLogRatio before exp, so r·A stays finite.
struct PpoClip {
  static constexpr int arity = 3;
  template <class T> struct Parts {
    T ratio, clipped;
    bool unclipped;  // min(r·A, clipped·A) is r·A (ties count as unclipped: both are equal)
    bool live;       // the log-ratio is below the clamp, so the ratio depends on it
  };
  template <class T> TG_HOST_DEVICE static Parts<T> parts(T log_new, T log_old, T advantage, T eps) {
    T log_ratio = log_new - log_old;
    T limit = T(kPpoMaxLogRatio);
    T ratio = exp(log_ratio < limit ? log_ratio : limit);
    T low = T(1) - eps, high = T(1) + eps;
    T clipped = ratio < low ? low : (ratio > high ? high : ratio);
    return {ratio, clipped, ratio * advantage <= clipped * advantage, log_ratio < limit};
  }
  template <class T> TG_HOST_DEVICE static T value(T log_new, T log_old, T advantage, T, T eps) {
    Parts<T> s = parts(log_new, log_old, advantage, eps);
    return -(s.unclipped ? s.ratio : s.clipped) * advantage;
  }
  template <int k, class T>
  TG_HOST_DEVICE static T grad(T log_new, T log_old, T advantage, T, T eps) {
    Parts<T> s = parts(log_new, log_old, advantage, eps);
    T slope = (s.unclipped && s.live) ? -s.ratio * advantage : T(0);
    if constexpr (k == 0) return slope;
    else if constexpr (k == 1) return -slope;
    else return -(s.unclipped ? s.ratio : s.clipped);
  }
};

// math.md §reparameterize.   inputs (μ, v, ε)
// z = μ + e^(v/2)·ε      ∂z/∂μ = 1      ∂z/∂v = ½·e^(v/2)·ε      ∂z/∂ε = e^(v/2) (never used)
struct Reparameterize {
  static constexpr int arity = 3;
  template <class T> TG_HOST_DEVICE static T value(T mu, T logvar, T eps, T, T) {
    return mu + exp(T(0.5) * logvar) * eps;
  }
  template <int k, class T> TG_HOST_DEVICE static T grad(T, T logvar, T eps, T, T) {
    if constexpr (k == 0) return T(1);
    else if constexpr (k == 1) return T(0.5) * exp(T(0.5) * logvar) * eps;
    else return exp(T(0.5) * logvar);
  }
};

// ---------------------------------------------------------------- softmax rows
// A row is one distribution x_0..x_{n-1}, divided by its temperature T (inv_t = 1/T). Every row
// algorithm first finds m = max_j x_j and s = Σ_j e^((x_j - m)/T) (row_math.h says how parts of a
// row combine and what the special rows give); then, with log s:
//   log_softmax_j = (x_j - m)/T - log s        softmax_j = e^((x_j - m)/T) / s
// Working with x_j - m (never x_j/T - lse) keeps float32 exact for logits of 1e4 at T = 0.05.

// 1/T of distribution d: the op's scalar T, or one from a device array of temperatures (one per
// distribution, or a single one for all).
template <class T>
TG_HOST_DEVICE inline T inverse_temperature(double temperature, const T* temperatures,
                                            bool single_temperature, int64_t d) {
  if (!temperatures) return static_cast<T>(1.0 / temperature);
  return T(1) / temperatures[single_temperature ? 0 : d];
}

// The statistics of the uniform distribution over n classes (KL to uniform, entropy_logits):
// every log q_j = 0 - log n.
template <class T> TG_HOST_DEVICE inline RowStats<T> uniform_row_stats(int64_t n) {
  return {T(0), static_cast<T>(log(static_cast<double>(n)))};
}

// log p_j from a row's statistics.
template <class T> TG_HOST_DEVICE inline T log_probability(T x, RowStats<T> stats, T inv_t) {
  return shifted(x, stats.max, inv_t) - stats.log_sum;
}

// math.md §softmax: grad_x = y·(grad_y - Σ grad_y·y)/T, with dot = Σ_j grad_y_j·y_j.
template <class T> TG_HOST_DEVICE inline T softmax_grad(T grad_y, T y, T dot, T inv_t) {
  return y * (grad_y - dot) * inv_t;
}
// math.md §log_softmax: grad_x = (grad_y - e^y·Σ grad_y)/T, with sum = Σ_j grad_y_j.
template <class T> TG_HOST_DEVICE inline T log_softmax_grad(T grad_y, T y, T sum, T inv_t) {
  return (grad_y - exp(y) * sum) * inv_t;
}
// math.md §kl_divergence_logits: ∂KL/∂p_logits_j = P_j·(log P_j - log Q_j - KL)/T (0 where P_j = 0).
template <class T> TG_HOST_DEVICE inline T kl_logits_grad_p(T p, T log_p, T log_q, T kl, T inv_t) {
  T slope = p * (log_p - log_q - kl) * inv_t;
  return p > T(0) ? slope : T(0);
}
// ∂KL/∂q_logits_j = (Q_j - P_j)/T.
template <class T> TG_HOST_DEVICE inline T kl_logits_grad_q(T p, T q, T inv_t) {
  return (q - p) * inv_t;
}
// math.md §cross_entropy: the smoothed target of class j, t'_j = (1-ε)·t_j + ε/n.
template <class T> TG_HOST_DEVICE inline T smoothed_target(T target, T smoothing, T inv_n) {
  return (T(1) - smoothing) * target + smoothing * inv_n;
}
// The smoothed target of class j against a class label: t'_j = (1-ε)·[j = label] + ε/n.
template <class T> TG_HOST_DEVICE inline T label_target(bool is_label, T smoothing, T inv_n) {
  return smoothed_target(is_label ? T(1) : T(0), smoothing, inv_n);
}
// One term t'_j·log p_j of the cross-entropy against probabilities: 0 where t'_j = 0, so that a
// class with probability 0 (log p_j = -inf) adds nothing instead of 0·(-inf) = NaN.
template <class T> TG_HOST_DEVICE inline T weighted_log_probability(T weight, T log_p) {
  T term = weight * log_p;
  return weight != T(0) ? term : T(0);
}
// The loss of a row against a class label, from log p_label and Σ_j log p_j:
// -(1-ε)·log p_label - (ε/n)·Σ_j log p_j. The Σ counts only when ε > 0: a -inf logit elsewhere
// would otherwise turn 0·(-inf) into NaN.
template <class T>
TG_HOST_DEVICE inline T label_cross_entropy(T log_p_label, T sum_log_p, T smoothing, T inv_n) {
  T value = -(T(1) - smoothing) * log_p_label;
  return smoothing > T(0) ? value - smoothing * inv_n * sum_log_p : value;
}
// ∂CE/∂logits_j = softmax_j·Σ t' - t'_j.
template <class T> TG_HOST_DEVICE inline T cross_entropy_grad(T softmax, T target, T target_sum) {
  return softmax * target_sum - target;
}

}  // namespace tg::kernels
