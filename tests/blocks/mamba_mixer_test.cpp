// blocks::MambaMixer against ref::mamba_mixer (transformers' slow_forward as loops, double): prefill
// over odd configs, chunked prefill and gathered batches, cache carry across calls, decode steps ==
// prefill, thread-count invariance, cache copies, and every bad-input rule.

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "tokenmix/blocks/mamba_mixer.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/reference/mamba_mixer.hpp"

namespace tokenmix {
namespace {

using blocks::MambaMixer;
using blocks::MambaMixerCache;
using blocks::MambaMixerConfig;
using blocks::MambaMixerWeights;
using testing::Rng;

// transformers-style random weights, then A_log, D and dt_proj.bias spread wider so that every
// parameter moves the output (the init keeps dt in [0.001, 0.1], where the state barely decays).
MambaMixerWeights test_weights(const MambaMixerConfig& c, std::uint64_t seed) {
  MambaMixerWeights w = blocks::random_mamba_mixer_weights(c, seed);
  Rng rng(seed);
  w.A_log += testing::random_uniform<2>({c.d_inner, c.d_state}, -1.0f, 1.0f, rng);
  w.D = testing::random_uniform<1>({c.d_inner}, -1.0f, 2.0f, rng);
  w.dt_proj_bias = testing::random_uniform<1>({c.d_inner}, -4.0f, 1.0f, rng);
  return w;
}

Tensor<float, 3> random_input(Index B, Index L, Index Dm, std::uint64_t seed) {
  Rng rng(seed);
  return testing::random_normal<3>({B, L, Dm}, 0.0f, 1.0f, rng);
}

std::string describe(const MambaMixerConfig& c, Index B, Index L) {
  std::ostringstream os;
  os << c << " B=" << B << " L=" << L;
  return os.str();
}

// Odd sizes: d_inner not a multiple of the vector width, N and R small and large, K 1..4.
const std::vector<MambaMixerConfig> kConfigs = {
    {16, 32, 16, 4, 1, false, true},   // mamba-like
    {20, 40, 7, 3, 3, true, false},    // biases on, no conv bias, K = 3
    {24, 72, 5, 4, 2, false, true},    // expand 3
    {13, 37, 3, 2, 5, true, true},     // everything odd
    {8, 17, 1, 1, 1, false, false},    // K = 1 (no conv state), N = 1
};

TEST(MambaMixer, PrefillMatchesOracle) {
  std::uint64_t seed = 1;
  for (const MambaMixerConfig& c : kConfigs)
    for (const auto& [B, L] : std::vector<std::pair<Index, Index>>{{1, 1}, {1, 37}, {3, 9}}) {
      const MambaMixerWeights w = test_weights(c, ++seed);
      const Tensor<float, 3> x = random_input(B, L, c.d_model, seed);
      const MambaMixer mixer(w);
      EXPECT_EQ(mixer.config(), c);
      EXPECT_TRUE(testing::all_close(mixer.forward(x), ref::mamba_mixer(w, x), testing::tolerance::mamba_mixer,
                                     describe(c, B, L)));
    }
}

// Longer than one prefill chunk: B = 1 runs chunks of kMambaPrefillChunk tokens in place, B = 3 gathers
// each chunk's rows (kMambaPrefillChunk / 3 tokens of every sequence) into scratch.
TEST(MambaMixer, ChunkedPrefillMatchesOracle) {
  const MambaMixerConfig c{12, 24, 4, 4, 2, true, true};
  const MambaMixerWeights w = test_weights(c, 11);
  const MambaMixer mixer(w);
  for (const Index B : {Index{1}, Index{3}}) {
    const Index L = blocks::kMambaPrefillChunk / B * 2 + 5;
    const Tensor<float, 3> x = random_input(B, L, c.d_model, 12);
    MambaMixerCache fast = mixer.new_cache(B), slow = mixer.new_cache(B);
    EXPECT_TRUE(testing::all_close(mixer.forward(x, &fast), ref::mamba_mixer(w, x, &slow),
                                   testing::tolerance::mamba_mixer, describe(c, B, L)));
    EXPECT_TRUE(testing::all_close(fast.conv_state, slow.conv_state, testing::tolerance::mamba_mixer, "conv_state"));
    EXPECT_TRUE(testing::all_close(fast.ssm_state, slow.ssm_state, testing::tolerance::mamba_mixer, "ssm_state"));
  }
}

// forward(x1 ‖ x2) == forward(x1, cache) then forward(x2, cache): the same arithmetic per token, so
// bitwise; also for the oracle against itself within its own rounding.
TEST(MambaMixer, CacheCarriesAcrossCalls) {
  for (const MambaMixerConfig& c : kConfigs) {
    const Index B = 2, L1 = 7, L2 = 10;
    const MambaMixerWeights w = test_weights(c, 21);
    const MambaMixer mixer(w);
    const Tensor<float, 3> x = random_input(B, L1 + L2, c.d_model, 22);
    Tensor<float, 3> x1 = x.slice(std::array<Index, 3>{0, 0, 0}, std::array<Index, 3>{B, L1, c.d_model});
    Tensor<float, 3> x2 = x.slice(std::array<Index, 3>{0, L1, 0}, std::array<Index, 3>{B, L2, c.d_model});
    MambaMixerCache whole = mixer.new_cache(B), parts = mixer.new_cache(B);
    const Tensor<float, 3> y = mixer.forward(x, &whole);
    const Tensor<float, 3> y1 = mixer.forward(x1, &parts);
    const Tensor<float, 3> y2 = mixer.forward(x2, &parts);
    Tensor<float, 3> y12 = y1.concatenate(y2, 1);
    EXPECT_TRUE(testing::bitwise_equal(y12, y)) << describe(c, B, L1 + L2);
    EXPECT_TRUE(testing::bitwise_equal(parts.conv_state, whole.conv_state));
    EXPECT_TRUE(testing::bitwise_equal(parts.ssm_state, whole.ssm_state));

    MambaMixerCache oracle = mixer.new_cache(B);
    ref::mamba_mixer(w, x1, &oracle);
    EXPECT_TRUE(testing::all_close(mixer.forward(x2, nullptr), ref::mamba_mixer(w, x2), testing::tolerance::mamba_mixer,
                                   "fresh state"));
    EXPECT_TRUE(testing::all_close(y2, ref::mamba_mixer(w, x2, &oracle), testing::tolerance::mamba_mixer,
                                   "continued " + describe(c, B, L2)));
  }
}

// Decoding token by token equals the prefill over the same tokens (different kernels: conv update
// and state update instead of conv and scan, GEMM at M = B), and leaves the same cache.
TEST(MambaMixer, StepsMatchPrefill) {
  for (const MambaMixerConfig& c : kConfigs) {
    const Index B = 3, L = 12, P = 5;  // prefill P tokens, then step through the rest
    const MambaMixerWeights w = test_weights(c, 31);
    const MambaMixer mixer(w);
    const Tensor<float, 3> x = random_input(B, L, c.d_model, 32);
    MambaMixerCache prefill_cache = mixer.new_cache(B);
    const Tensor<float, 3> expected = mixer.forward(x, &prefill_cache);

    MambaMixerCache cache = mixer.new_cache(B);
    Tensor<float, 3> head = x.slice(std::array<Index, 3>{0, 0, 0}, std::array<Index, 3>{B, P, c.d_model});
    Tensor<float, 3> got(B, L, c.d_model);
    got.slice(std::array<Index, 3>{0, 0, 0}, std::array<Index, 3>{B, P, c.d_model}) = mixer.forward(head, &cache);
    blocks::MambaMixerScratch scratch;
    for (Index t = P; t < L; ++t) {
      Tensor<float, 2> token = x.chip(t, 1);
      const Tensor<float, 2> y = mixer.step(token, cache, nullptr, &scratch);
      got.chip(t, 1) = y;
    }
    EXPECT_TRUE(testing::all_close(got, expected, testing::tolerance::mamba_mixer, "steps " + describe(c, B, L)));
    EXPECT_TRUE(testing::all_close(cache.conv_state, prefill_cache.conv_state, testing::tolerance::mamba_mixer, "conv"));
    EXPECT_TRUE(testing::all_close(cache.ssm_state, prefill_cache.ssm_state, testing::tolerance::mamba_mixer, "ssm"));
  }
}

TEST(MambaMixer, BitwiseIdenticalForAnyThreadCount) {
  const MambaMixerConfig c{40, 96, 16, 4, 3, true, true};
  const MambaMixerWeights w = test_weights(c, 41);
  const MambaMixer mixer(w);
  const Tensor<float, 3> x = random_input(2, 70, c.d_model, 42);
  ThreadPool pool(2);
  MambaMixerCache one = mixer.new_cache(2), two = mixer.new_cache(2);
  EXPECT_TRUE(testing::bitwise_equal(mixer.forward(x, &two, pool.device()), mixer.forward(x, &one)));
  const Tensor<float, 2> token = x.chip(0, 1);
  EXPECT_TRUE(testing::bitwise_equal(mixer.step(token, two, pool.device()), mixer.step(token, one)));
  EXPECT_TRUE(testing::bitwise_equal(two.ssm_state, one.ssm_state));
  EXPECT_TRUE(testing::bitwise_equal(two.conv_state, one.conv_state));
}

// The cache is a value: a copy forks the sequence, and stepping one copy leaves the other alone.
TEST(MambaMixer, CacheCopiesAreIndependent) {
  const MambaMixerConfig c = kConfigs[0];
  const MambaMixer mixer(test_weights(c, 51));
  const Tensor<float, 3> x = random_input(1, 6, c.d_model, 52);
  MambaMixerCache cache = mixer.new_cache(1);
  mixer.forward(x, &cache);
  MambaMixerCache fork = cache;
  const Tensor<float, 2> a = x.chip(0, 1), b = x.chip(1, 1);
  const Tensor<float, 2> from_original = mixer.step(a, cache);
  mixer.step(b, fork);  // advances only the fork
  MambaMixerCache again = mixer.new_cache(1);
  mixer.forward(x, &again);
  EXPECT_TRUE(testing::bitwise_equal(mixer.step(a, again), from_original));
}

TEST(MambaMixer, EmptyBatchOrLengthIsANoOp) {
  const MambaMixerConfig c = kConfigs[1];
  const MambaMixer mixer(test_weights(c, 61));
  MambaMixerCache cache = mixer.new_cache(2);
  cache.ssm_state.setConstant(0.5f);
  const MambaMixerCache before = cache;
  EXPECT_EQ(mixer.forward(Tensor<float, 3>(2, 0, c.d_model), &cache).size(), 0);
  EXPECT_TRUE(testing::bitwise_equal(cache.ssm_state, before.ssm_state));
  EXPECT_EQ(mixer.forward(Tensor<float, 3>(0, 5, c.d_model)).size(), 0);
  EXPECT_EQ(ref::mamba_mixer(test_weights(c, 61), Tensor<float, 3>(2, 0, c.d_model)).size(), 0);
}

// Every weight-shape rule, checked on the block and on the oracle (same validation).
TEST(MambaMixer, RejectsInconsistentWeights) {
  const MambaMixerConfig c{16, 32, 8, 4, 2, true, true};
  const MambaMixerWeights good = test_weights(c, 71);
  const Tensor<float, 3> x = random_input(1, 3, c.d_model, 72);
  struct Case {
    const char* fragment;
    void (*corrupt)(MambaMixerWeights&);
  };
  const std::vector<Case> cases = {
      {"in_proj_weight has shape [31, 16]", [](MambaMixerWeights& w) { w.in_proj_weight = Tensor<float, 2>(31, 16); }},
      {"A_log has shape [31, 8], expected [I=32, N=8]", [](MambaMixerWeights& w) { w.A_log = Tensor<float, 2>(31, 8); }},
      {"conv1d_weight has shape [32, 2, 4], expected [I=32, 1=1, K=4]",
       [](MambaMixerWeights& w) { w.conv1d_weight = Tensor<float, 3>(32, 2, 4); }},
      {"x_proj_weight has shape [19, 32], expected [R+2N=18, I=32]",
       [](MambaMixerWeights& w) { w.x_proj_weight = Tensor<float, 2>(19, 32); }},
      {"dt_proj_weight has shape [32, 0], expected [I=32, R] with R > 0",
       [](MambaMixerWeights& w) { w.dt_proj_weight = Tensor<float, 2>(32, 0); }},
      {"dt_proj_bias has shape [31], expected [I=32]", [](MambaMixerWeights& w) { w.dt_proj_bias = Tensor<float, 1>(31); }},
      {"D has shape [33], expected [I=32]", [](MambaMixerWeights& w) { w.D = Tensor<float, 1>(33); }},
      {"out_proj_weight has shape [16, 31], expected [d_model=16, I=32]",
       [](MambaMixerWeights& w) { w.out_proj_weight = Tensor<float, 2>(16, 31); }},
      {"in_proj_bias has shape [32], expected [2·I=64]", [](MambaMixerWeights& w) { w.in_proj_bias = Tensor<float, 1>(32); }},
      {"conv1d_bias has shape [16], expected [I=32]", [](MambaMixerWeights& w) { w.conv1d_bias = Tensor<float, 1>(16); }},
      {"in_proj_bias is present but out_proj_bias is absent", [](MambaMixerWeights& w) { w.out_proj_bias.reset(); }},
      {"out_proj_bias has shape [15], expected [d_model=16]",
       [](MambaMixerWeights& w) { w.out_proj_bias = Tensor<float, 1>(15); }},
  };
  for (const Case& k : cases) {
    MambaMixerWeights bad = good;
    k.corrupt(bad);
    EXPECT_TRUE(testing::throws_error_mentioning([&] { MambaMixer m(bad); }, "MambaMixer", k.fragment));
    EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::mamba_mixer(bad, x); }, "ref::mamba_mixer", k.fragment));
  }
}

