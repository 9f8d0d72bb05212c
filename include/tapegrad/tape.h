// tapegrad/tape.h — the tape (Wengert list) and reverse-mode autodiff.
//
// Every differentiable op that runs while gradients are wanted appends one entry to the thread's
// tape: its name, which earlier entries its inputs came from, and a backward function that turns
// the gradient of its output into gradients of its inputs. A tensor that requires grad but was not
// made by an op (a parameter, an input you differentiate by) is a *leaf*; it gets an entry of its
// own the first time an op uses it, so every variable on the tape is an entry.
//
// backward(loss) then walks the entries in reverse recording order. Because the tape *is* an
// execution order, every consumer of a value comes after it, so when the loop reaches an entry all
// gradient contributions to it have already been added up. No graph search, no recursion.
//
//   tg::Tensor x = tg::tensor({1, 2, 3}).set_requires_grad();
//   tg::Tensor y = tg::sum(x * x);       // tape: #0 leaf x, #1 mul(#0, #0), #2 sum(#1)
//   tg::backward(y);                     // x.grad() == 2x; the tape is cleared afterwards
//
// Gradients of gradients: every backward function is written with recorded ops, so a sweep run
// with create_graph records the gradient computation on the same tape, after the entries it
// differentiates, and its results can be differentiated again:
//
//   tg::Tensor g = tg::grad({tg::sum(x * x * x)}, {x}, {}, true)[0];   // 3x², recorded
//   tg::Tensor h = tg::grad({g}, {x}, {v})[0];                          // 6x·v, Hessian times v
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tapegrad/tensor.h"

namespace tg {

class Gradients;

// How backward() and grad() treat the tape.
//   create_graph  record the sweep itself (the backward functions' ops) on the tape, after the
//                 entries it differentiates, so that the gradients it returns carry history and
//                 can be differentiated again (Hessian-vector products, gradient penalties).
//   retain_graph  keep every entry's backward function, and the tensors it saved, for another
//                 sweep. Unset, it follows create_graph, as in PyTorch. Without it the tape is
//                 cleared after the sweep; with create_graph it is kept (the recorded gradients
//                 live on it), but the entries the sweep ran are released.
struct BackwardOptions {
  bool create_graph = false;
  std::optional<bool> retain_graph = std::nullopt;
};

// Turns the gradient of an entry's output into gradients of its inputs, via Gradients::add. The
// tensors it needs (the entry's saved tensors) come from Gradients::saved, not from captures.
using BackwardFn = std::function<void(const Tensor& grad_output, Gradients& grads)>;

// A tensor an entry keeps for its backward function, and the version of its storage at that
// moment: backward refuses to run if an in-place write has changed it since.
struct SavedTensor {
  static constexpr int kOutput = -2, kOther = -1;
  Tensor tensor;
  uint64_t version = 0;
  int role = kOther;  // which input it is (0, 1, ...), the entry's output, or another tensor
};

// An op's name with the scalar arguments the tape prints, as in mul_scalar(#4, 0.999).
// record("add", ...) gives a name alone; with_scalars("clamp", low, high) adds scalars.
struct OpName {
  static constexpr int kMaxScalars = 4;
  OpName(const char* name) : name(name) {}  // NOLINT: implicit, so record("add", ...) reads plainly
  const char* name;
  std::array<double, kMaxScalars> scalars{};
  int scalar_count = 0;
};
template <class... Scalars>
OpName with_scalars(const char* name, Scalars... scalars) {
  static_assert(sizeof...(Scalars) <= OpName::kMaxScalars, "at most 4 scalar arguments");
  OpName op(name);
  op.scalars = {static_cast<double>(scalars)...};
  op.scalar_count = static_cast<int>(sizeof...(Scalars));
  return op;
}

// The tensors handed to record(): a braced list {a, b} (at most 8) or a std::vector, read
// during the call only.
class TensorRefs {
 public:
  static constexpr size_t kMaxListed = 8;
  TensorRefs() = default;
  TensorRefs(std::initializer_list<std::reference_wrapper<const Tensor>> list);
  TensorRefs(const std::vector<Tensor>& tensors) : vector_(tensors.data()), size_(tensors.size()) {}
  TensorRefs(const Tensor* const* pointers, size_t size);
  size_t size() const { return size_; }
  const Tensor& operator[](size_t k) const { return vector_ ? vector_[k] : *listed_[k]; }

