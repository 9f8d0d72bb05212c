// tests/test_simd.cpp — the CPU backend's vector kernels (src/cpu/simd.h) against the functors of
// src/kernels/ that the CUDA backend shares, element by element, on every SIMD target this CPU
// supports; the kernels' threads (results bit-identical for any thread count, a fork in
// between).
//
// The reference of each check is the same backend call run on the functor loops alone
// (simd::select_target(0), what TAPEGRAD_SIMD=none does), so every vector kernel is compared
// with the functor it stands for, over inputs that include the special values (NaN, ±inf, ±0,
// subnormals, the ends of Highway's valid ranges) and lengths that end in a partial vector.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "../src/cpu/simd.h"
#include "../src/cpu/thread_pool.h"
#include "helpers.h"

using namespace tg;
namespace simd = tg::cpu::simd;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::nan("");

// Restores the target (and thread count) a test case found.
struct TargetGuard {
  std::string name = simd::target_name();
  int threads = num_threads();
  ~TargetGuard() {
    int64_t chosen = 0;
    for (int64_t t : simd::available_targets())
      if (name == simd::name_of(t)) chosen = t;
    simd::select_target(chosen);
    set_num_threads(threads);
  }
};

// Values every kernel sees: the special ones, the edges of Highway's valid ranges, then a
// spread of ordinary values. Odd length (a partial vector at the end on every target).
std::vector<double> inputs(double low, double high, size_t random_count, unsigned seed) {
  std::vector<double> v = {kNaN, kInf, -kInf, 0.0, -0.0, 1e-40, -1e-40, 1e-310, FLT_MAX, -FLT_MAX,
                           88.72, 88.7228, 88.73, 100.0, -87.3, -103.9, -104.1, -120.0, 709.7,
                           709.79, -745.0, 1.0, -1.0, -0.999999, -0.5, -1e-7, 1e-7, -1.5, 0.3466,
                           -0.3466, 9.0, 9.2, -9.2, 19.0, 20.0, 2.0, 0.5, 1e30, -1e30};
  uint64_t state = 0x9E3779B97F4A7C15ull * (seed + 1);
  for (size_t i = 0; i < random_count; ++i) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    v.push_back(low + (high - low) * static_cast<double>(state >> 11) / 9007199254740992.0);
  }
  return v;
}

// Both NaN, both the same infinity, or within tol of each other (relative, with an absolute
// floor of tol·scale for results that cancel).
bool close(double got, double want, double tol, double scale = 1.0) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
  if (std::isinf(want) || std::isinf(got)) return got == want;
  return std::abs(got - want) <= tol * (std::abs(want) + scale);
}

double tolerance(DType dtype) { return dtype == DType::f32 ? 4e-6 : 1e-13; }

std::vector<double> values_of(DType dtype, const std::vector<char>& bytes) {
  std::vector<double> out;
  if (dtype == DType::f32) {
    const float* p = reinterpret_cast<const float*>(bytes.data());
    out.assign(p, p + bytes.size() / sizeof(float));
  } else {
    const double* p = reinterpret_cast<const double*>(bytes.data());
    out.assign(p, p + bytes.size() / sizeof(double));
  }
  return out;
}

std::vector<char> bytes_of(DType dtype, const std::vector<double>& values) {
  std::vector<char> out(values.size() * dtype_size(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::f32) reinterpret_cast<float*>(out.data())[i] = static_cast<float>(values[i]);
    else reinterpret_cast<double*>(out.data())[i] = values[i];
  }
  return out;
}

// Runs `kernel` (which writes into the buffer it is given) on the functor loops, then on every
// SIMD target, and compares each target's output with the functors' element by element.
template <class Kernel>
void against_functors(const char* what, DType dtype, size_t out_count, Kernel kernel,
                      double tol_factor = 1.0, double scale = 1.0) {
  TargetGuard guard;
  simd::select_target(0);
  std::vector<char> want(out_count * dtype_size(dtype));
  kernel(want.data());
  const std::vector<double> expected = values_of(dtype, want);
  for (int64_t target : simd::available_targets()) {
    simd::select_target(target);
    std::vector<char> got(want.size());
    kernel(got.data());
    const std::vector<double> values = values_of(dtype, got);
    for (size_t i = 0; i < values.size(); ++i) {
      if (close(values[i], expected[i], tolerance(dtype) * tol_factor, scale)) continue;
      INFO(what << " " << dtype << " on " << simd::name_of(target) << ", element " << i
                << ": vector " << values[i] << ", functor " << expected[i]);
      FAIL("the vector kernel differs from its functor");
    }
  }
}

