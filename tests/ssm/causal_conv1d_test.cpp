// ssm::causal_conv1d and ssm::causal_conv1d_update (every representative arch) against their
// oracles (double), plus properties (state carry across split sequences, in-place state, step ==
// prefill, thread-count invariance, L = 0) and every bad-input rule.

#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <sstream>
#include <string>

#include "support/archs.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "support/sequence.hpp"
#include "tokenmix/reference/causal_conv1d.hpp"
#include "tokenmix/ssm/causal_conv1d.hpp"

namespace tokenmix {
namespace {

using testing::Rng;
using testing::slice_tokens;
using testing::token;
using testing::tolerance::causal_conv1d;

struct ConvCase {
  Index batch = 1, length = 1, channels = 1, K = 4;
  bool bias = false, silu = false, initial = false;
  std::uint64_t seed = 0;
  std::string describe() const {
    std::ostringstream os;
    os << "B=" << batch << " L=" << length << " D=" << channels << " K=" << K << " bias=" << bias
       << " silu=" << silu << " initial_state=" << initial << " seed=" << seed;
    return os.str();
  }
};

struct ConvInputs {
  Tensor<float, 3> x, h0;  // [B, L, D], [B, D, K-1]
  Tensor<float, 2> w;      // [D, K]
  Tensor<float, 1> bias;   // [D]
  ConvCase c;
  explicit ConvInputs(const ConvCase& cc) : c(cc) {
    Rng rng(c.seed);
    x = testing::random_normal<3>({c.batch, c.length, c.channels}, 0.f, 1.f, rng);
    w = testing::random_uniform<2>({c.channels, c.K}, -0.5f, 0.5f, rng);  // ~ PyTorch's conv init
    bias = testing::random_uniform<1>({c.channels}, -0.5f, 0.5f, rng);
    h0 = testing::random_normal<3>({c.batch, c.channels, c.K - 1}, 0.f, 1.f, rng);
  }
  ssm::CausalConv1dOptions options(const Eigen::ThreadPoolDevice* device = nullptr) const {
    ssm::CausalConv1dOptions o;
    if (c.bias) o.bias = bias;
    o.activation_silu = c.silu;
    if (c.initial) o.initial_state = h0;
    o.device = device;
    return o;
  }
};

template <class Arch>
::testing::AssertionResult matches_oracle(const ConvCase& c) {
  const ConvInputs in(c);
  const auto expected = ref::causal_conv1d<double>(in.x, in.w, in.options());
  const auto actual = ssm::causal_conv1d<Arch>(in.x, in.w, in.options());
  const std::string where = std::string(Arch::name()) + " " + c.describe();
  auto ok = testing::all_close(actual.out, expected.out, causal_conv1d, where + " out");
  if (!ok) return ok;
  return testing::bitwise_equal(actual.final_state, expected.final_state, where + " final_state");
}

// Token-by-token causal_conv1d_update from the same initial state == causal_conv1d, bitwise, and
// == the oracle's step.
template <class Arch>
::testing::AssertionResult steps_match_prefill(const ConvCase& c) {
  const ConvInputs in(c);
  const auto prefill = ssm::causal_conv1d<Arch>(in.x, in.w, in.options());
  Tensor<float, 3> state = in.h0, ref_state = in.h0;
  if (!c.initial) state.setZero(), ref_state.setZero();
  auto o = in.options();
  o.initial_state.reset();
  const std::string where = std::string(Arch::name()) + " " + c.describe();
  for (Index t = 0; t < c.length; ++t) {
    const Tensor<float, 2> xt = token(in.x, t);
    const Tensor<float, 2> y = ssm::causal_conv1d_update<Arch>(xt, state, in.w, o);
    const Tensor<float, 2> y_ref = ref::causal_conv1d_update<double>(xt, ref_state, in.w, o);
    auto ok = testing::bitwise_equal(y, token(prefill.out, t), where + " step " + std::to_string(t));
    if (!ok) return ok;
    ok = testing::all_close(y, y_ref, causal_conv1d, where + " step vs oracle step " + std::to_string(t));
    if (!ok) return ok;
    ok = testing::bitwise_equal(state, ref_state, where + " conv_state vs oracle " + std::to_string(t));
    if (!ok) return ok;
  }
  return testing::bitwise_equal(state, prefill.final_state, where + " conv_state after the steps");
}

template <class Arch>
class CausalConv1dArchTest : public ::testing::Test {};
TYPED_TEST_SUITE(CausalConv1dArchTest, testing::RepresentativeArchs, testing::ArchNames);

// Channel counts around the vector width, K = 1..5 (4 specialised), lengths shorter and longer than
// K-1, every option combination.
TYPED_TEST(CausalConv1dArchTest, MatchesOracleAroundVectorWidth) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  const Index W = static_cast<Index>(simd::lanes<TypeParam>);
  std::uint64_t seed = 100;
  for (Index channels : {Index(1), W - 1, W, W + 1, 3 * W + 2})
    for (Index K : {1, 2, 3, 4, 5})
      for (Index length : {1, 2, 9})
        for (int options = 0; options < 8; ++options) {
          ConvCase c;
          c.batch = 2, c.length = length, c.channels = channels, c.K = K;
          c.bias = options & 1, c.silu = options & 2, c.initial = options & 4, c.seed = seed++;
          EXPECT_TRUE(matches_oracle<TypeParam>(c));
        }
}

// Mamba's shape class: several tiles per row (D > 1024 channels), K = 4 and a generic K.
TYPED_TEST(CausalConv1dArchTest, MatchesOracleAcrossTiles) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  for (Index K : {4, 6}) {
    ConvCase c;
    c.batch = 2, c.length = 11, c.channels = 1500, c.K = K, c.bias = c.silu = c.initial = true, c.seed = 40 + K;
    EXPECT_TRUE(matches_oracle<TypeParam>(c));
  }
}

