// tests/test_cuda.cpp — the CUDA backend against the CPU backend: every op and primitive,
// outputs and gradients, on random shapes (odd sizes, broadcasting, empty tensors, one row of
// 10^6); gradcheck in f64 through the GPU; Philox on both; deterministic gather gradients; bad
// input; no cudaMalloc in a steady training step; the VAE on both. One binary, its own main():
// without a usable GPU it prints why and exits 77, which meson reports as SKIP. A full run also
// fails unless it reached every kernel, kind and variant of backend.h on cuda:0
// (tests/coverage_backend.h): a kernel no op calls yet is called directly.
//
// The tolerance rule (issue 13): |gpu - cpu| ≤ rtol·(|cpu| + max|cpu| of that tensor), rtol 1e-5
// in f32 (1e-4 where one output sums ≥ 1e5 elements) and 1e-10 in f64; NaN and ±inf must sit in
// the same places.
//
//   build/tests/tapegrad_cuda_tests                      # everything (needs a GPU)
//   build/tests/tapegrad_cuda_tests "[agree]"            # one area
//   build/tests/tapegrad_cuda_tests --harness-self-test  # checks this file's own code without a
//       GPU: a CPU-backed stand-in plays cuda:0. It proves nothing about the CUDA backend, but
//       shows the tests run and reach all of backend.h (meson's test cuda_harness, in CI).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>

#include "../examples/vae/vae.h"
#include "../src/kernels/philox.h"
#include "catch_session.h"
#include "coverage_backend.h"
#include "helpers.h"
#include "stand_in_backend.h"

#if defined(TG_HAVE_CUDA)
#include <cstdint>
// tests/cuda_philox_words.cu: the words of Philox blocks [first, first + count) computed on the GPU.
std::vector<uint32_t> philox_words_on_gpu(uint64_t seed, uint64_t stream, uint64_t first,
                                          int64_t count);
#endif

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;

namespace {

bool self_test = false;  // --harness-self-test

Device gpu() { return Device::cuda_device(0); }

double rtol_for(DType dtype, int64_t reduced) {
  if (dtype == DType::f64) return 1e-10;
  return reduced >= 100000 ? 1e-4 : 1e-5;
}

// The tolerance rule, over every element; one assertion, naming the worst element on failure.
void require_agree(const Tensor& on_gpu, const Tensor& on_cpu, double rtol, const std::string& what) {
  INFO(what);
  REQUIRE(on_gpu.device() == gpu());
  REQUIRE(on_cpu.device().is_cpu());
  REQUIRE(on_gpu.shape() == on_cpu.shape());
  REQUIRE(on_gpu.dtype() == on_cpu.dtype());
  const std::vector<double> a = on_gpu.to_vector(), b = on_cpu.to_vector();
  double scale = 0;
  for (double v : b)
    if (std::isfinite(v)) scale = std::max(scale, std::fabs(v));
  // Each element's |Δ| against what the rule allows; NaN and ±inf must match exactly.
  int64_t worst = -1;
  double worst_ratio = 1;
  for (size_t i = 0; i < a.size(); ++i) {
    double ratio;
    if (!std::isfinite(b[i])) {
      ratio = (std::isnan(b[i]) ? std::isnan(a[i]) : a[i] == b[i]) ? 0 : INFINITY;
    } else {
      const double diff = std::fabs(a[i] - b[i]), allowed = rtol * (std::fabs(b[i]) + scale);
      ratio = diff <= allowed ? 0 : (std::isnan(diff) || allowed == 0 ? INFINITY : diff / allowed);
    }
    if (ratio > worst_ratio) worst = int64_t(i), worst_ratio = ratio;
  }
  if (worst >= 0) {
    INFO("element " << worst << ": gpu " << a[worst] << ", cpu " << b[worst] << " (rtol " << rtol
                    << ", max|cpu| " << scale << ", " << worst_ratio << " times the tolerance)");
    FAIL("the GPU and the CPU disagree");
  }
  SUCCEED();
}

// One op or primitive: its inputs' shapes and range, and what to compute from them.
struct OpCase {
  std::string name;
  std::vector<Shape> shapes;
  std::function<Tensor(const std::vector<Tensor>&)> f;
  double low = -2, high = 2;
  int64_t reduced = 0;        // the most elements one output value sums (f32 tolerance)
  bool differentiable = true;
};

// Runs c on the CPU and on the GPU from the same inputs, compares the outputs, then backward
// from the same random output gradient and compares every input's gradient.
void run_case(const OpCase& c, DType dtype, unsigned seed) {
  INFO(c.name << " in " << dtype);
  std::vector<Tensor> on_cpu, on_gpu;
  for (size_t i = 0; i < c.shapes.size(); ++i) {
    Tensor values = random_input(c.shapes[i], seed + unsigned(i), c.low, c.high).detach().to(dtype);
    on_cpu.push_back(values.clone().set_requires_grad(c.differentiable));
    on_gpu.push_back(values.to(gpu()).set_requires_grad(c.differentiable));
  }
  // The CPU's forward and backward first (a backward clears the tape), then the GPU's.
  const double rtol = rtol_for(dtype, c.reduced);
  Tensor y_cpu = c.f(on_cpu);
  const bool backward_too = c.differentiable && y_cpu.requires_grad();
  Tensor seed_grad = random_input(y_cpu.shape(), seed + 100, -1, 1).detach().to(y_cpu.dtype());
  if (backward_too) backward(y_cpu, seed_grad);
  Tensor y_gpu = c.f(on_gpu);
  if (backward_too) backward(y_gpu, seed_grad.to(gpu()));
  tape().clear();
  require_agree(y_gpu, y_cpu, rtol, c.name + ": output");
  if (!backward_too) return;
  for (size_t i = 0; i < on_cpu.size(); ++i) {
    REQUIRE(on_cpu[i].grad().defined() == on_gpu[i].grad().defined());
    if (on_cpu[i].grad().defined())
      require_agree(on_gpu[i].grad(), on_cpu[i].grad(), rtol,
                    c.name + ": gradient of input " + std::to_string(i));
  }
}

void run_cases(const std::vector<OpCase>& cases) {
  unsigned seed = 1;
  for (const OpCase& c : cases)
    for (DType dtype : {DType::f32, DType::f64}) run_case(c, dtype, seed += 7);
}

// Labels on the inputs' device: (r·7) mod classes, with ignore_index -100 at every fifth.
Tensor labels_like(const Tensor& logits, int64_t count, int64_t classes, bool with_ignored) {
  std::vector<int64_t> values;
  for (int64_t r = 0; r < count; ++r)
    values.push_back(with_ignored && r % 5 == 4 ? -100 : (r * 7) % classes);
  return index_tensor(values).to(logits.device());
}

Tensor index_on(const Tensor& like, std::vector<int64_t> values, const Shape& shape = {}) {
  return index_tensor(values, shape).to(like.device());
}

}  // namespace

// ---------------------------------------------------------------- agreement, op by op

