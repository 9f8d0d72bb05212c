// tests/coverage_backend.h — which parts of backend.h a test run reached. CoverageBackend forwards
// every call to another backend and records what was asked of it: each kernel, each kind of the
// kernels that take one (UnaryOp, BinaryOp, ReduceOp, RandomDistribution, Pointwise, SoftmaxKind)
// in f32 and in f64, and the variants of a call that a GPU backend serves by different code (a
// strided axis, a shared index, a tensor temperature, a batched gemm, ...). expected_coverage()
// lists all of that from backend.h's enums; tests/test_cuda.cpp wraps cuda:0 in a CoverageBackend
// and, after a full run, fails naming every entry no test reached — so the GPU tests cover the
// whole interface, and keep covering it as the interface grows.
//
// The kind names come from switches without a default: a kind added to backend.h and not here is
// a -Wswitch warning (an error in the -Werror build of .ci/run). Enumerators count up from 0.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "tapegrad/tapegrad.h"

namespace tgtest {

using namespace tg;

inline const char* kind_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::neg: return "neg";
    case UnaryOp::exp: return "exp";
    case UnaryOp::log: return "log";
    case UnaryOp::log1p: return "log1p";
    case UnaryOp::sqrt: return "sqrt";
    case UnaryOp::abs: return "abs";
    case UnaryOp::sign: return "sign";
    case UnaryOp::tanh: return "tanh";
    case UnaryOp::sigmoid: return "sigmoid";
    case UnaryOp::relu: return "relu";
    case UnaryOp::square: return "square";
    case UnaryOp::reciprocal: return "reciprocal";
    case UnaryOp::add_scalar: return "add_scalar";
    case UnaryOp::mul_scalar: return "mul_scalar";
    case UnaryOp::rsub_scalar: return "rsub_scalar";
    case UnaryOp::pow_scalar: return "pow_scalar";
    case UnaryOp::clamp: return "clamp";
    case UnaryOp::in_range: return "in_range";
    case UnaryOp::isfinite: return "isfinite";
    case UnaryOp::isnan: return "isnan";
    case UnaryOp::gelu: return "gelu";
    case UnaryOp::gelu_tanh: return "gelu_tanh";
    case UnaryOp::silu: return "silu";
    case UnaryOp::leaky_relu: return "leaky_relu";
    case UnaryOp::softplus: return "softplus";
    case UnaryOp::elu: return "elu";
    case UnaryOp::sin: return "sin";
    case UnaryOp::cos: return "cos";
    case UnaryOp::leaky_relu_slope: return "leaky_relu_slope";
    case UnaryOp::softplus_slope: return "softplus_slope";
    case UnaryOp::elu_slope: return "elu_slope";
  }
  return nullptr;
}

inline const char* kind_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: return "add";
    case BinaryOp::sub: return "sub";
    case BinaryOp::mul: return "mul";
    case BinaryOp::div: return "div";
    case BinaryOp::pow: return "pow";
    case BinaryOp::minimum: return "minimum";
    case BinaryOp::maximum: return "maximum";
    case BinaryOp::equal: return "equal";
    case BinaryOp::less: return "less";
    case BinaryOp::less_equal: return "less_equal";
    case BinaryOp::greater: return "greater";
    case BinaryOp::greater_equal: return "greater_equal";
    case BinaryOp::relu_backward: return "relu_backward";
    case BinaryOp::tanh_backward: return "tanh_backward";
    case BinaryOp::sigmoid_backward: return "sigmoid_backward";
    case BinaryOp::abs_backward: return "abs_backward";
    case BinaryOp::gelu_backward: return "gelu_backward";
    case BinaryOp::gelu_tanh_backward: return "gelu_tanh_backward";
    case BinaryOp::silu_backward: return "silu_backward";
  }
  return nullptr;
}

inline const char* kind_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::mean: return "mean";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
    case ReduceOp::logsumexp: return "logsumexp";
  }
  return nullptr;
}

inline const char* kind_name(RandomDistribution d) {
  switch (d) {
    case RandomDistribution::uniform: return "uniform";
    case RandomDistribution::normal: return "normal";
  }
  return nullptr;
}

