// linear::linear_attention (causal: the chunked / recurrent forms of simple_gla with no decay on
// φ(q), φ(k), and the normaliser as the same recurrence on a column of ones; non-causal: S = φ(K)ᵀ V)
// against ref::linear_attention (double, quadratic form), for every feature map (identity, elu + 1,
// relu), normalize on / off, causal and not, K and V around the vector width; plus hand-computed
// values, state and normaliser carry across calls, the default scale 1/sqrt(K), non-causal
// permutation equivariance, L = 0 and 1, thread-count invariance and every bad-input rule (op and
// oracle).

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/linear_case.hpp"
#include "support/random.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/linear/linear_attention.hpp"
#include "tokenmix/reference/linear_attention.hpp"

namespace tokenmix {
namespace linear_attention_cases {  // named: the family's files share one translation unit (tests/CMakeLists.txt)
namespace {

using linear::FeatureMap;
using linear::LinearAlgorithm;
using testing::LinearCase;
using testing::LinearInputs;
using testing::Rng;

// Tolerance: tests/support/tolerance.hpp (linear_attention).
constexpr testing::Tolerance kTol = testing::tolerance::linear_attention;

constexpr LinearAlgorithm kForms[] = {LinearAlgorithm::recurrent, LinearAlgorithm::chunked};

const char* form_name(LinearAlgorithm a) {
  return a == LinearAlgorithm::recurrent ? "recurrent" : a == LinearAlgorithm::chunked ? "chunked" : "auto";
}
const char* map_name(FeatureMap m) {
  return m == FeatureMap::identity ? "identity" : m == FeatureMap::elu_plus_one ? "elu+1" : "relu";
}

struct AttnCase {
  LinearCase c;
  FeatureMap map = FeatureMap::identity;
  bool causal = true, normalize = false, initial_normalizer = false;

  std::string describe() const {
    std::ostringstream os;
    os << c.describe() << " map=" << map_name(map) << " causal=" << causal << " normalize=" << normalize
       << " initial_normalizer=" << initial_normalizer;
    return os.str();
  }
};

// Inputs: LinearInputs, with q, k made positive for the identity map with normalize (a denominator
// q·Σk of random signs can be ~0, where any rounding is amplified without bound).
struct AttnInputs {
  AttnCase a;
  LinearInputs in;