TEST_CASE("elementwise ops agree with the CPU: odd sizes, empty tensors, broadcasting", "[agree]") {
  std::vector<OpCase> cases;
  using V = const std::vector<Tensor>&;
  for (Shape s : {Shape{13}, Shape{3, 0}, Shape{2, 3, 5}, Shape{}}) {
    auto unary = [&](std::string name, std::function<Tensor(const Tensor&)> f, double low = -2,
                     double high = 2, bool differentiable = true) {
      cases.push_back({name + " " + s.to_string(), {s}, [f](V in) { return f(in[0]); }, low, high, 0,
                       differentiable});
    };
    unary("neg", [](const Tensor& x) { return neg(x); });
    unary("exp", [](const Tensor& x) { return exp(x); }, -3, 3);
    unary("log", [](const Tensor& x) { return log(x); }, 0.1, 3);
    unary("log1p", [](const Tensor& x) { return log1p(x); }, -0.5, 3);
    unary("sqrt", [](const Tensor& x) { return sqrt(x); }, 0.1, 3);
    unary("abs", [](const Tensor& x) { return abs(x); });
    unary("sign", [](const Tensor& x) { return sub(greater(x, zeros_like(x)), less(x, zeros_like(x))); },
          -2, 2, false);
    unary("tanh", [](const Tensor& x) { return tanh(x); });
    unary("sigmoid", [](const Tensor& x) { return sigmoid(x); }, -8, 8);
    unary("relu", [](const Tensor& x) { return relu(x); });
    unary("square", [](const Tensor& x) { return square(x); });
    unary("reciprocal", [](const Tensor& x) { return div(3.0, x); }, 0.5, 2);
    unary("scalars", [](const Tensor& x) { return sub(2.0, mul(add(x, 1.5), -0.7)); });
    unary("pow scalar", [](const Tensor& x) { return pow(x, 1.7); }, 0.1, 2);
    unary("clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.5); });
    unary("to i64 and back", [](const Tensor& x) { return x.to(DType::i64).to(x.dtype()); }, -9, 9,
          false);
    unary("isfinite isnan any all", [](const Tensor& x) {  // log of x < 0 is NaN, of 0 -inf
      Tensor y = log(x);
      return add(add(isfinite(y), mul(isnan(y), 2.0)), add(any(isnan(y)), mul(all(isfinite(y)), 4.0)));
    }, -2, 2, false);
    // Issue 18's activations: their backward reaches the *_backward and *_slope kinds.
    unary("gelu", [](const Tensor& x) { return gelu(x); }, -4, 4);
    unary("gelu tanh", [](const Tensor& x) { return gelu(x, GeluApproximation::tanh); }, -4, 4);
    unary("silu", [](const Tensor& x) { return silu(x); }, -6, 6);
    unary("leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.2); });
    unary("softplus", [](const Tensor& x) { return softplus(x, 2.0, 3.0); }, -3, 3);
    unary("elu", [](const Tensor& x) { return elu(x, 0.7); });
    unary("sin, cos", [](const Tensor& x) { return add(sin(x), cos(x)); }, -4, 4);
    unary("i64 comparisons", [](const Tensor& x) {
      Tensor a = x.to(DType::i64), b = mul(x, -1.0).to(DType::i64);
      Tensor counts = add(add(equal(a, b).to(x.dtype()), less(a, b).to(x.dtype())),
                       add(less_equal(a, b).to(x.dtype()), greater(a, b).to(x.dtype())));
      return add(counts, greater_equal(a, b).to(x.dtype()));
    }, -3, 3, false);
  }
  for (const std::vector<Shape>& pair :
       {std::vector<Shape>{{4, 1, 3}, {5, 1}}, {{6}, {6}}, {{0, 2}, {2}}, {{}, {3, 2}},
        {{2, 3, 4, 5}, {3, 1, 5}}, {{7, 1}, {1, 9}}}) {
    auto binary = [&](std::string name, std::function<Tensor(V)> f, bool differentiable = true) {
      cases.push_back({name + " " + pair[0].to_string() + " " + pair[1].to_string(), pair, f, -2, 2,
                       0, differentiable});
    };
    binary("add", [](V in) { return add(in[0], in[1]); });
    binary("sub", [](V in) { return sub(in[0], in[1]); });
    binary("mul", [](V in) { return mul(in[0], in[1]); });
    binary("div", [](V in) { return div(in[0], add(in[1], 3.0)); });
    binary("pow", [](V in) { return pow(add(in[0], 3.0), in[1]); });
    binary("minimum", [](V in) { return minimum(in[0], in[1]); });
    binary("maximum", [](V in) { return maximum(in[0], in[1]); });
    binary("comparisons", [](V in) {
      return add(add(less(in[0], in[1]), greater_equal(in[0], in[1])),
                 add(equal(in[0], in[0]), less_equal(in[1], in[0])));
    }, false);
    binary("where", [](V in) { return where(greater(in[0], in[1]), in[0], mul(in[1], 2.0)); });
  }
  run_cases(cases);
}

TEST_CASE("reductions and argmax agree with the CPU, over every axis, long and empty", "[agree]") {
  std::vector<OpCase> cases;
  using V = const std::vector<Tensor>&;
  for (Shape s : {Shape{7, 13}, Shape{3, 4, 5}, Shape{1, 100003}, Shape{0, 4}, Shape{2, 70001}}) {
    const int64_t whole = s.numel();
    cases.push_back({"sum " + s.to_string(), {s}, [](V in) { return sum(in[0]); }, -2, 2, whole});
    cases.push_back({"mean " + s.to_string(), {s}, [](V in) { return mean(in[0]); }, -2, 2, whole});
    for (int axis = 0; axis < s.rank(); ++axis) {
      const std::string tag = " axis " + std::to_string(axis) + " " + s.to_string();
      const int64_t n = s[axis];
      cases.push_back({"sum" + tag, {s}, [axis](V in) { return sum(in[0], axis, true); }, -2, 2, n});
      cases.push_back({"mean" + tag, {s}, [axis](V in) { return mean(in[0], axis); }, -2, 2, n});
      if (n == 0) continue;  // max, min, logsumexp and argmax need a non-empty axis
      cases.push_back({"max" + tag, {s}, [axis](V in) { return max(in[0], axis); }, -2, 2, n});
      cases.push_back({"min" + tag, {s}, [axis](V in) { return min(in[0], axis); }, -2, 2, n});
      cases.push_back({"logsumexp" + tag, {s}, [axis](V in) { return logsumexp(in[0], axis); },
                       -2, 2, n});
      cases.push_back({"argmax" + tag, {s},
                       [axis](V in) { return argmax(in[0], axis).to(in[0].dtype()); }, -2, 2, 0,
                       false});
    }
    if (whole > 0) {
      cases.push_back({"max " + s.to_string(), {s}, [](V in) { return max(in[0]); }, -2, 2, whole});
      cases.push_back({"logsumexp " + s.to_string(), {s}, [](V in) { return logsumexp(in[0]); },
                       -2, 2, whole});
    }
  }
  run_cases(cases);
  // argmax's rule on the GPU: the first largest, the first NaN.
  const double nan = std::nan("");
  Tensor x = tensor({1, 3, 3, 0, nan, 2, nan, 5, -INFINITY, -INFINITY, -INFINITY, -INFINITY}, {3, 4},
                    DType::f32);
  REQUIRE(argmax(x.to(gpu()), 1).to_vector() == argmax(x, 1).to_vector());
  REQUIRE(argmax(x.to(gpu()), 1).to_vector() == std::vector<double>{1, 0, 0});
  // i64 (labels, counts): sum, max, min and argmax equal the CPU's exactly, with values past 2^53
  // (a double accumulator would round them) and long sums that wrap around modulo 2^64.
  auto exact = [](const Tensor& t) {
    Tensor on_cpu = t.cpu();
    const int64_t* p = on_cpu.data<int64_t>();
    return std::vector<int64_t>(p, p + on_cpu.numel());
  };
  uint64_t state = 12345;
  for (Shape s : {Shape{7, 13}, Shape{3, 4, 5}, Shape{1, 100003}, Shape{0, 4}, Shape{2, 70001}}) {
    std::vector<int64_t> values(s.numel());
    for (int64_t& v : values) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      v = static_cast<int64_t>(state) / 4;  // within ±2^61
    }
    Tensor on_cpu = index_tensor(values, s), on_gpu = on_cpu.to(gpu());
    INFO("i64 " << s);
    REQUIRE(exact(sum(on_gpu)) == exact(sum(on_cpu)));
    if (s.numel() > 0) {
      REQUIRE(exact(max(on_gpu)) == exact(max(on_cpu)));
      REQUIRE(exact(min(on_gpu)) == exact(min(on_cpu)));
    }
    for (int axis = 0; axis < s.rank(); ++axis) {
      INFO("axis " << axis);
      REQUIRE(exact(sum(on_gpu, axis)) == exact(sum(on_cpu, axis)));
      if (s[axis] == 0) continue;
      REQUIRE(exact(max(on_gpu, axis)) == exact(max(on_cpu, axis)));
      REQUIRE(exact(min(on_gpu, axis, true)) == exact(min(on_cpu, axis, true)));
      REQUIRE(exact(argmax(on_gpu, axis)) == exact(argmax(on_cpu, axis)));
    }
  }
}

TEST_CASE("shape ops, indexing and matrix products agree with the CPU", "[agree]") {
  using V = const std::vector<Tensor>&;
  std::vector<OpCase> cases = {
      {"reshape+transpose", {{2, 3, 4}}, [](V in) { return transpose(reshape(in[0], {4, 3, 2}), 0, 2); }},
      {"slice", {{5, 7}}, [](V in) { return slice(in[0], 1, 1, 6); }},
      {"concat", {{2, 3}, {2, 5}}, [](V in) { return concat({in[0], in[1]}, 1); }},
      {"broadcast_to", {{3, 1}}, [](V in) { return broadcast_to(in[0], {2, 3, 4}); }},
      {"sum_to", {{2, 3, 4}}, [](V in) { return sum_to(in[0], {3, 1}); }},
      {"gather", {{4, 6}}, [](V in) {
         return gather(in[0], 1, index_on(in[0], {0, 5, 5, 1, 2, 2, 2, 0, 3, 4, 1, 1}, {4, 3}));
       }},
      {"gather axis 0", {{5, 3}}, [](V in) {
         return gather(in[0], 0, index_on(in[0], {4, 4, 0, 1, 4, 2}, {2, 3}));
       }},
      {"index_select", {{5, 3, 2}}, [](V in) {
         return index_select(in[0], 1, index_on(in[0], {2, 0, 2, 2, 1}));
       }},
      {"index_select, one index", {{5, 3}}, [](V in) { return index_select(in[0], 0, index_on(in[0], {3})); }},
      {"one_hot", {{1}}, [](V in) { return one_hot(index_on(in[0], {3, 0, 2, 3}), 5, in[0].dtype()); },
       -2, 2, 0, false},
      {"matmul", {{5, 7}, {7, 3}}, [](V in) { return matmul(in[0], in[1]); }},
      {"matmul Aᵀ", {{7, 5}, {7, 3}}, [](V in) { return matmul(in[0], in[1], true, false); }},
      {"matmul Bᵀ", {{5, 7}, {3, 7}}, [](V in) { return matmul(in[0], in[1], false, true); }},
      {"matmul AᵀBᵀ", {{7, 5}, {3, 7}}, [](V in) { return matmul(in[0], in[1], true, true); }},
      {"matmul batched", {{2, 5, 7}, {2, 7, 3}}, [](V in) { return matmul(in[0], in[1]); }},
      {"matmul batch × matrix", {{2, 5, 7}, {7, 3}}, [](V in) { return matmul(in[0], in[1]); }},
      {"matmul matrix × batch", {{5, 7}, {3, 7, 4}}, [](V in) { return matmul(in[0], in[1]); }},
      {"matmul k = 0", {{3, 0}, {0, 4}}, [](V in) { return matmul(in[0], in[1]); }},
      {"matmul large k", {{33, 517}, {517, 65}}, [](V in) { return matmul(in[0], in[1]); }, -1, 1, 517},
      {"linear", {{6, 7}, {4, 7}, {4}}, [](V in) { return linear(in[0], in[1], in[2]); }},
      {"linear 3-D", {{2, 3, 7}, {4, 7}, {4}}, [](V in) { return linear(in[0], in[1], in[2]); }},
  };
  run_cases(cases);
}

TEST_CASE("conv2d, the pools and the norms agree with the CPU: stride, padding, dilation, groups, "
          "train and eval",
          "[agree]") {
  using V = const std::vector<Tensor>&;
  std::vector<OpCase> cases = {
      {"conv2d", {{2, 3, 7, 6}, {4, 3, 3, 3}, {4}}, [](V in) { return conv2d(in[0], in[1], in[2]); },
       -1, 1, 27},
      {"conv2d strided, padded", {{2, 3, 8, 7}, {2, 3, 3, 2}}, [](V in) {
         return conv2d(in[0], in[1], Tensor(), {2, 3}, {1, 0});
       }, -1, 1, 18},
      {"conv2d dilated, padded", {{1, 2, 9, 9}, {2, 2, 3, 3}, {2}}, [](V in) {
         return conv2d(in[0], in[1], in[2], 1, 2, {2, 3});
       }, -1, 1, 18},
      {"conv2d groups", {{2, 4, 6, 6}, {6, 2, 3, 3}, {6}}, [](V in) {
         return conv2d(in[0], in[1], in[2], 1, 1, 1, 2);
       }, -1, 1, 18},
      {"max_pool2d", {{2, 3, 8, 8}}, [](V in) { return max_pool2d(in[0], 2); }},
      {"max_pool2d padded, dilated", {{2, 2, 9, 7}}, [](V in) { return max_pool2d(in[0], 3, 2, 1, {1, 2}); }},
      {"avg_pool2d padded", {{2, 2, 7, 9}}, [](V in) { return avg_pool2d(in[0], 3, 2, 1); }, -2, 2, 9},
      {"batch_norm train", {{4, 3, 5, 2}, {3}, {3}}, [](V in) {
         return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true);
       }, -2, 2, 40},
      {"batch_norm eval", {{4, 3, 5, 2}, {3}, {3}}, [](V in) {
         Tensor rm = full({3}, 0.25, in[0].dtype(), in[0].device());
         Tensor rv = full({3}, 1.5, in[0].dtype(), in[0].device());
         return batch_norm(in[0], rm, rv, in[1], in[2], false);
       }},
      {"layer_norm", {{3, 2, 4}, {2, 4}, {2, 4}}, [](V in) {
         return layer_norm(in[0], {2, 4}, in[1], in[2]);
       }, -2, 2, 8},
  };
  run_cases(cases);
  // The running statistics update on the GPU as on the CPU.
  Tensor x = random_input({6, 3, 4, 4}, 5).detach().to(DType::f32);
  Tensor rm_cpu = zeros({3}), rv_cpu = ones({3});
  Tensor rm_gpu = rm_cpu.clone().to(gpu()), rv_gpu = rv_cpu.clone().to(gpu());
  batch_norm(x, rm_cpu, rv_cpu, Tensor(), Tensor(), true);
  batch_norm(x.to(gpu()), rm_gpu, rv_gpu, Tensor(), Tensor(), true);
  require_agree(rm_gpu, rm_cpu, 1e-5, "running_mean");
  require_agree(rv_gpu, rv_cpu, 1e-5, "running_var");
}

