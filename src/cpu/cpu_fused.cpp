// src/cpu/cpu_fused.cpp — the fused primitives of functional.h on the CPU: loops around the
// shared per-element math of src/kernels/fused_math.h.
//
// Pointwise kernels are one pass (`#pragma omp simd`, exp/log through libmvec). Softmax-family
// kernels walk one distribution (row) at a time: a max pass, a Σ e^x pass and a write pass; a
// row of the sizes that matter (10 to a few thousand classes) stays in L1 between the passes,
// so each reads its input from memory once.
#include <cmath>
#include <limits>
#include <type_traits>

#include "../kernels/fused_math.h"
#include "cpu_backend.h"
#include "vector_math.h"

namespace tg {

namespace k = kernels;

namespace {

// ---------------------------------------------------------------- pointwise

// The kind's inputs at element i; inputs the kind does not take read as 0 (and are never loaded).
template <class F, class T>
struct Operands {
  const T *a, *b, *c, *d;
  explicit Operands(const Backend::PointwiseInputs& in)
      : a(static_cast<const T*>(in.data[0])), b(static_cast<const T*>(in.data[1])),
        c(static_cast<const T*>(in.data[2])), d(static_cast<const T*>(in.data[3])) {}
  T A(int64_t i) const { return a[i]; }
  T B(int64_t i) const {
    if constexpr (F::arity > 1) return b[i];
    else return T(0);
  }
  T C(int64_t i) const {
    if constexpr (F::arity > 2) return c[i];
    else return T(0);
  }
  T D(int64_t i) const {
    if constexpr (F::arity > 3) return d[i];
    else return T(0);
  }
};

template <class F, class T>
void pointwise_rows(const Backend::PointwiseInputs& inputs, T* out, int64_t n, T param,
                       bool sum, double scale) {
  Operands<F, T> in(inputs);
  if (!sum) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = F::value(in.A(i), in.B(i), in.C(i), in.D(i), param);
    return;
  }
  double total = 0;  // a whole batch of float terms: accumulate in double
#pragma omp simd reduction(+ : total)
  for (int64_t i = 0; i < n; ++i)
    total += static_cast<double>(F::value(in.A(i), in.B(i), in.C(i), in.D(i), param));
  out[0] = static_cast<T>(total * scale);
}

template <class F, int K, class T>
void pointwise_grad(const T* grad, bool grad_is_scalar, T scale, const Operands<F, T>& in,
                    T* out, int64_t n, T param) {
  if (grad_is_scalar) {
    const T g = grad[0] * scale;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i)
      out[i] = g * F::template grad<K>(in.A(i), in.B(i), in.C(i), in.D(i), param);
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < n; ++i)
    out[i] = grad[i] * scale * F::template grad<K>(in.A(i), in.B(i), in.C(i), in.D(i), param);
}

template <class F, class T>
void pointwise_grad_rows(int input, const T* grad, bool grad_is_scalar, T scale,
                        const Backend::PointwiseInputs& inputs, T* out, int64_t n, T param) {
  Operands<F, T> in(inputs);
  check(input >= 0 && input < F::arity, "pointwise_backward", "input ", input,
        " out of range for a kind with ", F::arity, " inputs");
  if (input == 0) return pointwise_grad<F, 0>(grad, grad_is_scalar, scale, in, out, n, param);
  if constexpr (F::arity > 1)
    if (input == 1) return pointwise_grad<F, 1>(grad, grad_is_scalar, scale, in, out, n, param);
  if constexpr (F::arity > 2)
    if (input == 2) return pointwise_grad<F, 2>(grad, grad_is_scalar, scale, in, out, n, param);
  if constexpr (F::arity > 3)
    if (input == 3) return pointwise_grad<F, 3>(grad, grad_is_scalar, scale, in, out, n, param);
}

