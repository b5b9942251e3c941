// Benchmarks of blocks::linear (out = x·Wᵀ + b, W [N, K] as nn.Linear) against Eigen's tensor
// contraction, the oracle and the machine limits (bench/limits). Shapes of Mamba-130m (d_model 768,
// d_inner 1536): in_proj K=768 -> N=3072, out_proj K=1536 -> N=768; prefill M=512, decode M=1.
//
//   BM_Linear_Simd/M:512/K:768/N:3072       PackedLinear (weight packed once, outside the loop)
//   BM_Linear_SimdUnpacked/...              weight [N, K] as stored: packs per call (M > 4) or GEMV (M <= 4)
//   BM_Linear_SimdPool2/...                 PackedLinear on a 2-thread tokenmix::ThreadPool; its counters
//                                           use wall time (the caller's CPU time misses the pool thread)
//                                           and fma_bound is the fraction of 2 x the one-thread peak
//   BM_Linear_Eigen/...                     Eigen::Tensor contract (x · Wᵀ), single thread
//   BM_Linear_Reference/M:64/...            the oracle (float accumulation)
//
// Counters: GFLOP/s (2·M·N·K), fma_bound = time at machine_limits().fma_gflops / measured time.
// For M = 1 also bandwidth_bound = weight bytes / read_gbps / measured time: the benchmark cycles
// through enough copies of the weight (>= 128 MiB) that each call reads it from DRAM, not from L3,
// as in a real decode step over all layers.

#include <benchmark/benchmark.h>

#include <chrono>
#include <random>
#include <vector>

#include "support/counters.hpp"
#include "support/limits.hpp"
#include "support/main.hpp"
#include "tokenmix/blocks/linear.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/reference/linear.hpp"

namespace {

using namespace tokenmix;

struct LinearInputs {
  Tensor<float, 2> x;                   // [M, K]
  std::vector<Tensor<float, 2>> w;      // copies of [N, K]
  std::vector<blocks::PackedLinear> p;  // the same, packed
  Tensor<float, 1> bias;                // [N]
  Tensor<float, 2> out;                 // [M, N]

  LinearInputs(Index M, Index K, Index N, bool packed) : x(M, K), bias(N), out(M, N) {
    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.f, 1.f);
    for (Index i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
    for (Index i = 0; i < N; ++i) bias.data()[i] = normal(rng);
    const double bytes = double(N) * double(K) * sizeof(float);
    const int copies = M == 1 ? std::max(1, int(128.0 * (1 << 20) / bytes + 0.999)) : 1;
    Tensor<float, 2> w0(N, K);
    for (Index i = 0; i < w0.size(); ++i) w0.data()[i] = normal(rng) * 0.03f;
    for (int c = 0; c < copies; ++c) {
      if (packed) p.emplace_back(w0);
      else w.push_back(w0);
    }
  }
};

// wall_seconds > 0: counters over that wall time (thread-pool runs), with compute bound x threads.
void set_counters(benchmark::State& state, Index M, Index K, Index N, double wall_seconds = 0, int threads = 1) {
  const double flops = 2.0 * double(M) * double(N) * double(K);
  const double wbytes = double(N) * double(K) * sizeof(float);
  const double bytes = wbytes + double(M) * double(K + N) * sizeof(float);
  const auto& lim = bench::machine_limits();
  if (wall_seconds > 0) {
    const double it = double(state.iterations());
    state.counters["GFLOP/s"] = flops * it / wall_seconds * 1e-9;
    state.counters["GB/s"] = bytes * it / wall_seconds * 1e-9;
    state.counters["fma_bound"] = flops * it / (threads * lim.fma_gflops * 1e9) / wall_seconds;
    if (M == 1) state.counters["bandwidth_bound"] = wbytes * it / (lim.read_gbps * 1e9) / wall_seconds;
    return;
  }
  bench::set_rates(state, double(M), flops, bytes);
  bench::set_bound_fraction(state, "fma_bound", flops / (lim.fma_gflops * 1e9));
  if (M == 1) bench::set_bound_fraction(state, "bandwidth_bound", wbytes / (lim.read_gbps * 1e9));
}

template <bool Packed, class Run>
void run_linear(benchmark::State& state, Run&& run, int threads = 0) {
  const Index M = state.range(0), K = state.range(1), N = state.range(2);
  LinearInputs in(M, K, N, Packed);
  TensorView<float, 2> out(in.out.data(), in.out.dimensions());
  const std::size_t copies = Packed ? in.p.size() : in.w.size();
  std::size_t c = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    run(in, c, out);
    c = c + 1 == copies ? 0 : c + 1;
    benchmark::DoNotOptimize(in.out.data());
    benchmark::ClobberMemory();
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (threads > 0) set_counters(state, M, K, N, wall, threads);
  else set_counters(state, M, K, N);
}

void BM_Linear_Simd(benchmark::State& state) {
  run_linear<true>(state, [](LinearInputs& in, std::size_t c, TensorView<float, 2>& out) {
    blocks::linear(in.x, in.p[c], in.bias, out);
  });
}

void BM_Linear_SimdUnpacked(benchmark::State& state) {
  run_linear<false>(state, [](LinearInputs& in, std::size_t c, TensorView<float, 2>& out) {
    blocks::linear(in.x, in.w[c], in.bias, out);
  });
}

void BM_Linear_SimdPool2(benchmark::State& state) {
  static ThreadPool pool(2);
  run_linear<true>(state, [](LinearInputs& in, std::size_t c, TensorView<float, 2>& out) {
    blocks::linear(in.x, in.p[c], in.bias, out, pool.device());
  }, /*threads=*/2);
}

void BM_Linear_Eigen(benchmark::State& state) {
  run_linear<false>(state, [](LinearInputs& in, std::size_t c, TensorView<float, 2>& out) {
    const Eigen::array<Eigen::IndexPair<int>, 1> dims = {Eigen::IndexPair<int>(1, 1)};  // x[m,k]·W[n,k]
    const Eigen::array<Index, 2> bcast = {in.x.dimension(0), 1};
    const Eigen::array<Index, 2> row = {1, in.bias.dimension(0)};
    out = in.x.contract(in.w[c], dims) + in.bias.reshape(row).broadcast(bcast);
  });
}

void BM_Linear_Reference(benchmark::State& state) {
  run_linear<false>(state, [](LinearInputs& in, std::size_t c, TensorView<float, 2>& out) {
    ref::linear<float>(in.x, in.w[c], in.bias, out);
  });
}

void shapes(benchmark::internal::Benchmark* b, std::initializer_list<long> ms) {
  b->ArgNames({"M", "K", "N"});
  for (long m : ms) {
    b->Args({m, 768, 3072});  // in_proj
    b->Args({m, 1536, 768});  // out_proj
  }
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_Linear_Simd)->Apply([](auto* b) { shapes(b, {512, 1}); });
BENCHMARK(BM_Linear_SimdUnpacked)->Apply([](auto* b) { shapes(b, {512, 1}); });
BENCHMARK(BM_Linear_SimdPool2)->Apply([](auto* b) { shapes(b, {512, 1}); });
BENCHMARK(BM_Linear_Eigen)->Apply([](auto* b) { shapes(b, {512, 1}); });
BENCHMARK(BM_Linear_Reference)->Apply([](auto* b) { shapes(b, {64}); });

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
