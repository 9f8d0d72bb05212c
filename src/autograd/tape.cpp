// src/autograd/tape.cpp — recording entries and the reverse sweep. This file is the whole of
// reverse-mode autodiff in tapegrad; the ops only supply each entry's backward function.
#include "tapegrad/tape.h"

#include <algorithm>
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
GradMode::GradMode(bool enabled) : previous_(grad_mode_enabled) { grad_mode_enabled = enabled; }
GradMode::~GradMode() { grad_mode_enabled = previous_; }

Tape& tape() {
  thread_local Tape thread_tape;
  return thread_tape;
}

// ---------------------------------------------------------------- recording

Tape::Tape() : generation_(next_generation()) {}

void Tape::clear() {
  check(!sweeping_, "tape().clear()", "called from inside a backward function");
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
  if (input >= static_cast<int>(entry.inputs.size()) || entry.inputs[input] < 0) return false;
  return tape_.leads_to_input_.empty() || tape_.leads_to_input_[entry.inputs[input]];
}

void Gradients::add(int input, const Tensor& grad) {
  if (!wants(input) || !grad.defined()) return;
  // Indices and copies only: under create_graph the ops below append to the tape, which may
  // move its entries in memory.
  const int64_t target = tape_.entries_[entry_index_].inputs[input];
  const Shape shape = tape_.entries_[target].shape;
  const DType dtype = tape_.entries_[target].dtype;
  Tensor g = grad.shape() == shape ? grad : sum_to(grad, shape);
  check(g.dtype() == dtype, "backward", "entry #", entry_index_, " (",
        tape_.entries_[entry_index_].op, ") produced a ", g.dtype(), " gradient for its ", dtype,
        " input ", input);
  // Accumulate, never assign: a value used twice (y = x * x) receives both contributions.
  Tensor& slot = tape_.grads_[target];
  slot = slot.defined() ? tg::add(slot, g) : g;
}

namespace {
// Adds a finished gradient into a leaf's grad(). The leaf gets storage of its own, so that
// in-place updates of one gradient (accumulation, clipping) never show up in another. (Under
// create_graph the add and the clone are recorded like any op.)
void deposit(TensorImpl& leaf, Tensor grad) {
  if (leaf.grad.defined()) {
    leaf.grad = tg::add(leaf.grad, grad);
    return;
  }
  bool exclusive = grad.impl_ptr().use_count() == 1 && grad.impl()->storage.use_count() == 1;
  leaf.grad = exclusive ? grad : grad.clone();
}

// Throws unless `root` can be differentiated with `seed` as its gradient.
void check_root(const Tensor& root, const Tensor& seed) {
  check(root.defined(), "backward", "the tensor is undefined");
  check(root.requires_grad(), "backward",
        "the tensor does not require grad: nothing it was computed from called "
        "set_requires_grad(), or it was computed under NoGrad");
  check(seed.defined() && seed.shape() == root.shape() && seed.dtype() == root.dtype(),
        "backward", "the gradient's shape/dtype ", seed.shape(), " ", seed.dtype(),
        " does not match the output's ", root.shape(), " ", root.dtype());
  // Backward functions hand the gradient's memory to the output's backend as its own.
  check(seed.device() == root.device(), "backward", "the gradient is on ", seed.device(),
        ", the output on ", root.device(), " (move it with .to(Device))");
}
}  // namespace

