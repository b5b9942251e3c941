// Benchmarks of ssm::causal_conv1d (prefill) and ssm::causal_conv1d_update (decode step) against
// their oracles and the machine's memory bandwidth (bench/limits).
//
//   BM_CausalConv1d_Simd/B:1/L:2048/D:1536/K:4         the SIMD kernel, calling thread only
//   BM_CausalConv1d_Reference/B:1/L:2048/D:1536/K:4    the oracle (plain loops, float accumulation)
//   BM_CausalConv1dUpdate_Simd/B:1/D:1536/K:4          one decode step (B:8 too)
//   BM_CausalConv1dUpdate_Reference/B:1/D:1536/K:4
//
// Mamba's configuration: bias and SiLU on, an initial state. items_per_second = B·L (tokens/s).
// Counters:
//   GFLOP/s    2·K flops per token-channel (the taps), activation not counted.
//   GB/s       x read and out written once (the state and weights are negligible at this L).
//   bw_bound   (x + out bytes) / triad_gbps over the measured time: 1.0 = as fast as this machine
//              streams one read and one write (the op does K FMAs per 8 bytes: memory-bound).
//              The step reports the same with its conv_state read + written, x read, out written.

#include <benchmark/benchmark.h>

#include <random>

#include "support/counters.hpp"
#include "support/limits.hpp"
#include "support/main.hpp"
#include "tokenmix/reference/causal_conv1d.hpp"
#include "tokenmix/ssm/causal_conv1d.hpp"

namespace {

using namespace tokenmix;

struct ConvInputs {
  Tensor<float, 3> x, h0;  // [B, L, D], [B, D, K-1]
  Tensor<float, 2> w;      // [D, K]
  Tensor<float, 1> bias;   // [D]
  ConvInputs(Index batch, Index length, Index channels, Index K)
      : x(batch, length, channels), h0(batch, channels, K - 1), w(channels, K), bias(channels) {
    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.f, 1.f);
    for (auto* t : {&x, &h0})
      for (Index i = 0; i < t->size(); ++i) t->data()[i] = normal(rng);
    for (Index i = 0; i < w.size(); ++i) w.data()[i] = 0.3f * normal(rng);
    for (Index i = 0; i < bias.size(); ++i) bias.data()[i] = 0.1f * normal(rng);
  }
  ssm::CausalConv1dOptions options(bool with_initial = true) const {
    ssm::CausalConv1dOptions o;
    o.bias = bias, o.activation_silu = true;
    if (with_initial) o.initial_state = h0;
    return o;
  }
};

void set_counters(benchmark::State& state, double token_channels, double tokens, Index K, double bytes) {
  bench::set_rates(state, tokens, 2.0 * double(K) * token_channels, bytes);
  bench::set_bound_fraction(state, "bw_bound", bytes / (bench::machine_limits().triad_gbps * 1e9));
}

template <class Run>
void run_conv_benchmark(benchmark::State& state, Run&& run) {
  const Index batch = state.range(0), length = state.range(1), channels = state.range(2), K = state.range(3);
  const ConvInputs in(batch, length, channels, K);
  Tensor<float, 3> out(batch, length, channels), fin(batch, channels, K - 1);
  TensorView<float, 3> out_view(out.data(), out.dimensions()), fin_view(fin.data(), fin.dimensions());
  for (auto _ : state) {
    run(in, out_view, fin_view);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double tc = double(batch) * double(length) * double(channels);
  set_counters(state, tc, double(batch * length), K, 2.0 * tc * sizeof(float));
}

void BM_CausalConv1d_Simd(benchmark::State& state) {
  run_conv_benchmark(state, [](const ConvInputs& in, TensorView<float, 3>& out, TensorView<float, 3>& fin) {
    ssm::causal_conv1d(in.x, in.w, in.options(), out, &fin);
  });
}
void BM_CausalConv1d_Reference(benchmark::State& state) {
  run_conv_benchmark(state, [](const ConvInputs& in, TensorView<float, 3>& out, TensorView<float, 3>& fin) {
    ref::causal_conv1d<float>(in.x, in.w, in.options(), out, &fin);
  });
}

template <class Step>
void run_update_benchmark(benchmark::State& state, Step&& step) {
  const Index batch = state.range(0), channels = state.range(1), K = state.range(2);
  const ConvInputs in(batch, 1, channels, K);
  Tensor<float, 2> xt(batch, channels), out(batch, channels);
  for (Index i = 0; i < xt.size(); ++i) xt.data()[i] = in.x.data()[i];
  Tensor<float, 3> conv_state = in.h0;
  TensorView<float, 3> sv(conv_state.data(), conv_state.dimensions());
  TensorView<float, 2> ov(out.data(), out.dimensions());
  const auto o = in.options(false);
  for (auto _ : state) {
    step(xt, sv, in.w, o, ov);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double tc = double(batch) * double(channels);
  set_counters(state, tc, double(batch), K, tc * sizeof(float) * (2.0 + 2.0 * double(K - 1)));
}
void BM_CausalConv1dUpdate_Simd(benchmark::State& state) {
  run_update_benchmark(state, [](auto& x, auto& s, auto& w, auto& o, auto& y) { ssm::causal_conv1d_update(x, s, w, o, y); });
}
void BM_CausalConv1dUpdate_Reference(benchmark::State& state) {
  run_update_benchmark(state, [](auto& x, auto& s, auto& w, auto& o, auto& y) {
    ref::causal_conv1d_update<float>(x, s, w, o, y);
  });
}

void conv_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"B", "L", "D", "K"})->Args({1, 2048, 1536, 4})->Unit(benchmark::kMicrosecond);
}
void update_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"B", "D", "K"})->Args({1, 1536, 4})->Args({8, 1536, 4})->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_CausalConv1d_Simd)->Apply(conv_shapes);
BENCHMARK(BM_CausalConv1d_Reference)->Apply(conv_shapes);
BENCHMARK(BM_CausalConv1dUpdate_Simd)->Apply(update_shapes);
BENCHMARK(BM_CausalConv1dUpdate_Reference)->Apply(update_shapes);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
