// src/optim/optimizers.cpp — SGD, Adam and AdamW. Each step() computes the update's scalars on
// the host and hands every parameter to one fused backend kernel (adam_step / sgd_step), so a
// step reads and writes each parameter and its state exactly once.
#include <string>

#include "tapegrad/backend.h"
#include "tapegrad/error.h"
#include "tapegrad/optim.h"
#include "tapegrad/tape.h"

namespace tg::optim {

// ---------------------------------------------------------------- Optimizer

Optimizer::Optimizer(std::vector<Tensor> parameters, double lr, const char* name)
    : parameters_(std::move(parameters)), lr_(lr), name_(name) {
  check(!parameters_.empty(), name, "got no parameters to optimize");
  check(lr >= 0, name, "learning rate must be >= 0, got ", lr);
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const Tensor& p = parameters_[i];
    check(p.defined() && p.is_leaf() && p.requires_grad() && is_floating(p.dtype()), name,
          "parameter ", i, " must be a floating leaf tensor with requires_grad");
    for (size_t j = 0; j < i; ++j)
      check(!parameters_[j].same(p), name, "parameter ", i, " is the same tensor as parameter ",
            j, "; pass each once");
  }
}

void Optimizer::set_lr(double lr) {
  check(lr >= 0, name_, "learning rate must be >= 0, got ", lr);
  lr_ = lr;
}

void Optimizer::zero_grad() {
  for (Tensor& p : parameters_) p.zero_grad();
}

void Optimizer::load_state_dict(const StateDict& state) {
  check_state_dict(state);  // everything is checked before anything changes
  apply_state_dict(state);
}

std::vector<size_t> Optimizer::parameters_with_grad() const {
  std::vector<size_t> out;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const Tensor& p = parameters_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;
    check(g.shape() == p.shape() && g.dtype() == p.dtype() && g.device() == p.device(), name_,
          "parameter ", i, " (", p.shape(), " ", p.dtype(), " on ", p.device(),
          ") has a gradient of ", g.shape(), " ", g.dtype(), " on ", g.device());
    out.push_back(i);
  }
  return out;
}

namespace {
// Optimizer state lives on its parameter's device; after Module::to it follows at the next step.
void follow(Tensor& state, const Tensor& parameter) {
  if (state.defined() && state.device() != parameter.device()) state = state.to(parameter.device());
}

std::string state_name(size_t i, const char* what) {
  return "state." + std::to_string(i) + "." + what;
}

// Checks the optional per-parameter state tensors named `what` in `state`: each present entry must
// match its parameter; returns which parameters have one.
std::vector<bool> check_slot(const StateDict& state, const std::vector<Tensor>& parameters,
                             const char* what, const char* who, std::vector<std::string>& known) {
  std::vector<bool> present(parameters.size());
  for (size_t i = 0; i < parameters.size(); ++i) {
    std::string name = state_name(i, what);
    known.push_back(name);
    if (!state.contains(name)) continue;
    expect_entry(state, name, parameters[i], who);
    present[i] = true;
  }
  return present;
}

// Copies the state entry into `slot` (allocating it like the parameter if needed) or, when absent,
// resets the slot to "no state yet".
void restore_slot(const StateDict& state, const std::string& name, const Tensor& parameter,
                  Tensor& slot) {
  const Tensor* saved = state.find(name);
  if (!saved) {
    slot = Tensor();
    return;
  }
  if (!slot.defined()) slot = empty(parameter.shape(), parameter.dtype(), parameter.device());
  slot.copy_(*saved);
}
}  // namespace

// ---------------------------------------------------------------- SGD

namespace {
// The hyperparameter checks of the constructor, also applied to a state dict before loading it.
void check_options(const SgdOptions& options, const char* who) {
  check(options.lr >= 0, who, "learning rate must be >= 0, got ", options.lr);
  check(options.momentum >= 0, who, "momentum must be >= 0, got ", options.momentum);
  check(options.weight_decay >= 0, who, "weight_decay must be >= 0, got ", options.weight_decay);
  check(!options.nesterov || (options.momentum > 0 && options.dampening == 0), who,
        "Nesterov momentum needs momentum > 0 and dampening 0");
}

SgdOptions sgd_options_from(const StateDict& state, const char* who) {
  SgdOptions options;
  options.lr = expect_real(state, "lr", who);
  options.momentum = expect_real(state, "momentum", who);
  options.dampening = expect_real(state, "dampening", who);
  options.weight_decay = expect_real(state, "weight_decay", who);
  options.nesterov = expect_integer(state, "nesterov", who) != 0;
  return options;
}
}  // namespace