std::vector<Tensor> Tape::backward(const std::vector<Tensor>& roots,
                                   const std::vector<Tensor>& grad_roots,
                                   const BackwardOptions& options,
                                   const std::vector<Tensor>* inputs) {
  check(!sweeping_, "backward",
        "called from inside a backward function; a sweep cannot start another one");
  const bool retain = options.retain_graph.value_or(options.create_graph);
  const size_t input_count = inputs ? inputs->size() : 0;
  std::vector<Tensor> input_grads(input_count);

  // Where each root's gradient starts. A leaf that no op has used has no entry: its gradient is
  // its seed, handed over directly.
  std::vector<int64_t> root_indices;
  int64_t last = -1;
  for (size_t r = 0; r < roots.size(); ++r) {
    const Tensor &root = roots[r], &seed = grad_roots[r];
    check_root(root, seed);
    TensorImpl& impl = *root.impl();
    const bool on_tape = impl.tape_generation == generation_;
    if (impl.is_leaf && !on_tape) {
      if (!inputs) deposit(impl, seed);
      for (size_t k = 0; k < input_count; ++k)
        if ((*inputs)[k].same(root))
          input_grads[k] = input_grads[k].defined() ? tg::add(input_grads[k], seed) : seed;
      root_indices.push_back(-1);
      continue;
    }
    check(on_tape, "backward",
          "this tensor was recorded on a tape that has since been cleared (a backward() without "
          "retain_graph clears it); recompute the forward pass, or retain the tape in the earlier "
          "backward: backward(loss, {false, true}) (create_graph, retain_graph)");
    root_indices.push_back(impl.tape_index);
    last = std::max(last, impl.tape_index);
  }

  // grad() takes the gradients of its inputs as the sweep passes their entries, and stops at the
  // lowest one: nothing below it can contribute.
  std::vector<std::pair<int64_t, size_t>> captures;  // (entry, input k), highest entry first
  for (size_t k = 0; k < input_count; ++k) {
    const TensorImpl& impl = *(*inputs)[k].impl();
    if (impl.tape_generation == generation_ && impl.tape_index <= last)
      captures.emplace_back(impl.tape_index, k);
  }
  std::sort(captures.begin(), captures.end(), std::greater<>());
  const int64_t stop = !inputs ? 0 : captures.empty() ? last + 1 : captures.back().first;
  size_t next_capture = 0;

  {
    // Without create_graph the backward functions' own ops are not recorded; with it they are,
    // onto this tape, after the entries being differentiated (so the loop never reaches them).
    GradMode mode(options.create_graph);
    // However the sweep ends (a backward function may throw), it releases the gradients it holds.
    struct SweepScope {
      Tape& tape;
      explicit SweepScope(Tape& t) : tape(t) { tape.sweeping_ = true; }
      ~SweepScope() {
        tape.grads_.clear();
        tape.leads_to_input_.clear();
        tape.sweeping_ = false;
      }
    } sweep{*this};
    grads_.assign(last + 1, Tensor());
    // grad() computes only the gradients that can reach an input: those of the entries an input
    // is, or was computed from (one forward pass over the entries' input lists).
    if (inputs) {
      leads_to_input_.assign(last + 1, 0);
      for (const auto& capture : captures) leads_to_input_[capture.first] = 1;
      for (int64_t i = std::max<int64_t>(stop, 0); i <= last; ++i)
        for (int64_t input : entries_[i].inputs)
          if (input >= stop && leads_to_input_[input]) leads_to_input_[i] = 1;
    }
    for (size_t r = 0; r < roots.size(); ++r) {
      if (root_indices[r] < 0) continue;
      Tensor& slot = grads_[root_indices[r]];
      slot = slot.defined() ? tg::add(slot, grad_roots[r]) : grad_roots[r];
    }

    for (int64_t i = last; i >= stop; --i) {
      Tensor grad = std::move(grads_[i]);
      for (; next_capture < captures.size() && captures[next_capture].first == i; ++next_capture)
        input_grads[captures[next_capture].second] = grad;
      if (!grad.defined()) continue;  // nothing downstream of the roots used this entry
      if (inputs && !leads_to_input_[i]) continue;  // no input was computed from it
      if (entries_[i].leaf) {
        if (!inputs) deposit(*entries_[i].leaf, std::move(grad));
        continue;
      }
      if (inputs && i == stop) break;  // the lowest input: what it came from is not wanted
      // Taken out of the entry while it runs: a recording backward function appends to
      // entries_, which may move them, and a function must not move while it runs.
      BackwardFn backward_fn = std::move(entries_[i].backward);
      check(static_cast<bool>(backward_fn), "backward", "entry #", i, " (", entries_[i].op,
            ") was already differentiated and its saved tensors released (pass retain_graph to "
            "the earlier backward to differentiate it again)");
      Gradients grads(*this, i);
      try {
        backward_fn(grad, grads);
      } catch (...) {
        if (retain) entries_[i].backward = std::move(backward_fn);
        throw;
      }
      // Kept for another sweep, or destroyed here, which frees the tensors it saved right away.
      if (retain) entries_[i].backward = std::move(backward_fn);
    }
  }

  // Without create_graph the tape is done with; with it, the recorded gradients live on it.
  if (!retain && !options.create_graph && last >= 0) clear();
  for (size_t k = 0; k < input_count; ++k)
    if (!input_grads[k].defined()) input_grads[k] = zeros_like((*inputs)[k]);
  return input_grads;
}

