// src/cpu/simd_kernels.cpp — the vector kernels of simd.h, written once on Google Highway and
// compiled for every target by foreach_target.h (this file includes itself once per target).
//
// The vector math (exp, log, log1p, expm1, tanh) is Highway's hwy/contrib/math, whose functions
// are accurate on stated input ranges only; the wrappers below give every input outside them
// the value glibc gives (NaN, ±inf, 0, -1). Accuracy against the correctly rounded result, as
// hwy/contrib/math documents it (float32 and float64 alike):
//   exp    1 ulp        log    4 ulp        log1p  2 ulp (on [0, max]; (-1, 0) see Log1p)
//   expm1  4 ulp        tanh   4 ulp (f64; f32 is this file's own, 7 ulp: VTanh)
//   sin, cos 3 ulp on [-39000, 39000] (outside it, and for ±inf and NaN, glibc's sin and cos)
// glibc's scalar functions, which the functors and the CUDA backend's tests compare against, are
// within 1 ulp; tests/test_simd.cpp checks each kernel against its functor element by element
// (relative error 1e-5 for float32, 1e-12 for float64, exactly for the special values) on every
// target the CPU supports.
//
// Formulas follow the functors of src/kernels/ operation for operation (Mul, Add, ... in the
// functor's order, never a fused multiply-add the functor does not have), so the kernels without
// transcendental functions give the functors' results bit for bit.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/cpu/simd_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/highway.h>
#include <hwy/cache_control.h>
#include <hwy/contrib/math/math-inl.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "src/cpu/simd.h"
#include "src/kernels/dispatch.h"
#include "src/kernels/elementwise_math.h"
#include "src/kernels/fused_math.h"
#include "src/kernels/optimizer_math.h"
#include "src/kernels/row_math.h"

HWY_BEFORE_NAMESPACE();
namespace tg::cpu::simd {
namespace HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;
namespace k = tg::kernels;
using Pointwise = Backend::Pointwise;

// ---------------------------------------------------------------- vector math
// Each wrapper: Highway's function where it is valid, glibc's value elsewhere.

template <class T> constexpr T kInf = std::numeric_limits<T>::infinity();
template <class T> constexpr T kNaN = std::numeric_limits<T>::quiet_NaN();
// The largest x with e^x finite (expf(88.7228317) = 3.4028e38); above it e^x = +inf.
template <class T> constexpr T kExpMax = sizeof(T) == 4 ? T(88.72283172607421875)
                                                        : T(709.782712893383973096);

// float32 e^x for x in [-87.3, 88], where 2^q of the result is a normal float: Highway's Exp
// (hwy/contrib/math/math-inl.h, its own steps and coefficients) with 2^q applied as one factor.
// Highway applies it as two (LoadExpShortRange), so that results in the subnormal range and the
// top binade come out right, and selects 0 below -104: work that a softmax's shifted logits,
// nearly always inside this range, do not need. About 1.7× the throughput (a loop of exps over
// 1024 floats in L1 on a Zen 5: 0.16 against 0.25 ns per element with AVX-512, 0.28 against 0.50
// with AVX2), the same accuracy: at most 0.98 ulp from exp in double on every float of [-87.3, 88]
// in steps of 2^-12 (tests/test_simd.cpp, every target).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V ExpNormalRangeF32(D d, V x) {
  hn::impl::ExpImpl<float> impl;
  const auto q = impl.ToInt32(d, hn::MulAdd(x, hn::Set(d, 1.442695040888963407359924681f),
                                            hn::Or(hn::Set(d, 0.5f), hn::And(x, hn::Set(d, -0.0f)))));
  const V y = hn::Add(impl.ExpPoly(d, impl.ExpReduce(d, x, q)), hn::Set(d, 1.0f));
  return hn::Mul(y, impl.Pow2I(d, q));
}

// e^x. float32 vectors whose lanes all lie in [-87.3, 88] (softmax's shifted logits, nearly
// always): ExpNormalRangeF32. Everything else: Highway's Exp, valid on [-max, 88.7] (f32) /
// [-max, 709] (f64), 1 ulp, 0 below -104 / -1000. NaN gives NaN, +inf and overflow give +inf,
// -inf gives 0.
// (One select for both: where x <= max fails, x is NaN or too large, and x + inf is NaN or +inf.)
template <class D, class V = hn::Vec<D>>
HWY_INLINE V VExp(D d, V x) {
  using T = hn::TFromD<D>;
  if constexpr (sizeof(T) == 4) {
    const auto normal = hn::And(hn::Ge(x, hn::Set(d, -87.3f)), hn::Le(x, hn::Set(d, 88.0f)));
    if (HWY_LIKELY(hn::AllTrue(d, normal))) return ExpNormalRangeF32(d, x);
  }
  const V inf = hn::Set(d, kInf<T>);
  const V y = hn::Exp(d, x);
  return hn::IfThenElse(hn::Le(x, hn::Set(d, kExpMax<T>)), y, hn::Add(x, inf));
}

// e^x - 1. Highway: valid on [-max, 88.7] / [-max, 709], 4 ulp, -1 below -104 / -1000.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V VExpm1(D d, V x) {
  using T = hn::TFromD<D>;
  const V inf = hn::Set(d, kInf<T>);
  const V y = hn::Expm1(d, x);
  return hn::IfThenElse(hn::Le(x, hn::Set(d, kExpMax<T>)), y, hn::Add(x, inf));
}

// ln x. Highway: valid on (0, max] (subnormals included), 4 ulp. log 0 = -inf, log x<0 = NaN,
// log +inf = +inf, NaN stays NaN.
// (The special inputs are those outside (0, +inf): their log is -inf at 0, else x·inf for +inf,
// NaN for x < 0 and NaN — one select on the ordinary path.)
template <class D, class V = hn::Vec<D>>
HWY_INLINE V VLog(D d, V x) {
  using T = hn::TFromD<D>;
  const V zero = hn::Zero(d), inf = hn::Set(d, kInf<T>);
  const V y = hn::Log(d, x);
  const auto ordinary = hn::And(hn::Gt(x, zero), hn::Lt(x, inf));
  if (HWY_LIKELY(hn::AllTrue(d, ordinary))) return y;
  const V special = hn::IfThenElse(hn::Eq(x, zero), hn::Set(d, -kInf<T>),
                                   hn::IfThenElse(hn::Eq(x, inf), inf, hn::Set(d, kNaN<T>)));
  return hn::IfThenElse(ordinary, y, hn::IfThenElse(hn::IsNaN(x), x, special));
}

// ln(1 + x). Highway documents [0, max] (2 ulp); its formula, log(u)·x/(u - 1) with u = 1 + x
// rounded, holds on (-1, 0) as well (u is a normal number there and the quotient corrects u's
// rounding), which tests/test_simd.cpp checks against log1p on a grid of (-1, 0). Explicitly:
// log1p(-1) = -inf, x < -1 gives NaN, +inf gives +inf, NaN stays NaN.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V VLog1p(D d, V x) {
  using T = hn::TFromD<D>;
  const V minus_one = hn::Set(d, T(-1)), inf = hn::Set(d, kInf<T>);
  V y = hn::Log1p(d, x);
  y = hn::IfThenElse(hn::Eq(x, minus_one), hn::Set(d, -kInf<T>), y);
  y = hn::IfThenElse(hn::Eq(x, inf), inf, y);
  y = hn::IfThenElse(hn::Lt(x, minus_one), hn::Set(d, kNaN<T>), y);
  return hn::IfThenElse(hn::IsNaN(x), x, y);
}

