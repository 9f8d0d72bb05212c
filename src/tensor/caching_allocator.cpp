// src/tensor/caching_allocator.cpp — size classes and free lists (see the header).
#include "caching_allocator.h"

#include <algorithm>

#include "tapegrad/error.h"

namespace tg {

namespace {
constexpr size_t kMinBlock = 64;
int floor_log2(size_t x) { return 63 - __builtin_clzll(x); }
}  // namespace

CachingAllocator::CachingAllocator(SystemAllocate system_allocate, SystemFree system_free,
                                   size_t max_cached_bytes)
    : system_allocate_(system_allocate),
      system_free_(system_free),
      max_cached_bytes_(max_cached_bytes),
      free_blocks_(4 * 64) {}

CachingAllocator::~CachingAllocator() { release_cached(); }

// Class 0 is 64 bytes. Above that, sizes in (2^p, 2^(p+1)] round up to a multiple of 2^(p-2),
// giving the four classes 1.25, 1.5, 1.75 and 2 times 2^p; every block is then a whole number
// of 64-byte lines (aligned_alloc requires the size to be a multiple of the alignment).
size_t CachingAllocator::rounded_size(size_t bytes) {
  if (bytes <= kMinBlock) return kMinBlock;
  size_t step = size_t(1) << (floor_log2(bytes - 1) - 2);
  size_t rounded = (bytes + step - 1) / step * step;
  return (rounded + kMinBlock - 1) / kMinBlock * kMinBlock;
}

size_t CachingAllocator::size_class(size_t bytes) {
  if (bytes <= kMinBlock) return 0;
  int p = floor_log2(bytes - 1);
  size_t step = size_t(1) << (p - 2);
  size_t quarter = (bytes + step - 1) / step;  // 5, 6, 7 or 8
  return 1 + size_t(p - 6) * 4 + (quarter - 5);
}

void* CachingAllocator::allocate(size_t bytes) {
  size_t cls = size_class(bytes), rounded = rounded_size(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* pointer = nullptr;
  std::vector<void*>& blocks = free_blocks_[cls];
  if (!blocks.empty()) {
    pointer = blocks.back();
    blocks.pop_back();
    stats_.bytes_cached -= rounded;
  } else {
    pointer = system_allocate_(rounded);
    if (!pointer) {
      // Give the cache back and try once more before giving up.
      for (auto& list : free_blocks_) {
        for (void* p : list) system_free_(p);
        list.clear();
      }
      stats_.bytes_cached = 0;
      pointer = system_allocate_(rounded);
    }
    check(pointer != nullptr, "allocate", "out of memory allocating ", rounded, " bytes (",
          stats_.bytes_in_use, " bytes in use)");
    ++stats_.system_allocations;
  }
  stats_.bytes_in_use += rounded;
  stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
  return pointer;
}

void CachingAllocator::deallocate(void* pointer, size_t bytes) {
  if (!pointer) return;
  size_t cls = size_class(bytes), rounded = rounded_size(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.bytes_in_use -= rounded;
  if (stats_.bytes_cached + rounded > max_cached_bytes_) {
    system_free_(pointer);
    return;
  }
  free_blocks_[cls].push_back(pointer);
  stats_.bytes_cached += rounded;
}

MemoryStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& list : free_blocks_) {
    for (void* p : list) system_free_(p);
    list.clear();
  }
  stats_.bytes_cached = 0;
}

}  // namespace tg
