// Benchmarks of blocks::MambaLM, a randomly initialised mamba-130m-sized model (d_model 768, 24
// layers, vocab 50280, tied head; MambaLM::random), the numbers of the README's Mamba table.
//
//   BM_MambaLM_Prefill/L:512             forward over a 512-token prompt, logits of the last position
//                                        (what generation needs), calling thread
//   BM_MambaLM_PrefillPool2/L:512        the same on a 2-thread ThreadPool
//   BM_MambaLM_Decode                    one decode step (embedding, 24 mixer steps, norm_f, head GEMV)
//   BM_MambaLM_DecodePool2               the same on a 2-thread ThreadPool
//
// Counters (over wall time): items/s = tokens/s; GFLOP/s; fma_bound = flops / (threads ·
// fma_gflops) / time (prefill); bw_bound = decode_bytes_per_token() / read_gbps / time (decode: all
// weights are read once per token; read2_gbps for 2 threads). The model (~0.5 GB) is 16x the L3, so
// every decode step streams its weights from DRAM.

#include <benchmark/benchmark.h>

#include <vector>

#include "support/counters.hpp"
#include "support/limits.hpp"
#include "support/main.hpp"
#include "tokenmix/blocks/mamba_lm.hpp"
#include "tokenmix/core/threading.hpp"

namespace {

using namespace tokenmix;

const blocks::MambaLM& model() {
  static const blocks::MambaLM lm = blocks::MambaLM::random(blocks::MambaLMConfig::mamba_130m(), 2024);
  return lm;
}

const Eigen::ThreadPoolDevice* device_for(int threads) {
  static ThreadPool pool(2);
  return threads == 2 ? pool.device() : nullptr;
}

// 2·(parameters touched per token) + the scans: a prefill's flops per token.
double prefill_flops_per_token(const blocks::MambaLMConfig& c) {
  const double Dm = double(c.hidden_size), I = double(c.intermediate_size), R = double(c.time_step_rank),
               N = double(c.state_size);
  const double mixer = 2.0 * (Dm * 2 * I + I * (R + 2 * N) + R * I + I * Dm) + 2.0 * double(c.conv_kernel) * I + 9.0 * I * N;
  return double(c.num_hidden_layers) * mixer;
}

void run_prefill(benchmark::State& state, int threads) {
  const blocks::MambaLM& lm = model();
  const Index L = state.range(0);
  std::vector<std::int64_t> ids(static_cast<std::size_t>(L));
  for (Index i = 0; i < L; ++i) ids[static_cast<std::size_t>(i)] = (i * 7919) % lm.config().vocab_size;
  const bench::WallTimer timer;
  for (auto _ : state) {
    Tensor<float, 3> logits = lm.forward(ids, nullptr, blocks::LogitsFor::last_token, device_for(threads));
    benchmark::DoNotOptimize(logits.data());
  }
  const double head = 2.0 * double(lm.config().hidden_size * lm.config().vocab_size);
  const double flops = double(L) * prefill_flops_per_token(lm.config()) + head;
  bench::set_wall_counters(state, timer.seconds(), double(L), flops, 0,
                           {{"fma_bound", flops / (threads * bench::machine_limits().fma_gflops * 1e9)}});
}

void run_decode(benchmark::State& state, int threads) {
  const blocks::MambaLM& lm = model();
  blocks::MambaLMCache cache = lm.new_cache(1);
  std::int64_t token = 17;
  const bench::WallTimer timer;
  for (auto _ : state) {
    Tensor<float, 2> logits = lm.step(&token, 1, cache, device_for(threads));
    token = blocks::MambaLM::argmax(logits.data(), logits.dimension(1));  // a real decode loop
  }
  const auto& lim = bench::machine_limits();
  const double bytes = double(lm.decode_bytes_per_token());
  bench::set_wall_counters(state, timer.seconds(), 1.0, 0, bytes,
                           {{"bw_bound", bytes / ((threads == 1 ? lim.read_gbps : lim.read2_gbps) * 1e9)}});
  state.counters["weights_MiB"] = double(lm.parameter_bytes()) / double(1 << 20);
}

void BM_MambaLM_Prefill(benchmark::State& state) { run_prefill(state, 1); }
void BM_MambaLM_PrefillPool2(benchmark::State& state) { run_prefill(state, 2); }
void BM_MambaLM_Decode(benchmark::State& state) { run_decode(state, 1); }
void BM_MambaLM_DecodePool2(benchmark::State& state) { run_decode(state, 2); }

BENCHMARK(BM_MambaLM_Prefill)->ArgName("L")->Arg(512)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MambaLM_PrefillPool2)->ArgName("L")->Arg(512)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MambaLM_Decode)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MambaLM_DecodePool2)->Unit(benchmark::kMillisecond);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