TEST_CASE("the fused primitives agree with the CPU: every path, temperature and reduction",
          "[agree]") {
  using V = const std::vector<Tensor>&;
  std::vector<OpCase> cases;
  const std::vector<Reduction> reductions = {Reduction::none, Reduction::sum, Reduction::mean,
                                             Reduction::batchmean};
  // Softmax family: short rows (a block of 64), long rows (a block of 512), strided axes.
  for (Shape s : {Shape{6, 10}, Shape{3, 37}, Shape{4, 1000}, Shape{2, 5000}, Shape{5, 3, 7}}) {
    const std::string tag = " " + s.to_string();
    for (int axis : {-1, 0}) {
      const std::string at = tag + " axis " + std::to_string(axis);
      cases.push_back({"softmax" + at, {s}, [axis](V in) { return softmax(in[0], axis, 0.7); }, -6, 6});
      cases.push_back({"log_softmax" + at, {s}, [axis](V in) { return log_softmax(in[0], axis, 1.3); },
                       -6, 6});
      cases.push_back({"kl_divergence_logits" + at, {s, s},
                       [axis](V in) { return kl_divergence_logits(in[0], in[1], axis, 1.1, Reduction::sum); },
                       -6, 6, s.numel()});
      cases.push_back({"entropy_logits" + at, {s},
                       [axis](V in) { return entropy_logits(in[0], axis, 2.0); }, -6, 6});
    }
    // The temperature as a tensor, one per distribution along the last axis (its gradient too).
    Shape per_row = s;
    per_row[s.rank() - 1] = 1;
    cases.push_back({"softmax, tensor T" + tag, {s, per_row},
                     [](V in) { return softmax(in[0], -1, add(abs(in[1]), 0.5)); }, -3, 3});
    cases.push_back({"log_softmax, one tensor T" + tag, {s, {}},
                     [](V in) { return log_softmax(in[0], -1, add(abs(in[1]), 0.5)); }, -3, 3});
    cases.push_back({"kl_divergence_logits, tensor T" + tag, {s, s, per_row},
                     [](V in) { return kl_divergence_logits(in[0], in[1], -1, add(abs(in[2]), 0.5)); },
                     -3, 3});
  }
  cases.push_back({"log_softmax, one row of 10^6", {{1, 1000000}},
                   [](V in) { return log_softmax(in[0], -1, 0.9); }, -10, 10, 1000000});
  cases.push_back({"softmax, one row of 10^6", {{1, 1000000}},
                   [](V in) { return softmax(in[0], -1); }, -10, 10, 1000000});
  for (Reduction r : reductions) {
    const std::string tag = std::string(" ") + std::to_string(static_cast<int>(r));
    cases.push_back({"kl_div" + tag, {{6, 9}, {6, 9}},
                     [r](V in) { return kl_div(log_softmax(in[0]), softmax(in[1]), r); }});
    cases.push_back({"kl_div log_target" + tag, {{6, 9}, {6, 9}},
                     [r](V in) { return kl_div(log_softmax(in[0]), log_softmax(in[1]), r, true); }});
    cases.push_back({"bce_with_logits" + tag, {{5, 11}, {5, 11}},
                     [r](V in) { return bce_with_logits(mul(in[0], 4.0), sigmoid(in[1]), r); }});
    cases.push_back({"mse" + tag, {{4, 5}, {4, 5}}, [r](V in) { return mse(in[0], in[1], r); }});
    cases.push_back({"gaussian_kl_standard" + tag, {{7, 3}, {7, 3}},
                     [r](V in) { return gaussian_kl_standard(in[0], in[1], r); }});
    cases.push_back({"gaussian_kl" + tag, {{4, 3}, {4, 3}, {3}, {3}},
                     [r](V in) { return gaussian_kl(in[0], in[1], in[2], in[3], r); }});
    cases.push_back({"ppo_clip_loss" + tag, {{33}, {33}, {33}},
                     [r](V in) { return ppo_clip_loss(mul(in[0], 0.3), mul(in[1], 0.3), in[2], 0.2, r); }});
    cases.push_back({"js_divergence" + tag, {{4, 6}, {4, 6}},
                     [r](V in) { return js_divergence(softmax(in[0]), softmax(in[1]), -1, r); }});
    cases.push_back({"total_variation" + tag, {{4, 6}, {4, 6}},
                     [r](V in) { return total_variation(softmax(in[0]), softmax(in[1]), -1, r); }});
    cases.push_back({"entropy" + tag, {{4, 6}}, [r](V in) { return entropy(softmax(in[0]), -1, r); }});
  }
  cases.push_back({"bce_with_logits sum of 10^6", {{1000, 1000}, {1000, 1000}},
                   [](V in) { return bce_with_logits(in[0], sigmoid(in[1]), Reduction::sum); },
                   -3, 3, 1000000});
  cases.push_back({"reparameterize", {{5, 4}, {5, 4}, {5, 4}},
                   [](V in) { return reparameterize(in[0], in[1], in[2].detach()); }});
  for (double eps : {0.0, 0.1}) {
    const std::string tag = " ε " + std::to_string(eps);
    for (Reduction r : {Reduction::none, Reduction::sum, Reduction::mean}) {
      cases.push_back({"cross_entropy labels" + tag, {{20, 10}},
                       [eps, r](V in) { return cross_entropy(in[0], labels_like(in[0], 20, 10, false), eps, r); }});
      cases.push_back({"cross_entropy ignore_index" + tag, {{20, 10}},
                       [eps, r](V in) { return cross_entropy(in[0], labels_like(in[0], 20, 10, true), eps, r); }});
      cases.push_back({"cross_entropy probabilities" + tag, {{8, 1500}, {8, 1500}},
                       [eps, r](V in) { return cross_entropy(in[0], softmax(in[1]), eps, r); }});
    }
    cases.push_back({"cross_entropy [N, C, d]" + tag, {{4, 6, 5}},
                     [eps](V in) {
                       std::vector<int64_t> v;
                       for (int i = 0; i < 20; ++i) v.push_back((i * 5) % 6);
                       return cross_entropy(in[0], index_on(in[0], v, {4, 5}), eps, Reduction::sum);
                     }});
    cases.push_back({"cross_entropy long rows" + tag, {{3, 3000}},
                     [eps](V in) { return cross_entropy(in[0], labels_like(in[0], 3, 3000, false), eps); }});
  }
  cases.push_back({"nll", {{9, 4}},
                   [](V in) { return nll(log_softmax(in[0]), labels_like(in[0], 9, 4, true)); }});
  cases.push_back({"distillation_loss", {{6, 5}, {6, 5}},
                   [](V in) { return distillation_loss(in[0], in[1], 4.0, 0.5, labels_like(in[0], 6, 5, false)); }});
  run_cases(cases);
}