inline const char* kind_name(Backend::Pointwise kind) {
  using P = Backend::Pointwise;
  switch (kind) {
    case P::bce_with_logits: return "bce_with_logits";
    case P::kl_div: return "kl_div";
    case P::kl_div_log_target: return "kl_div_log_target";
    case P::gaussian_kl_standard: return "gaussian_kl_standard";
    case P::gaussian_kl: return "gaussian_kl";
    case P::squared_error: return "squared_error";
    case P::entropy: return "entropy";
    case P::js_divergence: return "js_divergence";
    case P::total_variation: return "total_variation";
    case P::ppo_clip: return "ppo_clip";
    case P::reparameterize: return "reparameterize";
  }
  return nullptr;
}

// How many inputs a Pointwise kind takes (backend.h lists them).
inline int pointwise_arity(Backend::Pointwise kind) {
  using P = Backend::Pointwise;
  switch (kind) {
    case P::entropy: return 1;
    case P::gaussian_kl: return 4;
    case P::ppo_clip:
    case P::reparameterize: return 3;
    case P::bce_with_logits:
    case P::kl_div:
    case P::kl_div_log_target:
    case P::gaussian_kl_standard:
    case P::squared_error:
    case P::js_divergence:
    case P::total_variation: return 2;
  }
  return 0;
}

inline const char* kind_name(Backend::SoftmaxKind kind) {
  switch (kind) {
    case Backend::SoftmaxKind::softmax: return "softmax";
    case Backend::SoftmaxKind::log_softmax: return "log_softmax";
  }
  return nullptr;
}

// Every enumerator of E, in order.
template <class E>
std::vector<E> every() {
  std::vector<E> all;
  for (int v = 0; kind_name(static_cast<E>(v)); ++v) all.push_back(static_cast<E>(v));
  return all;
}

// The entries a full run must reach, in the words CoverageBackend records them in.
inline std::set<std::string> expected_coverage() {
  std::set<std::string> all = {
      "synchronize", "check_indices", "check_indices with ignore_index", "allocate", "deallocate",
      "memory_stats", "release_cached_memory", "copy_to_host", "copy_from_host",
      "convert f32 -> f64", "convert f64 -> f32", "convert i64 -> f32", "convert i64 -> f64",
      "convert f32 -> i64", "convert f64 -> i64", "convert, same dtype",
      "reduce over a strided axis", "reduce, a row of >= 10^5", "argmax over a strided axis",
      "Adam", "AdamW", "SGD", "SGD with momentum", "SGD with Nesterov momentum",
      "gemm Aᵀ", "gemm Bᵀ", "gemm AᵀBᵀ", "gemm batched", "gemm, one matrix for every batch",
      "gemm k = 0",
      "gather, per-element index", "gather, shared index", "scatter_add, per-element index",
      "scatter_add, shared index", "scatter_add, one index per row (k = 1)",
      "softmax over a strided axis", "softmax, a row of >= 10^5",
      "softmax, one temperature per distribution", "softmax, one temperature tensor for all",
      "kl_logits against the uniform distribution", "kl_logits over a strided axis",
      "kl_logits, a temperature tensor", "kl_logits_backward, grad_q", "kl_logits_backward, grad_p",
      "cross_entropy, labels", "cross_entropy, probabilities", "cross_entropy over a strided axis",
      "cross_entropy_backward, labels", "cross_entropy_backward, probabilities",
      "cross_entropy_backward, grad_target", "pointwise_backward, gradient of a sum",
      "pointwise_backward, gradient per element",
      "im2col, strided", "im2col, dilated", "im2col, padded",
      "col2im, overlapping windows", "col2im, padded", "max_pool2d_index, padded",
      "batch_norm, weight and bias", "batch_norm, no weight or bias",
      "batch_norm_backward, grad_x", "batch_norm_backward, grad_weight and grad_bias",
  };
  for (const char* dtype : {"f32", "f64"}) {
    const std::string t = std::string(" ") + dtype;
    for (const char* kernel : {"fill", "copy_strided", "where", "check_temperatures", "reduce",
                               "argmax", "adam_step", "sgd_step", "gemm", "gather", "scatter_add",
                               "one_hot", "kl_logits", "kl_logits_backward", "cross_entropy",
                               "cross_entropy_backward", "im2col", "col2im",
                               "max_pool2d_index", "batch_norm", "batch_norm_backward"})
      all.insert(kernel + t);
    for (UnaryOp op : every<UnaryOp>()) all.insert(std::string("unary ") + kind_name(op) + t);
    for (BinaryOp op : every<BinaryOp>()) all.insert(std::string("binary ") + kind_name(op) + t);
    for (ReduceOp op : every<ReduceOp>()) all.insert(std::string("reduce ") + kind_name(op) + t);
    for (RandomDistribution d : every<RandomDistribution>())
      all.insert(std::string("fill_random ") + kind_name(d) + t);
    for (Backend::SoftmaxKind k : every<Backend::SoftmaxKind>()) {
      all.insert(std::string("softmax ") + kind_name(k) + t);
      all.insert(std::string("softmax_backward ") + kind_name(k) + t);
    }
    for (Backend::Pointwise k : every<Backend::Pointwise>()) {
      all.insert(std::string("pointwise ") + kind_name(k) + t);
      for (int input = 0; input < pointwise_arity(k); ++input)
        all.insert(std::string("pointwise_backward ") + kind_name(k) + " input " +
                   std::to_string(input) + t);
    }
  }
  // The reductions defined on i64 (backend.h's ReduceOp).
  for (const char* entry :
       {"reduce i64", "reduce sum i64", "reduce max i64", "reduce min i64", "argmax i64"})
    all.insert(entry);
  // Sums of every kind but reparameterize (a sample, never reduced by the ops).
  for (Backend::Pointwise k : every<Backend::Pointwise>())
    if (k != Backend::Pointwise::reparameterize)
      all.insert(std::string("pointwise ") + kind_name(k) + ", summed");
  return all;
}