SGD::SGD(std::vector<Tensor> parameters, const SgdOptions& options)
    : Optimizer(std::move(parameters), options.lr, "SGD"),
      options_(options),
      momentum_buffers_(parameters_.size()) {
  check_options(options, "SGD");
}

void SGD::step() {
  NoGrad no_grad;
  SgdStep scalars;
  scalars.lr = lr_;
  scalars.momentum = options_.momentum;
  scalars.dampening = options_.dampening;
  scalars.weight_decay = options_.weight_decay;
  scalars.nesterov = options_.nesterov;
  for (size_t i : parameters_with_grad()) {
    Tensor& p = parameters_[i];
    Tensor g = p.grad();
    void* buffer = nullptr;
    scalars.first_step = false;
    if (options_.momentum != 0) {
      Tensor& b = momentum_buffers_[i];
      follow(b, p);
      if (!b.defined()) {
        b = zeros(p.shape(), p.dtype(), p.device());
        scalars.first_step = true;  // the kernel sets the buffer to the gradient
      }
      buffer = b.raw_data();
    }
    backend_for(p.device()).sgd_step(p.dtype(), p.raw_data(), g.raw_data(), buffer, p.numel(),
                                     scalars);
    p.bump_version("SGD.step");
    if (buffer) momentum_buffers_[i].bump_version("SGD.step");
  }
}

StateDict SGD::state_dict() const {
  StateDict state;
  state.add_real("lr", lr_);
  state.add_real("momentum", options_.momentum);
  state.add_real("dampening", options_.dampening);
  state.add_real("weight_decay", options_.weight_decay);
  state.add_integer("nesterov", options_.nesterov ? 1 : 0);
  for (size_t i = 0; i < parameters_.size(); ++i)
    if (momentum_buffers_[i].defined())
      state.add(state_name(i, "momentum_buffer"), momentum_buffers_[i]);
  return state;
}

void SGD::check_state_dict(const StateDict& state) const {
  const char* who = "SGD::load_state_dict";
  std::vector<std::string> known = {"lr", "momentum", "dampening", "weight_decay", "nesterov"};
  check_options(sgd_options_from(state, who), who);
  check_slot(state, parameters_, "momentum_buffer", who, known);
  expect_no_other_entries(state, known, who);
}

void SGD::apply_state_dict(const StateDict& state) {
  NoGrad no_grad;
  options_ = sgd_options_from(state, "SGD");
  lr_ = options_.lr;
  for (size_t i = 0; i < parameters_.size(); ++i)
    restore_slot(state, state_name(i, "momentum_buffer"), parameters_[i], momentum_buffers_[i]);
}

// ---------------------------------------------------------------- Adam, AdamW

namespace {
void check_options(const AdamOptions& options, const char* who) {
  check(options.lr >= 0, who, "learning rate must be >= 0, got ", options.lr);
  check(options.beta1 >= 0 && options.beta1 < 1 && options.beta2 >= 0 && options.beta2 < 1, who,
        "betas must lie in [0, 1), got (", options.beta1, ", ", options.beta2, ")");
  check(options.eps >= 0, who, "eps must be >= 0, got ", options.eps);
  check(options.weight_decay >= 0, who, "weight_decay must be >= 0, got ", options.weight_decay);
}

AdamOptions adam_options_from(const StateDict& state, const char* who) {
  AdamOptions options;
  options.lr = expect_real(state, "lr", who);
  options.beta1 = expect_real(state, "beta1", who);
  options.beta2 = expect_real(state, "beta2", who);
  options.eps = expect_real(state, "eps", who);
  options.weight_decay = expect_real(state, "weight_decay", who);
  return options;
}
}  // namespace

