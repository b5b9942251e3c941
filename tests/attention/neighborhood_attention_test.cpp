// Neighborhood attention: the fused operator (attention/neighborhood_attention.hpp) against the oracle
// over sweeps of every axis combination (kernel sizes odd and even, 1 and the whole axis; dilations
// dividing the axis or not; strides; causal per axis; rpb; P and Pv around the SIMD width; GQA; tiles
// cut by the axis end), on every representative arch, bitwise identical for any thread count; its
// argument errors. Then the per-axis window rule against NATTEN's definition worked by hand
// (borders shift inward, even kernels, dilation groups of unequal length, causal, stride), and the
// oracle (reference/neighborhood_attention.hpp) against dense attention where they must agree:
// a kernel covering every axis equals full attention, 1-D causal with K = L equals causal
// attention, and any neighbourhood equals masked dense attention with the window predicate. rpb:
// a constant table changes nothing; the border entries are the off-centre ones.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "support/tolerance.hpp"
#include "tokenmix/core/cache.hpp"
#include "tokenmix/core/threading.hpp"
#include "support/archs.hpp"
#include "tokenmix/attention/attention.hpp"
#include "tokenmix/attention/neighborhood_attention.hpp"
#include "tokenmix/attention/neighborhood_kernel.hpp"
#include "tokenmix/attention/neighborhood_split.hpp"
#include "tokenmix/attention/neighborhood_types.hpp"
#include "tokenmix/reference/attention.hpp"
#include "tokenmix/reference/neighborhood_attention.hpp"

namespace tokenmix {
namespace neighborhood_attention_cases {  // named: the family's files share one translation unit (tests/CMakeLists.txt)
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


// One case of the sweeps: per-axis extent, kernel size, dilation, stride, causal; heads and widths.
template <int R>
struct NaCase {
  std::array<Index, R> extent{}, K{}, d{}, s{};
  std::array<bool, R> causal{};
  Index B = 1, H = 2, Hkv = 1, P = 16, Pv = 16;
  bool rpb = false;