TYPED_TEST(CausalConv1dArchTest, MatchesOracleOnRandomSweep) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  Rng rng(2025);
  for (int i = 0; i < 60; ++i) {
    ConvCase c;
    c.batch = testing::random_index(1, 3, rng);
    c.length = testing::random_index(0, 40, rng);
    c.channels = testing::random_index(1, 90, rng);
    c.K = testing::random_index(1, 7, rng);
    c.bias = testing::random_index(0, 1, rng), c.silu = testing::random_index(0, 1, rng);
    c.initial = testing::random_index(0, 1, rng);
    c.seed = 6000 + static_cast<std::uint64_t>(i);
    EXPECT_TRUE(matches_oracle<TypeParam>(c));
  }
}

TYPED_TEST(CausalConv1dArchTest, StepsMatchPrefillBitwise) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  const Index W = static_cast<Index>(simd::lanes<TypeParam>);
  std::uint64_t seed = 700;
  for (Index channels : {Index(1), W + 1, 3 * W + 2})
    for (Index K : {1, 2, 3, 4, 5})
      for (int options = 0; options < 8; options += 3) {
        ConvCase c;
        c.batch = 2, c.length = 7, c.channels = channels, c.K = K;
        c.bias = options & 1, c.silu = options & 2, c.initial = options & 4, c.seed = seed++;
        EXPECT_TRUE(steps_match_prefill<TypeParam>(c));
      }
}

ConvCase mamba_case(Index length, Index K, std::uint64_t seed) {
  ConvCase c;
  c.batch = 2, c.length = length, c.channels = 37, c.K = K, c.bias = c.silu = c.initial = true, c.seed = seed;
  return c;
}

// conv(x1 ‖ x2) == conv(x2, initial_state = conv(x1).final_state), bitwise; splits shorter than K-1.
TEST(CausalConv1dTest, StateCarriesAcrossSplitSequences) {
  for (Index K : {1, 4, 5}) {
    const Index L = 23;
    const ConvInputs in(mamba_case(L, K, 11 + K));
    const auto whole = ssm::causal_conv1d(in.x, in.w, in.options());
    for (Index split : {Index(0), Index(1), Index(2), Index(17), L - 1, L}) {
      const std::string where = "K=" + std::to_string(K) + " split at " + std::to_string(split);
      const Tensor<float, 3> x1 = slice_tokens(in.x, 0, split), x2 = slice_tokens(in.x, split, L);
      const auto first = ssm::causal_conv1d(x1, in.w, in.options());
      auto o = in.options();
      o.initial_state.emplace(first.final_state);
      const auto second = ssm::causal_conv1d(x2, in.w, o);
      EXPECT_TRUE(testing::bitwise_equal(second.final_state, whole.final_state, where + " final_state"));
      EXPECT_TRUE(testing::bitwise_equal(slice_tokens(whole.out, 0, split), first.out, where + " out before"));
      EXPECT_TRUE(testing::bitwise_equal(slice_tokens(whole.out, split, L), second.out, where + " out after"));
    }
  }
}

