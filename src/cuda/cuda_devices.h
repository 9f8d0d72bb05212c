// src/cuda/cuda_devices.h — what the backend registry asks of the CUDA part of the library
// (src/tensor/backend_registry.cpp includes this only in builds with CUDA). No CUDA header here.
#pragma once

#include <string>

#include "tapegrad/backend.h"

namespace tg::cuda {

// GPUs the CUDA runtime reports; 0 when it reports none or fails (no driver, no device).
int device_count();
// Why device_count() is 0, in words, with CUDA's own message.
std::string unavailable_reason();
// Starts the backend of GPU `index` (its stream, cuBLAS handle and allocator); throws a tg::Error
// naming the device when that fails. The backend lives until the process ends.
Backend* create_backend(int index);

}  // namespace tg::cuda
