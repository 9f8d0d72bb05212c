// src/autograd/tape.cpp — recording entries and the reverse sweep. This file is the whole of
// reverse-mode autodiff in tapegrad; the ops only supply each entry's backward function.
#include "tapegrad/tape.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iomanip>
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

// Anomaly mode, per thread: -1 until the thread first asks, then the environment's default (0
// or 1), or what an AnomalyMode scope set.
thread_local signed char anomaly_state = -1;

bool anomaly_default() {
  static const bool from_environment = [] {
    const char* value = std::getenv("TAPEGRAD_ANOMALY");
    return value != nullptr && *value != '\0' && std::string(value) != "0";
  }();
  return from_environment;
}

// How many reasons any thread has to check: the environment, plus each live AnomalyMode scope
// that turned it on. While it is 0 (the usual case) the test per entry is one relaxed load of a
// global, not a thread_local access (which in a shared library is a call to __tls_get_addr).
std::atomic<int> anomaly_requests{anomaly_default() ? 1 : 0};

bool anomaly_on_slow() {
  if (anomaly_state < 0) anomaly_state = anomaly_default() ? 1 : 0;
  return anomaly_state == 1;
}

inline bool anomaly_on() {
  return anomaly_requests.load(std::memory_order_relaxed) != 0 && anomaly_on_slow();
}

// Whether every element is finite: a reduction on the tensor's device, read on the host.
bool all_finite(const Tensor& t) {
  if (!t.defined() || !is_floating(t.dtype())) return true;
  NoGrad no_grad;
  return all(isfinite(t)).item() != 0;
}

const char* bad_value_kind(const Tensor& t) {
  NoGrad no_grad;
  return any(isnan(t)).item() != 0 ? "NaN" : "an infinity";
}
}  // namespace

bool grad_enabled() { return grad_mode_enabled; }
bool anomaly_mode() { return anomaly_on_slow(); }
AnomalyMode::AnomalyMode(bool enabled) : previous_(anomaly_on_slow()) {
  anomaly_state = enabled ? 1 : 0;
  if (enabled) anomaly_requests.fetch_add(1);
}
// Scopes nest, so the state is still what this scope's constructor set.
AnomalyMode::~AnomalyMode() {
  if (anomaly_state == 1) anomaly_requests.fetch_sub(1);
  anomaly_state = previous_ ? 1 : 0;
}

GradMode::GradMode(bool enabled) : previous_(grad_mode_enabled) { grad_mode_enabled = enabled; }
GradMode::~GradMode() { grad_mode_enabled = previous_; }

Tape& tape() {
  thread_local Tape thread_tape;
  return thread_tape;
}

// ---------------------------------------------------------------- recording

TensorRefs::TensorRefs(std::initializer_list<std::reference_wrapper<const Tensor>> list)
    : size_(list.size()) {
  check(list.size() <= kMaxListed, "record", "a braced list holds at most ", kMaxListed,
        " tensors, got ", list.size(), "; pass a std::vector");
  size_t k = 0;
  for (const Tensor& t : list) listed_[k++] = &t;
}

TensorRefs::TensorRefs(const Tensor* const* pointers, size_t size) : size_(size) {
  check(size <= kMaxListed, "record", "save() takes at most ", kMaxListed, " tensors, got ", size,
        "; pass a std::vector");
  for (size_t k = 0; k < size; ++k) listed_[k] = pointers[k];
}

Tape::Tape() : generation_(next_generation()) {}

void Tape::clear() {
  check(!sweeping_, "tape().clear()", "called from inside a backward function");
  entries_.clear();
  grads_.clear();
  roots_.clear();
  generation_ = next_generation();
}

