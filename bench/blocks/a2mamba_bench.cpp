// A2Mamba-Nano (blocks::A2MambaBackbone, released configuration: dims 32/64/128/192, depths
// 2/2/8/2, heads 2/2/4/8, K 11/9/7/7, stage 4 global) on one 224x224 image, random weights with the
// released shapes (blocks::a2mamba_random_checkpoint), 1 thread.
//
//   BM_A2MambaNano_Forward/B:1          features of every stage (the released forward_features)
//
// Counters (CPU time): images_per_s; ms_<op> and pct_<op>: the wall time of each operator over one
// profiled forward after the timed loop (core/profile.hpp: every operator call of the stem, the
// blocks, MASS, A2SSM and the downsamples, by operator name), pct of the profiled total;
// vs_components: the timed forward / the sum of its operator calls (what composing them costs).

#include <benchmark/benchmark.h>

#include <string>

#include "support/counters.hpp"
#include "support/main.hpp"
#include "tokenmix/blocks/a2mamba.hpp"

namespace {

using namespace tokenmix;

void BM_A2MambaNano_Forward(benchmark::State& state) {
  const Index B = state.range(0);
  const blocks::A2MambaConfig config = blocks::A2MambaConfig::nano();
  blocks::A2MambaBackbone net(config, blocks::a2mamba_random_checkpoint(config, 1));
  Tensor<float, 4> image(B, 224, 224, 3);
  image.setRandom();
  const double seconds = bench::time_tokens(state, double(B), [&] {
    auto features = net.features(image);
    benchmark::DoNotOptimize(features[3].data());
  });
  state.counters["images_per_s"] = double(B) / seconds;
  state.counters.erase("tokens_per_s"), state.counters.erase("ns_per_token");
  OpProfile profile;
  net.set_profile(&profile);
  net.features(image);
  net.set_profile(nullptr);
  state.counters["vs_components"] = seconds / profile.total();  // the forward / the sum of its operator calls
  for (const auto& [op, s] : profile.seconds()) {
    state.counters["ms_" + op] = s * 1e3;
    state.counters["pct_" + op] = 100.0 * s / profile.total();
  }
}

BENCHMARK(BM_A2MambaNano_Forward)->ArgNames({"B"})->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
