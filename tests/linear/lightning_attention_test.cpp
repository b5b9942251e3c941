// linear::lightning_attention (chunked / recurrent forms: Lightning Attention-2's block decomposition
// is simple_gla's chunked form), linear::lightning_attention_step and linear::retention against
// ref::lightning_attention (double, OpenNLPLab's masked quadratic form ((Q Kᵀ) ⊙ M) V), plus: the two
// oracles agree (masked form vs simple GLA with g_gamma = -slope), block sizes that do not divide L,
// L < block, L = 0 and 1, slopes 20 and 1e-6 over 2000 tokens, state carry (prefill + prefill,
// prefill + steps), the slope helpers (alibi_slopes, tnl_slopes, fla_lightning_slopes,
// retention_log_decay) against their closed forms, no-decay == causal linear attention, the default
// scale 1, thread-count invariance, and every bad-input rule (op, step, helpers, oracle).

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/linear_case.hpp"
#include "support/random.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/linear/lightning_attention.hpp"
#include "tokenmix/linear/linear_attention.hpp"
#include "tokenmix/reference/linear_attention.hpp"

namespace tokenmix {
namespace lightning_attention_cases {  // named: the family's files share one translation unit (tests/CMakeLists.txt)
namespace {

using linear::LinearAlgorithm;
using testing::LinearCase;
using testing::LinearInputs;
using testing::Rng;

// Tolerances: tests/support/tolerance.hpp (linear_attention, linear_attention_long, linear_attention_oracles).
constexpr testing::Tolerance kTol = testing::tolerance::linear_attention;
constexpr testing::Tolerance kLongTol = testing::tolerance::linear_attention_long;
constexpr testing::Tolerance kOracleTol = testing::tolerance::linear_attention_oracles;

constexpr LinearAlgorithm kForms[] = {LinearAlgorithm::recurrent, LinearAlgorithm::chunked};

const char* form_name(LinearAlgorithm a) {
  return a == LinearAlgorithm::recurrent ? "recurrent" : a == LinearAlgorithm::chunked ? "chunked" : "auto";
}

// A lightning case: random q, k, v, initial state (LinearInputs) and per-head slopes. q and k are
// drawn with variance 1/sqrt(K) each, so that q·k ~ N(0, 1) under lightning's scale 1 (as simple_gla's
// inputs under its 1/sqrt(K)): the outputs, and the errors that scale with them, are comparable.
struct LightningInputs {
  LinearInputs in;
  Tensor<float, 1> slopes;
  bool with_slopes;

