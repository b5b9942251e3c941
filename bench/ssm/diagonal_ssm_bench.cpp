// Benchmarks of ssm::diagonal_ssm (the S4D diagonal SSM as a recurrence) and its step against the
// oracle (the convolution with the materialised kernel, O(L²) per channel) and the FMA peak.
//
//   BM_DiagonalSsm_Simd/B:1/L:<L>/D:256/M:32       L 512, 8192 (H3's diagonal SSM, head_dim 1)
//   BM_DiagonalSsm_Reference/B:1/L:512/D:256/M:32  the oracle (double)
//   BM_DiagonalSsmStep_Simd/B:1/D:256/M:32         one token (decode)
//
// Counters (CPU time of the benchmark's thread):
//   tokens_per_s, ns_per_token   B·L tokens
//   GFLOP/s     11·M flops per token-channel (complex state update with a real input, 8; the readout
//               2·Re(C·S) accumulated, 3)
//   fma_bound   6·M FMA-pipe operations per token-channel (the kernel's count: re' 2, im' 2, y 2) at
//               bench/limits' FMA peak / time: how close the recurrence runs to the FMA pipes' limit
//   vs_reference (Simd, L 512) time / the oracle's

#include <benchmark/benchmark.h>

#include <complex>
#include <random>

#include "support/counters.hpp"
#include "support/limits.hpp"
#include "support/main.hpp"
#include "tokenmix/reference/diagonal_ssm.hpp"
#include "tokenmix/ssm/diagonal_ssm.hpp"

namespace {

using namespace tokenmix;
using bench::ThreadCpuTimer;

struct Inputs {
  Tensor<float, 3> x, dA, C;  // [B, L, D], [D, M, 2] x 2
  Tensor<float, 1> skip;      // [D]
  Inputs(Index B, Index L, Index D, Index M) : x(B, L, D), dA(D, M, 2), C(D, M, 2), skip(D) {
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.f, 1.f);
    std::uniform_real_distribution<double> radius(0.9, 0.9999), phase(-3.14159, 3.14159);
    for (Index i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
    for (Index i = 0; i < C.size(); ++i) C.data()[i] = 0.1f * normal(rng);
    for (Index i = 0; i < skip.size(); ++i) skip.data()[i] = normal(rng);
    for (Index d = 0; d < D; ++d)
      for (Index m = 0; m < M; ++m) {
        const std::complex<double> a = std::polar(radius(rng), phase(rng));
        dA(d, m, 0) = static_cast<float>(a.real()), dA(d, m, 1) = static_cast<float>(a.imag());
      }
  }
  ssm::DiagonalSsmOptions options() const {
    ssm::DiagonalSsmOptions o;
    o.D = skip;
    return o;
  }
};

double& reference_seconds() {
  static double s = 0;
  return s;
}

void set_counters(benchmark::State& state, double seconds, double tokens, double token_channels, Index M) {
  state.counters["tokens_per_s"] = tokens / seconds;
  state.counters["ns_per_token"] = seconds * 1e9 / tokens;
  state.counters["GFLOP/s"] = 11.0 * double(M) * token_channels / seconds * 1e-9;
  state.counters["fma_bound"] = 6.0 * double(M) * token_channels * 2.0 / (bench::machine_limits().fma_gflops * 1e9) / seconds;
}

template <class Run>
double run_sequence(benchmark::State& state, Run&& run) {
  const Index B = state.range(0), L = state.range(1), D = state.range(2), M = state.range(3);
  const Inputs in(B, L, D, M);
  Tensor<float, 3> out(B, L, D);
  Tensor<float, 4> fin(B, D, M, 2);
  out.setZero(), fin.setZero();
  TensorView<float, 3> out_v(out.data(), out.dimensions());
  TensorView<float, 4> fin_v(fin.data(), fin.dimensions());
  const ThreadCpuTimer timer;
  for (auto _ : state) {
    run(in, out_v, fin_v);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double seconds = timer.seconds() / double(state.iterations());
  set_counters(state, seconds, double(B * L), double(B * L * D), M);
  return seconds;
}

void BM_DiagonalSsm_Reference(benchmark::State& state) {
  reference_seconds() = run_sequence(state, [](const Inputs& in, TensorView<float, 3>& out, TensorView<float, 4>& fin) {
    ref::diagonal_ssm<double>(in.x, in.dA, in.C, in.options(), out, &fin);
  });
}

void BM_DiagonalSsm_Simd(benchmark::State& state) {
  const double seconds = run_sequence(state, [](const Inputs& in, TensorView<float, 3>& out, TensorView<float, 4>& fin) {
    ssm::diagonal_ssm(in.x, in.dA, in.C, in.options(), out, &fin);
  });
  if (state.range(1) == 512 && reference_seconds() > 0) state.counters["vs_reference"] = seconds / reference_seconds();
}

void BM_DiagonalSsmStep_Simd(benchmark::State& state) {
  const Index B = state.range(0), D = state.range(1), M = state.range(2);
  const Inputs in(B, 1, D, M);
  const ConstTensorView<float, 2> xt(in.x.data(), B, D);
  Tensor<float, 4> s(B, D, M, 2);
  s.setZero();
  Tensor<float, 2> out(B, D);
  TensorView<float, 4> s_v(s.data(), s.dimensions());
  TensorView<float, 2> out_v(out.data(), out.dimensions());
  const auto o = in.options();
  const ThreadCpuTimer timer;
  for (auto _ : state) {
    ssm::diagonal_ssm_step(xt, s_v, in.dA, in.C, o, out_v);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, timer.seconds() / double(state.iterations()), double(B), double(B * D), M);
}

BENCHMARK(BM_DiagonalSsm_Reference)->ArgNames({"B", "L", "D", "M"})->Args({1, 512, 256, 32})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DiagonalSsm_Simd)
    ->ArgNames({"B", "L", "D", "M"})
    ->Args({1, 512, 256, 32})
    ->Args({1, 8192, 256, 32})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DiagonalSsmStep_Simd)->ArgNames({"B", "D", "M"})->Args({1, 256, 32})->Unit(benchmark::kMicrosecond);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