  explicit AttnInputs(const AttnCase& ac) : a(ac), in(ac.c) {
    if (a.map == FeatureMap::identity && a.normalize) in.q = in.q.abs(), in.k = in.k.abs();
  }
  linear::LinearAttentionOptions options(LinearAlgorithm algorithm = LinearAlgorithm::auto_select,
                                         const Eigen::ThreadPoolDevice* device = nullptr) const {
    linear::LinearAttentionOptions o;
    o.causal = a.causal, o.feature_map = a.map, o.normalize = a.normalize;
    if (a.c.initial) o.initial_state.emplace(in.h0.data(), in.h0.dimensions());
    if (a.initial_normalizer) o.initial_normalizer.emplace(in.z0.data(), in.z0.dimensions());
    o.algorithm = algorithm, o.chunk_size = a.c.chunk, o.device = device;
    return o;
  }
};

::testing::AssertionResult matches_oracle(const AttnCase& ac) {
  const AttnInputs x(ac);
  const auto expected = ref::linear_attention<double>(x.in.q, x.in.k, x.in.v, x.options());
  for (LinearAlgorithm a : kForms) {
    const auto r = linear::linear_attention(x.in.q, x.in.k, x.in.v, x.options(a));
    auto ok = testing::results_close(r, expected, std::string(ac.causal ? form_name(a) : "noncausal") + " " + ac.describe());
    if (!ok) return ok;
    if (!ac.causal) break;  // one non-causal path
  }
  return ::testing::AssertionSuccess();
}

// ---- the oracle ----

TEST(LinearAttentionTest, OracleMatchesHandComputedValues) {
  // relu, normalize, eps 0, scale 1, K = 2, V = 1, L = 2: φ(k0) = [1, 2], φ(k1) = [0, 1], S = [1, 5],
  // z = [1, 3]; φ(q0) = [1, 0]: o0 = 1 / 1; φ(q1) = [2, 3]: o1 = 17 / 11 (causal and not).
  Tensor<float, 4> q(1, 2, 1, 2), k(1, 2, 1, 2), v(1, 2, 1, 1);
  q.setValues({{{{1.f, -1.f}}, {{2.f, 3.f}}}});
  k.setValues({{{{1.f, 2.f}}, {{-1.f, 1.f}}}});
  v.setValues({{{{1.f}}, {{3.f}}}});
  linear::LinearAttentionOptions o;
  o.feature_map = FeatureMap::relu, o.normalize = true, o.eps = 0.f, o.scale = 1.f;
  for (bool causal : {true, false}) {
    o.causal = causal;
    const auto r = ref::linear_attention<double>(q, k, v, o);
    EXPECT_FLOAT_EQ(r.out(0, 0, 0, 0), 1.f);
    EXPECT_FLOAT_EQ(r.out(0, 1, 0, 0), 17.f / 11.f);
    EXPECT_FLOAT_EQ(r.final_state(0, 0, 0, 0), 1.f);
    EXPECT_FLOAT_EQ(r.final_state(0, 0, 1, 0), 5.f);
    EXPECT_FLOAT_EQ(r.final_normalizer(0, 0, 0), 1.f);
    EXPECT_FLOAT_EQ(r.final_normalizer(0, 0, 1), 3.f);
    EXPECT_TRUE(testing::results_close(linear::linear_attention(q, k, v, o), r, causal ? "causal" : "noncausal"));
  }
  // elu + 1, no normaliser, K = V = 1, L = 1: φ(-1) = e^-1, φ(0.5) = 1.5, o = e^-1 · 1.5 · 2.
  Tensor<float, 4> q1(1, 1, 1, 1), k1(1, 1, 1, 1), v1(1, 1, 1, 1);
  q1.setConstant(-1.f), k1.setConstant(0.5f), v1.setConstant(2.f);
  linear::LinearAttentionOptions e;
  e.feature_map = FeatureMap::elu_plus_one, e.scale = 1.f;
  EXPECT_NEAR(ref::linear_attention<double>(q1, k1, v1, e).out(0, 0, 0, 0), 3.0 / std::exp(1.0), 1e-7);
  EXPECT_TRUE(testing::within(linear::linear_attention(q1, k1, v1, e).out(0, 0, 0, 0), 3.0 / std::exp(1.0), kTol));
}

// ---- the op against the oracle ----

// K and V around the vector width; the twelve (map, normalize, causal) combinations rotate over the
// shapes, each seen several times; causal cases with an initial state / normaliser every other time.
TEST(LinearAttentionTest, MatchesOracleAroundVectorWidth) {
  std::uint64_t seed = 100;
  int variant = 0;
  for (Index K : {5, 16, 17, 64})
    for (Index V : {1, 7, 16, 33, 64})
      for (int rep = 0; rep < 3; ++rep, ++variant) {
        AttnCase ac;
        ac.c.batch = 2, ac.c.length = 37, ac.c.heads = 2, ac.c.key_dim = K, ac.c.value_dim = V, ac.c.chunk = 16;
        ac.map = static_cast<FeatureMap>(variant % 3);
        ac.normalize = (variant / 3) % 2 == 1;
        ac.causal = (variant / 6) % 2 == 0;
        ac.c.initial = ac.causal && (variant / 12) % 2 == 0;
        ac.initial_normalizer = ac.c.initial && ac.normalize;
        ac.c.seed = seed++;
        EXPECT_TRUE(matches_oracle(ac));
      }
}

// Lengths 0, 1, < chunk, several chunks; chunk sizes that do / do not divide L.
TEST(LinearAttentionTest, MatchesOracleForLengthsAndChunkSizes) {
  std::uint64_t seed = 200;
  for (Index L : {0, 1, 5, 64, 97})
    for (Index chunk : {0, 1, 7, 64})
      for (bool causal : {true, false}) {
        AttnCase ac;
        ac.c.batch = 1, ac.c.length = L, ac.c.heads = 3, ac.c.key_dim = 8, ac.c.value_dim = 17, ac.c.chunk = chunk;
        ac.map = FeatureMap::elu_plus_one, ac.normalize = true, ac.causal = causal;
        ac.c.initial = ac.initial_normalizer = causal;
        ac.c.seed = seed++;
        EXPECT_TRUE(matches_oracle(ac));
      }
}

TEST(LinearAttentionTest, MatchesOracleOnRandomSweep) {
  Rng rng(2027);
  for (int i = 0; i < 30; ++i) {
    AttnCase ac;
    ac.c.batch = testing::random_index(1, 2, rng);
    ac.c.length = testing::random_index(0, 80, rng);
    ac.c.heads = testing::random_index(1, 3, rng);
    ac.c.key_dim = testing::random_index(1, 40, rng);
    ac.c.value_dim = testing::random_index(1, 40, rng);
    ac.c.chunk = testing::random_index(0, 40, rng);
    ac.map = static_cast<FeatureMap>(testing::random_index(0, 2, rng));
    ac.normalize = testing::random_index(0, 1, rng);
    ac.causal = testing::random_index(0, 1, rng);
    ac.c.initial = ac.causal && testing::random_index(0, 1, rng);
    ac.initial_normalizer = ac.causal && ac.normalize && testing::random_index(0, 1, rng);
    ac.c.seed = 4000 + static_cast<std::uint64_t>(i);
    EXPECT_TRUE(matches_oracle(ac));
  }
}

// L = 0: causal passes the initial state and normaliser through; non-causal gives zeros.
TEST(LinearAttentionTest, EmptySequence) {
  AttnCase ac;
  ac.c.batch = 2, ac.c.length = 0, ac.c.heads = 2, ac.c.key_dim = 3, ac.c.value_dim = 4, ac.c.seed = 250;
  ac.map = FeatureMap::elu_plus_one, ac.normalize = true;
  for (bool causal : {true, false}) {
    ac.causal = causal, ac.c.initial = ac.initial_normalizer = causal;
    const AttnInputs x(ac);
    const auto r = linear::linear_attention(x.in.q, x.in.k, x.in.v, x.options());
    EXPECT_EQ(r.out.size(), 0);
    if (causal) {
      EXPECT_TRUE(testing::bitwise_equal(r.final_state, x.in.h0, "state"));
      EXPECT_TRUE(testing::bitwise_equal(r.final_normalizer, x.in.z0, "normalizer"));
    } else {
      for (Index i = 0; i < r.final_state.size(); ++i) ASSERT_EQ(r.final_state.data()[i], 0.f);
      for (Index i = 0; i < r.final_normalizer.size(); ++i) ASSERT_EQ(r.final_normalizer.data()[i], 0.f);
    }
    EXPECT_TRUE(testing::results_close(r, ref::linear_attention<double>(x.in.q, x.in.k, x.in.v, x.options()), "oracle"));
  }
}

// ---- properties ----

// A causal prefill of L1 tokens, then one of L2 from its final state and normaliser == one prefill of
// L1 + L2: bitwise for the recurrent form, within tolerance for the chunked one.
TEST(LinearAttentionTest, StateAndNormalizerCarryAcrossCalls) {
  for (FeatureMap map : {FeatureMap::identity, FeatureMap::elu_plus_one, FeatureMap::relu}) {
    AttnCase ac;
    ac.c.batch = 2, ac.c.length = 41, ac.c.heads = 2, ac.c.key_dim = 10, ac.c.value_dim = 24, ac.c.chunk = 8;
    ac.map = map, ac.normalize = true, ac.c.initial = ac.initial_normalizer = true, ac.c.seed = 300;
    const AttnInputs x(ac);
    for (LinearAlgorithm a : kForms) {
      const auto whole = linear::linear_attention(x.in.q, x.in.k, x.in.v, x.options(a));
      for (Index split : {Index(0), Index(1), Index(13), Index(16), ac.c.length}) {
        auto run = [&](Index from, Index to, const Tensor<float, 4>& h0, const Tensor<float, 3>& z0) {
          auto o = x.options(a);
          o.initial_state.emplace(h0.data(), h0.dimensions());
          o.initial_normalizer.emplace(z0.data(), z0.dimensions());
          return linear::linear_attention(testing::linear_tokens<4>(x.in.q, from, to),
                                          testing::linear_tokens<4>(x.in.k, from, to),
                                          testing::linear_tokens<4>(x.in.v, from, to), o);
        };
        const auto first = run(0, split, x.in.h0, x.in.z0);
        const auto second = run(split, ac.c.length, first.final_state, first.final_normalizer);
        const std::string where =
            std::string(map_name(map)) + " " + form_name(a) + " split at " + std::to_string(split);
        const Tensor<float, 4> tail = testing::linear_tokens<4>(whole.out, split, ac.c.length);
        if (a == LinearAlgorithm::recurrent) {
          EXPECT_TRUE(testing::bitwise_equal(second.out, tail, where + " out"));
          EXPECT_TRUE(testing::bitwise_equal(second.final_state, whole.final_state, where + " state"));
          EXPECT_TRUE(testing::bitwise_equal(second.final_normalizer, whole.final_normalizer, where + " normalizer"));
        } else {
          EXPECT_TRUE(testing::all_close(second.out, tail, kTol, where + " out"));
          EXPECT_TRUE(testing::all_close(second.final_state, whole.final_state, kTol, where + " state"));
          EXPECT_TRUE(testing::all_close(second.final_normalizer, whole.final_normalizer, kTol, where + " normalizer"));
        }
      }
    }
  }
}

// Non-causal: reversing the tokens reverses the outputs (every query sees all keys), and the final
// state and normaliser equal the causal ones (the same sums).
TEST(LinearAttentionTest, NonCausalIsPermutationEquivariant) {
  AttnCase ac;
  ac.c.batch = 2, ac.c.length = 30, ac.c.heads = 3, ac.c.key_dim = 16, ac.c.value_dim = 20, ac.c.seed = 310;
  ac.map = FeatureMap::elu_plus_one, ac.normalize = true, ac.causal = false;
  const AttnInputs x(ac);
  const auto fwd = linear::linear_attention(x.in.q, x.in.k, x.in.v, x.options());
  auto reversed = [&](const Tensor<float, 4>& t) {
    Tensor<float, 4> r(t.dimensions());
    for (Index l = 0; l < t.dimension(1); ++l)
      testing::set_token(r, t.dimension(1) - 1 - l, testing::token_of(t, l));
    return r;
  };
  const auto rev = linear::linear_attention(reversed(x.in.q), reversed(x.in.k), reversed(x.in.v), x.options());
  EXPECT_TRUE(testing::all_close(reversed(rev.out), fwd.out, kTol, "reversed out"));
  auto o = x.options();
  o.causal = true;
  const auto causal = linear::linear_attention(x.in.q, x.in.k, x.in.v, o);
  EXPECT_TRUE(testing::all_close(fwd.final_state, causal.final_state, kTol, "state"));
  EXPECT_TRUE(testing::all_close(fwd.final_normalizer, causal.final_normalizer, kTol, "normalizer"));
  // The last causal output sees every key: it equals the non-causal one.
  EXPECT_TRUE(testing::all_close(testing::linear_tokens<4>(causal.out, 29, 30), testing::linear_tokens<4>(fwd.out, 29, 30),
                                 kTol, "last token"));
}

// scale defaults to 1/sqrt(K) (fla); with normalize it cancels but for eps.
TEST(LinearAttentionTest, ScaleDefaultsToInverseSqrtK) {
  for (bool causal : {true, false}) {
    AttnCase ac;
    ac.c.batch = 1, ac.c.length = 20, ac.c.heads = 2, ac.c.key_dim = 16, ac.c.value_dim = 8, ac.c.seed = 320;
    ac.causal = causal;
    const AttnInputs x(ac);
    auto o = x.options();
    const auto by_default = linear::linear_attention(x.in.q, x.in.k, x.in.v, o);
    o.scale = 0.25f;
    EXPECT_TRUE(testing::results_bitwise_equal(linear::linear_attention(x.in.q, x.in.k, x.in.v, o), by_default, "0.25"));
    o.scale.reset();
    EXPECT_TRUE(testing::results_close(by_default, ref::linear_attention<double>(x.in.q, x.in.k, x.in.v, o), "oracle"));
    o.feature_map = FeatureMap::elu_plus_one, o.normalize = true, o.eps = 0.f;
    const auto n1 = linear::linear_attention(x.in.q, x.in.k, x.in.v, o);
    o.scale = 7.f;
    const auto n7 = linear::linear_attention(x.in.q, x.in.k, x.in.v, o);
    EXPECT_TRUE(testing::all_close(n7.out, n1.out, kTol, "normalized output is scale-free"));
  }
}

TEST(LinearAttentionTest, ResultsAreBitwiseIdenticalForAnyThreadCount) {
  ThreadPool pool(2);
  for (bool causal : {true, false}) {
    AttnCase ac;
    ac.c.batch = 2, ac.c.length = 70, ac.c.heads = 3, ac.c.key_dim = 17, ac.c.value_dim = 33, ac.c.chunk = 16;
    ac.map = FeatureMap::elu_plus_one, ac.normalize = true, ac.causal = causal;
    ac.c.initial = ac.initial_normalizer = causal, ac.c.seed = 330;
    const AttnInputs x(ac);
    for (LinearAlgorithm a : kForms) {
      const auto one = linear::linear_attention(x.in.q, x.in.k, x.in.v, x.options(a));
      const auto two = linear::linear_attention(x.in.q, x.in.k, x.in.v, x.options(a, pool.device()));
      EXPECT_TRUE(testing::results_bitwise_equal(two, one, std::string(causal ? form_name(a) : "noncausal") + " 2 threads"));
    }
  }
}

// ---- bad input ----

TEST(LinearAttentionTest, RejectsBadInputWithClearErrors) {
  const Index Bt = 2, L = 6, H = 3, K = 4, V = 5;
  LinearCase c;
  c.batch = Bt, c.length = L, c.heads = H, c.key_dim = K, c.value_dim = V, c.seed = 400;
  const LinearInputs in(c);
  using Opt = linear::LinearAttentionOptions;
  auto expect_both = [&](const Tensor<float, 4>& q, const Tensor<float, 4>& k, const Tensor<float, 4>& v, const Opt& o,
                         const std::string& fragment) {
    EXPECT_TRUE(testing::throws_error_mentioning([&] { linear::linear_attention(q, k, v, o); }, "linear_attention",
                                                 fragment));
    EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::linear_attention<double>(q, k, v, o); },
                                                 "ref::linear_attention", fragment));
  };
  const Opt none;
  expect_both(in.q, Tensor<float, 4>(Bt, L, H, K - 1), in.v, none,
              "k has shape [2, 6, 3, 3], expected [B=2, L=6, H=3, K=4] like q");
  expect_both(in.q, in.k, Tensor<float, 4>(Bt, L + 2, H, V), none,
              "v has shape [2, 8, 3, 5], expected [B=2, L=6, H=3, V=5] (the batch, length and heads of q)");
  expect_both(Tensor<float, 4>(Bt, L, H, 0), Tensor<float, 4>(Bt, L, H, 0), in.v, none, "expected H, K and V >= 1");
  Opt o;
  o.scale = std::numeric_limits<float>::quiet_NaN();
  expect_both(in.q, in.k, in.v, o, "scale is nan, expected a finite number");
  o = none, o.causal = false, o.initial_state.emplace(in.h0.data(), in.h0.dimensions());
  expect_both(in.q, in.k, in.v, o, "initial_state / initial_normalizer continue a causal sequence; causal is false");
  o = none, o.causal = false, o.normalize = true, o.initial_normalizer.emplace(in.z0.data(), in.z0.dimensions());
  expect_both(in.q, in.k, in.v, o, "initial_state / initial_normalizer continue a causal sequence; causal is false");
  o = none, o.initial_normalizer.emplace(in.z0.data(), in.z0.dimensions());
  expect_both(in.q, in.k, in.v, o, "initial_normalizer / final_normalizer need normalize = true");
  o = none, o.eps = -1e-6f;
  expect_both(in.q, in.k, in.v, o, "eps is -1e-06, expected finite >= 0");
  o = none, o.eps = std::numeric_limits<float>::quiet_NaN();
  expect_both(in.q, in.k, in.v, o, "eps is nan, expected finite >= 0");
  o = none, o.eps = std::numeric_limits<float>::infinity();
  expect_both(in.q, in.k, in.v, o, "eps is inf, expected finite >= 0");
  const Tensor<float, 4> bad_state(Bt, H, K, V + 1);
  o = none, o.initial_state.emplace(bad_state.data(), bad_state.dimensions());
  expect_both(in.q, in.k, in.v, o, "initial_state has shape [2, 3, 4, 6], expected [B=2, H=3, K=4, V=5]");
  const Tensor<float, 3> bad_z(Bt, H + 1, K);
  o = none, o.normalize = true, o.initial_normalizer.emplace(bad_z.data(), bad_z.dimensions());
  expect_both(in.q, in.k, in.v, o, "initial_normalizer has shape [2, 4, 4], expected [B=2, H=3, K=4]");
  o = none, o.chunk_size = -3;
  expect_both(in.q, in.k, in.v, o, "chunk_size is -3, expected >= 0 (0: the default)");
}

