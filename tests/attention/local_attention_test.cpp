// attention::local_attention (every heavy-kernel arch) against its oracle (double): windows cut at
// both ends, causal and bidirectional, softmax and relu², the relative-position bias by positions
// (with gaps, as a compressed sequence) or by index, P and Pv around the vector width, windows
// wider than the sequence; properties (a window covering the sequence == the dense engine, W = 0
// == v for softmax, thread-count invariance) and every bad-input rule.

#include <gtest/gtest.h>

#include <limits>
#include <sstream>
#include <string>

#include "support/archs.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "tokenmix/attention/attention.hpp"
#include "tokenmix/attention/local_attention.hpp"
#include "tokenmix/reference/local_attention.hpp"

namespace tokenmix {
namespace local_attention_test {

using attention::LocalAttentionKind;
using testing::Rng;
using testing::tolerance::local_attention;

struct LocalCase {
  Index batch = 2, length = 1, heads = 1, dim = 1, v_dim = 1, window = 0;
  bool causal = true, relu = false, bias = false, positions = false;
  std::uint64_t seed = 0;
  std::string describe() const {
    std::ostringstream os;
    os << "B=" << batch << " L=" << length << " H=" << heads << " P=" << dim << " Pv=" << v_dim << " W=" << window
       << " causal=" << causal << " relu2=" << relu << " bias=" << bias << " positions=" << positions
       << " seed=" << seed;
    return os.str();
  }
};

struct LocalInputs {
  LocalCase c;
  Tensor<float, 4> q, k, v;
  Tensor<Index, 2> pos;   // [B, L] increasing with gaps (a compressed sequence's original positions)
  Tensor<float, 2> table; // [H, 2M-1], M = 9: offsets beyond ±8 clamp
  explicit LocalInputs(const LocalCase& cc) : c(cc), pos(cc.batch, cc.length), table(cc.heads, 17) {
    Rng rng(c.seed);
    q = testing::random_normal<4>({c.batch, c.length, c.heads, c.dim}, 0.f, 1.f, rng);
    k = testing::random_normal<4>({c.batch, c.length, c.heads, c.dim}, 0.f, 1.f, rng);
    v = testing::random_normal<4>({c.batch, c.length, c.heads, c.v_dim}, 0.f, 1.f, rng);
    table = testing::random_normal<2>({c.heads, 17}, 0.f, 1.f, rng);
    for (Index b = 0; b < c.batch; ++b) {
      Index p = testing::random_index(0, 3, rng);
      for (Index t = 0; t < c.length; ++t) pos(b, t) = p, p += testing::random_index(1, 3, rng);
    }
  }
  attention::LocalAttentionOptions options(const Eigen::ThreadPoolDevice* device = nullptr) const {
    attention::LocalAttentionOptions o;
    o.window = c.window, o.causal = c.causal;
    o.kind = c.relu ? LocalAttentionKind::relu_squared : LocalAttentionKind::softmax;
    if (c.bias) o.rel_pos_bias = table;
    if (c.positions) o.positions = pos;
    o.device = device;
    return o;
  }
};

template <class Arch>
::testing::AssertionResult matches_oracle(const LocalCase& c) {
  const LocalInputs in(c);
  const auto expected = ref::local_attention<double>(in.q, in.k, in.v, in.options());
  const auto actual = attention::local_attention<Arch>(in.q, in.k, in.v, in.options());
  return testing::all_close(actual, expected, local_attention, std::string(Arch::name()) + " " + c.describe());
}

template <class Arch>
class LocalAttentionArchTest : public ::testing::Test {};
TYPED_TEST_SUITE(LocalAttentionArchTest, testing::RepresentativeArchs, testing::ArchNames);

// Lengths around the tile (one vector of queries), windows from 0 to wider than the sequence, every
// mode; P and Pv around the register blocks (8) and the vector width.
TYPED_TEST(LocalAttentionArchTest, MatchesOracleAcrossWindowsAndModes) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  const Index W = static_cast<Index>(simd::lanes<TypeParam>);
  std::uint64_t seed = 100;
  for (Index length : {Index(1), W - 1, W + 1, 3 * W + 5})
    for (Index window : {Index(0), Index(1), Index(5), W + 3, 4 * W})
      for (int mode = 0; mode < 8; ++mode) {
        LocalCase c;
        c.length = length, c.window = window, c.heads = 2, c.dim = 9, c.v_dim = W + 3;
        c.causal = mode & 1, c.relu = mode & 2, c.bias = mode & 4, c.positions = (mode & 4) && (seed % 2 == 0);
        c.seed = seed++;
        EXPECT_TRUE(matches_oracle<TypeParam>(c));
      }
}

TYPED_TEST(LocalAttentionArchTest, MatchesOracleOnRandomSweep) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  Rng rng(77);
  for (int i = 0; i < 40; ++i) {
    LocalCase c;
    c.batch = testing::random_index(1, 2, rng), c.length = testing::random_index(1, 60, rng);
    c.heads = testing::random_index(1, 3, rng), c.dim = testing::random_index(1, 40, rng);
    c.v_dim = testing::random_index(1, 40, rng), c.window = testing::random_index(0, 30, rng);
    c.causal = testing::random_index(0, 1, rng), c.relu = testing::random_index(0, 1, rng);
    c.bias = testing::random_index(0, 1, rng), c.positions = testing::random_index(0, 1, rng);
    c.seed = 500 + static_cast<std::uint64_t>(i);
    EXPECT_TRUE(matches_oracle<TypeParam>(c));
  }
}

