// Benchmarks of ssm::selective_state_update (one decode step of the selective scan) against its
// oracle and the machine's memory bandwidth (bench/limits).
//
//   BM_SelectiveStateUpdate_Simd/B:1/D:1536/N:16        the SIMD kernel, calling thread only (B:8 too)
//   BM_SelectiveStateUpdate_Reference/B:1/D:1536/N:16   the oracle (plain loops, float accumulation)
//
// Mamba's configuration (mamba-130m's d_inner = 1536, d_state = 16): D skip, z gate, dt_bias,
// softplus, B and C [B, 1, N]. A model decodes one token through every layer, each with its own
// state, so a layer's state is not in cache when its step runs: the benchmark rotates over enough
// state copies (>= 64 MiB in all) that every iteration reads a cold state, as in a real decode.
// items_per_second = B (tokens/s of one layer). Counters:
//   GB/s       compulsory bytes: state read + written, A read, x, dt, z read, out written, B, C.
//   bw_bound   those bytes / read_gbps over the measured time (the brief's bandwidth bound; the
//              state's write-back makes 1.0 unreachable in practice: ~0.5-0.7 is near the limit).
//   GFLOP/s    7 flops per (b, d, n), exps not counted.

#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "support/counters.hpp"
#include "support/limits.hpp"
#include "support/main.hpp"
#include "tokenmix/reference/selective_state_update.hpp"
#include "tokenmix/ssm/selective_state_update.hpp"

namespace {

using namespace tokenmix;

struct StepInputs {
  std::vector<Tensor<float, 3>> states;  // copies of [B, D, N]
  Tensor<float, 2> x, dt, z, A;          // [B, D] x3, [D, N]
  Tensor<float, 3> B, C;                 // [B, 1, N]
  Tensor<float, 1> D, bias;              // [D]
  StepInputs(Index batch, Index channels, Index state)
      : x(batch, channels), dt(batch, channels), z(batch, channels), A(channels, state), B(batch, 1, state),
        C(batch, 1, state), D(channels), bias(channels) {
    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.f, 1.f);
    for (auto* t : {&x, &dt, &z})
      for (Index i = 0; i < t->size(); ++i) t->data()[i] = normal(rng);
    for (auto* t : {&B, &C})
      for (Index i = 0; i < t->size(); ++i) t->data()[i] = normal(rng);
    for (Index d = 0; d < channels; ++d) {
      for (Index n = 0; n < state; ++n) A(d, n) = -float(n + 1);
      D(d) = 1.f, bias(d) = -4.f;
    }
    const Index bytes = batch * channels * state * Index(sizeof(float));
    const Index copies = std::max<Index>(2, (Index(64) << 20) / bytes);
    states.resize(static_cast<std::size_t>(copies));
    for (auto& s : states) {
      s = Tensor<float, 3>(batch, channels, state);
      for (Index i = 0; i < s.size(); ++i) s.data()[i] = 0.1f * normal(rng);
    }
  }
  ssm::SelectiveStateUpdateOptions options() const {
    ssm::SelectiveStateUpdateOptions o;
    o.D = D, o.z = z, o.dt_bias = bias, o.dt_softplus = true;
    return o;
  }
};

template <class Step>
void run_step_benchmark(benchmark::State& state, Step&& step) {
  const Index batch = state.range(0), channels = state.range(1), n_state = state.range(2);
  StepInputs in(batch, channels, n_state);
  Tensor<float, 2> out(batch, channels);
  TensorView<float, 2> ov(out.data(), out.dimensions());
  const auto o = in.options();
  std::size_t i = 0;
  for (auto _ : state) {
    auto& s = in.states[i];
    i = i + 1 == in.states.size() ? 0 : i + 1;
    step(in, TensorView<float, 3>(s.data(), s.dimensions()), o, ov);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double bdn = double(batch * channels * n_state), bd = double(batch * channels);
  const double bytes = (2.0 * bdn + double(channels * n_state) + 4.0 * bd + 2.0 * double(batch * n_state)) * sizeof(float);
  bench::set_rates(state, double(batch), 7.0 * bdn, bytes);
  bench::set_bound_fraction(state, "bw_bound", bytes / (bench::machine_limits().read_gbps * 1e9));
}

void BM_SelectiveStateUpdate_Simd(benchmark::State& state) {
  run_step_benchmark(state, [](const StepInputs& in, TensorView<float, 3> s, const auto& o, TensorView<float, 2>& y) {
    ssm::selective_state_update(s, in.x, in.dt, in.A, in.B, in.C, o, y);
  });
}
void BM_SelectiveStateUpdate_Reference(benchmark::State& state) {
  run_step_benchmark(state, [](const StepInputs& in, TensorView<float, 3> s, const auto& o, TensorView<float, 2>& y) {
    ref::selective_state_update<float>(s, in.x, in.dt, in.A, in.B, in.C, o, y);
  });
}

void step_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"B", "D", "N"})->Args({1, 1536, 16})->Args({8, 1536, 16})->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_SelectiveStateUpdate_Simd)->Apply(step_shapes);
BENCHMARK(BM_SelectiveStateUpdate_Reference)->Apply(step_shapes);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