const DType kDtypes[] = {DType::f32, DType::f64};

Backend& cpu_backend_() { return backend_for(Device::cpu_device()); }

}  // namespace

TEST_CASE("simd: the targets this CPU supports, and the active one", "[simd]") {
  const std::vector<int64_t> targets = simd::available_targets();
  REQUIRE(!targets.empty());
  INFO("active: " << cpu_simd_target());
  // TAPEGRAD_SIMD, when set, names the active target.
  if (const char* env = std::getenv("TAPEGRAD_SIMD")) {
    std::string want = env, got = cpu_simd_target();
    for (char& c : want) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (char& c : got) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (want == "avx512") want = "avx3";
    if (want == "scalar" || want == "emu128") CHECK((got == "scalar" || got == "emu128"));
    else CHECK(got == want);
  } else {
    CHECK(std::string(cpu_simd_target()) == simd::name_of(targets.front()));
  }
}

TEST_CASE("simd: unary kernels match their functors on every target", "[simd]") {
  const UnaryOp ops[] = {UnaryOp::neg, UnaryOp::exp, UnaryOp::log, UnaryOp::log1p,
                         UnaryOp::sqrt, UnaryOp::abs, UnaryOp::sign, UnaryOp::tanh,
                         UnaryOp::sigmoid, UnaryOp::relu, UnaryOp::square, UnaryOp::reciprocal,
                         UnaryOp::add_scalar, UnaryOp::mul_scalar, UnaryOp::rsub_scalar,
                         UnaryOp::pow_scalar, UnaryOp::clamp, UnaryOp::in_range,
                         UnaryOp::isfinite, UnaryOp::isnan, UnaryOp::gelu, UnaryOp::gelu_tanh,
                         UnaryOp::silu, UnaryOp::leaky_relu, UnaryOp::softplus, UnaryOp::elu,
                         UnaryOp::sin, UnaryOp::cos, UnaryOp::leaky_relu_slope,
                         UnaryOp::softplus_slope, UnaryOp::elu_slope};
  for (DType dtype : kDtypes)
    for (auto [low, high] : {std::pair{-3.0, 3.0}, std::pair{-100.0, 100.0}, std::pair{-1.0, 0.0}}) {
      const std::vector<char> x = bytes_of(dtype, inputs(low, high, 1000, 1));
      const size_t n = x.size() / dtype_size(dtype);
      for (UnaryOp op : ops)
        for (auto [a, b] : {std::pair{-0.5, 2.0}, std::pair{1.0, 20.0}, std::pair{2.0, 5.0}})
          against_functors("unary", dtype, n, [&](char* y) {
            cpu_backend_().unary(op, dtype, x.data(), y, static_cast<int64_t>(n), a, b);
          });
    }
}

TEST_CASE("simd: log1p on (-1, 0) and exp, log near the ends of their ranges", "[simd]") {
  // A fine grid of (-1, 0), where Highway's Log1p is not documented, and the overflow and
  // underflow edges of exp.
  for (DType dtype : kDtypes) {
    std::vector<double> grid;
    for (int i = 1; i < 4000; ++i) grid.push_back(-1.0 + i / 4000.0);
    for (int i = 0; i < 200; ++i) grid.push_back(-1.0 + std::ldexp(1.0, -i / 8));
    for (double x = 88.0; x < 89.0; x += 0.001) grid.push_back(x);
    for (double x = -110.0; x < -85.0; x += 0.01) grid.push_back(x);
    for (double x = 700.0; x < 712.0; x += 0.01) grid.push_back(x);
    const std::vector<char> x = bytes_of(dtype, grid);
    for (UnaryOp op : {UnaryOp::log1p, UnaryOp::exp, UnaryOp::log, UnaryOp::tanh, UnaryOp::sigmoid})
      against_functors("unary grid", dtype, grid.size(), [&](char* y) {
        cpu_backend_().unary(op, dtype, x.data(), y, static_cast<int64_t>(grid.size()), 0, 0);
      });
  }
}

