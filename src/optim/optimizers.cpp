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

Optimizer::Optimizer(std::vector<std::vector<Tensor>> groups, std::vector<double> lrs,
                     const char* name)
    : lrs_(std::move(lrs)), name_(name) {
  check(!groups.empty() && groups.size() == lrs_.size(), name, "got no parameter groups");
  for (size_t k = 0; k < groups.size(); ++k) {
    check(!groups[k].empty(), name, "parameter group ", k, " has no parameters");
    check(lrs_[k] >= 0, name, "learning rate must be >= 0, got ", lrs_[k], " (group ", k, ")");
    for (Tensor& p : groups[k]) {
      parameters_.push_back(std::move(p));
      group_of_.push_back(k);
    }
  }
  check(!parameters_.empty(), name, "got no parameters to optimize");
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
  for (double& group_lr : lrs_) group_lr = lr;
}

void Optimizer::set_lr(size_t group, double lr) {
  check(group < lrs_.size(), name_, "no parameter group ", group, " (there are ", lrs_.size(),
        ")");
  check(lr >= 0, name_, "learning rate must be >= 0, got ", lr);
  lrs_[group] = lr;
}

std::string Optimizer::group_key(size_t group, const char* key) {
  return group == 0 ? std::string(key) : "group." + std::to_string(group) + "." + key;
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

const char* const kSgdKeys[] = {"lr", "momentum", "dampening", "weight_decay", "nesterov"};

// Group `group`'s options as named in a state dict (plain for group 0, "group.k." after).
SgdOptions sgd_options_from(const StateDict& state, size_t group, const char* who) {
  auto key = [group](const char* name) {
    return group == 0 ? std::string(name) : "group." + std::to_string(group) + "." + name;
  };
  SgdOptions options;
  options.lr = expect_real(state, key("lr"), who);
  options.momentum = expect_real(state, key("momentum"), who);
  options.dampening = expect_real(state, key("dampening"), who);
  options.weight_decay = expect_real(state, key("weight_decay"), who);
  options.nesterov = expect_integer(state, key("nesterov"), who) != 0;
  return options;
}

template <class Options>
std::vector<std::vector<Tensor>> group_parameters(std::vector<ParamGroup<Options>>& groups) {
  std::vector<std::vector<Tensor>> out;
  for (auto& group : groups) out.push_back(std::move(group.parameters));
  return out;
}
template <class Options>
std::vector<double> group_lrs(const std::vector<ParamGroup<Options>>& groups) {
  std::vector<double> out;
  for (const auto& group : groups) out.push_back(group.options.lr);
  return out;
}
template <class Options>
std::vector<Options> group_options(const std::vector<ParamGroup<Options>>& groups) {
  std::vector<Options> out;
  for (const auto& group : groups) out.push_back(group.options);
  return out;
}
}  // namespace

SGD::SGD(std::vector<Tensor> parameters, const SgdOptions& options)
    : SGD(std::vector<ParamGroup<SgdOptions>>{{std::move(parameters), options}}) {}

SGD::SGD(std::vector<ParamGroup<SgdOptions>> groups)
    : Optimizer(group_parameters(groups), group_lrs(groups), "SGD"),
      options_(group_options(groups)),
      momentum_buffers_(parameters_.size()) {
  for (const SgdOptions& options : options_) check_options(options, "SGD");
}

