// Benchmarks of blocks::MambaMixer at mamba-130m's sizes (d_model 768, d_inner 1536, N 16, K 4,
// dt_rank 48, no in/out_proj bias, conv bias), random weights, against its oracle and the machine
// limits (bench/limits). Every counter is over wall time (bench::set_wall_counters), also for the
// one-thread runs, so 1- and 2-thread rows compare directly.
//
//   BM_MambaMixer_Prefill/B:1/L:512/D:768/I:1536/N:16        forward over 512 tokens, calling thread
//   BM_MambaMixer_PrefillPool2/...                            the same on a 2-thread ThreadPool
//   BM_MambaMixer_Projections/B:1/L:512/D:768/I:1536/N:16    only the prefill's four projections (the
//                                                            same packed GEMMs: in_proj x and z halves,
//                                                            x_proj, dt_proj, out_proj)
//   BM_MambaMixer_Decode/B:1/D:768/I:1536/N:16                one step (one token), calling thread
//   BM_MambaMixer_DecodePool2/...                             the same on a 2-thread ThreadPool
//   BM_MambaMixer_Reference/B:1/L:8/...                       the oracle (double, loops) over 8 tokens
//
// Counters: items/s = tokens/s; GFLOP/s (2·M·N·K per projection + 2·K·I conv + 9·I·N scan per
// token, exps not counted); fma_bound = flops / (threads · fma_gflops) / time (prefill, projections);
// bw_bound = parameter bytes / read_gbps / time (decode: a step reads every weight once; read2_gbps
// for the 2-thread run). Decode
// rotates over enough mixers (>= 192 MiB of weights) that each step reads its weights from DRAM, as
// a real decode through 24 layers does.

#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "support/counters.hpp"
#include "support/limits.hpp"
#include "support/main.hpp"
#include "tokenmix/blocks/mamba_mixer.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/reference/mamba_mixer.hpp"

namespace {

using namespace tokenmix;

double projection_flops_per_token(const blocks::MambaMixerConfig& c) {
  const double Dm = double(c.d_model), I = double(c.d_inner), R = double(c.dt_rank), N = double(c.d_state);
  return 2.0 * (Dm * 2 * I + I * (R + 2 * N) + R * I + I * Dm);
}

double flops_per_token(const blocks::MambaMixerConfig& c) {
  return projection_flops_per_token(c) + 2.0 * double(c.d_conv * c.d_inner) + 9.0 * double(c.d_inner * c.d_state);
}

Tensor<float, 3> random_tokens(Index B, Index L, Index Dm) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  Tensor<float, 3> x(B, L, Dm);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
  return x;
}

const Eigen::ThreadPoolDevice* pool2() {
  static ThreadPool pool(2);
  return pool.device();
}

