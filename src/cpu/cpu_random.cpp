// src/cpu/cpu_random.cpp — fills tensors from the Philox stream, one block per step.
#include "../kernels/philox.h"
#include "cpu_backend.h"

namespace tg {

void CpuBackend::fill_random(RandomDistribution distribution, DType dtype, void* out_, int64_t n,
                             double a, double b, uint64_t seed, uint64_t stream,
                             uint64_t offset) {
  dispatch_floating(dtype, "fill_random", [&](auto zero) {
    using T = decltype(zero);
    T* out = static_cast<T*>(out_);
    constexpr int per_block = kernels::samples_per_block<T>();
    const T ta = static_cast<T>(a), tb = static_cast<T>(b);
    for (int64_t start = 0; start < n; start += per_block) {
      kernels::PhiloxBlock block = kernels::philox_block(seed, stream, offset + start / per_block);
      for (int lane = 0; lane < per_block && start + lane < n; ++lane) {
        T sample = kernels::random_sample(distribution == RandomDistribution::normal, block, lane,
                                          ta, tb);
        out[start + lane] = sample;
      }
    }
  });
}

}  // namespace tg
