// The linear-attention family (linear/lightning_attention.hpp, simple_gla.hpp, linear_attention.hpp)
// against numbers produced by independent PyTorch transcriptions of the public reference code
// (tests/data/make_linear_fixture.py: OpenNLPLab/lightning-attention's torch linear_attn and
// get_slopes / TnlAttention slopes; fla's naive_recurrent_simple_gla, naive_retention /
// chunk_retention, chunk_lightning_attn, naive_recurrent_linear_attn + normalize; fast-transformers'
// non-causal LinearAttention). The argument mapping of every case is documented in the script; the
// inputs are the float32 values the float64 reference used. The oracles (reference/linear_attention.hpp,
// quadratic form in double) are checked with tolerance::oracle_vs_fixture; the fast ops with
// tolerance::linear_attention, every causal case in both forms (recurrent; chunked with the default
// chunk and with chunks that leave a ragged last chunk; auto) and, for Lightning, the decode step.
//
// Set TOKENMIX_FIXTURE_REPORT=1 to print the measured worst errors of every comparison.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "support/compare.hpp"
#include "support/fixture.hpp"
#include "support/tolerance.hpp"
#include "tokenmix/io/npy.hpp"
#include "tokenmix/linear/lightning_attention.hpp"
#include "tokenmix/linear/linear_attention.hpp"
#include "tokenmix/linear/linear_attention_types.hpp"
#include "tokenmix/linear/simple_gla.hpp"
#include "tokenmix/reference/linear_attention.hpp"

