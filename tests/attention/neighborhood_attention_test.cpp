// Neighborhood attention: the per-axis window rule against NATTEN's definition worked by hand
// (borders shift inward, even kernels, dilation groups of unequal length, causal, stride), and the
// oracle (reference/neighborhood_attention.hpp) against dense attention where they must agree:
// a kernel covering every axis equals full attention, 1-D causal with K = L equals causal
// attention, and any neighbourhood equals masked dense attention with the window predicate. rpb:
// a constant table changes nothing; the border entries are the off-centre ones.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "support/tolerance.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/attention/neighborhood_split.hpp"
#include "tokenmix/attention/neighborhood_types.hpp"
#include "tokenmix/reference/attention.hpp"
#include "tokenmix/reference/neighborhood_attention.hpp"

namespace tokenmix {
namespace {

using attention::AxisWindow;
using attention::neighborhood_axis_window;
using testing::Rng;

std::vector<Index> keys_of(const AxisWindow& w) {
  std::vector<Index> keys;
  for (Index n = 0; n < w.count; ++n) keys.push_back(w.first + n * w.step);
  return keys;
}

TEST(NeighborhoodWindow, MatchesNattenRuleByHand) {
  using V = std::vector<Index>;
  // L 10, K 3: centred, shifted inward at both borders.
  EXPECT_EQ(keys_of(neighborhood_axis_window(0, 10, 3, 1, 1, false)), (V{0, 1, 2}));
  EXPECT_EQ(keys_of(neighborhood_axis_window(5, 10, 3, 1, 1, false)), (V{4, 5, 6}));
  EXPECT_EQ(keys_of(neighborhood_axis_window(9, 10, 3, 1, 1, false)), (V{7, 8, 9}));
  // Even K 4: two keys left, one right.
  EXPECT_EQ(keys_of(neighborhood_axis_window(5, 10, 4, 1, 1, false)), (V{3, 4, 5, 6}));
  EXPECT_EQ(keys_of(neighborhood_axis_window(0, 10, 4, 1, 1, false)), (V{0, 1, 2, 3}));
  EXPECT_EQ(keys_of(neighborhood_axis_window(9, 10, 4, 1, 1, false)), (V{6, 7, 8, 9}));
  // L 10, d 3: groups {0,3,6,9}, {1,4,7}, {2,5,8}; K 3 on the group of 9: the last three.
  EXPECT_EQ(keys_of(neighborhood_axis_window(9, 10, 3, 3, 1, false)), (V{3, 6, 9}));
  EXPECT_EQ(keys_of(neighborhood_axis_window(0, 10, 3, 3, 1, false)), (V{0, 3, 6}));
  EXPECT_EQ(keys_of(neighborhood_axis_window(7, 10, 3, 3, 1, false)), (V{1, 4, 7}));
  // Causal: no shift, early queries see fewer keys; with dilation, the own group's history.
  EXPECT_EQ(keys_of(neighborhood_axis_window(1, 10, 3, 1, 1, true)), (V{0, 1}));
  EXPECT_EQ(keys_of(neighborhood_axis_window(6, 10, 3, 1, 1, true)), (V{4, 5, 6}));
  EXPECT_EQ(keys_of(neighborhood_axis_window(7, 10, 3, 3, 1, true)), (V{1, 4, 7}));
  EXPECT_EQ(keys_of(neighborhood_axis_window(4, 10, 3, 3, 1, true)), (V{1, 4}));
  // Stride 2, K 3, L 7: queries 4 and 5 share the leader 5's window [4, 6]; 6's leader clamps to 6.
  EXPECT_EQ(keys_of(neighborhood_axis_window(4, 7, 3, 1, 2, false)), (V{4, 5, 6}));
  EXPECT_EQ(keys_of(neighborhood_axis_window(5, 7, 3, 1, 2, false)), (V{4, 5, 6}));
  // Stride = K: blocked windows (Swin); the partial last block clamps inward.
  EXPECT_EQ(keys_of(neighborhood_axis_window(1, 7, 3, 1, 3, false)), (V{0, 1, 2}));
  EXPECT_EQ(keys_of(neighborhood_axis_window(6, 7, 3, 1, 3, false)), (V{4, 5, 6}));
  // rpb index of the first key: (K - 1) + (j' - i'): centre query K/2... border query off-centre.
  EXPECT_EQ(neighborhood_axis_window(5, 10, 3, 1, 1, false).rpb_first, 1);
  EXPECT_EQ(neighborhood_axis_window(0, 10, 3, 1, 1, false).rpb_first, 2);
  EXPECT_EQ(neighborhood_axis_window(9, 10, 3, 1, 1, false).rpb_first, 0);
}

// Every query gets exactly K keys (non-causal), all in its dilation group, for every L, K, d, s.
TEST(NeighborhoodWindow, AlwaysKKeysInTheQueryGroup) {
  for (Index L = 1; L <= 23; ++L)
    for (Index d = 1; d <= 4; ++d)
      for (Index K = 1; K * d <= L; ++K)
        for (Index s = 1; s <= K; ++s)
          for (Index i = 0; i < L; ++i) {
            const AxisWindow w = neighborhood_axis_window(i, L, K, d, s, false);
            ASSERT_EQ(w.count, K) << "L " << L << " K " << K << " d " << d << " s " << s << " i " << i;
            ASSERT_EQ(w.first % d, i % d);
            ASSERT_GE(w.first, 0);
            ASSERT_LT(w.first + (w.count - 1) * d, L);
            if (s == 1) {  // the query is in its window
              ASSERT_TRUE(w.first <= i && i <= w.first + (w.count - 1) * d);
            }
            const AxisWindow c = neighborhood_axis_window(i, L, K, d, s, true);
            ASSERT_LE(c.first + (c.count - 1) * d, i + (s - 1) * d);  // causal: nothing past the stride leader
          }
}

template <int R>
Tensor<float, R + 3> random_tensor(const std::array<Index, R + 3>& dims, Rng& rng) {
  Tensor<float, R + 3> t(dims);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (Index i = 0; i < t.size(); ++i) t.data()[i] = normal(rng);
  return t;
}

// Flattened [B, tokens, H, P] views of [B, X.., H, P] tensors.
template <int N>
ConstTensorView<float, 4> flat(const Tensor<float, N>& t) {
  Index tokens = 1;
  for (int a = 1; a < N - 2; ++a) tokens *= t.dimension(a);
  return ConstTensorView<float, 4>(t.data(), t.dimension(0), tokens, t.dimension(N - 2), t.dimension(N - 1));
}

TEST(NeighborhoodAttentionOracle, EqualsMaskedDenseAttentionWithTheWindowPredicate) {
  Rng rng(5);
  // 2-D, odd sizes, dilation not dividing an axis, stride, even kernel, GQA, Pv != P.
  const Index B = 2, X = 9, Y = 10, H = 4, Hkv = 2, P = 8, Pv = 5;
  const auto q = random_tensor<2>({B, X, Y, H, P}, rng);
  const auto k = random_tensor<2>({B, X, Y, Hkv, P}, rng);
  const auto v = random_tensor<2>({B, X, Y, Hkv, Pv}, rng);
  for (const auto& [K0, K1, d0, d1, s0, s1, c0, c1] :
       std::vector<std::tuple<Index, Index, Index, Index, Index, Index, bool, bool>>{
           {3, 3, 1, 1, 1, 1, false, false}, {4, 5, 2, 1, 1, 2, false, false}, {3, 2, 3, 4, 1, 1, false, false},
           {3, 5, 1, 2, 1, 1, true, false}, {2, 3, 2, 1, 2, 3, false, true}}) {
    attention::NeighborhoodParams<2> p;
    p.kernel_size = {K0, K1}, p.dilation = {d0, d1}, p.stride = {s0, s1}, p.causal = {c0, c1};
    Tensor<float, 4> lse;
    const Tensor<float, 5> got = ref::neighborhood_attention<2>(q, k, v, p, std::nullopt, &lse);
    attention::AttentionOptions o;
    o.q_offset = 0;
    const attention::AttentionResult want = ref::masked_attention(flat(q), flat(k), flat(v), o, [&](Index, Index i, Index j) {
      const AxisWindow wx = neighborhood_axis_window(i / Y, X, K0, d0, s0, c0);
      const AxisWindow wy = neighborhood_axis_window(i % Y, Y, K1, d1, s1, c1);
      const Index jx = j / Y, jy = j % Y;
      return jx >= wx.first && jx <= wx.first + (wx.count - 1) * d0 && (jx - wx.first) % d0 == 0 && jy >= wy.first &&
             jy <= wy.first + (wy.count - 1) * d1 && (jy - wy.first) % d1 == 0;
    });
    const std::string what = "K " + std::to_string(K0) + "x" + std::to_string(K1) + " d " + std::to_string(d0) + "x" +
                             std::to_string(d1);
    EXPECT_TRUE(testing::all_close(Tensor<float, 4>(flat(got)), want.out, testing::tolerance::oracle_vs_fixture, what));
  }
}

TEST(NeighborhoodAttentionOracle, WholeAxisKernelIsDenseAttentionAndCausalIsCausal) {
  Rng rng(6);
  // 3-D with K = the extent on every axis: full self-attention.
  const auto q3 = random_tensor<3>({1, 3, 4, 5, 2, 8}, rng), k3 = random_tensor<3>({1, 3, 4, 5, 2, 8}, rng),
             v3 = random_tensor<3>({1, 3, 4, 5, 2, 8}, rng);
  attention::NeighborhoodParams<3> full;
  full.kernel_size = {3, 4, 5};
  attention::AttentionOptions dense;
  dense.q_offset = 0;
  EXPECT_TRUE(testing::all_close(Tensor<float, 4>(flat(ref::neighborhood_attention<3>(q3, k3, v3, full))),
                                 ref::attention(flat(q3), flat(k3), flat(v3), dense).out,
                                 testing::tolerance::oracle_vs_fixture, "3-D whole-extent kernel"));
  // 1-D causal with K = L: causal attention.
  const auto q1 = random_tensor<1>({2, 17, 3, 8}, rng), k1 = random_tensor<1>({2, 17, 3, 8}, rng),
             v1 = random_tensor<1>({2, 17, 3, 8}, rng);
  attention::NeighborhoodParams<1> causal;
  causal.kernel_size = {17}, causal.causal = {true};
  attention::AttentionOptions dense_causal;
  dense_causal.causal = true;
  EXPECT_TRUE(testing::all_close(ref::neighborhood_attention<1>(q1, k1, v1, causal),
                                 ref::attention(ConstTensorView<float, 4>(q1), ConstTensorView<float, 4>(k1),
                                                ConstTensorView<float, 4>(v1), dense_causal)
                                     .out,
                                 testing::tolerance::oracle_vs_fixture, "1-D causal K = L"));
}

TEST(NeighborhoodAttentionOracle, RelativePositionalBias) {
  Rng rng(7);
  const Index X = 6, Y = 7, H = 2, P = 4, K = 3;
  const auto q = random_tensor<2>({1, X, Y, H, P}, rng), k = random_tensor<2>({1, X, Y, H, P}, rng),
             v = random_tensor<2>({1, X, Y, H, P}, rng);
  const auto p = attention::NeighborhoodParams<2>::uniform(K);
  // A table constant per head shifts every logit of a query equally: no effect on out.
  Tensor<float, 3> constant(H, 2 * K - 1, 2 * K - 1);
  for (Index h = 0; h < H; ++h)
    for (Index a = 0; a < 2 * K - 1; ++a)
      for (Index b = 0; b < 2 * K - 1; ++b) constant(h, a, b) = 0.7f * float(h + 1);
  EXPECT_TRUE(testing::all_close(ref::neighborhood_attention<2>(q, k, v, p, ConstTensorView<float, 3>(constant)),
                                 ref::neighborhood_attention<2>(q, k, v, p), testing::tolerance::oracle_vs_fixture,
                                 "constant rpb"));
  // A table that is -inf-like everywhere but one entry selects that relative offset: the corner
  // query (0, 0) has keys at offsets 0..2 on both axes, so entry (K - 1 + 2, K - 1 + 0) = (4, 2) means
  // the key (2, 0).
  Tensor<float, 3> pick(H, 2 * K - 1, 2 * K - 1);
  pick.setConstant(-60.0f);
  for (Index h = 0; h < H; ++h) pick(h, 4, 2) = 0.0f;
  const Tensor<float, 5> out = ref::neighborhood_attention<2>(q, k, v, p, ConstTensorView<float, 3>(pick));
  for (Index d = 0; d < P; ++d) EXPECT_NEAR(out(0, 0, 0, 1, d), v(0, 2, 0, 1, d), 1e-5);
}

TEST(NeighborhoodAttentionOracle, RejectsBadArguments) {
  Rng rng(8);
  const auto q = random_tensor<2>({1, 6, 7, 2, 4}, rng);
  const char* op = "ref::neighborhood_attention";
  auto run = [&](attention::NeighborhoodParams<2> p) { return [&, p] { ref::neighborhood_attention<2>(q, q, q, p); }; };
  attention::NeighborhoodParams<2> p = attention::NeighborhoodParams<2>::uniform(3);
  p.dilation = {3, 1};
  EXPECT_TRUE(testing::throws_error_mentioning(run(p), op, "kernel_size·dilation on axis 0 is 3·3 = 9, larger than the axis (6)"));
  p = attention::NeighborhoodParams<2>::uniform(3);
  p.stride = {1, 4};
  EXPECT_TRUE(testing::throws_error_mentioning(run(p), op, "stride on axis 1 is 4, expected 1 <= stride <= kernel_size (3)"));
  p = attention::NeighborhoodParams<2>::uniform(0);
  EXPECT_TRUE(testing::throws_error_mentioning(run(p), op, "kernel_size on axis 0 is 0, expected >= 1"));
  const auto k_bad = random_tensor<2>({1, 6, 6, 2, 4}, rng);
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { ref::neighborhood_attention<2>(q, k_bad, k_bad, attention::NeighborhoodParams<2>::uniform(3)); }, op,
      "expected the batch and spatial extents of q"));
  Tensor<float, 3> rpb(2, 4, 5);
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] {
        ref::neighborhood_attention<2>(q, q, q, attention::NeighborhoodParams<2>::uniform(3), ConstTensorView<float, 3>(rpb));
      },
      op, "rpb has shape [2, 4, 5], expected [H=2, 2K-1 per axis]"));
}