TEST_CASE("simd: float32 exp within 1 ulp of exp in double", "[simd]") {
  // VExp's own float32 path (ExpNormalRangeF32, simd_kernels.cpp) covers [-87.3, 88] in whole
  // vectors; a grid of it in steps of 2^-12, every target. (Vectors with a lane outside go to
  // Highway's Exp: the grid above covers its edges.)
  std::vector<float> grid;
  for (float x = -87.3f; x <= 88.0f; x += 1.0f / 4096) grid.push_back(x);
  const int64_t n = static_cast<int64_t>(grid.size());
  TargetGuard guard;
  for (int64_t target : simd::available_targets()) {
    simd::select_target(target);
    std::vector<float> y(grid.size());
    cpu_backend_().unary(UnaryOp::exp, DType::f32, grid.data(), y.data(), n, 0, 0);
    double worst = 0;
    for (size_t i = 0; i < grid.size(); ++i) {
      const double exact = std::exp(static_cast<double>(grid[i]));
      const float want = static_cast<float>(exact);
      const double ulp = static_cast<double>(std::nextafter(want, INFINITY) - want);
      worst = std::max(worst, std::abs(static_cast<double>(y[i]) - exact) / ulp);
    }
    INFO(simd::name_of(target) << ": worst " << worst << " ulp");
    CHECK(worst <= 1.0);
  }
}

TEST_CASE("simd: float32 tanh within 8 ulp of tanh in double, sin and cos past their range", "[simd]") {
  // VTanh's float32 rational (simd_kernels.cpp): a grid of [-10, 10], the small values and the
  // saturation edge, every target; 8 ulp of the float nearest to tanh computed in double.
  std::vector<float> grid;
  for (int i = -200000; i <= 200000; ++i) grid.push_back(static_cast<float>(i) * 5e-5f);
  for (int e = -149; e < 0; ++e) grid.push_back(std::ldexp(1.0f, e)), grid.push_back(-std::ldexp(1.3f, e));
  for (float x = 8.5f; x < 9.5f; x += 1e-4f) grid.push_back(x), grid.push_back(-x);
  const int64_t n = static_cast<int64_t>(grid.size());
  TargetGuard guard;
  for (int64_t target : simd::available_targets()) {
    simd::select_target(target);
    std::vector<float> y(grid.size());
    cpu_backend_().unary(UnaryOp::tanh, DType::f32, grid.data(), y.data(), n, 0, 0);
    double worst = 0;
    for (size_t i = 0; i < grid.size(); ++i) {
      const float want = static_cast<float>(std::tanh(static_cast<double>(grid[i])));
      const float ulp = std::nextafter(std::abs(want), INFINITY) - std::abs(want);
      const double off = std::abs(static_cast<double>(y[i]) - want) / ulp;
      worst = std::max(worst, off);
      if (off <= 8 && std::signbit(y[i]) == std::signbit(want)) continue;
      INFO("tanh(" << grid[i] << ") on " << simd::name_of(target) << ": " << y[i] << ", want " << want);
      FAIL("more than 8 ulp off");
    }
    INFO(simd::name_of(target) << ": worst " << worst << " ulp");
    CHECK(worst <= 8);
  }
  // sin and cos beyond Highway's [-39000, 39000] (glibc's values there), and at its edge
  for (DType dtype : kDtypes) {
    const std::vector<double> v = {38999.0, 39000.0, 39001.0, -39001.0, 1e6, -3e7, 1e20, 123456.7,
                                   kInf, -kInf, kNaN, 0.5, -0.5, 3.14159, 1e-30};
    const std::vector<char> x = bytes_of(dtype, v);
    for (UnaryOp op : {UnaryOp::sin, UnaryOp::cos})
      against_functors("sin/cos", dtype, v.size(), [&](char* y) {
        cpu_backend_().unary(op, dtype, x.data(), y, static_cast<int64_t>(v.size()), 0, 0);
      });
  }
}