TEST_CASE("special rows on the GPU: all -inf is the zero distribution, NaN stays NaN", "[agree]") {
  for (int64_t n : {5, 2000}) {
    std::vector<double> v(3 * n, 0.5);
    for (int64_t j = 0; j < n; ++j) v[j] = -INFINITY;
    v[n + n - 1] = std::nan("");
    v[2 * n + 1] = INFINITY;
    for (DType dtype : {DType::f32, DType::f64}) {
      Tensor x = tensor(v, {3, n}, dtype);
      for (int axis : {1, 0}) {
        Tensor xa = axis == 1 ? x : transpose(x).clone();
        require_agree(softmax(xa.to(gpu()), axis), softmax(xa, axis), rtol_for(dtype, 0), "softmax");
        require_agree(log_softmax(xa.to(gpu()), axis), log_softmax(xa, axis), rtol_for(dtype, 0),
                      "log_softmax");
        require_agree(logsumexp(xa.to(gpu()), axis), logsumexp(xa, axis), rtol_for(dtype, 0),
                      "logsumexp");
        require_agree(max(xa.to(gpu()), axis), max(xa, axis), rtol_for(dtype, 0), "max");
      }
    }
  }
}

TEST_CASE("kernels of backend.h that no op calls yet agree with the CPU backend", "[agree]") {
  // UnaryOp::sign, the summed entropy, JS and TV terms (their ops sum per distribution first) and
  // reparameterize's gradient for eps (detached by the op) have no op on top of them today: both
  // backends are called directly, on the same inputs.
  using P = Backend::Pointwise;
  Backend& on_cpu = backend_for(Device::cpu_device());
  Backend& on_gpu = backend_for(gpu());
  const int64_t n = 100003;
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(dtype);
    Tensor signed_values = where(greater(abs(random_input({n}, 31, -1, 1)), full({}, 0.2, DType::f64)),
                                 random_input({n}, 31, -1, 1), zeros({}, DType::f64)).to(dtype);
    Tensor p = random_input({n}, 32, 0, 1).to(dtype), q = random_input({n}, 33, 0.01, 1).to(dtype);
    p = where(greater(p, full({}, 0.1, dtype)), p, zeros({}, dtype));  // p = 0 takes the 0·log 0 rule
    Tensor grad = random_input({n}, 34).to(dtype);
    // Runs `call` on each backend with the inputs moved there; compares the outputs.
    auto agree = [&](const std::string& what, const Shape& out_shape, int64_t reduced,
                     const std::vector<Tensor>& inputs, auto call) {
      Tensor out_cpu = empty(out_shape, dtype), out_gpu = empty(out_shape, dtype, gpu());
      std::vector<Tensor> moved;
      Backend::PointwiseInputs in_cpu, in_gpu;
      for (size_t k = 0; k < inputs.size(); ++k) {
        moved.push_back(inputs[k].to(gpu()));
        in_cpu.data[k] = inputs[k].raw_data();
        in_gpu.data[k] = moved[k].raw_data();
      }
      call(on_cpu, in_cpu, out_cpu.raw_data());
      call(on_gpu, in_gpu, out_gpu.raw_data());
      require_agree(out_gpu, out_cpu, rtol_for(dtype, reduced), what);
    };
    agree("unary sign", {n}, 0, {signed_values}, [&](Backend& b, const Backend::PointwiseInputs& in, void* out) {
      b.unary(UnaryOp::sign, dtype, in.data[0], out, n, 0, 0);
    });
    for (P kind : {P::entropy, P::js_divergence, P::total_variation}) {
      const std::vector<Tensor> inputs = kind == P::entropy ? std::vector<Tensor>{p}
                                                            : std::vector<Tensor>{p, q};
      agree("summed pointwise kind " + std::to_string(static_cast<int>(kind)), {}, n, inputs,
            [&](Backend& b, const Backend::PointwiseInputs& in, void* out) {
              b.pointwise(kind, dtype, in, out, n, 0, true, 0.5);
            });
    }
    agree("reparameterize's gradient for eps", {n}, 0, {p, q, grad, signed_values},
          [&](Backend& b, const Backend::PointwiseInputs& in, void* out) {
            Backend::PointwiseInputs mu_logvar_eps;  // mu = p, logvar = q, eps = grad
            for (int k = 0; k < 3; ++k) mu_logvar_eps.data[k] = in.data[k];
            b.pointwise_backward(P::reparameterize, dtype, 2, in.data[3], false, 1.5, mu_logvar_eps,
                                 out, n, 0);
          });
  }
}