// tanh. float32: x·P(x²)/Q(x²) on |x| <= 9, P and Q of degree 4 (a rational fit made for this
// file by weighted least squares on [0, 9], relative error of the fit 2.1e-8, P(0) = Q(0) = 1 so
// tanh x = x exactly for tiny x, ±0 and subnormals included), ±1 beyond 9 (tanhf(9) is within
// one ulp of 1): no exp, one division, ten multiply-adds. Measured against tanh in double over
// 5 million random floats: at most 7 ulp, all of them near ±1 where the ulp is 6e-8 (relative
// error 4e-7); under 2 ulp on |x| < 1 (tests/test_simd.cpp checks a grid of [-10, 10] on every
// target). float64: sign(x)·expm1(2|x|)/(expm1(2|x|) + 2), 1 for |x| > 19.1 where tanh rounds
// to 1 (Highway's own Tanh, 4 ulp). NaN stays NaN.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V VTanh(D d, V x) {
  using T = hn::TFromD<D>;
  const V one = hn::Set(d, T(1));
  if constexpr (sizeof(T) == 4) {
    const V s = hn::Mul(x, x);
    V p = hn::Set(d, 1.3355687e-08f);
    p = hn::MulAdd(p, s, hn::Set(d, 2.0609854e-05f));
    p = hn::MulAdd(p, s, hn::Set(d, 0.0034956364f));
    p = hn::MulAdd(p, s, hn::Set(d, 0.13381067f));
    p = hn::MulAdd(p, s, one);
    V q = hn::Set(d, 7.7769874e-07f);
    q = hn::MulAdd(q, s, hn::Set(d, 0.00032857127f));
    q = hn::MulAdd(q, s, hn::Set(d, 0.025877168f));
    q = hn::MulAdd(q, s, hn::Set(d, 0.46714383f));
    q = hn::MulAdd(q, s, one);
    const V t = hn::Min(hn::Div(hn::Mul(x, p), q), one);  // ≤ 1 after the fit's rounding
    const V sign = hn::And(hn::SignBit(d), x);
    const V y = hn::IfThenElse(hn::Gt(hn::Abs(x), hn::Set(d, 9.0f)), hn::Or(one, sign),
                               hn::Max(t, hn::Neg(one)));
    return hn::IfThenElse(hn::IsNaN(x), x, y);  // (Min and Max may drop a NaN)
  } else {
    const V two = hn::Set(d, T(2));
    const V limit = hn::Set(d, T(19.1));
    const V sign = hn::And(hn::SignBit(d), x);
    const V a = hn::Xor(x, sign);
    const V e = hn::Expm1(d, hn::Min(hn::Add(a, a), hn::Add(limit, limit)));
    const V t = hn::IfThenElse(hn::Gt(a, limit), one, hn::Div(e, hn::Add(e, two)));
    return hn::IfThenElse(hn::IsNaN(x), x, hn::Xor(t, sign));
  }
}

// σ(x) = 1/(1 + e^-x), as the sigmoid functor computes it (sigmoid, silu's backward, softplus's slope).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V VSigmoid(D d, V x) {
  const V one = hn::Set(d, hn::TFromD<D>(1));
  return hn::Div(one, hn::Add(one, VExp(d, hn::Neg(x))));
}

// sin and cos. Highway: valid on [-39000, 39000], 3 ulp; a vector with any lane outside it (or
// ±inf, or NaN) takes glibc's sin/cos for those lanes.
template <class D, class V, class Scalar>
HWY_INLINE V WithScalarOutside(D d, V x, V y, Scalar scalar) {
  using T = hn::TFromD<D>;
  if (HWY_LIKELY(hn::AllTrue(d, hn::Le(hn::Abs(x), hn::Set(d, T(39000)))))) return y;
  HWY_ALIGN T xs[HWY_MAX_BYTES / sizeof(T)];
  HWY_ALIGN T ys[HWY_MAX_BYTES / sizeof(T)];
  hn::Store(x, d, xs);
  hn::Store(y, d, ys);
  for (size_t l = 0; l < hn::Lanes(d); ++l)
    if (!(std::abs(xs[l]) <= T(39000))) ys[l] = scalar(xs[l]);
  return hn::Load(d, ys);
}
template <class D, class V = hn::Vec<D>>
HWY_INLINE V VSin(D d, V x) {
  return WithScalarOutside(d, x, hn::Sin(d, x), [](auto v) { return std::sin(v); });
}
template <class D, class V = hn::Vec<D>>
HWY_INLINE V VCos(D d, V x) {
  return WithScalarOutside(d, x, hn::Cos(d, x), [](auto v) { return std::cos(v); });
}

// ---------------------------------------------------------------- loops
// Whole vectors, then the tail through a zero-padded stack buffer (the tail's results are
// stored, the padding's dropped).

template <class T> constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(T);

// Where masked loads and stores never touch the lanes they leave out (AVX2, AVX-512, SVE), the
// tail is one masked load per input and one masked store; elsewhere it goes through a stack buffer.
constexpr bool kMaskedTail = !HWY_MEM_OPS_MIGHT_FAULT;

// Prefetches in[0..arity) at i + ahead (see Map and MapSum); nothing when ahead is 0.
template <int arity, class T>
HWY_INLINE void PrefetchInputs(const T* const* in, int64_t i, int64_t ahead) {
  if (!ahead) return;
  for (int input = 0; input < arity; ++input) hwy::Prefetch(in[input] + i + ahead);
}

// out[i] = f(in0[i], in1[i], in2[i], in3[i]) for i in [begin, end); inputs past `arity` are
// read as 0 and never loaded. With prefetch_ahead > 0, each step also prefetches the inputs that
// many elements ahead: a row kernel passes the row length, so that the next row streams in from
// memory while this one is computed (the row kernels alternate between passes that wait for
// memory and passes that compute on a row in L1; the hardware prefetcher alone leaves the memory
// idle during the second kind).
template <int arity, class D, class T = hn::TFromD<D>, class F>
HWY_INLINE void Map(D d, const T* const* in, T* out, int64_t begin, int64_t end, F f,
                    int64_t prefetch_ahead = 0) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto zero = hn::Zero(d);
  auto load = [&](int input, int64_t i) {
    return input < arity ? hn::LoadU(d, in[input] + i) : zero;
  };
  int64_t i = begin;
  for (; i + N <= end; i += N) {
    PrefetchInputs<arity>(in, i, prefetch_ahead);
    hn::StoreU(f(load(0, i), load(1, i), load(2, i), load(3, i)), d, out + i);
  }
  if (kMaskedTail && i < end) {
    const auto m = hn::FirstN(d, static_cast<size_t>(end - i));
    auto masked = [&](int input) { return input < arity ? hn::MaskedLoad(m, d, in[input] + i) : zero; };
    hn::BlendedStore(f(masked(0), masked(1), masked(2), masked(3)), m, d, out + i);
  } else if (i < end) {
    const int64_t count = end - i;
    HWY_ALIGN T buffer[4][kMaxLanes<T>] = {};
    for (int input = 0; input < arity; ++input)
      std::memcpy(buffer[input], in[input] + i, count * sizeof(T));
    auto tail_load = [&](int input) { return input < arity ? hn::Load(d, buffer[input]) : zero; };
    HWY_ALIGN T result[kMaxLanes<T>];
    hn::Store(f(tail_load(0), tail_load(1), tail_load(2), tail_load(3)), d, result);
    std::memcpy(out + i, result, count * sizeof(T));
  }
}

// Σ of the lanes of v, lane 0 first (a fixed order for every run on this target).
template <class D, class V = hn::Vec<D>>
HWY_INLINE hn::TFromD<D> SumLanes(D d, V v) {
  using T = hn::TFromD<D>;
  HWY_ALIGN T lanes[kMaxLanes<T>];
  hn::Store(v, d, lanes);
  T total = 0;
  for (size_t j = 0; j < hn::Lanes(d); ++j) total += lanes[j];
  return total;
}

// Σ f(...) over [begin, end), where the padding of the tail counts 0 (f's value is masked);
// prefetch_ahead as for Map.
template <int arity, class D, class T = hn::TFromD<D>, class F>
HWY_INLINE T MapSum(D d, const T* const* in, int64_t begin, int64_t end, F f,
                    int64_t prefetch_ahead = 0) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto zero = hn::Zero(d);
  auto load = [&](int input, int64_t i) {
    return input < arity ? hn::LoadU(d, in[input] + i) : zero;
  };
  auto acc = zero;
  int64_t i = begin;
  for (; i + N <= end; i += N) {
    PrefetchInputs<arity>(in, i, prefetch_ahead);
    acc = hn::Add(acc, f(load(0, i), load(1, i), load(2, i), load(3, i)));
  }
  if (kMaskedTail && i < end) {
    const auto m = hn::FirstN(d, static_cast<size_t>(end - i));
    auto masked = [&](int input) { return input < arity ? hn::MaskedLoad(m, d, in[input] + i) : zero; };
    acc = hn::Add(acc, hn::IfThenElseZero(m, f(masked(0), masked(1), masked(2), masked(3))));
  } else if (i < end) {
    const int64_t count = end - i;
    HWY_ALIGN T buffer[4][kMaxLanes<T>] = {};
    for (int input = 0; input < arity; ++input)
      std::memcpy(buffer[input], in[input] + i, count * sizeof(T));
    auto tail_load = [&](int input) { return input < arity ? hn::Load(d, buffer[input]) : zero; };
    const auto value = f(tail_load(0), tail_load(1), tail_load(2), tail_load(3));
    acc = hn::Add(acc, hn::IfThenElseZero(hn::FirstN(d, static_cast<size_t>(count)), value));
  }
  return SumLanes(d, acc);
}

// ---------------------------------------------------------------- unary and binary

// Every op's loop is a function of its own (HWY_NOINLINE): one function holding all the ops'
// loops grows past GCC's inlining limits, and the per-vector lambda would become a call.
template <class T, class F>
HWY_NOINLINE void UnaryLoop(const T* x, T* y, int64_t n, F f) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const T* in[1] = {x};
  Map<1>(d, in, y, 0, n, [&](V v, V, V, V) { return f(v); });
}

