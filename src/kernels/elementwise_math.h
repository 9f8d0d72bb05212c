// src/kernels/elementwise_math.h — the per-element math of every elementwise kernel.
//
// Each function is a small functor usable on the host and (compiled by nvcc) on the device, so
// the CPU backend's loops and the CUDA backend's kernels compute every element with the same
// formula, and the CPU tests cover the math of both. Keep them branch-light: the CPU loops that
// call them must vectorise.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#if defined(__CUDACC__)
#define TG_HOST_DEVICE __host__ __device__
#else
#define TG_HOST_DEVICE
#endif

namespace tg::kernels {

// ±inf and NaN for host and device code alike (std::numeric_limits is host-only under nvcc).
template <class T> TG_HOST_DEVICE constexpr T infinity() { return T(__builtin_huge_val()); }
template <class T> TG_HOST_DEVICE constexpr T quiet_nan() { return T(__builtin_nan("")); }
// The identities of max and min: -inf and +inf, or for i64 (which has no infinity) its extremes.
template <class T> TG_HOST_DEVICE constexpr T lowest_value() { return -infinity<T>(); }
template <> TG_HOST_DEVICE constexpr int64_t lowest_value<int64_t>() { return INT64_MIN; }
template <class T> TG_HOST_DEVICE constexpr T highest_value() { return infinity<T>(); }
template <> TG_HOST_DEVICE constexpr int64_t highest_value<int64_t>() { return INT64_MAX; }

using std::abs;
using std::cos;
using std::erf;
using std::exp;
using std::expm1;
using std::log;
using std::log1p;
using std::pow;
using std::sin;
using std::sqrt;
using std::tanh;

// ---------------------------------------------------------------- one input: y = f(x; a, b)
// a and b are the op's scalar parameters, converted to T once per kernel launch.

struct Neg        { template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const { return -x; } };
struct Exp        { template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const { return exp(x); } };
struct Log        { template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const { return log(x); } };
struct Log1p      { template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const { return log1p(x); } };
struct Sqrt       { template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const { return sqrt(x); } };
struct Abs        { template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const { return abs(x); } };
struct Sign {
  template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const {
    return static_cast<T>((x > T(0)) - (x < T(0)));
  }
};
struct Tanh       { template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const { return tanh(x); } };
// 1 / (1 + e^-x): for x -> -inf, e^-x -> inf and the quotient -> 0, never NaN.
struct Sigmoid {
  template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const { return T(1) / (T(1) + exp(-x)); }
};
// x > 0 ? x : 0, written so that NaN propagates (NaN > 0 is false, but NaN * 0 would hide it).
struct Relu       { template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const { return x < T(0) ? T(0) : x; } };
struct Square     { template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const { return x * x; } };
struct Reciprocal { template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const { return T(1) / x; } };
struct AddScalar  { template <class T> TG_HOST_DEVICE T operator()(T x, T a, T) const { return x + a; } };
struct MulScalar  { template <class T> TG_HOST_DEVICE T operator()(T x, T a, T) const { return x * a; } };
struct RsubScalar { template <class T> TG_HOST_DEVICE T operator()(T x, T a, T) const { return a - x; } };
struct PowScalar  { template <class T> TG_HOST_DEVICE T operator()(T x, T a, T) const { return pow(x, a); } };
struct Clamp {
  template <class T> TG_HOST_DEVICE T operator()(T x, T low, T high) const {
    T y = x < low ? low : x;
    return y > high ? high : y;
  }
};
struct InRange {
  template <class T> TG_HOST_DEVICE T operator()(T x, T low, T high) const {
    return (x >= low && x <= high) ? T(1) : T(0);
  }
};
// x - x is exactly 0 for every finite x, and NaN for NaN and ±inf; x != x holds only for NaN.
// Plain arithmetic and comparisons: the same text on the host and the device, and it vectorises.
struct IsFinite {
  template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const {
    return (x - x == T(0)) ? T(1) : T(0);
  }
};
struct IsNan {
  template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const { return (x != x) ? T(1) : T(0); }
};

// ---------------------------------------------------------------- activations
// PyTorch's formulas (torch.nn.functional); the derivations are in docs/math.md §activations.
// The constants: 1/√2, 1/√(2π), √(2/π) and the 0.044715 of GELU's tanh approximation.
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kGeluTanhCubic = 0.044715;

// x·Φ(x) = ½x(1 + erf(x/√2))
struct Gelu {
  template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const {
    return T(0.5) * x * (T(1) + erf(x * T(kInvSqrt2)));
  }
};
// ½x(1 + tanh(u)), u = √(2/π)(x + 0.044715x³)
struct GeluTanh {
  template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const {
    T u = T(kSqrt2OverPi) * (x + T(kGeluTanhCubic) * x * x * x);
    return T(0.5) * x * (T(1) + tanh(u));
  }
};
// x·σ(x) = x / (1 + e^-x): for x -> -inf the quotient is -0, never NaN.
struct Silu {
  template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const { return x / (T(1) + exp(-x)); }
};
// x > 0 ? x : slope·x (NaN fails x > 0 and stays NaN).
struct LeakyRelu {
  template <class T> TG_HOST_DEVICE T operator()(T x, T slope, T) const { return x > T(0) ? x : slope * x; }
};
// β·x > threshold ? x : log1p(e^(β·x)) / β. Above the threshold the two differ by less than
// e^-threshold (PyTorch's linear regime, threshold 20 by default).
struct Softplus {
  template <class T> TG_HOST_DEVICE T operator()(T x, T beta, T threshold) const {
    T z = beta * x;
    return z > threshold ? x : log1p(exp(z)) / beta;
  }
};
// x > 0 ? x : α·(e^x - 1), with expm1 for the digits near 0.
struct Elu {
  template <class T> TG_HOST_DEVICE T operator()(T x, T alpha, T) const { return x > T(0) ? x : alpha * expm1(x); }
};
struct Sin { template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const { return sin(x); } };
struct Cos { template <class T> TG_HOST_DEVICE T operator()(T x, T, T) const { return cos(x); } };

// The slopes f'(x) of the activations with parameters (the same a, b as their forward).
struct LeakyReluSlope {
  template <class T> TG_HOST_DEVICE T operator()(T x, T slope, T) const { return x > T(0) ? T(1) : slope; }
};
struct SoftplusSlope {
  template <class T> TG_HOST_DEVICE T operator()(T x, T beta, T threshold) const {
    T z = beta * x;
    return z > threshold ? T(1) : T(1) / (T(1) + exp(-z));
  }
};
struct EluSlope {
  template <class T> TG_HOST_DEVICE T operator()(T x, T alpha, T) const { return x > T(0) ? T(1) : alpha * exp(x); }
};

// ---------------------------------------------------------------- two inputs: out = f(a, b)

struct Add { template <class T> TG_HOST_DEVICE T operator()(T a, T b) const { return a + b; } };
struct Sub { template <class T> TG_HOST_DEVICE T operator()(T a, T b) const { return a - b; } };
struct Mul { template <class T> TG_HOST_DEVICE T operator()(T a, T b) const { return a * b; } };
struct Div { template <class T> TG_HOST_DEVICE T operator()(T a, T b) const { return a / b; } };
struct Pow { template <class T> TG_HOST_DEVICE T operator()(T a, T b) const { return pow(a, b); } };
// NaN in either input propagates (IEEE fmin/fmax would drop it).
struct Minimum {
  template <class T> TG_HOST_DEVICE T operator()(T a, T b) const { return (a < b || a != a) ? a : b; }
};
struct Maximum {
  template <class T> TG_HOST_DEVICE T operator()(T a, T b) const { return (a > b || a != a) ? a : b; }
};
struct Equal        { template <class T> TG_HOST_DEVICE T operator()(T a, T b) const { return a == b ? T(1) : T(0); } };
struct Less         { template <class T> TG_HOST_DEVICE T operator()(T a, T b) const { return a < b ? T(1) : T(0); } };
struct LessEqual    { template <class T> TG_HOST_DEVICE T operator()(T a, T b) const { return a <= b ? T(1) : T(0); } };
struct Greater      { template <class T> TG_HOST_DEVICE T operator()(T a, T b) const { return a > b ? T(1) : T(0); } };
struct GreaterEqual { template <class T> TG_HOST_DEVICE T operator()(T a, T b) const { return a >= b ? T(1) : T(0); } };

// Gradient helpers: f(grad, saved).
struct ReluBackward {
  template <class T> TG_HOST_DEVICE T operator()(T grad, T x) const { return x > T(0) ? grad : T(0); }
};
struct TanhBackward {
  template <class T> TG_HOST_DEVICE T operator()(T grad, T y) const { return grad * (T(1) - y * y); }
};
struct SigmoidBackward {
  template <class T> TG_HOST_DEVICE T operator()(T grad, T y) const { return grad * y * (T(1) - y); }
};
struct AbsBackward {
  template <class T> TG_HOST_DEVICE T operator()(T grad, T x) const {
    return x > T(0) ? grad : (x < T(0) ? -grad : T(0));
  }
};

// d/dx x·Φ(x) = Φ(x) + x·φ(x), φ(x) = e^(-x²/2)/√(2π)
struct GeluBackward {
  template <class T> TG_HOST_DEVICE T operator()(T grad, T x) const {
    T cdf = T(0.5) * (T(1) + erf(x * T(kInvSqrt2)));
    T pdf = T(kInvSqrt2Pi) * exp(T(-0.5) * x * x);
    return grad * (cdf + x * pdf);
  }
};
// d/dx ½x(1 + tanh u) = ½(1 + t) + ½x(1 - t²)·u',  t = tanh u,  u' = √(2/π)(1 + 3·0.044715x²)
struct GeluTanhBackward {
  template <class T> TG_HOST_DEVICE T operator()(T grad, T x) const {
    T x2 = x * x;
    T t = tanh(T(kSqrt2OverPi) * (x + T(kGeluTanhCubic) * x2 * x));
    T du = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluTanhCubic) * x2);
    return grad * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du);
  }
};
// d/dx x·σ(x) = σ(x)·(1 + x·(1 - σ(x)))
struct SiluBackward {
  template <class T> TG_HOST_DEVICE T operator()(T grad, T x) const {
    T s = T(1) / (T(1) + exp(-x));
    return grad * s * (T(1) + x * (T(1) - s));
  }
};

// ---------------------------------------------------------------- dtype conversion
// A C cast, except that float -> i64 is defined for every input: NaN gives 0 and values beyond
// int64 give its nearest end. (C++ leaves those casts undefined, and x86 and CUDA disagree.)
template <class To>
struct ConvertTo {
  template <class From> TG_HOST_DEVICE To operator()(From x) const {
    if constexpr (std::is_same<To, int64_t>::value && std::is_floating_point<From>::value) {
      const From two_to_63 = From(9223372036854775808.0);
      if (x != x) return 0;
      if (x >= two_to_63) return INT64_MAX;
      if (x < -two_to_63) return INT64_MIN;
    }
    return static_cast<To>(x);
  }
};

}  // namespace tg::kernels
