// bench/sgemm_timer.cpp — an LD_PRELOAD library that times every cblas_sgemm call of a program,
// for "how much of an epoch is gemm" (docs/benchmarks.md, the VAE sections):
//
//   LD_PRELOAD=build/bench/libsgemm_timer.so build/examples/vae/vae --epochs 3 ...
//
// At exit it prints to stderr the number of calls and their total wall time (the time between
// entering and leaving cblas_sgemm on the calling thread, OpenBLAS's own threads included). The
// program's other time is everything else: the rest of the library, the tape, data loading (run
// it with --epochs 0 as well and subtract, to leave loading out).
#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>

extern "C" {

using Sgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int,
                       float, float*, int);

namespace {

std::atomic<long long> g_nanoseconds{0};
std::atomic<long long> g_calls{0};

Sgemm real_sgemm() {
  static Sgemm real = [] {
    auto found = reinterpret_cast<Sgemm>(dlsym(RTLD_NEXT, "cblas_sgemm"));
    if (!found) {
      std::fprintf(stderr, "sgemm_timer: cblas_sgemm not found after this library\n");
      std::abort();
    }
    return found;
  }();
  return real;
}

struct Report {
  ~Report() {
    std::fprintf(stderr, "sgemm_timer: %lld calls of cblas_sgemm, %.3f s in them\n", g_calls.load(),
                 static_cast<double>(g_nanoseconds.load()) * 1e-9);
  }
} g_report;

}  // namespace

// The CBLAS enums are passed as ints (CblasRowMajor = 101, ...): the same ABI.
void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  const Sgemm real = real_sgemm();
  const auto start = std::chrono::steady_clock::now();
  real(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  const auto spent = std::chrono::steady_clock::now() - start;
  g_nanoseconds += std::chrono::duration_cast<std::chrono::nanoseconds>(spent).count();
  ++g_calls;
}

}  // extern "C"