// A window covering the whole sequence is plain attention: the dense engine, causal or not.
TEST(LocalAttentionTest, WholeSequenceWindowEqualsDenseAttention) {
  for (bool causal : {true, false}) {
    LocalCase c;
    c.length = 37, c.heads = 2, c.dim = 16, c.v_dim = 24, c.window = 40, c.causal = causal, c.seed = 9;
    const LocalInputs in(c);
    attention::AttentionOptions dense;
    dense.causal = causal;
    const auto expected = attention::attention(in.q, in.k, in.v, dense).out;
    EXPECT_TRUE(testing::all_close(attention::local_attention(in.q, in.k, in.v, in.options()), expected,
                                   local_attention, "causal=" + std::to_string(causal)));
  }
}

// W = 0 with softmax: each query sees only itself, so out = v.
TEST(LocalAttentionTest, ZeroWindowSoftmaxReturnsValues) {
  LocalCase c;
  c.length = 21, c.heads = 3, c.dim = 5, c.v_dim = 7, c.window = 0, c.causal = false, c.seed = 10;
  const LocalInputs in(c);
  EXPECT_TRUE(testing::bitwise_equal(attention::local_attention(in.q, in.k, in.v, in.options()), in.v, "out == v"));
}

// Fewer queries than keys: the queries are the last tokens (decode against a cache of keys); the
// result is the matching rows of the full call, bitwise, for every mode.
TEST(LocalAttentionTest, LastQueriesMatchTheFullCall) {
  for (int mode = 0; mode < 8; ++mode) {
    LocalCase c;
    c.length = 45, c.heads = 2, c.dim = 10, c.v_dim = 19, c.window = 7;
    c.causal = mode & 1, c.relu = mode & 2, c.bias = c.positions = mode & 4, c.seed = 30 + mode;
    const LocalInputs in(c);
    const auto full = attention::local_attention(in.q, in.k, in.v, in.options());
    for (Index lq : {Index(1), Index(3), Index(17), Index(45)}) {
      const Eigen::array<Index, 4> off{0, c.length - lq, 0, 0}, ext{2, lq, 2, 10}, ext_v{2, lq, 2, 19};
      const Tensor<float, 4> q_last = in.q.slice(off, ext);
      const Tensor<float, 4> expected = full.slice(off, ext_v);
      const std::string where = c.describe() + " Lq=" + std::to_string(lq);
      EXPECT_TRUE(testing::bitwise_equal(attention::local_attention(q_last, in.k, in.v, in.options()), expected, where));
      EXPECT_TRUE(testing::all_close(ref::local_attention<double>(q_last, in.k, in.v, in.options()), expected,
                                     local_attention, where + " oracle"));
    }
  }
}

// rel_pos_bias entries of -inf mask the keys at their offsets. Head 0: every third entry (windows
// partly masked, by index and by positions with gaps); head 1: every entry, so every softmax query
// of head 1 is fully masked and gets NaN, as the oracle (and PyTorch's softmax) gives; relu² gives 0.
TEST(LocalAttentionTest, RelPosBiasOfMinusInfinityMasksKeys) {
  const float inf = std::numeric_limits<float>::infinity();
  for (int mode = 0; mode < 8; ++mode) {
    LocalCase c;
    c.length = 40, c.heads = 2, c.dim = 16, c.v_dim = 20, c.window = mode & 4 ? 1 : 3, c.bias = true;
    c.causal = mode & 1, c.relu = mode & 2, c.positions = mode & 4, c.seed = 60 + mode;
    LocalInputs in(c);
    for (Index e = 0; e < 17; ++e) {
      if (e % 3 == 0) in.table(0, e) = -inf;
      in.table(1, e) = -inf;
    }
    const auto expected = ref::local_attention<double>(in.q, in.k, in.v, in.options());
    EXPECT_TRUE(testing::all_close(attention::local_attention(in.q, in.k, in.v, in.options()), expected,
                                   local_attention, c.describe()));
    Index finite_in_head0 = 0;
    for (Index b = 0; b < c.batch; ++b)
      for (Index t = 0; t < c.length; ++t)
        for (Index p = 0; p < c.v_dim; ++p) {
          finite_in_head0 += std::isfinite(expected(b, t, 0, p));
          if (c.relu)
            EXPECT_EQ(expected(b, t, 1, p), 0.f) << c.describe();
          else
            EXPECT_TRUE(std::isnan(expected(b, t, 1, p))) << c.describe();
        }
    EXPECT_GT(finite_in_head0, 0) << c.describe();
  }
}

