// Benchmarks of attention::local_attention (sliding-window attention, SeqBoat's GAU attention) against
// its oracle and the FMA peak. SeqBoat's shapes: one head, Z = P = 64 (q/k), E = Pv = 256 (values),
// window W = 128; causal (language modelling) and bidirectional (LRA), softmax and relu².
//
//   BM_LocalAttention_Simd/L:<L>/W:128/P:64/Pv:256/causal:<0|1>/relu2:<0|1>   L 2048, 16384
//   BM_LocalAttention_Reference/L:256/W:128/P:64/Pv:256/causal:1/relu2:0       the oracle (double)
//
// Counters (CPU time of the benchmark's thread):
//   tokens_per_s, ns_per_token   L tokens
//   GFLOP/s      2·(P + Pv) per (query, key) pair inside the windows (logit and value FMAs; the
//                bias, exp and masks not counted)
//   fma_bound    those flops at bench/limits' FMA peak / time
//   per_token_vs_L2048 (L 16384) this ns_per_token / L 2048's: 1.0 when linear in L
//   vs_reference (L 256) this time / the oracle's

#include <benchmark/benchmark.h>

#include <map>
#include <random>
#include <tuple>

#include "support/counters.hpp"
#include "support/limits.hpp"
#include "support/main.hpp"
#include "tokenmix/attention/local_attention.hpp"
#include "tokenmix/reference/local_attention.hpp"

namespace {

using namespace tokenmix;
using bench::ThreadCpuTimer;

struct Inputs {
  Tensor<float, 4> q, k, v, out;
  Inputs(Index L, Index P, Index Pv) : q(1, L, 1, P), k(1, L, 1, P), v(1, L, 1, Pv), out(1, L, 1, Pv) {
    std::mt19937 rng(21);
    std::normal_distribution<float> normal(0.f, 1.f);
    for (auto* t : {&q, &k, &v})
      for (Index i = 0; i < t->size(); ++i) t->data()[i] = normal(rng);
    out.setZero();
  }
};

// Pairs (i, j) inside the windows.
double window_pairs(Index L, Index W, bool causal) {
  double pairs = 0;
  for (Index i = 0; i < L; ++i) pairs += double(std::min(i, W) + 1 + (causal ? 0 : std::min(L - 1 - i, W)));
  return pairs;
}

using Key = std::tuple<Index, Index, bool, bool>;  // L, W, causal, relu2
std::map<Key, double>& seconds_of() {  // the latest Simd time per case
  static std::map<Key, double> s;
  return s;
}
std::map<Key, double>& reference_seconds() {
  static std::map<Key, double> s;
  return s;
}

// Returns the CPU seconds per call.
template <class Run>
double run_case(benchmark::State& state, Run&& run) {
  const Index L = state.range(0), W = state.range(1), P = state.range(2), Pv = state.range(3);
  const bool causal = state.range(4) != 0, relu2 = state.range(5) != 0;
  Inputs in(L, P, Pv);
  attention::LocalAttentionOptions o;
  o.window = W, o.causal = causal;
  o.kind = relu2 ? attention::LocalAttentionKind::relu_squared : attention::LocalAttentionKind::softmax;
  TensorView<float, 4> out(in.out.data(), in.out.dimensions());
  const ThreadCpuTimer timer;
  for (auto _ : state) {
    run(in, o, out);
    benchmark::DoNotOptimize(in.out.data());
    benchmark::ClobberMemory();
  }
  const double seconds = timer.seconds() / double(state.iterations());
  const double flops = 2.0 * double(P + Pv) * window_pairs(L, W, causal);
  state.counters["tokens_per_s"] = double(L) / seconds;
  state.counters["ns_per_token"] = seconds * 1e9 / double(L);
  state.counters["GFLOP/s"] = flops / seconds * 1e-9;
  state.counters["fma_bound"] = flops / (bench::machine_limits().fma_gflops * 1e9) / seconds;
  return seconds;
}

Key key_of(const benchmark::State& state) {
  return {state.range(0), state.range(1), state.range(4) != 0, state.range(5) != 0};
}

void BM_LocalAttention_Reference(benchmark::State& state) {
  reference_seconds()[key_of(state)] = run_case(state, [](const Inputs& in, const attention::LocalAttentionOptions& o, TensorView<float, 4>& out) {
    ref::local_attention<double>(in.q, in.k, in.v, o, out);
  });
}

void BM_LocalAttention_Simd(benchmark::State& state) {
  const double seconds =
      run_case(state, [](const Inputs& in, const attention::LocalAttentionOptions& o, TensorView<float, 4>& out) {
        attention::local_attention(in.q, in.k, in.v, o, out);
      });
  const Key key = key_of(state);
  seconds_of()[key] = seconds;
  const auto base = seconds_of().find({2048, std::get<1>(key), std::get<2>(key), std::get<3>(key)});
  if (std::get<0>(key) > 2048 && base != seconds_of().end())
    state.counters["per_token_vs_L2048"] = seconds / double(std::get<0>(key)) / (base->second / 2048.0);
  const auto ref = reference_seconds().find(key);
  if (ref != reference_seconds().end()) state.counters["vs_reference"] = seconds / ref->second;
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"L", "W", "P", "Pv", "causal", "relu2"})->Unit(benchmark::kMillisecond);
  for (Index L : {2048, 16384})
    for (int causal : {1, 0})
      for (int relu2 : {0, 1}) b->Args({L, 128, 64, 256, causal, relu2});
}

BENCHMARK(BM_LocalAttention_Reference)
    ->ArgNames({"L", "W", "P", "Pv", "causal", "relu2"})
    ->Args({256, 128, 64, 256, 1, 0})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LocalAttention_Simd)->Args({256, 128, 64, 256, 1, 0})->Apply(shapes);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