TEST_CASE("simd: binary kernels match their functors, broadcast or not", "[simd]") {
  const BinaryOp ops[] = {BinaryOp::add, BinaryOp::sub, BinaryOp::mul, BinaryOp::div,
                          BinaryOp::pow, BinaryOp::minimum, BinaryOp::maximum, BinaryOp::equal,
                          BinaryOp::less, BinaryOp::less_equal, BinaryOp::greater,
                          BinaryOp::greater_equal, BinaryOp::relu_backward,
                          BinaryOp::tanh_backward, BinaryOp::sigmoid_backward,
                          BinaryOp::abs_backward, BinaryOp::gelu_backward,
                          BinaryOp::gelu_tanh_backward, BinaryOp::silu_backward};
  for (DType dtype : kDtypes) {
    std::vector<double> av = inputs(-3, 3, 1000, 2), bv = inputs(-3, 3, 1000, 3);
    std::rotate(bv.begin(), bv.begin() + 7, bv.end());  // specials meet other values
    const std::vector<char> a = bytes_of(dtype, av), b = bytes_of(dtype, bv);
    const int64_t n = static_cast<int64_t>(av.size());
    for (BinaryOp op : ops) {
      // same shape; b one value (broadcast); a one value
      for (int mode = 0; mode < 3; ++mode) {
        BroadcastLayout layout;
        layout.shape = Shape({n});
        layout.inputs = 2;
        layout.strides[0][0] = mode == 2 ? 0 : 1;
        layout.strides[1][0] = mode == 1 ? 0 : 1;
        against_functors("binary", dtype, static_cast<size_t>(n), [&](char* out) {
          cpu_backend_().binary(op, dtype, a.data(), b.data(), out, layout);
        });
      }
    }
  }
}

TEST_CASE("simd: pointwise kinds and their gradients match their functors", "[simd]") {
  using P = Backend::Pointwise;
  const P kinds[] = {P::bce_with_logits, P::kl_div, P::kl_div_log_target,
                     P::gaussian_kl_standard, P::gaussian_kl, P::squared_error, P::entropy,
                     P::js_divergence, P::total_variation, P::ppo_clip, P::reparameterize};
  const int arity[] = {2, 2, 2, 2, 4, 2, 1, 2, 2, 3, 3};
  for (DType dtype : kDtypes) {
    std::vector<std::vector<char>> in;
    for (unsigned i = 0; i < 4; ++i) {
      std::vector<double> v = inputs(i % 2 ? 0.0 : -4.0, i % 2 ? 1.0 : 4.0, 1200, 10 + i);
      std::rotate(v.begin(), v.begin() + 5 * i, v.end());
      in.push_back(bytes_of(dtype, v));
    }
    const int64_t n = static_cast<int64_t>(in[0].size() / dtype_size(dtype));
    std::vector<char> grad = bytes_of(dtype, inputs(-2, 2, 1200, 20));
    Backend::PointwiseInputs inputs_;
    for (int i = 0; i < 4; ++i) inputs_.data[i] = in[i].data();
    for (size_t kk = 0; kk < std::size(kinds); ++kk) {
      const P kind = kinds[kk];
      against_functors("pointwise", dtype, static_cast<size_t>(n), [&](char* out) {
        cpu_backend_().pointwise(kind, dtype, inputs_, out, n, 0.2, false, 1.0);
      });
      // summed: finite inputs only (a NaN term makes both sums NaN, which says nothing)
      Backend::PointwiseInputs finite;
      std::vector<std::vector<char>> finite_in;
      for (unsigned i = 0; i < 4; ++i)
        finite_in.push_back(bytes_of(dtype, inputs(i % 2 ? 0.01 : -4.0, i % 2 ? 1.0 : 4.0, 70000, 30 + i)));
      for (int i = 0; i < 4; ++i) finite.data[i] = finite_in[i].data();
      const int64_t m = static_cast<int64_t>(finite_in[0].size() / dtype_size(dtype)) - 39;
      for (int i = 0; i < 4; ++i) finite.data[i] = finite_in[i].data() + 39 * dtype_size(dtype);
      against_functors("pointwise sum", dtype, 1, [&](char* out) {
        cpu_backend_().pointwise(kind, dtype, finite, out, m, 0.2, true, 0.5);
      }, 10.0);
      for (int input = 0; input < arity[kk]; ++input)
        for (bool scalar_grad : {false, true})
          against_functors("pointwise_backward", dtype, static_cast<size_t>(n), [&](char* out) {
            cpu_backend_().pointwise_backward(kind, dtype, input, grad.data(), scalar_grad, 0.7,
                                             inputs_, out, n, 0.2);
          });
    }
  }
}

