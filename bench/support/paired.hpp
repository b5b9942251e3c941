#pragma once
// Time ratios measured by alternation. On the shared 2-vCPU VM the speed of a core drifts by up to
// ±15% over seconds (other tenants), so two benchmark cases timed one after the other can differ by
// that much for no reason of their own. paired_ratio runs the numerator and the denominator
// alternately, `rounds` times, each on the thread's CPU clock, and returns the median of the
// per-round ratios of their times per call: drift slower than one round cancels out of every ratio.
// A side runs as many calls per round as make up min_round_seconds (so short calls are not timed one
// at a time, at the clock's and the noise's resolution).
//
//   const double r = bench::paired_ratio(9, [&] { op(in_65536); }, [&] { op(in_1024); }).ratio;
//   state.counters["per_token_vs_L1024"] = r * 1024.0 / 65536.0;

#include <algorithm>
#include <cmath>
#include <vector>

#include "support/counters.hpp"
#include "support/limits.hpp"

namespace tokenmix::bench {

struct PairedRatio {
  double ratio;                // median over rounds of (numerator / denominator) time per call
  double numerator_seconds;    // median CPU seconds of one numerator call
  double denominator_seconds;  // median CPU seconds of one denominator call
};

namespace detail {
inline double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// CPU seconds per call of `calls` calls of f.
template <class F>
double seconds_per_call(F& f, int calls) {
  const ThreadCpuTimer timer;
  for (int c = 0; c < calls; ++c) f();
  return timer.seconds() / calls;
}
}  // namespace detail

// One untimed call of each first (first-touch page faults, cold code), which also sizes the rounds.
template <class Numerator, class Denominator>
PairedRatio paired_ratio(int rounds, Numerator&& numerator, Denominator&& denominator,
                         double min_round_seconds = 0.02) {
  auto calls_for = [&](double seconds) {
    return static_cast<int>(std::clamp(std::ceil(min_round_seconds / std::max(seconds, 1e-9)), 1.0, 1e6));
  };
  const int num_calls = calls_for(detail::seconds_per_call(numerator, 1));
  const int den_calls = calls_for(detail::seconds_per_call(denominator, 1));
  std::vector<double> num, den, ratio;
  for (int r = 0; r < rounds; ++r) {
    num.push_back(detail::seconds_per_call(numerator, num_calls));
    den.push_back(detail::seconds_per_call(denominator, den_calls));
    ratio.push_back(num.back() / den.back());
  }
  return {detail::median_of(ratio), detail::median_of(num), detail::median_of(den)};
}

// The fraction of the FMA peak that `call` reaches (call_flops flops per call, an FMA counting 2),
// with the peak probe (limits.hpp's FMA kernel) run alternately with it by paired_ratio instead of
// once at start-up, whose reading the machine's drift over a run would otherwise carry into every
// bound fraction. Contention that slows memory more than FMAs (another tenant on the core) still
// shows: the Lightning block products read 0.53-0.68 of the peak across runs of one binary.
template <class Call>
double paired_fma_fraction(Call&& call, double call_flops) {
  using Arch = simd::default_arch;
  constexpr std::int64_t kIterations = 1 << 16;  // ~0.2 ms of FMAs per probe call
  const PairedRatio r = paired_ratio(9, call, [] { detail::sink = detail::fma_peak_kernel<Arch>(kIterations); });
  return call_flops / (detail::fma_flops_per_iteration<Arch> * double(kIterations)) / r.ratio;
}

}  // namespace tokenmix::bench
