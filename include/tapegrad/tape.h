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
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "tapegrad/tensor.h"

namespace tg {

class Gradients;

// Turns the gradient of an entry's output into gradients of its inputs, via Gradients::add.
using BackwardFn = std::function<void(const Tensor& grad_output, Gradients& grads)>;

struct TapeEntry {
  const char* op = "";
  std::vector<int64_t> inputs;        // tape index of each input, or -1 for a constant input
  Shape shape;                        // of the output
  DType dtype = DType::f32;
  BackwardFn backward;                // empty for leaves, and once released after a backward
  std::shared_ptr<TensorImpl> leaf;   // leaves only: the tensor whose grad() receives the result
};

class Tape {
 public:
  Tape();

  // Appends an entry for `output = op(inputs...)` and marks `output` as recorded on this tape.
  // Ops call this through record() below, only when is_recording(inputs...) is true.
  void record(const char* op, Tensor& output,
              std::initializer_list<std::reference_wrapper<const Tensor>> inputs,
              BackwardFn backward);
  void record(const char* op, Tensor& output, const std::vector<Tensor>& inputs,
              BackwardFn backward);

  // Reverse-mode sweep from `root`, seeded with `grad_root` (same shape as root). Leaves that
  // the sweep reaches have the result *added* to their grad(). Unless retain_graph, the tape is
  // cleared afterwards (saved tensors are freed as the sweep passes them).
  void backward(const Tensor& root, const Tensor& grad_root, bool retain_graph);

  // Forgets every entry (keeping the allocated capacity for the next step). Tensors recorded
  // before the clear can no longer be differentiated through; using one as an op input raises.
  void clear();

  size_t size() const { return entries_.size(); }
  const TapeEntry& entry(size_t index) const { return entries_.at(index); }
  uint64_t generation() const { return generation_; }

  // One line per entry: index, op, inputs, output shape and dtype.
  std::string to_string() const;
  void print(std::ostream& os) const;
  void print() const;
  // The same as a Graphviz digraph: `dot -Tpng tape.dot -o tape.png`.
  std::string to_dot() const;

 private:
  friend class Gradients;
  int64_t index_of(const Tensor& input, const char* op);
  void append(const char* op, Tensor& output, std::vector<int64_t> inputs, BackwardFn backward);

  std::vector<TapeEntry> entries_;
  std::vector<Tensor> grads_;  // gradient of each entry's output, live only during backward
  uint64_t generation_;
};

// The handle a backward function uses to hand gradients to its inputs.
class Gradients {
 public:
  Gradients(Tape& tape, int64_t entry_index) : tape_(tape), entry_index_(entry_index) {}
  // Whether input k needs a gradient (skip computing it when not).
  bool wants(int input) const;
  // Adds `grad` to input k's gradient. A gradient with the broadcast shape of the output is
  // summed back to the input's shape here, once for every op.
  void add(int input, const Tensor& grad);

 private:
  Tape& tape_;
  int64_t entry_index_;
};

// The tape of the calling thread. Each thread records on its own tape.
Tape& tape();

// backward(loss): loss must have one element; its gradient is seeded with 1.
void backward(const Tensor& loss, bool retain_graph = false);
// backward(y, grad_y): vector-Jacobian product for a non-scalar y.
void backward(const Tensor& output, const Tensor& grad_output, bool retain_graph = false);

// Gradient mode. Under a NoGrad scope nothing is recorded and ops cost what their kernels cost.
bool grad_enabled();
class NoGrad {
 public:
  NoGrad();
  ~NoGrad();
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  bool previous_;
};

// --- for op implementers ---
inline bool needs_grad(const Tensor& t) { return t.defined() && t.requires_grad(); }
// True when an op with these inputs must record itself.
template <class... Tensors>
bool is_recording(const Tensors&... inputs) {
  return grad_enabled() && (needs_grad(inputs) || ...);
}
inline void record(const char* op, Tensor& output,
                   std::initializer_list<std::reference_wrapper<const Tensor>> inputs,
                   BackwardFn backward) {
  tape().record(op, output, inputs, std::move(backward));
}
inline void record(const char* op, Tensor& output, const std::vector<Tensor>& inputs,
                   BackwardFn backward) {
  tape().record(op, output, inputs, std::move(backward));
}

}  // namespace tg
