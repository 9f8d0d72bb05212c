// src/autograd/tape.cpp — recording entries and the reverse sweep. This file is the whole of
// reverse-mode autodiff in tapegrad; the ops only supply each entry's backward function.
#include "tapegrad/tape.h"

#include <atomic>
#include <iostream>
#include <sstream>

#include "tapegrad/backend.h"
#include "tapegrad/error.h"
#include "tapegrad/ops.h"

namespace tg {

// ---------------------------------------------------------------- gradient mode

namespace {
thread_local bool grad_mode_enabled = true;

// Every recording of every tape gets a distinct generation, so a tensor can tell whether the
// entry index it carries still refers to the tape as it is now.
uint64_t next_generation() {
  static std::atomic<uint64_t> counter{1};
  return counter++;
}
}  // namespace

bool grad_enabled() { return grad_mode_enabled; }
NoGrad::NoGrad() : previous_(grad_mode_enabled) { grad_mode_enabled = false; }
NoGrad::~NoGrad() { grad_mode_enabled = previous_; }

Tape& tape() {
  thread_local Tape thread_tape;
  return thread_tape;
}

// ---------------------------------------------------------------- recording

Tape::Tape() : generation_(next_generation()) {}

void Tape::clear() {
  entries_.clear();
  grads_.clear();
  generation_ = next_generation();
}

// The tape index of an op input: its own entry if it was recorded in this generation; a new
// leaf entry if it is a leaf seen for the first time; -1 if it needs no gradient.
int64_t Tape::index_of(const Tensor& input, const char* op) {
  if (!needs_grad(input)) return -1;
  TensorImpl& impl = *input.impl();
  if (impl.tape_generation == generation_) return impl.tape_index;
  check(impl.is_leaf, op,
        "an input was computed on a tape that has since been cleared (by backward() or "
        "tape().clear()), so no gradient can flow through it; recompute it, or detach() it to "
        "use it as a constant");
  TapeEntry leaf;
  leaf.op = "leaf";
  leaf.shape = impl.shape;
  leaf.dtype = impl.dtype;
  leaf.leaf = input.impl_ptr();
  entries_.push_back(std::move(leaf));
  impl.tape_index = static_cast<int64_t>(entries_.size()) - 1;
  impl.tape_generation = generation_;
  return impl.tape_index;
}

void Tape::record(const char* op, Tensor& output,
                  std::initializer_list<std::reference_wrapper<const Tensor>> inputs,
                  BackwardFn backward) {
  std::vector<int64_t> indices;
  indices.reserve(inputs.size());
  for (const Tensor& input : inputs) indices.push_back(index_of(input, op));
  append(op, output, std::move(indices), std::move(backward));
}

void Tape::record(const char* op, Tensor& output, const std::vector<Tensor>& inputs,
                  BackwardFn backward) {
  std::vector<int64_t> indices;
  indices.reserve(inputs.size());
  for (const Tensor& input : inputs) indices.push_back(index_of(input, op));
  append(op, output, std::move(indices), std::move(backward));
}

void Tape::append(const char* op, Tensor& output, std::vector<int64_t> inputs,
                  BackwardFn backward) {
  TapeEntry entry;
  entry.op = op;
  entry.inputs = std::move(inputs);
  entry.shape = output.shape();
  entry.dtype = output.dtype();
  entry.backward = std::move(backward);
  entries_.push_back(std::move(entry));

  TensorImpl& impl = *output.impl();
  impl.requires_grad = true;
  impl.is_leaf = false;
  impl.tape_index = static_cast<int64_t>(entries_.size()) - 1;
  impl.tape_generation = generation_;
}

// ---------------------------------------------------------------- the reverse sweep

bool Gradients::wants(int input) const {
  const TapeEntry& entry = tape_.entries_[entry_index_];
  return input < static_cast<int>(entry.inputs.size()) && entry.inputs[input] >= 0;
}

void Gradients::add(int input, const Tensor& grad) {
  if (!wants(input) || !grad.defined()) return;
  const TapeEntry& entry = tape_.entries_[entry_index_];
  int64_t target = entry.inputs[input];
  const TapeEntry& target_entry = tape_.entries_[target];
  Tensor g = grad;
  if (g.shape() != target_entry.shape) g = sum_to(g, target_entry.shape);
  check(g.dtype() == target_entry.dtype, "backward", "entry #", entry_index_, " (", entry.op,
        ") produced a ", g.dtype(), " gradient for its ", target_entry.dtype, " input ", input);
  // Accumulate, never assign: a value used twice (y = x * x) receives both contributions.
  Tensor& slot = tape_.grads_[target];
  slot = slot.defined() ? tg::add(slot, g) : g;
}

namespace {
// Adds a finished gradient into a leaf's grad(). The leaf gets storage of its own, so that
// in-place updates of one gradient (accumulation, clipping) never show up in another.
void deposit(TensorImpl& leaf, Tensor grad) {
  if (leaf.grad.defined()) {
    leaf.grad = tg::add(leaf.grad, grad);
    return;
  }
  bool exclusive = grad.impl_ptr().use_count() == 1 && grad.impl()->storage.use_count() == 1;
  leaf.grad = exclusive ? grad : grad.clone();
}
}  // namespace

void Tape::backward(const Tensor& root, const Tensor& grad_root, bool retain_graph) {
  check(root.defined(), "backward", "the tensor is undefined");
  check(root.requires_grad(), "backward",
        "the tensor does not require grad: nothing it was computed from called "
        "set_requires_grad(), or it was computed under NoGrad");
  check(grad_root.shape() == root.shape() && grad_root.dtype() == root.dtype(), "backward",
        "the gradient's shape/dtype ", grad_root.shape(), " ", grad_root.dtype(),
        " does not match the output's ", root.shape(), " ", root.dtype());
  // Backward functions hand the gradient's memory to the output's backend as its own.
  check(grad_root.device() == root.device(), "backward", "the gradient is on ",
        grad_root.device(), ", the output on ", root.device(), " (move it with .to(Device))");
  TensorImpl& impl = *root.impl();
  if (impl.is_leaf) {  // d(root)/d(root): the seed itself
    deposit(impl, grad_root);
    return;
  }
  check(impl.tape_generation == generation_, "backward",
        "this tensor was recorded on a tape that has since been cleared (a backward() without "
        "retain_graph clears it); recompute the forward pass, or pass retain_graph=true to the "
        "earlier backward()");

  NoGrad no_grad;  // the backward functions' own ops are not recorded
  // However the sweep ends (a backward function may throw), it releases the gradients it holds.
  struct ReleaseGradients {
    std::vector<Tensor>& grads;
    ~ReleaseGradients() { grads.clear(); }
  } release{grads_};
  int64_t root_index = impl.tape_index;
  grads_.assign(root_index + 1, Tensor());
  grads_[root_index] = grad_root;
  for (int64_t i = root_index; i >= 0; --i) {
    Tensor grad = std::move(grads_[i]);
    if (!grad.defined()) continue;  // nothing downstream of the root used this entry
    TapeEntry& entry = entries_[i];
    if (entry.leaf) {
      deposit(*entry.leaf, std::move(grad));
      continue;
    }
    check(static_cast<bool>(entry.backward), "backward", "entry #", i, " (", entry.op,
          ") was already differentiated and its saved tensors released");
    Gradients grads(*this, i);
    entry.backward(grad, grads);
    if (!retain_graph) entry.backward = nullptr;  // frees the tensors it saved, right away
  }
  if (!retain_graph) clear();
}

void backward(const Tensor& loss, bool retain_graph) {
  check(loss.defined(), "backward", "the tensor is undefined");
  check(loss.numel() == 1, "backward", "a tensor of shape ", loss.shape(),
        " is not a scalar; pass the gradient of the output: backward(y, grad_y)");
  tape().backward(loss, ones_like(loss), retain_graph);
}

void backward(const Tensor& output, const Tensor& grad_output, bool retain_graph) {
  check(grad_output.defined(), "backward", "the gradient is undefined");
  tape().backward(output, grad_output, retain_graph);
}

// ---------------------------------------------------------------- looking at the tape

namespace {
std::string entry_label(const TapeEntry& entry) {
  if (entry.leaf && !entry.leaf->name.empty()) return entry.leaf->name;
  return entry.op;
}
}  // namespace

void Tape::print(std::ostream& os) const {
  os << "tape: " << entries_.size() << " entries\n";
  for (size_t i = 0; i < entries_.size(); ++i) {
    const TapeEntry& entry = entries_[i];
    std::ostringstream line;
    line << "  #" << i << "  " << (entry.leaf ? "leaf " + entry.leaf->name : entry.op);
    if (!entry.leaf) {
      line << "(";
      for (size_t k = 0; k < entry.inputs.size(); ++k)
        line << (k ? ", " : "")
             << (entry.inputs[k] >= 0 ? "#" + std::to_string(entry.inputs[k]) : "const");
      line << ")";
    }
    os << line.str() << std::string(line.str().size() < 34 ? 34 - line.str().size() : 1, ' ')
       << "-> " << entry.shape << ' ' << entry.dtype << '\n';
  }
}

void Tape::print() const { print(std::cout); }

std::string Tape::to_string() const {
  std::ostringstream os;
  print(os);
  return os.str();
}

std::string Tape::to_dot() const {
  std::ostringstream os;
  os << "digraph tape {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n";
  for (size_t i = 0; i < entries_.size(); ++i) {
    const TapeEntry& entry = entries_[i];
    os << "  n" << i << " [label=\"#" << i << " " << entry_label(entry) << "\\n" << entry.shape
       << ' ' << entry.dtype << "\", shape=" << (entry.leaf ? "ellipse" : "box") << "];\n";
    for (int64_t input : entry.inputs)
      if (input >= 0) os << "  n" << input << " -> n" << i << ";\n";
  }
  os << "}\n";
  return os.str();
}

}  // namespace tg