Adam::Adam(std::vector<Tensor> parameters, const AdamOptions& options)
    : Adam(std::move(parameters), options, false, "Adam") {}

Adam::Adam(std::vector<Tensor> parameters, const AdamOptions& options, bool decoupled,
           const char* name)
    : Optimizer(std::move(parameters), options.lr, name),
      options_(options),
      decoupled_(decoupled),
      steps_(parameters_.size(), 0),
      exp_avg_(parameters_.size()),
      exp_avg_sq_(parameters_.size()) {
  check_options(options, name);
}

AdamW::AdamW(std::vector<Tensor> parameters, const AdamWOptions& options)
    : Adam(std::move(parameters), options, true, "AdamW") {}

void Adam::step() {
  NoGrad no_grad;
  AdamStep scalars;
  scalars.lr = lr_;
  scalars.beta1 = options_.beta1;
  scalars.beta2 = options_.beta2;
  scalars.eps = options_.eps;
  scalars.weight_decay = options_.weight_decay;
  scalars.decoupled_weight_decay = decoupled_;
  for (size_t i : parameters_with_grad()) {
    Tensor& p = parameters_[i];
    Tensor g = p.grad();
    follow(exp_avg_[i], p);
    follow(exp_avg_sq_[i], p);
    if (!exp_avg_[i].defined()) {  // the state starts at zero on a parameter's first step
      exp_avg_[i] = zeros(p.shape(), p.dtype(), p.device());
      exp_avg_sq_[i] = zeros(p.shape(), p.dtype(), p.device());
    }
    scalars.step = ++steps_[i];
    backend_for(p.device()).adam_step(p.dtype(), p.raw_data(), g.raw_data(),
                                      exp_avg_[i].raw_data(), exp_avg_sq_[i].raw_data(),
                                      p.numel(), scalars);
    p.bump_version("Adam.step");
    exp_avg_[i].bump_version("Adam.step");
    exp_avg_sq_[i].bump_version("Adam.step");
  }
}

StateDict Adam::state_dict() const {
  StateDict state;
  state.add_real("lr", lr_);
  state.add_real("beta1", options_.beta1);
  state.add_real("beta2", options_.beta2);
  state.add_real("eps", options_.eps);
  state.add_real("weight_decay", options_.weight_decay);
  for (size_t i = 0; i < parameters_.size(); ++i) {
    if (!exp_avg_[i].defined()) continue;
    state.add_integer(state_name(i, "step"), steps_[i]);
    state.add(state_name(i, "exp_avg"), exp_avg_[i]);
    state.add(state_name(i, "exp_avg_sq"), exp_avg_sq_[i]);
  }
  return state;
}

void Adam::check_state_dict(const StateDict& state) const {
  std::string who = std::string(name_) + "::load_state_dict";
  std::vector<std::string> known = {"lr", "beta1", "beta2", "eps", "weight_decay"};
  check_options(adam_options_from(state, who.c_str()), who.c_str());
  std::vector<bool> m = check_slot(state, parameters_, "exp_avg", who.c_str(), known);
  std::vector<bool> v = check_slot(state, parameters_, "exp_avg_sq", who.c_str(), known);
  for (size_t i = 0; i < parameters_.size(); ++i) {
    std::string step = state_name(i, "step");
    known.push_back(step);
    check(m[i] == v[i] && m[i] == state.contains(step), who.c_str(), "parameter ", i,
          " has only part of its state (step, exp_avg and exp_avg_sq go together)");
    if (m[i])
      check(expect_integer(state, step, who.c_str()) >= 1, who.c_str(), "entry '", step,
            "' must be >= 1");
  }
  expect_no_other_entries(state, known, who.c_str());
}

void Adam::apply_state_dict(const StateDict& state) {
  NoGrad no_grad;
  options_ = adam_options_from(state, name_);
  lr_ = options_.lr;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    restore_slot(state, state_name(i, "exp_avg"), parameters_[i], exp_avg_[i]);
    restore_slot(state, state_name(i, "exp_avg_sq"), parameters_[i], exp_avg_sq_[i]);
    steps_[i] = exp_avg_[i].defined() ? expect_integer(state, state_name(i, "step"), name_) : 0;
  }
}

}  // namespace tg::optim