// Softmax over the last axis of [.., S] logits (-inf slots get weight 0).
template <int N>
Tensor<float, N> softmax_last(Tensor<float, N> x) {
  const Index S = x.dimension(N - 1), rows = x.size() / S;
  for (Index r = 0; r < rows; ++r) {
    float* row = x.data() + r * S;
    double m = -1e300, sum = 0;
    for (Index s = 0; s < S; ++s) m = std::max(m, double(row[s]));
    for (Index s = 0; s < S; ++s) sum += std::exp(double(row[s]) - m);
    for (Index s = 0; s < S; ++s) row[s] = float(std::exp(double(row[s]) - m) / sum);
  }
  return x;
}

// qk -> softmax -> av equals the oracle in 1-D, 2-D and 3-D (GQA, Pv != P, rpb, dilation, causal).
TEST(NeighborhoodSplit, QkSoftmaxAvEqualsTheOracle) {
  Rng rng(9);
  const testing::Tolerance tol = testing::tolerance::attention;
  {
    const auto q = random_tensor<1>({2, 23, 4, 20}, rng), k = random_tensor<1>({2, 23, 2, 20}, rng);
    const auto v = random_tensor<1>({2, 23, 2, 7}, rng);
    for (const bool causal : {false, true}) {
      attention::NeighborhoodParams<1> p;
      p.kernel_size = {5}, p.dilation = {3}, p.causal = {causal};
      const Tensor<float, 4> logits = attention::neighborhood_qk<1>(q, k, p);
      const Tensor<float, 4> out = attention::neighborhood_av<1>(softmax_last(logits), v, p);
      EXPECT_TRUE(testing::all_close(out, ref::neighborhood_attention<1>(q, k, v, p), tol, causal ? "1-D causal" : "1-D"));
      if (causal) {  // query 1 (group 1, first of its group) sees only itself: slots 1.. are -inf
        for (Index s = 1; s < 5; ++s) EXPECT_TRUE(std::isinf(logits(0, 1, 0, s)) && logits(0, 1, 0, s) < 0);
      }
    }
  }
  {
    const auto q = random_tensor<2>({1, 9, 11, 2, 16}, rng), k = random_tensor<2>({1, 9, 11, 2, 16}, rng);
    const auto v = random_tensor<2>({1, 9, 11, 2, 33}, rng);
    auto p = attention::NeighborhoodParams<2>::uniform(3, 2);
    p.kernel_size = {3, 5};
    const Tensor<float, 3> rpb = testing::random_normal<3>({2, 5, 9}, 0.f, 1.f, rng);  // [H, 2K0 - 1, 2K1 - 1]
    const Tensor<float, 5> logits = attention::neighborhood_qk<2>(q, k, p, ConstTensorView<float, 3>(rpb));
    EXPECT_TRUE(testing::all_close(attention::neighborhood_av<2>(softmax_last(logits), v, p),
                                   ref::neighborhood_attention<2>(q, k, v, p, ConstTensorView<float, 3>(rpb)), tol,
                                   "2-D with rpb"));
  }
  {
    const auto q = random_tensor<3>({1, 4, 6, 7, 2, 8}, rng), k = random_tensor<3>({1, 4, 6, 7, 1, 8}, rng);
    const auto v = random_tensor<3>({1, 4, 6, 7, 1, 8}, rng);
    attention::NeighborhoodParams<3> p;
    p.kernel_size = {3, 3, 5}, p.causal = {true, false, false};
    ThreadPool pool(2);
    const Tensor<float, 6> logits = attention::neighborhood_qk<3>(q, k, p, std::nullopt, pool.device());
    EXPECT_TRUE(testing::all_close(attention::neighborhood_av<3>(softmax_last(logits), v, p, pool.device()),
                                   ref::neighborhood_attention<3>(q, k, v, p), tol, "3-D causal on the first axis"));
  }
}

TEST(NeighborhoodSplit, RejectsBadArguments) {
  Rng rng(10);
  const auto q = random_tensor<2>({1, 6, 7, 2, 4}, rng);
  const auto p = attention::NeighborhoodParams<2>::uniform(3);
  const Tensor<float, 5> bad_weights(1, 6, 7, 2, 8);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::neighborhood_av<2>(bad_weights, q, p); },
                                               "neighborhood_av", "expected [B, X.., H, S=9]"));
  auto big = attention::NeighborhoodParams<2>::uniform(7);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::neighborhood_qk<2>(q, q, big); }, "neighborhood_qk",
                                               "larger than the axis (6)"));
  const auto k3 = random_tensor<2>({1, 6, 7, 3, 4}, rng);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::neighborhood_qk<2>(q, k3, p); }, "neighborhood_qk",
                                               "with H a multiple of Hkv"));
}

}  // namespace
}  // namespace tokenmix
