// examples/common/blas_kernels.h — which OpenBLAS kernels a program runs on, for its banner.
//
// Worth printing: OpenBLAS picks its kernels once, while it loads, from the CPU it detects or from
// OPENBLAS_CORETYPE. Debian 12's OpenBLAS (0.3.21) predates AMD's Zen 4 and Zen 5 and would run its
// Haswell (AVX2) kernels there, although its SkylakeX (AVX-512) kernels run on those CPUs and are
// much faster (the VAE's GEMMs on 2 Zen 5 cores: ~215 -> ~360 GFLOP/s; docs/benchmarks.md).
// Choose them with OPENBLAS_CORETYPE=SkylakeX in the environment.
#pragma once

#include <string>

namespace examples {

// "OpenBLAS Haswell kernels", plus "(OPENBLAS_CORETYPE=...)" when the environment chose them.
std::string blas_kernels();

}  // namespace examples