template <class T>
bool UnaryT(UnaryOp op, const T* x, T* y, int64_t n, T a_, T b_) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const V a = hn::Set(d, a_), b = hn::Set(d, b_), zero = hn::Zero(d), one = hn::Set(d, T(1));
  auto run = [&](auto f) {
    UnaryLoop(x, y, n, f);
    return true;
  };
  switch (op) {
    case UnaryOp::neg: return run([&](V v) { return hn::Neg(v); });
    case UnaryOp::exp: return run([&](V v) { return VExp(d, v); });
    case UnaryOp::log: return run([&](V v) { return VLog(d, v); });
    case UnaryOp::log1p: return run([&](V v) { return VLog1p(d, v); });
    case UnaryOp::sqrt: return run([&](V v) { return hn::Sqrt(v); });
    case UnaryOp::abs: return run([&](V v) { return hn::Abs(v); });
    case UnaryOp::sign:
      return run([&](V v) {
        return hn::IfThenElse(hn::Gt(v, zero), one, hn::IfThenElse(hn::Lt(v, zero), hn::Neg(one), zero));
      });
    case UnaryOp::tanh: return run([&](V v) { return VTanh(d, v); });
    case UnaryOp::sigmoid: return run([&](V v) { return VSigmoid(d, v); });
    case UnaryOp::relu: return run([&](V v) { return hn::IfThenElse(hn::Lt(v, zero), zero, v); });
    case UnaryOp::square: return run([&](V v) { return hn::Mul(v, v); });
    case UnaryOp::reciprocal: return run([&](V v) { return hn::Div(one, v); });
    case UnaryOp::add_scalar: return run([&](V v) { return hn::Add(v, a); });
    case UnaryOp::mul_scalar: return run([&](V v) { return hn::Mul(v, a); });
    case UnaryOp::rsub_scalar: return run([&](V v) { return hn::Sub(a, v); });
    case UnaryOp::clamp:
      return run([&](V v) {
        const V low = hn::IfThenElse(hn::Lt(v, a), a, v);
        return hn::IfThenElse(hn::Gt(low, b), b, low);
      });
    case UnaryOp::in_range:
      return run([&](V v) { return hn::IfThenElseZero(hn::And(hn::Ge(v, a), hn::Le(v, b)), one); });
    case UnaryOp::isfinite:  // x - x == 0 (the functor's test)
      return run([&](V v) { return hn::IfThenElseZero(hn::Eq(hn::Sub(v, v), zero), one); });
    case UnaryOp::isnan: return run([&](V v) { return hn::IfThenElseZero(hn::IsNaN(v), one); });
    case UnaryOp::gelu_tanh:
      return run([&](V v) {
        const V u = hn::Mul(hn::Set(d, T(k::kSqrt2OverPi)),
                            hn::Add(v, hn::Mul(hn::Mul(hn::Mul(hn::Set(d, T(k::kGeluTanhCubic)), v), v), v)));
        return hn::Mul(hn::Mul(hn::Set(d, T(0.5)), v), hn::Add(one, VTanh(d, u)));
      });
    case UnaryOp::silu: return run([&](V v) { return hn::Div(v, hn::Add(one, VExp(d, hn::Neg(v)))); });
    case UnaryOp::leaky_relu:
      return run([&](V v) { return hn::IfThenElse(hn::Gt(v, zero), v, hn::Mul(a, v)); });
    case UnaryOp::softplus:
      return run([&](V v) {
        const V z = hn::Mul(a, v);
        return hn::IfThenElse(hn::Gt(z, b), v, hn::Div(VLog1p(d, VExp(d, z)), a));
      });
    case UnaryOp::elu:
      return run([&](V v) { return hn::IfThenElse(hn::Gt(v, zero), v, hn::Mul(a, VExpm1(d, v))); });
    case UnaryOp::sin: return run([&](V v) { return VSin(d, v); });
    case UnaryOp::cos: return run([&](V v) { return VCos(d, v); });
    case UnaryOp::leaky_relu_slope:
      return run([&](V v) { return hn::IfThenElse(hn::Gt(v, zero), one, a); });
    case UnaryOp::softplus_slope:
      return run([&](V v) {
        const V z = hn::Mul(a, v);
        return hn::IfThenElse(hn::Gt(z, b), one, VSigmoid(d, z));
      });
    case UnaryOp::elu_slope:
      return run([&](V v) { return hn::IfThenElse(hn::Gt(v, zero), one, hn::Mul(a, VExp(d, v))); });
    default: return false;  // pow_scalar, gelu (erf: Highway 1.0.3 has none) and any newer op
  }
}

template <class T, class F>
HWY_NOINLINE void BinaryLoop(const T* pa, const T* pb, T* out, int64_t n, int broadcast, F f) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  if (broadcast == 0) {
    const T* in[2] = {pa, pb};
    Map<2>(d, in, out, 0, n, [&](V a, V b, V, V) { return f(a, b); });
  } else if (broadcast == 1) {
    const V b = hn::Set(d, pb[0]);
    const T* in[1] = {pa};
    Map<1>(d, in, out, 0, n, [&](V a, V, V, V) { return f(a, b); });
  } else {
    const V a = hn::Set(d, pa[0]);
    const T* in[1] = {pb};
    Map<1>(d, in, out, 0, n, [&](V b, V, V, V) { return f(a, b); });
  }
}

template <class T>
bool BinaryT(BinaryOp op, const T* pa, const T* pb, T* out, int64_t n, int broadcast) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const V zero = hn::Zero(d), one = hn::Set(d, T(1));
  auto run = [&](auto f) {
    BinaryLoop(pa, pb, out, n, broadcast, f);
    return true;
  };
  auto select = [&](auto mask) { return hn::IfThenElseZero(mask, one); };
  switch (op) {
    case BinaryOp::add: return run([&](V a, V b) { return hn::Add(a, b); });
    case BinaryOp::sub: return run([&](V a, V b) { return hn::Sub(a, b); });
    case BinaryOp::mul: return run([&](V a, V b) { return hn::Mul(a, b); });
    case BinaryOp::div: return run([&](V a, V b) { return hn::Div(a, b); });
    case BinaryOp::minimum:
      return run([&](V a, V b) { return hn::IfThenElse(hn::Or(hn::Lt(a, b), hn::IsNaN(a)), a, b); });
    case BinaryOp::maximum:
      return run([&](V a, V b) { return hn::IfThenElse(hn::Or(hn::Gt(a, b), hn::IsNaN(a)), a, b); });
    case BinaryOp::equal: return run([&](V a, V b) { return select(hn::Eq(a, b)); });
    case BinaryOp::less: return run([&](V a, V b) { return select(hn::Lt(a, b)); });
    case BinaryOp::less_equal: return run([&](V a, V b) { return select(hn::Le(a, b)); });
    case BinaryOp::greater: return run([&](V a, V b) { return select(hn::Gt(a, b)); });
    case BinaryOp::greater_equal: return run([&](V a, V b) { return select(hn::Ge(a, b)); });
    case BinaryOp::relu_backward:
      return run([&](V g, V x) { return hn::IfThenElseZero(hn::Gt(x, zero), g); });
    case BinaryOp::tanh_backward:
      return run([&](V g, V y) { return hn::Mul(g, hn::Sub(one, hn::Mul(y, y))); });
    case BinaryOp::sigmoid_backward:
      return run([&](V g, V y) { return hn::Mul(hn::Mul(g, y), hn::Sub(one, y)); });
    case BinaryOp::abs_backward:
      return run([&](V g, V x) {
        return hn::IfThenElse(hn::Gt(x, zero), g, hn::IfThenElse(hn::Lt(x, zero), hn::Neg(g), zero));
      });
    case BinaryOp::silu_backward:  // grad·s·(1 + x·(1 - s)), s = σ(x)
      return run([&](V g, V x) {
        const V s = VSigmoid(d, x);
        return hn::Mul(hn::Mul(g, s), hn::Add(one, hn::Mul(x, hn::Sub(one, s))));
      });
    case BinaryOp::gelu_tanh_backward:
      return run([&](V g, V x) {
        const V root = hn::Set(d, T(k::kSqrt2OverPi)), half = hn::Set(d, T(0.5));
        const V x2 = hn::Mul(x, x);
        const V t = VTanh(d, hn::Mul(root, hn::Add(x, hn::Mul(hn::Mul(hn::Set(d, T(k::kGeluTanhCubic)), x2), x))));
        const V du = hn::Mul(root, hn::Add(one, hn::Mul(hn::Set(d, T(3 * k::kGeluTanhCubic)), x2)));
        const V left = hn::Mul(half, hn::Add(one, t));
        const V right = hn::Mul(hn::Mul(hn::Mul(half, x), hn::Sub(one, hn::Mul(t, t))), du);
        return hn::Mul(g, hn::Add(left, right));
      });
    default: return false;  // pow, gelu_backward (erf) and any newer op: the functor loop
  }
}

// ---------------------------------------------------------------- pointwise kinds
// VectorKind<F>: F's value and gradients on vectors, in F's order of operations (fused_math.h
// states the math). Kinds without a specialisation run the functor loop.

