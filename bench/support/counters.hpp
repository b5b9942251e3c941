#pragma once
// Counters shared by every Google Benchmark (1.7.1) of tokenmix (DESIGN §7). Call them after the
// `for (auto _ : state)` loop, with per-iteration amounts:
//
//   for (auto _ : state) { kernel(...); }
//   tokenmix::bench::set_rates(state, /*items=*/B * L, /*flops=*/flops, /*bytes=*/bytes);
//   const auto& lim = tokenmix::bench::machine_limits();
//   tokenmix::bench::set_bound_fraction(state, "exp_bound", E * lim.exp_ns_per_element * 1e-9);
//
// Rates are per second of the time Google Benchmark measures: CPU time of the benchmark's thread by
// default, wall time with ->UseRealTime() (use it whenever the kernel runs on a thread pool, or the
// pool's threads are not counted) or the manual time with ->UseManualTime().

#include <benchmark/benchmark.h>

#include <chrono>
#include <ctime>
#include <initializer_list>
#include <utility>

namespace tokenmix::bench {

// items, flops, bytes: work of ONE iteration of the benchmark loop.
//   items  -> SetItemsProcessed(items * iterations): Google Benchmark prints items_per_second
//             (tokens/s for the ops: pass B * L).
//   flops  -> counter "GFLOP", printed as "GFLOP=12.3/s": GFLOP per second (an FMA counts 2).
//   bytes  -> counter "GB", printed as "GB=45.6/s": GB (1e9 bytes) per second of compulsory
//             traffic (inputs read once + outputs written once).
// A zero amount adds no counter.
inline void set_rates(benchmark::State& state, double items, double flops, double bytes) {
  if (items > 0)
    state.SetItemsProcessed(static_cast<int64_t>(items * static_cast<double>(state.iterations())));
  // kIsIterationInvariantRate: value * iterations / seconds.
  if (flops > 0)
    state.counters["GFLOP"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (bytes > 0)
    state.counters["GB"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Adds the counter `name` = bound time / measured time per iteration: 1.0 means the kernel runs at
// the machine limit the bound comes from (see bench/support/limits.hpp), 0.25 at a quarter of it.
// bound_seconds_per_iteration: the time one iteration would take at that limit.
// Google Benchmark finishes a kIsIterationInvariantRate counter as value * iterations / seconds,
// so value = bound seconds gives bound * iterations / seconds = bound / (seconds per iteration).
// (The console appends "/s" to every rate counter: "exp_bound=0.85/s" is the dimensionless 0.85;
// tiny values get SI prefixes, "500u/s" = 0.0005. JSON output has the plain number.)
inline void set_bound_fraction(benchmark::State& state, const char* name, double bound_seconds_per_iteration) {
  state.counters[name] = benchmark::Counter(bound_seconds_per_iteration, benchmark::Counter::kIsIterationInvariantRate);
}

// Wall-clock counterparts, for benchmarks whose work runs on a thread pool (the calling thread's
// CPU time, which Google Benchmark's rates use, misses the pool threads and the time spent waiting
// for them). Start a WallTimer just before the benchmark loop, then, after it:
//   bench::set_wall_counters(state, timer.seconds(), items, flops, bytes, {{"bw_bound", bound_s}});
// Counters are plain numbers over the wall time of all iterations: "items/s", "GFLOP/s", "GB/s",
// and each bound fraction = bound seconds per iteration / measured wall seconds per iteration.
class WallTimer {
 public:
  WallTimer() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_;
};

// CPU seconds of the calling thread since construction (WallTimer's CPU counterpart): ratios between
// single-threaded cases measured with it exclude the time other processes hold the core, which the
// wall clock counts on a shared machine.
class ThreadCpuTimer {
 public:
  ThreadCpuTimer() : start_(now()) {}
  double seconds() const { return now() - start_; }

 private:
  static double now() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  }
  double start_;
};

inline void set_wall_counters(benchmark::State& state, double wall_seconds, double items, double flops, double bytes,
                              std::initializer_list<std::pair<const char*, double>> bounds = {}) {
  const double it = static_cast<double>(state.iterations()), per_iteration = wall_seconds / it;
  if (items > 0) state.counters["items/s"] = items / per_iteration;
  if (flops > 0) state.counters["GFLOP/s"] = flops / per_iteration * 1e-9;
  if (bytes > 0) state.counters["GB/s"] = bytes / per_iteration * 1e-9;
  for (const auto& [name, bound_seconds] : bounds) state.counters[name] = bound_seconds / per_iteration;
}

// Runs call() in the benchmark loop and sets tokens_per_s and ns_per_token for `tokens` per call;
// returns the CPU seconds of one call (ThreadCpuTimer: for the single-threaded ratios between cases).
template <class Call>
double time_tokens(benchmark::State& state, double tokens, Call&& call) {
  const ThreadCpuTimer timer;
  for (auto _ : state) {
    call();
    benchmark::ClobberMemory();
  }
  const double seconds = timer.seconds() / double(state.iterations());
  state.counters["tokens_per_s"] = tokens / seconds;
  state.counters["ns_per_token"] = seconds * 1e9 / tokens;
  return seconds;
}

}  // namespace tokenmix::bench