// The view-based core: outputs shapes, final_normalizer without normalize, out over the inputs.
TEST(LinearAttentionTest, ViewCoreRejectsBadOutputsWithClearErrors) {
  const Index Bt = 2, L = 6, H = 3, K = 4, V = 5;
  LinearCase c;
  c.batch = Bt, c.length = L, c.heads = H, c.key_dim = K, c.value_dim = V, c.seed = 410;
  const LinearInputs in(c);
  linear::LinearAttentionOptions o;
  o.normalize = true;
  Tensor<float, 4> out(Bt, L, H, V), bad_out(Bt, L, H, V + 1), st(Bt, H, K, V), bad_st(Bt, H, K + 1, V);
  Tensor<float, 3> z(Bt, H, K), bad_z(Bt, H, K + 1);
  TensorView<float, 4> ov(out.data(), out.dimensions()), bad_ov(bad_out.data(), bad_out.dimensions());
  TensorView<float, 4> sv(st.data(), st.dimensions()), bad_sv(bad_st.data(), bad_st.dimensions());
  TensorView<float, 3> zv(z.data(), z.dimensions()), bad_zv(bad_z.data(), bad_z.dimensions());
  auto expect = [&](const linear::LinearAttentionOptions& opt, const Tensor<float, 4>& q, const Tensor<float, 4>& v,
                    TensorView<float, 4> o4, TensorView<float, 4>* s4, TensorView<float, 3>* z3, const std::string& fragment) {
    EXPECT_TRUE(testing::throws_error_mentioning([&] { linear::linear_attention(q, in.k, v, opt, o4, s4, z3); },
                                                 "linear_attention", fragment));
  };
  expect(o, in.q, in.v, bad_ov, &sv, &zv, "out has shape [2, 6, 3, 6], expected [B=2, L=6, H=3, V=5]");
  expect(o, in.q, in.v, ov, &bad_sv, &zv, "final_state has shape [2, 3, 5, 5], expected [B=2, H=3, K=4, V=5]");
  expect(o, in.q, in.v, ov, &sv, &bad_zv, "final_normalizer has shape [2, 3, 5], expected [B=2, H=3, K=4]");
  linear::LinearAttentionOptions plain;
  expect(plain, in.q, in.v, ov, &sv, &zv, "initial_normalizer / final_normalizer need normalize = true");
  Tensor<float, 4> v_copy = in.v;
  expect(o, in.q, v_copy, TensorView<float, 4>(v_copy.data(), v_copy.dimensions()), &sv, &zv,
         "out must not overlap the inputs");
  // q larger than out: out over q's first floats.
  Tensor<float, 4> q_copy = in.q;
  expect(o, q_copy, in.v, TensorView<float, 4>(q_copy.data() + 1, out.dimensions()), nullptr, nullptr,
         "out must not overlap the inputs");
}

