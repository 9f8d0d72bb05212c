// bench/op_overhead.cpp — the cost of one recorded op, forward and backward together.
//
// A chain of 1000 small ops (x * 0.999, then tanh, alternating) on a 64-element float32 tensor,
// recorded on the tape, then backward: the time per op is what the engine itself costs (the
// kernels touch only 64 floats). With -Dlibtorch_bench=enabled the same loop runs on libtorch in
// the same binary; bench/op_overhead.py prints the ratio. Each iteration runs 1000 ops, so its
// time in microseconds reads directly as nanoseconds per op.
#include <benchmark/benchmark.h>

#include "tapegrad/tapegrad.h"

#ifdef TG_BENCH_LIBTORCH
#include <torch/torch.h>
#endif

namespace {
constexpr int kOps = 1000;
constexpr int kElements = 64;

void tapegrad_chain(benchmark::State& state) {
  tg::set_num_threads(1);
  tg::Tensor x = tg::full({kElements}, 0.5).set_requires_grad();
  for (auto _ : state) {
    tg::Tensor y = x;
    for (int i = 0; i < kOps / 2; ++i) y = tg::tanh(y * 0.999);
    tg::backward(y, tg::ones({kElements}));
    benchmark::DoNotOptimize(x.grad().raw_data());
    x.zero_grad();
  }
}
BENCHMARK(tapegrad_chain)->Unit(benchmark::kMicrosecond);

void tapegrad_chain_no_grad(benchmark::State& state) {
  tg::set_num_threads(1);
  tg::Tensor x = tg::full({kElements}, 0.5);
  tg::NoGrad no_grad;
  for (auto _ : state) {
    tg::Tensor y = x;
    for (int i = 0; i < kOps / 2; ++i) y = tg::tanh(y * 0.999);
    benchmark::DoNotOptimize(y.raw_data());
  }
}
BENCHMARK(tapegrad_chain_no_grad)->Unit(benchmark::kMicrosecond);

#ifdef TG_BENCH_LIBTORCH
void libtorch_chain(benchmark::State& state) {
  torch::set_num_threads(1);
  torch::Tensor x = torch::full({kElements}, 0.5, torch::requires_grad());
  torch::Tensor seed = torch::ones({kElements});
  for (auto _ : state) {
    torch::Tensor y = x;
    for (int i = 0; i < kOps / 2; ++i) y = torch::tanh(y * 0.999);
    y.backward(seed);
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.mutable_grad().reset();
  }
}
BENCHMARK(libtorch_chain)->Unit(benchmark::kMicrosecond);

void libtorch_chain_no_grad(benchmark::State& state) {
  torch::set_num_threads(1);
  torch::Tensor x = torch::full({kElements}, 0.5);
  torch::NoGradGuard no_grad;
  for (auto _ : state) {
    torch::Tensor y = x;
    for (int i = 0; i < kOps / 2; ++i) y = torch::tanh(y * 0.999);
    benchmark::DoNotOptimize(y.data_ptr());
  }
}
BENCHMARK(libtorch_chain_no_grad)->Unit(benchmark::kMicrosecond);
#endif

}  // namespace

int main(int argc, char** argv) {
  // Which SIMD target the CPU kernels ran on (TAPEGRAD_SIMD=avx2 forces one).
  benchmark::AddCustomContext("simd_target", tg::cpu_simd_target());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
