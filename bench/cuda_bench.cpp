// bench/cuda_bench.cpp — the CUDA backend's figures, each against its reference in the same run:
//   - gemm through the engine (tg::matmul) against raw cuBLAS on the same device buffers;
//   - log_softmax + kl_div, and kl_divergence_logits, on 4096×32000 f32 against the copy
//     bandwidth (cudaMemcpy device to device) measured in the same call;
//   - per-op overhead: a tiny op with and without recording (its backward included).
// Times are medians of `--rounds` rounds, each `--iterations` calls between two synchronisations
// (host clock; a round lasts well over a millisecond). Prints one table.
//
//   build/bench/cuda_bench                 # needs a GPU
//   build/bench/cuda_bench --rounds 5
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "tapegrad/tapegrad.h"

namespace {

using Clock = std::chrono::steady_clock;
const tg::Device kGpu = tg::Device::cuda_device(0);

int rounds = 7;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "cuda_bench: %s: %s\n", what, cudaGetErrorString(status));
    std::exit(1);
  }
}

// Median seconds per call of `body` over `rounds` rounds of `iterations` calls; `wait` waits for
// the GPU work the calls queued.
double seconds_per_call(int iterations, const std::function<void()>& body,
                        const std::function<void()>& wait) {
  body();  // warm-up: first-use allocations, cuBLAS heuristics
  wait();
  std::vector<double> times;
  for (int r = 0; r < rounds; ++r) {
    auto start = Clock::now();
    for (int i = 0; i < iterations; ++i) body();
    wait();
    times.push_back(std::chrono::duration<double>(Clock::now() - start).count() / iterations);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void sync_engine() { tg::synchronize(kGpu); }
void sync_device() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

struct Row {
  std::string what, engine, reference, ratio;
};
std::vector<Row> table;

std::string format(const char* spec, double value) {
  char text[64];
  std::snprintf(text, sizeof text, spec, value);
  return text;
}

// ---------------------------------------------------------------- gemm

void bench_gemm(int64_t m, int64_t n, int64_t k, int iterations) {
  tg::Generator g(1);
  tg::Tensor a = tg::randn({m, k}, g).to(kGpu), b = tg::randn({k, n}, g).to(kGpu);
  tg::Tensor c = tg::zeros({m, n}, tg::DType::f32, kGpu);
  tg::NoGrad no_grad;
  const double engine = seconds_per_call(iterations, [&] { tg::matmul(a, b); }, sync_engine);
  cublasHandle_t handle;
  if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) std::exit(1);
  const float one = 1, zero = 0;
  const float* pa = static_cast<const float*>(a.raw_data());
  const float* pb = static_cast<const float*>(b.raw_data());
  float* pc = static_cast<float*>(c.raw_data());
  sync_engine();
  const double raw = seconds_per_call(iterations, [&] {
    cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, int(n), int(m), int(k), &one, pb, int(n), pa,
                int(k), &zero, pc, int(n));
  }, sync_device);
  cublasDestroy(handle);
  const double flops = 2.0 * m * n * k;
  table.push_back({"gemm " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) +
                       " f32 (ms; TFLOP/s)",
                   format("%.4f", engine * 1e3) + format(" (%.1f)", flops / engine / 1e12),
                   format("%.4f", raw * 1e3) + format(" (%.1f) cuBLAS", flops / raw / 1e12),
                   format("%.3f", engine / raw)});
}

// ---------------------------------------------------------------- bandwidth-bound primitives