// The view-based core with and without the optional outputs gives the convenience overload's results.
TEST(LinearAttentionTest, ViewCoreMatchesConvenienceOverload) {
  for (bool causal : {true, false}) {
    AttnCase ac;
    ac.c.batch = 2, ac.c.length = 40, ac.c.heads = 2, ac.c.key_dim = 9, ac.c.value_dim = 20, ac.c.seed = 420;
    ac.map = FeatureMap::elu_plus_one, ac.normalize = true, ac.causal = causal;
    ac.c.initial = ac.initial_normalizer = causal;
    const AttnInputs x(ac);
    const auto expected = linear::linear_attention(x.in.q, x.in.k, x.in.v, x.options());
    Tensor<float, 4> out(expected.out.dimensions()), st(expected.final_state.dimensions());
    Tensor<float, 3> z(expected.final_normalizer.dimensions());
    TensorView<float, 4> ov(out.data(), out.dimensions()), sv(st.data(), st.dimensions());
    TensorView<float, 3> zv(z.data(), z.dimensions());
    linear::linear_attention(x.in.q, x.in.k, x.in.v, x.options(), ov, &sv, &zv);
    EXPECT_TRUE(testing::bitwise_equal(out, expected.out, "out"));
    EXPECT_TRUE(testing::bitwise_equal(st, expected.final_state, "final_state"));
    EXPECT_TRUE(testing::bitwise_equal(z, expected.final_normalizer, "final_normalizer"));
    out.setZero();
    linear::linear_attention(x.in.q, x.in.k, x.in.v, x.options(), ov, nullptr, nullptr);
    EXPECT_TRUE(testing::bitwise_equal(out, expected.out, "out without the optional outputs"));
  }
}

