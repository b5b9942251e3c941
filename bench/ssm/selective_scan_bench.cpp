// Benchmarks of ssm::selective_scan against its oracle and the machine limit (bench/limits).
//
//   BM_SelectiveScan_Simd/B:1/L:2048/D:1536/N:16       the SIMD kernel, calling thread only
//   BM_SelectiveScan_SimdPool2/B:1/L:2048/D:1536/N:16  the same op given a 2-thread tokenmix::ThreadPool
//   BM_SelectiveScan_Reference/B:1/L:512/D:1536/N:16   the oracle (plain loops, float accumulation)
//   BM_SelectiveScanStates_Simd/B:1/L:3136/D:192/N:16  ssm::selective_scan_states (also writes every
//                                                      state, [B, L, D, N]; Spatial-Mamba stage 1 at
//                                                      56x56, d_inner 192; N = 16 and its N = 1)
//   BM_SelectiveScan_Simd/B:1/L:3136/D:192/N:16        the plain scan on those shapes, for the ratio
//
// items_per_second = B·L·D (token-channels per second). Counters:
//   exp_bound   the time of the exponentials the math requires, at this machine's measured
//               simd::exp throughput (bench/limits), over the measured time (1.0 = as fast as the exps
//               alone): per token-channel N decays exp(dt·A), one exp in softplus(delta + bias) and
//               one in the gate silu(z) -- the Mamba configuration benchmarked here.
//   exp2_bound  the same with the N decays at simd::exp2 throughput (the kernel computes them as
//               exp2(dt·A·log2 e), one multiply cheaper than exp): the stricter bound.
//   GFLOP/s     7 flops per (t, d, n) (dt·A, decay·h, dt·x·B, h·C accumulate), exps not counted.
//   GB/s        u, delta, z read and out written once, B and C per token (+ the states written,
//               B·L·D·N floats, for the states benchmark).

#include <benchmark/benchmark.h>

#include <random>

#include "support/counters.hpp"
#include "support/limits.hpp"
#include "support/scan_inputs.hpp"
#include "support/main.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/reference/selective_scan.hpp"
#include "tokenmix/ssm/selective_scan.hpp"

namespace {

using namespace tokenmix;

using bench::ScanInputs;


template <class Run>
void run_scan_benchmark(benchmark::State& state, Run&& run) {
  const Index batch = state.range(0), length = state.range(1), channels = state.range(2), n_state = state.range(3);
  const ScanInputs in(batch, length, channels, n_state);
  Tensor<float, 3> out(batch, length, channels), last(batch, channels, n_state);
  out.setZero(), last.setZero();  // touched before timing: a single timed iteration must not count page faults
  TensorView<float, 3> out_view(out.data(), out.dimensions()), last_view(last.data(), last.dimensions());
  for (auto _ : state) {
    run(in, out_view, last_view);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  bench::set_scan_counters(state, batch, length, channels, n_state);
}

void BM_SelectiveScan_Simd(benchmark::State& state) {
  run_scan_benchmark(state, [](const ScanInputs& in, TensorView<float, 3>& out, TensorView<float, 3>& last) {
    ssm::selective_scan(in.u, in.delta, in.A, in.B, in.C, in.options(), out, &last);
  });
}

void BM_SelectiveScan_SimdPool2(benchmark::State& state) {
  static ThreadPool pool(2);
  run_scan_benchmark(state, [](const ScanInputs& in, TensorView<float, 3>& out, TensorView<float, 3>& last) {
    ssm::selective_scan(in.u, in.delta, in.A, in.B, in.C, in.options(pool.device()), out, &last);
  });
}

void BM_SelectiveScan_Reference(benchmark::State& state) {
  run_scan_benchmark(state, [](const ScanInputs& in, TensorView<float, 3>& out, TensorView<float, 3>& last) {
    ref::selective_scan<float>(in.u, in.delta, in.A, in.B, in.C, in.options(), out, &last);
  });
}

void BM_SelectiveScanStates_Simd(benchmark::State& state) {
  const Index batch = state.range(0), length = state.range(1), channels = state.range(2), n_state = state.range(3);
  const ScanInputs in(batch, length, channels, n_state);
  Tensor<float, 3> out(batch, length, channels), last(batch, channels, n_state);
  Tensor<float, 4> states(batch, length, channels, n_state);
  out.setZero(), last.setZero(), states.setZero();  // touched before timing
  TensorView<float, 3> out_view(out.data(), out.dimensions()), last_view(last.data(), last.dimensions());
  TensorView<float, 4> states_view(states.data(), states.dimensions());
  for (auto _ : state) {
    ssm::selective_scan_states(in.u, in.delta, in.A, in.B, in.C, in.options(), out_view, states_view, &last_view);
    benchmark::DoNotOptimize(states.data());
    benchmark::ClobberMemory();
  }
  bench::set_scan_counters(state, batch, length, channels, n_state, 1.0, /*with_states=*/true);
}

void states_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"B", "L", "D", "N"});
  for (long n : {16, 1}) b->Args({1, 3136, 192, n});
  b->Unit(benchmark::kMillisecond);
}

void scan_shapes(benchmark::internal::Benchmark* b, std::initializer_list<long> lengths) {
  b->ArgNames({"B", "L", "D", "N"});
  for (long length : lengths) b->Args({1, length, 1536, 16});
  // No UseRealTime(): it would append "/real_time" to the tracked names. "Time" is wall time anyway;
  // rates use the calling thread's CPU time, which for SimdPool2 is within a few % of wall time
  // because the caller computes one of the two ranges itself.
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_SelectiveScan_Simd)->Apply([](auto* b) { scan_shapes(b, {512, 2048, 8192}); });
BENCHMARK(BM_SelectiveScan_SimdPool2)->Apply([](auto* b) { scan_shapes(b, {512, 2048, 8192}); });
BENCHMARK(BM_SelectiveScan_Reference)->Apply([](auto* b) { scan_shapes(b, {512, 2048}); });
BENCHMARK(BM_SelectiveScanStates_Simd)->Apply(states_shapes);
BENCHMARK(BM_SelectiveScan_Simd)->Apply(states_shapes);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