// The same buffer as initial_state and final_state (in-place carry) gives the out-of-place result.
TEST(CausalConv1dTest, FinalStateMayAliasInitialState) {
  const ConvInputs in(mamba_case(9, 4, 12));
  const auto expected = ssm::causal_conv1d(in.x, in.w, in.options());
  for (Index L : {Index(9), Index(2)}) {  // L >= K-1 and L < K-1 (the state keeps old entries)
    const Tensor<float, 3> x = slice_tokens(in.x, 0, L);
    const auto want = ssm::causal_conv1d(x, in.w, in.options());
    Tensor<float, 3> state = in.h0, out(2, L, 37);
    TensorView<float, 3> state_view(state.data(), state.dimensions()), out_view(out.data(), out.dimensions());
    auto o = in.options();
    o.initial_state.emplace(state.data(), state.dimensions());
    ssm::causal_conv1d(x, in.w, o, out_view, &state_view);
    EXPECT_TRUE(testing::bitwise_equal(out, want.out, "in-place out L=" + std::to_string(L)));
    EXPECT_TRUE(testing::bitwise_equal(state, want.final_state, "in-place state L=" + std::to_string(L)));
  }
  (void)expected;
}

TEST(CausalConv1dTest, ResultsAreBitwiseIdenticalForAnyThreadCount) {
  ConvCase c = mamba_case(19, 4, 13);
  c.channels = 1100;  // two tiles per row
  const ConvInputs in(c);
  const auto single = ssm::causal_conv1d(in.x, in.w, in.options());
  Tensor<float, 3> state1 = in.h0;
  auto o = in.options();
  o.initial_state.reset();
  const Tensor<float, 2> step1 = ssm::causal_conv1d_update(token(in.x, 0), state1, in.w, o);
  for (int threads : {2, 3, 5}) {
    ThreadPool pool(threads);
    const auto multi = ssm::causal_conv1d(in.x, in.w, in.options(pool.device()));
    EXPECT_TRUE(testing::bitwise_equal(multi.out, single.out, std::to_string(threads) + " threads out"));
    EXPECT_TRUE(testing::bitwise_equal(multi.final_state, single.final_state, std::to_string(threads) + " threads state"));
    Tensor<float, 3> state = in.h0;
    auto po = o;
    po.device = pool.device();
    const Tensor<float, 2> step = ssm::causal_conv1d_update(token(in.x, 0), state, in.w, po);
    EXPECT_TRUE(testing::bitwise_equal(step, step1, std::to_string(threads) + " threads step"));
    EXPECT_TRUE(testing::bitwise_equal(state, state1, std::to_string(threads) + " threads conv_state"));
  }
}

TEST(CausalConv1dTest, EmptySequenceReturnsInitialState) {
  ConvCase c = mamba_case(0, 4, 14);
  const ConvInputs in(c);
  const auto r = ssm::causal_conv1d(in.x, in.w, in.options());
  EXPECT_EQ(r.out.size(), 0);
  EXPECT_TRUE(testing::bitwise_equal(r.final_state, in.h0, "final_state == initial_state"));
  c.initial = false;
  const ConvInputs fresh(c);
  const auto zero = ssm::causal_conv1d(fresh.x, fresh.w, fresh.options());
  for (Index i = 0; i < zero.final_state.size(); ++i) ASSERT_EQ(zero.final_state.data()[i], 0.f);
  const auto oracle = ref::causal_conv1d<double>(in.x, in.w, in.options());
  EXPECT_TRUE(testing::bitwise_equal(oracle.final_state, in.h0, "oracle final_state == initial_state"));
}

// NaN in x at (b, t, d) reaches out[b, t .. t+K-1, d] only.
TEST(CausalConv1dTest, NanPropagatesOnlyToTheWindowItTouches) {
  ConvInputs in(mamba_case(12, 4, 15));
  const Index b = 1, t = 4, d = 20;
  in.x(b, t, d) = std::numeric_limits<float>::quiet_NaN();
  const auto r = ssm::causal_conv1d(in.x, in.w, in.options());
  for (Index bb = 0; bb < 2; ++bb)
    for (Index tt = 0; tt < 12; ++tt)
      for (Index dd = 0; dd < 37; ++dd)
        ASSERT_EQ(std::isnan(r.out(bb, tt, dd)), bb == b && dd == d && tt >= t && tt < t + 4)
            << "at [" << bb << ", " << tt << ", " << dd << "]";
}

// ---- bad input -------------------------------------------------------------------------------