TEST_CASE("gradcheck in f64 through the GPU", "[agree]") {
  // f runs on the GPU: the CPU leaves are moved there (recorded), the op runs there, the result
  // comes back. Finite differences and the analytic backward both go through the CUDA kernels.
  auto on_gpu = [](std::function<Tensor(const std::vector<Tensor>&)> f) {
    return [f](const std::vector<Tensor>& in) {
      std::vector<Tensor> moved;
      for (const Tensor& t : in) moved.push_back(t.to(gpu()));
      return f(moved).to(Device::cpu_device());
    };
  };
  using V = const std::vector<Tensor>&;
  Tensor a = random_input({3, 5}, 1), b = random_input({3, 5}, 2), t = random_input({3, 1}, 3, 0.5, 2);
  REQUIRE_GRADCHECK(on_gpu([](V in) { return softmax(in[0], -1, in[1]); }), {a, t});
  REQUIRE_GRADCHECK(on_gpu([](V in) { return log_softmax(in[0], 0, 0.7); }), {a});
  REQUIRE_GRADCHECK(on_gpu([](V in) { return kl_divergence_logits(in[0], in[1], -1, 1.5); }), {a, b});
  REQUIRE_GRADCHECK(on_gpu([](V in) { return cross_entropy(in[0], softmax(in[1]), 0.1); }), {a, b});
  REQUIRE_GRADCHECK(on_gpu([](V in) {
                      return cross_entropy(in[0], index_tensor({1, 4, 0}).to(gpu()), 0.2);
                    }), {a});
  REQUIRE_GRADCHECK(on_gpu([](V in) { return bce_with_logits(in[0], sigmoid(in[1])); }), {a, b});
  REQUIRE_GRADCHECK(on_gpu([](V in) { return gaussian_kl_standard(in[0], in[1]); }), {a, b});
  REQUIRE_GRADCHECK(on_gpu([](V in) { return sum(mul(matmul(in[0], in[1], false, true), 0.5)); }),
                    {a, b});
  REQUIRE_GRADCHECK(on_gpu([](V in) {
                      return index_select(in[0], 1, index_tensor({4, 0, 4}).to(gpu()));
                    }), {a});
  REQUIRE_GRADCHECK(on_gpu([](V in) { return logsumexp(in[0], 1); }), {a});
  Tensor image = random_input({2, 2, 5, 4}, 4), kernel = random_input({2, 1, 3, 2}, 5);
  REQUIRE_GRADCHECK(on_gpu([](V in) { return conv2d(in[0], in[1], Tensor(), {2, 1}, 1, {1, 2}, 2); }),
                    {image, kernel});
  REQUIRE_GRADCHECK(on_gpu([](V in) { return avg_pool2d(in[0], 3, 2, 1); }), {image});
  REQUIRE_GRADCHECK(on_gpu([](V in) {
                      return batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true);
                    }), {image});
}

TEST_CASE("second derivatives through the GPU agree with the CPU's, and gradgradcheck in f64",
          "[agree]") {
  // With create_graph every backward is recorded as engine ops (tape.h), so a Hessian-vector
  // product runs those ops — the fused kernels and the ops their recorded gradients are made of —
  // on the GPU. H·v = ∂⟨∂⟨f, w⟩/∂x, v⟩/∂x on both devices, from the same x, w and v.
  using V = const std::vector<Tensor>&;
  struct Case {
    std::string name;
    std::vector<Shape> shapes;
    std::function<Tensor(V)> f;
  };
  const std::vector<Case> cases = {
      {"softmax, tensor T", {{4, 7}, {4, 1}}, [](V in) { return softmax(in[0], -1, add(abs(in[1]), 0.5)); }},
      {"log_softmax, strided axis", {{5, 3, 4}}, [](V in) { return log_softmax(in[0], 1, 1.3); }},
      {"kl_divergence_logits", {{6, 9}, {6, 9}},
       [](V in) { return kl_divergence_logits(in[0], in[1], -1, 1.1, Reduction::none); }},
      {"entropy_logits", {{3, 11}}, [](V in) { return entropy_logits(in[0], -1, 2.0); }},
      {"cross_entropy, labels, ignore_index, smoothing", {{10, 5}},
       [](V in) { return cross_entropy(in[0], labels_like(in[0], 10, 5, true), 0.1, Reduction::none); }},
      {"cross_entropy, probabilities", {{4, 6}, {4, 6}},
       [](V in) { return cross_entropy(in[0], softmax(in[1]), 0.2, Reduction::none); }},
      {"nll", {{9, 4}}, [](V in) { return nll(log_softmax(in[0]), labels_like(in[0], 9, 4, true)); }},
      {"bce_with_logits", {{5, 3}, {5, 3}},
       [](V in) { return bce_with_logits(in[0], sigmoid(in[1]), Reduction::none); }},
      {"gaussian_kl", {{4, 3}, {4, 3}, {3}, {3}},
       [](V in) { return gaussian_kl(in[0], in[1], in[2], in[3], Reduction::none); }},
      {"kl_div, js_divergence, total_variation", {{4, 6}, {4, 6}}, [](V in) {
         Tensor p = softmax(in[0]), q = softmax(in[1]);
         return add(add(sum(kl_div(log(q), p, Reduction::none), 1), js_divergence(p, q, -1, Reduction::none)),
                    total_variation(p, q, -1, Reduction::none));
       }},
      {"ppo_clip_loss", {{17}, {17}, {17}},
       [](V in) { return ppo_clip_loss(mul(in[0], 0.3), mul(in[1], 0.3), in[2], 0.2, Reduction::none); }},
      {"mse, matmul, index_select, gather", {{5, 4}, {4, 3}}, [](V in) {
         Tensor h = tanh(matmul(in[0], in[1]));
         Tensor picked = index_select(h, 0, index_on(in[0], {4, 0, 4, 2}));
         return add(mse(picked, mul(picked, 0.5), Reduction::none),
                    sum(square(gather(picked, 1, index_on(in[0], {2, 2, 0, 1, 1, 0, 2, 1}, {4, 2}))), 1, true));
       }},
      {"logsumexp, max, mean", {{3, 8}}, [](V in) {
         return add(add(logsumexp(in[0], 1), max(square(in[0]), 1)), mean(exp(in[0]), 1));
       }},
      {"distillation_loss", {{6, 5}, {6, 5}},
       [](V in) { return distillation_loss(in[0], in[1], 4.0, 0.5, labels_like(in[0], 6, 5, false)); }},
  };
  unsigned seed = 500;
  for (const Case& c : cases)
    for (DType dtype : {DType::f32, DType::f64}) {
      INFO(c.name << " in " << dtype);
      std::vector<Tensor> x, v;
      for (const Shape& s : c.shapes) {
        x.push_back(random_input(s, ++seed).detach().to(dtype));
        v.push_back(random_input(s, ++seed).detach().to(dtype));
      }
      Tensor w;
      // H·v on `where`, brought back to the CPU.
      auto hessian_times_v = [&](Device where) {
        std::vector<Tensor> leaves;
        for (const Tensor& t : x) leaves.push_back(t.clone().to(where).set_requires_grad());
        Tensor y = c.f(leaves);
        if (!w.defined()) w = random_input(y.shape(), ++seed).detach().to(dtype);
        std::vector<Tensor> g = grad({sum(mul(y, w.to(where)))}, leaves, {}, true);
        Tensor gv = zeros({}, dtype, where);
        for (size_t k = 0; k < g.size(); ++k) gv = add(gv, sum(mul(g[k], v[k].to(where))));
        std::vector<Tensor> h = grad({gv}, leaves);
        std::vector<Tensor> back;
        for (const Tensor& t : h) back.push_back(t.to(Device::cpu_device()));
        return back;
      };
      std::vector<Tensor> on_cpu = hessian_times_v(Device::cpu_device());
      std::vector<Tensor> on_gpu = hessian_times_v(gpu());
      for (size_t k = 0; k < on_cpu.size(); ++k)
        require_agree(on_gpu[k].to(gpu()), on_cpu[k], rtol_for(dtype, 0),
                      c.name + ": H·v for input " + std::to_string(k));
    }
  // gradgradcheck with the function on the GPU (finite differences of the recorded gradient).
  auto on_gpu = [](std::function<Tensor(V)> f) {
    return [f](V in) {
      std::vector<Tensor> moved;
      for (const Tensor& t : in) moved.push_back(t.to(gpu()));
      return f(moved).to(Device::cpu_device());
    };
  };
  Tensor a = random_input({3, 5}, 1), b = random_input({3, 5}, 2), t = random_input({3, 1}, 3, 0.5, 2);
  REQUIRE_GRADGRADCHECK(on_gpu([](V in) { return softmax(in[0], -1, in[1]); }), {a, t});
  REQUIRE_GRADGRADCHECK(on_gpu([](V in) { return kl_divergence_logits(in[0], in[1], -1, 1.5); }), {a, b});
  REQUIRE_GRADGRADCHECK(on_gpu([](V in) {
                          return cross_entropy(in[0], index_tensor({1, 4, 0}).to(gpu()), 0.2);
                        }), {a});
  REQUIRE_GRADGRADCHECK(on_gpu([](V in) { return sum(tanh(matmul(in[0], in[1], false, true))); }), {a, b});
  // Issue 18's activations: the fused gradient kernels, the slope kernels and their recorded
  // second derivatives, on the GPU.
  REQUIRE_GRADGRADCHECK(on_gpu([](V in) {
                          return add(add(gelu(in[0]), gelu(in[1], GeluApproximation::tanh)),
                                     add(silu(in[0]), softplus(in[1], 2.0, 1.0)));
                        }), {a, b});
  REQUIRE_GRADGRADCHECK(on_gpu([](V in) {
                          return add(mul(elu(in[0], 0.8), in[1]), mul(leaky_relu(in[1]), sin(in[0])));
                        }), {a, b});
  REQUIRE_GRADGRADCHECK(on_gpu([](V in) {
                          return add(var(in[0], 1, true, true), embedding(index_tensor({2, 0, 2}).to(gpu()), in[1]));
                        }), {a, b});
}


