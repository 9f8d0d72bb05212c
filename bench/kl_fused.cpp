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
// Threads: the fused kernels and the small ops are single-threaded loops (tg::set_num_threads
// only steers OpenBLAS, which this loss never calls), so there is one tapegrad configuration.
#include <benchmark/benchmark.h>

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

void set_counters(benchmark::State& state, int64_t rows, int64_t classes) {
  state.counters["rows"] = static_cast<double>(rows);
  state.counters["classes"] = static_cast<double>(classes);
  // bytes of x: one read of the input per iteration, as a scale for the reader
  state.SetBytesProcessed(state.iterations() * rows * classes * static_cast<int64_t>(sizeof(float)));
}

void tapegrad_fused(benchmark::State& state) {
  const int64_t rows = state.range(0), classes = state.range(1);
  Inputs in = make_inputs(rows, classes);
  for (auto _ : state) {
    tg::Tensor loss = tg::kl_div(tg::log_softmax(in.x, -1), in.target, tg::Reduction::batchmean);
    tg::backward(loss);
    benchmark::DoNotOptimize(in.x.grad().raw_data());
    in.x.zero_grad();
  }
  set_counters(state, rows, classes);
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
  set_counters(state, rows, classes);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->Args({128, 10})->Args({4096, 1000})->Unit(benchmark::kMicrosecond);
}

BENCHMARK(tapegrad_fused)->Apply(shapes);
BENCHMARK(tapegrad_chain)->Apply(shapes);

}  // namespace

BENCHMARK_MAIN();
