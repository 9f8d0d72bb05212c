// src/io/state_dict.cpp — StateDict and the checks every load_state_dict shares.
#include "tapegrad/state_dict.h"

#include <algorithm>

#include "tapegrad/error.h"

namespace tg {

void StateDict::add(const std::string& name, const Tensor& tensor) {
  check(!name.empty(), "StateDict", "an entry needs a name");
  check(tensor.defined(), "StateDict", "entry '", name, "' is an undefined tensor");
  check(!contains(name), "StateDict", "entry '", name, "' is already present");
  entries_.emplace_back(name, tensor);
}

const Tensor* StateDict::find(const std::string& name) const {
  for (const Entry& entry : entries_)
    if (entry.first == name) return &entry.second;
  return nullptr;
}

StateDict StateDict::with_prefix(const std::string& prefix) const {
  StateDict out;
  for (const Entry& entry : entries_)
    if (entry.first.compare(0, prefix.size(), prefix) == 0 && entry.first.size() > prefix.size())
      out.entries_.emplace_back(entry.first.substr(prefix.size()), entry.second);
  return out;
}

void StateDict::add_all(const std::string& prefix, const StateDict& other) {
  for (const Entry& entry : other.entries_) add(prefix + entry.first, entry.second);
}

void StateDict::add_integer(const std::string& name, int64_t value) {
  Tensor t = tg::empty({}, DType::i64);
  *t.data<int64_t>() = value;  // through the pointer: f64 would round values above 2^53
  add(name, t);
}

void StateDict::add_real(const std::string& name, double value) {
  add(name, scalar(value, DType::f64));
}

// ---------------------------------------------------------------- checks

namespace {
const Tensor& expect_present(const StateDict& state, const std::string& name, const char* who) {
  const Tensor* t = state.find(name);
  check(t != nullptr, who, "the state has no entry '", name, "'");
  return *t;
}
}  // namespace

const Tensor& expect_entry(const StateDict& state, const std::string& name, const Tensor& like,
                           const char* who) {
  const Tensor& t = expect_present(state, name, who);
  check(t.shape() == like.shape() && t.dtype() == like.dtype(), who, "entry '", name, "' is ",
        t.shape(), " ", t.dtype(), ", expected ", like.shape(), " ", like.dtype());
  return t;
}

int64_t expect_integer(const StateDict& state, const std::string& name, const char* who) {
  const Tensor& t = expect_present(state, name, who);
  check(t.dtype() == DType::i64 && t.numel() == 1, who, "entry '", name,
        "' should be one i64 number, got ", t.shape(), " ", t.dtype());
  return *t.to(Device::cpu_device()).data<int64_t>();
}

double expect_real(const StateDict& state, const std::string& name, const char* who) {
  const Tensor& t = expect_present(state, name, who);
  check(t.dtype() == DType::f64 && t.numel() == 1, who, "entry '", name,
        "' should be one f64 number, got ", t.shape(), " ", t.dtype());
  return t.item();
}

void expect_no_other_entries(const StateDict& state, const std::vector<std::string>& known,
                             const char* who) {
  for (const StateDict::Entry& entry : state)
    check(std::find(known.begin(), known.end(), entry.first) != known.end(), who,
          "unexpected entry '", entry.first, "' (the state belongs to a different model or "
          "optimizer)");
}

}  // namespace tg