TEST_CASE("dropout draws the same mask on the GPU as on the CPU; orthogonal_ fills a GPU tensor alike",
          "[agree]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(dtype);
    Generator on_cpu(8, 1), on_gpu(8, 1);
    Tensor x = random_input({33, 17}, 60).detach().to(dtype);
    Tensor a = x.clone().set_requires_grad(), b = x.to(gpu()).set_requires_grad();
    Tensor ya = dropout(a, 0.3, on_cpu);
    backward(sum(mul(ya, ya)));  // clears the tape: the GPU's side is recorded after it
    Tensor yb = dropout(b, 0.3, on_gpu);
    backward(sum(mul(yb, yb)));
    // Philox's uniforms are bit-identical, and y = x·(mask/(1 - p)) is one rounding: so is y.
    REQUIRE(yb.to_vector() == ya.to_vector());
    require_agree(b.grad(), a.grad(), rtol_for(dtype, 0), "dropout's gradient");
    Generator init_cpu(9), init_gpu(9);
    Tensor w_cpu = empty({6, 4}, dtype), w_gpu = empty({6, 4}, dtype, gpu());
    nn::init::orthogonal_(w_cpu, init_cpu, 1.5);
    nn::init::orthogonal_(w_gpu, init_gpu, 1.5);
    REQUIRE(w_gpu.device() == gpu());
    REQUIRE(w_gpu.to_vector() == w_cpu.to_vector());
  }
}

// ---------------------------------------------------------------- Philox

namespace {
// How many representable values lie between a and b (0 when equal).
template <class T> int64_t ulp_distance(T a, T b) {
  using Bits = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  Bits ia, ib;
  std::memcpy(&ia, &a, sizeof a);
  std::memcpy(&ib, &b, sizeof b);
  if (ia < 0) ia = std::numeric_limits<Bits>::min() - ia;
  if (ib < 0) ib = std::numeric_limits<Bits>::min() - ib;
  return ia > ib ? int64_t(ia) - int64_t(ib) : int64_t(ib) - int64_t(ia);
}
}  // namespace

TEST_CASE("Philox: the same words and uniforms bit for bit, normals within 4 ulp", "[philox]") {
#if defined(TG_HAVE_CUDA)
  if (!self_test) {
    for (uint64_t seed : {uint64_t(0), uint64_t(7), uint64_t(0x123456789abcdefULL)})
      for (uint64_t stream : {uint64_t(0), uint64_t(3)}) {
        const uint64_t first = seed * 5 + 11;
        std::vector<uint32_t> words = philox_words_on_gpu(seed, stream, first, 3000);
        for (int64_t b = 0; b < 3000; ++b) {
          tg::kernels::PhiloxBlock host = tg::kernels::philox_block(seed, stream, first + uint64_t(b));
          for (int w = 0; w < 4; ++w) REQUIRE(words[4 * b + w] == host.x[w]);
        }
      }
  }
#endif
  for (DType dtype : {DType::f32, DType::f64}) {
    for (int64_t n : {1, 5, 1000, 4097}) {
      Generator g_cpu(42, 3), g_gpu(42, 3);
      g_cpu.advance(17), g_gpu.advance(17);
      Tensor u_cpu = rand({n}, g_cpu, dtype), u_gpu = rand({n}, g_gpu, dtype, gpu());
      Tensor w_cpu = uniform({n}, -3, 5, g_cpu, dtype), w_gpu = uniform({n}, -3, 5, g_gpu, dtype, gpu());
      Tensor z_cpu = randn({n}, g_cpu, dtype), z_gpu = randn({n}, g_gpu, dtype, gpu());
      REQUIRE(g_cpu.offset() == g_gpu.offset());
      Tensor u_back = u_gpu.to(Device::cpu_device()), w_back = w_gpu.to(Device::cpu_device());
      const size_t bytes = n * dtype_size(dtype);
      REQUIRE(std::memcmp(u_back.raw_data(), u_cpu.raw_data(), bytes) == 0);
      REQUIRE(std::memcmp(w_back.raw_data(), w_cpu.raw_data(), bytes) == 0);
      std::vector<double> a = z_gpu.to_vector(), b = z_cpu.to_vector();
      int64_t worst = 0;
      for (int64_t i = 0; i < n; ++i)
        worst = std::max(worst, dtype == DType::f32 ? ulp_distance(float(a[i]), float(b[i]))
                                                    : ulp_distance(a[i], b[i]));
      INFO(dtype << " n = " << n << ": normals differ by up to " << worst << " ulp");
      REQUIRE(worst <= 4);
    }
  }
}

// ---------------------------------------------------------------- determinism

TEST_CASE("gather, index_select and nll gradients repeat bit for bit and equal the CPU's", "[determinism]") {
  // 200 000 source rows onto 50 targets: a float-atomic scatter would differ from run to run.
  const int64_t k = 200000, n = 50;
  std::vector<int64_t> idx(k);
  for (int64_t j = 0; j < k; ++j) idx[j] = (j * 7919) % n;
  Tensor index = index_tensor(idx);
  Generator g(5);
  Tensor x_cpu = randn({n, 3}, g).set_requires_grad();
  Tensor upstream = randn({k, 3}, g);
  // The gradient that `op` (index_select or gather, through `index`) sends to x, on `where`.
  auto scatter_grad = [&](Device where, const Tensor& index_values, bool per_element) {
    Tensor x = x_cpu.detach().to(where).set_requires_grad();
    Tensor picked = per_element ? gather(x, 0, index_values.to(where))
                                : index_select(x, 0, index_values.to(where));
    backward(picked, upstream.to(where));
    return x.grad().to(Device::cpu_device());
  };
  std::vector<int64_t> per_element(k * 3);  // gather along axis 0 with a per-element index
  for (int64_t i = 0; i < k * 3; ++i) per_element[i] = (i * 31 + i / 7) % n;
  for (bool gathered : {false, true}) {
    INFO((gathered ? "gather" : "index_select"));
    Tensor which = gathered ? index_tensor(per_element, {k, 3}) : index;
    Tensor first = scatter_grad(gpu(), which, gathered), second = scatter_grad(gpu(), which, gathered);
    Tensor on_cpu = scatter_grad(Device::cpu_device(), which, gathered);
    REQUIRE(std::memcmp(first.raw_data(), second.raw_data(), first.numel() * 4) == 0);
    REQUIRE(std::memcmp(first.raw_data(), on_cpu.raw_data(), first.numel() * 4) == 0);
  }
  // Whole reductions repeat too.
  Tensor big = randn({3000000}, g).to(gpu());
  REQUIRE(sum(big).item() == sum(big).item());
}

