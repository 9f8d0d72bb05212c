// src/tensor/caching_allocator.h — keeps freed blocks for reuse, so that a training loop in steady
// state (the same shapes every step) never asks the system for memory again.
//
// Sizes are rounded up to one of four classes per power of two (at most 25% slack), each class
// keeps a free list. A backend supplies the system allocation functions (malloc, cudaMalloc, ...).
#pragma once

#include <cstddef>
#include <mutex>
#include <vector>

#include "tapegrad/backend.h"

namespace tg {

class CachingAllocator {
 public:
  using SystemAllocate = void* (*)(size_t bytes);
  using SystemFree = void (*)(void* pointer);

  CachingAllocator(SystemAllocate system_allocate, SystemFree system_free,
                   size_t max_cached_bytes);
  ~CachingAllocator();

  void* allocate(size_t bytes);
  void deallocate(void* pointer, size_t bytes);
  MemoryStats stats() const;
  void release_cached();  // returns every cached block to the system

  static size_t rounded_size(size_t bytes);

 private:
  static size_t size_class(size_t bytes);

  SystemAllocate system_allocate_;
  SystemFree system_free_;
  size_t max_cached_bytes_;
  mutable std::mutex mutex_;
  std::vector<std::vector<void*>> free_blocks_;  // by size class
  MemoryStats stats_;
};

}  // namespace tg
