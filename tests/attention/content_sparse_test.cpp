// Content-dependent sparse attention (attention/content_sparse.hpp) against oracles that build the
// dense mask from each method's definition (reference/content_sparse.hpp): DMA, HAX, block top-k,
// Selective Attention; plus the selection properties (row sizes within budget, causality) and bad
// input.

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "support/tolerance.hpp"
#include "tokenmix/attention/content_sparse.hpp"
#include "tokenmix/reference/content_sparse.hpp"

namespace tokenmix {
namespace content_sparse_cases {  // named: the family's files share one translation unit (tests/CMakeLists.txt)
namespace {

using attention::AttentionOptions;
using attention::AttentionResult;
using testing::Rng;

const testing::Tolerance kTol = testing::tolerance::attention;

::testing::AssertionResult same(const AttentionResult& got, const AttentionResult& want, const std::string& what) {
  auto r = testing::all_close(got.out, want.out, kTol, what + " out");
  if (!r) return r;
  Tensor<float, 3> g = got.lse, w = want.lse;
  for (Index i = 0; i < g.size(); ++i)
    if (std::isinf(w.data()[i]) && std::isinf(g.data()[i])) g.data()[i] = w.data()[i] = 0.0f;
  return testing::all_close(g, w, kTol, what + " lse");
}

struct Qkv {
  Tensor<float, 4> q, k, v;
  Qkv(Index B, Index L, Index H, Index Hkv, Index P, Index Pv, std::uint64_t seed) {
    Rng rng(seed);
    q = testing::random_normal<4>({B, L, H, P}, 0.f, 1.f, rng);
    k = testing::random_normal<4>({B, L, Hkv, P}, 0.f, 1.f, rng);
    v = testing::random_normal<4>({B, L, Hkv, Pv}, 0.f, 1.f, rng);
  }
};

TEST(DynamicMaskAttention, MatchesOracleCausalAndNot) {
  const Index B = 2, L = 90, H = 4, Hkv = 2, P = 16;
  const Qkv in(B, L, H, Hkv, P, P, 1);
  Rng rng(2);
  const Tensor<float, 2> W_dt = testing::random_normal<2>({Hkv, Hkv * P}, 0.f, 0.3f, rng);
  const Tensor<float, 1> A = testing::random_uniform<1>({Hkv}, -1.f, 1.f, rng);
  const Tensor<float, 3> bias = attention::dma_key_bias(in.v, W_dt, A);
  // The bias helper against its formula at one point.
  double dt = 0;
  for (Index c = 0; c < Hkv * P; ++c) dt += double(W_dt(1, c)) * double(in.v(1, 7, c / P, c % P));
  EXPECT_NEAR(bias(1, 1, 7), double(A(1)) * std::log1p(std::exp(dt)), 1e-5);
  for (const bool causal : {true, false})
    for (const Index window : {Index(1), Index(7), Index(40), Index(200)})
      for (const Index block : {Index(16), Index(32)}) {
        AttentionOptions o;
        o.causal = causal;
        const std::string what = std::string(causal ? "causal" : "non-causal") + " window " + std::to_string(window) +
                                 " block " + std::to_string(block);
        EXPECT_TRUE(same(attention::dynamic_mask_attention(in.q, in.k, in.v, bias, window, o, block),
                         ref::dynamic_mask_attention(in.q, in.k, in.v, bias, window, o), what));
      }
  // Decode: the last query against the whole cache equals the prefill's last row.
  AttentionOptions o;
  o.causal = true;
  const AttentionResult full = attention::dynamic_mask_attention(in.q, in.k, in.v, bias, 9, o, 16);
  const Tensor<float, 4> last = in.q.slice(std::array<Index, 4>{0, L - 1, 0, 0}, std::array<Index, 4>{B, 1, H, P});
  const AttentionResult step = attention::dynamic_mask_attention(last, in.k, in.v, bias, 9, o, 16);
  const Tensor<float, 4> want = full.out.slice(std::array<Index, 4>{0, L - 1, 0, 0}, std::array<Index, 4>{B, 1, H, P});
  EXPECT_TRUE(testing::all_close(step.out, want, kTol, "DMA decode"));
}

TEST(HaxAttention, MatchesOracleAndKeepsTheBudget) {
  const Index B = 2, L = 150, d = 8, Dv = 24;
  const Qkv in(B, L, 1, 1, d, Dv, 11);
  Rng rng(12);
  const Tensor<float, 2> R = testing::random_normal<2>({d, 4}, 0.f, 1.f, rng);
  const Tensor<float, 2> scores = testing::random_normal<2>({B, L}, 0.f, 1.f, rng);
  for (const Index budget : {Index(2), Index(9), Index(32)}) {
    EXPECT_TRUE(same(attention::hax_attention(in.q, in.k, in.v, R, scores, budget, {}, 32),
                     ref::hax_attention(in.q, in.k, in.v, R, scores, budget), "budget " + std::to_string(budget)));
  }
  // Every row within the budget, causal, and never empty (key selection always keeps one key).
  const auto qbk = attention::hax_buckets(ConstTensorView<float, 3>(in.q.data(), B, L, d), ConstTensorView<float, 2>(R));
  const auto kbk = attention::hax_buckets(ConstTensorView<float, 3>(in.k.data(), B, L, d), ConstTensorView<float, 2>(R));
  for (const Index budget : {Index(2), Index(9)}) {
    const attention::BlockLayout layout = attention::hax_layout(qbk[0], kbk[0], scores.data(), budget, 16);
    for (Index i = 0; i < L; ++i) {
      Index keys = 0;
      for (Index j = 0; j < L; ++j) keys += layout.allowed(0, i, j);
      EXPECT_LE(keys, budget) << "row " << i;
      EXPECT_GE(keys, 1) << "row " << i;
      for (Index j = i + 1; j < L; ++j) EXPECT_FALSE(layout.allowed(0, i, j));
    }
  }
  // Buckets: the sign bits of the centred, normalised projections (one point by hand).
  const auto buckets = attention::hax_buckets(
      ConstTensorView<float, 3>(in.q.data(), B, L, d), ConstTensorView<float, 2>(R));
  std::vector<double> mean(d, 0.0);
  for (Index t = 0; t < L; ++t)
    for (Index c = 0; c < d; ++c) mean[c] += in.q(1, t, 0, c) / double(L);
  std::uint64_t want = 0;
  for (Index bit = 0; bit < 4; ++bit) {
    double proj = 0;
    for (Index c = 0; c < d; ++c) proj += (in.q(1, 33, 0, c) - mean[c]) * R(c, bit);
    if (proj > 0) want |= std::uint64_t(1) << bit;
  }
  EXPECT_EQ(buckets[1][33], want);
}

TEST(BlockTopKAttention, MatchesOracleAndForcesSinkAndLocal) {
  const Index B = 2, L = 300, H = 4, Hkv = 2, P = 16;
  const Qkv in(B, L, H, Hkv, P, P, 21);
  for (const auto& p : std::vector<attention::BlockTopKParams>{{32, 2, 1, 1}, {16, 5, 2, 2}, {64, 0, 0, 1}, {48, 7, 1, 2}}) {
    const std::string what = "block " + std::to_string(p.block) + " top_k " + std::to_string(p.top_k);
    EXPECT_TRUE(same(attention::block_topk_attention(in.q, in.k, in.v, p), ref::block_topk_attention(in.q, in.k, in.v, p),
                     what));
    // Row sizes: sink + local + top_k at most, and the diagonal always kept.
    const ConstTensorView<float, 4> q0(in.q.data(), 1, L, H, P), k0(in.k.data(), 1, L, Hkv, P);
    const attention::BlockLayout layout = attention::block_topk_layout(q0, k0, p);
    for (Index h = 0; h < H; ++h)
      for (Index qb = 0; qb < layout.q_blocks(); ++qb) {
        const Index r = layout.row(h, qb);
        const Index n = layout.row_start[std::size_t(r + 1)] - layout.row_start[std::size_t(r)];
        EXPECT_LE(n, p.sink_blocks + p.local_blocks + p.top_k) << what;
        EXPECT_EQ(layout.key_block[std::size_t(layout.row_start[std::size_t(r + 1)] - 1)], qb) << what;
      }
  }
}

TEST(SelectiveAttention, TemperaturesScaleLogitsAndValues) {
  const Index B = 2, L = 70, H = 4, Hkv = 2, P = 16;
  const Qkv in(B, L, H, Hkv, P, P, 31);
  Rng rng(32);
  const Tensor<float, 3> f = testing::random_normal<3>({B, H, L}, 0.f, 1.f, rng);
  const Tensor<float, 1> alpha = testing::random_normal<1>({H}, 0.f, 1.f, rng);
  const Tensor<float, 3> tau = attention::ssa_query_temperature(f, alpha);
  EXPECT_NEAR(tau(1, 2, 9), std::tanh(f(1, 2, 9)) + 1.0 + std::log(10.0) / (1.0 + std::exp(-alpha(2))), 1e-5);
  const Tensor<float, 3> tau_v = testing::random_uniform<3>({B, L, Hkv}, 0.2f, 1.5f, rng);
  for (const bool causal : {false, true}) {
    AttentionOptions o;
    o.causal = causal;
    EXPECT_TRUE(same(attention::selective_attention(in.q, in.k, in.v, tau, std::nullopt, o),
                     ref::selective_attention(in.q, in.k, in.v, tau, std::nullopt, o), "query temperature"));
    EXPECT_TRUE(same(attention::selective_attention(in.q, in.k, in.v, tau, ConstTensorView<float, 3>(tau_v), o),
                     ref::selective_attention(in.q, in.k, in.v, tau, ConstTensorView<float, 3>(tau_v), o),
                     "query and value temperatures"));
    // v is an input: the value temperature scales a copy (it once scaled v itself through a view).
    const Tensor<float, 4> v_before = in.v;
    attention::selective_attention(in.q, in.k, in.v, tau, ConstTensorView<float, 3>(tau_v), o);
    EXPECT_TRUE(testing::bitwise_equal(in.v, v_before, "v untouched by selective_attention"));
  }
  // Decode with the temperature of the last position (q_offset = L - 1).
  const Tensor<float, 3> f_last = f.slice(std::array<Index, 3>{0, 0, L - 1}, std::array<Index, 3>{B, H, 1});
  const Tensor<float, 3> tau_last = attention::ssa_query_temperature(f_last, alpha, L - 1);
  EXPECT_NEAR(tau_last(1, 2, 0), tau(1, 2, L - 1), 1e-6);
}

TEST(ContentSparseAttention, RejectsBadArguments) {
  const Qkv in(1, 20, 2, 1, 8, 8, 41);
  const Tensor<float, 3> bias(1, 1, 20);
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::dynamic_mask_attention(in.q, in.k, in.v, bias, 0); }, "dynamic_mask_attention", "window must be >= 1"));
  const Tensor<float, 3> bias_heads(1, 2, 20);
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::dynamic_mask_attention(in.q, in.k, in.v, bias_heads, 4); }, "dynamic_mask_attention",
      "one bias per kv head"));
  const Qkv one(1, 20, 1, 1, 8, 8, 42);
  const Tensor<float, 2> R(8, 4), scores(1, 20), R_bad(7, 4);
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::hax_attention(one.q, one.k, one.v, R, scores, 1); }, "hax_attention", "budget must be >= 2"));
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::hax_attention(in.q, in.k, in.v, R, scores, 4); }, "hax_attention", "expected one head"));
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::hax_attention(one.q, one.k, one.v, R_bad, scores, 4); }, "hax_buckets", "R has shape [7, 4]"));
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::block_topk_attention(in.q, in.k, in.v, {16, 2, 1, 0}); }, "block_topk_layout",
      "local_blocks >= 1"));
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::block_topk_attention(in.q, in.k, in.v, {8, 4, 1, 1}); }, "block_topk_layout",
      "top_k is 4 blocks, but the 20 keys make only 3 blocks of 8"));
  const Tensor<float, 3> tau(1, 2, 19);
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::selective_attention(in.q, in.k, in.v, tau); }, "selective_attention", "row_scale has shape [1, 2, 19]"));
}

}  // namespace
}  // namespace content_sparse_cases
}  // namespace tokenmix
