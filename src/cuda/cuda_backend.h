// src/cuda/cuda_backend.h — the CUDA implementation of the Backend interface: cuBLAS for gemm,
// kernels around the shared math of src/kernels/ (through src/cuda/kernel_bodies.h) for the rest,
// and the device contract of backend.h: one stream, host reads as the only synchronisation,
// device-side checks reported at the next one.
//
// The implementation is split by kind of work:
//   cuda_backend.cu      device, stream, memory, copies, checks and their error flag, gemm
//   cuda_elementwise.cu  fill/convert/copy_strided, unary/binary/where, reductions, argmax,
//                        Philox, optimizer steps, gather/scatter_add/one_hot
//   cuda_fused.cu        the fused primitives of functional.h
//   cuda_window.cu       im2col, col2im and max_pool2d_index (conv2d and the pools)
//   cuda_norm.cu         batch norm's training forward and its backward
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "../tensor/caching_allocator.h"
#include "tapegrad/backend.h"
#include "tapegrad/error.h"

namespace tg::cuda {

// Where a device-side check records the first bad value it finds (in device memory). Only the
// first failing launch since the last report writes it (see check_values in cuda_backend.cu).
struct DeviceErrorRecord {
  unsigned long long launch;    // 0: nothing to report; else the failing launch's number
  unsigned long long position;  // the smallest bad position that launch saw
  int check;                    // which of the host's pending checks it was
  unsigned int blocks_done;     // the last-block counter of a check launch (0 between launches)
  long long index_value;        // the bad value, for index checks
  double real_value;            // the bad value, for temperature checks
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int index);
  ~CudaBackend() override;
  const char* name() const override { return "cuda"; }
  std::string description() const override { return description_; }
  void synchronize() override;
  int64_t check_indices(const IndexCheck& check, const int64_t* index, int64_t n) override;
  void check_temperatures(const char* op, DType dtype, const void* temperatures,
                          int64_t n) override;

  void* allocate(size_t bytes) override;
  void deallocate(void* pointer, size_t bytes) override;
  MemoryStats memory_stats() const override { return allocator_.stats(); }
  void release_cached_memory() override;
  void copy_to_host(void* host_destination, const void* source, size_t bytes) override;
  void copy_from_host(void* destination, const void* host_source, size_t bytes) override;

  void fill(DType dtype, void* out, int64_t n, double value) override;
  void convert(DType from, const void* in, DType to, void* out, int64_t n) override;
  void copy_strided(DType dtype, const Shape& shape, const void* in, const int64_t* in_strides,
                    void* out, const int64_t* out_strides) override;

  void unary(UnaryOp op, DType dtype, const void* x, void* y, int64_t n, double a,
             double b) override;
  void binary(BinaryOp op, DType dtype, const void* a, const void* b, void* out,
              const BroadcastLayout& layout) override;
  void where(DType dtype, const void* condition, const void* a, const void* b, void* out,
             const BroadcastLayout& layout) override;
  void fill_random(RandomDistribution distribution, DType dtype, void* out, int64_t n, double a,
                   double b, uint64_t seed, uint64_t stream, uint64_t offset) override;
  void reduce(ReduceOp op, DType dtype, const void* x, void* out, int64_t outer, int64_t n,
              int64_t inner) override;
  void argmax(DType dtype, const void* x, int64_t* out, int64_t outer, int64_t n,
              int64_t inner) override;

  void adam_step(DType dtype, void* param, const void* grad, void* exp_avg, void* exp_avg_sq,
                 int64_t n, const AdamStep& step) override;
  void sgd_step(DType dtype, void* param, const void* grad, void* momentum_buffer, int64_t n,
                const SgdStep& step) override;

  void gemm(DType dtype, bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,
            double alpha, const void* a, const void* b, double beta, void* c, int64_t batch,
            int64_t stride_a, int64_t stride_b, int64_t stride_c) override;

  void gather(DType dtype, const void* x, const int64_t* index, void* out, int64_t outer,
              int64_t n, int64_t k, int64_t inner, bool shared_index) override;
  void scatter_add(DType dtype, const void* src, const int64_t* index, void* out, int64_t outer,
                   int64_t n, int64_t k, int64_t inner, bool shared_index) override;
  void one_hot(DType dtype, const int64_t* index, void* out, int64_t rows,
               int64_t classes) override;