// ---------------------------------------------------------------- bad input

TEST_CASE("bad input on the GPU is a clear tg::Error, and the GPU keeps working", "[errors]") {
  Tensor logits = ones({4, 10}).to(gpu());
  // A label out of range: reported by the next synchronisation (here item()), naming the op.
  require_error([&] { cross_entropy(logits, index_on(logits, {1, 12, 3, 4})).item(); },
                {"cross_entropy", "label 12 at position 1", "[0, 10)", "ignore_index"});
  require_error([&] { nll(logits, index_on(logits, {1, 2, -3, 4})).item(); },
                {"nll", "label -3 at position 2"});
  require_error([&] { gather(logits, 1, index_on(logits, {0, 10, 2, 3}, {4, 1})).to_vector(); },
                {"gather", "index 10 at position 1", "[0, 10)"});
  require_error([&] { index_select(logits, 0, index_on(logits, {0, 1, 4})).to_vector(); },
                {"index_select", "index 4 at position 2", "[0, 4)"});
  require_error([&] { one_hot(index_on(logits, {0, 7}), 5).to_vector(); },
                {"one_hot", "index 7 at position 1"});
  require_error([&] { softmax(logits, -1, full({4, 1}, -1.0).to(gpu())).to_vector(); },
                {"softmax", "finite number > 0", "-1"});
  require_error([&] {
    Tensor t = full({4, 1}, 1.0);
    t.set({2, 0}, std::nan(""));
    kl_divergence_logits(logits, logits, -1, t.to(gpu())).to_vector();
  }, {"kl_divergence_logits", "finite number > 0"});
  // Two bad calls before one synchronisation: the first is reported, then the flag is clear.
  require_error([&] {
    Tensor a = cross_entropy(logits, index_on(logits, {0, 0, 0, 11}));
    Tensor b = gather(logits, 1, index_on(logits, {99, 0, 0, 0}, {4, 1}));
    synchronize(gpu());
  }, {"cross_entropy", "label 11 at position 3"});
  synchronize(gpu());  // nothing pending
  // Mixed devices, and GPU tensors where only host memory will do.
  require_error([&] { add(ones({2}), ones({2}).to(gpu())); }, {"add", "different devices", "cpu", "cuda:0"});
  require_error([&] { cross_entropy(logits, index_tensor({1, 2, 3, 4})); }, {"cross_entropy", "labels are on cpu"});
  require_error([&] { logits.data<float>(); }, {"data", "cuda:0", "to(Device::cpu_device())"});
  require_error([&] { Tensor l = logits; l.set({0, 0}, 1.0); }, {"set", "cuda:0"});
  require_error([&] { data::DataLoader(ones({4, 2}), zeros({4}).to(gpu()), 2); },
                {"DataLoader", "cpu", "cuda:0"});
  if (!self_test && cuda_device_count() == 1)
    require_error([] { zeros({2}, DType::f32, Device::cuda_device(1)); },
                  {"no backend for cuda:1", "1 CUDA GPU"});
  // The context survived: the GPU still computes the right numbers.
  Tensor x = tensor({1, 2, 3, 4}, {2, 2}).to(gpu());
  REQUIRE(matmul(x, x).to_vector() == std::vector<double>{7, 10, 15, 22});
  REQUIRE(cross_entropy(logits, index_on(logits, {1, 2, 3, 4})).item() == Approx(std::log(10.0)));
}

// ---------------------------------------------------------------- devices, modules, memory, the VAE

TEST_CASE("Module::to, optimizer state on the GPU, checkpoints from the GPU to the CPU and back",
          "[devices]") {
  Generator g1(3), g2(3);
  nn::MLP on_gpu({5, 8, 3}, g1), on_cpu({5, 8, 3}, g2);
  on_gpu.to(gpu());
  for (const Tensor& p : on_gpu.parameters()) REQUIRE(p.device() == gpu());
  optim::AdamW adam_gpu(on_gpu.parameters()), adam_cpu(on_cpu.parameters());
  Generator data(4);
  Tensor x = randn({16, 5}, data);
  Tensor labels = index_tensor({0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0});
  for (int step = 0; step < 5; ++step) {
    adam_gpu.zero_grad(), adam_cpu.zero_grad();
    backward(cross_entropy(on_gpu(x.to(gpu())), labels.to(gpu()), 0.1));
    backward(cross_entropy(on_cpu(x), labels, 0.1));
    adam_gpu.step(), adam_cpu.step();
  }
  StateDict state = adam_gpu.state_dict();
  for (const auto& e : state.entries())
    if (e.second.numel() > 1) REQUIRE(e.second.device() == gpu());
  for (size_t i = 0; i < on_gpu.parameters().size(); ++i)
    require_agree(on_gpu.parameters()[i], on_cpu.parameters()[i], 1e-4, "AdamW parameters");
  // A checkpoint written from the GPU loads into a CPU model and back into a GPU one.
  std::string path = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                     "/tapegrad-cuda-" + std::to_string(getpid()) + ".tgc";
  write_state_dict(path, on_gpu.state_dict());
  Generator g3(9), g4(10);
  nn::MLP restored_cpu({5, 8, 3}, g3), restored_gpu({5, 8, 3}, g4);
  restored_cpu.load_state_dict(read_state_dict(path));
  restored_gpu.to(gpu());
  restored_gpu.load_state_dict(restored_cpu.state_dict());
  for (size_t i = 0; i < on_gpu.parameters().size(); ++i) {
    REQUIRE(restored_cpu.parameters()[i].to_vector() == on_gpu.parameters()[i].to_vector());
    REQUIRE(restored_gpu.parameters()[i].device() == gpu());
    REQUIRE(restored_gpu.parameters()[i].to_vector() == on_gpu.parameters()[i].to_vector());
  }
  // A whole training checkpoint (model, AdamW's moments, a generator, step) from the GPU resumes
  // on the CPU: the next step there matches the next step on the GPU.
  Generator noise(11);
  TrainingState gpu_state{&on_gpu, &adam_gpu, {{"noise", &noise}}, 5, 1};
  save_checkpoint(path, gpu_state);
  Generator g5(12), noise_cpu(99);
  nn::MLP resumed({5, 8, 3}, g5);
  optim::AdamW adam_resumed(resumed.parameters());
  TrainingState cpu_state{&resumed, &adam_resumed, {{"noise", &noise_cpu}}};
  load_checkpoint(path, cpu_state);
  REQUIRE(cpu_state.step == 5);
  REQUIRE(noise_cpu.offset() == noise.offset());
  struct Run {
    nn::Module& model;
    optim::Optimizer& optimizer;
    Device where;
  };
  for (Run run : {Run{on_gpu, adam_gpu, gpu()}, Run{resumed, adam_resumed, Device::cpu_device()},
                  Run{on_cpu, adam_cpu, Device::cpu_device()}}) {
    run.optimizer.zero_grad();
    backward(cross_entropy(run.model(x.to(run.where)), labels.to(run.where), 0.1));
    run.optimizer.step();
  }
  for (size_t i = 0; i < on_gpu.parameters().size(); ++i)
    require_agree(on_gpu.parameters()[i], resumed.parameters()[i], 1e-5,
                  "a step after resuming a GPU checkpoint on the CPU");
  std::remove(path.c_str());
  // SGD with momentum agrees too.
  optim::SGD sgd_gpu(on_gpu.parameters(), {0.05, 0.9}), sgd_cpu(on_cpu.parameters(), {0.05, 0.9});
  for (int step = 0; step < 3; ++step) {
    sgd_gpu.zero_grad(), sgd_cpu.zero_grad();
    backward(sum(square(on_gpu(x.to(gpu())))));
    backward(sum(square(on_cpu(x))));
    sgd_gpu.step(), sgd_cpu.step();
  }
  for (size_t i = 0; i < on_gpu.parameters().size(); ++i)
    require_agree(on_gpu.parameters()[i], on_cpu.parameters()[i], 1e-4, "SGD parameters");
}

