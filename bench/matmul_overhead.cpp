// bench/matmul_overhead.cpp — matmul through the engine versus the same gemm calls made
// directly on cblas_sgemm, for the VAE's first layer: [128, 784] · [784, 400].
//
//   engine_*: tg::matmul recorded on the tape, then backward (grad_x and grad_w).
//   cblas_*:  the three cblas_sgemm calls that work needs, into preallocated buffers.
// bench/ratio.py runs both in one process and prints engine / cblas. Each runs with 1 and with
// 2 OpenBLAS threads (the argument "threads").
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <vector>

#include "tapegrad/tapegrad.h"

namespace {
constexpr int M = 128, K = 784, N = 400;

tg::Tensor filled(const tg::Shape& shape, float value) { return tg::full(shape, value); }

void engine_forward(benchmark::State& state) {
  tg::set_num_threads(static_cast<int>(state.range(0)));
  tg::Tensor x = filled({M, K}, 0.01f), w = filled({K, N}, 0.02f);
  tg::NoGrad no_grad;
  for (auto _ : state) {
    tg::Tensor y = tg::matmul(x, w);
    benchmark::DoNotOptimize(y.raw_data());
  }
}

void cblas_forward(benchmark::State& state) {
  tg::set_num_threads(static_cast<int>(state.range(0)));
  std::vector<float> x(M * K, 0.01f), w(K * N, 0.02f), y(M * N);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, x.data(), K, w.data(), N,
                0, y.data(), N);
    benchmark::DoNotOptimize(y.data());
  }
}

void engine_forward_backward(benchmark::State& state) {
  tg::set_num_threads(static_cast<int>(state.range(0)));
  tg::Tensor x = filled({M, K}, 0.01f).set_requires_grad();
  tg::Tensor w = filled({K, N}, 0.02f).set_requires_grad();
  tg::Tensor seed = filled({M, N}, 1.0f);
  for (auto _ : state) {
    tg::Tensor y = tg::matmul(x, w);
    tg::backward(y, seed);
    benchmark::DoNotOptimize(w.grad().raw_data());
    x.zero_grad();
    w.zero_grad();
  }
}

// y = x·w, grad_x = grad·wᵀ, grad_w = xᵀ·grad: the same three products, transposes as flags.
void cblas_forward_backward(benchmark::State& state) {
  tg::set_num_threads(static_cast<int>(state.range(0)));
  std::vector<float> x(M * K, 0.01f), w(K * N, 0.02f), y(M * N), grad(M * N, 1.0f);
  std::vector<float> grad_x(M * K), grad_w(K * N);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, x.data(), K, w.data(), N,
                0, y.data(), N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, K, N, 1, grad.data(), N, w.data(), N,
                0, grad_x.data(), K);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, M, 1, x.data(), K, grad.data(), N,
                0, grad_w.data(), N);
    benchmark::DoNotOptimize(grad_w.data());
  }
}

BENCHMARK(engine_forward)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(cblas_forward)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(engine_forward_backward)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(cblas_forward_backward)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
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
