#pragma once
// Time ratios measured by alternation. On the shared 2-vCPU VM the speed of a core drifts by up to
// ±15% over seconds (other tenants), so two benchmark cases timed one after the other can differ by
// that much for no reason of their own. paired_ratio runs the numerator and the denominator
// alternately, `rounds` times, each on the thread's CPU clock, and returns the median of the
// per-round ratios: drift slower than one round cancels out of every ratio.
//
//   const bench::PairedRatio r = bench::paired_ratio(9, [&] { op_at_L(65536); }, [&] { 64 × op_at_L(1024); });
//   state.counters["per_token_vs_L1024"] = r.ratio;

#include <algorithm>
#include <vector>

#include "support/counters.hpp"

namespace tokenmix::bench {

struct PairedRatio {
  double ratio;                // median over rounds of numerator time / denominator time
  double numerator_seconds;    // median CPU seconds of one numerator call
  double denominator_seconds;  // median CPU seconds of one denominator call
};

namespace detail {
inline double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
}  // namespace detail

// One untimed call of each first (first-touch page faults, cold caches of the code).
template <class Numerator, class Denominator>
PairedRatio paired_ratio(int rounds, Numerator&& numerator, Denominator&& denominator) {
  numerator();
  denominator();
  std::vector<double> num, den, ratio;
  for (int r = 0; r < rounds; ++r) {
    const ThreadCpuTimer t_num;
    numerator();
    num.push_back(t_num.seconds());
    const ThreadCpuTimer t_den;
    denominator();
    den.push_back(t_den.seconds());
    ratio.push_back(num.back() / den.back());
  }
  return {detail::median_of(ratio), detail::median_of(num), detail::median_of(den)};
}

}  // namespace tokenmix::bench
