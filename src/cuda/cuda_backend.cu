// src/cuda/cuda_backend.cu — the CUDA backend's device, stream, memory and copies; the
// device-side checks and their error flag; gemm through cuBLAS; and the factory the registry
// calls (src/cuda/cuda_devices.h).
#include <climits>
#include <cstdio>
#include <sstream>

#include "../kernels/row_math.h"
#include "cuda_common.cuh"
#include "cuda_devices.h"

namespace tg::cuda {

// ---------------------------------------------------------------- errors

void check_cuda(cudaError_t status, const char* op, const char* what, int device) {
  if (status == cudaSuccess) return;
  fail(op, what, " failed on cuda:", device, ": ", cudaGetErrorString(status), " (",
       cudaGetErrorName(status), ")");
}

void check_launch(const char* op, int device) {
  cudaError_t status = cudaGetLastError();
  if (status == cudaSuccess) return;
  fail(op, "a CUDA kernel failed on cuda:", device, ": ", cudaGetErrorString(status), " (",
       cudaGetErrorName(status),
       "); errors of this kind leave the GPU's context unusable: restart the process");
}

namespace {

const char* cublas_status_name(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "an unknown cuBLAS status";
}

void check_cublas(cublasStatus_t status, const char* op, int device) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail(op, "cuBLAS failed on cuda:", device, ": ", cublas_status_name(status));
}

}  // namespace

// ---------------------------------------------------------------- devices

namespace {

struct DeviceCount {
  int count = 0;
  std::string reason;
};

// Asked once: the CUDA runtime's answer does not change during a process.
const DeviceCount& device_count_answer() {
  static const DeviceCount answer = [] {
    DeviceCount a;
    cudaError_t status = cudaGetDeviceCount(&a.count);
    if (status != cudaSuccess) {
      a.count = 0;
      a.reason = std::string("the CUDA runtime found no usable GPU (cudaGetDeviceCount: ") +
                 cudaGetErrorString(status) + ", " + cudaGetErrorName(status) + ")";
      if (status == cudaErrorInsufficientDriver || status == cudaErrorNoDevice)
        a.reason += "; is an NVIDIA GPU with its driver (libcuda.so) present?";
      cudaGetLastError();  // the failed query is not an error of any later call
    } else if (a.count == 0) {
      a.reason = "the CUDA runtime reports no GPU on this machine";
    }
    return a;
  }();
  return answer;
}

}  // namespace

int device_count() { return device_count_answer().count; }
std::string unavailable_reason() { return device_count_answer().reason; }

Backend* create_backend(int index) {
  // Never destroyed: tensors held in static or thread-local objects may outlive any static
  // backend, and the CUDA runtime tears itself down at exit.
  return new CudaBackend(index);
}

DeviceGuard::DeviceGuard(int index) {
  int current = -1;
  if (cudaGetDevice(&current) == cudaSuccess && current == index) return;
  previous_ = current;
  check_cuda(cudaSetDevice(index), "device", "cudaSetDevice", index);
}

DeviceGuard::~DeviceGuard() {
  if (previous_ >= 0) cudaSetDevice(previous_);
}

namespace {

void* device_allocate(size_t bytes) {
  void* pointer = nullptr;
  if (cudaMalloc(&pointer, bytes) != cudaSuccess) {
    cudaGetLastError();  // out of memory is not sticky: clear it, the allocator retries or throws
    return nullptr;
  }
  return pointer;
}

void device_free(void* pointer) { cudaFree(pointer); }

// The cache may hold up to this share of the GPU's memory.
size_t cache_limit(int index) {
  DeviceGuard guard(index);
  size_t free_bytes = 0, total_bytes = 0;
  check_cuda(cudaMemGetInfo(&free_bytes, &total_bytes), "device", "cudaMemGetInfo", index);
  return total_bytes / 4 * 3;
}

constexpr DeviceErrorRecord kCleanRecord = {0, ULLONG_MAX, -1, 0, 0, 0.0};

}  // namespace

CudaBackend::CudaBackend(int index)
    : index_(index),
      allocator_(device_allocate, device_free, cache_limit(index)) {
  DeviceGuard guard(index_);
  cudaDeviceProp properties;
  check_cuda(cudaGetDeviceProperties(&properties, index_), "device", "cudaGetDeviceProperties",
             index_);
  std::ostringstream text;
  text << properties.name << " (cuda:" << index_ << ", sm_" << properties.major
       << properties.minor << ", " << properties.multiProcessorCount << " SMs, "
       << properties.totalGlobalMem / 1000000000 << " GB)";
  description_ = text.str();
  check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "device",
             "cudaStreamCreate", index_);
  check_cublas(cublasCreate(&cublas_), "device", index_);
  check_cublas(cublasSetStream(cublas_, stream_), "device", index_);
  check_cuda(cudaMalloc(&record_, sizeof(DeviceErrorRecord)), "device", "cudaMalloc", index_);
  clear_error_record();
}

CudaBackend::~CudaBackend() {
  // Only reached if someone deletes a backend explicitly; create_backend's never are.
  DeviceGuard guard(index_);
  allocator_.release_cached();
  cudaFree(record_);
  cublasDestroy(cublas_);
  cudaStreamDestroy(stream_);
}