TEST_CASE("simd: softmax rows match the functor loops", "[simd]") {
  for (DType dtype : kDtypes)
    for (int64_t n : {7, 64, 100, 1000, 2500}) {
      const int64_t rows = 5;
      std::vector<double> xv = inputs(-20, 20, rows * n, 40);
      xv.resize(rows * n);
      // row 0 all -inf, row 1 holds the specials (NaN: a NaN row), others ordinary
      for (int64_t j = 0; j < n; ++j) xv[j] = -kInf;
      for (int64_t j = 0; j < n; ++j) xv[n + j] = inputs(-20, 20, 0, 0)[j % 39];
      if (n > 3) xv[2 * n + 1] = -kInf;
      const std::vector<char> x = bytes_of(dtype, xv);
      std::vector<char> g = bytes_of(dtype, inputs(-1, 1, rows * n, 41));
      g.resize(x.size());
      for (double t : {1.0, 0.3}) {
        Backend::SoftmaxLayout layout;
        layout.outer = rows, layout.n = n, layout.temperature = t;
        for (auto kind : {Backend::SoftmaxKind::softmax, Backend::SoftmaxKind::log_softmax}) {
          against_functors("softmax", dtype, rows * n, [&](char* y) {
            cpu_backend_().softmax(kind, dtype, x.data(), y, layout);
          });
          // backward from a finite y
          std::vector<char> y(x.size());
          std::vector<double> yv = inputs(-5, 0, rows * n, 42);
          yv.resize(rows * n);
          std::vector<char> yb = bytes_of(dtype, yv);
          // Σ grad·y is summed in another order by each: its rounding, relative to the terms'
          // magnitude (up to 5·n), is the absolute floor
          against_functors("softmax_backward", dtype, rows * n, [&](char* gx) {
            cpu_backend_().softmax_backward(kind, dtype, g.data(), yb.data(), gx, layout);
          }, 4.0, 5.0 * static_cast<double>(n));
        }
        // the statistics of kl_logits and cross_entropy go through the vector row statistics
        std::vector<char> kl(rows * dtype_size(dtype)), stats(4 * rows * dtype_size(dtype));
        std::vector<double> qv = inputs(-5, 5, rows * n, 43);
        qv.resize(rows * n);
        const std::vector<char> q = bytes_of(dtype, qv);
        for (const char* qp : {q.data(), static_cast<const char*>(nullptr)}) {
          against_functors("kl_logits", dtype, rows, [&](char* out) {
            cpu_backend_().kl_logits(dtype, x.data(), qp, out, stats.data(), layout);
          }, 10.0);
          // the backward from the functors' statistics and divergences
          TargetGuard guard;
          simd::select_target(0);
          cpu_backend_().kl_logits(dtype, x.data(), qp, kl.data(), stats.data(), layout);
          const std::vector<char> grad_kl = bytes_of(dtype, inputs(0.5, 2, rows, 44));
          for (int which = 0; which < 2; ++which) {
            if (which == 1 && !qp) continue;
            against_functors("kl_logits_backward", dtype, rows * n, [&](char* out) {
              std::vector<char> other(x.size());
              cpu_backend_().kl_logits_backward(dtype, grad_kl.data(), x.data(), qp, kl.data(),
                                               stats.data(), which == 0 ? out : other.data(),
                                               which == 1 ? out : other.data(), layout);
            }, 10.0);
          }
        }
      }
    }
}

