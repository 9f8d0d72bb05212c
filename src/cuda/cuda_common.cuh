// src/cuda/cuda_common.cuh — what every CUDA kernel file shares: launch shapes, grid-stride loops,
// dtype dispatch, and BlockRow, the thread-group policy of kernel_bodies.h for a row per block
// (CUB's BlockReduce).
#pragma once

#include <cub/block/block_reduce.cuh>

#include <algorithm>
#include <cstdint>

#include "../kernels/dispatch.h"
#include "cuda_backend.h"
#include "kernel_bodies.h"

namespace tg::cuda {

constexpr int kThreads = 256;  // threads per block of an elementwise kernel
// Grids are capped at a fixed size (grid-stride loops do the rest), so that how work is split —
// and therefore every rounding — is the same on every GPU.
constexpr int64_t kMaxBlocks = 8192;

inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + threads - 1) / threads, 1, kMaxBlocks));
}

__device__ inline int64_t global_thread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline int64_t grid_threads() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

using kernels::dispatch_any;  // dtype -> C++ type, as the CPU backend: src/kernels/dispatch.h
using kernels::dispatch_floating;
using kernels::dispatch_reduce;

// The shared memory a BlockRow's collectives use: CUB's scratch and one broadcast slot, enough for
// every accumulator of kernel_bodies.h (at most 16 bytes) at up to 512 threads.
constexpr int kRowSharedBytes = 1024;

// One block shares a row: thread j of `Threads` owns elements j, j + Threads, ...
template <int Threads>
struct BlockRow {
  unsigned char* shared;  // kRowSharedBytes of __shared__ memory

  __device__ int64_t thread() const { return threadIdx.x; }
  __device__ int64_t threads() const { return Threads; }

  // CUB's block reduction (fixed order: the result repeats bit for bit), then a broadcast.
  template <class V, class Op>
  __device__ V reduce_all(V mine, Op op) const {
    using Reduce = cub::BlockReduce<V, Threads>;
    using Storage = typename Reduce::TempStorage;
    constexpr size_t slot = (sizeof(Storage) + 15) / 16 * 16;
    static_assert(slot + sizeof(V) <= kRowSharedBytes, "BlockRow: shared memory too small");
    V total = Reduce(*reinterpret_cast<Storage*>(shared)).Reduce(mine, op);
    V* broadcast = reinterpret_cast<V*>(shared + slot);
    if (threadIdx.x == 0) *broadcast = total;
    __syncthreads();
    total = *broadcast;
    __syncthreads();  // the scratch and the slot are reused by the next collective
    return total;
  }
};

}  // namespace tg::cuda