// Forwards every call to `inner` and records it (see the top of this file).
class CoverageBackend final : public Backend {
 public:
  explicit CoverageBackend(Backend& inner) : inner_(inner) {}
  const std::set<std::string>& seen() const { return seen_; }
  // What expected_coverage() lists and no call reached.
  std::vector<std::string> missing() const {
    std::vector<std::string> out;
    for (const std::string& entry : expected_coverage())
      if (!seen_.count(entry)) out.push_back(entry);
    return out;
  }

  const char* name() const override { return inner_.name(); }
  std::string description() const override { return inner_.description(); }
  void synchronize() override {
    note("synchronize");
    inner_.synchronize();
  }
  int64_t check_indices(const IndexCheck& c, const int64_t* index, int64_t n) override {
    note(c.has_ignored ? "check_indices with ignore_index" : "check_indices");
    return inner_.check_indices(c, index, n);
  }
  void check_temperatures(const char* op, DType dtype, const void* t, int64_t n) override {
    note("check_temperatures", dtype);
    inner_.check_temperatures(op, dtype, t, n);
  }
  void* allocate(size_t bytes) override {
    note("allocate");
    return inner_.allocate(bytes);
  }
  void deallocate(void* p, size_t bytes) override {  // from destructors: never throws
    try {
      note("deallocate");
    } catch (...) {
    }
    inner_.deallocate(p, bytes);
  }
  MemoryStats memory_stats() const override {
    seen_.insert("memory_stats");
    return inner_.memory_stats();
  }
  void release_cached_memory() override {
    note("release_cached_memory");
    inner_.release_cached_memory();
  }
  void copy_to_host(void* d, const void* s, size_t n) override {
    note("copy_to_host");
    inner_.copy_to_host(d, s, n);
  }
  void copy_from_host(void* d, const void* s, size_t n) override {
    note("copy_from_host");
    inner_.copy_from_host(d, s, n);
  }
  void fill(DType t, void* o, int64_t n, double v) override {
    note("fill", t);
    inner_.fill(t, o, n, v);
  }
  void convert(DType from, const void* in, DType to, void* out, int64_t n) override {
    note(from == to ? std::string("convert, same dtype")
                    : std::string("convert ") + dtype_name(from) + " -> " + dtype_name(to));
    inner_.convert(from, in, to, out, n);
  }
  void copy_strided(DType t, const Shape& s, const void* in, const int64_t* is, void* out,
                    const int64_t* os) override {
    note("copy_strided", t);
    inner_.copy_strided(t, s, in, is, out, os);
  }
  void unary(UnaryOp op, DType t, const void* x, void* y, int64_t n, double a, double b) override {
    note(std::string("unary ") + kind_name(op), t);
    inner_.unary(op, t, x, y, n, a, b);
  }
  void binary(BinaryOp op, DType t, const void* a, const void* b, void* o,
              const BroadcastLayout& l) override {
    note(std::string("binary ") + kind_name(op), t);
    inner_.binary(op, t, a, b, o, l);
  }
  void where(DType t, const void* c, const void* a, const void* b, void* o,
             const BroadcastLayout& l) override {
    note("where", t);
    inner_.where(t, c, a, b, o, l);
  }
  void fill_random(RandomDistribution d, DType t, void* o, int64_t n, double a, double b,
                   uint64_t seed, uint64_t stream, uint64_t offset) override {
    note(std::string("fill_random ") + kind_name(d), t);
    inner_.fill_random(d, t, o, n, a, b, seed, stream, offset);
  }
  void reduce(ReduceOp op, DType t, const void* x, void* o, int64_t outer, int64_t n,
              int64_t inner) override {
    note("reduce", t);
    note(std::string("reduce ") + kind_name(op), t);
    if (inner > 1) note("reduce over a strided axis");
    if (n >= 100000) note("reduce, a row of >= 10^5");
    inner_.reduce(op, t, x, o, outer, n, inner);
  }
  void argmax(DType t, const void* x, int64_t* o, int64_t outer, int64_t n, int64_t inner) override {
    note("argmax", t);
    if (inner > 1) note("argmax over a strided axis");
    inner_.argmax(t, x, o, outer, n, inner);
  }
  void adam_step(DType t, void* p, const void* g, void* m, void* v, int64_t n,
                 const AdamStep& s) override {
    note("adam_step", t);
    note(s.decoupled_weight_decay ? "AdamW" : "Adam");
    inner_.adam_step(t, p, g, m, v, n, s);
  }
  void sgd_step(DType t, void* p, const void* g, void* b, int64_t n, const SgdStep& s) override {
    note("sgd_step", t);
    note(s.momentum == 0 ? "SGD" : s.nesterov ? "SGD with Nesterov momentum" : "SGD with momentum");
    inner_.sgd_step(t, p, g, b, n, s);
  }
  void gemm(DType t, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const void* a,
            const void* b, double beta, void* c, int64_t batch, int64_t sa, int64_t sb,
            int64_t sc) override {
    note("gemm", t);
    if (ta || tb) note(ta && tb ? "gemm AᵀBᵀ" : ta ? "gemm Aᵀ" : "gemm Bᵀ");
    if (batch > 1) note("gemm batched");
    if (batch > 1 && (sa == 0 || sb == 0)) note("gemm, one matrix for every batch");
    if (k == 0) note("gemm k = 0");
    inner_.gemm(t, ta, tb, m, n, k, alpha, a, b, beta, c, batch, sa, sb, sc);
  }
  void gather(DType t, const void* x, const int64_t* i, void* o, int64_t outer, int64_t n,
              int64_t k, int64_t inner, bool shared) override {
    note("gather", t);
    note(shared ? "gather, shared index" : "gather, per-element index");
    inner_.gather(t, x, i, o, outer, n, k, inner, shared);
  }
  void scatter_add(DType t, const void* s, const int64_t* i, void* o, int64_t outer, int64_t n,
                   int64_t k, int64_t inner, bool shared) override {
    note("scatter_add", t);
    note(shared ? "scatter_add, shared index" : "scatter_add, per-element index");
    if (k == 1) note("scatter_add, one index per row (k = 1)");
    inner_.scatter_add(t, s, i, o, outer, n, k, inner, shared);
  }
  void one_hot(DType t, const int64_t* i, void* o, int64_t rows, int64_t classes) override {
    note("one_hot", t);
    inner_.one_hot(t, i, o, rows, classes);
  }
  void im2col(DType t, const void* x, void* c, const Window2d& w) override {
    note("im2col", t);
    if (w.stride_h * w.stride_w > 1) note("im2col, strided");
    if (w.dilation_h * w.dilation_w > 1) note("im2col, dilated");
    if (w.pad_h + w.pad_w > 0) note("im2col, padded");
    inner_.im2col(t, x, c, w);
  }
  void col2im(DType t, const void* c, void* x, const Window2d& w) override {
    note("col2im", t);
    if (w.kernel_h * w.kernel_w > w.stride_h * w.stride_w) note("col2im, overlapping windows");
    if (w.pad_h + w.pad_w > 0) note("col2im, padded");
    inner_.col2im(t, c, x, w);
  }
  void max_pool2d_index(DType t, const void* x, int64_t* i, const Window2d& w) override {
    note("max_pool2d_index", t);
    if (w.pad_h + w.pad_w > 0) note("max_pool2d_index, padded");
    inner_.max_pool2d_index(t, x, i, w);
  }
  void batch_norm(DType t, const void* x, const void* w, const void* b, void* y, void* mean,
                  void* var, void* invstd, const BatchNormLayout& l) override {
    note("batch_norm", t);
    note(w && b ? "batch_norm, weight and bias" : !w && !b ? "batch_norm, no weight or bias"
                                                        : "batch_norm, weight or bias");
    inner_.batch_norm(t, x, w, b, y, mean, var, invstd, l);
  }
  void batch_norm_backward(DType t, const void* g, const void* x, const void* w, const void* mean,
                           const void* invstd, void* gx, void* gw, void* gb,
                           const BatchNormLayout& l) override {
    note("batch_norm_backward", t);
    if (gx) note("batch_norm_backward, grad_x");
    if (gw && gb) note("batch_norm_backward, grad_weight and grad_bias");
    inner_.batch_norm_backward(t, g, x, w, mean, invstd, gx, gw, gb, l);
  }
  void pointwise(Pointwise k, DType t, const PointwiseInputs& in, void* o, int64_t n, double p,
                 bool sum, double scale) override {
    note(std::string("pointwise ") + kind_name(k), t);
    if (sum) note(std::string("pointwise ") + kind_name(k) + ", summed");
    inner_.pointwise(k, t, in, o, n, p, sum, scale);
  }
  void pointwise_backward(Pointwise k, DType t, int input, const void* g, bool scalar, double scale,
                          const PointwiseInputs& in, void* gi, int64_t n, double p) override {
    note(std::string("pointwise_backward ") + kind_name(k) + " input " + std::to_string(input), t);
    note(scalar ? "pointwise_backward, gradient of a sum" : "pointwise_backward, gradient per element");
    inner_.pointwise_backward(k, t, input, g, scalar, scale, in, gi, n, p);
  }
  void softmax(SoftmaxKind k, DType t, const void* x, void* y, const SoftmaxLayout& l) override {
    note(std::string("softmax ") + kind_name(k), t);
    layout_notes("softmax", l);
    inner_.softmax(k, t, x, y, l);
  }
  void softmax_backward(SoftmaxKind k, DType t, const void* g, const void* y, void* gx,
                        const SoftmaxLayout& l) override {
    note(std::string("softmax_backward ") + kind_name(k), t);
    inner_.softmax_backward(k, t, g, y, gx, l);
  }
  void kl_logits(DType t, const void* p, const void* q, void* kl, void* st,
                 const SoftmaxLayout& l) override {
    note("kl_logits", t);
    if (!q) note("kl_logits against the uniform distribution");
    if (l.inner > 1) note("kl_logits over a strided axis");
    if (l.temperatures) note("kl_logits, a temperature tensor");
    inner_.kl_logits(t, p, q, kl, st, l);
  }
  void kl_logits_backward(DType t, const void* g, const void* p, const void* q, const void* kl,
                          const void* st, void* gp, void* gq, const SoftmaxLayout& l) override {
    note("kl_logits_backward", t);
    if (gp) note("kl_logits_backward, grad_p");
    if (gq) note("kl_logits_backward, grad_q");
    inner_.kl_logits_backward(t, g, p, q, kl, st, gp, gq, l);
  }
  void cross_entropy(DType t, const void* x, const int64_t* labels, const void* target, double eps,
                     void* loss, void* st, const SoftmaxLayout& l) override {
    note("cross_entropy", t);
    note(labels ? "cross_entropy, labels" : "cross_entropy, probabilities");
    if (l.inner > 1) note("cross_entropy over a strided axis");
    inner_.cross_entropy(t, x, labels, target, eps, loss, st, l);
  }
  void cross_entropy_backward(DType t, const void* g, const void* x, const int64_t* labels,
                              const void* target, double eps, const void* st, void* gx, void* gt,
                              const SoftmaxLayout& l) override {
    note("cross_entropy_backward", t);
    note(labels ? "cross_entropy_backward, labels" : "cross_entropy_backward, probabilities");
    if (gt) note("cross_entropy_backward, grad_target");
    inner_.cross_entropy_backward(t, g, x, labels, target, eps, st, gx, gt, l);
  }

 private:
  void note(const std::string& entry) { seen_.insert(entry); }
  void note(const std::string& entry, DType dtype) { seen_.insert(entry + " " + dtype_name(dtype)); }
  void layout_notes(const char* kernel, const SoftmaxLayout& l) {
    const std::string k = kernel;
    if (l.inner > 1) note(k + " over a strided axis");
    if (l.n >= 100000) note(k + ", a row of >= 10^5");
    if (l.temperatures)
      note(k + (l.single_temperature ? ", one temperature tensor for all"
                                     : ", one temperature per distribution"));
  }

  Backend& inner_;
  mutable std::set<std::string> seen_;
};

}  // namespace tgtest