// The tape index of an op input: its own entry if it was recorded in this generation; a new
// leaf entry if it is a leaf seen for the first time; -1 if it needs no gradient.
int64_t Tape::index_of(const Tensor& input, const char* op) {
  if (!needs_grad(input)) return -1;
  TensorImpl& impl = *input.impl();
  if (impl.tape_generation == generation_) return impl.tape_index;
  check_this_tape(impl, op);
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

// A recorded tensor from another thread's tape: say so (each thread records on its own tape),
// rather than that the tape was cleared.
void Tape::check_this_tape(const TensorImpl& impl, const char* op) const {
  if (!impl.recording || impl.recording->tape == this) return;
  std::ostringstream thread;
  thread << impl.recording->thread;
  fail(op, "this tensor ", impl.shape, " was recorded on the tape of another thread (thread ",
       thread.str(), "); each thread records on its own tape, so differentiate it in the thread "
       "that computed it, or detach() it to use it here as a constant");
}

// How the tape keeps a tensor it saves. A recorded tensor is kept as a handle of its own onto
// the same storage and entry, without the recording token, so that the tape alone never keeps
// its recording alive (see reachable(); PyTorch's SavedVariable drops the grad_fn of a saved
// output for the same reason). Leaves and constants are kept as they are.
Tensor Tape::saved_handle(const Tensor& t) const {
  if (!t.defined() || !t.impl()->recording) return t;
  const TensorImpl& from = *t.impl();
  auto impl = std::make_shared<TensorImpl>();  // only what backward reads: no name, no token
  impl->shape = from.shape;
  impl->dtype = from.dtype;
  impl->device = from.device;
  impl->storage = from.storage;
  impl->offset_bytes = from.offset_bytes;
  impl->requires_grad = true;
  impl->is_leaf = false;
  impl->tape_index = from.tape_index;
  impl->tape_generation = from.tape_generation;
  return Tensor(std::move(impl));
}

void Tape::record(const OpName& op, Tensor& output, TensorRefs inputs, TensorRefs saved,
                  BackwardFn backward) {
  // Nothing recorded on this tape is alive outside it: its entries can never be differentiated,
  // so they go now. (An input recorded on it would be alive, so every input is a leaf or a
  // constant here, and gets a fresh entry below.)
  if (!entries_.empty() && !sweeping_ && recording_.expired()) clear();
  TapeEntry entry;
  entry.op = op.name;
  entry.scalars = op.scalars;
  entry.scalar_count = op.scalar_count;
  entry.inputs.reserve(inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    entry.inputs.push_back(index_of(inputs[k], op.name));
    const Tensor& t = inputs[k];
    if (entry.inputs.back() < 0 && t.defined())
      entry.constants.push_back({static_cast<int>(k), t.shape(), t.dtype(), t.name()});
  }
  entry.shape = output.shape();
  entry.dtype = output.dtype();
  entry.backward = std::move(backward);
  entries_.push_back(std::move(entry));

  TensorImpl& impl = *output.impl();
  impl.requires_grad = true;
  impl.is_leaf = false;
  impl.tape_index = static_cast<int64_t>(entries_.size()) - 1;
  impl.tape_generation = generation_;
  std::shared_ptr<const TapeRecording> recording = recording_.lock();
  if (!recording) {
    recording = std::make_shared<const TapeRecording>(
        TapeRecording{this, std::this_thread::get_id(), generation_});
    recording_ = recording;
  }
  impl.recording = std::move(recording);

  // After the output's fields are set, so that a saved output knows its entry.
  std::vector<SavedTensor>& kept = entries_.back().saved;
  kept.reserve(saved.size());
  for (size_t k = 0; k < saved.size(); ++k) {
    const Tensor& t = saved[k];
    int role = t.same(output) ? SavedTensor::kOutput : SavedTensor::kOther;
    for (size_t j = 0; j < inputs.size() && role == SavedTensor::kOther; ++j)
      if (t.defined() && t.same(inputs[j])) role = static_cast<int>(j);
    kept.push_back({saved_handle(t), t.defined() ? t.version() : 0, role});
  }
  if (anomaly_on()) check_forward_anomaly(impl.tape_index, inputs, output);
}

// ---- anomaly mode (see anomaly_mode() in tape.h)

// "#3 [4, 2] f32, const" for an entry's inputs.
std::string Tape::describe_inputs(int64_t i) const {
  std::ostringstream os;
  const TapeEntry& entry = entries_[i];
  for (size_t k = 0; k < entry.inputs.size(); ++k) {
    const int64_t input = entry.inputs[k];
    os << (k ? ", " : "");
    if (input < 0)
      os << "const";
    else
      os << "#" << input << " " << entries_[input].shape << " " << entries_[input].dtype;
  }
  return os.str();
}

void Tape::check_forward_anomaly(int64_t i, TensorRefs inputs, const Tensor& output) const {
  if (all_finite(output)) return;
  for (size_t k = 0; k < inputs.size(); ++k)
    if (!all_finite(inputs[k])) return;  // it arrived non-finite: made earlier, not here
  std::ostringstream inputs_text;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& t = inputs[k];
    inputs_text << (k ? ", " : "");
    if (t.defined()) inputs_text << t.shape() << " " << t.dtype();
    else inputs_text << "none";
  }
  std::string during;
  if (differentiating_ >= 0)
    during = ", recorded by the backward of tape entry #" + std::to_string(differentiating_) +
             " (" + entries_[differentiating_].op + ")";
  fail("anomaly mode", "tape entry #", i, " (", entries_[i].op, ") made ", bad_value_kind(output),
       " from finite inputs: inputs ", inputs_text.str(), " -> output ", output.shape(), " ",
       output.dtype(), during, ". Its inputs are on the tape as: ", describe_inputs(i));
}