  LightningInputs(const LinearCase& c, const std::vector<float>& s, bool use_slopes = true)
      : in(c), slopes(static_cast<Index>(s.size())), with_slopes(use_slopes) {
    for (Index h = 0; h < slopes.size(); ++h) slopes(h) = s[static_cast<std::size_t>(h)];
    const float qk_scale = std::pow(float(c.key_dim), -0.25f);
    in.q = in.q * qk_scale, in.k = in.k * qk_scale;
  }
  linear::LightningOptions options(LinearAlgorithm a = LinearAlgorithm::auto_select,
                                   const Eigen::ThreadPoolDevice* device = nullptr) const {
    linear::LightningOptions o;
    if (with_slopes) o.slopes.emplace(slopes.data(), slopes.dimensions());
    if (in.c.initial) o.initial_state.emplace(in.h0.data(), in.h0.dimensions());
    o.algorithm = a, o.block_size = in.c.chunk, o.device = device;
    return o;
  }
};

// Feeds tokens [from, to) through lightning_attention_step (state in place); outputs [B, to - from, H, V].
Tensor<float, 4> run_steps(const LightningInputs& li, Tensor<float, 4>& state, Index from, Index to, float scale = 1.f) {
  const LinearInputs& in = li.in;
  Tensor<float, 4> out(in.c.batch, to - from, in.c.heads, in.c.value_dim);
  linear::LightningStepOptions o;
  if (li.with_slopes) o.slopes.emplace(li.slopes.data(), li.slopes.dimensions());
  o.scale = scale;
  for (Index t = from; t < to; ++t) {
    const Tensor<float, 3> y = linear::lightning_attention_step(TensorView<float, 4>(state.data(), state.dimensions()),
                                                                testing::token_of(in.q, t), testing::token_of(in.k, t),
                                                                testing::token_of(in.v, t), o);
    testing::set_token(out, t - from, y);
  }
  return out;
}

// ---- the oracle ----

// ((Q Kᵀ) ⊙ M) V by hand (K = V = 1, λ = 1/2, S0 = 4): S_t = λ S_{t-1} + k_t v_t, o_t = q_t S_t.
TEST(LightningAttentionTest, OracleMatchesHandComputedValues) {
  Tensor<float, 4> q(1, 3, 1, 1), k(1, 3, 1, 1), v(1, 3, 1, 1), h0(1, 1, 1, 1);
  Tensor<float, 1> slopes(1);
  q.setValues({{{{1.f}}, {{2.f}}, {{-1.f}}}});
  k.setValues({{{{0.5f}}, {{1.f}}, {{2.f}}}});
  v.setValues({{{{2.f}}, {{-1.f}}, {{3.f}}}});
  h0.setValues({{{{4.f}}}});
  slopes(0) = std::log(2.f);
  linear::LightningOptions o;
  o.slopes.emplace(slopes.data(), slopes.dimensions());
  o.initial_state.emplace(h0.data(), h0.dimensions());
  // S_0 = 2 + 1 = 3, o_0 = 3; S_1 = 1.5 - 1 = 0.5, o_1 = 1; S_2 = 0.25 + 6 = 6.25, o_2 = -6.25.
  const auto r = ref::lightning_attention<double>(q, k, v, o);
  EXPECT_NEAR(r.out(0, 0, 0, 0), 3.0, 1e-6);
  EXPECT_NEAR(r.out(0, 1, 0, 0), 1.0, 1e-6);
  EXPECT_NEAR(r.out(0, 2, 0, 0), -6.25, 1e-6);
  EXPECT_NEAR(r.final_state(0, 0, 0, 0), 6.25, 1e-6);
  for (LinearAlgorithm a : kForms) {
    o.algorithm = a;
    EXPECT_TRUE(testing::results_close(linear::lightning_attention(q, k, v, o), r, std::string(form_name(a)) + " hand"));
  }
}

// The masked form (ref::lightning_attention) and the gated form (ref::simple_gla with
// g_gamma = -slope, scale 1): two independent oracles of the same operator (spec C1).
TEST(LightningAttentionTest, OraclesAgree) {
  for (bool initial : {false, true}) {
    LinearCase c;
    c.batch = 2, c.length = 33, c.heads = 4, c.key_dim = 6, c.value_dim = 5, c.initial = initial, c.seed = 10;
    const LightningInputs li(c, {0.f, 0.05f, 0.7f, 3.f});
    const auto masked = ref::lightning_attention<double>(li.in.q, li.in.k, li.in.v, li.options());
    Tensor<float, 1> g_gamma = -li.slopes;
    auto o = li.in.gla_options();
    o.g_gamma.emplace(g_gamma.data(), g_gamma.dimensions());
    o.scale = 1.f;
    EXPECT_TRUE(testing::results_close(masked, ref::simple_gla<double>(li.in.q, li.in.k, li.in.v, o), "oracles",
                                       kOracleTol));
  }
}

// ---- the op against the oracle ----

TEST(LightningAttentionTest, MatchesOracleForBlockSizesAndLengths) {
  std::uint64_t seed = 100;
  for (Index L : {1, 5, 63, 130})
    for (Index block : {0, 1, 7, 64, 100}) {
      LinearCase c;
      c.batch = 2, c.length = L, c.heads = 4, c.key_dim = 16, c.value_dim = (block % 2) ? 16 : 7, c.chunk = block;
      c.initial = block != 7, c.seed = seed++;
      const LightningInputs li(c, linear::tnl_slopes(4, 1, 4));
      const auto expected = ref::lightning_attention<double>(li.in.q, li.in.k, li.in.v, li.options());
      for (LinearAlgorithm a : {LinearAlgorithm::auto_select, LinearAlgorithm::recurrent, LinearAlgorithm::chunked}) {
        const auto r = linear::lightning_attention(li.in.q, li.in.k, li.in.v, li.options(a));
        EXPECT_TRUE(testing::results_close(r, expected, std::string(form_name(a)) + " " + c.describe()));
      }
    }
}

TEST(LightningAttentionTest, MatchesOracleAroundVectorWidth) {
  std::uint64_t seed = 150;
  for (Index K : {5, 16, 17, 64})
    for (Index V : {1, 7, 16, 33, 64}) {
      LinearCase c;
      c.batch = 1, c.length = 29, c.heads = 6, c.key_dim = K, c.value_dim = V, c.chunk = 8, c.initial = V % 2 == 1;
      c.seed = seed++;
      const LightningInputs li(c, linear::alibi_slopes(6));
      const auto expected = ref::lightning_attention<double>(li.in.q, li.in.k, li.in.v, li.options());
      for (LinearAlgorithm a : kForms)
        EXPECT_TRUE(testing::results_close(linear::lightning_attention(li.in.q, li.in.k, li.in.v, li.options(a)), expected,
                                           std::string(form_name(a)) + " " + c.describe()));
    }
}

TEST(LightningAttentionTest, EmptySequencePassesTheStateThrough) {
  LinearCase c;
  c.batch = 2, c.length = 0, c.heads = 2, c.key_dim = 3, c.value_dim = 17, c.initial = true, c.seed = 160;
  const LightningInputs li(c, {0.5f, 0.25f});
  for (LinearAlgorithm a : {LinearAlgorithm::auto_select, LinearAlgorithm::recurrent, LinearAlgorithm::chunked}) {
    const auto r = linear::lightning_attention(li.in.q, li.in.k, li.in.v, li.options(a));
    EXPECT_EQ(r.out.size(), 0);
    EXPECT_TRUE(testing::bitwise_equal(r.final_state, li.in.h0, form_name(a)));
  }
  EXPECT_TRUE(testing::bitwise_equal(ref::lightning_attention<double>(li.in.q, li.in.k, li.in.v, li.options()).final_state,
                                     li.in.h0, "oracle"));
}

// slope 20 (λ = 2e-9: every token forgets its past) and slope 1e-6 (λ ~ 1) over 2000 tokens with
// block 64 (λ^64 underflows to 0 for slope 20): finite and equal to the oracle, in both forms and the
// step. A Λ^(-1) factor would overflow at the third token for slope 20.
TEST(LightningAttentionTest, ExtremeSlopesOverLongSequences) {
  LinearCase c;
  c.batch = 1, c.length = 2000, c.heads = 2, c.key_dim = 16, c.value_dim = 16, c.chunk = 64, c.initial = true;
  c.seed = 170;
  const LightningInputs li(c, {20.f, 1e-6f});
  const auto expected = ref::lightning_attention<double>(li.in.q, li.in.k, li.in.v, li.options());
  for (LinearAlgorithm a : kForms) {
    const auto r = linear::lightning_attention(li.in.q, li.in.k, li.in.v, li.options(a));
    EXPECT_TRUE(testing::all_finite(r.out) && testing::all_finite(r.final_state)) << form_name(a);
    EXPECT_TRUE(testing::results_close(r, expected, std::string(form_name(a)) + "_long " + c.describe(), kLongTol));
    // Head 0: o_t = (q_t·k_t) v_t up to e^-20 relative.
    for (Index t = 1; t < c.length; t += 131) {
      double qk = 0;
      for (Index i = 0; i < c.key_dim; ++i) qk += double(li.in.q(0, t, 0, i)) * double(li.in.k(0, t, 0, i));
      for (Index j = 0; j < c.value_dim; ++j) {
        const double want = qk * li.in.v(0, t, 0, j);
        EXPECT_TRUE(testing::within(r.out(0, t, 0, j), want, kTol)) << form_name(a) << " t=" << t;
      }
    }
  }
  Tensor<float, 4> state = li.in.h0;
  const Tensor<float, 4> steps = run_steps(li, state, 0, c.length);
  EXPECT_TRUE(testing::all_finite(steps) && testing::all_finite(state));
  testing::linear_report("step_long out", steps, expected.out, kLongTol);
  EXPECT_TRUE(testing::all_close(steps, expected.out, kLongTol, "long steps out"));
  EXPECT_TRUE(testing::all_close(state, expected.final_state, kLongTol, "long steps state"));
}

// Token-by-token decode (lightning_attention_step) == prefill == oracle, with and without slopes
// (a zero slope on one head), V below and above a vector.
TEST(LightningAttentionTest, StepByStepEqualsPrefillAndOracle) {
  std::uint64_t seed = 180;
  for (bool with_slopes : {false, true})
    for (Index V : {7, 33}) {
      LinearCase c;
      c.batch = 2, c.length = 40, c.heads = 3, c.key_dim = 17, c.value_dim = V, c.chunk = 16, c.initial = true;
      c.seed = seed++;
      const LightningInputs li(c, {0.f, 0.1f, 1.5f}, with_slopes);
      const auto expected = ref::lightning_attention<double>(li.in.q, li.in.k, li.in.v, li.options());
      Tensor<float, 4> state = li.in.h0;
      const Tensor<float, 4> steps = run_steps(li, state, 0, c.length);
      testing::linear_report("step out", steps, expected.out);
      EXPECT_TRUE(testing::all_close(steps, expected.out, kTol, "steps vs oracle " + c.describe()));
      EXPECT_TRUE(testing::all_close(state, expected.final_state, kTol, "step state vs oracle " + c.describe()));
      for (LinearAlgorithm a : kForms) {
        const auto prefill = linear::lightning_attention(li.in.q, li.in.k, li.in.v, li.options(a));
        EXPECT_TRUE(testing::all_close(steps, prefill.out, kTol, std::string("steps vs ") + form_name(a)));
        EXPECT_TRUE(testing::all_close(state, prefill.final_state, kTol, std::string("step state vs ") + form_name(a)));
      }
    }
}

// Prefill of L1 tokens then a prefill of L2 from its state == one prefill of L1 + L2 (both forms;
// bitwise for the recurrent one), and prefill then decode steps == one prefill.
TEST(LightningAttentionTest, StateCarriesAcrossCalls) {
  LinearCase c;
  c.batch = 2, c.length = 45, c.heads = 2, c.key_dim = 8, c.value_dim = 20, c.chunk = 16, c.initial = true;
  c.seed = 190;
  const LightningInputs li(c, {0.3f, 0.01f});
  const auto expected = ref::lightning_attention<double>(li.in.q, li.in.k, li.in.v, li.options());
  for (LinearAlgorithm a : kForms) {
    const auto whole = linear::lightning_attention(li.in.q, li.in.k, li.in.v, li.options(a));
    for (Index split : {Index(0), Index(1), Index(16), Index(23), c.length}) {
      auto run = [&](Index from, Index to, const Tensor<float, 4>& h0) {
        auto o = li.options(a);
        o.initial_state.emplace(h0.data(), h0.dimensions());
        return linear::lightning_attention(testing::linear_tokens<4>(li.in.q, from, to),
                                           testing::linear_tokens<4>(li.in.k, from, to),
                                           testing::linear_tokens<4>(li.in.v, from, to), o);
      };
      const auto first = run(0, split, li.in.h0);
      const auto second = run(split, c.length, first.final_state);
      const std::string where = std::string(form_name(a)) + " split at " + std::to_string(split);
      const Tensor<float, 4> tail = testing::linear_tokens<4>(whole.out, split, c.length);
      if (a == LinearAlgorithm::recurrent) {
        EXPECT_TRUE(testing::bitwise_equal(second.out, tail, where + " out"));
        EXPECT_TRUE(testing::bitwise_equal(second.final_state, whole.final_state, where + " state"));
      } else {
        EXPECT_TRUE(testing::all_close(second.out, tail, kTol, where + " out"));
        EXPECT_TRUE(testing::all_close(second.final_state, whole.final_state, kTol, where + " state"));
      }
      // Then decode the rest from the first part's state.
      Tensor<float, 4> state = first.final_state;
      const Tensor<float, 4> steps = run_steps(li, state, split, c.length);
      EXPECT_TRUE(testing::all_close(steps, testing::linear_tokens<4>(expected.out, split, c.length), kTol,
                                     where + " then steps"));
      EXPECT_TRUE(testing::all_close(state, expected.final_state, kTol, where + " then steps: state"));
    }
  }
}

TEST(LightningAttentionTest, ResultsAreBitwiseIdenticalForAnyThreadCount) {
  LinearCase c;
  c.batch = 2, c.length = 70, c.heads = 3, c.key_dim = 16, c.value_dim = 24, c.chunk = 32, c.initial = true;
  c.seed = 200;
  const LightningInputs li(c, linear::alibi_slopes(3));
  ThreadPool pool(2);
  for (LinearAlgorithm a : kForms) {
    const auto one = linear::lightning_attention(li.in.q, li.in.k, li.in.v, li.options(a));
    const auto two = linear::lightning_attention(li.in.q, li.in.k, li.in.v, li.options(a, pool.device()));
    EXPECT_TRUE(testing::results_bitwise_equal(two, one, std::string(form_name(a)) + " 2 threads"));
  }
}

// ---- conventions ----

// scale defaults to 1 (TransNormerLLM), not fla's 1/sqrt(K); explicit scales are applied.
TEST(LightningAttentionTest, ScaleDefaultsToOne) {
  LinearCase c;
  c.batch = 1, c.length = 12, c.heads = 2, c.key_dim = 9, c.value_dim = 4, c.seed = 210;
  const LightningInputs li(c, {0.2f, 0.9f});
  const auto by_default = linear::lightning_attention(li.in.q, li.in.k, li.in.v, li.options());
  auto o = li.options();
  EXPECT_EQ(o.scale, 1.f);
  EXPECT_TRUE(testing::results_close(by_default, ref::lightning_attention<double>(li.in.q, li.in.k, li.in.v, o), "default"));
  o.scale = 1.f / 3.f;
  const auto third = linear::lightning_attention(li.in.q, li.in.k, li.in.v, o);
  EXPECT_TRUE(testing::results_close(third, ref::lightning_attention<double>(li.in.q, li.in.k, li.in.v, o), "scale 1/3"));
  EXPECT_TRUE(testing::within(third.out(0, 5, 1, 2), by_default.out(0, 5, 1, 2) / 3.0, kTol));
  Tensor<float, 4> s1(li.in.h0.dimensions());
  s1.setZero();
  const Tensor<float, 4> steps = run_steps(li, s1, 0, c.length);
  EXPECT_TRUE(testing::all_close(steps, by_default.out, kTol, "step default scale 1"));
}

// The exact OpenNLPLab -> fla mapping (spec A7): lightning(slopes, scale) == simple_gla(g_gamma = -slopes, scale).
TEST(LightningAttentionTest, EqualsSimpleGlaWithNegatedSlopes) {
  LinearCase c;
  c.batch = 2, c.length = 50, c.heads = 4, c.key_dim = 16, c.value_dim = 32, c.initial = true, c.seed = 220;
  const LightningInputs li(c, linear::tnl_slopes(4, 2, 6));
  Tensor<float, 1> g_gamma = -li.slopes;
  for (LinearAlgorithm a : kForms) {
    auto o = li.in.gla_options(a);
    o.g_gamma.emplace(g_gamma.data(), g_gamma.dimensions());
    o.scale = 0.5f;
    auto lo = li.options(a);
    lo.scale = 0.5f;
    EXPECT_TRUE(testing::results_bitwise_equal(linear::lightning_attention(li.in.q, li.in.k, li.in.v, lo),
                                               linear::simple_gla(li.in.q, li.in.k, li.in.v, o), form_name(a)));
  }
}

// No slopes: the no-decay variant, which is causal linear attention with the identity feature map,
// no normaliser and scale 1; a zero slope is the same.
TEST(LightningAttentionTest, NoDecayEqualsCausalLinearAttention) {
  LinearCase c;
  c.batch = 2, c.length = 45, c.heads = 2, c.key_dim = 12, c.value_dim = 20, c.initial = true, c.seed = 230;
  const LightningInputs li(c, {0.f, 0.f}, false);
  const LightningInputs zero(c, {0.f, 0.f}, true);
  for (LinearAlgorithm a : kForms) {
    const auto lightning = linear::lightning_attention(li.in.q, li.in.k, li.in.v, li.options(a));
    linear::LinearAttentionOptions o;
    o.scale = 1.f, o.algorithm = a;
    o.initial_state.emplace(li.in.h0.data(), li.in.h0.dimensions());
    const auto la = linear::linear_attention(li.in.q, li.in.k, li.in.v, o);
    EXPECT_TRUE(testing::bitwise_equal(lightning.out, la.out, std::string(form_name(a)) + " out"));
    EXPECT_TRUE(testing::bitwise_equal(lightning.final_state, la.final_state, std::string(form_name(a)) + " state"));
    EXPECT_TRUE(testing::results_close(linear::lightning_attention(zero.in.q, zero.in.k, zero.in.v, zero.options(a)),
                                       lightning, std::string(form_name(a)) + " zero slopes"));
    EXPECT_TRUE(testing::results_close(lightning, ref::linear_attention<double>(li.in.q, li.in.k, li.in.v, o),
                                       std::string(form_name(a)) + " vs ref::linear_attention"));
  }
  EXPECT_TRUE(testing::results_close(ref::lightning_attention<double>(li.in.q, li.in.k, li.in.v, li.options()),
                                     linear::lightning_attention(li.in.q, li.in.k, li.in.v, li.options()), "oracle"));
}

// OpenNLPLab's ALiBi slopes (get_slopes): 2^(-8(h+1)/H) for H a power of two; otherwise the list of
// the next lower power of two plus every other slope of twice that.
TEST(LightningAttentionTest, AlibiSlopesMatchClosedForm) {
  const std::vector<float> s8 = linear::alibi_slopes(8);
  ASSERT_EQ(s8.size(), 8u);
  for (int h = 0; h < 8; ++h) EXPECT_FLOAT_EQ(s8[std::size_t(h)], std::exp2(-(h + 1.0))) << "h=" << h;
  const std::vector<float> s4 = linear::alibi_slopes(4);
  for (int h = 0; h < 4; ++h) EXPECT_FLOAT_EQ(s4[std::size_t(h)], std::exp2(-8.0 * (h + 1) / 4)) << "h=" << h;
  const std::vector<float> s16 = linear::alibi_slopes(16);
  for (int h = 0; h < 16; ++h) EXPECT_FLOAT_EQ(s16[std::size_t(h)], std::exp2(-8.0 * (h + 1) / 16)) << "h=" << h;
  EXPECT_EQ(linear::alibi_slopes(6), (std::vector<float>{0.25f, 0.0625f, 0.015625f, 0.00390625f, 0.5f, 0.125f}));
  EXPECT_EQ(linear::alibi_slopes(1), std::vector<float>{0.00390625f});  // 2^-8
  const std::vector<float> s12 = linear::alibi_slopes(12);  // 2^-1..2^-8, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5
  ASSERT_EQ(s12.size(), 12u);
  for (int h = 0; h < 8; ++h) EXPECT_FLOAT_EQ(s12[std::size_t(h)], std::exp2(-(h + 1.0)));
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(s12[std::size_t(8 + i)], std::exp2(-(0.5 + i)));
}

// TNL per layer: alibi · (1 - layer/(num_layers - 1) + 1e-5): the last layer keeps 1e-5 of the decay.
TEST(LightningAttentionTest, TnlSlopesScaleAlibiPerLayer) {
  const std::vector<float> a = linear::alibi_slopes(8);
  auto expect_factor = [&](Index layer, Index num_layers, double factor) {
    const std::vector<float> s = linear::tnl_slopes(8, layer, num_layers);
    ASSERT_EQ(s.size(), 8u);
    for (std::size_t h = 0; h < 8; ++h)
      EXPECT_FLOAT_EQ(s[h], float(double(a[h]) * factor)) << "layer " << layer << " of " << num_layers << " h=" << h;
  };
  expect_factor(0, 4, 1.0 + 1e-5);
  expect_factor(1, 3, 0.5 + 1e-5);
  expect_factor(3, 4, 1e-5);
  expect_factor(0, 1, 1.0 + 1e-5);  // one layer: no division by num_layers - 1 = 0
}

// fla's chunk_lightning_attn convention: slope_h = (8/H)·(1 - layer/num_layers)·h, linear in h,
// head 0 without decay.
TEST(LightningAttentionTest, FlaLightningSlopesAreLinearInHead) {
  EXPECT_EQ(linear::fla_lightning_slopes(4, 0, 2), (std::vector<float>{0.f, 2.f, 4.f, 6.f}));
  EXPECT_EQ(linear::fla_lightning_slopes(4, 1, 2), (std::vector<float>{0.f, 1.f, 2.f, 3.f}));
  const std::vector<float> s = linear::fla_lightning_slopes(12, 5, 24);
  EXPECT_EQ(s[0], 0.f);
  for (std::size_t h = 1; h < s.size(); ++h)
    EXPECT_FLOAT_EQ(s[h], float(8.0 / 12 * (1 - 5.0 / 24) * double(h))) << "h=" << h;
}

// RetNet: g_gamma_h = log(1 - 2^(-5-h)); retention == simple_gla with that g_gamma (default scale 1/sqrt(K)).
TEST(LightningAttentionTest, RetentionIsSimpleGlaWithRetNetDecays) {
  const std::vector<float> g = linear::retention_log_decay(8);
  ASSERT_EQ(g.size(), 8u);
  for (int h = 0; h < 8; ++h) EXPECT_FLOAT_EQ(g[std::size_t(h)], float(std::log(1.0 - std::exp2(-5.0 - h)))) << h;
  EXPECT_FLOAT_EQ(g[0], float(std::log(1.0 - 1.0 / 32)));
  LinearCase c;
  c.batch = 2, c.length = 60, c.heads = 8, c.key_dim = 16, c.value_dim = 16, c.initial = true, c.seed = 240;
  const LinearInputs in(c);
  Tensor<float, 1> g_gamma(8);
  for (Index h = 0; h < 8; ++h) g_gamma(h) = g[std::size_t(h)];
  for (LinearAlgorithm a : kForms) {
    const auto r = linear::retention(in.q, in.k, in.v, in.gla_options(a));
    auto o = in.gla_options(a);
    o.g_gamma.emplace(g_gamma.data(), g_gamma.dimensions());
    EXPECT_TRUE(testing::results_bitwise_equal(r, linear::simple_gla(in.q, in.k, in.v, o), form_name(a)));
    EXPECT_TRUE(testing::results_close(r, ref::simple_gla<double>(in.q, in.k, in.v, o), std::string(form_name(a)) + " oracle"));
  }
}

// ---- bad input ----

TEST(LightningAttentionTest, RejectsBadInputWithClearErrors) {
  const Index Bt = 2, L = 6, H = 3, K = 4, V = 5;
  LinearCase c;
  c.batch = Bt, c.length = L, c.heads = H, c.key_dim = K, c.value_dim = V, c.seed = 300;
  const LightningInputs li(c, {0.1f, 0.2f, 0.3f});
  const LinearInputs& in = li.in;
  using Opt = linear::LightningOptions;
  auto expect_both = [&](const Tensor<float, 4>& q, const Tensor<float, 4>& k, const Tensor<float, 4>& v, const Opt& o,
                         const std::string& fragment) {
    EXPECT_TRUE(testing::throws_error_mentioning([&] { linear::lightning_attention(q, k, v, o); }, "lightning_attention",
                                                 fragment));
    EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::lightning_attention<double>(q, k, v, o); },
                                                 "ref::lightning_attention", fragment));
  };
  const Opt none;
  expect_both(in.q, Tensor<float, 4>(Bt, L, H, K + 1), in.v, none,
              "k has shape [2, 6, 3, 5], expected [B=2, L=6, H=3, K=4] like q");
  expect_both(in.q, in.k, Tensor<float, 4>(Bt, L, H + 1, V), none,
              "v has shape [2, 6, 4, 5], expected [B=2, L=6, H=3, V=5] (the batch, length and heads of q)");
  expect_both(in.q, in.k, Tensor<float, 4>(Bt, L, H, 0), none, "expected H, K and V >= 1");
  const Tensor<float, 1> four(4);
  Opt o;
  o.slopes.emplace(four.data(), four.dimensions());
  expect_both(in.q, in.k, in.v, o, "slopes has shape [4], expected [H=3]");
  Tensor<float, 1> bad(3);
  o.slopes.emplace(bad.data(), bad.dimensions());
  bad.setValues({0.1f, -0.5f, 0.2f});
  expect_both(in.q, in.k, in.v, o, "slopes[1] is -0.5, expected a finite slope >= 0 (decay exp(-slope) in (0, 1])");
  bad.setValues({0.1f, 0.2f, std::numeric_limits<float>::quiet_NaN()});
  expect_both(in.q, in.k, in.v, o, "slopes[2] is nan, expected a finite slope >= 0");
  bad.setValues({std::numeric_limits<float>::infinity(), 0.1f, 0.2f});
  expect_both(in.q, in.k, in.v, o, "slopes[0] is inf, expected a finite slope >= 0");
  o = none, o.block_size = -2;
  expect_both(in.q, in.k, in.v, o, "block_size is -2, expected >= 0 (0: the default)");
  // (scale, initial_state and output checks: see ErrorsFromTheSharedKernelNameLightningAttention.)
  o = none, o.scale = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::lightning_attention<double>(in.q, in.k, in.v, o); },
                                               "ref::lightning_attention", "scale is nan, expected a finite number"));
  const Tensor<float, 4> bad_state(Bt, H, K + 1, V);
  o = none, o.initial_state.emplace(bad_state.data(), bad_state.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::lightning_attention<double>(in.q, in.k, in.v, o); },
                                               "ref::lightning_attention",
                                               "initial_state has shape [2, 3, 5, 5], expected [B=2, H=3, K=4, V=5]"));

  // The step.
  Tensor<float, 4> state(Bt, H, K, V);
  state.setZero();
  TensorView<float, 4> sv(state.data(), state.dimensions());
  const Tensor<float, 3> q1 = testing::token_of(in.q, 0), k1 = testing::token_of(in.k, 0), v1 = testing::token_of(in.v, 0);
  linear::LightningStepOptions so;
  so.slopes.emplace(four.data(), four.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { linear::lightning_attention_step(sv, q1, k1, v1, so); },
                                               "lightning_attention_step", "slopes has shape [4], expected [H=3]"));
  bad.setValues({0.1f, -1.f, 0.2f});
  so.slopes.emplace(bad.data(), bad.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { linear::lightning_attention_step(sv, q1, k1, v1, so); },
                                               "lightning_attention_step", "slopes[1] is -1, expected a finite slope >= 0"));

  // The slope helpers.
  EXPECT_TRUE(testing::throws_error_mentioning([] { linear::alibi_slopes(0); }, "alibi_slopes", "H is 0, expected >= 1"));
  EXPECT_TRUE(testing::throws_error_mentioning([] { linear::tnl_slopes(8, 4, 4); }, "tnl_slopes",
                                               "layer 4 of 4, expected H >= 1 and 0 <= layer < num_layers"));
  EXPECT_TRUE(testing::throws_error_mentioning([] { linear::tnl_slopes(8, -1, 4); }, "tnl_slopes",
                                               "layer -1 of 4, expected H >= 1 and 0 <= layer < num_layers"));
  EXPECT_TRUE(testing::throws_error_mentioning([] { linear::tnl_slopes(8, 0, 0); }, "tnl_slopes",
                                               "layer 0 of 0, expected H >= 1 and 0 <= layer < num_layers"));
  EXPECT_TRUE(testing::throws_error_mentioning([] { linear::tnl_slopes(0, 0, 2); }, "tnl_slopes",
                                               "H 0, layer 0 of 2, expected H >= 1"));
  EXPECT_TRUE(testing::throws_error_mentioning([] { linear::fla_lightning_slopes(0, 0, 2); }, "fla_lightning_slopes",
                                               "H 0, layer 0 of 2, expected H >= 1 and 0 <= layer < num_layers"));
  EXPECT_TRUE(testing::throws_error_mentioning([] { linear::fla_lightning_slopes(4, 2, 2); }, "fla_lightning_slopes",
                                               "H 4, layer 2 of 2, expected H >= 1 and 0 <= layer < num_layers"));
  EXPECT_TRUE(testing::throws_error_mentioning([] { linear::retention_log_decay(0); }, "retention_log_decay",
                                               "H is 0, expected >= 1"));
  linear::SimpleGlaOptions ro;
  ro.g.emplace(in.g.data(), in.g.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { linear::retention(in.q, in.k, in.v, ro); }, "retention",
                                               "the decay is fixed per head (retention_log_decay); g and g_gamma must be unset"));
  ro = {}, ro.g_gamma.emplace(in.g_gamma.data(), in.g_gamma.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { linear::retention(in.q, in.k, in.v, ro); }, "retention",
                                               "g and g_gamma must be unset"));
}