// final_state / final_normalizer written over out (see the report): the outputs overwrite each
// other; they should be rejected as out over the inputs is.
TEST(LinearAttentionTest, ViewCoreRejectsOutputsOverlappingEachOther) {
  const Index Bt = 1, L = 8, H = 2, K = 3, V = 4;
  LinearCase c;
  c.batch = Bt, c.length = L, c.heads = H, c.key_dim = K, c.value_dim = V, c.seed = 430;
  const LinearInputs in(c);
  linear::LinearAttentionOptions o;
  o.normalize = true, o.feature_map = FeatureMap::elu_plus_one;
  Tensor<float, 4> out(Bt, L, H, V);  // 64 floats: room for the state (24) or the normaliser (6) inside
  Tensor<float, 4> st(Bt, H, K, V);
  Tensor<float, 3> z(Bt, H, K);
  TensorView<float, 4> ov(out.data(), out.dimensions()), sv(st.data(), st.dimensions());
  TensorView<float, 3> zv(z.data(), z.dimensions());
  TensorView<float, 4> state_over_out(out.data() + 8, st.dimensions());
  TensorView<float, 3> z_over_out(out.data() + 40, z.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { linear::linear_attention(in.q, in.k, in.v, o, ov, &state_over_out, &zv); }, "linear_attention",
      "final_state must not overlap out"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { linear::linear_attention(in.q, in.k, in.v, o, ov, &sv, &z_over_out); },
                                               "linear_attention", "final_normalizer must not overlap out"));
}

