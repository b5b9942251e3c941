#pragma once
// Per-operator wall time of a composed block or model: the blocks that accept an OpProfile
// (hybrid::A2ssm, hybrid::Mass, blocks::A2MambaBlock, blocks::A2MambaBackbone: set_profile) add the
// time of each operator call they make under the operator's name. Without a profile (the default)
// the cost is one null-pointer test per call.
//
//   OpProfile profile;  net.set_profile(&profile);  net.features(image);
//   for (const auto& [op, seconds] : profile.seconds()) ...

#include <chrono>
#include <map>
#include <string>
#include <utility>

namespace tokenmix {

class OpProfile {
 public:
  void add(const std::string& op, double seconds) { seconds_[op] += seconds; }
  const std::map<std::string, double>& seconds() const { return seconds_; }
  double total() const {
    double t = 0;
    for (const auto& entry : seconds_) t += entry.second;
    return t;
  }
  void clear() { seconds_.clear(); }

 private:
  std::map<std::string, double> seconds_;
};

namespace detail {

// Runs f, adding its wall time to profile[op] when a profile is given.
template <class F>
void timed(OpProfile* profile, const char* op, F&& f) {
  if (!profile) return static_cast<void>(std::forward<F>(f)());
  const auto start = std::chrono::steady_clock::now();
  std::forward<F>(f)();
  profile->add(op, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace detail
}  // namespace tokenmix