void bench_kl(int64_t rows, int64_t classes) {
  tg::Generator g(2);
  tg::Tensor logits = tg::randn({rows, classes}, g).to(kGpu);
  tg::Tensor teacher = tg::randn({rows, classes}, g).to(kGpu);
  tg::Tensor target = tg::softmax(teacher);
  const double bytes = double(rows) * classes * 4;  // one f32 tensor of this shape
  // The copy: read once, write once.
  tg::Tensor copy = tg::empty({rows, classes}, tg::DType::f32, kGpu);
  sync_engine();
  const double copy_seconds = seconds_per_call(20, [&] {
    check(cudaMemcpy(copy.raw_data(), logits.raw_data(), size_t(bytes), cudaMemcpyDeviceToDevice),
          "cudaMemcpy");
  }, sync_device);
  const double copy_bandwidth = 2 * bytes / copy_seconds;
  table.push_back({"copy " + std::to_string(rows) + "x" + std::to_string(classes) + " f32 (GB/s)",
                   "", format("%.0f cudaMemcpy", copy_bandwidth / 1e9), ""});
  tg::NoGrad no_grad;
  // log_softmax reads the logits and writes log q; kl_div reads log q and p: 4 tensors' traffic.
  const double chain = seconds_per_call(20, [&] {
    tg::kl_div(tg::log_softmax(logits), target, tg::Reduction::batchmean);
  }, sync_engine);
  table.push_back({"log_softmax + kl_div forward (GB/s of 4 passes)",
                   format("%.0f", 4 * bytes / chain / 1e9) + format(" (%.3f ms)", chain * 1e3),
                   format("%.0f copy", copy_bandwidth / 1e9),
                   format("%.2f", 4 * bytes / chain / copy_bandwidth)});
  // kl_divergence_logits reads both logits twice (statistics, then the sum): 4 passes again,
  // the second pair mostly from L2.
  const double fused = seconds_per_call(20, [&] {
    tg::kl_divergence_logits(teacher, logits, -1, 1.0, tg::Reduction::batchmean);
  }, sync_engine);
  table.push_back({"kl_divergence_logits forward (GB/s of 2 reads)",
                   format("%.0f", 2 * bytes / fused / 1e9) + format(" (%.3f ms)", fused * 1e3),
                   format("%.0f copy", copy_bandwidth / 1e9),
                   format("%.2f", 2 * bytes / fused / copy_bandwidth)});
}

// ---------------------------------------------------------------- per-op overhead

void bench_overhead() {
  tg::Tensor x = tg::ones({1}, tg::DType::f32, kGpu), y = tg::ones({1}, tg::DType::f32, kGpu);
  const int calls = 2000;
  double no_grad;
  {
    tg::NoGrad off;
    no_grad = seconds_per_call(calls, [&] { tg::add(x, y); }, sync_engine);
  }
  tg::Tensor w = tg::ones({1}, tg::DType::f32, kGpu).set_requires_grad();
  // 100 recorded adds and their backward, per call of the body.
  const double recorded = seconds_per_call(20, [&] {
    tg::Tensor s = w;
    for (int i = 0; i < 100; ++i) s = tg::add(s, y);
    tg::backward(tg::sum(s));
    w.zero_grad();
  }, sync_engine) / 100;
  table.push_back({"add of 1 element, no recording (us per op)", format("%.2f", no_grad * 1e6), "", ""});
  table.push_back({"add of 1 element, recorded + backward (us per op)", format("%.2f", recorded * 1e6),
                   "", ""});
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) rounds = std::max(1, std::atoi(argv[++i]));
  if (tg::cuda_device_count() == 0) {
    std::printf("cuda_bench: no GPU: %s\n", tg::cuda_unavailable_reason().c_str());
    return 77;
  }
  std::printf("cuda_bench on %s, median of %d rounds\n",
              tg::backend_for(kGpu).description().c_str(), rounds);
  try {
    bench_gemm(4096, 4096, 4096, 10);
    bench_gemm(128, 400, 784, 500);   // the VAE's fc1
    bench_gemm(128, 784, 400, 500);   // the VAE's fc4
    bench_kl(4096, 32000);
    bench_overhead();
  } catch (const tg::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::printf("\n%-52s %-24s %-24s %s\n", "", "tapegrad", "reference", "ratio");
  for (const Row& r : table)
    std::printf("%-52s %-24s %-24s %s\n", r.what.c_str(), r.engine.c_str(), r.reference.c_str(),
                r.ratio.c_str());
  return 0;
}
