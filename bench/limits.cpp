// bench/limits: this machine's single-thread limits as Google Benchmarks (DESIGN §7), with the same
// kernels that machine_limits() times (bench/support/limits.hpp). Each benchmark also reports its
// fraction of the limit measured at startup (printed in the context); ~1.0 means both agree.
//
//   BM_Limits_FmaPeak      GFLOP/s of independent vector FMA chains
//   BM_Limits_Exp/Exp2     simd::exp / exp2 over 4096 L1-resident floats: items_per_second =
//                          elements/s; ns_per_element = its inverse in ns
//   BM_Limits_MemoryRead   streaming read of 256 MiB, GB/s
//   BM_Limits_MemoryTriad  STREAM triad over three ~85 MiB arrays, GB/s (12 bytes per element)

#include <cstdint>

#include "support/counters.hpp"
#include "support/limits.hpp"
#include "support/main.hpp"

namespace {

using tokenmix::bench::machine_limits;
namespace tbd = tokenmix::bench::detail;
using Arch = tokenmix::simd::default_arch;

void BM_Limits_FmaPeak(benchmark::State& state) {
  const std::int64_t iterations = state.range(0);
  for (auto _ : state) tbd::sink = tbd::fma_peak_kernel<Arch>(iterations);
  const double flops = tbd::fma_flops_per_iteration<Arch> * static_cast<double>(iterations);
  tokenmix::bench::set_rates(state, 0, flops, 0);
  tokenmix::bench::set_bound_fraction(state, "fma_bound", flops / (machine_limits().fma_gflops * 1e9));
}
BENCHMARK(BM_Limits_FmaPeak)->ArgName("rounds")->Arg(1 << 16);

template <bool Exp2>
void BM_Limits_ExpImpl(benchmark::State& state) {
  const auto in = tbd::exp_probe_input();
  tbd::aligned_vector<float> out(in.size());
  constexpr std::int64_t kPasses = 16;
  for (auto _ : state) tbd::exp_kernel<Exp2, Arch>(in.data(), out.data(), in.size(), kPasses);
  const double elements = static_cast<double>(in.size() * kPasses);
  tokenmix::bench::set_rates(state, elements, 0, 0);
  // ns per element: value * iterations / seconds, inverted, in ns.
  state.counters["ns_per_element"] = benchmark::Counter(
      elements * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  const auto& lim = machine_limits();
  const double ns = Exp2 ? lim.exp2_ns_per_element : lim.exp_ns_per_element;
  tokenmix::bench::set_bound_fraction(state, Exp2 ? "exp2_bound" : "exp_bound", elements * ns * 1e-9);
}
void BM_Limits_Exp(benchmark::State& state) { BM_Limits_ExpImpl<false>(state); }
void BM_Limits_Exp2(benchmark::State& state) { BM_Limits_ExpImpl<true>(state); }
BENCHMARK(BM_Limits_Exp);
BENCHMARK(BM_Limits_Exp2);

// One 256 MiB buffer for both memory benchmarks (allocated and paged in once).
tbd::aligned_vector<float>& memory_buffer() {
  static tbd::aligned_vector<float> buffer(tbd::kMemoryProbeFloats, 0.0f);
  return buffer;
}

void BM_Limits_MemoryRead(benchmark::State& state) {
  auto& buffer = memory_buffer();
  for (auto _ : state) tbd::sink = tbd::read_kernel<Arch>(buffer.data(), buffer.size());
  const double bytes = static_cast<double>(buffer.size() * sizeof(float));
  tokenmix::bench::set_rates(state, 0, 0, bytes);
  tokenmix::bench::set_bound_fraction(state, "read_bound", bytes / (machine_limits().read_gbps * 1e9));
}
BENCHMARK(BM_Limits_MemoryRead)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Limits_MemoryTriad(benchmark::State& state) {
  auto& buffer = memory_buffer();
  const tbd::TriadArrays t = tbd::triad_arrays(buffer.data(), buffer.size());
  for (auto _ : state) tbd::triad_kernel<Arch>(t.a, t.b, t.c, 0.5f, t.n);
  const double bytes = 3.0 * sizeof(float) * static_cast<double>(t.n);
  tokenmix::bench::set_rates(state, 0, 0, bytes);
  tokenmix::bench::set_bound_fraction(state, "triad_bound", bytes / (machine_limits().triad_gbps * 1e9));
}
BENCHMARK(BM_Limits_MemoryTriad)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
