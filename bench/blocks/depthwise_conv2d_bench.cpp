// Benchmarks of blocks::depthwise_conv2d (channels-last, odd K, 'same' padding) against its oracle
// and the machine's memory bandwidth, at A2Mamba-Nano's shapes (stage 1-3 images, 3x3 and 5x5).
//
//   BM_DepthwiseConv2d_Simd/H:<H>/W:<W>/C:<C>/K:<K>   56x56x32, 28x28x64, 14x14x128; K 3, 5
//   BM_DepthwiseConv2d_Reference/H:28/W:28/C:64/K:5   the oracle (double)
//
// Counters (CPU time): GFLOP/s (2·K² per output element, bias and SiLU not counted), GB/s (x read and
// out written once), bw_bound (those bytes at bench/limits' triad bandwidth / time), fma_bound (the
// flops at the FMA peak / time), vs_reference (28x28x64 K 5) this time / the oracle's.

#include <benchmark/benchmark.h>

#include <random>

#include "support/counters.hpp"
#include "support/limits.hpp"
#include "support/main.hpp"
#include "tokenmix/blocks/depthwise_conv2d.hpp"
#include "tokenmix/reference/depthwise_conv2d.hpp"

namespace {

using namespace tokenmix;

double& reference_seconds() {
  static double s = 0;
  return s;
}

template <class Run>
double run_case(benchmark::State& state, Run&& run) {
  const Index H = state.range(0), W = state.range(1), C = state.range(2), K = state.range(3);
  Tensor<float, 4> x(1, H, W, C), out(1, H, W, C);
  Tensor<float, 3> w(C, K, K);
  Tensor<float, 1> b(C);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (auto* t : {&x})
    for (Index i = 0; i < t->size(); ++i) t->data()[i] = normal(rng);
  for (Index i = 0; i < w.size(); ++i) w.data()[i] = 0.2f * normal(rng);
  for (Index i = 0; i < b.size(); ++i) b.data()[i] = 0.1f * normal(rng);
  out.setZero();
  blocks::DepthwiseConv2dOptions o;
  o.bias = b, o.activation_silu = true;
  TensorView<float, 4> out_v(out.data(), out.dimensions());
  const double elements = double(H * W * C);
  const double seconds = bench::time_tokens(state, double(H * W), [&] {
    run(x, w, o, out_v);
    benchmark::DoNotOptimize(out.data());
  });
  const double flops = 2.0 * double(K * K) * elements, bytes = 2.0 * elements * sizeof(float);
  state.counters["GFLOP/s"] = flops / seconds * 1e-9;
  state.counters["GB/s"] = bytes / seconds * 1e-9;
  state.counters["bw_bound"] = bytes / (bench::machine_limits().triad_gbps * 1e9) / seconds;
  state.counters["fma_bound"] = flops / (bench::machine_limits().fma_gflops * 1e9) / seconds;
  return seconds;
}

void BM_DepthwiseConv2d_Reference(benchmark::State& state) {
  reference_seconds() = run_case(state, [](const auto& x, const auto& w, const auto& o, auto& out) {
    ref::depthwise_conv2d<double>(x, w, o, out);
  });
}

void BM_DepthwiseConv2d_Simd(benchmark::State& state) {
  const double seconds = run_case(state, [](const auto& x, const auto& w, const auto& o, auto& out) {
    blocks::depthwise_conv2d(x, w, o, out);
  });
  if (state.range(0) == 28 && state.range(2) == 64 && state.range(3) == 5 && reference_seconds() > 0)
    state.counters["vs_reference"] = seconds / reference_seconds();
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"H", "W", "C", "K"})->Unit(benchmark::kMicrosecond);
  for (const auto& [hw, c] : {std::pair<Index, Index>{56, 32}, {28, 64}, {14, 128}})
    for (Index K : {3, 5}) b->Args({hw, hw, c, K});
}

BENCHMARK(BM_DepthwiseConv2d_Reference)->ArgNames({"H", "W", "C", "K"})->Args({28, 28, 64, 5})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DepthwiseConv2d_Simd)->Apply(shapes);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
