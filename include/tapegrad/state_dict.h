// tapegrad/state_dict.h — StateDict: an ordered list of named tensors, the one currency of saving
// and restoring. A model's parameters ("fc1.weight"), an optimizer's moments ("state.0.exp_avg"),
// a generator's counters and a step number are all named tensors (numbers are 0-d tensors), so a
// checkpoint file needs to know how to store only one kind of thing (see checkpoint.h).
//
// Entries are handles: state_dict() of a model returns its live parameters, not copies, and
// whoever writes them out reads the current values.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/tensor.h"

namespace tg {

class StateDict {
 public:
  using Entry = std::pair<std::string, Tensor>;

  // Appends an entry; throws if the name is empty or already present.
  void add(const std::string& name, const Tensor& tensor);
  // The entry's tensor, or nullptr when there is none.
  const Tensor* find(const std::string& name) const;
  bool contains(const std::string& name) const { return find(name) != nullptr; }

  // The entries whose names start with `prefix`, with the prefix removed:
  // {"model.fc1.weight", "step"}.with_prefix("model.") == {"fc1.weight"}.
  StateDict with_prefix(const std::string& prefix) const;
  // Appends every entry of `other` with `prefix` put in front of its name.
  void add_all(const std::string& prefix, const StateDict& other);

  // Numbers stored as 0-d tensors: i64 for counters, f64 for rates.
  void add_integer(const std::string& name, int64_t value);
  void add_real(const std::string& name, double value);

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const std::vector<Entry>& entries() const { return entries_; }
  std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  std::vector<Entry>::const_iterator end() const { return entries_.end(); }

 private:
  std::vector<Entry> entries_;
};

// --- checks shared by every load_state_dict (they throw tg::Error naming `who` and the entry) ---

// The entry `name` of `state`, which must have `like`'s shape and dtype.
const Tensor& expect_entry(const StateDict& state, const std::string& name, const Tensor& like,
                           const char* who);
// A 0-d i64 / f64 entry's value.
int64_t expect_integer(const StateDict& state, const std::string& name, const char* who);
double expect_real(const StateDict& state, const std::string& name, const char* who);
// Throws when `state` has an entry that is not in `known` (a checkpoint of a different model).
void expect_no_other_entries(const StateDict& state, const std::vector<std::string>& known,
                             const char* who);

}  // namespace tg