TEST(MambaMixer, RejectsBadInputsAndCaches) {
  const MambaMixerConfig c{16, 32, 8, 4, 2, false, true};
  const MambaMixer mixer(test_weights(c, 81));
  const Tensor<float, 3> x = random_input(2, 3, c.d_model, 82);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { mixer.forward(random_input(2, 3, 15, 1)); }, "MambaMixer::forward",
                                               "x has shape [2, 3, 15], expected [B, L, d_model=16]"));
  MambaMixerCache wrong_batch = mixer.new_cache(3);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { mixer.forward(x, &wrong_batch); }, "MambaMixer::forward",
                                               "cache.conv_state has shape [3, 32, 3], expected [B=2, I=32, K-1=3]"));
  MambaMixerCache wrong_state = mixer.new_cache(2);
  wrong_state.ssm_state = Tensor<float, 3>(2, 32, 7);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { mixer.forward(x, &wrong_state); }, "MambaMixer::forward",
                                               "cache.ssm_state has shape [2, 32, 7], expected [B=2, I=32, N=8]"));
  Tensor<float, 3> out(2, 4, c.d_model);
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { mixer.forward(x, TensorView<float, 3>(out.data(), out.dimensions())); }, "MambaMixer::forward",
      "out has shape [2, 4, 16], expected [B=2, L=3, d_model=16]"));
  Tensor<float, 3> aliased = x;
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { mixer.forward(aliased, TensorView<float, 3>(aliased.data(), aliased.dimensions())); },
      "MambaMixer::forward", "out must not overlap x"));
  MambaMixerCache cache = mixer.new_cache(2);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { mixer.step(Tensor<float, 2>(2, 17), cache); }, "MambaMixer::step",
                                               "x has shape [2, 1, 17], expected [B, L, d_model=16]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { mixer.step(Tensor<float, 2>(1, 16), cache); }, "MambaMixer::step",
                                               "cache.conv_state has shape [2, 32, 3], expected [B=1, I=32, K-1=3]"));
  const MambaMixer empty;
  EXPECT_TRUE(testing::throws_error_mentioning([&] { empty.forward(x); }, "MambaMixer::forward",
                                               "the mixer has no weights"));
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { blocks::random_mamba_mixer_weights(MambaMixerConfig{16, 32, 8, 4, 0, false, true}, 1); },
      "random_mamba_mixer_weights", "every extent of the mixer config must be positive"));
}

}  // namespace
}  // namespace tokenmix