// NaN in one key feature reaches every output and state entry that key touches, for every feature
// map (φ(NaN) = NaN, as torch's relu / elu), and nothing before it (causal).
TEST(LinearAttentionTest, NanInKeysPropagatesThroughEveryFeatureMap) {
  for (FeatureMap map : {FeatureMap::identity, FeatureMap::elu_plus_one, FeatureMap::relu})
    for (bool causal : {true, false}) {
      AttnCase ac;
      ac.c.batch = 1, ac.c.length = 6, ac.c.heads = 2, ac.c.key_dim = 4, ac.c.value_dim = 3, ac.c.seed = 440;
      ac.map = map, ac.causal = causal;
      AttnInputs x(ac);
      x.in.q = x.in.q.abs() + 0.1f;  // no zero features of q (relu), so every output reads every key feature
      x.in.k(0, 2, 1, 1) = std::numeric_limits<float>::quiet_NaN();
      const auto ref_r = ref::linear_attention<double>(x.in.q, x.in.k, x.in.v, x.options());
      const auto r = linear::linear_attention(x.in.q, x.in.k, x.in.v, x.options());
      const std::string where = std::string(map_name(map)) + (causal ? " causal" : " noncausal");
      for (Index t = 0; t < ac.c.length; ++t)
        for (Index h = 0; h < ac.c.heads; ++h) {
          const bool touched = h == 1 && (!causal || t >= 2);
          EXPECT_EQ(std::isnan(ref_r.out(0, t, h, 0)), touched) << "oracle " << where << " t=" << t << " h=" << h;
          EXPECT_EQ(std::isnan(r.out(0, t, h, 0)), touched) << where << " t=" << t << " h=" << h;
        }
      EXPECT_TRUE(std::isnan(r.final_state(0, 1, 1, 0))) << where;
      EXPECT_FALSE(std::isnan(r.final_state(0, 0, 1, 0))) << where;
    }
}

}  // namespace
}  // namespace linear_attention_cases
}  // namespace tokenmix