TEST_CASE("BatchNorm's num_batches_tracked and cumulative average follow the module to the GPU",
          "[devices]") {
  // One step on the CPU, then the module moves (its count with it) and goes on on the GPU; a twin
  // stays on the CPU. With momentum = nullopt the k-th batch weighs 1/k, so a count lost in the
  // move would show in the running statistics.
  nn::BatchNorm1d moved(3, 1e-5, std::nullopt), twin(3, 1e-5, std::nullopt);
  std::vector<Tensor> batches;
  for (unsigned k = 0; k < 3; ++k)
    batches.push_back(random_input({6, 3}, 30 + k, -1, 3).detach().to(DType::f32));
  moved(batches[0]);
  moved.to(gpu());
  REQUIRE(moved.num_batches_tracked.device() == gpu());
  for (unsigned k = 1; k < 3; ++k) moved(batches[k].to(gpu()));
  for (const Tensor& b : batches) twin(b);
  REQUIRE(moved.num_batches_tracked.item() == 3);
  require_agree(moved.running_mean, twin.running_mean, 1e-5, "running_mean");
  require_agree(moved.running_var, twin.running_var, 1e-5, "running_var");
}

TEST_CASE("Adam, AdamW and SGD (plain, momentum, Nesterov) steps agree with the CPU in f32 and f64",
          "[devices]") {
  using Make = std::function<std::unique_ptr<optim::Optimizer>(std::vector<Tensor>)>;
  optim::AdamOptions adam;
  adam.lr = 0.05, adam.weight_decay = 0.1;
  optim::AdamWOptions adamw;
  adamw.lr = 0.05;
  const std::vector<std::pair<std::string, Make>> optimizers = {
      {"Adam", [&](std::vector<Tensor> p) { return std::make_unique<optim::Adam>(p, adam); }},
      {"AdamW", [&](std::vector<Tensor> p) { return std::make_unique<optim::AdamW>(p, adamw); }},
      {"SGD", [](std::vector<Tensor> p) { return std::make_unique<optim::SGD>(p, optim::SgdOptions{0.1}); }},
      {"SGD, Nesterov", [](std::vector<Tensor> p) {
         return std::make_unique<optim::SGD>(p, optim::SgdOptions{0.1, 0.9, 0, 0.01, true});
       }},
  };
  for (DType dtype : {DType::f32, DType::f64})
    for (const auto& [name, make] : optimizers) {
      INFO(name << " in " << dtype);
      Tensor start = random_input({37, 5}, 50).detach().to(dtype);
      Tensor target = random_input({37, 5}, 51).detach().to(dtype);
      // Four steps towards `target` on `where`; the parameter after them, on the CPU.
      auto train = [&](Device where) {
        Tensor w = start.clone().to(where).set_requires_grad();
        std::unique_ptr<optim::Optimizer> optimizer = make({w});
        for (int step = 0; step < 4; ++step) {
          optimizer->zero_grad();
          backward(sum(square(sub(w, target.to(where)))));
          optimizer->step();
        }
        return w;
      };
      Tensor on_gpu = train(gpu()), on_cpu = train(Device::cpu_device());
      require_agree(on_gpu, on_cpu, rtol_for(dtype, 0), name);
    }
}

namespace {
// A small VAE on in-memory data (bars and squares with noise), as tests/test_vae.cpp uses.
struct SmallVae {
  Generator init, shuffle, noise, test_noise;
  vae::VAE model;
  optim::Adam adam;
  data::DataLoader train, test;
  SmallVae(Device where, const Tensor& train_x, const Tensor& test_x)
      : init(7, 0), shuffle(7, 1), noise(7, 2), test_noise(7, 3),
        model({train_x.size(1), 48, 4}, init, where),
        adam(model.parameters(), options()),
        train(train_x.to(where), Tensor(), 32, &shuffle),
        test(test_x.to(where), Tensor(), 32) {}
  static optim::AdamOptions options() {
    optim::AdamOptions o;
    o.lr = 3e-3;
    return o;
  }
};

Tensor pictures(int64_t n, uint64_t seed) {
  Generator g(seed);
  Tensor u = rand({n, 64}, g, DType::f64);
  std::vector<double> v = u.to_vector();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < 64; ++p) {
      const bool on = i % 3 == 0 ? (p / 8) % 2 == 0 : i % 3 == 1 ? p % 2 == 0 : (p % 8 > 1 && p % 8 < 6);
      v[i * 64 + p] = std::min(1.0, (on ? 0.8 : 0.0) + 0.2 * v[i * 64 + p]);
    }
  return tensor(v, {n, 64});
}
}  // namespace

TEST_CASE("the VAE trains on the GPU to the CPU's loss, and its steady state calls cudaMalloc 0 times",
          "[vae]") {
  Tensor train_x = pictures(256, 1), test_x = pictures(64, 2);
  SmallVae on_gpu(gpu(), train_x, test_x), on_cpu(Device::cpu_device(), train_x, test_x);
  Backend& backend = backend_for(gpu());
  double gpu_loss = 0, cpu_loss = 0;
  uint64_t after_first = 0;
  for (int epoch = 0; epoch < 4; ++epoch) {
    vae::train_epoch(on_gpu.model, on_gpu.adam, on_gpu.train, on_gpu.noise);
    vae::train_epoch(on_cpu.model, on_cpu.adam, on_cpu.train, on_cpu.noise);
    gpu_loss = vae::evaluate(on_gpu.model, on_gpu.test, on_gpu.test_noise).loss_per_sample;
    cpu_loss = vae::evaluate(on_cpu.model, on_cpu.test, on_cpu.test_noise).loss_per_sample;
    if (epoch == 0) after_first = backend.memory_stats().system_allocations;
  }
  INFO("test loss after 4 epochs: GPU " << gpu_loss << ", CPU " << cpu_loss);
  REQUIRE(std::fabs(gpu_loss - cpu_loss) <= 0.005 * cpu_loss);
  REQUIRE(backend.memory_stats().system_allocations == after_first);
  for (const Tensor& p : on_gpu.model.parameters()) REQUIRE(p.device() == gpu());
  // With its cache given back the GPU computes the same loss again, bit for bit.
  Generator noise_before(21), noise_after(21);
  const double before = vae::evaluate(on_gpu.model, on_gpu.test, noise_before).loss_per_sample;
  backend.release_cached_memory();
  REQUIRE(backend.memory_stats().bytes_cached == 0);
  REQUIRE(vae::evaluate(on_gpu.model, on_gpu.test, noise_after).loss_per_sample == before);
}

// ---------------------------------------------------------------- main

int main(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--harness-self-test") == 0) self_test = true;
    else args.push_back(argv[i]);
  }
  std::unique_ptr<tgtest::StandInDevice> stand_in;
  if (self_test) {
    std::printf("harness self-test: a CPU-backed stand-in plays cuda:0 (this says nothing about "
                "the CUDA backend)\n");
    stand_in = std::make_unique<tgtest::StandInDevice>();
  } else if (cuda_device_count() == 0) {
    std::printf("SKIP: the CUDA tests need a GPU: %s\n", cuda_unavailable_reason().c_str());
    return 77;  // meson's "skipped"
  } else {
    std::printf("CUDA tests on %s\n", backend_for(gpu()).description().c_str());
  }
  std::fflush(stdout);
  // Every call to cuda:0 goes through a recorder, so that a full run can show it reached every
  // kernel, kind and variant of backend.h (tests/coverage_backend.h).
  Backend& device = backend_for(gpu());
  tgtest::CoverageBackend coverage(device);
  register_backend(gpu(), &coverage);
  int failed = run_catch_session(static_cast<int>(args.size()), args.data());
  tape().clear();
  register_backend(gpu(), &device);
  if (args.size() > 1) return failed;  // a chosen subset: coverage is a full run's business
  const std::vector<std::string> missing = coverage.missing();
  const size_t total = tgtest::expected_coverage().size();
  std::printf("backend.h coverage: %zu of %zu kernels, kinds and variants reached\n",
              total - missing.size(), total);
  for (const std::string& entry : missing) std::printf("  not reached: %s\n", entry.c_str());
  return failed != 0 || !missing.empty() ? 1 : 0;
}