template <class F> struct VectorKind { static constexpr bool kHas = false; };

template <> struct VectorKind<k::BceWithLogits> {
  static constexpr bool kHas = true;
  template <class D, class V> static V value(D d, V x, V y, V, V, V) {
    const V zero = hn::Zero(d);
    const V relu = hn::IfThenElse(hn::Gt(x, zero), x, zero);
    // e^-|x| lies in [0, 1] (NaN for a NaN x, which makes the sum NaN through x·y anyway), inside
    // Highway's valid range for Log1p: none of VLog1p's fix-ups can apply.
    return hn::Add(hn::Sub(relu, hn::Mul(x, y)), hn::Log1p(d, VExp(d, hn::Neg(hn::Abs(x)))));
  }
  template <int kk, class D, class V> static V grad(D d, V x, V y, V, V, V) {
    if constexpr (kk == 0) {
      const V one = hn::Set(d, hn::TFromD<D>(1));
      const V e = VExp(d, hn::Neg(hn::Abs(x)));
      const V sigmoid = hn::Div(hn::IfThenElse(hn::Ge(x, hn::Zero(d)), one, e), hn::Add(one, e));
      return hn::Sub(sigmoid, y);
    } else {
      return hn::Neg(x);
    }
  }
};

// p_log_ratio: p·(log p - log q), 0 where p <= 0.
template <class D, class V> HWY_INLINE V PLogRatio(D d, V p, V log_p, V log_q) {
  return hn::IfThenElseZero(hn::Gt(p, hn::Zero(d)), hn::Mul(p, hn::Sub(log_p, log_q)));
}

template <> struct VectorKind<k::KlDiv> {
  static constexpr bool kHas = true;
  template <class D, class V> static V value(D d, V log_q, V p, V, V, V) {
    return PLogRatio(d, p, VLog(d, p), log_q);
  }
  template <int kk, class D, class V> static V grad(D d, V log_q, V p, V, V, V) {
    if constexpr (kk == 0) {
      return hn::Neg(p);
    } else {
      const V slope = hn::Sub(hn::Add(VLog(d, p), hn::Set(d, hn::TFromD<D>(1))), log_q);
      return hn::IfThenElseZero(hn::Gt(p, hn::Zero(d)), slope);
    }
  }
};

template <> struct VectorKind<k::KlDivLogTarget> {
  static constexpr bool kHas = true;
  template <class D, class V> static V value(D d, V log_q, V log_p, V, V, V) {
    return PLogRatio(d, VExp(d, log_p), log_p, log_q);
  }
  template <int kk, class D, class V> static V grad(D d, V log_q, V log_p, V, V, V) {
    const V p = VExp(d, log_p);
    if constexpr (kk == 0) {
      return hn::Neg(p);
    } else {
      const V slope = hn::Mul(p, hn::Add(hn::Sub(log_p, log_q), hn::Set(d, hn::TFromD<D>(1))));
      return hn::IfThenElseZero(hn::Gt(p, hn::Zero(d)), slope);
    }
  }
};

template <> struct VectorKind<k::GaussianKlStandard> {
  static constexpr bool kHas = true;
  template <class D, class V> static V value(D d, V mu, V logvar, V, V, V) {
    const V half = hn::Set(d, hn::TFromD<D>(0.5));
    return hn::Mul(half, hn::Sub(hn::Add(hn::Mul(mu, mu), VExpm1(d, logvar)), logvar));
  }
  template <int kk, class D, class V> static V grad(D d, V mu, V logvar, V, V, V) {
    if constexpr (kk == 0) return mu;
    else return hn::Mul(hn::Set(d, hn::TFromD<D>(0.5)), VExpm1(d, logvar));
  }
};

template <> struct VectorKind<k::GaussianKl> {
  static constexpr bool kHas = true;
  template <class D, class V> static V value(D d, V mu1, V v1, V mu2, V v2, V) {
    const V delta = hn::Sub(v1, v2), diff = hn::Sub(mu1, mu2);
    const V quad = hn::Mul(hn::Mul(diff, diff), VExp(d, hn::Neg(v2)));
    return hn::Mul(hn::Set(d, hn::TFromD<D>(0.5)), hn::Add(hn::Sub(VExpm1(d, delta), delta), quad));
  }
  template <int kk, class D, class V> static V grad(D d, V mu1, V v1, V mu2, V v2, V) {
    using T = hn::TFromD<D>;
    const V diff = hn::Sub(mu1, mu2);
    if constexpr (kk == 0) return hn::Mul(diff, VExp(d, hn::Neg(v2)));
    else if constexpr (kk == 1) return hn::Mul(hn::Set(d, T(0.5)), VExpm1(d, hn::Sub(v1, v2)));
    else if constexpr (kk == 2) return hn::Mul(hn::Neg(diff), VExp(d, hn::Neg(v2)));
    else
      return hn::Mul(hn::Set(d, T(-0.5)),
                     hn::Add(VExpm1(d, hn::Sub(v1, v2)), hn::Mul(hn::Mul(diff, diff), VExp(d, hn::Neg(v2)))));
  }
};

template <> struct VectorKind<k::SquaredError> {
  static constexpr bool kHas = true;
  template <class D, class V> static V value(D, V a, V b, V, V, V) {
    return hn::Mul(hn::Sub(a, b), hn::Sub(a, b));
  }
  template <int kk, class D, class V> static V grad(D d, V a, V b, V, V, V) {
    return hn::Mul(hn::Set(d, hn::TFromD<D>(kk == 0 ? 2 : -2)), hn::Sub(a, b));
  }
};

template <> struct VectorKind<k::EntropyTerm> {
  static constexpr bool kHas = true;
  template <class D, class V> static V value(D d, V p, V, V, V, V) {
    return hn::Neg(PLogRatio(d, p, VLog(d, p), hn::Zero(d)));
  }
  template <int kk, class D, class V> static V grad(D d, V p, V, V, V, V) {
    const V slope = hn::Neg(hn::Add(VLog(d, p), hn::Set(d, hn::TFromD<D>(1))));
    return hn::IfThenElseZero(hn::Gt(p, hn::Zero(d)), slope);
  }
};

template <> struct VectorKind<k::JsDivergenceTerm> {
  static constexpr bool kHas = true;
  template <class D, class V> static V value(D d, V p, V q, V, V, V) {
    const V half = hn::Set(d, hn::TFromD<D>(0.5));
    const V log_m = VLog(d, hn::Mul(half, hn::Add(p, q)));
    return hn::Mul(half, hn::Add(PLogRatio(d, p, VLog(d, p), log_m), PLogRatio(d, q, VLog(d, q), log_m)));
  }
  template <int kk, class D, class V> static V grad(D d, V p, V q, V, V, V) {
    const V half = hn::Set(d, hn::TFromD<D>(0.5));
    const V own = kk == 0 ? p : q;
    const V slope = hn::Mul(half, hn::Sub(VLog(d, own), VLog(d, hn::Mul(half, hn::Add(p, q)))));
    return hn::IfThenElseZero(hn::Gt(own, hn::Zero(d)), slope);
  }
};

template <> struct VectorKind<k::TotalVariationTerm> {
  static constexpr bool kHas = true;
  template <class D, class V> static V value(D d, V p, V q, V, V, V) {
    return hn::Mul(hn::Set(d, hn::TFromD<D>(0.5)), hn::Abs(hn::Sub(p, q)));
  }
  template <int kk, class D, class V> static V grad(D d, V p, V q, V, V, V) {
    using T = hn::TFromD<D>;
    const V half_sign = hn::IfThenElse(hn::Gt(p, q), hn::Set(d, T(0.5)),
                                       hn::IfThenElse(hn::Lt(p, q), hn::Set(d, T(-0.5)), hn::Zero(d)));
    return kk == 0 ? half_sign : hn::Neg(half_sign);
  }
};

template <> struct VectorKind<k::Reparameterize> {
  static constexpr bool kHas = true;
  template <class D, class V> static V value(D d, V mu, V logvar, V eps, V, V) {
    return hn::Add(mu, hn::Mul(VExp(d, hn::Mul(hn::Set(d, hn::TFromD<D>(0.5)), logvar)), eps));
  }
  template <int kk, class D, class V> static V grad(D d, V, V logvar, V eps, V, V) {
    using T = hn::TFromD<D>;
    const V half = hn::Set(d, T(0.5));
    if constexpr (kk == 0) return hn::Set(d, T(1));
    else if constexpr (kk == 1) return hn::Mul(hn::Mul(half, VExp(d, hn::Mul(half, logvar))), eps);
    else return VExp(d, hn::Mul(half, logvar));
  }
};

