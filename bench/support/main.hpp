#pragma once
// TOKENMIX_BENCHMARK_MAIN(): the main() of every tokenmix benchmark executable. Like
// BENCHMARK_MAIN(), plus: this machine's limits (bench/support/limits.hpp) are measured once BEFORE
// any benchmark runs (~1-2 s, single-threaded, nothing else running) and recorded in the output's
// context (console header, JSON "context") as fma_gflops, exp2_ns_per_element, exp_ns_per_element,
// read_gbps, read2_gbps, triad_gbps, with simd_arch (the arch they were measured with).
//
//   #include "support/main.hpp"
//   BENCHMARK(BM_SelectiveScan_Simd)->...;
//   TOKENMIX_BENCHMARK_MAIN();

#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>

#include "support/counters.hpp"
#include "support/limits.hpp"

namespace tokenmix::bench {

inline std::string format_limit(double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", value);
  return buf;
}

// Measures machine_limits() (if not done yet) and adds them to the benchmark context.
inline void add_machine_limits_context() {
  const MachineLimits& m = machine_limits();
  benchmark::AddCustomContext("simd_arch", simd::default_arch::name());
  benchmark::AddCustomContext("fma_gflops", format_limit(m.fma_gflops));
  benchmark::AddCustomContext("exp2_ns_per_element", format_limit(m.exp2_ns_per_element));
  benchmark::AddCustomContext("exp_ns_per_element", format_limit(m.exp_ns_per_element));
  benchmark::AddCustomContext("read_gbps", format_limit(m.read_gbps));
  benchmark::AddCustomContext("read2_gbps", format_limit(m.read2_gbps));
  benchmark::AddCustomContext("triad_gbps", format_limit(m.triad_gbps));
}

}  // namespace tokenmix::bench

#define TOKENMIX_BENCHMARK_MAIN()                                       \
  int main(int argc, char** argv) {                                     \
    char arg0_default[] = "benchmark";                                  \
    char* args_default = arg0_default;                                  \
    if (!argv) {                                                        \
      argc = 1;                                                         \
      argv = &args_default;                                             \
    }                                                                   \
    ::benchmark::Initialize(&argc, argv);                               \
    if (::benchmark::ReportUnrecognizedArguments(argc, argv)) return 1; \
    ::tokenmix::bench::add_machine_limits_context();                    \
    ::benchmark::RunSpecifiedBenchmarks();                              \
    ::benchmark::Shutdown();                                            \
    return 0;                                                           \
  }                                                                     \
  int main(int, char**)
