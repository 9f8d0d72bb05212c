// bench/kernels.cpp — single CPU kernels through the public API, forward only (NoGrad), f32: the
// per-kernel figures behind "no kernel slower than before". Every benchmark is one op on a small
// tensor (64 elements: what the call costs) or a large one (1M elements, or 4096×1000 rows:
// what the kernel's loop costs). Only the public API is used, so the same file builds against an
// older tapegrad; bench/compare_builds.py runs two builds of it side by side.
//
//   build/bench/kernels --benchmark_filter=tanh          TAPEGRAD_SIMD=avx2 build/bench/kernels
#include <benchmark/benchmark.h>

#include <functional>
#include <string>

#include "tapegrad/tapegrad.h"

// Built against a tapegrad from before run-time SIMD dispatch (issue 17), which cannot say.
#ifdef TG_BENCH_NO_SIMD_TARGET
#define TG_SIMD_TARGET_NAME "(not reported by this build)"
#else
#define TG_SIMD_TARGET_NAME tg::cpu_simd_target()
#endif

namespace {

using Op = std::function<tg::Tensor(const tg::Tensor&, const tg::Tensor&)>;

void run(benchmark::State& state, const Op& op, double low_mean, bool probabilities) {
  const int64_t n = state.range(0), cols = state.range(1);
  tg::Generator generator(42);
  tg::NoGrad no_grad;
  tg::Tensor x = cols ? tg::normal({n / cols, cols}, low_mean, 2, generator)
                      : tg::normal({n}, low_mean, 2, generator);
  tg::Tensor y = probabilities ? tg::softmax(tg::randn(x.shape(), generator), -1)
                               : tg::normal(x.shape(), 0, 1, generator);
  for (auto _ : state) {
    tg::Tensor out = op(x, y);
    benchmark::DoNotOptimize(out.raw_data());
  }
  state.SetItemsProcessed(state.iterations() * n);
}

void sizes(benchmark::internal::Benchmark* b) {
  b->Args({64, 0})->Args({1 << 20, 0})->Unit(benchmark::kMicrosecond);
}
void rows(benchmark::internal::Benchmark* b) {
  b->Args({128 * 10, 10})->Args({4096 * 1000, 1000})->Unit(benchmark::kMicrosecond);
}

#define TG_KERNEL(name, shapes, low_mean, probabilities, expr)                                   \
  void name(benchmark::State& state) {                                                         \
    run(state, [](const tg::Tensor& x, const tg::Tensor& y) { (void)y; return expr; }, low_mean, \
        probabilities);                                                                        \
  }                                                                                            \
  BENCHMARK(name)->Apply(shapes);

TG_KERNEL(exp, sizes, 0, false, tg::exp(x))
TG_KERNEL(log, sizes, 0, false, tg::log(tg::abs(x)))
TG_KERNEL(tanh, sizes, 0, false, tg::tanh(x))
TG_KERNEL(sigmoid, sizes, 0, false, tg::sigmoid(x))
TG_KERNEL(relu, sizes, 0, false, tg::relu(x))
TG_KERNEL(mul_scalar, sizes, 0, false, tg::mul(x, 0.999))
TG_KERNEL(add, sizes, 0, false, tg::add(x, y))
TG_KERNEL(mul, sizes, 0, false, tg::mul(x, y))
TG_KERNEL(pow_scalar, sizes, 0, false, tg::pow(x, 2.0))
TG_KERNEL(sum, sizes, 0, false, tg::sum(x))
TG_KERNEL(bce_with_logits_sum, sizes, 0, false, tg::bce_with_logits(x, tg::sigmoid(y), tg::Reduction::sum))
TG_KERNEL(gaussian_kl_standard_sum, sizes, 0, false, tg::gaussian_kl_standard(x, y, tg::Reduction::sum))
TG_KERNEL(log_softmax, rows, 0, false, tg::log_softmax(x, -1))
TG_KERNEL(softmax, rows, 0, false, tg::softmax(x, -1))
TG_KERNEL(logsumexp, rows, 0, false, tg::logsumexp(x, -1, true))
TG_KERNEL(kl_div_sum, rows, 0, true, tg::kl_div(tg::log_softmax(x, -1), y, tg::Reduction::sum))
TG_KERNEL(kl_divergence_logits, rows, 0, false, tg::kl_divergence_logits(x, y))

// One fused Adam step over a parameter of n elements (the VAE has 0.65M): param, grad and the
// two moments are read once and written once.
void adam_step(benchmark::State& state) {
  const int64_t n = state.range(0);
  tg::Generator generator(42);
  tg::Tensor p = tg::normal({n}, 0, 1, generator).set_requires_grad();
  p.set_grad(tg::normal({n}, 0, 1, generator));
  tg::optim::Adam adam({p});
  for (auto _ : state) adam.step();
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(adam_step)->Arg(64)->Arg(1 << 20)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::AddCustomContext("simd_target", TG_SIMD_TARGET_NAME);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