template <> struct VectorKind<k::PpoClip> {
  static constexpr bool kHas = true;
  template <class V, class M> struct Parts {
    V ratio, clipped;
    M unclipped, live;
  };
  template <class D, class V> static auto parts(D d, V log_new, V log_old, V advantage, V eps) {
    using T = hn::TFromD<D>;
    const V log_ratio = hn::Sub(log_new, log_old);
    const V limit = hn::Set(d, T(k::kPpoMaxLogRatio));
    const auto live = hn::Lt(log_ratio, limit);
    const V ratio = VExp(d, hn::IfThenElse(live, log_ratio, limit));
    const V one = hn::Set(d, T(1));
    const V low = hn::Sub(one, eps), high = hn::Add(one, eps);
    const V clipped = hn::IfThenElse(hn::Lt(ratio, low), low, hn::IfThenElse(hn::Gt(ratio, high), high, ratio));
    const auto unclipped = hn::Le(hn::Mul(ratio, advantage), hn::Mul(clipped, advantage));
    return Parts<V, decltype(live)>{ratio, clipped, unclipped, live};
  }
  template <class D, class V> static V value(D d, V log_new, V log_old, V advantage, V, V eps) {
    const auto s = parts(d, log_new, log_old, advantage, eps);
    return hn::Mul(hn::Neg(hn::IfThenElse(s.unclipped, s.ratio, s.clipped)), advantage);
  }
  template <int kk, class D, class V> static V grad(D d, V log_new, V log_old, V advantage, V, V eps) {
    const auto s = parts(d, log_new, log_old, advantage, eps);
    const V slope = hn::IfThenElseZero(hn::And(s.unclipped, s.live), hn::Mul(hn::Neg(s.ratio), advantage));
    if constexpr (kk == 0) return slope;
    else if constexpr (kk == 1) return hn::Neg(slope);
    else return hn::Neg(hn::IfThenElse(s.unclipped, s.ratio, s.clipped));
  }
};

// Calls f(VectorKind<Functor>{}) for a kind that has a vector version; false otherwise.
template <class Fn>
bool WithVectorKind(Pointwise kind, Fn&& f) {
  bool handled = false;
  k::dispatch_pointwise(kind, [&](auto functor) {
    using VK = VectorKind<decltype(functor)>;
    if constexpr (VK::kHas) {
      f(VK{}, functor);
      handled = true;
    }
  });
  return handled;
}

template <class VK, int arity, class T>
HWY_NOINLINE void PointwiseLoop(const T* const* in, T* out, int64_t begin, int64_t end, T param_) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const V param = hn::Set(d, param_);
  Map<arity>(d, in, out, begin, end, [&](V a, V b, V c, V e) { return VK::value(d, a, b, c, e, param); });
}

template <class T>
bool PointwiseT(Pointwise kind, const T* const* in, T* out, int64_t begin, int64_t end, T param) {
  return WithVectorKind(kind, [&](auto vk, auto functor) {
    PointwiseLoop<decltype(vk), decltype(functor)::arity>(in, out, begin, end, param);
  });
}

template <class VK, int arity, class T>
HWY_NOINLINE double PointwiseSumLoop(const T* const* in, int64_t begin, int64_t end, T param_) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const V param = hn::Set(d, param_);
  double sum = 0;
  for (int64_t start = begin; start < end; start += kSumBlock) {
    const int64_t stop = start + kSumBlock < end ? start + kSumBlock : end;
    sum += static_cast<double>(MapSum<arity>(d, in, start, stop, [&](V a, V b, V c, V e) {
      return VK::value(d, a, b, c, e, param);
    }));
  }
  return sum;
}

template <class T>
bool PointwiseSumT(Pointwise kind, const T* const* in, int64_t begin, int64_t end, T param,
                   double* total) {
  return WithVectorKind(kind, [&](auto vk, auto functor) {
    *total = PointwiseSumLoop<decltype(vk), decltype(functor)::arity>(in, begin, end, param);
  });
}

template <class VK, class F, int K, class T>
HWY_NOINLINE void PointwiseGradLoop(const T* grad, bool grad_is_scalar, T scale_,
                                    const T* const* in, T* out, int64_t begin, int64_t end,
                                    T param_) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const V param = hn::Set(d, param_), scale = hn::Set(d, scale_);
  if (grad_is_scalar) {
    const V g = hn::Set(d, grad[0] * scale_);
    Map<F::arity>(d, in, out, begin, end, [&](V a, V b, V c, V e) {
      return hn::Mul(g, VK::template grad<K>(d, a, b, c, e, param));
    });
    return;
  }
  // grad[i]·scale·∂f: grad rides along as a fifth input, loaded beside the others.
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const V zero = hn::Zero(d);
  auto load = [&](int j, int64_t i) { return j < F::arity ? hn::LoadU(d, in[j] + i) : zero; };
  auto body = [&](V gv, V a, V b, V c, V e) {
    return hn::Mul(hn::Mul(gv, scale), VK::template grad<K>(d, a, b, c, e, param));
  };
  int64_t i = begin;
  for (; i + N <= end; i += N)
    hn::StoreU(body(hn::LoadU(d, grad + i), load(0, i), load(1, i), load(2, i), load(3, i)), d, out + i);
  if (kMaskedTail && i < end) {
    const auto m = hn::FirstN(d, static_cast<size_t>(end - i));
    auto masked = [&](int j) { return j < F::arity ? hn::MaskedLoad(m, d, in[j] + i) : zero; };
    hn::BlendedStore(body(hn::MaskedLoad(m, d, grad + i), masked(0), masked(1), masked(2), masked(3)),
                     m, d, out + i);
  } else if (i < end) {
    const int64_t count = end - i;
    HWY_ALIGN T buffer[5][kMaxLanes<T>] = {};
    std::memcpy(buffer[4], grad + i, count * sizeof(T));
    for (int j = 0; j < F::arity; ++j) std::memcpy(buffer[j], in[j] + i, count * sizeof(T));
    auto tl = [&](int j) { return j < F::arity ? hn::Load(d, buffer[j]) : zero; };
    HWY_ALIGN T result[kMaxLanes<T>];
    hn::Store(body(hn::Load(d, buffer[4]), tl(0), tl(1), tl(2), tl(3)), d, result);
    std::memcpy(out + i, result, count * sizeof(T));
  }
}

template <class T>
bool PointwiseGradT(Pointwise kind, int input, const T* grad, bool grad_is_scalar, T scale,
                    const T* const* in, T* out, int64_t begin, int64_t end, T param) {
  return WithVectorKind(kind, [&](auto vk, auto functor) {
    using F = decltype(functor);
    using VK = decltype(vk);
    if (input == 0) PointwiseGradLoop<VK, F, 0>(grad, grad_is_scalar, scale, in, out, begin, end, param);
    if constexpr (F::arity > 1)
      if (input == 1) PointwiseGradLoop<VK, F, 1>(grad, grad_is_scalar, scale, in, out, begin, end, param);
    if constexpr (F::arity > 2)
      if (input == 2) PointwiseGradLoop<VK, F, 2>(grad, grad_is_scalar, scale, in, out, begin, end, param);
    if constexpr (F::arity > 3)
      if (input == 3) PointwiseGradLoop<VK, F, 3>(grad, grad_is_scalar, scale, in, out, begin, end, param);
  });
}

template <class T>
HWY_NOINLINE void ExpInPlaceT(T* v, int64_t n) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const T* in[1] = {v};
  Map<1>(d, in, v, 0, n, [&](V x, V, V, V) { return VExp(d, x); });
}

// ---------------------------------------------------------------- softmax rows
// The CPU's row algorithm (cpu_fused.cpp): per chunk of kRowChunk elements a max pass and a
// Σ e^((x - shift)/T) pass while the chunk is in L1, the chunks merged by k::merge_row_partials.

constexpr int64_t kRowChunk = 1024;

// How far ahead a row kernel prefetches: the next row (or chunk), at most kRowChunk elements.
HWY_INLINE int64_t RowPrefetch(int64_t n) { return n < kRowChunk ? n : kRowChunk; }

// max over lanes with k::row_max's rule (NaN skipped): running = x > running ? x : running.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V RowMax(V running, V x) { return hn::IfThenElse(hn::Gt(x, running), x, running); }

// max of x[begin, end) by k::row_max's rule. Four running maxima, so that the loop is not one
// chain of compare-and-select latencies (the max is exact: the order changes nothing).
template <class T>
HWY_INLINE T RowMaxRange(const T* x, int64_t begin, int64_t end) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  V m0 = hn::Set(d, -kInf<T>), m1 = m0, m2 = m0, m3 = m0;
  int64_t j = begin;
  for (; j + 4 * N <= end; j += 4 * N) {
    m0 = RowMax<decltype(d)>(m0, hn::LoadU(d, x + j));
    m1 = RowMax<decltype(d)>(m1, hn::LoadU(d, x + j + N));
    m2 = RowMax<decltype(d)>(m2, hn::LoadU(d, x + j + 2 * N));
    m3 = RowMax<decltype(d)>(m3, hn::LoadU(d, x + j + 3 * N));
  }
  for (; j + N <= end; j += N) m0 = RowMax<decltype(d)>(m0, hn::LoadU(d, x + j));
  m0 = RowMax<decltype(d)>(RowMax<decltype(d)>(m0, m1), RowMax<decltype(d)>(m2, m3));
  HWY_ALIGN T lanes[kMaxLanes<T>];
  hn::Store(m0, d, lanes);
  T m = -kInf<T>;
  for (int64_t l = 0; l < N; ++l) m = k::row_max(m, lanes[l]);
  for (; j < end; ++j) m = k::row_max(m, x[j]);
  return m;
}