// Calls f(Functor{}) for a Pointwise kind.
template <class Fn>
void dispatch_pointwise(Backend::Pointwise kind, Fn&& f) {
  using P = Backend::Pointwise;
  switch (kind) {
    case P::bce_with_logits: return f(k::BceWithLogits{});
    case P::kl_div: return f(k::KlDiv{});
    case P::kl_div_log_target: return f(k::KlDivLogTarget{});
    case P::gaussian_kl_standard: return f(k::GaussianKlStandard{});
    case P::gaussian_kl: return f(k::GaussianKl{});
    case P::squared_error: return f(k::SquaredError{});
    case P::entropy: return f(k::EntropyTerm{});
    case P::js_divergence: return f(k::JsDivergenceTerm{});
    case P::total_variation: return f(k::TotalVariationTerm{});
    case P::ppo_clip: return f(k::PpoClip{});
    case P::reparameterize: return f(k::Reparameterize{});
  }
  fail("pointwise", "unknown kind ", static_cast<int>(kind));
}

// ---------------------------------------------------------------- softmax rows

using Contiguous = std::integral_constant<int64_t, 1>;

// Calls row(offset, stride, d) for each distribution d of the layout: its elements are
// x[offset + j*stride], j < n. Contiguous rows (inner == 1) get a compile-time stride of 1.
template <class Row>
void for_each_distribution(const Backend::SoftmaxLayout& layout, Row row) {
  const int64_t n = layout.n, inner = layout.inner;
  if (inner == 1) {
    for (int64_t o = 0; o < layout.outer; ++o) row(o * n, Contiguous{}, o);
    return;
  }
  for (int64_t o = 0; o < layout.outer; ++o)
    for (int64_t i = 0; i < inner; ++i) row(o * n * inner + i, inner, o * inner + i);
}

// 1/T of distribution d.
template <class T>
T inverse_temperature(const Backend::SoftmaxLayout& layout, int64_t d) {
  if (!layout.temperatures) return static_cast<T>(1.0 / layout.temperature);
  const T* t = static_cast<const T*>(layout.temperatures);
  return T(1) / t[layout.single_temperature ? 0 : d];
}

// m = max_j x_j and log s, s = Σ_j e^((x_j - m)/T). A row of all -inf is the zero distribution:
// m = 0 and log s = +inf, so every (x_j - m)/T - log s is -inf, and every probability 0.
template <class T>
struct RowStats {
  T max, log_sum;
};

template <class T, class S>
RowStats<T> row_stats(const T* x, int64_t n, S stride, T inv_t) {
  constexpr T inf = std::numeric_limits<T>::infinity();
  T m = -inf;
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < n; ++j) m = x[j * stride] > m ? x[j * stride] : m;
  if (m == -inf) return {T(0), inf};
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) s += std::exp(k::shifted(x[j * stride], m, inv_t));
  return {m, std::log(s)};
}

// ---------------------------------------------------------------- softmax / log_softmax

template <class T>
void softmax_rows(Backend::SoftmaxKind kind, const T* x, T* y,
                  const Backend::SoftmaxLayout& layout) {
  const int64_t n = layout.n;
  for_each_distribution(layout, [&](int64_t offset, auto stride, int64_t d) {
    const T* xr = x + offset;
    T* yr = y + offset;
    const T inv_t = inverse_temperature<T>(layout, d);
    if (kind == Backend::SoftmaxKind::log_softmax) {
      RowStats<T> st = row_stats(xr, n, stride, inv_t);
#pragma omp simd
      for (int64_t j = 0; j < n; ++j)
        yr[j * stride] = k::shifted(xr[j * stride], st.max, inv_t) - st.log_sum;
      return;
    }
    // softmax: keep each e^((x - m)/T) in y, then scale by 1/Σ (one exp per element).
    constexpr T inf = std::numeric_limits<T>::infinity();
    T m = -inf;
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < n; ++j) m = xr[j * stride] > m ? xr[j * stride] : m;
    if (m == -inf) {  // all -inf: the zero distribution, not NaN
      for (int64_t j = 0; j < n; ++j) yr[j * stride] = T(0);
      return;
    }
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < n; ++j) {
      T e = std::exp(k::shifted(xr[j * stride], m, inv_t));
      yr[j * stride] = e;
      s += e;
    }
    const T r = T(1) / s;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) yr[j * stride] *= r;
  });
}