 private:
  std::array<const Tensor*, kMaxListed> listed_{};
  const Tensor* vector_ = nullptr;
  size_t size_ = 0;
};

// A constant input of an entry (defined, needs no gradient): what the print and DOT show of it.
struct ConstantInput {
  int position = 0;
  Shape shape;
  DType dtype = DType::f32;
  std::string name;
};

struct TapeEntry {
  const char* op = "";
  std::array<double, OpName::kMaxScalars> scalars{};  // the op's scalar arguments (printed)
  int scalar_count = 0;
  std::vector<int64_t> inputs;        // tape index of each input, or -1 for a constant input
  std::vector<SavedTensor> saved;     // what backward needs; released with it
  Shape shape;                        // of the output
  DType dtype = DType::f32;
  BackwardFn backward;                // empty for leaves, and once released after a backward
  std::shared_ptr<TensorImpl> leaf;   // leaves only: the tensor whose grad() receives the result
  std::weak_ptr<TensorImpl> retained; // a non-leaf output that called retain_grad()
  std::vector<ConstantInput> constants;  // for print() and to_dot() only
  uint64_t swept = 0;                 // the sweep that last computed this entry's gradient
};

// What the tape holds in memory: the bytes each entry saved for its backward (the storages of
// its saved tensors), all of them with each storage counted once, and, when tracking was on
// (Tape::track_memory), the bytes in use on the root's device when the last backward started
// and the most in use during it (sampled after each entry's backward).
struct TapeMemoryReport {
  std::vector<size_t> saved_bytes;  // per entry
  size_t total_saved_bytes = 0;
  bool tracked = false;
  size_t backward_start_bytes = 0, backward_peak_bytes = 0;
  std::string to_string() const;    // a table of the entries that saved anything, and the totals
};

class Tape {
 public:
  Tape();

  // Appends an entry for `output = op(inputs...)` that keeps `saved` for its backward, and marks
  // `output` as recorded on this tape. Ops call this through record() below, only when
  // is_recording(inputs...) is true.
  void record(const OpName& op, Tensor& output, TensorRefs inputs, TensorRefs saved,
              BackwardFn backward);

  // Reverse-mode sweep from `roots`, each seeded with its gradient (same shape as the root).
  // Without `inputs`, leaves the sweep reaches have their gradient *added* to their grad(). With
  // `inputs`, nothing's grad() changes: the gradients of those tensors are returned instead, in
  // order (zeros for one the roots do not depend on). See BackwardOptions for what happens to
  // the tape.
  std::vector<Tensor> backward(const std::vector<Tensor>& roots,
                               const std::vector<Tensor>& grad_roots,
                               const BackwardOptions& options,
                               const std::vector<Tensor>* inputs = nullptr);

  // Forgets every entry (keeping the allocated capacity for the next step). Tensors recorded
  // before the clear can no longer be differentiated through; using one as an op input raises.
  void clear();

  // Bounded memory without backward: once no tensor recorded on this tape is alive outside it
  // (an evaluation loop that forgot NoGrad drops each pass's outputs), nothing can reach its
  // entries any more, and the next record() clears the tape first, freeing what they saved.
  // The tape holds the recorded tensors it saves as handles of their own (same storage, same
  // entry) that do not count as alive. A tensor kept across passes keeps the tape, as a
  // backward would need it.
  bool reachable() const { return !recording_.expired(); }

  // Throws a tg::Error naming `op` if `impl` was recorded on another thread's tape.
  void check_this_tape(const TensorImpl& impl, const char* op) const;

  size_t size() const { return entries_.size(); }
  const TapeEntry& entry(size_t index) const { return entries_.at(index); }
  uint64_t generation() const { return generation_; }

  // One line per entry: index, the op with its inputs (#k, or const with shape and name) and
  // scalar arguments, the output's shape and dtype, the bytes it saved; after a backward over a
  // retained tape, which entries got a gradient ("grad [shape]") and which was the root.
  // Leaves show their names: nn modules name parameters by path (encoder.0.weight).
  //   #5  mul_scalar(#4, 0.999)            -> [64] f32   grad [64]   saved 256 B
  std::string to_string() const;
  void print(std::ostream& os) const;
  void print() const;
  // The same as a Graphviz digraph (`dot -Tpng tape.dot -o tape.png`): a node per entry and per
  // constant input, edges labelled with the argument position they feed, the root drawn bold.
  std::string to_dot() const;

  // Bytes saved per entry and in total, and the peak of the last backward (see TapeMemoryReport).
  TapeMemoryReport memory_report() const;
  // Samples the bytes in use after each entry of a backward, for memory_report()'s peak. Off by
  // default: a sample is a locked read of the allocator's counters.
  void track_memory(bool on) { track_memory_ = on; }

 private:
  friend class Gradients;
  friend class Tensor;  // retain_grad
  int64_t index_of(const Tensor& input, const char* op);
  Tensor saved_handle(const Tensor& t) const;