template <class T>
HWY_NOINLINE k::RowStats<T> RowStatsT(const T* x, int64_t n, T inv_t_) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const V inv_t = hn::Set(d, inv_t_);
  const T* in[1] = {x};
  k::RowPartial<T> whole = k::empty_row_partial<T>();
  for (int64_t start = 0; start < n; start += kRowChunk) {
    const int64_t end = start + kRowChunk < n ? start + kRowChunk : n;
    const T m = RowMaxRange(x, start, end);
    const V shift = hn::Set(d, k::row_shift(m));
    const T s = MapSum<1>(d, in, start, end, [&](V v, V, V, V) {
      return VExp(d, hn::Mul(hn::Sub(v, shift), inv_t));
    }, RowPrefetch(end - start));
    whole = k::merge_row_partials(whole, {m, s}, inv_t_);
  }
  return k::finish_row_stats(whole);
}

// Σ e^((x - shift)·inv_t) over n elements (the logsumexp reduction's inner sum).
template <class T>
HWY_NOINLINE T ExpSumT(const T* x, int64_t n, T shift_, T inv_t_) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const V shift = hn::Set(d, shift_), inv_t = hn::Set(d, inv_t_);
  const T* in[1] = {x};
  return MapSum<1>(d, in, 0, n, [&](V v, V, V, V) { return VExp(d, hn::Mul(hn::Sub(v, shift), inv_t)); });
}

template <class T>
HWY_NOINLINE void LogSoftmaxRowT(const T* x, T* y, int64_t n, T inv_t_) {
  const k::RowStats<T> st = RowStatsT(x, n, inv_t_);
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const V max = hn::Set(d, st.max), log_sum = hn::Set(d, st.log_sum), inv_t = hn::Set(d, inv_t_);
  const T* in[1] = {x};
  Map<1>(d, in, y, 0, n, [&](V v, V, V, V) {
    return hn::Sub(hn::Mul(hn::Sub(v, max), inv_t), log_sum);
  });
}

// softmax: e^((x - m)/T) into y, then y·(1/Σ), the whole row one part (as the functor loop).
template <class T>
HWY_NOINLINE void SoftmaxRowT(const T* x, T* y, int64_t n, T inv_t_) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const T m = RowMaxRange(x, 0, n);
  const V shift = hn::Set(d, k::row_shift(m)), inv_t = hn::Set(d, inv_t_);
  // e = e^((x - shift)/T) stored and summed in one pass, as the functor loop does
  V acc = hn::Zero(d);
  int64_t j = 0;
  const int64_t ahead = RowPrefetch(n);
  for (; j + N <= n; j += N) {
    hwy::Prefetch(x + j + ahead);
    const V e = VExp(d, hn::Mul(hn::Sub(hn::LoadU(d, x + j), shift), inv_t));
    hn::StoreU(e, d, y + j);
    acc = hn::Add(acc, e);
  }
  if (j < n) {
    const size_t count = static_cast<size_t>(n - j);
    const auto mask = hn::FirstN(d, count);
    V v;
    HWY_ALIGN T buffer[kMaxLanes<T>] = {};
    if (kMaskedTail) {
      v = hn::MaskedLoad(mask, d, x + j);
    } else {
      std::memcpy(buffer, x + j, count * sizeof(T));
      v = hn::Load(d, buffer);
    }
    const V e = hn::IfThenElseZero(mask, VExp(d, hn::Mul(hn::Sub(v, shift), inv_t)));
    if (kMaskedTail) {
      hn::BlendedStore(e, mask, d, y + j);
    } else {
      hn::Store(e, d, buffer);
      std::memcpy(y + j, buffer, count * sizeof(T));
    }
    acc = hn::Add(acc, e);
  }
  const T s = SumLanes(d, acc);
  const T* out[1] = {y};
  const V r = hn::Set(d, k::inverse_row_sum(s));
  Map<1>(d, out, y, 0, n, [&](V v, V, V, V) { return hn::Mul(v, r); });
}

template <class T>
HWY_NOINLINE void LogSoftmaxBackwardRowT(const T* g, const T* y, T* gx, int64_t n, T inv_t_) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const T* gin[1] = {g};
  const V sum = hn::Set(d, MapSum<1>(d, gin, 0, n, [&](V v, V, V, V) { return v; }));
  const V inv_t = hn::Set(d, inv_t_);
  const T* in[2] = {g, y};
  Map<2>(d, in, gx, 0, n, [&](V gv, V yv, V, V) {
    return hn::Mul(hn::Sub(gv, hn::Mul(VExp(d, yv), sum)), inv_t);
  }, RowPrefetch(n));
}

template <class T>
HWY_NOINLINE void SoftmaxBackwardRowT(const T* g, const T* y, T* gx, int64_t n, T inv_t_) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const T* in[2] = {g, y};
  const V dot = hn::Set(d, MapSum<2>(d, in, 0, n, [&](V gv, V yv, V, V) { return hn::Mul(gv, yv); }));
  const V inv_t = hn::Set(d, inv_t_);
  Map<2>(d, in, gx, 0, n, [&](V gv, V yv, V, V) {
    return hn::Mul(hn::Mul(yv, hn::Sub(gv, dot)), inv_t);
  }, RowPrefetch(n));
}

// kl_logits rows: log p = (a - p_max)/T - log Σ_p, log q likewise (or -log n), as the functors.
template <class T>
HWY_NOINLINE T KlRowT(const KlRow& r) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const V p_max = hn::Set(d, T(r.p_max)), p_ls = hn::Set(d, T(r.p_log_sum));
  const V q_max = hn::Set(d, T(r.q_max)), q_ls = hn::Set(d, T(r.q_log_sum));
  const V inv_t = hn::Set(d, T(r.inv_t));
  const T* in[2] = {static_cast<const T*>(r.p), static_cast<const T*>(r.q)};
  auto term = [&](V a, V log_q) {
    const V log_p = hn::Sub(hn::Mul(hn::Sub(a, p_max), inv_t), p_ls);
    return PLogRatio(d, VExp(d, log_p), log_p, log_q);
  };
  if (r.q)
    return MapSum<2>(d, in, 0, r.n, [&](V a, V b, V, V) {
      return term(a, hn::Sub(hn::Mul(hn::Sub(b, q_max), inv_t), q_ls));
    });
  const V log_q = hn::Neg(q_ls);
  return MapSum<1>(d, in, 0, r.n, [&](V a, V, V, V) { return term(a, log_q); });
}

template <class T>
HWY_NOINLINE void KlRowBackwardT(const KlRow& r) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const V p_max = hn::Set(d, T(r.p_max)), p_ls = hn::Set(d, T(r.p_log_sum));
  const V q_max = hn::Set(d, T(r.q_max)), q_ls = hn::Set(d, T(r.q_log_sum));
  const V inv_t = hn::Set(d, T(r.inv_t)), g = hn::Set(d, T(r.grad)), kl = hn::Set(d, T(r.kl));
  const T* in[2] = {static_cast<const T*>(r.p), static_cast<const T*>(r.q)};
  auto log_prob = [&](V x, V max, V ls) { return hn::Sub(hn::Mul(hn::Sub(x, max), inv_t), ls); };
  auto grad_p = [&](V log_p, V log_q) {
    const V p = VExp(d, log_p);
    const V slope = hn::Mul(hn::Mul(p, hn::Sub(hn::Sub(log_p, log_q), kl)), inv_t);
    return hn::Mul(g, hn::IfThenElseZero(hn::Gt(p, hn::Zero(d)), slope));
  };
  if (r.grad_p) {
    T* out = static_cast<T*>(r.grad_p);
    if (r.q)
      Map<2>(d, in, out, 0, r.n, [&](V a, V b, V, V) {
        return grad_p(log_prob(a, p_max, p_ls), log_prob(b, q_max, q_ls));
      });
    else
      Map<1>(d, in, out, 0, r.n, [&](V a, V, V, V) {
        return grad_p(log_prob(a, p_max, p_ls), hn::Neg(q_ls));
      });
  }
  if (r.grad_q && r.q)
    Map<2>(d, in, static_cast<T*>(r.grad_q), 0, r.n, [&](V a, V b, V, V) {
      const V p = VExp(d, log_prob(a, p_max, p_ls));
      const V q = VExp(d, log_prob(b, q_max, q_ls));
      return hn::Mul(g, hn::Mul(hn::Sub(q, p), inv_t));
    });
}

// ---------------------------------------------------------------- optimizers