// Short rows (n < 64: cpu_fused.cpp's blocks of rows, their exps and the logs of their sums in
// vector loops) over 37 rows, with one temperature or one per row; row 0 is all -inf, row 1 holds
// a NaN, row 2 a +inf, row 3 one -inf element; n = 1, 2 and 17 leave partial chains in the
// interleaved max and Σ.
TEST_CASE("simd: short rows in blocks match the functor loops", "[simd]") {
  for (DType dtype : kDtypes)
    for (int64_t n : {1, 2, 10, 17, 63}) {
      const int64_t rows = 37;
      std::vector<double> xv = inputs(-20, 20, rows * n, 50);
      xv.erase(xv.begin(), xv.begin() + 39);  // the random part only
      xv.resize(rows * n, 0.5);
      for (int64_t j = 0; j < n; ++j) xv[j] = -kInf;
      xv[n + n / 2] = kNaN;
      xv[2 * n] = kInf;
      if (n > 1) xv[3 * n + 1] = -kInf;
      // rows 4..7: one logit of 400 at j = r mod n, so that a max that missed it overflows e^x
      for (int64_t r = 4; r < 8; ++r) xv[r * n + r % n] = 400.0;
      const std::vector<char> x = bytes_of(dtype, xv);
      std::vector<double> tv(rows);
      for (int64_t r = 0; r < rows; ++r) tv[r] = 0.25 + 0.1 * static_cast<double>(r % 7);
      const std::vector<char> temperatures = bytes_of(dtype, tv);
      std::vector<double> gv = inputs(-1, 1, rows * n, 51);
      gv.erase(gv.begin(), gv.begin() + 39);
      gv.resize(rows * n, 0.25);
      const std::vector<char> g = bytes_of(dtype, gv);
      std::vector<double> yv = inputs(-5, 0, rows * n, 52);
      yv.erase(yv.begin(), yv.begin() + 39);
      yv.resize(rows * n, -1.0);
      const std::vector<char> y = bytes_of(dtype, yv);
      for (bool per_row : {false, true}) {
        Backend::SoftmaxLayout layout;
        layout.outer = rows, layout.n = n, layout.temperature = 0.7;
        if (per_row) layout.temperatures = temperatures.data();
        INFO("n = " << n << (per_row ? ", a temperature per row" : ", one temperature"));
        // log_softmax against its definition in long double, on the best target
        {
          std::vector<char> out(x.size());
          cpu_backend_().softmax(Backend::SoftmaxKind::log_softmax, dtype, x.data(), out.data(), layout);
          const std::vector<double> got = values_of(dtype, out);
          const std::vector<double> xs = values_of(dtype, x);
          for (int64_t r = 0; r < rows; ++r) {
            const long double inv_t = 1.0L / (per_row ? tv[r] : 0.7);
            long double m = -INFINITY, sum = 0;
            for (int64_t j = 0; j < n; ++j) m = std::max<long double>(m, xs[r * n + j]);
            const long double shift = std::isinf(m) && m < 0 ? 0 : m;
            for (int64_t j = 0; j < n; ++j) sum += std::exp((xs[r * n + j] - shift) * inv_t);
            for (int64_t j = 0; j < n; ++j) {
              const bool nan_row = r == 1 || r == 2;  // a NaN, or +inf (inf - inf)
              const double want = nan_row ? kNaN
                                  : sum == 0 ? -kInf  // all -inf: the zero distribution
                                             : static_cast<double>((xs[r * n + j] - shift) * inv_t - std::log(sum));
              INFO("row " << r << ", element " << j << ": " << got[r * n + j] << ", want " << want);
              CHECK(close(got[r * n + j], want, 4 * tolerance(dtype), 1.0));
            }
          }
        }
        for (auto kind : {Backend::SoftmaxKind::softmax, Backend::SoftmaxKind::log_softmax}) {
          against_functors("softmax", dtype, rows * n, [&](char* out) {
            cpu_backend_().softmax(kind, dtype, x.data(), out, layout);
          });
          against_functors("softmax_backward", dtype, rows * n, [&](char* gx) {
            cpu_backend_().softmax_backward(kind, dtype, g.data(), y.data(), gx, layout);
          }, 4.0, static_cast<double>(n));
        }
        std::vector<char> stats(4 * rows * dtype_size(dtype));
        against_functors("kl_logits", dtype, rows, [&](char* out) {
          cpu_backend_().kl_logits(dtype, x.data(), y.data(), out, stats.data(), layout);
        }, 10.0);
      }
    }
}