TEST(CausalConv1dTest, RejectsBadInputWithClearErrors) {
  const ConvInputs in(mamba_case(6, 4, 17));
  const auto o = in.options();
  const std::string op = "causal_conv1d";
  auto conv = [&](auto&&... args) { return [&, args...] { ssm::causal_conv1d(args...); }; };
  EXPECT_TRUE(testing::throws_error_mentioning(conv(in.x, Tensor<float, 2>(36, 4), o), op, "weight has shape [36, 4], expected [D=37, K] with kernel size K > 0"));
  EXPECT_TRUE(testing::throws_error_mentioning(conv(in.x, Tensor<float, 2>(37, 0), o), op, "weight has shape [37, 0]"));
  EXPECT_TRUE(testing::throws_error_mentioning(conv(Tensor<float, 3>(0, 6, 37), in.w, o), op, "batch B must be > 0"));
  EXPECT_TRUE(testing::throws_error_mentioning(conv(Tensor<float, 3>(2, 6, 0), Tensor<float, 2>(0, 4), ssm::CausalConv1dOptions{}), op, "channels D must be > 0"));
  auto with = [&](auto setter) { auto copy = o; setter(copy); return copy; };
  const Tensor<float, 1> wrong_bias(36);
  EXPECT_TRUE(testing::throws_error_mentioning(conv(in.x, in.w, with([&](auto& x) { x.bias.emplace(wrong_bias); })), op, "bias has shape [36], expected [D=37]"));
  const Tensor<float, 3> wrong_state(2, 37, 4);
  EXPECT_TRUE(testing::throws_error_mentioning(conv(in.x, in.w, with([&](auto& x) { x.initial_state.emplace(wrong_state); })), op, "initial_state has shape [2, 37, 4], expected [B=2, D=37, K-1=3]"));

  Tensor<float, 3> out(2, 6, 37), bad_out(2, 5, 37), fin(2, 37, 3), bad_fin(2, 37, 2), x_copy = in.x;
  TensorView<float, 3> out_v(out.data(), out.dimensions()), bad_out_v(bad_out.data(), bad_out.dimensions());
  TensorView<float, 3> fin_v(fin.data(), fin.dimensions()), bad_fin_v(bad_fin.data(), bad_fin.dimensions());
  TensorView<float, 3> alias_x(x_copy.data(), x_copy.dimensions());
  TensorView<float, 3> alias_out_state(out.data() + 5, fin.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::causal_conv1d(in.x, in.w, o, bad_out_v, nullptr); }, op, "out has shape [2, 5, 37], expected [B=2, L=6, D=37]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::causal_conv1d(in.x, in.w, o, out_v, &bad_fin_v); }, op, "final_state has shape [2, 37, 2]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::causal_conv1d(x_copy, in.w, o, alias_x, nullptr); }, op, "out must not overlap the input x"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::causal_conv1d(in.x, in.w, o, out_v, &alias_out_state); }, op, "final_state must not overlap x or out"));
  Tensor<float, 3> big(2, 37, 4);
  auto partial = o;
  partial.initial_state.emplace(big.data(), Eigen::array<Index, 3>{2, 37, 3});
  TensorView<float, 3> shifted(big.data() + 1, fin.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::causal_conv1d(in.x, in.w, partial, out_v, &shifted); }, op, "same buffer as initial_state or not overlap it"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::causal_conv1d<double>(in.x, Tensor<float, 2>(36, 4), o); }, "ref::causal_conv1d", "weight has shape"));

  // The step.
  const std::string up = "causal_conv1d_update";
  auto so = o;
  so.initial_state.reset();
  Tensor<float, 2> xt(2, 37), bad_xt(2, 36), yt(2, 37), bad_yt(3, 37);
  Tensor<float, 3> state(2, 37, 3), bad_state(2, 37, 4);
  xt.setZero(), state.setZero();
  TensorView<float, 3> state_v(state.data(), state.dimensions()), bad_state_v(bad_state.data(), bad_state.dimensions());
  TensorView<float, 2> yt_v(yt.data(), yt.dimensions()), bad_yt_v(bad_yt.data(), bad_yt.dimensions());
  TensorView<float, 2> y_on_state(state.data(), yt.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::causal_conv1d_update(xt, state_v, in.w, o, yt_v); }, up, "options.initial_state must be empty"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::causal_conv1d_update(xt, bad_state_v, in.w, so, yt_v); }, up, "conv_state has shape [2, 37, 4], expected [B=2, D=37, K-1=3]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::causal_conv1d_update(bad_xt, state_v, in.w, so, yt_v); }, up, "weight has shape [37, 4], expected [D=36, K]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::causal_conv1d_update(xt, state_v, Tensor<float, 2>(37, 0), so, yt_v); }, up, "kernel size K > 0"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::causal_conv1d_update(xt, state_v, in.w, so, bad_yt_v); }, up, "out has shape [3, 37], expected [B=2, D=37]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::causal_conv1d_update(xt, state_v, in.w, so, y_on_state); }, up, "out must not overlap x or conv_state"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::causal_conv1d_update(Tensor<float, 2>(0, 37), state_v, in.w, so, yt_v); }, up, "batch B must be > 0"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::causal_conv1d_update<double>(xt, bad_state, in.w, so); }, "ref::causal_conv1d_update", "conv_state has shape"));
}

}  // namespace
}  // namespace tokenmix
