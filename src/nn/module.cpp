// src/nn/module.cpp — Module: the registry of parameters, buffers and children, and everything
// that walks it (names, train/eval, state dicts, the printed summary).
#include <algorithm>
#include <sstream>

#include "tapegrad/backend.h"
#include "tapegrad/error.h"
#include "tapegrad/nn.h"
#include "tapegrad/tape.h"

namespace tg::nn {

Tensor Module::forward(const Tensor&) {
  fail("Module::forward", "a ", type_name(),
       " has no single-input forward(); call the methods it defines instead");
}

// ---------------------------------------------------------------- registration

void Module::check_new_name(const std::string& name) const {
  check(!name.empty() && name.find('.') == std::string::npos, "Module",
        "name '", name, "' must be non-empty and contain no '.' (dots separate path parts)");
  for (const auto& p : parameters_)
    check(p.first != name, "Module", "'", name, "' is already a parameter");
  for (const auto& b : buffers_)
    check(b.first != name, "Module", "'", name, "' is already a buffer");
  for (const auto& c : children_)
    check(c.first != name, "Module", "'", name, "' is already a child module");
}

Tensor Module::register_parameter(const std::string& name, Tensor tensor) {
  check_new_name(name);
  check(tensor.defined() && tensor.is_leaf(), "register_parameter", "parameter '", name,
        "' must be a defined leaf tensor");
  tensor.set_requires_grad(true);
  if (tensor.name().empty()) tensor.set_name(name);
  parameters_.emplace_back(name, tensor);
  return tensor;
}

Tensor Module::register_buffer(const std::string& name, Tensor tensor, bool zero_if_missing) {
  check_new_name(name);
  check(tensor.defined(), "register_buffer", "buffer '", name, "' is undefined");
  if (tensor.name().empty()) tensor.set_name(name);
  buffers_.emplace_back(name, tensor);
  if (zero_if_missing) zero_if_missing_.push_back(name);
  return tensor;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name);
  check(module != nullptr, "register_module", "module '", name, "' is null");
  // Parameters and buffers are named by their path, so that the tape print says which layer is
  // which ("encoder.0.weight", not "weight"): registration runs bottom-up, so each parent
  // prefixes the names its child gave. Names set by hand are left alone.
  std::vector<std::pair<std::string, Tensor>> inside;
  module->collect("", false, inside);
  for (auto& [path, tensor] : inside)
    if (tensor.defined() && tensor.name() == path) tensor.set_name(name + "." + path);
  children_.emplace_back(name, std::move(module));
}

// ---------------------------------------------------------------- walking the tree

// Depth first: own parameters (and buffers), then each child's under "<child>.".
void Module::collect(const std::string& prefix, bool parameters_only,
                     std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& p : parameters_) out.emplace_back(prefix + p.first, p.second);
  if (!parameters_only)
    for (const auto& b : buffers_) out.emplace_back(prefix + b.first, b.second);
  for (const auto& c : children_) c.second->collect(prefix + c.first + ".", parameters_only, out);
}

void Module::collect_zero_if_missing(const std::string& prefix,
                                     std::vector<std::string>& out) const {
  for (const auto& name : zero_if_missing_) out.push_back(prefix + name);
  for (const auto& c : children_) c.second->collect_zero_if_missing(prefix + c.first + ".", out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", true, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& p : named_parameters()) out.push_back(p.second);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t total = 0;
  for (const Tensor& p : parameters()) total += p.numel();
  return total;
}

void Module::zero_grad() {
  for (Tensor& p : parameters()) p.zero_grad();
}

namespace {
// Points the tensor's own impl at a copy of its data on `device`, so every handle sharing that
// impl moves with it. Views made earlier (reshape, detach) keep the old storage, as views of the
// old data.
void move_in_place(Tensor& t, Device device) {
  if (!t.defined() || t.device() == device) return;
  Tensor moved = t.detach().to(device);
  TensorImpl* impl = t.impl();
  // A tape entry that saved t before the move must not read the new storage as unchanged.
  moved.impl()->storage->version = impl->storage->version + 1;
  moved.impl()->storage->last_write = "Module::to";
  impl->storage = moved.impl()->storage;
  impl->offset_bytes = moved.impl()->offset_bytes;
  impl->device = device;
}
}  // namespace

Module& Module::to(Device device) {
  backend_for(device);  // a clear error before anything moves
  NoGrad no_grad;
  for (auto& p : parameters_) {
    Tensor grad = p.second.grad();
    move_in_place(p.second, device);
    if (grad.defined()) p.second.set_grad(grad.to(device));
  }
  for (auto& b : buffers_) move_in_place(b.second, device);
  for (auto& c : children_) c.second->to(device);
  return *this;
}

void Module::train(bool training) {
  training_ = training;
  for (auto& c : children_) c.second->train(training);
}

// ---------------------------------------------------------------- state dicts

StateDict Module::state_dict() const {
  std::vector<std::pair<std::string, Tensor>> entries;
  collect("", false, entries);
  StateDict state;
  // Detached, as PyTorch's: the entries share the parameters' storage (load_state_dict writes
  // through them) but carry no autograd history, so saving or inspecting them records nothing.
  for (auto& e : entries) state.add(e.first, e.second.detach());
  return state;
}

void Module::check_state_dict(const StateDict& state) const {
  std::vector<std::string> optional;
  collect_zero_if_missing("", optional);
  std::vector<std::string> names;
  for (const auto& e : state_dict()) {
    names.push_back(e.first);
    const bool may_be_absent =
        std::find(optional.begin(), optional.end(), e.first) != optional.end();
    if (may_be_absent && !state.contains(e.first)) continue;
    expect_entry(state, e.first, e.second, "load_state_dict");
  }
  expect_no_other_entries(state, names, "load_state_dict");
}

void Module::load_state_dict(const StateDict& state) {
  check_state_dict(state);  // everything is checked before anything is written
  NoGrad no_grad;           // parameters require grad; writing them is not an op
  for (const auto& e : state_dict()) {
    Tensor target = e.second;
    const Tensor* source = state.find(e.first);
    if (source)
      target.copy_(*source);
    else
      target.fill_(0);  // a zero_if_missing buffer the state lacks (check_state_dict allowed it)
  }
}

// ---------------------------------------------------------------- printing

void Module::describe(const std::string& name, int depth, std::string& out) const {
  std::ostringstream line;
  line << std::string(2 * depth, ' ') << (name.empty() ? "" : "(" + name + "): ") << type_name();
  for (const auto& p : parameters_) line << "  " << p.first << " " << p.second.shape();
  out += line.str() + "\n";
  for (const auto& c : children_) c.second->describe(c.first, depth + 1, out);
}

std::string Module::to_string() const {
  std::string out;
  describe("", 0, out);
  out += "parameters: " + std::to_string(parameter_count()) + "\n";
  return out;
}

}  // namespace tg::nn