TEST_CASE("simd: adam matches its functor bit for bit", "[simd]") {
  for (DType dtype : kDtypes) {
    const std::vector<char> p0 = bytes_of(dtype, inputs(-1, 1, 3000, 50));
    const std::vector<char> g = bytes_of(dtype, inputs(-1, 1, 3000, 51));
    const std::vector<char> m0 = bytes_of(dtype, inputs(-0.1, 0.1, 3000, 52));
    const std::vector<char> v0 = bytes_of(dtype, inputs(0, 0.1, 3000, 53));
    const int64_t n = static_cast<int64_t>(p0.size() / dtype_size(dtype));
    for (bool decoupled : {false, true}) {
      AdamStep step;
      step.lr = 1e-3, step.beta1 = 0.9, step.beta2 = 0.999, step.eps = 1e-8;
      step.weight_decay = 0.01, step.decoupled_weight_decay = decoupled, step.step = 3;
      // param, then exp_avg, then exp_avg_sq: each compared after one step
      for (int which = 0; which < 3; ++which)
        against_functors("adam", dtype, static_cast<size_t>(n), [&](char* out) {
          std::vector<char> p = p0, m = m0, v = v0;
          cpu_backend_().adam_step(dtype, p.data(), g.data(), m.data(), v.data(), n, step);
          const std::vector<char>& r = which == 0 ? p : which == 1 ? m : v;
          std::memcpy(out, r.data(), r.size());
        }, 0.0);
    }
  }
}

TEST_CASE("simd: big kernels give the same bits for any thread count", "[simd]") {
  TargetGuard guard;
  const int64_t n = 300007;  // several pieces, the last one partial
  Generator generator(7);
  Tensor x = normal({n}, 0, 2, generator);
  Tensor p = softmax(randn({n}, generator), -1);
  Tensor big_rows = normal({600, 1000}, 0, 3, generator);
  // Gathers with repeated indices: rows of a batch (index_select, one slice of 1000 per index)
  // and elements within rows (gather, whose backward adds repeats per row).
  Tensor tall = normal({4000, 100}, 0, 1, generator);
  std::vector<int64_t> picks(4000 * 40), rows(2000);
  for (size_t i = 0; i < picks.size(); ++i) picks[i] = int64_t((i * 7919) % 97 % 60);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = int64_t((i * 104729) % 600);
  const Tensor pick_index = index_tensor(picks, {4000, 40}), row_index = index_tensor(rows, {2000});
  auto run = [&] {
    std::vector<std::vector<double>> out;
    out.push_back(tanh(x).to_vector());
    out.push_back(add(x, p).to_vector());
    out.push_back(kl_div(log_softmax(x, -1), p, Reduction::sum).to_vector());
    out.push_back(log_softmax(big_rows, -1).to_vector());
    out.push_back(softmax(big_rows, -1).to_vector());
    out.push_back(sum(big_rows).to_vector());
    Tensor leaf = x.detach().set_requires_grad();
    Tensor loss = bce_with_logits(leaf, p, Reduction::mean);
    backward(loss);
    out.push_back(loss.to_vector());
    out.push_back(leaf.grad().to_vector());
    Tensor tall_leaf = tall.detach().set_requires_grad();
    Tensor rows_leaf = big_rows.detach().set_requires_grad();
    Tensor picked = gather(tall_leaf, 1, pick_index), selected = index_select(rows_leaf, 0, row_index);
    out.push_back(picked.to_vector());
    out.push_back(selected.to_vector());
    backward(sum(picked * picked) + sum(selected * selected));
    out.push_back(tall_leaf.grad().to_vector());
    out.push_back(rows_leaf.grad().to_vector());
    return out;
  };
  set_num_threads(1);
  const auto one = run();
  for (int threads : {2, 3, 8}) {
    set_num_threads(threads);
    const auto many = run();
    REQUIRE(many.size() == one.size());
    for (size_t i = 0; i < one.size(); ++i) {
      INFO("result " << i << " with " << threads << " threads");
      REQUIRE(std::memcmp(many[i].data(), one[i].data(), one[i].size() * sizeof(double)) == 0);
    }
  }
}

TEST_CASE("simd: the kernels' threads work in a forked child", "[simd]") {
  TargetGuard guard;
  set_num_threads(2);
  Generator generator(8);
  Tensor x = normal({200000}, 0, 1, generator);
  const std::vector<double> want = exp(x).to_vector();  // the pool is running now
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    alarm(20);  // a hang in the child fails the test instead of stalling it
    const bool same = exp(x).to_vector() == want && tanh(x).numel() == 200000;
    _exit(same ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(exp(x).to_vector() == want);  // and the parent's pool still works
}
