// src/kernels/philox.h — Philox 4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as
// 1, 2, 3", SC'11) and the mapping from its 32-bit words to uniform and normal samples.
//
// Counter-based: the output is a pure function of (counter, key), so element i of any tensor can
// be generated independently, on any device, in any order, and give the same number. tapegrad
// keys it with the seed and puts (block index, stream) in the counter.
#pragma once

#include <cmath>
#include <cstdint>

#include "elementwise_math.h"

namespace tg::kernels {

struct PhiloxBlock {
  uint32_t x[4];
};

TG_HOST_DEVICE inline void mul_hi_lo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t product = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}

// Ten rounds of the Philox S-box with the Weyl-sequence key schedule.
TG_HOST_DEVICE inline PhiloxBlock philox4x32_10(PhiloxBlock counter, uint32_t key0, uint32_t key1) {
  const uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  const uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mul_hi_lo(kMul0, counter.x[0], hi0, lo0);
    mul_hi_lo(kMul1, counter.x[2], hi1, lo1);
    counter = {{hi1 ^ counter.x[1] ^ key0, lo1, hi0 ^ counter.x[3] ^ key1, lo0}};
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return counter;
}

// The block for (seed, stream, block index): key = seed, counter = (index, stream).
TG_HOST_DEVICE inline PhiloxBlock philox_block(uint64_t seed, uint64_t stream, uint64_t index) {
  PhiloxBlock counter = {{static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                          static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)}};
  return philox4x32_10(counter, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Uniform in [0, 1): 24 random bits for float, 53 for double (two words).
TG_HOST_DEVICE inline float uniform_float(uint32_t x) { return (x >> 8) * (1.0f / 16777216.0f); }
TG_HOST_DEVICE inline double uniform_double(uint32_t hi, uint32_t lo) {
  uint64_t bits = (static_cast<uint64_t>(hi) << 21) ^ (lo >> 11);
  return static_cast<double>(bits) * (1.0 / 9007199254740992.0);
}

// How many samples one Philox block yields: floats use one word each; doubles two words each.
// Normals come in Box-Muller pairs, so the same counts hold.
template <class T> TG_HOST_DEVICE constexpr int samples_per_block() { return sizeof(T) == 4 ? 4 : 2; }

// Sample `lane` (0 <= lane < samples_per_block<T>()) of a block as U[0, 1).
template <class T>
TG_HOST_DEVICE inline T block_uniform(const PhiloxBlock& b, int lane) {
  if constexpr (sizeof(T) == 4) return uniform_float(b.x[lane]);
  else return uniform_double(b.x[2 * lane], b.x[2 * lane + 1]);
}

// Sample `lane` of a block as N(0, 1), by Box-Muller on the block's uniforms: lanes (0, 1) share
// one pair (cos and sin), and for floats lanes (2, 3) another. u1 is moved to (0, 1] so log(u1)
// is finite.
template <class T>
TG_HOST_DEVICE inline T block_normal(const PhiloxBlock& b, int lane) {
  const T two_pi = T(6.283185307179586476925286766559);
  int pair = lane / 2;
  T u1, u2;
  if constexpr (sizeof(T) == 4) {
    u1 = T(1) - uniform_float(b.x[2 * pair]);
    u2 = uniform_float(b.x[2 * pair + 1]);
  } else {
    u1 = T(1) - uniform_double(b.x[0], b.x[1]);
    u2 = uniform_double(b.x[2], b.x[3]);
  }
  T radius = sqrt(T(-2) * log(u1));
  T angle = two_pi * u2;
  return radius * (lane % 2 == 0 ? std::cos(angle) : std::sin(angle));
}

// Sample `lane` of a block mapped to its distribution: a + (b - a)·U for uniform, a + b·N for
// normal (Backend::fill_random's parameters). Written as one fused multiply-add, which nvcc would
// otherwise form on its own and the CPU not: both backends then round alike, and the uniforms of
// every (seed, stream, offset) are bit-identical on the CPU and the GPU.
template <class T>
TG_HOST_DEVICE inline T random_sample(bool normal, const PhiloxBlock& block, int lane, T a, T b) {
  using std::fma;
  return normal ? fma(b, block_normal<T>(block, lane), a) : fma(b - a, block_uniform<T>(block, lane), a);
}

}  // namespace tg::kernels