template <class T>
HWY_NOINLINE void AdamT(T* p, const T* g, T* m, T* v, int64_t n, const k::AdamScalars<T>& s) {
  const hn::ScalableTag<T> d;
  using V = hn::Vec<decltype(d)>;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const V beta1 = hn::Set(d, s.beta1), omb1 = hn::Set(d, s.one_minus_beta1);
  const V beta2 = hn::Set(d, s.beta2), omb2 = hn::Set(d, s.one_minus_beta2);
  const V l2 = hn::Set(d, s.l2_weight_decay), decay = hn::Set(d, s.decay_factor);
  const V step = hn::Set(d, s.step_size), inv_bc2 = hn::Set(d, s.inv_bias_correction2_sqrt);
  const V eps = hn::Set(d, s.eps);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const V pv = hn::LoadU(d, p + i);
    const V gv = hn::Add(hn::LoadU(d, g + i), hn::Mul(l2, pv));
    const V decayed = hn::Mul(pv, decay);
    const V m_new = hn::Add(hn::Mul(beta1, hn::LoadU(d, m + i)), hn::Mul(omb1, gv));
    const V v_new = hn::Add(hn::Mul(beta2, hn::LoadU(d, v + i)), hn::Mul(hn::Mul(omb2, gv), gv));
    const V denom = hn::Add(hn::Mul(hn::Sqrt(v_new), inv_bc2), eps);
    hn::StoreU(m_new, d, m + i);
    hn::StoreU(v_new, d, v + i);
    hn::StoreU(hn::Sub(decayed, hn::Div(hn::Mul(step, m_new), denom)), d, p + i);
  }
  for (; i < n; ++i) k::adam_update(p[i], g[i], m[i], v[i], s);
}

// ---------------------------------------------------------------- the exported entry points
// One signature for every target (HWY_EXPORT's table); the dtype is the last dispatch.

// The four input pointers of a pointwise kind as T pointers.
template <class T> struct Typed {
  const T* p[4];
  explicit Typed(const void* const* in) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<const T*>(in[i]);
  }
};

bool Unary(UnaryOp op, DType dtype, const void* x, void* y, int64_t n, double a, double b) {
  if (dtype == DType::f32)
    return UnaryT(op, static_cast<const float*>(x), static_cast<float*>(y), n, float(a), float(b));
  return UnaryT(op, static_cast<const double*>(x), static_cast<double*>(y), n, a, b);
}

bool Binary(BinaryOp op, DType dtype, const void* a, const void* b, void* out, int64_t n,
            int broadcast) {
  if (dtype == DType::f32)
    return BinaryT(op, static_cast<const float*>(a), static_cast<const float*>(b),
                   static_cast<float*>(out), n, broadcast);
  return BinaryT(op, static_cast<const double*>(a), static_cast<const double*>(b),
                 static_cast<double*>(out), n, broadcast);
}

bool PointwiseKernel(Pointwise kind, DType dtype, const void* const* inputs, void* out,
                     int64_t begin, int64_t end, double param) {
  if (dtype == DType::f32)
    return PointwiseT(kind, Typed<float>(inputs).p, static_cast<float*>(out), begin, end, float(param));
  return PointwiseT(kind, Typed<double>(inputs).p, static_cast<double*>(out), begin, end, param);
}

bool PointwiseSumKernel(Pointwise kind, DType dtype, const void* const* inputs, int64_t begin,
                        int64_t end, double param, double* total) {
  if (dtype == DType::f32)
    return PointwiseSumT(kind, Typed<float>(inputs).p, begin, end, float(param), total);
  return PointwiseSumT(kind, Typed<double>(inputs).p, begin, end, param, total);
}

bool PointwiseGradKernel(Pointwise kind, DType dtype, int input, const void* grad,
                         bool grad_is_scalar, double scale, const void* const* inputs, void* out,
                         int64_t begin, int64_t end, double param) {
  if (dtype == DType::f32)
    return PointwiseGradT(kind, input, static_cast<const float*>(grad), grad_is_scalar,
                          float(scale), Typed<float>(inputs).p,
                          static_cast<float*>(out), begin, end, float(param));
  return PointwiseGradT(kind, input, static_cast<const double*>(grad), grad_is_scalar, scale,
                        Typed<double>(inputs).p, static_cast<double*>(out),
                        begin, end, param);
}

void ExpInPlace(DType dtype, void* v, int64_t n) {
  if (dtype == DType::f32) return ExpInPlaceT(static_cast<float*>(v), n);
  ExpInPlaceT(static_cast<double*>(v), n);
}

void RowStatsKernel(DType dtype, const void* x, int64_t n, double inv_t, double* max,
                    double* log_sum) {
  if (dtype == DType::f32) {
    const k::RowStats<float> st = RowStatsT(static_cast<const float*>(x), n, float(inv_t));
    *max = st.max, *log_sum = st.log_sum;
    return;
  }
  const k::RowStats<double> st = RowStatsT(static_cast<const double*>(x), n, inv_t);
  *max = st.max, *log_sum = st.log_sum;
}

double ExpSumKernel(DType dtype, const void* x, int64_t n, double shift, double inv_t) {
  if (dtype == DType::f32)
    return ExpSumT(static_cast<const float*>(x), n, float(shift), float(inv_t));
  return ExpSumT(static_cast<const double*>(x), n, shift, inv_t);
}

double KlRowKernel(DType dtype, const KlRow& row) {
  if (dtype == DType::f32) return KlRowT<float>(row);
  return KlRowT<double>(row);
}

void KlRowBackwardKernel(DType dtype, const KlRow& row) {
  if (dtype == DType::f32) return KlRowBackwardT<float>(row);
  KlRowBackwardT<double>(row);
}

// kind: 0 log_softmax, 1 softmax, 2 log_softmax backward, 3 softmax backward.
void RowKernel(int kind, DType dtype, const void* a, const void* b, void* out, int64_t n,
               double inv_t) {
  if (dtype == DType::f32) {
    const float* x = static_cast<const float*>(a);
    const float* y = static_cast<const float*>(b);
    float* o = static_cast<float*>(out);
    const float t = float(inv_t);
    if (kind == 0) return LogSoftmaxRowT(x, o, n, t);
    if (kind == 1) return SoftmaxRowT(x, o, n, t);
    if (kind == 2) return LogSoftmaxBackwardRowT(x, y, o, n, t);
    return SoftmaxBackwardRowT(x, y, o, n, t);
  }
  const double* x = static_cast<const double*>(a);
  const double* y = static_cast<const double*>(b);
  double* o = static_cast<double*>(out);
  if (kind == 0) return LogSoftmaxRowT(x, o, n, inv_t);
  if (kind == 1) return SoftmaxRowT(x, o, n, inv_t);
  if (kind == 2) return LogSoftmaxBackwardRowT(x, y, o, n, inv_t);
  return SoftmaxBackwardRowT(x, y, o, n, inv_t);
}

void AdamKernel(DType dtype, void* p, const void* g, void* m, void* v, int64_t n,
                const AdamStep& step) {
  if (dtype == DType::f32)
    return AdamT(static_cast<float*>(p), static_cast<const float*>(g), static_cast<float*>(m),
                 static_cast<float*>(v), n, k::adam_scalars<float>(step));
  AdamT(static_cast<double*>(p), static_cast<const double*>(g), static_cast<double*>(m),
        static_cast<double*>(v), n, k::adam_scalars<double>(step));
}

}  // namespace HWY_NAMESPACE
}  // namespace tg::cpu::simd
HWY_AFTER_NAMESPACE();

// ---------------------------------------------------------------- dispatch (compiled once)
#if HWY_ONCE
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "tapegrad/error.h"

