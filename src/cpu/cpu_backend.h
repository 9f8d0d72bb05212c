// src/cpu/cpu_backend.h — the CPU implementation of the Backend interface: OpenBLAS for gemm,
// Highway vector kernels (simd.h) or the functor loops for everything else, big kernels split
// over threads (thread_pool.h).
#pragma once

#include "tapegrad/backend.h"
#include "tapegrad/error.h"
#include "../kernels/dispatch.h"
#include "../tensor/caching_allocator.h"

namespace tg {

class CpuBackend final : public Backend {
 public:
  CpuBackend();
  const char* name() const override { return "cpu"; }
  void synchronize() override {}  // every CPU kernel has finished when it returns

  int64_t check_indices(const IndexCheck& check, const int64_t* index, int64_t n) override;
  void check_temperatures(const char* op, DType dtype, const void* temperatures,
                          int64_t n) override;

  void* allocate(size_t bytes) override { return allocator_.allocate(bytes); }
  void deallocate(void* pointer, size_t bytes) override { allocator_.deallocate(pointer, bytes); }
  MemoryStats memory_stats() const override { return allocator_.stats(); }
  void release_cached_memory() override { allocator_.release_cached(); }
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

  // --- sliding windows: src/cpu/cpu_window.cpp ---
  void im2col(DType dtype, const void* x, void* columns, const Window2d& window) override;
  void col2im(DType dtype, const void* columns, void* x, const Window2d& window) override;
  void max_pool2d_index(DType dtype, const void* x, int64_t* index,
                        const Window2d& window) override;

  // --- batch norm: src/cpu/cpu_norm.cpp ---
  void batch_norm(DType dtype, const void* x, const void* weight, const void* bias, void* y,
                  void* mean, void* var, void* invstd, const BatchNormLayout& layout) override;
  void batch_norm_backward(DType dtype, const void* grad_y, const void* x, const void* weight,
                           const void* mean, const void* invstd, void* grad_x, void* grad_weight,
                           void* grad_bias, const BatchNormLayout& layout) override;

  // --- fused primitives (functional.h): src/cpu/cpu_fused.cpp ---
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

 private:
  CachingAllocator allocator_;
};

// The dtype dispatch both backends share (src/kernels/dispatch.h).
using kernels::dispatch_any;
using kernels::dispatch_floating;
using kernels::dispatch_reduce;

}  // namespace tg
