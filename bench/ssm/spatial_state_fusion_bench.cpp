// Benchmarks of ssm::spatial_state_fusion (Spatial-Mamba's SASF: 3 dilated 3×3 depthwise kernels over
// the hidden-state map with replicate padding, then the C readout and the D skip) against its oracle.
//
//   BM_SpatialStateFusion_Simd/B:1/H:56/W:56/D:128/N:1        the released configuration (N = 1)
//   BM_SpatialStateFusion_Simd/B:1/H:56/W:56/D:128/N:4        the kernel's N limit in the released code
//   BM_SpatialStateFusion_Reference/B:1/H:14/W:14/D:128/N:1   the oracle (double, loops)
// Counters: GFLOP/s (2 flops per tap per (cell, d, n) + 2 per readout term), GB/s of compulsory
// traffic (h read once, u read, y written): the op is bandwidth-bound for N = 1.

#include <benchmark/benchmark.h>

#include <random>

#include "support/counters.hpp"
#include "support/main.hpp"
#include "tokenmix/reference/spatial_state_fusion.hpp"
#include "tokenmix/ssm/spatial_state_fusion.hpp"

namespace {

using namespace tokenmix;

template <bool Reference>
void run(benchmark::State& state) {
  const Index Bt = state.range(0), H = state.range(1), W = state.range(2), Dc = state.range(3), N = state.range(4);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.f, 1.f);
  Tensor<float, 5> h(Bt, H, W, Dc, N);
  Tensor<float, 4> kernels(3, Dc, 3, 3), C(Bt, H, W, N), u(Bt, H, W, Dc), y(Bt, H, W, Dc);
  Tensor<float, 1> alpha(3), D(Dc);
  for (Index i = 0; i < h.size(); ++i) h.data()[i] = normal(rng);
  for (Index i = 0; i < kernels.size(); ++i) kernels.data()[i] = normal(rng);
  for (Index i = 0; i < C.size(); ++i) C.data()[i] = normal(rng);
  for (Index i = 0; i < u.size(); ++i) u.data()[i] = normal(rng);
  alpha.setConstant(1.0f);
  D.setConstant(1.0f);
  ssm::SpatialStateFusionOptions o;
  o.D = ConstTensorView<float, 1>(D);
  o.u = ConstTensorView<float, 4>(u);
  for (auto _ : state) {
    if constexpr (Reference) {
      y = ref::spatial_state_fusion(h, kernels, alpha, C, o);
    } else {
      ssm::spatial_state_fusion(h, kernels, alpha, C, o, TensorView<float, 4>(y.data(), y.dimensions()));
    }
    benchmark::DoNotOptimize(y.data());
  }
  const double cells = double(Bt * H * W);
  bench::set_rates(state, cells, cells * double(Dc * N) * (2.0 * 27 + 2.0),
                   (double(h.size()) + double(u.size()) + double(y.size()) + double(C.size())) * sizeof(float));
}

void BM_SpatialStateFusion_Simd(benchmark::State& state) { run<false>(state); }
void BM_SpatialStateFusion_Reference(benchmark::State& state) { run<true>(state); }

BENCHMARK(BM_SpatialStateFusion_Simd)
    ->ArgNames({"B", "H", "W", "D", "N"})
    ->Args({1, 56, 56, 128, 1})
    ->Args({1, 56, 56, 128, 4})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SpatialStateFusion_Reference)->ArgNames({"B", "H", "W", "D", "N"})->Args({1, 14, 14, 128, 1})->Unit(benchmark::kMicrosecond);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