namespace tg::cpu::simd {

HWY_EXPORT(Unary);
HWY_EXPORT(Binary);
HWY_EXPORT(PointwiseKernel);
HWY_EXPORT(PointwiseSumKernel);
HWY_EXPORT(PointwiseGradKernel);
HWY_EXPORT(ExpInPlace);
HWY_EXPORT(RowStatsKernel);
HWY_EXPORT(RowKernel);
HWY_EXPORT(ExpSumKernel);
HWY_EXPORT(KlRowKernel);
HWY_EXPORT(KlRowBackwardKernel);
HWY_EXPORT(AdamKernel);

namespace {

// The chosen target's entry of each HWY_EXPORT table, looked up once when the target is chosen:
// a kernel call is then one indirect call (HWY_DYNAMIC_DISPATCH would ask libhwy for the
// target's index on every call).
decltype(&HWY_STATIC_DISPATCH(Unary)) g_Unary = nullptr;
decltype(&HWY_STATIC_DISPATCH(Binary)) g_Binary = nullptr;
decltype(&HWY_STATIC_DISPATCH(PointwiseKernel)) g_PointwiseKernel = nullptr;
decltype(&HWY_STATIC_DISPATCH(PointwiseSumKernel)) g_PointwiseSumKernel = nullptr;
decltype(&HWY_STATIC_DISPATCH(PointwiseGradKernel)) g_PointwiseGradKernel = nullptr;
decltype(&HWY_STATIC_DISPATCH(ExpInPlace)) g_ExpInPlace = nullptr;
decltype(&HWY_STATIC_DISPATCH(RowStatsKernel)) g_RowStatsKernel = nullptr;
decltype(&HWY_STATIC_DISPATCH(RowKernel)) g_RowKernel = nullptr;
decltype(&HWY_STATIC_DISPATCH(ExpSumKernel)) g_ExpSumKernel = nullptr;
decltype(&HWY_STATIC_DISPATCH(KlRowKernel)) g_KlRowKernel = nullptr;
decltype(&HWY_STATIC_DISPATCH(KlRowBackwardKernel)) g_KlRowBackwardKernel = nullptr;
decltype(&HWY_STATIC_DISPATCH(AdamKernel)) g_AdamKernel = nullptr;

void cache_functions() {
  const size_t index =
      (HWY_TARGETS & (HWY_TARGETS - 1)) == 0 ? 0 : hwy::GetChosenTarget().GetIndex();
  g_Unary = HWY_DISPATCH_TABLE(Unary)[index];
  g_Binary = HWY_DISPATCH_TABLE(Binary)[index];
  g_PointwiseKernel = HWY_DISPATCH_TABLE(PointwiseKernel)[index];
  g_PointwiseSumKernel = HWY_DISPATCH_TABLE(PointwiseSumKernel)[index];
  g_PointwiseGradKernel = HWY_DISPATCH_TABLE(PointwiseGradKernel)[index];
  g_ExpInPlace = HWY_DISPATCH_TABLE(ExpInPlace)[index];
  g_RowStatsKernel = HWY_DISPATCH_TABLE(RowStatsKernel)[index];
  g_RowKernel = HWY_DISPATCH_TABLE(RowKernel)[index];
  g_ExpSumKernel = HWY_DISPATCH_TABLE(ExpSumKernel)[index];
  g_KlRowKernel = HWY_DISPATCH_TABLE(KlRowKernel)[index];
  g_KlRowBackwardKernel = HWY_DISPATCH_TABLE(KlRowBackwardKernel)[index];
  g_AdamKernel = HWY_DISPATCH_TABLE(AdamKernel)[index];
}

// 0 until the first kernel reads TAPEGRAD_SIMD; then 1 (vector kernels) or 2 (functor loops:
// TAPEGRAD_SIMD=none).
std::atomic<int> g_mode{0};
int64_t g_target = 0;  // the Highway target chosen (0 under `none`)

int64_t best_of(int64_t targets) { return targets & -targets; }  // lowest bit = best target

void choose(int64_t target) {
  if (target == 0) {
    g_target = 0;
    g_mode.store(2, std::memory_order_release);
    return;
  }
  hwy::SetSupportedTargetsForTest(target);
  hwy::GetChosenTarget().Update(hwy::SupportedTargets());
  cache_functions();
  g_target = target;
  g_mode.store(1, std::memory_order_release);
}

void initialize() {
  static std::once_flag once;
  std::call_once(once, [] {
    const int64_t available = hwy::SupportedTargets() & HWY_TARGETS;
    const char* env = std::getenv("TAPEGRAD_SIMD");
    std::string want = env ? env : "";
    for (char& c : want) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (want.empty() || want == "best" || want == "native") return choose(best_of(available));
    if (want == "none") return choose(0);
    if (want == "avx512") want = "avx3";
    std::string names;
    for (int64_t rest = available; rest; rest &= rest - 1) {
      const int64_t t = best_of(rest);
      std::string name = hwy::TargetName(t);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      // "scalar" and "emu128" both name the portable target, whichever this build has.
      const bool portable = (t == HWY_SCALAR || t == HWY_EMU128) && (want == "scalar" || want == "emu128");
      if (name == want || portable) return choose(t);
      names += " " + name;
    }
    fail("TAPEGRAD_SIMD", "\"", env, "\" is not a SIMD target this build and CPU support; "
         "expected one of:", names, " none");
  });
}

inline bool on() {
  int mode = g_mode.load(std::memory_order_acquire);
  if (HWY_UNLIKELY(mode == 0)) {
    initialize();
    mode = g_mode.load(std::memory_order_acquire);
  }
  return mode == 1;
}

inline bool floating(DType dtype) { return dtype == DType::f32 || dtype == DType::f64; }

}  // namespace

const char* name_of(int64_t target) { return target ? hwy::TargetName(target) : "none"; }

const char* target_name() {
  on();
  return name_of(g_target);
}

bool enabled() { return on(); }

std::vector<int64_t> available_targets() {
  std::vector<int64_t> out;
  hwy::SetSupportedTargetsForTest(0);  // the CPU's own set
  const int64_t available = hwy::SupportedTargets() & HWY_TARGETS;
  for (int64_t rest = available; rest; rest &= rest - 1) out.push_back(best_of(rest));
  if (g_target) {
    hwy::SetSupportedTargetsForTest(g_target);
    hwy::GetChosenTarget().Update(hwy::SupportedTargets());
  }
  return out;
}

void select_target(int64_t target) {
  on();
  choose(target);
}

bool unary(UnaryOp op, DType dtype, const void* x, void* y, int64_t n, double a, double b) {
  return on() && floating(dtype) && g_Unary(op, dtype, x, y, n, a, b);
}

bool binary(BinaryOp op, DType dtype, const void* a, const void* b, void* out, int64_t n,
            int broadcast) {
  return on() && floating(dtype) && g_Binary(op, dtype, a, b, out, n, broadcast);
}

bool pointwise(Backend::Pointwise kind, DType dtype, const void* const* inputs, void* out,
               int64_t begin, int64_t end, double param) {
  return on() && floating(dtype) &&
         g_PointwiseKernel(kind, dtype, inputs, out, begin, end, param);
}

bool pointwise_sum(Backend::Pointwise kind, DType dtype, const void* const* inputs,
                   int64_t begin, int64_t end, double param, double* total) {
  return on() && floating(dtype) &&
         g_PointwiseSumKernel(kind, dtype, inputs, begin, end, param, total);
}

bool pointwise_grad(Backend::Pointwise kind, DType dtype, int input, const void* grad,
                    bool grad_is_scalar, double scale, const void* const* inputs, void* out,
                    int64_t begin, int64_t end, double param) {
  return on() && floating(dtype) &&
         g_PointwiseGradKernel(kind, dtype, input, grad, grad_is_scalar, scale,
                                                   inputs, out, begin, end, param);
}

bool exp_in_place(DType dtype, void* v, int64_t n) {
  if (!on() || !floating(dtype)) return false;
  g_ExpInPlace(dtype, v, n);
  return true;
}

bool row_stats(DType dtype, const void* x, int64_t n, double inv_t, double* max, double* log_sum) {
  if (!on() || !floating(dtype)) return false;
  g_RowStatsKernel(dtype, x, n, inv_t, max, log_sum);
  return true;
}

bool exp_sum(DType dtype, const void* x, int64_t n, double shift, double inv_t, double* sum) {
  if (!on() || !floating(dtype)) return false;
  *sum = g_ExpSumKernel(dtype, x, n, shift, inv_t);
  return true;
}

bool kl_row(DType dtype, const KlRow& row, double* total) {
  if (!on() || !floating(dtype)) return false;
  *total = g_KlRowKernel(dtype, row);
  return true;
}

bool kl_row_backward(DType dtype, const KlRow& row) {
  if (!on() || !floating(dtype)) return false;
  g_KlRowBackwardKernel(dtype, row);
  return true;
}

static bool row(int kind, DType dtype, const void* a, const void* b, void* out, int64_t n,
                double inv_t) {
  if (!on() || !floating(dtype)) return false;
  g_RowKernel(kind, dtype, a, b, out, n, inv_t);
  return true;
}

bool log_softmax_row(DType dtype, const void* x, void* y, int64_t n, double inv_t) {
  return row(0, dtype, x, nullptr, y, n, inv_t);
}
bool softmax_row(DType dtype, const void* x, void* y, int64_t n, double inv_t) {
  return row(1, dtype, x, nullptr, y, n, inv_t);
}
bool log_softmax_backward_row(DType dtype, const void* grad_y, const void* y, void* grad_x,
                              int64_t n, double inv_t) {
  return row(2, dtype, grad_y, y, grad_x, n, inv_t);
}
bool softmax_backward_row(DType dtype, const void* grad_y, const void* y, void* grad_x,
                          int64_t n, double inv_t) {
  return row(3, dtype, grad_y, y, grad_x, n, inv_t);
}

bool adam(DType dtype, void* param, const void* grad, void* exp_avg, void* exp_avg_sq, int64_t n,
          const AdamStep& step) {
  if (!on() || !floating(dtype)) return false;
  g_AdamKernel(dtype, param, grad, exp_avg, exp_avg_sq, n, step);
  return true;
}

}  // namespace tg::cpu::simd
#endif  // HWY_ONCE