namespace tokenmix {
namespace linear_fixture_cases {  // named: the family's files share one translation unit (tests/CMakeLists.txt)
namespace {

const testing::Tolerance kOracle = testing::tolerance::oracle_vs_fixture;
const testing::Tolerance kFast = testing::tolerance::linear_attention;

std::string case_dir(const std::string& name) { return testing::fixture_dir("linear", name); }

template <int R>
Tensor<float, R> load(const std::string& name, const std::string& file) {
  return testing::load_fixture<R>("linear", name, file);
}

// params.txt: "key value..." lines.
std::map<std::string, std::string> params(const std::string& name) {
  std::ifstream in(case_dir(name) + "params.txt");
  EXPECT_TRUE(in.good()) << "missing " << case_dir(name) << "params.txt";
  std::map<std::string, std::string> p;
  std::string line;
  while (std::getline(in, line)) {
    const auto space = line.find(' ');
    if (space != std::string::npos) p[line.substr(0, space)] = line.substr(space + 1);
  }
  return p;
}


// Parameter vectors: element-wise within `ulps` float ulps of the saved float32 values.
::testing::AssertionResult same_floats(const std::vector<float>& actual, const Tensor<float, 1>& expected, int ulps,
                                       const std::string& what) {
  if (Index(actual.size()) != expected.size())
    return ::testing::AssertionFailure() << what << ": " << actual.size() << " values, expected " << expected.size();
  double worst = 0;
  for (Index i = 0; i < expected.size(); ++i) {
    const double a = actual[std::size_t(i)], e = expected(i);
    const double ulp = std::max(double(std::nextafter(std::fabs(float(e)), INFINITY) - std::fabs(float(e))), 1e-45);
    const double n = std::fabs(a - e) / ulp;
    worst = std::max(worst, n);
    if (n > ulps)
      return ::testing::AssertionFailure() << what << "[" << i << "] = " << a << ", expected " << e << " (" << n
                                           << " ulp)";
  }
  const char* env = std::getenv("TOKENMIX_FIXTURE_REPORT");
  if (env && std::string(env) == "1") std::printf("[fixture] %-58s worst %.1f ulp\n", what.c_str(), worst);
  return ::testing::AssertionSuccess();
}

// The forms every causal case runs in. chunk 8 / 5 leave a ragged last chunk at each fixture's L.
struct Form {
  linear::LinearAlgorithm algorithm;
  Index chunk;
  const char* name;
};
const Form kForms[] = {{linear::LinearAlgorithm::recurrent, 0, "recurrent"},
                       {linear::LinearAlgorithm::chunked, 0, "chunked(64)"},
                       {linear::LinearAlgorithm::chunked, 8, "chunked(8)"},
                       {linear::LinearAlgorithm::chunked, 5, "chunked(5)"},
                       {linear::LinearAlgorithm::auto_select, 0, "auto"}};


// [B, L, H, X] -> token t as [B, H, X].
Tensor<float, 3> token(const Tensor<float, 4>& x, Index t) {
  Tensor<float, 3> y(x.dimension(0), x.dimension(2), x.dimension(3));
  for (Index b = 0; b < x.dimension(0); ++b)
    for (Index h = 0; h < x.dimension(2); ++h)
      for (Index c = 0; c < x.dimension(3); ++c) y(b, h, c) = x(b, t, h, c);
  return y;
}

struct QkvCase {
  std::string name;
  Tensor<float, 4> q, k, v, out;
  explicit QkvCase(const std::string& n) : name(n) {
    q = load<4>(n, "q"), k = load<4>(n, "k"), v = load<4>(n, "v"), out = load<4>(n, "out");
  }
};

// ---- (a) Lightning Attention, OpenNLPLab torch reference with TNL slopes (H 6, layer 3 of 8) ---------

// Runs lightning_attention_step over every token of q, k, v from `state` (updated in place); returns
// the outputs [B, L, H, V].
Tensor<float, 4> lightning_steps(const QkvCase& c, const linear::LightningStepOptions& o, Tensor<float, 4>& state) {
  const Index B = c.q.dimension(0), L = c.q.dimension(1), H = c.q.dimension(2), V = c.v.dimension(3);
  Tensor<float, 4> out(B, L, H, V);
  for (Index t = 0; t < L; ++t) {
    const Tensor<float, 3> q1 = token(c.q, t), k1 = token(c.k, t), v1 = token(c.v, t);
    const Tensor<float, 3> o1 =
        linear::lightning_attention_step(TensorView<float, 4>(state.data(), state.dimensions()), q1, k1, v1, o);
    for (Index b = 0; b < B; ++b)
      for (Index h = 0; h < H; ++h)
        for (Index e = 0; e < V; ++e) out(b, t, h, e) = o1(b, h, e);
  }
  return out;
}

TEST(LightningTnlFixture, SlopesMatchOpenNLPLab) {
  const auto p = params("lightning_tnl");
  const Index H = 6, layer = std::stol(p.at("layer")), layers = std::stol(p.at("num_layers"));
  // get_slopes: powers of two, exact.
  EXPECT_TRUE(same_floats(linear::alibi_slopes(H), load<1>("lightning_tnl", "slopes_base"), 0, "alibi_slopes(6)"));
  // TnlAttention multiplies the float32 slopes by the factor in float32; tokenmix in double, rounded once.
  EXPECT_TRUE(same_floats(linear::tnl_slopes(H, layer, layers), load<1>("lightning_tnl", "slopes"), 1,
                          "tnl_slopes(6, 3, 8)"));
}

TEST(LightningTnlFixture, MatchesOpenNLPLabTorchReference) {
  const QkvCase c("lightning_tnl");
  const Tensor<float, 1> saved = load<1>(c.name, "slopes");
  const std::vector<float> ours = linear::tnl_slopes(6, 3, 8);
  {
    linear::LightningOptions o;
    o.slopes.emplace(saved.data(), saved.size());
    EXPECT_TRUE(testing::check_fixture(ref::lightning_attention(c.q, c.k, c.v, o).out, c.out, kOracle, c.name + " ref"));
  }
  for (const Form& f : kForms) {
    linear::LightningOptions o;  // scale: the default 1 (TNL)
    o.slopes.emplace(saved.data(), saved.size());
    o.algorithm = f.algorithm, o.block_size = f.chunk;
    EXPECT_TRUE(testing::check_fixture(linear::lightning_attention(c.q, c.k, c.v, o).out, c.out, kFast,
                      c.name + " " + f.name));
    o.slopes.emplace(ours.data(), Index(ours.size()));
    EXPECT_TRUE(testing::check_fixture(linear::lightning_attention(c.q, c.k, c.v, o).out, c.out, kFast,
                      c.name + " tnl_slopes " + f.name));
  }
}

// The decode step fed token by token reproduces the prefill (HF TNL decode semantics).
TEST(LightningTnlFixture, DecodeStepsMatchOpenNLPLabTorchReference) {
  const QkvCase c("lightning_tnl");
  const Tensor<float, 1> slopes = load<1>(c.name, "slopes");
  Tensor<float, 4> state(c.q.dimension(0), c.q.dimension(2), c.q.dimension(3), c.v.dimension(3));
  state.setZero();
  linear::LightningStepOptions o;
  o.slopes.emplace(slopes.data(), slopes.size());
  const Tensor<float, 4> out = lightning_steps(c, o, state);
  EXPECT_TRUE(testing::check_fixture(out, c.out, kFast, c.name + " decode steps"));
}

// The fixture tells the conventions apart: fla's default scale K^-0.5 or fla's slope formula must not match.
TEST(LightningTnlFixtureDiscriminates, ScaleAndSlopeConvention) {
  const QkvCase c("lightning_tnl");
  const std::vector<float> tnl = linear::tnl_slopes(6, 3, 8), fla = linear::fla_lightning_slopes(6, 3, 8);
  linear::LightningOptions o;
  o.slopes.emplace(tnl.data(), Index(tnl.size()));
  o.scale = 1.0f / std::sqrt(float(c.q.dimension(3)));
  EXPECT_FALSE(testing::all_close(linear::lightning_attention(c.q, c.k, c.v, o).out, c.out, kFast, "scale K^-0.5"));
  o.scale = 1.0f;
  o.slopes.emplace(fla.data(), Index(fla.size()));
  EXPECT_FALSE(testing::all_close(linear::lightning_attention(c.q, c.k, c.v, o).out, c.out, kFast, "fla slopes"));
}

// ---- (b) simple GLA, fla naive_recurrent_simple_gla (per-token g, default scale, initial state) ----

TEST(SimpleGlaFixture, MatchesFlaNaiveRecurrent) {
  const QkvCase c("simple_gla");
  const Tensor<float, 3> g = load<3>(c.name, "g");
  const Tensor<float, 4> h0 = load<4>(c.name, "initial_state"), state = load<4>(c.name, "final_state");
  {
    linear::SimpleGlaOptions o;
    o.g.emplace(g.data(), g.dimensions());
    o.initial_state.emplace(h0.data(), h0.dimensions());
    const linear::LinearResult r = ref::simple_gla(c.q, c.k, c.v, o);
    EXPECT_TRUE(testing::check_fixture(r.out, c.out, kOracle, c.name + " ref out"));
    EXPECT_TRUE(testing::check_fixture(r.final_state, state, kOracle, c.name + " ref final_state"));
  }
  for (const Form& f : kForms) {
    linear::SimpleGlaOptions o;  // scale unset: K^-0.5 as fla
    o.g.emplace(g.data(), g.dimensions());
    o.initial_state.emplace(h0.data(), h0.dimensions());
    o.algorithm = f.algorithm, o.chunk_size = f.chunk;
    const linear::LinearResult r = linear::simple_gla(c.q, c.k, c.v, o);
    EXPECT_TRUE(testing::check_fixture(r.out, c.out, kFast, c.name + " out " + f.name));
    EXPECT_TRUE(testing::check_fixture(r.final_state, state, kFast, c.name + " final_state " + f.name));
  }
}

// ---- (c) retention, fla naive_retention / chunk_retention ----------------------------------------

TEST(RetentionFixture, LogDecayMatchesFla) {
  // fla computes log(1 - 2^(-5-h)) in float32 (log of a rounded 1 - 2^-x); tokenmix log1p in double.
  EXPECT_TRUE(same_floats(linear::retention_log_decay(4), load<1>("retention", "g_gamma"), 4, "retention_log_decay(4)"));
}

TEST(RetentionFixture, MatchesFlaNaiveRetention) {
  const QkvCase c("retention");
  const Tensor<float, 4> state = load<4>(c.name, "final_state");
  {  // there is no ref::retention: simple_gla with g_gamma = retention_log_decay (what linear::retention runs)
    const std::vector<float> g_gamma = linear::retention_log_decay(c.q.dimension(2));
    linear::SimpleGlaOptions o;
    o.g_gamma.emplace(g_gamma.data(), Index(g_gamma.size()));
    const linear::LinearResult r = ref::simple_gla(c.q, c.k, c.v, o);
    EXPECT_TRUE(testing::check_fixture(r.out, c.out, kOracle, c.name + " ref out"));
    EXPECT_TRUE(testing::check_fixture(r.final_state, state, kOracle, c.name + " ref final_state"));
  }
  for (const Form& f : kForms) {
    linear::SimpleGlaOptions o;  // scale unset: K^-0.5 as fla
    o.algorithm = f.algorithm, o.chunk_size = f.chunk;
    const linear::LinearResult r = linear::retention(c.q, c.k, c.v, o);
    EXPECT_TRUE(testing::check_fixture(r.out, c.out, kFast, c.name + " out " + f.name));
    EXPECT_TRUE(testing::check_fixture(r.final_state, state, kFast, c.name + " final_state " + f.name));
  }
}

// ---- (d) fla chunk_lightning_attn (H 4, layer 1 of 4: g_gamma = -(8/H)(1 - l/L)·h) ------------------

TEST(LightningFlaFixture, SlopesMatchFlaGGamma) {
  const Tensor<float, 1> g_gamma = load<1>("lightning_fla", "g_gamma");
  Tensor<float, 1> neg = -g_gamma;
  EXPECT_TRUE(same_floats(linear::fla_lightning_slopes(4, 1, 4), neg, 0, "fla_lightning_slopes(4, 1, 4)"));
}

TEST(LightningFlaFixture, MatchesFlaChunkLightningAttn) {
  const QkvCase c("lightning_fla");
  const Tensor<float, 4> h0 = load<4>(c.name, "initial_state"), state = load<4>(c.name, "final_state");
  const std::vector<float> slopes = linear::fla_lightning_slopes(4, 1, 4);
  {
    linear::LightningOptions o;
    o.slopes.emplace(slopes.data(), Index(slopes.size()));
    o.scale = 1.0f / std::sqrt(float(c.q.dimension(3)));
    o.initial_state.emplace(h0.data(), h0.dimensions());
    const linear::LinearResult r = ref::lightning_attention(c.q, c.k, c.v, o);
    EXPECT_TRUE(testing::check_fixture(r.out, c.out, kOracle, c.name + " ref out"));
    EXPECT_TRUE(testing::check_fixture(r.final_state, state, kOracle, c.name + " ref final_state"));
  }
  for (const Form& f : kForms) {
    linear::LightningOptions o;
    o.slopes.emplace(slopes.data(), Index(slopes.size()));
    o.scale = 1.0f / std::sqrt(float(c.q.dimension(3)));  // fla's default; tokenmix's default is 1
    o.initial_state.emplace(h0.data(), h0.dimensions());
    o.algorithm = f.algorithm, o.block_size = f.chunk;
    const linear::LinearResult r = linear::lightning_attention(c.q, c.k, c.v, o);
    EXPECT_TRUE(testing::check_fixture(r.out, c.out, kFast, c.name + " out " + f.name));
    EXPECT_TRUE(testing::check_fixture(r.final_state, state, kFast, c.name + " final_state " + f.name));
  }
  // The same call as simple_gla with fla's g_gamma (what chunk_lightning_attn does).
  const Tensor<float, 1> g_gamma = load<1>(c.name, "g_gamma");
  linear::SimpleGlaOptions o;
  o.g_gamma.emplace(g_gamma.data(), g_gamma.size());
  o.initial_state.emplace(h0.data(), h0.dimensions());
  const linear::LinearResult r = linear::simple_gla(c.q, c.k, c.v, o);
  EXPECT_TRUE(testing::check_fixture(r.out, c.out, kFast, c.name + " out simple_gla(g_gamma)"));
  EXPECT_TRUE(testing::check_fixture(r.final_state, state, kFast, c.name + " final_state simple_gla(g_gamma)"));
  const linear::LinearResult rr = ref::simple_gla(c.q, c.k, c.v, o);
  EXPECT_TRUE(testing::check_fixture(rr.out, c.out, kOracle, c.name + " ref simple_gla(g_gamma) out"));
  EXPECT_TRUE(testing::check_fixture(rr.final_state, state, kOracle, c.name + " ref simple_gla(g_gamma) final_state"));
}

TEST(LightningFlaFixture, DecodeStepsMatchFla) {
  const QkvCase c("lightning_fla");
  const Tensor<float, 4> h0 = load<4>(c.name, "initial_state"), expected_state = load<4>(c.name, "final_state");
  const std::vector<float> slopes = linear::fla_lightning_slopes(4, 1, 4);
  Tensor<float, 4> state = h0;
  linear::LightningStepOptions o;
  o.slopes.emplace(slopes.data(), Index(slopes.size()));
  o.scale = 1.0f / std::sqrt(float(c.q.dimension(3)));
  const Tensor<float, 4> out = lightning_steps(c, o, state);
  EXPECT_TRUE(testing::check_fixture(out, c.out, kFast, c.name + " decode steps out"));
  EXPECT_TRUE(testing::check_fixture(state, expected_state, kFast, c.name + " decode steps state"));
}

// ---- (e) linear attention: elu + 1, normalize (fla causal; fast-transformers non-causal) ------------

class LinearCausalFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(LinearCausalFixture, MatchesFlaNormalizedLinearAttn) {
  const QkvCase c(GetParam());
  const auto p = params(c.name);
  const bool with_state = p.at("initial_state") == "1";
  const Tensor<float, 4> state = load<4>(c.name, "final_state");
  const Tensor<float, 3> z = load<3>(c.name, "final_normalizer");
  std::optional<Tensor<float, 4>> h0;
  std::optional<Tensor<float, 3>> z0;
  if (with_state) h0 = load<4>(c.name, "initial_state"), z0 = load<3>(c.name, "initial_normalizer");
  linear::LinearAttentionOptions o;  // scale K^-0.5 and eps 1e-10: tokenmix's defaults = fla's
  o.causal = true;
  o.feature_map = linear::FeatureMap::elu_plus_one;
  o.normalize = true;
  if (h0) o.initial_state.emplace(h0->data(), h0->dimensions());
  if (z0) o.initial_normalizer.emplace(z0->data(), z0->dimensions());
  {
    const linear::LinearResult r = ref::linear_attention(c.q, c.k, c.v, o);
    EXPECT_TRUE(testing::check_fixture(r.out, c.out, kOracle, c.name + " ref out"));
    EXPECT_TRUE(testing::check_fixture(r.final_state, state, kOracle, c.name + " ref final_state"));
    EXPECT_TRUE(testing::check_fixture(r.final_normalizer, z, kOracle, c.name + " ref final_normalizer"));
  }
  for (const Form& f : kForms) {
    o.algorithm = f.algorithm, o.chunk_size = f.chunk;
    const linear::LinearResult r = linear::linear_attention(c.q, c.k, c.v, o);
    EXPECT_TRUE(testing::check_fixture(r.out, c.out, kFast, c.name + " out " + f.name));
    EXPECT_TRUE(testing::check_fixture(r.final_state, state, kFast, c.name + " final_state " + f.name));
    EXPECT_TRUE(testing::check_fixture(r.final_normalizer, z, kFast, c.name + " final_normalizer " + f.name));
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, LinearCausalFixture, ::testing::Values("linear_causal", "linear_causal_state"));

// Without z0 the denominator misses the earlier keys (the older fla's normalize_output): must not match.
TEST(LinearCausalFixtureDiscriminates, InitialNormalizerMatters) {
  const QkvCase c("linear_causal_state");
  const Tensor<float, 4> h0 = load<4>(c.name, "initial_state");
  linear::LinearAttentionOptions o;
  o.feature_map = linear::FeatureMap::elu_plus_one;
  o.normalize = true;
  o.initial_state.emplace(h0.data(), h0.dimensions());
  EXPECT_FALSE(testing::all_close(linear::linear_attention(c.q, c.k, c.v, o).out, c.out, kFast, "no z0"));
}

TEST(LinearNoncausalFixture, MatchesFastTransformersLinearAttention) {
  const QkvCase c("linear_noncausal");
  const Tensor<float, 4> state = load<4>(c.name, "final_state");
  const Tensor<float, 3> z = load<3>(c.name, "final_normalizer");
  linear::LinearAttentionOptions o;
  o.causal = false;
  o.feature_map = linear::FeatureMap::elu_plus_one;
  o.normalize = true;
  o.eps = 1e-6f;   // fast-transformers' default (fla's normaliser: 1e-10)
  o.scale = 1.0f;  // fast-transformers has no scale (tokenmix / fla default: K^-0.5)
  const linear::LinearResult rr = ref::linear_attention(c.q, c.k, c.v, o);
  EXPECT_TRUE(testing::check_fixture(rr.out, c.out, kOracle, c.name + " ref out"));
  EXPECT_TRUE(testing::check_fixture(rr.final_state, state, kOracle, c.name + " ref final_state"));
  EXPECT_TRUE(testing::check_fixture(rr.final_normalizer, z, kOracle, c.name + " ref final_normalizer"));
  const linear::LinearResult r = linear::linear_attention(c.q, c.k, c.v, o);
  EXPECT_TRUE(testing::check_fixture(r.out, c.out, kFast, c.name + " out"));
  EXPECT_TRUE(testing::check_fixture(r.final_state, state, kFast, c.name + " final_state"));
  EXPECT_TRUE(testing::check_fixture(r.final_normalizer, z, kFast, c.name + " final_normalizer"));
}

}  // namespace
}  // namespace linear_fixture_cases
}  // namespace tokenmix