template <class T>
void softmax_backward_rows(Backend::SoftmaxKind kind, const T* grad_y, const T* y, T* grad_x,
                           const Backend::SoftmaxLayout& layout) {
  const int64_t n = layout.n;
  for_each_distribution(layout, [&](int64_t offset, auto stride, int64_t d) {
    const T* g = grad_y + offset;
    const T* yr = y + offset;
    T* gx = grad_x + offset;
    const T inv_t = inverse_temperature<T>(layout, d);
    if (kind == Backend::SoftmaxKind::log_softmax) {
      T sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < n; ++j) sum += g[j * stride];
#pragma omp simd
      for (int64_t j = 0; j < n; ++j)
        gx[j * stride] = k::log_softmax_grad(g[j * stride], yr[j * stride], sum, inv_t);
      return;
    }
    T dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < n; ++j) dot += g[j * stride] * yr[j * stride];
#pragma omp simd
    for (int64_t j = 0; j < n; ++j)
      gx[j * stride] = k::softmax_grad(g[j * stride], yr[j * stride], dot, inv_t);
  });
}

// ---------------------------------------------------------------- KL from logits

// stats per distribution: (max_p, log Σ_p, max_q, log Σ_q); a uniform Q has (0, log n).
template <class T>
void kl_logits_rows(const T* p_logits, const T* q_logits, T* kl, T* stats,
                    const Backend::SoftmaxLayout& layout) {
  const int64_t n = layout.n;
  for_each_distribution(layout, [&](int64_t offset, auto stride, int64_t d) {
    const T* a = p_logits + offset;
    const T inv_t = inverse_temperature<T>(layout, d);
    RowStats<T> sp = row_stats(a, n, stride, inv_t);
    RowStats<T> sq = {T(0), static_cast<T>(std::log(static_cast<double>(n)))};
    T total = 0;
    if (q_logits) {
      const T* b = q_logits + offset;
      sq = row_stats(b, n, stride, inv_t);
#pragma omp simd reduction(+ : total)
      for (int64_t j = 0; j < n; ++j) {
        T log_p = k::shifted(a[j * stride], sp.max, inv_t) - sp.log_sum;
        T log_q = k::shifted(b[j * stride], sq.max, inv_t) - sq.log_sum;
        total += k::p_log_ratio(std::exp(log_p), log_p, log_q);
      }
    } else {
      const T log_q = -sq.log_sum;
#pragma omp simd reduction(+ : total)
      for (int64_t j = 0; j < n; ++j) {
        T log_p = k::shifted(a[j * stride], sp.max, inv_t) - sp.log_sum;
        total += k::p_log_ratio(std::exp(log_p), log_p, log_q);
      }
    }
    kl[d] = total;
    T* s = stats + 4 * d;
    s[0] = sp.max, s[1] = sp.log_sum, s[2] = sq.max, s[3] = sq.log_sum;
  });
}

template <class T>
void kl_logits_backward_rows(const T* grad_kl, const T* p_logits, const T* q_logits,
                             const T* kl, const T* stats, T* grad_p, T* grad_q,
                             const Backend::SoftmaxLayout& layout) {
  const int64_t n = layout.n;
  for_each_distribution(layout, [&](int64_t offset, auto stride, int64_t d) {
    const T* a = p_logits + offset;
    const T* b = q_logits ? q_logits + offset : nullptr;
    const T inv_t = inverse_temperature<T>(layout, d);
    const T g = grad_kl[d], divergence = kl[d];
    const T* s = stats + 4 * d;
    const T max_p = s[0], log_sum_p = s[1], max_q = s[2], log_sum_q = s[3];
    if (grad_p) {
      T* gp = grad_p + offset;
      if (b) {
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          T log_p = k::shifted(a[j * stride], max_p, inv_t) - log_sum_p;
          T log_q = k::shifted(b[j * stride], max_q, inv_t) - log_sum_q;
          gp[j * stride] = g * k::kl_logits_grad_p(std::exp(log_p), log_p, log_q, divergence, inv_t);
        }
      } else {
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          T log_p = k::shifted(a[j * stride], max_p, inv_t) - log_sum_p;
          gp[j * stride] = g * k::kl_logits_grad_p(std::exp(log_p), log_p, -log_sum_q, divergence, inv_t);
        }
      }
    }
    if (grad_q && b) {
      T* gq = grad_q + offset;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        T p = std::exp(k::shifted(a[j * stride], max_p, inv_t) - log_sum_p);
        T q = std::exp(k::shifted(b[j * stride], max_q, inv_t) - log_sum_q);
        gq[j * stride] = g * k::kl_logits_grad_q(p, q, inv_t);
      }
    }
  });
}

