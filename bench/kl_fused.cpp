// bench/kl_fused.cpp — fused log_softmax + kl_div, forward and backward, against the same loss
// built from tapegrad's small ops.
//
//   loss = kl_div(log_softmax(x, -1), target, batchmean)        x, target: [rows, classes] f32
//
// tapegrad_fused uses the two fused primitives (two tape entries, four kernels); tapegrad_chain
// builds the same loss from x - logsumexp(x), log, sub, mul, sum and mul (eight entries). Every
// iteration is one forward and one backward, reading x.grad() at the end. bench/kl_vs_pytorch.py
// runs this binary and PyTorch's F.kl_div(F.log_softmax(x), target, reduction='batchmean') on the
// same shapes and prints the ratios (docs/benchmarks.md).
//
// Threads: tapegrad_fused and tapegrad_chain run with the default thread count (all cores; the
// kernels split tensors of >= 32k elements over tg::set_num_threads() threads), tapegrad_fused_1t
// with one thread. memcpy copies a buffer the size of x, for the bandwidth the machine has in the
// same run. The JSON context carries simd_target (tg::cpu_simd_target(): the SIMD target the
// kernels ran on; TAPEGRAD_SIMD=avx2 forces one) and kernel_threads.
//
// bytes_per_second counts the traffic the four fused kernels need at least: log_softmax reads x
// and writes log q, kl_div reads log q and p, its backward reads p and writes ∂/∂log q,
// log_softmax's backward reads ∂/∂log q and log q and writes x.grad: 9 arrays of rows·classes
// floats per iteration.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "tapegrad/tapegrad.h"

namespace {

struct Inputs {
  tg::Tensor x, target;
};

// Logits ~ N(0, 2²), target = softmax of other N(0, 1) logits; fixed seeds (the Python script
// makes its own, equally distributed, data).
Inputs make_inputs(int64_t rows, int64_t classes) {
  tg::Generator generator(1234);
  Inputs in;
  in.x = tg::normal({rows, classes}, 0, 2, generator).set_requires_grad();
  tg::NoGrad no_grad;
  in.target = tg::softmax(tg::randn({rows, classes}, generator), -1);
  return in;
}

constexpr int64_t kArraysMoved = 9;  // see the header

void set_counters(benchmark::State& state, int64_t rows, int64_t classes, int64_t arrays) {
  state.counters["rows"] = static_cast<double>(rows);
  state.counters["classes"] = static_cast<double>(classes);
  state.SetBytesProcessed(state.iterations() * arrays * rows * classes *
                          static_cast<int64_t>(sizeof(float)));
}

void fused_steps(benchmark::State& state) {
  const int64_t rows = state.range(0), classes = state.range(1);
  Inputs in = make_inputs(rows, classes);
  for (auto _ : state) {
    tg::Tensor loss = tg::kl_div(tg::log_softmax(in.x, -1), in.target, tg::Reduction::batchmean);
    tg::backward(loss);
    benchmark::DoNotOptimize(in.x.grad().raw_data());
    in.x.zero_grad();
  }
  set_counters(state, rows, classes, kArraysMoved);
}

void tapegrad_fused(benchmark::State& state) { fused_steps(state); }

void tapegrad_fused_1t(benchmark::State& state) {
  const int threads = tg::num_threads();
  tg::set_num_threads(1);
  fused_steps(state);
  tg::set_num_threads(threads);
}

// A copy of rows·classes floats (read once, written once: 2 arrays).
void memcpy_x(benchmark::State& state) {
  const int64_t rows = state.range(0), classes = state.range(1);
  std::vector<float> from(rows * classes, 1.0f), to(rows * classes);
  for (auto _ : state) {
    std::memcpy(to.data(), from.data(), from.size() * sizeof(float));
    benchmark::DoNotOptimize(to.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, rows, classes, 2);
}

void tapegrad_chain(benchmark::State& state) {
  const int64_t rows = state.range(0), classes = state.range(1);
  Inputs in = make_inputs(rows, classes);
  for (auto _ : state) {
    tg::Tensor log_q = tg::sub(in.x, tg::logsumexp(in.x, -1, true));
    tg::Tensor terms = tg::mul(in.target, tg::sub(tg::log(in.target), log_q));
    tg::Tensor loss = tg::mul(tg::sum(terms), 1.0 / static_cast<double>(rows));
    tg::backward(loss);
    benchmark::DoNotOptimize(in.x.grad().raw_data());
    in.x.zero_grad();
  }
  set_counters(state, rows, classes, kArraysMoved);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->Args({128, 10})->Args({4096, 1000})->Unit(benchmark::kMicrosecond);
}

BENCHMARK(tapegrad_fused)->Apply(shapes);
BENCHMARK(tapegrad_fused_1t)->Apply(shapes);
BENCHMARK(tapegrad_chain)->Apply(shapes);
BENCHMARK(memcpy_x)->Apply(shapes);

}  // namespace

int main(int argc, char** argv) {
  benchmark::AddCustomContext("simd_target", tg::cpu_simd_target());
  benchmark::AddCustomContext("kernel_threads", std::to_string(tg::num_threads()));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
