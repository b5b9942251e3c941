// blocks::Mamba2Mixer against ref::mamba2_mixer (transformers' torch path as loops, double): prefill
// over odd configs (groups, biases, K, dt limit, grouped norm), chunked prefill with gathered
// batches, decode steps == the oracle's step semantics (no dt limit), cache carry, threads, and the
// weight / cache rules. (The whole model against transformers: tests/blocks/mamba_lm_test.cpp.)

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "tokenmix/blocks/mamba2_mixer.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/reference/mamba2_mixer.hpp"

namespace tokenmix {
namespace {

using blocks::Mamba2Mixer;
using blocks::Mamba2MixerConfig;
using blocks::Mamba2MixerWeights;
using blocks::MambaMixerCache;
using testing::Rng;

Mamba2MixerWeights test_weights(const Mamba2MixerConfig& c, std::uint64_t seed) {
  Mamba2MixerWeights w = blocks::random_mamba2_mixer_weights(c, seed);
  Rng rng(seed);
  w.D = testing::random_uniform<1>({c.heads}, -1.f, 2.f, rng);
  w.dt_bias = testing::random_uniform<1>({c.heads}, -3.f, 1.f, rng);
  w.norm_weight = testing::random_uniform<1>({c.d_inner()}, 0.5f, 1.5f, rng);
  return w;
}

Tensor<float, 3> random_input(Index B, Index L, Index Dm, std::uint64_t seed) {
  Rng rng(seed);
  return testing::random_normal<3>({B, L, Dm}, 0.f, 1.f, rng);
}

Mamba2MixerConfig config(Index Dm, Index H, Index P, Index N, Index G, Index K, bool bias, bool conv_bias,
                         float dt_max = std::numeric_limits<float>::infinity(), Index norm_group = 0, Index chunk = 0) {
  Mamba2MixerConfig c;
  c.d_model = Dm, c.heads = H, c.head_dim = P, c.d_state = N, c.n_groups = G, c.d_conv = K;
  c.use_bias = bias, c.use_conv_bias = conv_bias, c.dt_max = dt_max, c.norm_group_size = norm_group, c.chunk_size = chunk;
  return c;
}

const std::vector<Mamba2MixerConfig> kConfigs = {
    config(32, 4, 16, 8, 1, 4, false, true),
    config(24, 6, 8, 5, 2, 3, true, false, 0.5f),
    config(20, 3, 7, 3, 3, 2, true, true, 0.2f, 7, 5),  // grouped norm (mamba_ssm), chunks of 5
    config(16, 2, 16, 16, 1, 1, false, false),          // K = 1
};

std::string describe(const Mamba2MixerConfig& c) {
  return "H=" + std::to_string(c.heads) + " P=" + std::to_string(c.head_dim) + " N=" + std::to_string(c.d_state) +
         " G=" + std::to_string(c.n_groups) + " K=" + std::to_string(c.d_conv);
}

TEST(Mamba2Mixer, PrefillMatchesOracle) {
  std::uint64_t seed = 1;
  for (const Mamba2MixerConfig& c : kConfigs)
    for (const auto& [B, L] : std::vector<std::pair<Index, Index>>{{1, 1}, {1, 37}, {3, 11}}) {
      const Mamba2MixerWeights w = test_weights(c, ++seed);
      const Tensor<float, 3> x = random_input(B, L, c.d_model, seed);
      const Mamba2Mixer mixer(c, w);
      MambaMixerCache fast = mixer.new_cache(B), slow = mixer.new_cache(B);
      EXPECT_TRUE(testing::all_close(mixer.forward(x, &fast), ref::mamba2_mixer(c, w, x, &slow),
                                     testing::tolerance::mamba2_mixer, describe(c) + " L=" + std::to_string(L)));
      EXPECT_TRUE(testing::all_close(fast.ssm_state, slow.ssm_state, testing::tolerance::mamba2_mixer, "ssm_state"));
      EXPECT_TRUE(testing::all_close(fast.conv_state, slow.conv_state, testing::tolerance::mamba2_mixer, "conv_state"));
    }
}

// Longer than one prefill chunk, with batches gathered per chunk.
TEST(Mamba2Mixer, ChunkedPrefillMatchesOracle) {
  const Mamba2MixerConfig c = kConfigs[1];
  const Mamba2MixerWeights w = test_weights(c, 11);
  const Mamba2Mixer mixer(c, w);
  for (const Index B : {Index{1}, Index{3}}) {
    const Index L = blocks::kMambaPrefillChunk / B + 9;
    const Tensor<float, 3> x = random_input(B, L, c.d_model, 12);
    EXPECT_TRUE(testing::all_close(mixer.forward(x), ref::mamba2_mixer(c, w, x), testing::tolerance::mamba2_mixer,
                                   "B=" + std::to_string(B) + " L=" + std::to_string(L)));
  }
}

// Decode steps follow the released step: no dt limit. After a prefill, every step equals the
// oracle run with clamp_dt = false from the same cache.
TEST(Mamba2Mixer, StepsMatchTheReleasedStep) {
  for (const Mamba2MixerConfig& c : kConfigs) {
    const Index B = 2, P0 = 6, T = 5;
    const Mamba2MixerWeights w = test_weights(c, 21);
    const Mamba2Mixer mixer(c, w);
    const Tensor<float, 3> prompt = random_input(B, P0, c.d_model, 22), tokens = random_input(B, T, c.d_model, 23);
    MambaMixerCache fast = mixer.new_cache(B), slow = mixer.new_cache(B);
    mixer.forward(prompt, &fast);
    ref::mamba2_mixer(c, w, prompt, &slow);
    for (Index t = 0; t < T; ++t) {
      const Tensor<float, 2> token = tokens.chip(t, 1);
      const Tensor<float, 2> got = mixer.step(token, fast);
      const Tensor<float, 3> want = ref::mamba2_mixer(c, w, ConstTensorView<float, 3>(token.data(), B, 1, c.d_model), &slow,
                                                      /*clamp_dt=*/false);
      EXPECT_TRUE(testing::all_close(got, Tensor<float, 2>(want.chip(0, 1)), testing::tolerance::mamba2_mixer,
                                     describe(c) + " step " + std::to_string(t)));
    }
    EXPECT_TRUE(testing::all_close(fast.ssm_state, slow.ssm_state, testing::tolerance::mamba2_mixer, "state"));
  }
}

TEST(Mamba2Mixer, CacheCarriesAndThreadsAreBitwise) {
  const Mamba2MixerConfig c = kConfigs[0];
  const Mamba2Mixer mixer(c, test_weights(c, 31));
  const Tensor<float, 3> x = random_input(2, 20, c.d_model, 32);
  MambaMixerCache one = mixer.new_cache(2), two = mixer.new_cache(2);
  ThreadPool pool(2);
  const Tensor<float, 3> y1 = mixer.forward(x, &one), y2 = mixer.forward(x, &two, pool.device());
  EXPECT_TRUE(testing::bitwise_equal(y2, y1));
  EXPECT_TRUE(testing::bitwise_equal(two.ssm_state, one.ssm_state));
  // Two calls continue like one (within the SSD's chunking differences).
  MambaMixerCache parts = mixer.new_cache(2);
  const Tensor<float, 3> a = x.slice(std::array<Index, 3>{0, 0, 0}, std::array<Index, 3>{2, 9, c.d_model});
  const Tensor<float, 3> b = x.slice(std::array<Index, 3>{0, 9, 0}, std::array<Index, 3>{2, 11, c.d_model});
  mixer.forward(a, &parts);
  const Tensor<float, 3> yb = mixer.forward(b, &parts);
  const Tensor<float, 3> tail = y1.slice(std::array<Index, 3>{0, 9, 0}, std::array<Index, 3>{2, 11, c.d_model});
  EXPECT_TRUE(testing::all_close(yb, tail, testing::tolerance::mamba2_mixer, "continued"));
}

TEST(Mamba2Mixer, RejectsBadWeightsAndCaches) {
  const Mamba2MixerConfig c = kConfigs[1];
  const Mamba2MixerWeights good = test_weights(c, 41);
  auto bad = [&](auto corrupt, const std::string& fragment) {
    Mamba2MixerWeights w = good;
    corrupt(w);
    EXPECT_TRUE(testing::throws_error_mentioning([&] { Mamba2Mixer m(c, w); }, "Mamba2Mixer", fragment));
  };
  bad([](Mamba2MixerWeights& w) { w.in_proj_weight = Tensor<float, 2>(117, 24); },
      "in_proj_weight has shape [117, 24], expected [I+conv_dim+H=122, d_model=24]");
  bad([](Mamba2MixerWeights& w) { w.A_log = Tensor<float, 1>(5); }, "A_log has shape [5], expected [H=6]");
  bad([](Mamba2MixerWeights& w) { w.norm_weight = Tensor<float, 1>(47); }, "norm_weight has shape [47], expected [I=48]");
  bad([](Mamba2MixerWeights& w) { w.out_proj_bias.reset(); }, "use_bias is true but in_proj_bias is present and out_proj_bias absent");
  Mamba2MixerConfig odd = c;
  odd.n_groups = 4;
  EXPECT_TRUE(testing::throws_error_mentioning([&] { Mamba2Mixer m(odd, good); }, "Mamba2Mixer", "n_groups=4 must divide heads=6"));
  const Mamba2Mixer mixer(c, good);
  MambaMixerCache wrong = mixer.new_cache(2);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { mixer.forward(random_input(3, 2, c.d_model, 1), &wrong); },
                                               "Mamba2Mixer::forward",
                                               "cache.conv_state has shape [2, 68, 2], expected [B=3, conv_dim=68, K-1=2]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { mixer.forward(random_input(1, 2, 23, 1)); }, "Mamba2Mixer::forward",
                                               "x has shape [1, 2, 23], expected [B, L, d_model=24]"));
}

}  // namespace
}  // namespace tokenmix