void run_prefill(benchmark::State& state, const Eigen::ThreadPoolDevice* device, int threads) {
  const Index B = state.range(0), L = state.range(1);
  const blocks::MambaMixerConfig c{state.range(2), state.range(3), state.range(4), 4, (state.range(2) + 15) / 16,
                                   false, true};
  const blocks::MambaMixer mixer(blocks::random_mamba_mixer_weights(c, 1));
  const Tensor<float, 3> x = random_tokens(B, L, c.d_model);
  Tensor<float, 3> out(B, L, c.d_model);
  blocks::MambaMixerScratch scratch;
  const bench::WallTimer timer;
  for (auto _ : state) {
    mixer.forward(x, TensorView<float, 3>(out.data(), out.dimensions()), nullptr, device, &scratch);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double tokens = double(B * L), flops = tokens * flops_per_token(c);
  const auto& lim = bench::machine_limits();
  bench::set_wall_counters(state, timer.seconds(), tokens, flops, 0,
                           {{"fma_bound", flops / (threads * lim.fma_gflops * 1e9)}});
}

void BM_MambaMixer_Prefill(benchmark::State& state) { run_prefill(state, nullptr, 1); }
void BM_MambaMixer_PrefillPool2(benchmark::State& state) { run_prefill(state, pool2(), 2); }

// The prefill's projections alone, as MambaMixer runs them (same packed shapes, same M).
void BM_MambaMixer_Projections(benchmark::State& state) {
  const Index M = state.range(0) * state.range(1), Dm = state.range(2), I = state.range(3), N = state.range(4);
  const Index R = (Dm + 15) / 16;
  const blocks::MambaMixerConfig c{Dm, I, N, 4, R, false, true};
  const blocks::MambaMixerWeights w = blocks::random_mamba_mixer_weights(c, 1);
  const blocks::PackedLinear in_x(ConstTensorView<float, 2>(w.in_proj_weight.data(), I, Dm));
  const blocks::PackedLinear in_z(ConstTensorView<float, 2>(w.in_proj_weight.data() + I * Dm, I, Dm));
  const blocks::PackedLinear x_proj(w.x_proj_weight), dt_proj(w.dt_proj_weight), out_proj(w.out_proj_weight);
  const Tensor<float, 3> x3 = random_tokens(1, M, std::max(Dm, I));
  const ConstTensorView<float, 2> x_d(x3.data(), M, Dm), x_i(x3.data(), M, I), x_r(x3.data(), M, R);
  Tensor<float, 2> xs(M, I), z(M, I), x_dbl(M, R + 2 * N), delta(M, I), out(M, Dm);
  auto view = [](Tensor<float, 2>& t) { return TensorView<float, 2>(t.data(), t.dimensions()); };
  const bench::WallTimer timer;
  for (auto _ : state) {
    blocks::linear(x_d, in_x, std::nullopt, view(xs));
    blocks::linear(x_d, in_z, std::nullopt, view(z));
    blocks::linear(x_i, x_proj, std::nullopt, view(x_dbl));
    blocks::linear(x_r, dt_proj, std::nullopt, view(delta));
    blocks::linear(x_i, out_proj, std::nullopt, view(out));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double flops = double(M) * projection_flops_per_token(c);
  bench::set_wall_counters(state, timer.seconds(), double(M), flops, 0,
                           {{"fma_bound", flops / (bench::machine_limits().fma_gflops * 1e9)}});
}

void run_decode(benchmark::State& state, const Eigen::ThreadPoolDevice* device, int threads) {
  const Index B = state.range(0);
  const blocks::MambaMixerConfig c{state.range(1), state.range(2), state.range(3), 4, (state.range(1) + 15) / 16,
                                   false, true};
  std::vector<std::unique_ptr<blocks::MambaMixer>> mixers;
  std::vector<blocks::MambaMixerCache> caches;
  std::size_t bytes = 0;
  while (bytes < (std::size_t{192} << 20)) {
    mixers.push_back(std::make_unique<blocks::MambaMixer>(blocks::random_mamba_mixer_weights(c, mixers.size() + 1)));
    caches.push_back(mixers.back()->new_cache(B));
    bytes += mixers.back()->parameter_bytes();
  }
  const Tensor<float, 3> x = random_tokens(B, 1, c.d_model);
  const ConstTensorView<float, 2> token(x.data(), B, c.d_model);
  Tensor<float, 2> out(B, c.d_model);
  blocks::MambaMixerScratch scratch;
  std::size_t i = 0;
  const bench::WallTimer timer;
  for (auto _ : state) {
    mixers[i]->step(token, caches[i], TensorView<float, 2>(out.data(), out.dimensions()), device, &scratch);
    i = i + 1 == mixers.size() ? 0 : i + 1;
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double weight_bytes = double(mixers[0]->parameter_bytes());
  const auto& lim = bench::machine_limits();
  const double gbps = threads == 1 ? lim.read_gbps : lim.read2_gbps;
  bench::set_wall_counters(state, timer.seconds(), double(B), double(B) * flops_per_token(c), weight_bytes,
                           {{"bw_bound", weight_bytes / (gbps * 1e9)}});
}

void BM_MambaMixer_Decode(benchmark::State& state) { run_decode(state, nullptr, 1); }
void BM_MambaMixer_DecodePool2(benchmark::State& state) { run_decode(state, pool2(), 2); }

void BM_MambaMixer_Reference(benchmark::State& state) {
  const Index B = state.range(0), L = state.range(1);
  const blocks::MambaMixerConfig c{state.range(2), state.range(3), state.range(4), 4, (state.range(2) + 15) / 16,
                                   false, true};
  const blocks::MambaMixerWeights w = blocks::random_mamba_mixer_weights(c, 1);
  const Tensor<float, 3> x = random_tokens(B, L, c.d_model);
  const bench::WallTimer timer;
  for (auto _ : state) {
    Tensor<float, 3> out = ref::mamba_mixer(w, x);
    benchmark::DoNotOptimize(out.data());
  }
  const double tokens = double(B * L);
  bench::set_wall_counters(state, timer.seconds(), tokens, tokens * flops_per_token(c), 0);
}

void prefill_shapes(benchmark::internal::Benchmark* b, long length) {
  b->ArgNames({"B", "L", "D", "I", "N"})->Args({1, length, 768, 1536, 16})->Unit(benchmark::kMillisecond);
}
void decode_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"B", "D", "I", "N"})->Args({1, 768, 1536, 16})->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_MambaMixer_Prefill)->Apply([](auto* b) { prefill_shapes(b, 512); });
BENCHMARK(BM_MambaMixer_PrefillPool2)->Apply([](auto* b) { prefill_shapes(b, 512); });
BENCHMARK(BM_MambaMixer_Projections)->Apply([](auto* b) { prefill_shapes(b, 512); });
BENCHMARK(BM_MambaMixer_Decode)->Apply(decode_shapes);
BENCHMARK(BM_MambaMixer_DecodePool2)->Apply(decode_shapes);
BENCHMARK(BM_MambaMixer_Reference)->Apply([](auto* b) { prefill_shapes(b, 8); });

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