  // src/cuda/cuda_window.cu
  void im2col(DType dtype, const void* x, void* columns, const Window2d& window) override;
  void col2im(DType dtype, const void* columns, void* x, const Window2d& window) override;
  void max_pool2d_index(DType dtype, const void* x, int64_t* index,
                        const Window2d& window) override;
  void batch_norm(DType dtype, const void* x, const void* weight, const void* bias, void* y,
                  void* mean, void* var, void* invstd, const BatchNormLayout& layout) override;
  void batch_norm_backward(DType dtype, const void* grad_y, const void* x, const void* weight,
                           const void* mean, const void* invstd, void* grad_x, void* grad_weight,
                           void* grad_bias, const BatchNormLayout& layout) override;

  void pointwise(Pointwise kind, DType dtype, const PointwiseInputs& inputs, void* out, int64_t n,
                 double param, bool sum, double scale) override;
  void pointwise_backward(Pointwise kind, DType dtype, int input, const void* grad,
                          bool grad_is_scalar, double scale, const PointwiseInputs& inputs,
                          void* grad_input, int64_t n, double param) override;
  void softmax(SoftmaxKind kind, DType dtype, const void* x, void* y,
               const SoftmaxLayout& layout) override;
  void softmax_backward(SoftmaxKind kind, DType dtype, const void* grad_y, const void* y,
                        void* grad_x, const SoftmaxLayout& layout) override;
  void kl_logits(DType dtype, const void* p_logits, const void* q_logits, void* kl, void* stats,
                 const SoftmaxLayout& layout) override;
  void kl_logits_backward(DType dtype, const void* grad_kl, const void* p_logits,
                          const void* q_logits, const void* kl, const void* stats, void* grad_p,
                          void* grad_q, const SoftmaxLayout& layout) override;
  void cross_entropy(DType dtype, const void* logits, const int64_t* labels, const void* target,
                     double smoothing, void* loss, void* stats,
                     const SoftmaxLayout& layout) override;
  void cross_entropy_backward(DType dtype, const void* grad_loss, const void* logits,
                              const int64_t* labels, const void* target, double smoothing,
                              const void* stats, void* grad_logits, void* grad_target,
                              const SoftmaxLayout& layout) override;

  int index() const { return index_; }
  cudaStream_t stream() const { return stream_; }

  // Device memory for one call's temporaries (CUB's scratch, partial sums), from the caching
  // allocator and given back when the call returns: later work on the stream is ordered after
  // every kernel that used it, so the block may be reused at once.
  class Scratch {
   public:
    Scratch(CudaBackend& backend, size_t bytes);
    ~Scratch();
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    void* data() const { return data_; }
    template <class T> T* as() const { return static_cast<T*>(data_); }

   private:
    CudaBackend& backend_;
    void* data_;
    size_t bytes_;
  };

 private:
  // A check the host is waiting to hear about; the error record names it by position.
  struct PendingCheck {
    const char* op;
    const char* what;  // null for a temperature check
    int64_t limit;
    bool has_ignored;
    int64_t ignored;
    bool operator==(const PendingCheck& o) const {
      return op == o.op && what == o.what && limit == o.limit && has_ignored == o.has_ignored &&
             ignored == o.ignored;
    }
  };
  int pending_check(const PendingCheck& check);
  void report_device_errors();  // after the stream is synchronised
  void clear_error_record();
  template <class T, class Bad>
  void check_values(const char* op, const T* values, int64_t n, const PendingCheck& check,
                    Bad bad);

  int index_;
  std::string description_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  CachingAllocator allocator_;
  DeviceErrorRecord* record_ = nullptr;  // device memory
  std::vector<PendingCheck> pending_;
  unsigned long long launches_ = 0;      // numbers check launches (0 means "none")
};

// Makes `index` the current device for the duration of a call (and restores the caller's).
class DeviceGuard {
 public:
  explicit DeviceGuard(int index);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// Throws a tg::Error naming `op` when `status` is an error: "<what> failed on cuda:N: <CUDA's
// message>".
void check_cuda(cudaError_t status, const char* op, const char* what, int device);
// After a launch: throws a tg::Error naming `op` if the launch failed (or an earlier kernel did:
// such errors stick to the context, which is then unusable).
void check_launch(const char* op, int device);

}  // namespace tg::cuda