namespace {
// Ones for every output, which must then have one element each.
std::vector<Tensor> unit_seeds(const std::vector<Tensor>& outputs) {
  std::vector<Tensor> seeds;
  for (const Tensor& output : outputs) {
    check(output.defined(), "backward", "the tensor is undefined");
    check(output.numel() == 1, "backward", "a tensor of shape ", output.shape(),
          " is not a scalar; pass the gradient of the output: backward(y, grad_y)");
    seeds.push_back(ones_like(output));
  }
  return seeds;
}
}  // namespace

void backward(const Tensor& loss, const BackwardOptions& options) {
  tape().backward({loss}, unit_seeds({loss}), options);
}

void backward(const Tensor& output, const Tensor& grad_output, const BackwardOptions& options) {
  check(grad_output.defined(), "backward", "the gradient is undefined");
  tape().backward({output}, {grad_output}, options);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, const BackwardOptions& options) {
  check(!outputs.empty(), "grad", "needs at least one output");
  check(grad_outputs.empty() || grad_outputs.size() == outputs.size(), "grad", "got ",
        grad_outputs.size(), " gradients for ", outputs.size(), " outputs");
  for (size_t k = 0; k < inputs.size(); ++k) {
    check(inputs[k].defined(), "grad", "input ", k, " is undefined");
    check(inputs[k].requires_grad(), "grad", "input ", k, " ", inputs[k].shape(),
          " does not require grad, so no gradient is computed for it");
    const TensorImpl& impl = *inputs[k].impl();
    check(impl.is_leaf || impl.tape_generation == tape().generation(), "grad", "input ", k,
          " was computed on a tape that has since been cleared; recompute it");
  }
  return tape().backward(outputs, grad_outputs.empty() ? unit_seeds(outputs) : grad_outputs,
                         options, &inputs);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool create_graph) {
  return grad(outputs, inputs, grad_outputs, BackwardOptions{create_graph, {}});
}

Tensor hvp(const std::function<Tensor(const Tensor&)>& f, const Tensor& x, const Tensor& v) {
  check(x.defined() && v.defined(), "hvp", "x and v must be defined");
  check(v.shape() == x.shape() && v.dtype() == x.dtype(), "hvp", "v ", v.shape(), " ", v.dtype(),
        " must have x's shape and dtype ", x.shape(), " ", x.dtype());
  EnableGrad enable_grad;
  Tensor input = x.detach().set_requires_grad();
  Tensor y = f(input);
  check(y.defined() && y.numel() == 1, "hvp", "f must return one element, got shape ",
        y.defined() ? y.shape() : Shape{});
  if (!y.requires_grad()) return zeros_like(x);  // f does not depend on x
  Tensor g = grad({y}, {input}, {}, true)[0];
  if (!g.requires_grad()) {  // f is linear in x: H = 0
    tape().clear();
    return zeros_like(x);
  }
  return grad({g}, {input}, {v.detach()})[0];
}

Tensor first_order_only(const char* op, Tensor gradient,
                        std::initializer_list<std::reference_wrapper<const Tensor>> computed_from) {
  bool recording = false;
  for (const Tensor& t : computed_from) recording = recording || needs_grad(t);
  if (!recording || !grad_enabled()) return gradient;
  Tensor recorded = gradient.detach();
  record(op, recorded, computed_from, [op](const Tensor&, Gradients&) {
    fail(op, "this gradient was computed without recorded ops, so it has no derivative of its "
             "own: a second derivative through it is not implemented");
  });
  return recorded;
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