// ---------------------------------------------------------------- memory and copies

void* CudaBackend::allocate(size_t bytes) {
  DeviceGuard guard(index_);
  return allocator_.allocate(bytes);
}

void CudaBackend::deallocate(void* pointer, size_t bytes) {
  // Called by destructors: must not throw. The block goes back to the cache (no CUDA call) unless
  // the cache is full; then cudaFree, which waits for the device.
  int current = -1;
  cudaGetDevice(&current);
  if (current != index_) cudaSetDevice(index_);
  allocator_.deallocate(pointer, bytes);
  if (current >= 0 && current != index_) cudaSetDevice(current);
}

void CudaBackend::release_cached_memory() {
  DeviceGuard guard(index_);
  check_cuda(cudaStreamSynchronize(stream_), "release_cached_memory", "cudaStreamSynchronize",
             index_);
  allocator_.release_cached();
}

CudaBackend::Scratch::Scratch(CudaBackend& backend, size_t bytes)
    : backend_(backend), data_(backend.allocate(bytes)), bytes_(bytes) {}

CudaBackend::Scratch::~Scratch() { backend_.deallocate(data_, bytes_); }

void CudaBackend::copy_to_host(void* host_destination, const void* source, size_t bytes) {
  DeviceGuard guard(index_);
  if (bytes)
    check_cuda(cudaMemcpyAsync(host_destination, source, bytes, cudaMemcpyDeviceToHost, stream_),
               "copy to host", "cudaMemcpyAsync", index_);
  check_cuda(cudaStreamSynchronize(stream_), "copy to host", "a kernel queued before this copy",
             index_);
  report_device_errors();
}

void CudaBackend::copy_from_host(void* destination, const void* host_source, size_t bytes) {
  if (!bytes) return;
  DeviceGuard guard(index_);
  // From pageable memory the runtime stages the bytes before it returns, so the caller may reuse
  // host_source at once; the copy itself is ordered on the stream like a kernel.
  check_cuda(cudaMemcpyAsync(destination, host_source, bytes, cudaMemcpyHostToDevice, stream_),
             "copy from host", "cudaMemcpyAsync", index_);
}

void CudaBackend::synchronize() {
  DeviceGuard guard(index_);
  check_cuda(cudaStreamSynchronize(stream_), "synchronize", "a queued kernel", index_);
  report_device_errors();
}

// ---------------------------------------------------------------- device-side checks

namespace {

// Finds the values for which bad(v) holds. The first launch (in stream order) that finds one
// claims the record; its threads keep the smallest bad position; the last of its blocks to finish
// copies the value at that position into the record. Kernels on one stream run one after the
// other, so the blocks_done counter serves every launch in turn.
template <class T, class Bad>
__global__ void check_values_kernel(const T* values, int64_t n, Bad bad, unsigned long long launch,
                                    int check, DeviceErrorRecord* record) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    if (!bad(values[i])) continue;
    unsigned long long owner = atomicCAS(&record->launch, 0ull, launch);
    if (owner == 0ull || owner == launch)
      atomicMin(&record->position, static_cast<unsigned long long>(i));
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  __threadfence();  // this block's atomics are visible before it counts itself done
  if (atomicAdd(&record->blocks_done, 1u) != gridDim.x - 1) return;
  record->blocks_done = 0;
  if (atomicAdd(&record->launch, 0ull) != launch) return;  // read through L2, not a stale L1
  const unsigned long long position = atomicAdd(&record->position, 0ull);
  record->check = check;
  if constexpr (std::is_same<T, int64_t>::value) record->index_value = values[position];
  else record->real_value = static_cast<double>(values[position]);
}

struct IndexIsBad {
  int64_t limit, ignored;
  bool has_ignored;
  __device__ bool operator()(int64_t v) const {
    return !(v >= 0 && v < limit) && !(has_ignored && v == ignored);
  }
};

struct TemperatureIsBad {
  template <class T> __device__ bool operator()(T t) const {
    return !(t > T(0) && kernels::is_finite_value(t));
  }
};

}  // namespace

int CudaBackend::pending_check(const PendingCheck& check) {
  for (size_t i = 0; i < pending_.size(); ++i)
    if (pending_[i] == check) return static_cast<int>(i);
  // A loop that never reads a value back would grow this list without end: past a few hundred
  // different checks, synchronise and report now.
  if (pending_.size() >= 256) synchronize();
  pending_.push_back(check);
  return static_cast<int>(pending_.size() - 1);
}

template <class T, class Bad>
void CudaBackend::check_values(const char* op, const T* values, int64_t n,
                               const PendingCheck& check, Bad bad) {
  if (n == 0) return;
  const int id = pending_check(check);
  check_values_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(values, n, bad, ++launches_, id,
                                                               record_);
  check_launch(op, index_);
}