// Checks that lightning_attention / lightning_attention_step leave to simple_gla / simple_gla_step:
// their messages must still name the op the user called (DESIGN §4). See the report: today they say
// "simple_gla: ..." / "simple_gla_step: ...".
TEST(LightningAttentionTest, ErrorsFromTheSharedKernelNameLightningAttention) {
  const Index Bt = 2, L = 6, H = 3, K = 4, V = 5;
  LinearCase c;
  c.batch = Bt, c.length = L, c.heads = H, c.key_dim = K, c.value_dim = V, c.seed = 310;
  const LinearInputs in(c);
  linear::LightningOptions o;
  o.scale = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(testing::throws_error_mentioning([&] { linear::lightning_attention(in.q, in.k, in.v, o); },
                                               "lightning_attention", "scale is nan, expected a finite number"));
  const Tensor<float, 4> bad_state(Bt, H, K + 1, V);
  o = {}, o.initial_state.emplace(bad_state.data(), bad_state.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { linear::lightning_attention(in.q, in.k, in.v, o); },
                                               "lightning_attention",
                                               "initial_state has shape [2, 3, 5, 5], expected [B=2, H=3, K=4, V=5]"));
  Tensor<float, 4> out(Bt, L, H, V + 1), last(Bt, H, K, V), bad_last(Bt, H, K, V + 2);
  TensorView<float, 4> last_v(last.data(), last.dimensions()), bad_last_v(bad_last.data(), bad_last.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { linear::lightning_attention(in.q, in.k, in.v, {}, TensorView<float, 4>(out.data(), out.dimensions()), &last_v); },
      "lightning_attention", "out has shape [2, 6, 3, 6], expected [B=2, L=6, H=3, V=5]"));
  Tensor<float, 4> good_out(Bt, L, H, V);
  TensorView<float, 4> good_out_v(good_out.data(), good_out.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { linear::lightning_attention(in.q, in.k, in.v, {}, good_out_v, &bad_last_v); }, "lightning_attention",
      "final_state has shape [2, 3, 4, 7], expected [B=2, H=3, K=4, V=5]"));
  Tensor<float, 4> v_copy = in.v;
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] {
        linear::lightning_attention(in.q, in.k, v_copy, {}, TensorView<float, 4>(v_copy.data(), v_copy.dimensions()),
                                    &last_v);
      },
      "lightning_attention", "out must not overlap the inputs"));
  // The step.
  Tensor<float, 4> state(Bt, H, K, V), bad_step_state(Bt, H, K, V + 1);
  state.setZero();
  TensorView<float, 4> sv(state.data(), state.dimensions());
  const Tensor<float, 3> q1 = testing::token_of(in.q, 0), k1 = testing::token_of(in.k, 0), v1 = testing::token_of(in.v, 0);
  linear::LightningStepOptions so;
  so.scale = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(testing::throws_error_mentioning([&] { linear::lightning_attention_step(sv, q1, k1, v1, so); },
                                               "lightning_attention_step", "scale is nan, expected a finite number"));
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] {
        linear::lightning_attention_step(TensorView<float, 4>(bad_step_state.data(), bad_step_state.dimensions()), q1, k1,
                                         v1);
      },
      "lightning_attention_step", "state has shape [2, 3, 4, 6], expected [B=2, H=3, K=4, V=5]"));
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { linear::lightning_attention_step(sv, q1, Tensor<float, 3>(Bt, H, K + 1), v1); }, "lightning_attention_step",
      "k has shape [2, 3, 5], expected [B=2, H=3, K=4] like q"));
}

}  // namespace
}  // namespace lightning_attention_cases
}  // namespace tokenmix