void SGD::step() {
  NoGrad no_grad;
  for (size_t i : parameters_with_grad()) {
    const size_t group = group_of_[i];
    const SgdOptions& options = options_[group];
    SgdStep scalars;
    scalars.lr = lrs_[group];
    scalars.momentum = options.momentum;
    scalars.dampening = options.dampening;
    scalars.weight_decay = options.weight_decay;
    scalars.nesterov = options.nesterov;
    Tensor& p = parameters_[i];
    Tensor g = p.grad();
    void* buffer = nullptr;
    scalars.first_step = false;
    if (options.momentum != 0) {
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
  for (size_t k = 0; k < options_.size(); ++k) {
    state.add_real(group_key(k, "lr"), lrs_[k]);
    state.add_real(group_key(k, "momentum"), options_[k].momentum);
    state.add_real(group_key(k, "dampening"), options_[k].dampening);
    state.add_real(group_key(k, "weight_decay"), options_[k].weight_decay);
    state.add_integer(group_key(k, "nesterov"), options_[k].nesterov ? 1 : 0);
  }
  for (size_t i = 0; i < parameters_.size(); ++i)
    if (momentum_buffers_[i].defined())
      state.add(state_name(i, "momentum_buffer"), momentum_buffers_[i]);
  return state;
}

void SGD::check_state_dict(const StateDict& state) const {
  const char* who = "SGD::load_state_dict";
  std::vector<std::string> known;
  for (size_t k = 0; k < options_.size(); ++k) {
    for (const char* key : kSgdKeys) known.push_back(group_key(k, key));
    check_options(sgd_options_from(state, k, who), who);
  }
  check_slot(state, parameters_, "momentum_buffer", who, known);
  expect_no_other_entries(state, known, who);
}

void SGD::apply_state_dict(const StateDict& state) {
  NoGrad no_grad;
  for (size_t k = 0; k < options_.size(); ++k) {
    options_[k] = sgd_options_from(state, k, "SGD");
    lrs_[k] = options_[k].lr;
  }
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

const char* const kAdamKeys[] = {"lr", "beta1", "beta2", "eps", "weight_decay"};

AdamOptions adam_options_from(const StateDict& state, size_t group, const char* who) {
  auto key = [group](const char* name) {
    return group == 0 ? std::string(name) : "group." + std::to_string(group) + "." + name;
  };
  AdamOptions options;
  options.lr = expect_real(state, key("lr"), who);
  options.beta1 = expect_real(state, key("beta1"), who);
  options.beta2 = expect_real(state, key("beta2"), who);
  options.eps = expect_real(state, key("eps"), who);
  options.weight_decay = expect_real(state, key("weight_decay"), who);
  return options;
}

std::vector<ParamGroup<AdamOptions>> as_adam_groups(std::vector<ParamGroup<AdamWOptions>> groups) {
  std::vector<ParamGroup<AdamOptions>> out;
  for (auto& group : groups) out.push_back({std::move(group.parameters), group.options});
  return out;
}
}  // namespace

Adam::Adam(std::vector<Tensor> parameters, const AdamOptions& options)
    : Adam(std::vector<ParamGroup<AdamOptions>>{{std::move(parameters), options}}, false, "Adam") {}

Adam::Adam(std::vector<ParamGroup<AdamOptions>> groups) : Adam(std::move(groups), false, "Adam") {}

Adam::Adam(std::vector<ParamGroup<AdamOptions>> groups, bool decoupled, const char* name)
    : Optimizer(group_parameters(groups), group_lrs(groups), name),
      options_(group_options(groups)),
      decoupled_(decoupled),
      steps_(parameters_.size(), 0),
      exp_avg_(parameters_.size()),
      exp_avg_sq_(parameters_.size()) {
  for (const AdamOptions& options : options_) check_options(options, name);
}

AdamW::AdamW(std::vector<Tensor> parameters, const AdamWOptions& options)
    : Adam(std::vector<ParamGroup<AdamOptions>>{{std::move(parameters), options}}, true, "AdamW") {}

AdamW::AdamW(std::vector<ParamGroup<AdamWOptions>> groups)
    : Adam(as_adam_groups(std::move(groups)), true, "AdamW") {}

void Adam::step() {
  NoGrad no_grad;
  for (size_t i : parameters_with_grad()) {
    const size_t group = group_of_[i];
    AdamStep scalars;
    scalars.lr = lrs_[group];
    scalars.beta1 = options_[group].beta1;
    scalars.beta2 = options_[group].beta2;
    scalars.eps = options_[group].eps;
    scalars.weight_decay = options_[group].weight_decay;
    scalars.decoupled_weight_decay = decoupled_;
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
  for (size_t k = 0; k < options_.size(); ++k) {
    state.add_real(group_key(k, "lr"), lrs_[k]);
    state.add_real(group_key(k, "beta1"), options_[k].beta1);
    state.add_real(group_key(k, "beta2"), options_[k].beta2);
    state.add_real(group_key(k, "eps"), options_[k].eps);
    state.add_real(group_key(k, "weight_decay"), options_[k].weight_decay);
  }
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
  std::vector<std::string> known;
  for (size_t k = 0; k < options_.size(); ++k) {
    for (const char* key : kAdamKeys) known.push_back(group_key(k, key));
    check_options(adam_options_from(state, k, who.c_str()), who.c_str());
  }
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
  for (size_t k = 0; k < options_.size(); ++k) {
    options_[k] = adam_options_from(state, k, name_);
    lrs_[k] = options_[k].lr;
  }
  for (size_t i = 0; i < parameters_.size(); ++i) {
    restore_slot(state, state_name(i, "exp_avg"), parameters_[i], exp_avg_[i]);
    restore_slot(state, state_name(i, "exp_avg_sq"), parameters_[i], exp_avg_sq_[i]);
    steps_[i] = exp_avg_[i].defined() ? expect_integer(state, state_name(i, "step"), name_) : 0;
  }
}

}  // namespace tg::optim