int64_t CudaBackend::check_indices(const IndexCheck& c, const int64_t* index, int64_t n) {
  DeviceGuard guard(index_);
  check_values(c.op, index, n, {c.op, c.what, c.limit, c.has_ignored, c.ignored},
               IndexIsBad{c.limit, c.ignored, c.has_ignored});
  return c.has_ignored ? -1 : 0;  // counting ignored labels would need a synchronisation
}

void CudaBackend::check_temperatures(const char* op, DType dtype, const void* temperatures,
                                     int64_t n) {
  DeviceGuard guard(index_);
  dispatch_floating(dtype, op, [&](auto zero) {
    using T = decltype(zero);
    check_values(op, static_cast<const T*>(temperatures), n, {op, nullptr, 0, false, 0},
                 TemperatureIsBad{});
  });
}

// On the stream, so that every later check is ordered after the reset.
void CudaBackend::clear_error_record() {
  check_cuda(cudaMemcpyAsync(record_, &kCleanRecord, sizeof kCleanRecord, cudaMemcpyHostToDevice,
                             stream_),
             "synchronize", "clearing the device's error flag", index_);
}

void CudaBackend::report_device_errors() {
  if (pending_.empty()) return;
  std::vector<PendingCheck> checks;
  checks.swap(pending_);
  DeviceErrorRecord record;
  check_cuda(cudaMemcpyAsync(&record, record_, sizeof record, cudaMemcpyDeviceToHost, stream_),
             "synchronize", "reading the device's error flag", index_);
  check_cuda(cudaStreamSynchronize(stream_), "synchronize", "reading the device's error flag",
             index_);
  if (record.launch == 0) return;
  clear_error_record();
  const PendingCheck& c = checks.at(static_cast<size_t>(record.check));
  std::ostringstream where;
  where << " (found on cuda:" << index_
        << " by a check that runs on the GPU; reported at the next synchronisation)";
  if (!c.what)
    fail(c.op, "the temperature must be a finite number > 0, got ", record.real_value,
         " at position ", record.position, where.str());
  if (c.has_ignored)
    fail(c.op, c.what, " ", record.index_value, " at position ", record.position,
         " is out of range [0, ", c.limit, ") and is not ignore_index (", c.ignored, ")",
         where.str());
  fail(c.op, c.what, " ", record.index_value, " at position ", record.position,
       " is out of range [0, ", c.limit, ")", where.str());
}

// ---------------------------------------------------------------- gemm (cuBLAS)

namespace {

template <class T>
__global__ void scale_kernel(T* c, int64_t n, T beta) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) c[i] = beta == T(0) ? T(0) : beta * c[i];
}

}  // namespace

// Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLAS gets B first, and the
// transposes stay flags.
void CudaBackend::gemm(DType dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n,
                       int64_t k, double alpha, const void* a, const void* b, double beta, void* c,
                       int64_t batch, int64_t stride_a, int64_t stride_b, int64_t stride_c) {
  constexpr int64_t kMax = INT_MAX;
  check(m <= kMax && n <= kMax && k <= kMax && batch <= kMax, "gemm", "sizes m ", m, ", n ", n,
        ", k ", k, ", batch ", batch, " exceed cuBLAS's limit of ", kMax);
  if (m == 0 || n == 0 || batch == 0) return;
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "gemm", [&](auto zero) {
    using T = decltype(zero);
    T* ct = static_cast<T*>(c);
    if (k == 0) {  // C = beta·C (cuBLAS is not asked to handle an empty inner dimension)
      for (int64_t i = 0; i < batch; ++i)
        scale_kernel<<<blocks_for(m * n), kThreads, 0, stream_>>>(ct + i * stride_c, m * n,
                                                                  static_cast<T>(beta));
      check_launch("gemm", index_);
      return;
    }
    const cublasOperation_t op_a = transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int lda = static_cast<int>(transpose_a ? m : k), ldb = static_cast<int>(transpose_b ? k : n);
    const int ldc = static_cast<int>(n);
    const T alpha_t = static_cast<T>(alpha), beta_t = static_cast<T>(beta);
    const T* at = static_cast<const T*>(a);
    const T* bt = static_cast<const T*>(b);
    const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
    cublasStatus_t status;
    if constexpr (std::is_same<T, float>::value) {
      status = batch == 1
                   ? cublasSgemm(cublas_, op_b, op_a, ni, mi, ki, &alpha_t, bt, ldb, at, lda,
                                 &beta_t, ct, ldc)
                   : cublasSgemmStridedBatched(cublas_, op_b, op_a, ni, mi, ki, &alpha_t, bt, ldb,
                                               stride_b, at, lda, stride_a, &beta_t, ct, ldc,
                                               stride_c, static_cast<int>(batch));
    } else {
      status = batch == 1
                   ? cublasDgemm(cublas_, op_b, op_a, ni, mi, ki, &alpha_t, bt, ldb, at, lda,
                                 &beta_t, ct, ldc)
                   : cublasDgemmStridedBatched(cublas_, op_b, op_a, ni, mi, ki, &alpha_t, bt, ldb,
                                               stride_b, at, lda, stride_a, &beta_t, ct, ldc,
                                               stride_c, static_cast<int>(batch));
    }
    check_cublas(status, "gemm", index_);
  });
}

}  // namespace tg::cuda