  std::string name() const {
    std::string n;
    for (int a = 0; a < R; ++a)
      n += "[L" + std::to_string(extent[std::size_t(a)]) + " K" + std::to_string(K[std::size_t(a)]) + " d" +
           std::to_string(d[std::size_t(a)]) + " s" + std::to_string(s[std::size_t(a)]) +
           (causal[std::size_t(a)] ? " causal]" : "]");
    return n + " B" + std::to_string(B) + " H" + std::to_string(H) + "/" + std::to_string(Hkv) + " P" +
           std::to_string(P) + " Pv" + std::to_string(Pv) + (rpb ? " rpb" : "");
  }
  attention::NeighborhoodParams<R> params() const {
    attention::NeighborhoodParams<R> p;
    p.kernel_size = K, p.dilation = d, p.stride = s, p.causal = causal;
    return p;
  }
};

template <int R>
std::array<Index, R + 3> na_dims(const NaCase<R>& c, Index heads, Index width) {
  std::array<Index, R + 3> dims{};
  dims[0] = c.B;
  for (int a = 0; a < R; ++a) dims[std::size_t(a + 1)] = c.extent[std::size_t(a)];
  dims[std::size_t(R + 1)] = heads, dims[std::size_t(R + 2)] = width;
  return dims;
}

// The split ops (attention/neighborhood_split.hpp, the kernel's logits, probabilities and
// weighted_sum modes) against NATTEN's slot rule, NeighborhoodGrid::for_each_slot (the walk the
// oracle takes), in double: logits[.., h, slot] = scale·<q, k_key> + rpb (-inf at slots outside a
// causal window), neighborhood_attention_weights = their softmax per row and, for arbitrary
// weights, neighborhood_av = Σ_slots weight·v_key (the slots outside the window unread).
// The slot order is checked here, not only through qk -> softmax -> av, which a consistent
// reordering of both would pass.
template <int R, class Arch>
::testing::AssertionResult split_matches_slot_rule(const NaCase<R>& c, const Tensor<float, R + 3>& q,
                                                   const Tensor<float, R + 3>& k, const Tensor<float, R + 3>& v,
                                                   const std::optional<ConstTensorView<float, R + 1>>& rpb, Rng& rng,
                                                   const Eigen::ThreadPoolDevice* device) {
  const attention::NeighborhoodParams<R> params = c.params();
  const attention::detail::NeighborhoodGrid<R> grid(q, params);
  const Index S = grid.slots, T = grid.tokens, G = c.H / c.Hkv, table_size = rpb ? rpb->size() / c.H : 0;
  const double scale = 1.0 / std::sqrt(double(c.P));
  // Weights the size of a softmax row's (their sums over hundreds of slots stay within the tolerance).
  Tensor<float, R + 3> weights = random_tensor<R>(na_dims<R>(c, c.H, S), rng) * (1.0f / float(S));
  Tensor<float, R + 3> want_logits(na_dims<R>(c, c.H, S)), want_out(na_dims<R>(c, c.H, c.Pv));
  std::vector<double> acc(std::size_t(c.Pv));
  for (Index b = 0; b < c.B; ++b)
    for (Index t = 0; t < T; ++t)
      for (Index h = 0; h < c.H; ++h) {
        const Index row = (b * T + t) * c.H + h;
        float* logits = want_logits.data() + row * S;
        std::fill_n(logits, S, -std::numeric_limits<float>::infinity());
        std::fill(acc.begin(), acc.end(), 0.0);
        grid.for_each_slot(t, params, [&](Index slot, Index key, Index r) {
          const Index kv_row = (b * T + key) * c.Hkv + h / G;
          double dot = 0;
          for (Index p = 0; p < c.P; ++p) dot += double(q.data()[row * c.P + p]) * k.data()[kv_row * c.P + p];
          logits[slot] = float(scale * dot + (rpb ? rpb->data()[h * table_size + r] : 0.0f));
          for (Index p = 0; p < c.Pv; ++p) acc[std::size_t(p)] += double(weights.data()[row * S + slot]) * v.data()[kv_row * c.Pv + p];
        });
        for (Index p = 0; p < c.Pv; ++p) want_out.data()[row * c.Pv + p] = float(acc[std::size_t(p)]);
      }
  const ::testing::AssertionResult qk_ok = testing::all_close(
      attention::neighborhood_qk<R, Arch>(q, k, params, rpb, device), want_logits, testing::tolerance::attention,
      c.name() + " neighborhood_qk");
  if (!qk_ok) return qk_ok;
  // neighborhood_attention_weights: the softmax of each row of those logits (exp(-inf) = 0).
  Tensor<float, R + 3> want_weights(want_logits.dimensions());
  for (Index row = 0; row < want_logits.size() / S; ++row) {
    const float* logits = want_logits.data() + row * S;
    const double m = *std::max_element(logits, logits + S);
    double sum = 0;
    for (Index s = 0; s < S; ++s) sum += std::exp(double(logits[s]) - m);
    for (Index s = 0; s < S; ++s) want_weights.data()[row * S + s] = float(std::exp(double(logits[s]) - m) / sum);
  }
  const ::testing::AssertionResult weights_ok = testing::all_close(
      attention::neighborhood_attention_weights<R, Arch>(q, k, params, rpb, device), want_weights,
      testing::tolerance::attention, c.name() + " neighborhood_attention_weights");
  if (!weights_ok) return weights_ok;
  return testing::all_close(attention::neighborhood_av<R, Arch>(weights, v, params, device), want_out,
                            testing::tolerance::attention, c.name() + " neighborhood_av");
}

// The fused operator (out and lse) against the oracle on random inputs, and the split ops against
// the slot rule on the same inputs.
template <int R, class Arch = simd::default_arch>
::testing::AssertionResult fused_matches_oracle(const NaCase<R>& c, Rng& rng, const Eigen::ThreadPoolDevice* device = nullptr) {
  const auto q = random_tensor<R>(na_dims<R>(c, c.H, c.P), rng), k = random_tensor<R>(na_dims<R>(c, c.Hkv, c.P), rng),
             v = random_tensor<R>(na_dims<R>(c, c.Hkv, c.Pv), rng);
  std::array<Index, R + 1> rpb_dims{};
  rpb_dims[0] = c.H;
  for (int a = 0; a < R; ++a) rpb_dims[std::size_t(a + 1)] = 2 * c.K[std::size_t(a)] - 1;
  const Tensor<float, R + 1> table = testing::random_normal<R + 1>(rpb_dims, 0.f, 1.f, rng);
  std::optional<ConstTensorView<float, R + 1>> rpb;
  if (c.rpb) rpb.emplace(table.data(), table.dimensions());
  Tensor<float, R + 2> lse, want_lse;
  const Tensor<float, R + 3> out = attention::neighborhood_attention<R, Arch>(q, k, v, c.params(), rpb, &lse, device);
  const Tensor<float, R + 3> want = ref::neighborhood_attention<R>(q, k, v, c.params(), rpb, &want_lse);
  const ::testing::AssertionResult out_ok = testing::all_close(out, want, testing::tolerance::attention, c.name() + " out");
  if (!out_ok) return out_ok;
  const ::testing::AssertionResult lse_ok = testing::all_close(lse, want_lse, testing::tolerance::attention, c.name() + " lse");
  if (!lse_ok) return lse_ok;
  return split_matches_slot_rule<R, Arch>(c, q, k, v, rpb, rng, device);
}

TEST(NeighborhoodAttention, OneDimensionalSweep) {
  Rng rng(21);
  for (const Index L : {1, 2, 7, 16, 17, 40, 67})
    for (const Index d : {1, 2, 3})
      for (const Index K : {1, 2, 3, 5, 8, 13, 33, 67}) {
        if (K * d > L) continue;
        for (const bool causal : {false, true})
          for (const Index s : {Index(1), std::min<Index>(K, 3)}) {
            NaCase<1> c;
            c.extent = {L}, c.K = {K}, c.d = {d}, c.s = {s}, c.causal = {causal};
            c.P = (L + K) % 3 == 0 ? 3 : (L + K) % 3 == 1 ? 16 : 17;
            c.Pv = c.P == 16 ? 16 : 7;
            c.H = 2, c.Hkv = (L % 2) ? 1 : 2;
            c.rpb = !causal && (K + d) % 2 == 0;
            EXPECT_TRUE(fused_matches_oracle<1>(c, rng));
          }
      }
}

// Interior tiles load slot j at key column a + j; on AVX-512 the first slots of one- and two-row
// calls come from the aligned pair below a when a's offset in its cache line allows
// (kNaHybridSlots): a VALIGND at offset 0 (one row: every slot), a permute elsewhere; the others
// from plain loads. Kernel sizes 2 .. 18, causal or not, put a at every offset 0 .. 15 and chunks
// of 2 .. 8 slots; every case against the oracle. The non-causal ones with rpb: up to K 16
// (kNaRpbPermuteMaxK) each slot's biases are a permute of the table row (one vector up to K 8, two
// beyond), from K 17 a gather.
TEST(NeighborhoodAttention, KeySlotsAtEveryCacheLineOffset) {
  Rng rng(28);
  for (Index K = 2; K <= 18; ++K)
    for (const bool causal : {false, true}) {
      NaCase<1> c;
      c.extent = {150}, c.K = {K}, c.d = {1}, c.s = {1}, c.causal = {causal}, c.P = 16, c.Pv = 16, c.rpb = !causal;
      EXPECT_TRUE(fused_matches_oracle<1>(c, rng));
    }
}

// 2-D images whose tensors exceed this machine's L2 run every kv head inside one work item, head
// by head within each block, one row-slab ring per kv head (detail::na_make_plan): the image is
// sized from l2_cache_bytes() so that the plan takes that path, and checked against the oracle,
// with dilation, rpb and GQA, serial and on two threads. With threads enough that its blocks would
// give each fewer than 4 items, the plan splits the kv heads over items instead: bitwise the same
// result.
TEST(NeighborhoodAttention, ImagesLargerThanL2RunEveryKvHeadPerItem) {
  Rng rng(29);
  NaCase<2> c;
  c.H = 4, c.Hkv = 2, c.P = 32, c.Pv = 32, c.K = {7, 5}, c.d = {1, 2}, c.s = {1, 1}, c.rpb = true;
  const double token_bytes = double((c.H + c.Hkv) * (c.P + c.Pv)) * sizeof(float);
  const Index side = Index(std::ceil(std::sqrt(double(l2_cache_bytes()) / token_bytes))) + 2;
  c.extent = {side, side + 3};
  const auto plan = attention::detail::na_make_plan<2, simd::default_arch>(c.B, c.H, c.Hkv, c.P, c.Pv, c.extent,
                                                                            c.params(), 1.0f, 1);
  ASSERT_TRUE(plan.heads_inside) << c.name();
  EXPECT_TRUE(fused_matches_oracle<2>(c, rng));
  ThreadPool pool(2);
  EXPECT_TRUE(fused_matches_oracle<2>(c, rng, pool.device()));

  // Threads enough that the items with every kv head inside (B · tile runs · blocks) are fewer than
  // 4 per thread: the plan then splits the kv heads instead.
  const Index many = c.B * Index(plan.runs.size() * plan.blocks.size()) / 4 + 1;
  const auto split = attention::detail::na_make_plan<2, simd::default_arch>(c.B, c.H, c.Hkv, c.P, c.Pv, c.extent,
                                                                             c.params(), 1.0f, many);
  ASSERT_FALSE(split.heads_inside) << c.name() << ", threads " << many;
  const auto q = random_tensor<2>({c.B, c.extent[0], c.extent[1], c.H, c.P}, rng);
  const auto k = random_tensor<2>({c.B, c.extent[0], c.extent[1], c.Hkv, c.P}, rng);
  const auto v = random_tensor<2>({c.B, c.extent[0], c.extent[1], c.Hkv, c.Pv}, rng);
  ThreadPool wide(static_cast<int>(many));
  EXPECT_TRUE(testing::bitwise_equal(attention::neighborhood_attention(q, k, v, c.params(), std::nullopt, nullptr, wide.device()),
                                     attention::neighborhood_attention(q, k, v, c.params())));
}

TEST(NeighborhoodAttention, TwoDimensionalSweep) {
  Rng rng(22);
  const std::vector<std::array<Index, 2>> extents{{5, 7}, {9, 20}, {17, 33}};
  for (const auto& e : extents)
    for (const Index K0 : {Index(1), Index(3), Index(4), e[0]})
      for (const Index K1 : {Index(1), Index(5), Index(7), e[1]})
        for (const auto& [d0, d1] : std::vector<std::pair<Index, Index>>{{1, 1}, {2, 1}, {1, 3}, {3, 2}}) {
          if (K0 * d0 > e[0] || K1 * d1 > e[1]) continue;
          for (const auto& [c0, c1] : std::vector<std::pair<bool, bool>>{{false, false}, {true, false}, {false, true}, {true, true}}) {
            NaCase<2> c;
            c.extent = e, c.K = {K0, K1}, c.d = {d0, d1}, c.s = {1, 1}, c.causal = {c0, c1};
            c.P = (K0 + K1) % 2 ? 16 : 5, c.Pv = (K0 + d1) % 2 ? 16 : 20;
            c.B = e[0] == 5 ? 2 : 1, c.H = 2, c.Hkv = K1 % 2 ? 2 : 1;
            c.rpb = !c0 && !c1 && (K0 + K1 + d0) % 2 == 0;
            EXPECT_TRUE(fused_matches_oracle<2>(c, rng));
          }
        }
}

TEST(NeighborhoodAttention, ThreeDimensionalAndStrides) {
  Rng rng(23);
  NaCase<3> c;
  c.extent = {4, 6, 19}, c.K = {3, 3, 7}, c.d = {1, 2, 2}, c.s = {1, 1, 1}, c.rpb = true;
  EXPECT_TRUE(fused_matches_oracle<3>(c, rng));
  c.K = {2, 3, 5}, c.d = {2, 1, 3}, c.causal = {true, false, true}, c.rpb = false, c.H = 4, c.Hkv = 2, c.Pv = 9;
  EXPECT_TRUE(fused_matches_oracle<3>(c, rng));
  c.extent = {3, 4, 5}, c.K = {3, 4, 5}, c.d = {1, 1, 1}, c.causal = {false, false, false}, c.P = 33, c.Pv = 1;
  EXPECT_TRUE(fused_matches_oracle<3>(c, rng));
  // A causal middle axis: early rows' windows hold fewer than K_1 rows, so the kernel's window index
  // (radix: the rows present) and NATTEN's slot (radix K_1) differ for the split ops.
  c.extent = {5, 6, 9}, c.K = {3, 3, 3}, c.d = {1, 2, 1}, c.causal = {false, true, false}, c.P = 8, c.Pv = 8;
  EXPECT_TRUE(fused_matches_oracle<3>(c, rng));
  // Strides (NATTEN's query stride: groups of queries share their leader's window), up to K.
  NaCase<2> s;
  s.extent = {12, 37}, s.K = {3, 9}, s.d = {1, 1}, s.s = {2, 9};
  EXPECT_TRUE(fused_matches_oracle<2>(s, rng));
  s.s = {3, 5}, s.d = {2, 3}, s.causal = {false, true};
  EXPECT_TRUE(fused_matches_oracle<2>(s, rng));
  NaCase<1> wide;  // stride 16 with K 16: windows far apart inside one tile
  wide.extent = {100}, wide.K = {16}, wide.d = {1}, wide.s = {16}, wide.P = 8, wide.Pv = 8;
  EXPECT_TRUE(fused_matches_oracle<1>(wide, rng));
}

// A random case for RandomCasesInEveryRank: per axis an extent (sometimes tiny), a dilation that may
// not divide it, a kernel size up to the group length, a stride up to K and causal or not; rpb where
// no axis is causal; GQA; head dims around and off the SIMD widths.
template <int R>
NaCase<R> random_na_case(Rng& rng) {
  testing::RandomDraws draw{rng};
  constexpr Index kMaxExtent = R == 1 ? 300 : R == 2 ? 40 : 10;  // [B, X.., H, P] stays small for the oracle
  NaCase<R> c;
  bool any_causal = false;
  for (std::size_t a = 0; a < std::size_t(R); ++a) {
    const Index L = draw.pick(1, draw.chance(0.2) ? 6 : kMaxExtent);
    const Index d = draw.chance(0.5) ? 1 : draw.pick(1, std::min<Index>(L, 6));
    const Index K = draw.pick(1, std::max<Index>(1, L / d));
    c.extent[a] = L, c.d[a] = d, c.K[a] = K, c.s[a] = draw.chance(0.7) ? 1 : draw.pick(1, K);
    c.causal[a] = draw.chance(0.25);
    any_causal = any_causal || c.causal[a];
  }
  c.B = draw.pick(1, 2), c.Hkv = draw.pick(1, 3), c.H = c.Hkv * draw.pick(1, 3);
  c.P = draw.chance(0.5) ? (draw.chance(0.5) ? 16 : 32) : draw.pick(1, 40);
  c.Pv = draw.chance(0.6) ? c.P : draw.pick(1, 40);
  c.rpb = !any_causal && draw.chance(0.4);
  return c;
}

// Random cases in every rank, on one thread and on two: the fused op against the oracle and the split
// ops against the slot rule (fused_matches_oracle), for the combinations the sweeps above do not
// enumerate (strides with dilation and causal axes in 3-D, GQA with odd head dims, ...). 40 rounds of
// three cases by default (~1 s in the release build, ~35 s under the sanitizers at -O0); for a longer
// search set TOKENMIX_NA_RANDOM_ROUNDS (and TOKENMIX_NA_RANDOM_SEED). A standalone run of the same
// generator over 13,000 cases (AVX-512, AVX2, and ASan + UBSan builds) found no mismatch.
TEST(NeighborhoodAttention, RandomCasesInEveryRank) {
  const auto env = [](const char* name, long fallback) {
    const char* value = std::getenv(name);
    return value ? std::atol(value) : fallback;
  };
  Rng rng(std::uint64_t(env("TOKENMIX_NA_RANDOM_SEED", 29)));
  ThreadPool pool(2);
  const long rounds = env("TOKENMIX_NA_RANDOM_ROUNDS", 40);
  for (long i = 0; i < rounds; ++i) {
    const Eigen::ThreadPoolDevice* device = i % 3 == 2 ? pool.device() : nullptr;
    EXPECT_TRUE(fused_matches_oracle<1>(random_na_case<1>(rng), rng, device));
    EXPECT_TRUE(fused_matches_oracle<2>(random_na_case<2>(rng), rng, device));
    EXPECT_TRUE(fused_matches_oracle<3>(random_na_case<3>(rng), rng, device));
  }
}

// Axes longer than a run of tiles (1-D: 256 queries, 2-D: 1024): the runs' slab columns overlap at
// their seams.
TEST(NeighborhoodAttention, LongAxesSpanSeveralTileRuns) {
  Rng rng(28);
  NaCase<1> one;
  one.extent = {700}, one.K = {9}, one.d = {1}, one.s = {1}, one.P = 16, one.Pv = 16, one.rpb = true;
  EXPECT_TRUE(fused_matches_oracle<1>(one, rng));
  one.d = {3}, one.causal = {true}, one.rpb = false;
  EXPECT_TRUE(fused_matches_oracle<1>(one, rng));
  NaCase<2> two;
  two.extent = {3, 1100}, two.K = {3, 5}, two.d = {1, 2}, two.s = {1, 1}, two.P = 8, two.Pv = 8, two.H = 1, two.Hkv = 1;
  EXPECT_TRUE(fused_matches_oracle<2>(two, rng));
}

// The outputs of 1-D calls whose tensors outgrow half the L3 go to memory with non-temporal stores
// (NaPlan::stream_out; the length is sized from l3_cache_bytes() so that the plan takes that path,
// and one of half that length keeps plain stores): against the oracle (and the split ops against the
// slot rule), with GQA and rpb; an output view off the vector alignment (plain stores for the rows
// the streaming stores cannot take) and two threads give the same bits.
TEST(NeighborhoodAttention, LongOutputsAreStreamedPastTheCaches) {
  Rng rng(31);
  NaCase<1> c;
  c.H = 2, c.Hkv = 1, c.P = 16, c.Pv = 16, c.K = {9}, c.d = {1}, c.s = {1}, c.rpb = true;
  const Index token_bytes = (c.H + c.Hkv) * (c.P + c.Pv) * Index(sizeof(float));  // q, k, v and out
  c.extent = {Index(l3_cache_bytes()) / 2 / token_bytes + 37};
  {
    const std::array<Index, 1> half{c.extent[0] / 2};
    EXPECT_FALSE((attention::detail::na_make_plan<1, simd::default_arch>(c.B, c.H, c.Hkv, c.P, c.Pv, half, c.params(),
                                                                          1.0f, 1).stream_out));
  }
  const auto plan = attention::detail::na_make_plan<1, simd::default_arch>(c.B, c.H, c.Hkv, c.P, c.Pv, c.extent,
                                                                            c.params(), 1.0f, 1);
  ASSERT_TRUE(plan.stream_out) << c.name();
  EXPECT_TRUE(fused_matches_oracle<1>(c, rng));

  const auto q = random_tensor<1>(na_dims<1>(c, c.H, c.P), rng), k = random_tensor<1>(na_dims<1>(c, c.Hkv, c.P), rng),
             v = random_tensor<1>(na_dims<1>(c, c.Hkv, c.Pv), rng);
  const Tensor<float, 4> want = attention::neighborhood_attention(q, k, v, c.params());
  std::vector<float> shifted(std::size_t(want.size() + 1));  // the view starts one float past an aligned one
  attention::neighborhood_attention<1>(q, k, v, c.params(), std::nullopt, TensorView<float, 4>(shifted.data() + 1, want.dimensions()),
                                       nullptr);
  EXPECT_TRUE(std::equal(want.data(), want.data() + want.size(), shifted.data() + 1));
  ThreadPool pool(2);
  EXPECT_TRUE(testing::bitwise_equal(attention::neighborhood_attention(q, k, v, c.params(), std::nullopt, nullptr, pool.device()),
                                     want));
}

// 1-D dilations take position order (consecutive tokens in a tile, slot j at column a + j·d) where
// the tiles' windows stay narrow, (K - 1)·d <= 48 keys past a tile for dilation 2 and 4 (any
// dilation up to 128 keys once the tensors stream from memory), else dilation groups (a tile of every
// d-th token); both orders against the oracle, at a short length and at one whose tensors outgrow
// half the L3, causal and with rpb. The lengths are multiples of W·d, so that the groups fill whole
// tiles (the lane rule, tested below, then has nothing to gain).
TEST(NeighborhoodAttention, OneDimensionalDilationsTakePositionOrderWhereWindowsStayNarrow) {
  Rng rng(32);
  NaCase<1> c;
  c.H = 2, c.Hkv = 1, c.P = 16, c.Pv = 16, c.s = {1};
  const Index token_bytes = (c.H + c.Hkv) * (c.P + c.Pv) * Index(sizeof(float));
  const Index streamed = Index(l3_cache_bytes()) / 2 / token_bytes + 37;
  struct Choice {
    Index L, K, d;
    bool position_order;
  };
  for (const Choice& x : {Choice{300, 7, 4, true}, Choice{300, 13, 4, true}, Choice{300, 9, 2, true},
                          Choice{300, 7, 8, false}, Choice{300, 7, 3, false}, Choice{300, 7, 9, false},
                          Choice{300, 5, 13, false}, Choice{streamed, 9, 16, true}, Choice{streamed, 7, 3, true},
                          Choice{streamed, 9, 17, false}})
    for (const bool causal : {false, true}) {
      const Index whole_tiles = Index(simd::lanes<simd::default_arch>) * x.d;
      c.extent = {(x.L + whole_tiles - 1) / whole_tiles * whole_tiles}, c.K = {x.K}, c.d = {x.d}, c.causal = {causal};
      c.rpb = !causal;
      const auto plan = attention::detail::na_make_plan<1, simd::default_arch>(c.B, c.H, c.Hkv, c.P, c.Pv, c.extent,
                                                                                c.params(), 1.0f, 1);
      EXPECT_EQ(plan.col_step, x.position_order ? 1 : x.d) << c.name();
      // Dilation groups' runs span by span: run i of every group, then run i + 1 (the streamed lengths
      // hold many runs a group).
      EXPECT_TRUE(std::is_sorted(plan.runs.begin(), plan.runs.end(),
                                 [](const auto& a, const auto& b) { return a.first < b.first; }))
          << c.name();
      EXPECT_TRUE(fused_matches_oracle<1>(c, rng));
    }
}

// Wide dilated 1-D windows: in-group order unless the groups are short against the vector (their
// tiles then fill clearly fewer lanes than position order's, see na_make_plan). L 4096 dilation 5
// leaves each group's last tile partial (position order under the earlier rule, 1.3-1.5x the time).
TEST(NeighborhoodAttention, OneDimensionalDilationsKeepGroupsUnlessTheyAreShort) {
  Rng rng(33);
  NaCase<1> c;
  c.H = 2, c.Hkv = 1, c.P = 16, c.Pv = 16, c.s = {1};
  struct Choice {
    Index L, K, d;
    bool position_order;
  };
  for (const Choice& x : {Choice{4096, 33, 5, false}, Choice{1000, 13, 6, false}, Choice{200, 7, 12, true},
                          Choice{100, 5, 13, true}})
    for (const bool causal : {false, true}) {
      c.extent = {x.L}, c.K = {x.K}, c.d = {x.d}, c.causal = {causal}, c.rpb = !causal;
      const auto plan = attention::detail::na_make_plan<1, simd::default_arch>(c.B, c.H, c.Hkv, c.P, c.Pv, c.extent,
                                                                                c.params(), 1.0f, 1);
      EXPECT_EQ(plan.col_step, x.position_order ? 1 : x.d) << c.name();
      EXPECT_TRUE(fused_matches_oracle<1>(c, rng));
    }
}

// Every code path of the kernel on each representative arch (vector widths 4, 8, 16; border tiles
// wrapped; strided tiles permuted on AVX-512, gathered elsewhere).
template <class Arch>
class NeighborhoodAttentionArchTest : public ::testing::Test {};
TYPED_TEST_SUITE(NeighborhoodAttentionArchTest, testing::RepresentativeArchs, testing::ArchNames);

TYPED_TEST(NeighborhoodAttentionArchTest, MatchesTheOracle) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  Rng rng(24);
  NaCase<1> one;
  one.extent = {45}, one.K = {7}, one.d = {2}, one.s = {1}, one.P = 17, one.Pv = 9, one.rpb = true;
  EXPECT_TRUE((fused_matches_oracle<1, TypeParam>(one, rng)));
  one.causal = {true}, one.rpb = false, one.K = {5}, one.d = {1};
  EXPECT_TRUE((fused_matches_oracle<1, TypeParam>(one, rng)));
  NaCase<2> two;
  two.extent = {11, 29}, two.K = {5, 7}, two.d = {2, 1}, two.s = {1, 1}, two.P = 12, two.Pv = 20, two.rpb = true;
  two.H = 4, two.Hkv = 2;
  EXPECT_TRUE((fused_matches_oracle<2, TypeParam>(two, rng)));
  one.causal = {false}, one.K = {7}, one.s = {3}, one.rpb = true;  // strided: windows repeat
  EXPECT_TRUE((fused_matches_oracle<1, TypeParam>(one, rng)));
  two.s = {2, 3}, two.d = {1, 1}, two.rpb = false;
  EXPECT_TRUE((fused_matches_oracle<2, TypeParam>(two, rng)));
  // Dilation groups shorter than the vector: tiles in position order, slot j at column a + j·d
  // (the weighted sum's lane blocks of one residue mod d: d = 2 and 4 at compile time, 3 and 5 at
  // run time where 2d fits the vector, else lanewise).
  one.extent = {40}, one.K = {5}, one.d = {4}, one.s = {1}, one.Pv = 33;
  EXPECT_TRUE((fused_matches_oracle<1, TypeParam>(one, rng)));
  two.extent = {5, 34}, two.K = {3, 9}, two.d = {1, 2}, two.s = {1, 1}, two.Pv = 16;
  EXPECT_TRUE((fused_matches_oracle<2, TypeParam>(two, rng)));
  two.extent = {4, 21}, two.K = {3, 5}, two.d = {1, 3}, two.causal = {false, true};
  EXPECT_TRUE((fused_matches_oracle<2, TypeParam>(two, rng)));
  two.extent = {3, 40}, two.K = {3, 5}, two.d = {1, 5}, two.causal = {false, false}, two.Pv = 8;
  EXPECT_TRUE((fused_matches_oracle<2, TypeParam>(two, rng)));
}

// The work items split differently with the thread count; each query's arithmetic does not (the
// fused op and the split ops).
TEST(NeighborhoodAttention, BitwiseIdenticalForAnyThreadCount) {
  Rng rng(25);
  const auto q = random_tensor<2>({2, 23, 37, 4, 16}, rng), k = random_tensor<2>({2, 23, 37, 2, 16}, rng),
             v = random_tensor<2>({2, 23, 37, 2, 16}, rng);
  auto p = attention::NeighborhoodParams<2>::uniform(7);
  p.dilation = {2, 1};
  Tensor<float, 4> lse1;
  const Tensor<float, 5> one = attention::neighborhood_attention(q, k, v, p, std::nullopt, &lse1);
  for (const int threads : {2, 3}) {
    ThreadPool pool(threads);
    Tensor<float, 4> lse;
    EXPECT_TRUE(testing::bitwise_equal(attention::neighborhood_attention(q, k, v, p, std::nullopt, &lse, pool.device()), one));
    EXPECT_TRUE(testing::bitwise_equal(lse, lse1));
  }
  // The split ops run the same kernel (logits / weighted_sum modes).
  const Tensor<float, 5> logits = attention::neighborhood_qk<2>(q, k, p);
  const Tensor<float, 5> split = attention::neighborhood_av<2>(logits, v, p);
  for (const int threads : {2, 3}) {
    ThreadPool pool(threads);
    EXPECT_TRUE(testing::bitwise_equal(attention::neighborhood_qk<2>(q, k, p, std::nullopt, pool.device()), logits));
    EXPECT_TRUE(testing::bitwise_equal(attention::neighborhood_av<2>(logits, v, p, pool.device()), split));
  }
  const auto q1 = random_tensor<1>({1, 1000, 2, 32}, rng), k1 = random_tensor<1>({1, 1000, 2, 32}, rng);
  const auto p1 = attention::NeighborhoodParams<1>::uniform(13, 3);
  const Tensor<float, 4> serial = attention::neighborhood_attention(q1, k1, k1, p1);
  ThreadPool pool(2);
  EXPECT_TRUE(testing::bitwise_equal(attention::neighborhood_attention(q1, k1, k1, p1, std::nullopt, nullptr, pool.device()), serial));
}

// rpb entries of -inf mask their slots (the table is the caller's): the fused op and the split ops
// match the oracle where some of a query's slots are masked, and a head whose table is -inf
// everywhere gets NaN out and lse, as a softmax over no finite logit does in NATTEN and PyTorch.
TEST(NeighborhoodAttention, RpbOfMinusInfinityMasksSlots) {
  Rng rng(31);
  NaCase<2> c;
  c.extent = {9, 21}, c.K = {3, 5}, c.d = {1, 2}, c.s = {1, 1}, c.H = 3, c.Hkv = 1, c.P = 16, c.Pv = 16;
  const auto q = random_tensor<2>(na_dims<2>(c, c.H, c.P), rng), k = random_tensor<2>(na_dims<2>(c, c.Hkv, c.P), rng),
             v = random_tensor<2>(na_dims<2>(c, c.Hkv, c.Pv), rng);
  Tensor<float, 3> table = testing::random_normal<3>({c.H, 5, 9}, 0.f, 1.f, rng);
  const float inf = std::numeric_limits<float>::infinity();
  for (Index i = 0; i < 5; ++i)
    for (Index j = 0; j < 9; ++j) {
      if ((i + 2 * j) % 3 == 0) table(0, i, j) = -inf;  // head 0: a third of the entries
      table(2, i, j) = -inf;                            // head 2: every entry
    }
  const std::optional<ConstTensorView<float, 3>> rpb(ConstTensorView<float, 3>(table.data(), table.dimensions()));
  Tensor<float, 4> lse, want_lse;
  const Tensor<float, 5> out = attention::neighborhood_attention<2>(q, k, v, c.params(), rpb, &lse);
  const Tensor<float, 5> want = ref::neighborhood_attention<2>(q, k, v, c.params(), rpb, &want_lse);
  const Tensor<float, 5> split =
      attention::neighborhood_av<2>(attention::neighborhood_attention_weights<2>(q, k, c.params(), rpb), v, c.params());
  for (Index x = 0; x < c.extent[0]; ++x)
    for (Index y = 0; y < c.extent[1]; ++y) {
      for (Index h = 0; h < 2; ++h) {
        EXPECT_NEAR(lse(0, x, y, h), want_lse(0, x, y, h), 1e-4) << x << " " << y << " " << h;
        for (Index p = 0; p < c.Pv; ++p) {
          EXPECT_NEAR(out(0, x, y, h, p), want(0, x, y, h, p), 1e-4) << x << " " << y << " " << h;
          EXPECT_NEAR(split(0, x, y, h, p), want(0, x, y, h, p), 1e-4) << x << " " << y << " " << h;
        }
      }
      EXPECT_TRUE(std::isnan(lse(0, x, y, 2)) && std::isnan(want_lse(0, x, y, 2)));
      for (Index p = 0; p < c.Pv; ++p) EXPECT_TRUE(std::isnan(out(0, x, y, 2, p)) && std::isnan(want(0, x, y, 2, p)));
    }
}

// A kernel covering every axis is dense attention: the fused op equals the dense engine.
TEST(NeighborhoodAttention, WholeExtentKernelEqualsTheDenseEngine) {
  Rng rng(26);
  const auto q = random_tensor<2>({1, 6, 9, 2, 16}, rng), k = random_tensor<2>({1, 6, 9, 2, 16}, rng),
             v = random_tensor<2>({1, 6, 9, 2, 16}, rng);
  attention::NeighborhoodParams<2> p;
  p.kernel_size = {6, 9};
  attention::AttentionOptions dense;
  dense.q_offset = 0;
  EXPECT_TRUE(testing::all_close(Tensor<float, 4>(flat(attention::neighborhood_attention(q, k, v, p))),
                                 attention::attention(flat(q), flat(k), flat(v), dense).out, testing::tolerance::attention,
                                 "whole-extent kernel vs dense engine"));
}

TEST(NeighborhoodAttention, RejectsBadArguments) {
  Rng rng(27);
  const char* op = "neighborhood_attention";
  const auto q = random_tensor<2>({1, 6, 7, 2, 4}, rng);
  const auto p = attention::NeighborhoodParams<2>::uniform(3);
  auto big = p;
  big.dilation = {1, 3};
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::neighborhood_attention(q, q, q, big); }, op,
                                               "kernel_size·dilation on axis 1 is 3·3 = 9, larger than the axis (7)"));
  const auto k3 = random_tensor<2>({1, 6, 7, 3, 4}, rng);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::neighborhood_attention(q, k3, k3, p); }, op,
                                               "with H a multiple of Hkv"));
  const auto k_short = random_tensor<2>({1, 6, 6, 2, 4}, rng);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::neighborhood_attention(q, k_short, k_short, p); }, op,
                                               "expected the batch and spatial extents of q"));
  Tensor<float, 3> rpb(2, 5, 5);
  auto causal = p;
  causal.causal = {false, true};
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::neighborhood_attention(q, q, q, causal, ConstTensorView<float, 3>(rpb)); }, op,
      "rpb is not defined with causal axes"));
  Tensor<float, 5> out(1, 6, 7, 2, 5);
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::neighborhood_attention(q, q, q, p, std::nullopt, TensorView<float, 5>(out.data(), out.dimensions()), nullptr); },
      op, "out has shape [1, 6, 7, 2, 5], expected [B, X.., H, Pv]"));
  Tensor<float, 5> good(1, 6, 7, 2, 4);
  Tensor<float, 4> lse(1, 6, 2, 7);
  TensorView<float, 4> lse_view(lse.data(), lse.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::neighborhood_attention(q, q, q, p, std::nullopt, TensorView<float, 5>(good.data(), good.dimensions()), &lse_view); },
      op, "lse has shape [1, 6, 2, 7], expected [B, X.., H]"));
  Tensor<float, 5> inplace = q;
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] {
        attention::neighborhood_attention(inplace, q, q, p, std::nullopt,
                                          TensorView<float, 5>(inplace.data(), inplace.dimensions()), nullptr);
      },
      op, "out must not overlap q, k or v"));
  auto nan_scale = p;
  nan_scale.scale = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::neighborhood_attention(q, q, q, nan_scale); }, op,
                                               "scale is nan, expected a finite number"));
}

}  // namespace
}  // namespace neighborhood_attention_cases
}  // namespace tokenmix