void Tape::check_backward_anomaly(int64_t i, int input, const Tensor& grad,
                                  const Tensor* grad_output) const {
  if (all_finite(grad)) return;
  if (grad_output && !all_finite(*grad_output)) return;  // the gradient arrived non-finite
  fail("anomaly mode", "the backward of tape entry #", i, " (", entries_[i].op, "(",
       describe_inputs(i), ") -> ", entries_[i].shape, " ", entries_[i].dtype, ") made ",
       bad_value_kind(grad), " in the gradient of its input ", input, " ", grad.shape(), " ",
       grad.dtype(), " from a finite incoming gradient",
       grad_output ? " " + grad_output->shape().to_string() : std::string());
}

// ---------------------------------------------------------------- the reverse sweep

bool Gradients::wants(int input) const {
  const TapeEntry& entry = tape_.entries_[entry_index_];
  if (input >= static_cast<int>(entry.inputs.size()) || entry.inputs[input] < 0) return false;
  return tape_.need_.empty() || tape_.need_[entry.inputs[input]] != Tape::not_needed;
}

void Gradients::add(int input, const Tensor& grad) {
  if (!wants(input) || !grad.defined()) return;
  // Indices and copies only: under create_graph the ops below append to the tape, which may
  // move its entries in memory.
  const int64_t target = tape_.entries_[entry_index_].inputs[input];
  Tensor g = grad;
  if (g.shape() != tape_.entries_[target].shape) {
    const Shape shape = tape_.entries_[target].shape;
    g = sum_to(g, shape);
  }
  const DType dtype = tape_.entries_[target].dtype;
  check(g.dtype() == dtype, "backward", "entry #", entry_index_, " (",
        tape_.entries_[entry_index_].op, ") produced a ", g.dtype(), " gradient for its ", dtype,
        " input ", input);
  if (anomaly_on()) tape_.check_backward_anomaly(entry_index_, input, g, grad_output_);
  tape_.accumulate(target, g);
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

// The gradients a sweep holds and which entries it needs, released however the sweep ends (a
// backward function may throw).
struct Tape::SweepState {
  Tape& tape;
  SweepState(Tape& t, int64_t last) : tape(t) {
    tape.sweeping_ = true;
    tape.grads_.assign(last + 1, Tensor());
  }
  ~SweepState() {
    tape.grads_.clear();
    tape.need_.clear();
    tape.sweeping_ = false;
  }
};

std::vector<Tensor> Tape::backward(const std::vector<Tensor>& roots,
                                   const std::vector<Tensor>& grad_roots,
                                   const BackwardOptions& options,
                                   const std::vector<Tensor>* inputs) {
  check(!sweeping_, "backward",
        "called from inside a backward function; a sweep cannot start another one");
  check(!roots.empty() && roots.size() == grad_roots.size(), "backward", "got ",
        grad_roots.size(), " gradients for ", roots.size(), " outputs");
  const bool retain = options.retain_graph.value_or(options.create_graph);
  std::vector<int64_t> root_entries;
  for (size_t r = 0; r < roots.size(); ++r)
    root_entries.push_back(entry_of_root(roots[r], grad_roots[r]));
  const int64_t last = *std::max_element(root_entries.begin(), root_entries.end());
  std::vector<int64_t> input_entries;  // grad(): where each input's gradient will be
  if (inputs)
    for (const Tensor& input : *inputs) input_entries.push_back(entry_at_or_below(input, last));

  std::vector<Tensor> input_grads;
  {
    // Without create_graph the backward functions' own ops are not recorded; with it they are,
    // onto this tape, after the entries being differentiated (so the loop never reaches them).
    GradMode mode(options.create_graph);
    SweepState state(*this, last);
    const int64_t lowest = inputs ? mark_needed(input_entries, last) : 0;  // where it ends
    for (size_t r = 0; r < roots.size(); ++r) accumulate(root_entries[r], grad_roots[r]);
    roots_ = root_entries;
    ++sweeps_;
    Backend* memory = track_memory_ ? &backend_for(roots[0].device()) : nullptr;
    tracked_ = memory != nullptr;
    if (memory) backward_start_bytes_ = backward_peak_bytes_ = memory->memory_stats().bytes_in_use;

    // The sweep: every consumer of an entry was recorded after it, so when the loop reaches
    // entry i, all contributions to its gradient have been added.
    for (int64_t i = last; i >= lowest; --i) {
      Tensor grad = take_gradient(i);
      if (!grad.defined()) continue;  // the roots do not depend on entry i
      entries_[i].swept = sweeps_;    // for print(): this entry got a gradient
      if (entries_[i].leaf) {
        if (!inputs) deposit(*entries_[i].leaf, std::move(grad));  // grad() returns it instead
      } else {
        if (!inputs)  // retain_grad(): the non-leaf keeps a copy of its gradient
          if (std::shared_ptr<TensorImpl> kept = entries_[i].retained.lock()) deposit(*kept, grad);
        run_backward(i, grad, retain);  // adds the gradients of entry i's inputs
      }
      if (memory)
        backward_peak_bytes_ = std::max(backward_peak_bytes_, memory->memory_stats().bytes_in_use);
    }
    if (inputs) input_grads = returned_gradients(*inputs, input_entries);
  }

  // Without create_graph the tape is done with; with it, the recorded gradients live on it.
  if (!retain && !options.create_graph) clear();
  return input_grads;
}

// ---- the sweep's bookkeeping (those run once per entry are inline: every backward pays for them)

// The entry where a root's gradient starts. A leaf that no op has used gets one now.
int64_t Tape::entry_of_root(const Tensor& root, const Tensor& seed) {
  check_root(root, seed);
  const TensorImpl& impl = *root.impl();
  if (impl.tape_generation != generation_) check_this_tape(impl, "backward");
  check(impl.is_leaf || impl.tape_generation == generation_, "backward",
        "this tensor was recorded on a tape that has since been cleared (a backward() without "
        "retain_graph clears it); recompute the forward pass, or retain the tape in the earlier "
        "backward: backward(loss, {false, true}) (create_graph, retain_graph)");
  return index_of(root, "backward");
}

// A grad() input's entry, or -1 if the roots cannot depend on it (not on the tape, or recorded
// after all of them).
int64_t Tape::entry_at_or_below(const Tensor& input, int64_t last) const {
  const TensorImpl& impl = *input.impl();
  return impl.tape_generation == generation_ && impl.tape_index <= last ? impl.tape_index : -1;
}

// grad() only: marks the entries whose gradients the sweep needs, the inputs' and those of every
// entry computed from an input (one pass up the tape: an entry's inputs come before it), so that
// nothing else is computed, or recorded. Returns the lowest input's entry: the sweep ends there.
int64_t Tape::mark_needed(const std::vector<int64_t>& input_entries, int64_t last) {
  need_.assign(last + 1, not_needed);
  int64_t lowest = last + 1;
  for (int64_t entry : input_entries) {
    if (entry < 0) continue;
    need_[entry] = returned;
    lowest = std::min(lowest, entry);
  }
  for (int64_t i = lowest + 1; i <= last; ++i) {
    if (need_[i] != not_needed) continue;
    for (int64_t input : entries_[i].inputs)
      if (input >= 0 && need_[input] != not_needed) need_[i] = needed;
  }
  return lowest;
}

// Accumulate, never assign: a value used twice (y = x * x) receives both contributions.
inline void Tape::accumulate(int64_t entry, const Tensor& grad) {
  Tensor& slot = grads_[entry];
  if (slot.defined())
    slot = tg::add(slot, grad);
  else
    slot = grad;
}

// Entry i's finished gradient, moved out so that it is freed once passed on; grad() keeps the
// gradients it returns.
inline Tensor Tape::take_gradient(int64_t i) {
  if (!need_.empty() && need_[i] == returned) return grads_[i];
  return std::move(grads_[i]);
}

// Runs entry i's backward function (under grad(), only if one of its inputs wants a gradient).
// The function is taken out of the entry while it runs (a recording backward appends to
// entries_, which may move them, and a running function must not move), then put back for
// another sweep (retain), or destroyed, which frees the tensors it saved right away.
inline void Tape::run_backward(int64_t i, const Tensor& grad, bool retain) {
  if (!need_.empty()) {
    bool wanted = false;
    Gradients probe(*this, i, entries_[i].saved);
    for (int k = 0; k < static_cast<int>(entries_[i].inputs.size()); ++k)
      wanted = wanted || probe.wants(k);
    if (!wanted) return;
  }
  check(static_cast<bool>(entries_[i].backward), "backward", "entry #", i, " (", entries_[i].op,
        ") was already differentiated and its saved tensors released (pass retain_graph to "
        "the earlier backward to differentiate it again)");
  for (const SavedTensor& s : entries_[i].saved)  // the common case inline; the error out of line
    if (s.tensor.defined() && s.tensor.impl()->storage->version != s.version)
      check_unmodified(i, entries_[i].saved);
  BackwardFn backward_fn = std::move(entries_[i].backward);
  std::vector<SavedTensor> saved = std::move(entries_[i].saved);
  Gradients grads(*this, i, saved, &grad);
  differentiating_ = i;
  auto put_back = [&] {
    differentiating_ = -1;
    if (!retain) return;
    entries_[i].backward = std::move(backward_fn);
    entries_[i].saved = std::move(saved);
  };
  try {
    backward_fn(grad, grads);
  } catch (...) {
    put_back();
    throw;
  }
  put_back();
}

// PyTorch's "modified by an inplace operation": a saved tensor whose storage was written in
// place after the entry saved it would give a gradient computed from the wrong values.
void Tape::check_unmodified(int64_t i, const std::vector<SavedTensor>& saved) const {
  for (size_t k = 0; k < saved.size(); ++k) {
    const Tensor& t = saved[k].tensor;
    if (!t.defined() || t.version() == saved[k].version) continue;
    const TapeEntry& entry = entries_[i];
    std::string role = saved[k].role == SavedTensor::kOutput ? "output"
                       : saved[k].role >= 0 ? "input " + std::to_string(saved[k].role)
                                            : "saved tensor " + std::to_string(k);
    const TensorImpl& impl = *t.impl();
    if (!impl.name.empty()) role += " '" + impl.name + "'";
    const char* writer = impl.storage->last_write ? impl.storage->last_write : "an in-place write";
    fail("backward", "one of the variables needed for gradient computation has been modified by "
         "an inplace operation: tape entry #", i, " (", entry.op, ") saved its ", role, " ",
         t.shape(), " ", t.dtype(), " at version ", saved[k].version, ", and ", writer,
         " has since changed it (now version ", t.version(), "). Modify it after backward, or "
         "give the op a copy (clone()) if you need to change the original.");
  }
}

// grad()'s results, in input order: zeros for an input the roots do not depend on.
std::vector<Tensor> Tape::returned_gradients(const std::vector<Tensor>& inputs,
                                             const std::vector<int64_t>& input_entries) const {
  std::vector<Tensor> result;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const int64_t entry = input_entries[k];
    const bool reached = entry >= 0 && grads_[entry].defined();
    result.push_back(reached ? grads_[entry] : zeros_like(inputs[k]));
  }
  return result;
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
    if (impl.tape_generation != tape().generation()) tape().check_this_tape(impl, "grad");
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

Tensor& Tensor::retain_grad() {
  check(defined(), "retain_grad", "the tensor is undefined");
  TensorImpl& impl = *impl_;
  check(impl.requires_grad, "retain_grad",
        "the tensor ", impl.shape, " does not require grad, so backward computes no gradient "
        "for it");
  if (impl.is_leaf) return *this;  // a leaf's gradient is kept anyway
  Tape& t = tape();
  if (impl.tape_generation != t.generation()) t.check_this_tape(impl, "retain_grad");
  check(impl.tape_generation == t.generation(), "retain_grad",
        "the tensor was recorded on a tape that has since been cleared; no backward can reach it");
  impl.retains_grad = true;
  t.entries_[impl.tape_index].retained = impl_;
  return *this;
}

Tensor first_order_only(const char* op, Tensor gradient,
                        std::initializer_list<std::reference_wrapper<const Tensor>> computed_from) {
  bool recording = false;
  for (const Tensor& t : computed_from) recording = recording || needs_grad(t);
  if (!recording || !grad_enabled()) return gradient;
  Tensor recorded = gradient.detach();
  record(op, recorded, TensorRefs(computed_from), [op](const Tensor&, Gradients&) {
    fail(op, "this gradient was computed without recorded ops, so it has no derivative of its "
             "own: a second derivative through it is not implemented");
  });
  return recorded;
}

// ---------------------------------------------------------------- looking at the tape

namespace {
std::string format_bytes(size_t bytes) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(1);
  if (bytes < 1000) os << bytes << " B";
  else if (bytes < 1000 * 1000) os << bytes / 1e3 << " kB";
  else os << bytes / 1e6 << " MB";
  return os.str();
}

std::string format_scalar(double value) {
  std::ostringstream os;
  os << std::setprecision(6) << value;
  return os.str();
}

// Each storage an entry saved, once.
size_t saved_bytes_of(const TapeEntry& entry) {
  size_t bytes = 0;
  for (size_t k = 0; k < entry.saved.size(); ++k) {
    const Tensor& t = entry.saved[k].tensor;
    if (!t.defined()) continue;
    bool seen = false;
    for (size_t j = 0; j < k; ++j)
      seen = seen || (entry.saved[j].tensor.defined() &&
                      entry.saved[j].tensor.impl()->storage == t.impl()->storage);
    if (!seen) bytes += t.impl()->storage->bytes;
  }
  return bytes;
}

// "x", "fc1.weight", or "" for an unnamed leaf.
std::string leaf_name(const TapeEntry& entry) { return entry.leaf ? entry.leaf->name : ""; }

// A label safe inside a DOT string.
std::string dot_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}
}  // namespace

