// tapegrad/random.h — reproducible random numbers from a counter-based generator.
//
// A Generator is a Philox 4x32-10 key (the seed), a stream number and an offset: the count of
// 128-bit blocks already used. Every sample is a pure function of (seed, stream, offset + i), so
// the same seed gives the same numbers on every backend, in any thread order, and a checkpoint
// only needs these three integers to resume the exact sequence.
#pragma once

#include <cstdint>

#include "tapegrad/tensor.h"

namespace tg {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0, uint64_t stream = 0) : seed_(seed), stream_(stream) {}

  uint64_t seed() const { return seed_; }
  uint64_t stream() const { return stream_; }
  uint64_t offset() const { return offset_; }
  // Claims `blocks` consecutive counter blocks and returns the first one.
  uint64_t advance(uint64_t blocks) {
    uint64_t first = offset_;
    offset_ += blocks;
    return first;
  }

  struct State {
    uint64_t seed = 0, stream = 0, offset = 0;
  };
  State state() const { return {seed_, stream_, offset_}; }
  void set_state(const State& state) {
    seed_ = state.seed;
    stream_ = state.stream;
    offset_ = state.offset;
  }

 private:
  uint64_t seed_, stream_, offset_ = 0;
};

// Uniform on [low, high).
Tensor uniform(const Shape& shape, double low, double high, Generator& generator,
               DType dtype = DType::f32, Device device = Device::cpu_device());
Tensor rand(const Shape& shape, Generator& generator, DType dtype = DType::f32,
            Device device = Device::cpu_device());  // U[0, 1)
// Normal with the given mean and standard deviation (Box-Muller).
Tensor normal(const Shape& shape, double mean, double stddev, Generator& generator,
              DType dtype = DType::f32, Device device = Device::cpu_device());
Tensor randn(const Shape& shape, Generator& generator, DType dtype = DType::f32,
             Device device = Device::cpu_device());  // N(0, 1)
Tensor randn_like(const Tensor& like, Generator& generator);
// 1 with probability p, else 0, elementwise; p in [0, 1]. Not differentiable.
Tensor bernoulli(const Tensor& probabilities, Generator& generator);
// One class per row, drawn from softmax(logits) along the last axis (Gumbel-max). i64, shape of
// logits without its last axis. Pass log(p) to sample from probabilities p.
Tensor categorical(const Tensor& logits, Generator& generator);
// A random permutation of 0..n-1 (i64, on the CPU): for shuffling datasets.
Tensor randperm(int64_t n, Generator& generator);

}  // namespace tg