  // The sweep's bookkeeping (tape.cpp, after backward()).
  struct SweepState;
  int64_t entry_of_root(const Tensor& root, const Tensor& seed);
  int64_t entry_at_or_below(const Tensor& input, int64_t last) const;
  int64_t mark_needed(const std::vector<int64_t>& input_entries, int64_t last);
  void accumulate(int64_t entry, const Tensor& grad);
  Tensor take_gradient(int64_t entry);
  void run_backward(int64_t entry, const Tensor& grad, bool retain);
  void check_unmodified(int64_t entry, const std::vector<SavedTensor>& saved) const;
  void check_forward_anomaly(int64_t entry, TensorRefs inputs, const Tensor& output) const;
  void check_backward_anomaly(int64_t entry, int input, const Tensor& grad,
                              const Tensor* grad_output) const;
  std::string describe_inputs(int64_t entry) const;
  std::vector<Tensor> returned_gradients(const std::vector<Tensor>& inputs,
                                         const std::vector<int64_t>& input_entries) const;

  // What a grad() sweep needs of an entry: nothing, its gradient on the way to an input, or its
  // gradient as a result (an input of grad()).
  enum Need : char { not_needed, needed, returned };

  std::vector<TapeEntry> entries_;
  std::vector<Tensor> grads_;  // gradient of each entry's output, live only during backward
  std::vector<Need> need_;     // grad() only, one per entry; empty for backward(): all needed
  uint64_t generation_;
  bool sweeping_ = false;      // a backward is running (backward functions must not start one)
  std::weak_ptr<const TapeRecording> recording_;  // shared by this generation's recorded tensors
  int64_t differentiating_ = -1;  // the entry whose backward function is running, if any
  std::vector<int64_t> roots_;    // where the last backward started (print, DOT)
  uint64_t sweeps_ = 0;           // backward sweeps run on this tape (TapeEntry::swept)
  bool track_memory_ = false;
  bool tracked_ = false;          // the last backward was sampled
  size_t backward_start_bytes_ = 0, backward_peak_bytes_ = 0;
  std::string call_text(size_t entry) const;
};

// The handle a backward function uses to hand gradients to its inputs.
class Gradients {
 public:
  Gradients(Tape& tape, int64_t entry_index, const std::vector<SavedTensor>& saved,
            const Tensor* grad_output = nullptr)
      : tape_(tape), entry_index_(entry_index), saved_(saved), grad_output_(grad_output) {}
  // Whether input k needs a gradient (skip computing it when not).
  bool wants(int input) const;
  // Adds `grad` to input k's gradient. A gradient with the broadcast shape of the output is
  // summed back to the input's shape here, once for every op.
  void add(int input, const Tensor& grad);
  // The k-th tensor the entry saved (checked unmodified before the backward function runs).
  const Tensor& saved(size_t k) const { return saved_.at(k).tensor; }
  size_t saved_count() const { return saved_.size(); }

 private:
  Tape& tape_;
  int64_t entry_index_;
  const std::vector<SavedTensor>& saved_;
  const Tensor* grad_output_;  // what the backward function was given (anomaly mode)
};

// The tape of the calling thread. Each thread records on its own tape.
Tape& tape();

// backward(loss): loss must have one element; its gradient is seeded with 1.
//   tg::backward(loss);                        // gradients into the leaves' grad()
//   tg::backward(loss, {true});                // the same, recorded (create_graph)
//   tg::backward(loss, {false, true});         // keep the tape for another backward
void backward(const Tensor& loss, const BackwardOptions& options = {});
// backward(y, grad_y): vector-Jacobian product for a non-scalar y.
void backward(const Tensor& output, const Tensor& grad_output,
              const BackwardOptions& options = {});

// PyTorch's autograd.grad: the gradients of `outputs` with respect to `inputs` (leaves or
// intermediate tensors), returned in input order without touching any grad(). `grad_outputs`
// seeds each output (empty: 1 for each, which must then have one element). An input that
// requires grad but does not influence the outputs gets zeros. Only gradients on the way to an
// input are computed. With create_graph the gradients are recorded and can be differentiated
// again.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {},
                         const BackwardOptions& options = {});
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool create_graph);

// The Hessian-vector product H·v of a scalar function f at x, H = ∂²f/∂x², by double backward:
// g = ∂f/∂x recorded (create_graph), then ∂(g·v)/∂x — about the cost of two backward passes, and
// H is never formed. f is called once, on a fresh leaf with x's values (x needs no gradient and
// its grad() is untouched). Like backward(), it ends by clearing the tape.
Tensor hvp(const std::function<Tensor(const Tensor&)>& f, const Tensor& x, const Tensor& v);

