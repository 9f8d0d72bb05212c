// tests/cuda_philox_words.cu — Philox blocks computed by a GPU kernel from src/kernels/philox.h,
// for tests/test_cuda.cpp to compare word by word with the same function on the CPU.
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../src/kernels/philox.h"

namespace {

__global__ void words_kernel(uint64_t seed, uint64_t stream, uint64_t first, int64_t count,
                             uint32_t* out) {
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < count;
       b += int64_t(gridDim.x) * blockDim.x) {
    const tg::kernels::PhiloxBlock block = tg::kernels::philox_block(seed, stream, first + b);
    for (int w = 0; w < 4; ++w) out[4 * b + w] = block.x[w];
  }
}

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("philox_words_on_gpu: ") + what + ": " +
                             cudaGetErrorString(status));
}

}  // namespace

std::vector<uint32_t> philox_words_on_gpu(uint64_t seed, uint64_t stream, uint64_t first,
                                          int64_t count) {
  std::vector<uint32_t> words(4 * count);
  uint32_t* device = nullptr;
  check(cudaMalloc(&device, words.size() * sizeof(uint32_t)), "cudaMalloc");
  words_kernel<<<64, 256>>>(seed, stream, first, count, device);
  check(cudaGetLastError(), "launch");
  check(cudaMemcpy(words.data(), device, words.size() * sizeof(uint32_t), cudaMemcpyDeviceToHost),
        "cudaMemcpy");
  check(cudaFree(device), "cudaFree");
  return words;
}