TEST(LocalAttentionTest, ThreadCountDoesNotChangeResults) {
  LocalCase c;
  c.length = 90, c.heads = 2, c.dim = 12, c.v_dim = 20, c.window = 13, c.causal = false, c.bias = c.positions = true;
  c.seed = 11;
  const LocalInputs in(c);
  const auto single = attention::local_attention(in.q, in.k, in.v, in.options());
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    EXPECT_TRUE(testing::bitwise_equal(attention::local_attention(in.q, in.k, in.v, in.options(pool.device())), single,
                                       std::to_string(threads) + " threads"));
  }
}

TEST(LocalAttentionTest, RejectsBadInputWithClearErrors) {
  LocalCase c;
  c.length = 6, c.heads = 2, c.dim = 4, c.v_dim = 3, c.window = 2, c.seed = 12;
  const LocalInputs in(c);
  const auto o = in.options();
  const std::string op = "local_attention";
  auto run = [&](auto&&... args) { return [&, args...] { attention::local_attention(args...); }; };
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.q, Tensor<float, 4>(2, 5, 2, 4), in.v, o), op, "k has shape [2, 5, 2, 4], expected [B=2, L >= Lq=6, H=2, P=4] (the queries are the last Lq tokens)"));
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.q, in.k, Tensor<float, 4>(2, 6, 1, 3), o), op, "v has shape [2, 6, 1, 3], expected [B=2, L=6, H=2, Pv] with Pv > 0"));
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.q, in.k, Tensor<float, 4>(2, 5, 2, 3), o), op, "v has shape [2, 5, 2, 3], expected [B=2, L=6, H=2, Pv]"));
  EXPECT_TRUE(testing::throws_error_mentioning(run(Tensor<float, 4>(2, 6, 2, 0), in.k, in.v, o), op, "q has shape [2, 6, 2, 0], expected [B, Lq, H, P] with B, H, P > 0"));
  auto with = [&](auto setter) { auto copy = o; setter(copy); return copy; };
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.q, in.k, in.v, with([](auto& x) { x.window = -1; })), op, "window is -1, expected W >= 0"));
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.q, in.k, in.v, with([](auto& x) { x.scale = std::numeric_limits<float>::infinity(); })), op, "scale must be finite"));
  const Tensor<float, 2> even_table(2, 16), wrong_heads(3, 17);
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.q, in.k, in.v, with([&](auto& x) { x.rel_pos_bias.emplace(even_table); })), op, "rel_pos_bias has shape [2, 16], expected [H=2, 2M-1] with M >= 1"));
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.q, in.k, in.v, with([&](auto& x) { x.rel_pos_bias.emplace(wrong_heads); })), op, "rel_pos_bias has shape [3, 17]"));
  Tensor<Index, 2> short_pos(2, 5), decreasing = in.pos;
  decreasing(1, 4) = decreasing(1, 3) - 1;
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.q, in.k, in.v, with([&](auto& x) { x.positions.emplace(short_pos); })), op, "positions has shape [2, 5], expected [B=2, L=6]"));
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.q, in.k, in.v, with([&](auto& x) { x.positions.emplace(decreasing); })), op, "positions must not decrease along a sequence, got positions[1, 4]"));
  const ConstTensorView<float, 4> huge(in.q.data(), 1, Index(1) << 24, 1, 1);
  EXPECT_TRUE(testing::throws_error_mentioning(run(huge, huge, huge, attention::LocalAttentionOptions{}), op, "k has 16777216 tokens, expected L < 2^24"));
  Tensor<float, 4> out(2, 6, 2, 3), bad_out(2, 6, 2, 4), v_copy = in.v;
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::local_attention(in.q, in.k, in.v, o, TensorView<float, 4>(bad_out.data(), bad_out.dimensions())); }, op, "out has shape [2, 6, 2, 4], expected [B=2, Lq=6, H=2, Pv=3]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::local_attention(in.q, in.k, v_copy, o, TensorView<float, 4>(v_copy.data(), v_copy.dimensions())); }, op, "out must not overlap q, k or v"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::local_attention<double>(in.q, Tensor<float, 4>(2, 5, 2, 4), in.v, o); }, "ref::local_attention", "k has shape"));
}

}  // namespace local_attention_test
}  // namespace tokenmix