// Gradient mode. Under a NoGrad scope nothing is recorded and ops cost what their kernels cost;
// an EnableGrad scope turns recording back on inside one (PyTorch's enable_grad).
bool grad_enabled();
// Sets the gradient mode of the calling thread for a scope, and restores it afterwards.
class GradMode {
 public:
  explicit GradMode(bool enabled);
  ~GradMode();
  GradMode(const GradMode&) = delete;
  GradMode& operator=(const GradMode&) = delete;

 private:
  bool previous_;
};
// Anomaly mode, for finding where a NaN came from. Every recorded op checks that it did not make
// a non-finite value (NaN, ±inf) from finite inputs, and every backward function that it did not
// make a non-finite gradient from a finite one; the first that did raises a tg::Error naming the
// op, its tape index, the input shapes and, in backward, the forward op being differentiated.
// (Values that arrive non-finite, like a -inf attention mask, pass: only where one is made
// counts.) Each check reads a result on the host, so on a GPU every recorded op and backward step
// synchronises with the device: a debugging mode, off by default, and free when off (one
// thread-local flag test per entry, docs/benchmarks.md).
//   TAPEGRAD_ANOMALY=1 build/examples/vae/vae ...    on for every thread of a program
//   { tg::AnomalyMode anomaly; ... }                  on for a scope of the calling thread
bool anomaly_mode();
class AnomalyMode {
 public:
  explicit AnomalyMode(bool enabled = true);
  ~AnomalyMode();
  AnomalyMode(const AnomalyMode&) = delete;
  AnomalyMode& operator=(const AnomalyMode&) = delete;

 private:
  bool previous_;
};

class NoGrad : public GradMode {
 public:
  NoGrad() : GradMode(false) {}
};
class EnableGrad : public GradMode {
 public:
  EnableGrad() : GradMode(true) {}
};

// --- for op implementers ---
inline bool needs_grad(const Tensor& t) { return t.defined() && t.requires_grad(); }
// True when an op with these inputs must record itself.
template <class... Tensors>
bool is_recording(const Tensors&... inputs) {
  return grad_enabled() && (needs_grad(inputs) || ...);
}

// Recording an op. The entry names the tensors its backward needs, so that the tape can check
// them for in-place writes and count their memory; a backward function captures no tensors,
// only scalars (an axis, a shape). Three forms:
//
// Nothing saved: the backward function is (grad, g).
//   record("add", y, {a, b}, [](const Tensor& grad, Gradients& g) { ... });
// Saved tensors: save(...) lists them; the backward function receives them after g, in order.
//   record("mul", y, {a, b}, save(a, b),
//          [](const Tensor& grad, Gradients& g, const Tensor& a, const Tensor& b) { ... });
// A run-time list (a std::vector): the backward function reads it with g.saved(k).
//   record("concat", y, inputs, saved_list, [](const Tensor& grad, Gradients& g) { ... });
//
// The op's name may carry its scalar arguments for the tape print: with_scalars("clamp", lo, hi).
template <size_t N>
struct Saving {
  std::array<const Tensor*, N> tensors;
};
template <class... Tensors>
Saving<sizeof...(Tensors)> save(const Tensors&... tensors) {
  static_assert((std::is_same_v<Tensors, Tensor> && ...), "save() takes tensors");
  return {{&tensors...}};
}

inline void record(const OpName& op, Tensor& output, TensorRefs inputs, BackwardFn backward) {
  tape().record(op, output, inputs, {}, std::move(backward));
}
inline void record(const OpName& op, Tensor& output, TensorRefs inputs, TensorRefs saved,
                   BackwardFn backward) {
  tape().record(op, output, inputs, saved, std::move(backward));
}
namespace detail {
template <class Fn, size_t... K>
BackwardFn with_saved_arguments(Fn fn, std::index_sequence<K...>) {
  return [fn = std::move(fn)](const Tensor& grad, Gradients& g) { fn(grad, g, g.saved(K)...); };
}
}  // namespace detail
template <size_t N, class Fn>
void record(const OpName& op, Tensor& output, TensorRefs inputs, const Saving<N>& saved,
            Fn backward) {
  tape().record(op, output, inputs, TensorRefs(saved.tensors.data(), N),
                detail::with_saved_arguments(std::move(backward), std::make_index_sequence<N>()));
}

// For a backward function that computes a gradient outside the engine's ops (a raw kernel with
// no derivative of its own): when the sweep records (create_graph) and `computed_from` — the
// tensors the gradient was computed from, usually the incoming gradient and the saved ones —
// need grad, `gradient` is recorded as an entry named `op` whose own backward raises a tg::Error
// naming it. A second derivative through it then fails loudly instead of being silently zero.
// Returns `gradient`.
Tensor first_order_only(const char* op, Tensor gradient,
                        std::initializer_list<std::reference_wrapper<const Tensor>> computed_from);

}  // namespace tg