// ---------------------------------------------------------------- cross-entropy

// stats per distribution: (max, log Σ).
template <class T>
void cross_entropy_rows(const T* logits, const int64_t* labels, const T* target, T smoothing,
                        T* loss, T* stats, const Backend::SoftmaxLayout& layout) {
  const int64_t n = layout.n;
  const T inv_n = T(1) / static_cast<T>(n);
  for_each_distribution(layout, [&](int64_t offset, auto stride, int64_t d) {
    const T* x = logits + offset;
    const T inv_t = inverse_temperature<T>(layout, d);
    RowStats<T> st = row_stats(x, n, stride, inv_t);
    T value;
    if (labels) {
      // -[(1-ε)·log p_label + (ε/n)·Σ_j log p_j]; the Σ only when ε > 0 (a -inf logit would
      // otherwise turn 0·(-inf) into NaN).
      T picked = k::shifted(x[labels[d] * stride], st.max, inv_t) - st.log_sum;
      value = -(T(1) - smoothing) * picked;
      if (smoothing > T(0)) {
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < n; ++j) sum += k::shifted(x[j * stride], st.max, inv_t) - st.log_sum;
        value -= smoothing * inv_n * sum;
      }
    } else {
      const T* t = target + offset;
      T sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < n; ++j) {
        T weight = k::smoothed_target(t[j * stride], smoothing, inv_n);
        T term = weight * (k::shifted(x[j * stride], st.max, inv_t) - st.log_sum);
        sum += weight != T(0) ? term : T(0);
      }
      value = -sum;
    }
    loss[d] = value;
    stats[2 * d] = st.max;
    stats[2 * d + 1] = st.log_sum;
  });
}

template <class T>
void cross_entropy_backward_rows(const T* grad_loss, const T* logits, const int64_t* labels,
                                 const T* target, T smoothing, const T* stats, T* grad_logits,
                                 T* grad_target, const Backend::SoftmaxLayout& layout) {
  const int64_t n = layout.n;
  const T inv_n = T(1) / static_cast<T>(n);
  for_each_distribution(layout, [&](int64_t offset, auto stride, int64_t d) {
    const T* x = logits + offset;
    const T inv_t = inverse_temperature<T>(layout, d);
    const T g = grad_loss[d], max = stats[2 * d], log_sum = stats[2 * d + 1];
    if (grad_logits) {
      T* gx = grad_logits + offset;
      if (labels) {
        const int64_t label = labels[d];
        const T off = k::smoothed_target(T(0), smoothing, inv_n);
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          T p = std::exp(k::shifted(x[j * stride], max, inv_t) - log_sum);
          gx[j * stride] = g * inv_t * k::cross_entropy_grad(p, off, T(1));
        }
        gx[label * stride] -= g * inv_t * (T(1) - smoothing);
      } else {
        const T* t = target + offset;
        T target_sum = 0;
#pragma omp simd reduction(+ : target_sum)
        for (int64_t j = 0; j < n; ++j) target_sum += k::smoothed_target(t[j * stride], smoothing, inv_n);
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          T p = std::exp(k::shifted(x[j * stride], max, inv_t) - log_sum);
          T weight = k::smoothed_target(t[j * stride], smoothing, inv_n);
          gx[j * stride] = g * inv_t * k::cross_entropy_grad(p, weight, target_sum);
        }
      }
    }
    if (grad_target && !labels) {
      T* gt = grad_target + offset;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j)
        gt[j * stride] = -g * (T(1) - smoothing) * (k::shifted(x[j * stride], max, inv_t) - log_sum);
    }
  });
}

}  // namespace

// ---------------------------------------------------------------- the Backend entry points

