// examples/common/blas_kernels.h — which OpenBLAS kernels a program runs on, for its banner.
//
// Worth printing: OpenBLAS picks its kernels once, while it loads, from the CPU it detects or from
// OPENBLAS_CORETYPE. Debian 12's OpenBLAS (0.3.21) predates some CPUs it runs on:
//  - AMD Zen 4 and Zen 5 get its Haswell (AVX2) kernels, although its SkylakeX (AVX-512) kernels
//    run there and are much faster (the VAE's GEMMs on 2 Zen 5 cores: ~215 -> ~360 GFLOP/s;
//    docs/benchmarks.md);
//  - an Intel CPU newer than it (seen: family 6 model 207, an AVX-512 Xeon) gets its SSE3
//    Prescott kernels, 5x slower than SkylakeX there (128x784x400 sgemm, one thread: 5.4 against
//    27.8 GFLOP/s).
// Choose better ones with OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell (AVX2) in the
// environment; the banner says so when OpenBLAS fell back to kernels older than the CPU.
#pragma once

#include <string>

namespace examples {

// "OpenBLAS Haswell kernels", plus "(OPENBLAS_CORETYPE=...)" when the environment chose them, or
// a hint naming the better kernels when OpenBLAS chose pre-AVX2 ones on an AVX2 or AVX-512 CPU.
std::string blas_kernels();

}  // namespace examples