// "leaf fc1.weight", or "mul_scalar(#4, 0.999)", "linear(const x [8, 784] f32, #0, #1)".
std::string Tape::call_text(size_t i) const {
  const TapeEntry& entry = entries_[i];
  if (entry.leaf) return "leaf " + (leaf_name(entry).empty() ? "(unnamed)" : leaf_name(entry));
  std::ostringstream os;
  os << entry.op << "(";
  for (size_t k = 0; k < entry.inputs.size(); ++k) {
    os << (k ? ", " : "");
    if (entry.inputs[k] >= 0) {
      os << "#" << entry.inputs[k];
      continue;
    }
    const ConstantInput* constant = nullptr;
    for (const ConstantInput& c : entry.constants)
      if (c.position == static_cast<int>(k)) constant = &c;
    if (!constant) {
      os << "none";
      continue;
    }
    os << "const " << (constant->name.empty() ? "" : constant->name + " ") << constant->shape
       << ' ' << constant->dtype;
  }
  for (int s = 0; s < entry.scalar_count; ++s)
    os << (s || !entry.inputs.empty() ? ", " : "") << format_scalar(entry.scalars[s]);
  os << ")";
  return os.str();
}

void Tape::print(std::ostream& os) const {
  os << "tape: " << entries_.size() << " entries";
  const TapeMemoryReport memory = memory_report();
  if (memory.total_saved_bytes) os << ", " << format_bytes(memory.total_saved_bytes) << " saved";
  os << '\n';
  for (size_t i = 0; i < entries_.size(); ++i) {
    const TapeEntry& entry = entries_[i];
    std::ostringstream line;
    line << "  #" << i << "  " << call_text(i);
    const std::string head = line.str();
    os << head << std::string(head.size() < 44 ? 44 - head.size() : 1, ' ') << "-> "
       << entry.shape << ' ' << entry.dtype;
    if (sweeps_ && entry.swept == sweeps_) os << "   grad " << entry.shape;
    if (memory.saved_bytes[i]) os << "   saved " << format_bytes(memory.saved_bytes[i]);
    if (std::find(roots_.begin(), roots_.end(), static_cast<int64_t>(i)) != roots_.end())
      os << "   <- root";
    os << '\n';
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
  const TapeMemoryReport memory = memory_report();
  for (size_t i = 0; i < entries_.size(); ++i) {
    const TapeEntry& entry = entries_[i];
    std::ostringstream label;
    label << "#" << i << " ";
    if (entry.leaf) {
      label << (leaf_name(entry).empty() ? "leaf" : leaf_name(entry));
    } else {
      label << entry.op;
      if (entry.scalar_count) {
        label << "(";
        for (int s = 0; s < entry.scalar_count; ++s)
          label << (s ? ", " : "") << format_scalar(entry.scalars[s]);
        label << ")";
      }
    }
    label << "\\n" << entry.shape << ' ' << entry.dtype;
    if (sweeps_ && entry.swept == sweeps_) label << "\\ngrad " << entry.shape;
    if (memory.saved_bytes[i]) label << "\\nsaved " << format_bytes(memory.saved_bytes[i]);
    const bool root = std::find(roots_.begin(), roots_.end(), static_cast<int64_t>(i)) != roots_.end();
    os << "  n" << i << " [label=\"" << dot_escape(label.str()) << "\", shape="
       << (entry.leaf ? "ellipse" : "box") << (root ? ", penwidth=3, xlabel=\"root\"" : "")
       << "];\n";
    for (const ConstantInput& c : entry.constants) {
      os << "  c" << i << "_" << c.position << " [label=\"const "
         << dot_escape(c.name.empty() ? "" : c.name + "\\n") << c.shape << ' ' << c.dtype
         << "\", shape=note, style=dashed];\n";
      os << "  c" << i << "_" << c.position << " -> n" << i << " [label=\"" << c.position
         << "\", style=dashed];\n";
    }
    for (size_t k = 0; k < entry.inputs.size(); ++k)
      if (entry.inputs[k] >= 0)
        os << "  n" << entry.inputs[k] << " -> n" << i << " [label=\"" << k << "\"];\n";
  }
  os << "}\n";
  return os.str();
}

TapeMemoryReport Tape::memory_report() const {
  TapeMemoryReport report;
  report.saved_bytes.resize(entries_.size());
  std::vector<const Storage*> counted;
  for (size_t i = 0; i < entries_.size(); ++i) {
    report.saved_bytes[i] = saved_bytes_of(entries_[i]);
    for (const SavedTensor& s : entries_[i].saved) {
      if (!s.tensor.defined()) continue;
      const Storage* storage = s.tensor.impl()->storage.get();
      if (std::find(counted.begin(), counted.end(), storage) != counted.end()) continue;
      counted.push_back(storage);
      report.total_saved_bytes += storage->bytes;
    }
  }
  report.tracked = tracked_;
  report.backward_start_bytes = backward_start_bytes_;
  report.backward_peak_bytes = backward_peak_bytes_;
  return report;
}

std::string TapeMemoryReport::to_string() const {
  std::ostringstream os;
  os << "tape memory: " << format_bytes(total_saved_bytes)
     << " saved for backward (parameters they use included)";
  size_t entries = 0;
  for (size_t bytes : saved_bytes) entries += bytes ? 1 : 0;
  os << " by " << entries << " of " << saved_bytes.size() << " entries\n";
  for (size_t i = 0; i < saved_bytes.size(); ++i)
    if (saved_bytes[i]) os << "  #" << i << "  " << format_bytes(saved_bytes[i]) << '\n';
  if (tracked)
    os << "last backward: " << format_bytes(backward_start_bytes) << " in use at the start, peak "
       << format_bytes(backward_peak_bytes) << " (sampled after each entry)\n";
  else
    os << "last backward: not tracked (tape().track_memory(true) samples it)\n";
  return os.str();
}

}  // namespace tg