void CpuBackend::pointwise(Pointwise kind, DType dtype, const PointwiseInputs& inputs, void* out,
                           int64_t n, double param, bool sum, double scale) {
  dispatch_floating(dtype, "pointwise", [&](auto zero) {
    using T = decltype(zero);
    dispatch_pointwise(kind, [&](auto functor) {
      using F = decltype(functor);
      pointwise_rows<F, T>(inputs, static_cast<T*>(out), n, static_cast<T>(param), sum, scale);
    });
  });
}

void CpuBackend::pointwise_backward(Pointwise kind, DType dtype, int input, const void* grad,
                                    bool grad_is_scalar, double scale,
                                    const PointwiseInputs& inputs, void* grad_input, int64_t n,
                                    double param) {
  dispatch_floating(dtype, "pointwise_backward", [&](auto zero) {
    using T = decltype(zero);
    dispatch_pointwise(kind, [&](auto functor) {
      using F = decltype(functor);
      pointwise_grad_rows<F, T>(input, static_cast<const T*>(grad), grad_is_scalar,
                               static_cast<T>(scale), inputs, static_cast<T*>(grad_input), n,
                               static_cast<T>(param));
    });
  });
}

void CpuBackend::softmax(SoftmaxKind kind, DType dtype, const void* x, void* y,
                         const SoftmaxLayout& layout) {
  dispatch_floating(dtype, "softmax", [&](auto zero) {
    using T = decltype(zero);
    softmax_rows(kind, static_cast<const T*>(x), static_cast<T*>(y), layout);
  });
}

void CpuBackend::softmax_backward(SoftmaxKind kind, DType dtype, const void* grad_y,
                                  const void* y, void* grad_x, const SoftmaxLayout& layout) {
  dispatch_floating(dtype, "softmax_backward", [&](auto zero) {
    using T = decltype(zero);
    softmax_backward_rows(kind, static_cast<const T*>(grad_y), static_cast<const T*>(y),
                          static_cast<T*>(grad_x), layout);
  });
}

void CpuBackend::kl_logits(DType dtype, const void* p_logits, const void* q_logits, void* kl,
                           void* stats, const SoftmaxLayout& layout) {
  dispatch_floating(dtype, "kl_logits", [&](auto zero) {
    using T = decltype(zero);
    kl_logits_rows(static_cast<const T*>(p_logits), static_cast<const T*>(q_logits),
                   static_cast<T*>(kl), static_cast<T*>(stats), layout);
  });
}

void CpuBackend::kl_logits_backward(DType dtype, const void* grad_kl, const void* p_logits,
                                    const void* q_logits, const void* kl, const void* stats,
                                    void* grad_p, void* grad_q, const SoftmaxLayout& layout) {
  dispatch_floating(dtype, "kl_logits_backward", [&](auto zero) {
    using T = decltype(zero);
    kl_logits_backward_rows(static_cast<const T*>(grad_kl), static_cast<const T*>(p_logits),
                            static_cast<const T*>(q_logits), static_cast<const T*>(kl),
                            static_cast<const T*>(stats), static_cast<T*>(grad_p),
                            static_cast<T*>(grad_q), layout);
  });
}

void CpuBackend::cross_entropy(DType dtype, const void* logits, const int64_t* labels,
                               const void* target, double smoothing, void* loss, void* stats,
                               const SoftmaxLayout& layout) {
  dispatch_floating(dtype, "cross_entropy", [&](auto zero) {
    using T = decltype(zero);
    cross_entropy_rows(static_cast<const T*>(logits), labels, static_cast<const T*>(target),
                       static_cast<T>(smoothing), static_cast<T*>(loss), static_cast<T*>(stats),
                       layout);
  });
}

void CpuBackend::cross_entropy_backward(DType dtype, const void* grad_loss, const void* logits,
                                        const int64_t* labels, const void* target,
                                        double smoothing, const void* stats, void* grad_logits,
                                        void* grad_target, const SoftmaxLayout& layout) {
  dispatch_floating(dtype, "cross_entropy_backward", [&](auto zero) {
    using T = decltype(zero);
    cross_entropy_backward_rows(static_cast<const T*>(grad_loss), static_cast<const T*>(logits),
                                labels, static_cast<const T*>(target), static_cast<T>(smoothing),
                                static_cast<const T*>(stats), static_cast<T*>(grad_logits),
                                static_cast<T*>(grad_target), layout);
  });
}

}  // namespace tg
