// tests/stand_in_backend.h — a stand-in second device: a backend that keeps its memory on the
// host and delegates every kernel to the CPU backend, registered for Device::cuda_device(0).
// It lets CPU-only tests exercise moves between devices and the errors for mixing them
// (test_devices.cpp), and lets tests/test_cuda.cpp check its own test code without a GPU
// (--harness-self-test). Update it whenever include/tapegrad/backend.h changes.
#pragma once

#include <cstring>

#include "tapegrad/tapegrad.h"

namespace tgtest {

using namespace tg;

// Delegates every kernel to the CPU backend; counts host transfers.
class StandInBackend final : public Backend {
 public:
  Backend& cpu = backend_for(Device::cpu_device());
  int host_copies = 0;
  const char* name() const override { return "stand-in"; }
  void synchronize() override { ++synchronizations; }
  int synchronizations = 0;
  int64_t check_indices(const IndexCheck& c, const int64_t* index, int64_t n) override {
    return cpu.check_indices(c, index, n);
  }
  void check_temperatures(const char* op, DType t, const void* x, int64_t n) override {
    cpu.check_temperatures(op, t, x, n);
  }
  void* allocate(size_t bytes) override { return cpu.allocate(bytes); }
  void deallocate(void* p, size_t bytes) override { cpu.deallocate(p, bytes); }
  MemoryStats memory_stats() const override { return cpu.memory_stats(); }
  void release_cached_memory() override { cpu.release_cached_memory(); }
  void copy_to_host(void* d, const void* s, size_t n) override { ++host_copies; std::memcpy(d, s, n); }
  void copy_from_host(void* d, const void* s, size_t n) override { ++host_copies; std::memcpy(d, s, n); }
  void fill(DType t, void* o, int64_t n, double v) override { cpu.fill(t, o, n, v); }
  void convert(DType f, const void* i, DType t, void* o, int64_t n) override { cpu.convert(f, i, t, o, n); }
  void copy_strided(DType t, const Shape& s, const void* i, const int64_t* is, void* o,
                    const int64_t* os) override { cpu.copy_strided(t, s, i, is, o, os); }
  void unary(UnaryOp op, DType t, const void* x, void* y, int64_t n, double a, double b) override {
    cpu.unary(op, t, x, y, n, a, b);
  }
  void binary(BinaryOp op, DType t, const void* a, const void* b, void* o,
              const BroadcastLayout& l) override { cpu.binary(op, t, a, b, o, l); }
  void where(DType t, const void* c, const void* a, const void* b, void* o,
             const BroadcastLayout& l) override { cpu.where(t, c, a, b, o, l); }
  void fill_random(RandomDistribution d, DType t, void* o, int64_t n, double a, double b,
                   uint64_t seed, uint64_t stream, uint64_t offset) override {
    cpu.fill_random(d, t, o, n, a, b, seed, stream, offset);
  }
  void reduce(ReduceOp op, DType t, const void* x, void* o, int64_t outer, int64_t n,
              int64_t inner) override { cpu.reduce(op, t, x, o, outer, n, inner); }
  void argmax(DType t, const void* x, int64_t* o, int64_t outer, int64_t n, int64_t inner) override {
    cpu.argmax(t, x, o, outer, n, inner);
  }
  // --- optimizers ---
  void adam_step(DType t, void* p, const void* g, void* m, void* v, int64_t n,
                 const AdamStep& s) override { cpu.adam_step(t, p, g, m, v, n, s); }
  void sgd_step(DType t, void* p, const void* g, void* b, int64_t n, const SgdStep& s) override {
    cpu.sgd_step(t, p, g, b, n, s);
  }
  void gemm(DType t, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const void* a,
            const void* b, double beta, void* c, int64_t batch, int64_t sa, int64_t sb,
            int64_t sc) override { cpu.gemm(t, ta, tb, m, n, k, alpha, a, b, beta, c, batch, sa, sb, sc); }
  void gather(DType t, const void* x, const int64_t* i, void* o, int64_t outer, int64_t n, int64_t k,
              int64_t inner, bool shared) override { cpu.gather(t, x, i, o, outer, n, k, inner, shared); }
  void scatter_add(DType t, const void* s, const int64_t* i, void* o, int64_t outer, int64_t n,
                   int64_t k, int64_t inner, bool shared) override {
    cpu.scatter_add(t, s, i, o, outer, n, k, inner, shared);
  }
  void one_hot(DType t, const int64_t* i, void* o, int64_t rows, int64_t classes) override {
    cpu.one_hot(t, i, o, rows, classes);
  }
  void im2col(DType t, const void* x, void* c, const Window2d& w) override { cpu.im2col(t, x, c, w); }
  void col2im(DType t, const void* c, void* x, const Window2d& w) override { cpu.col2im(t, c, x, w); }
  void max_pool2d_index(DType t, const void* x, int64_t* i, const Window2d& w) override {
    cpu.max_pool2d_index(t, x, i, w);
  }
  void batch_norm(DType t, const void* x, const void* w, const void* b, void* y, void* mean,
                  void* var, void* invstd, const BatchNormLayout& l) override {
    cpu.batch_norm(t, x, w, b, y, mean, var, invstd, l);
  }
  void batch_norm_backward(DType t, const void* g, const void* x, const void* w, const void* mean,
                           const void* invstd, void* gx, void* gw, void* gb,
                           const BatchNormLayout& l) override {
    cpu.batch_norm_backward(t, g, x, w, mean, invstd, gx, gw, gb, l);
  }
  // --- fused primitives (functional.h) ---
  void pointwise(Pointwise k, DType t, const PointwiseInputs& in, void* o, int64_t n, double p,
                 bool sum, double scale) override { cpu.pointwise(k, t, in, o, n, p, sum, scale); }
  void pointwise_backward(Pointwise k, DType t, int input, const void* g, bool scalar, double scale,
                          const PointwiseInputs& in, void* gi, int64_t n, double p) override {
    cpu.pointwise_backward(k, t, input, g, scalar, scale, in, gi, n, p);
  }
  void softmax(SoftmaxKind k, DType t, const void* x, void* y, const SoftmaxLayout& l) override {
    cpu.softmax(k, t, x, y, l);
  }
  void softmax_backward(SoftmaxKind k, DType t, const void* g, const void* y, void* gx,
                        const SoftmaxLayout& l) override { cpu.softmax_backward(k, t, g, y, gx, l); }
  void kl_logits(DType t, const void* p, const void* q, void* kl, void* st,
                 const SoftmaxLayout& l) override { cpu.kl_logits(t, p, q, kl, st, l); }
  void kl_logits_backward(DType t, const void* g, const void* p, const void* q, const void* kl,
                          const void* st, void* gp, void* gq, const SoftmaxLayout& l) override {
    cpu.kl_logits_backward(t, g, p, q, kl, st, gp, gq, l);
  }
  void cross_entropy(DType t, const void* x, const int64_t* labels, const void* target, double eps,
                     void* loss, void* st, const SoftmaxLayout& l) override {
    cpu.cross_entropy(t, x, labels, target, eps, loss, st, l);
  }
  void cross_entropy_backward(DType t, const void* g, const void* x, const int64_t* labels,
                              const void* target, double eps, const void* st, void* gx, void* gt,
                              const SoftmaxLayout& l) override {
    cpu.cross_entropy_backward(t, g, x, labels, target, eps, st, gx, gt, l);
  }
};

// Registers the stand-in for cuda:0 for the test's duration (in a build with CUDA and a GPU it
// takes the real backend's place and gives it back).
struct StandInDevice {
  StandInBackend backend;
  Backend* previous = nullptr;
  StandInDevice() { previous = register_backend(Device::cuda_device(0), &backend); }
  // The tape may still hold tensors of this device (leaves); drop them while it exists.
  ~StandInDevice() {
    tape().clear();
    register_backend(Device::cuda_device(0), previous);
  }
};

}  // namespace tgtest
