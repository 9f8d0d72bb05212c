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

using std::abs;
using std::exp;
using std::log;
using std::log1p;
using std::pow;
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
