// Benchmarks of ssm::local_bidirectional_scan (LBMamba) against its oracle, the forward selective
// scan on the same shape, and a forward + backward pair of selective scans (what an unfused
// bidirectional layer costs), all in one executable so the ratios come from the same run.
//
//   BM_LocalBidirectionalScan_Simd/B:1/L:2048/D:1536/N:16/M:8     the fused kernel (M = 4, 8, 16)
//   BM_SelectiveScan_Simd/B:1/L:2048/D:1536/N:16                  the forward scan (baseline)
//   BM_SelectiveScanForwardBackward_Simd/B:1/L:2048/D:1536/N:16   two forward scans (the 2x pair)
//   BM_LocalBidirectionalScan_Reference/B:1/L:256/D:1536/N:16/M:8 the oracle (float accumulation)
//
// items_per_second = B·L·D (token-channels per second). Counters as bench/ssm/selective_scan_bench.cpp
// (exp_bound, exp2_bound: the forward scan's exps, which the fused kernel does not add to), plus
//   vs_forward  on the Simd LB benchmarks: time of the LB scan / time of the forward scan on the
//               same inputs, measured after the timed loop by alternating the two 15 times in
//               thread CPU time, the median of the 15 ratios (support/paired.hpp). Target at
//               M = 8: <= 1.25 (an unfused forward + backward pair is 2).

#include <benchmark/benchmark.h>

#include <random>

#include "support/counters.hpp"
#include "support/limits.hpp"
#include "support/scan_inputs.hpp"
#include "support/main.hpp"
#include "support/paired.hpp"
#include "tokenmix/reference/local_bidirectional_scan.hpp"
#include "tokenmix/ssm/local_bidirectional_scan.hpp"
#include "tokenmix/ssm/selective_scan.hpp"

namespace {

using namespace tokenmix;

using bench::ScanInputs;


struct Buffers {
  Tensor<float, 3> out, last;
  TensorView<float, 3> out_view, last_view;
  Buffers(Index batch, Index length, Index channels, Index n_state)
      : out(batch, length, channels), last(batch, channels, n_state), out_view(out.data(), out.dimensions()),
        last_view(last.data(), last.dimensions()) {}
};

void forward(const ScanInputs& in, Buffers& b) {
  ssm::selective_scan(in.u, in.delta, in.A, in.B, in.C, in.options(), b.out_view, &b.last_view);
}

// CPU seconds of the calling thread (the scans run on it): less disturbed than wall time on a
// shared machine.
void BM_LocalBidirectionalScan_Simd(benchmark::State& state) {
  const Index batch = state.range(0), length = state.range(1), channels = state.range(2), n_state = state.range(3);
  const Index window = state.range(4);
  const ScanInputs in(batch, length, channels, n_state);
  Buffers buf(batch, length, channels, n_state);
  auto lb = [&] {
    ssm::local_bidirectional_scan(in.u, in.delta, in.A, in.B, in.C, in.options(), window, buf.out_view, &buf.last_view);
    benchmark::DoNotOptimize(buf.out.data());
    benchmark::ClobberMemory();
  };
  for (auto _ : state) lb();
  bench::set_scan_counters(state, batch, length, channels, n_state, 1.0);
  // vs_forward: LB and the forward scan alternately (support/paired.hpp).
  state.counters["vs_forward"] = bench::paired_ratio(15, lb, [&] {
                                   forward(in, buf);
                                   benchmark::DoNotOptimize(buf.out.data());
                                 }).ratio;
}

void BM_SelectiveScan_Simd(benchmark::State& state) {
  const Index batch = state.range(0), length = state.range(1), channels = state.range(2), n_state = state.range(3);
  const ScanInputs in(batch, length, channels, n_state);
  Buffers buf(batch, length, channels, n_state);
  for (auto _ : state) {
    forward(in, buf);
    benchmark::DoNotOptimize(buf.out.data());
    benchmark::ClobberMemory();
  }
  bench::set_scan_counters(state, batch, length, channels, n_state, 1.0);
}

// Two forward scans per iteration: the cost of an unfused forward + backward (flipped) pair.
void BM_SelectiveScanForwardBackward_Simd(benchmark::State& state) {
  const Index batch = state.range(0), length = state.range(1), channels = state.range(2), n_state = state.range(3);
  const ScanInputs in(batch, length, channels, n_state);
  Buffers buf(batch, length, channels, n_state), buf2(batch, length, channels, n_state);
  for (auto _ : state) {
    forward(in, buf);
    forward(in, buf2);
    benchmark::DoNotOptimize(buf.out.data());
    benchmark::DoNotOptimize(buf2.out.data());
    benchmark::ClobberMemory();
  }
  bench::set_scan_counters(state, batch, length, channels, n_state, 2.0);
}

void BM_LocalBidirectionalScan_Reference(benchmark::State& state) {
  const Index batch = state.range(0), length = state.range(1), channels = state.range(2), n_state = state.range(3);
  const Index window = state.range(4);
  const ScanInputs in(batch, length, channels, n_state);
  Buffers buf(batch, length, channels, n_state);
  for (auto _ : state) {
    ref::local_bidirectional_scan<float>(in.u, in.delta, in.A, in.B, in.C, in.options(), window, buf.out_view,
                                         &buf.last_view);
    benchmark::DoNotOptimize(buf.out.data());
    benchmark::ClobberMemory();
  }
  bench::set_scan_counters(state, batch, length, channels, n_state, 1.0);
}

BENCHMARK(BM_SelectiveScan_Simd)->ArgNames({"B", "L", "D", "N"})->Args({1, 2048, 1536, 16})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LocalBidirectionalScan_Simd)
    ->ArgNames({"B", "L", "D", "N", "M"})
    ->Args({1, 2048, 1536, 16, 4})
    ->Args({1, 2048, 1536, 16, 8})
    ->Args({1, 2048, 1536, 16, 16})
    ->Args({1, 196, 384, 16, 8})  // LBVim-Tiny: 196 patches (no cls token), d 192 x expand 2, M = 8
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SelectiveScanForwardBackward_Simd)
    ->ArgNames({"B", "L", "D", "N"})
    ->Args({1, 2048, 1536, 16})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LocalBidirectionalScan_Reference)
    ->ArgNames({"B", "L", "D", "N", "M"})
    ->Args({1, 256, 1536, 16, 8})
    ->Unit(benchmark::kMillisecond);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
