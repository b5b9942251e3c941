#pragma once
// Weights of the layer / model classes (hybrid.cpp, mixers.cpp): a dict {state-dict name: array}
// ('.' or '_', normalised to the C++ field names) checked key by key: a missing, unknown or
// repeated key raises ValueError naming it; keys ending in num_batches_tracked are ignored.

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"

namespace tokenmix::python {

[[noreturn]] inline void fail(const std::string& message) { throw py::value_error(message); }

// The weights of one layer, filled from a dict {state-dict name: array}.
class WeightTable {
 public:
  explicit WeightTable(std::string op) : op_(std::move(op)) {}

  // Field `name` of rank R (dims: its shape for messages). squeeze_leading: the state dict's tensor
  // has an extra leading axis of extent 1 that the C++ field drops (accepted with or without it).
  template <int R>
  void add(const std::string& name, Tensor<float, R>& target, const char* dims, bool required = true,
           bool squeeze_leading = false) {
    const std::string op = op_;
    Entry e;
    e.dims = dims, e.required = required;
    e.set = [op, name, &target, dims, squeeze_leading](const py::handle& obj) {
      py::object o = py::reinterpret_borrow<py::object>(obj);
      if (squeeze_leading && py::isinstance<py::array>(obj)) {
        const py::array raw = py::reinterpret_borrow<py::array>(obj);
        if (raw.ndim() == R + 1 && raw.shape(0) == 1) o = raw[py::int_(0)];
      }
      const Array a = as_array<R>(op.c_str(), name.c_str(), o, dims);
      target = Tensor<float, R>(view<R>(a));
    };
    order_.push_back(name);
    entries_.emplace(name, std::move(e));
  }
  // An optional C++ field that this configuration requires (e.g. a bias under use_bias).
  template <int R>
  void add(const std::string& name, std::optional<Tensor<float, R>>& target, const char* dims) {
    target.emplace();
    add(name, *target, dims);
  }
  // A state-dict name (normalised) that stands for field `to`.
  void alias(const std::string& from, const std::string& to) { aliases_[from] = to; }

  void load(const py::handle& weights) {
    if (!py::isinstance<py::dict>(weights))
      fail(op_ + ": weights must be a dict {name: array} (got " + std::string(py::str(py::type::of(weights))) + ")");
    for (const auto& item : py::reinterpret_borrow<py::dict>(weights)) {
      if (!py::isinstance<py::str>(item.first)) fail(op_ + ": weights keys must be strings");
      const std::string given = item.first.cast<std::string>();
      std::string key = given;
      std::replace(key.begin(), key.end(), '.', '_');
      const std::string counter = "num_batches_tracked";
      if (key.size() >= counter.size() && key.compare(key.size() - counter.size(), counter.size(), counter) == 0) continue;
      if (const auto a = aliases_.find(key); a != aliases_.end()) key = a->second;
      const auto it = entries_.find(key);
      if (it == entries_.end()) {
        std::string expected;
        for (const std::string& n : order_) expected += (expected.empty() ? "" : ", ") + n;
        fail(op_ + ": unknown weight '" + given + "' for this configuration (expected: " + expected + ")");
      }
      if (it->second.seen) fail(op_ + ": weight '" + key + "' is given twice (as '" + given + "' and another spelling)");
      it->second.set(item.second);
      it->second.seen = true;
    }
    for (const std::string& n : order_) {
      const Entry& e = entries_.at(n);
      if (e.required && !e.seen) fail(op_ + ": missing weight '" + n + "' " + e.dims);
    }
  }
  bool given(const std::string& name) const { return entries_.at(name).seen; }

 private:
  struct Entry {
    std::string dims;
    bool required = true, seen = false;
    std::function<void(const py::handle&)> set;
  };
  std::string op_;
  std::map<std::string, Entry> entries_;
  std::vector<std::string> order_;
  std::map<std::string, std::string> aliases_;
};

}  // namespace tokenmix::python
