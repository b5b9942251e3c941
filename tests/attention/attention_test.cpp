// The attention engine (attention/attention.hpp) against the dense masked oracle
// (reference/attention.hpp): dense causal / non-causal, GQA / MQA, causal offsets (chunked prefill,
// decode), head dims around the SIMD width, value width != key width, softcap, key bias, every
// layout generator with block sizes that do not divide L, empty rows, thread invariance, bad input.

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "support/tolerance.hpp"
#include "tokenmix/attention/attention.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/reference/attention.hpp"

namespace tokenmix {
namespace attention_cases {  // named: the family's files share one translation unit (tests/CMakeLists.txt)
namespace {

using attention::AttentionOptions;
using attention::AttentionResult;
using attention::BlockLayout;
using testing::Rng;

const testing::Tolerance kTol = testing::tolerance::attention;

struct Qkv {
  Tensor<float, 4> q, k, v;
  Qkv(Index B, Index Lq, Index Lk, Index H, Index Hkv, Index P, Index Pv, std::uint64_t seed) {
    Rng rng(seed);
    q = testing::random_normal<4>({B, Lq, H, P}, 0.f, 1.f, rng);
    k = testing::random_normal<4>({B, Lk, Hkv, P}, 0.f, 1.f, rng);
    v = testing::random_normal<4>({B, Lk, Hkv, Pv}, 0.f, 1.f, rng);
  }
};

// out and lse of the fast op against the oracle's; -inf lse must match exactly.
::testing::AssertionResult matches(const AttentionResult& got, const AttentionResult& want, const std::string& what) {
  auto r = testing::all_close(got.out, want.out, kTol, what + " out");
  if (!r) return r;
  Tensor<float, 3> g = got.lse, w = want.lse;
  for (Index i = 0; i < g.size(); ++i) {
    const bool gi = std::isinf(g.data()[i]), wi = std::isinf(w.data()[i]);
    if (gi != wi) return ::testing::AssertionFailure() << what << ": lse " << g.data()[i] << " vs " << w.data()[i] << " at " << i;
    if (gi) g.data()[i] = w.data()[i] = 0.0f;
  }
  return testing::all_close(g, w, kTol, what + " lse");
}

std::string describe(Index B, Index Lq, Index Lk, Index H, Index Hkv, Index P, Index Pv, bool causal) {
  return "B=" + std::to_string(B) + " Lq=" + std::to_string(Lq) + " Lk=" + std::to_string(Lk) + " H=" +
         std::to_string(H) + " Hkv=" + std::to_string(Hkv) + " P=" + std::to_string(P) + " Pv=" + std::to_string(Pv) +
         (causal ? " causal" : "");
}

TEST(Attention, DenseMatchesOracleOverShapes) {
  struct Case {
    Index B, Lq, Lk, H, Hkv, P, Pv;
  };
  const std::vector<Case> cases = {{1, 1, 1, 1, 1, 1, 1},     {1, 7, 7, 2, 2, 16, 16},   {2, 65, 65, 4, 2, 17, 17},
                                   {1, 130, 130, 3, 1, 15, 9}, {1, 64, 64, 2, 1, 64, 64}, {2, 33, 100, 2, 2, 32, 40},
                                   {1, 200, 200, 1, 1, 8, 64}, {1, 3, 129, 4, 4, 64, 64}};
  std::uint64_t seed = 1;
  for (const Case& c : cases)
    for (const bool causal : {false, true}) {
      const Qkv in(c.B, c.Lq, c.Lk, c.H, c.Hkv, c.P, c.Pv, seed++);
      AttentionOptions o;
      o.causal = causal;
      EXPECT_TRUE(matches(attention::attention(in.q, in.k, in.v, o), ref::attention(in.q, in.k, in.v, o),
                          describe(c.B, c.Lq, c.Lk, c.H, c.Hkv, c.P, c.Pv, causal)));
    }
}

TEST(Attention, ScaleSoftcapAndKeyBias) {
  const Index B = 2, L = 70, H = 4, Hkv = 2, P = 24;
  const Qkv in(B, L, L, H, Hkv, P, P, 21);
  Rng rng(22);
  for (const Index Hb : {Index(1), Hkv, H}) {
    const Tensor<float, 3> bias = testing::random_normal<3>({B, Hb, L}, 0.f, 2.f, rng);
    for (const float softcap : {0.0f, 5.0f}) {
      AttentionOptions o;
      o.causal = true, o.scale = 0.3f, o.softcap = softcap, o.key_bias = ConstTensorView<float, 3>(bias);
      EXPECT_TRUE(matches(attention::attention(in.q, in.k, in.v, o), ref::attention(in.q, in.k, in.v, o),
                          "Hb=" + std::to_string(Hb) + " softcap=" + std::to_string(softcap)));
    }
  }
}

// A key_bias of -inf masks its keys (a padding mask, as callers pass one): where it masks every key a
// query may see (here every key of kv head 1, and in batch 1 all keys but the first 3 of head 0), the
// empty-row rule holds, out = 0 and lse = -inf, in the tiled path and in decode (Lq = 1), whose
// online softmax once gave NaN for a group of keys all at -inf before any finite one.
TEST(Attention, KeyBiasOfMinusInfinityMasksKeys) {
  const Index B = 2, Lk = 37, H = 4, Hkv = 2, P = 16;
  const float inf = std::numeric_limits<float>::infinity();
  Rng rng(41);
  Tensor<float, 3> bias = testing::random_normal<3>({B, Hkv, Lk}, 0.f, 1.f, rng);
  for (Index b = 0; b < B; ++b)
    for (Index j = 0; j < Lk; ++j) bias(b, 1, j) = -inf;
  for (Index j = 3; j < Lk; ++j) bias(1, 0, j) = -inf;
  for (const Index Lq : {Index(1), Index(5), Index(37)})
    for (const bool causal : {false, true}) {
      const Qkv in(B, Lq, Lk, H, Hkv, P, P, 42);
      AttentionOptions o;
      o.causal = causal, o.key_bias = ConstTensorView<float, 3>(bias);
      const AttentionResult got = attention::attention(in.q, in.k, in.v, o);
      const std::string what = "Lq=" + std::to_string(Lq) + (causal ? " causal" : "");
      EXPECT_TRUE(matches(got, ref::attention(in.q, in.k, in.v, o), what));
      for (Index b = 0; b < B; ++b)
        for (Index r = 0; r < Lq; ++r)
          for (const Index h : {Index(2), Index(3)}) {  // kv head 1's query heads: every key masked
            EXPECT_TRUE(std::isinf(got.lse(b, h, r)) && got.lse(b, h, r) < 0) << what;
            for (Index d = 0; d < P; ++d) EXPECT_EQ(got.out(b, r, h, d), 0.0f) << what;
          }
    }
}

// Chunked prefill: the rows of a chunk at q_offset are the same rows of the whole prefill, and the
// decode step (Lq = 1 against the cache) is the last row.
TEST(Attention, CausalOffsetsChunksAndDecodeEqualPrefillRows) {
  const Index L = 150, H = 4, Hkv = 1, P = 32;
  const Qkv in(1, L, L, H, Hkv, P, P, 31);
  AttentionOptions o;
  o.causal = true;
  const AttentionResult full = attention::attention(in.q, in.k, in.v, o);
  EXPECT_TRUE(matches(full, ref::attention(in.q, in.k, in.v, o), "prefill"));
  for (const auto& [first, count] : std::vector<std::pair<Index, Index>>{{0, 50}, {50, 37}, {87, 63}, {149, 1}, {77, 1}}) {
    const Tensor<float, 4> q = in.q.slice(std::array<Index, 4>{0, first, 0, 0}, std::array<Index, 4>{1, count, H, P});
    // Keys up to the chunk's end, as a KV cache holds them; q_offset defaults to Lk - Lq = first.
    const Index Lk = first + count;
    const Tensor<float, 4> k = in.k.slice(std::array<Index, 4>{0, 0, 0, 0}, std::array<Index, 4>{1, Lk, Hkv, P});
    const Tensor<float, 4> v = in.v.slice(std::array<Index, 4>{0, 0, 0, 0}, std::array<Index, 4>{1, Lk, Hkv, P});
    const AttentionResult chunk = attention::attention(q, k, v, o);
    const Tensor<float, 4> want = full.out.slice(std::array<Index, 4>{0, first, 0, 0}, std::array<Index, 4>{1, count, H, P});
    EXPECT_TRUE(testing::all_close(chunk.out, want, kTol, "chunk at " + std::to_string(first)));
    // Non-causal with all keys and an explicit offset past Lk - Lq: the same as causal rows there.
    AttentionOptions explicit_offset = o;
    explicit_offset.q_offset = first;
    EXPECT_TRUE(matches(attention::attention(q, in.k, in.v, explicit_offset),
                        ref::attention(q, in.k, in.v, explicit_offset), "explicit q_offset " + std::to_string(first)));
  }
}

// Every generator, engine vs the oracle with the generator's own token rule (not the layout), block
// sizes that do not divide L, GQA, and per-head layouts.
TEST(BlockSparseAttention, EveryLayoutMatchesOracleOfItsRule) {
  const Index L = 203, H = 4, Hkv = 2, P = 20;
  const Qkv in(2, L, L, H, Hkv, P, P, 41);
  using attention::LocalStrideParams;
  struct Case {
    std::string name;
    BlockLayout layout;
    std::function<bool(Index, Index, Index)> rule;
  };
  const LocalStrideParams s2{16, 2, 3, H, Hkv, 1, 0, false};
  const LocalStrideParams s2_dense{32, 1, 4, H, Hkv, 0, 1, false};
  const std::vector<attention::DilatedSegment> pairs = {{4, 1}, {8, 2}};
  std::vector<Case> cases = {
      {"causal", attention::causal_layout(L, 32), [](Index, Index i, Index j) { return j <= i; }},
      {"dense", attention::dense_layout(L, L, 48), [](Index, Index, Index) { return true; }},
      {"window 37", attention::sliding_window_layout(L, 16, 37),
       [](Index, Index i, Index j) { return attention::sliding_window_allowed(i, j, 37, 0); }},
      {"sinks 5 + window 20", attention::sliding_window_layout(L, 24, 20, 5),
       [](Index, Index i, Index j) { return attention::sliding_window_allowed(i, j, 20, 5); }},
      {"S2 heterogeneous", attention::local_stride_layout(L, s2),
       [s2](Index h, Index i, Index j) { return attention::local_stride_allowed(s2, h, i, j); }},
      {"S2 with a dense head", attention::local_stride_layout(L, s2_dense),
       [s2_dense](Index h, Index i, Index j) { return attention::local_stride_allowed(s2_dense, h, i, j); }},
      {"power", attention::power_layout(L, 16, 2, 1),
       [](Index, Index i, Index j) { return attention::power_allowed(i, j, 16, 2, 1); }},
      {"dilated", attention::dilated_layout(L, 8, pairs),
       [pairs](Index, Index i, Index j) { return attention::dilated_allowed(pairs, 8, i, j); }},
  };
  cases.push_back({"union window ∪ power",
                   attention::layout_union(attention::sliding_window_layout(L, 16, 10), attention::power_layout(L, 16, 1, 0)),
                   [](Index, Index i, Index j) {
                     return attention::sliding_window_allowed(i, j, 10, 0) || attention::power_allowed(i, j, 16, 1, 0);
                   }});
  cases.push_back({"intersection S2 ∩ window",
                   attention::layout_intersection(attention::local_stride_layout(L, s2),
                                                  attention::sliding_window_layout(L, 16, 60)),
                   [s2](Index h, Index i, Index j) {
                     return attention::local_stride_allowed(s2, h, i, j) && attention::sliding_window_allowed(i, j, 60, 0);
                   }});
  for (const Case& c : cases) {
    // The stored layout is exactly the rule.
    Index mismatches = 0;
    for (Index h = 0; h < H; ++h)
      for (Index i = 0; i < L; ++i)
        for (Index j = 0; j < L; ++j) mismatches += c.layout.allowed(h, i, j) != c.rule(h, i, j);
    EXPECT_EQ(mismatches, 0) << c.name;
    AttentionOptions o;
    EXPECT_TRUE(matches(attention::block_sparse_attention(in.q, in.k, in.v, c.layout, o),
                        ref::masked_attention(in.q, in.k, in.v, o, c.rule), c.name));
    // Decode: the last query against the whole cache, the layout's last row.
    const Tensor<float, 4> last = in.q.slice(std::array<Index, 4>{0, L - 1, 0, 0}, std::array<Index, 4>{2, 1, H, P});
    EXPECT_TRUE(matches(attention::block_sparse_attention(last, in.k, in.v, c.layout, o),
                        ref::masked_attention(last, in.k, in.v, o, c.rule), c.name + " decode"));
  }
}

// A query with no allowed key: out = 0, lse = -inf (documented in attention_types.hpp).
TEST(BlockSparseAttention, EmptyRowsGiveZerosAndMinusInfinity) {
  const Index L = 40, H = 2, P = 16;
  const Qkv in(1, L, L, H, H, P, P, 51);
  // Queries in [10, 20) see nothing; the others see keys j <= i.
  auto rule = [](Index, Index i, Index j) { return (i < 10 || i >= 20) && j <= i; };
  const BlockLayout layout = BlockLayout::from_rules(
      "test", L, L, 8, 8, 1, [](Index, Index, Index) { return attention::BlockKind::masked; }, rule);
  AttentionOptions o;
  const AttentionResult got = attention::block_sparse_attention(in.q, in.k, in.v, layout, o);
  EXPECT_TRUE(matches(got, ref::masked_attention(in.q, in.k, in.v, o, rule), "empty rows"));
  for (Index i = 10; i < 20; ++i)
    for (Index h = 0; h < H; ++h) {
      EXPECT_TRUE(std::isinf(got.lse(0, h, i)) && got.lse(0, h, i) < 0);
      for (Index d = 0; d < P; ++d) EXPECT_EQ(got.out(0, i, h, d), 0.0f);
    }
  // Decode of an empty row, and a causal call where the layout allows nothing at or before i.
  const Tensor<float, 4> q15 = in.q.slice(std::array<Index, 4>{0, 15, 0, 0}, std::array<Index, 4>{1, 1, H, P});
  AttentionOptions at15;
  at15.q_offset = 15;
  const AttentionResult row = attention::block_sparse_attention(q15, in.k, in.v, layout, at15);
  EXPECT_TRUE(std::isinf(row.lse(0, 0, 0)) && row.out(0, 0, 0, 0) == 0.0f);
}

// Random cases of every option (a fixed seed): dense and block-sparse attention against the oracle,
// prefill, chunked and decode (Lq = 1) shapes, GQA, head dims off the SIMD width, softcap, key_bias
// with some -inf entries (per shared, kv or query head), row_scale, q_offset, and 1 or 2 threads;
// block-sparse over random layouts (none / full / masked blocks, random token masks, shared or per
// head), checked against the oracle with the layout's own rule. A standalone run of the same
// generators over 40,000 cases (AVX-512, AVX2, ASan + UBSan) found the decode path's NaN that
// KeyBiasOfMinusInfinityMasksKeys pins, and nothing else.
struct RandomAttentionCase {
  Index B, Lq, Lk, H, Hkv, P, Pv;
  AttentionOptions o;               // without key_bias and row_scale: options() adds views of these
  Tensor<float, 3> key_bias;        // [B, Hb, Lk], or empty
  Tensor<float, 3> row_scale;       // [B, H, Lq], or empty
  std::string name;

  AttentionOptions options() const {
    AttentionOptions with = o;
    if (key_bias.size() > 0) with.key_bias = ConstTensorView<float, 3>(key_bias);
    if (row_scale.size() > 0) with.row_scale = ConstTensorView<float, 3>(row_scale);
    return with;
  }
};

RandomAttentionCase random_attention_case(Rng& rng, const Eigen::ThreadPoolDevice* device) {
  testing::RandomDraws draw{rng};
  RandomAttentionCase c;
  c.B = draw.pick(1, 2), c.Hkv = draw.pick(1, 3), c.H = c.Hkv * draw.pick(1, 3);
  c.Lk = draw.chance(0.1) ? 1 : draw.pick(1, draw.chance(0.3) ? 200 : 70);
  c.Lq = draw.chance(0.25) ? 1 : draw.pick(1, draw.chance(0.5) ? c.Lk : 120);
  c.P = draw.chance(0.5) ? (draw.chance(0.5) ? 64 : 32) : draw.pick(1, 80);
  c.Pv = draw.chance(0.6) ? c.P : draw.pick(1, 80);
  c.o.causal = draw.chance(0.4);
  if (draw.chance(0.3) || c.Lq > c.Lk) c.o.q_offset = draw.pick(0, c.Lk + 5);
  if (draw.chance(0.2)) c.o.scale = 0.3f;
  if (draw.chance(0.2)) c.o.softcap = 20.0f;
  if (draw.chance(0.3)) {
    const Index Hb = draw.chance(0.33) ? 1 : draw.chance(0.5) ? c.Hkv : c.H;
    c.key_bias = testing::random_normal<3>({c.B, Hb, c.Lk}, 0.f, 2.f, rng);
    if (draw.chance(0.3))
      for (Index i = 0; i < c.key_bias.size(); ++i)
        if (draw.chance(0.3)) c.key_bias.data()[i] = -std::numeric_limits<float>::infinity();
  }
  if (draw.chance(0.2)) {
    c.row_scale = testing::random_uniform<3>({c.B, c.H, c.Lq}, 0.1f, 2.f, rng);
  }
  c.o.device = device;
  c.name = describe(c.B, c.Lq, c.Lk, c.H, c.Hkv, c.P, c.Pv, c.o.causal) +
           (c.o.q_offset ? " q_offset=" + std::to_string(*c.o.q_offset) : "") + (c.o.softcap > 0 ? " softcap" : "") +
           (c.key_bias.size() > 0 ? " key_bias" : "") + (c.row_scale.size() > 0 ? " row_scale" : "") +
           (device ? " threads" : "");
  return c;
}

TEST(Attention, RandomCasesMatchTheOracle) {
  Rng rng(71);
  ThreadPool pool(2);
  for (int i = 0; i < 60; ++i) {
    const RandomAttentionCase c = random_attention_case(rng, i % 3 == 2 ? pool.device() : nullptr);
    const Qkv in(c.B, c.Lq, c.Lk, c.H, c.Hkv, c.P, c.Pv, 100 + std::uint64_t(i));
    const AttentionOptions o = c.options();
    EXPECT_TRUE(matches(attention::attention(in.q, in.k, in.v, o), ref::attention(in.q, in.k, in.v, o), c.name));
  }
}

TEST(BlockSparseAttention, RandomLayoutsMatchTheOracle) {
  Rng rng(72);
  testing::RandomDraws draw{rng};
  ThreadPool pool(2);
  for (int i = 0; i < 60; ++i) {
    const RandomAttentionCase c = random_attention_case(rng, i % 3 == 2 ? pool.device() : nullptr);
    const Index q_block = draw.chance(0.5) ? 64 : draw.pick(1, 70);
    const Index k_block = draw.chance(0.5) ? q_block : draw.pick(1, 70);
    const Index q_length = c.o.q_offset.value_or(c.Lk - c.Lq) + c.Lq, heads = draw.chance(0.5) ? 1 : c.H;
    const Index q_blocks = (q_length + q_block - 1) / q_block, k_blocks = (c.Lk + k_block - 1) / k_block;
    std::vector<attention::BlockKind> kinds(std::size_t(heads * q_blocks * k_blocks));
    const double p_none = 0.8 * draw.uniform(), p_masked = draw.uniform(), p_token = draw.uniform();
    for (auto& kind : kinds)
      kind = draw.chance(p_none)     ? attention::BlockKind::none
             : draw.chance(p_masked) ? attention::BlockKind::masked
                                     : attention::BlockKind::full;
    std::vector<char> tokens(std::size_t(heads * q_length * c.Lk));
    for (auto& t : tokens) t = draw.chance(p_token);
    const BlockLayout layout = BlockLayout::from_rules(
        "test", q_length, c.Lk, q_block, k_block, heads,
        [&](Index h, Index qb, Index kb) { return kinds[std::size_t((h * q_blocks + qb) * k_blocks + kb)]; },
        [&](Index h, Index q, Index k) { return tokens[std::size_t((h * q_length + q) * c.Lk + k)] != 0; });
    const Qkv in(c.B, c.Lq, c.Lk, c.H, c.Hkv, c.P, c.Pv, 200 + std::uint64_t(i));
    const auto rule = [&](Index h, Index q, Index k) { return layout.allowed(h, q, k); };
    const AttentionOptions o = c.options();
    EXPECT_TRUE(matches(attention::block_sparse_attention(in.q, in.k, in.v, layout, o),
                        ref::masked_attention(in.q, in.k, in.v, o, rule),
                        c.name + " blocks " + std::to_string(q_block) + "x" + std::to_string(k_block)));
  }
}

TEST(Attention, BitwiseIdenticalForAnyThreadCount) {
  const Qkv in(2, 150, 150, 4, 2, 32, 32, 61);
  AttentionOptions o;
  o.causal = true;
  const AttentionResult one = attention::attention(in.q, in.k, in.v, o);
  const BlockLayout layout = attention::sliding_window_layout(150, 32, 50, 4);
  const AttentionResult sparse_one = attention::block_sparse_attention(in.q, in.k, in.v, layout, o);
  // Decode: heads are split into chunks by the thread count; each head's arithmetic is unchanged.
  const Tensor<float, 4> last = in.q.slice(std::array<Index, 4>{0, 149, 0, 0}, std::array<Index, 4>{2, 1, 4, 32});
  const AttentionResult decode_one = attention::attention(last, in.k, in.v, o);
  for (const int threads : {2, 3, 5}) {
    ThreadPool pool(threads);
    o.device = pool.device();
    EXPECT_TRUE(testing::bitwise_equal(attention::attention(in.q, in.k, in.v, o).out, one.out));
    EXPECT_TRUE(testing::bitwise_equal(attention::block_sparse_attention(in.q, in.k, in.v, layout, o).out, sparse_one.out));
    EXPECT_TRUE(testing::bitwise_equal(attention::attention(last, in.k, in.v, o).out, decode_one.out));
  }
  o.device = nullptr;
}

TEST(Attention, RejectsBadArguments) {
  const Qkv in(1, 8, 8, 4, 2, 16, 16, 71);
  const Qkv odd_heads(1, 8, 8, 3, 2, 16, 16, 72);
  AttentionOptions o;
  const char* op = "attention";
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::attention(odd_heads.q, odd_heads.k, odd_heads.v, o); },
                                               op, "expected H a multiple of Hkv"));
  const Tensor<float, 4> k_wide(1, 8, 2, 17);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::attention(in.q, k_wide, in.v, o); }, op,
                                               "k has shape [1, 8, 2, 17], expected [B=1, Lk, Hkv, P=16]"));
  const Tensor<float, 4> v_short(1, 7, 2, 16);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::attention(in.q, in.k, v_short, o); }, op,
                                               "v has shape [1, 7, 2, 16]"));
  const Tensor<float, 4> q_long(1, 9, 4, 16);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::attention(q_long, in.k, in.v, o); }, op,
                                               "q_offset is -1, expected >= 0"));
  const Tensor<float, 3> bias(1, 3, 8);
  AttentionOptions with_bias;
  with_bias.key_bias = ConstTensorView<float, 3>(bias);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::attention(in.q, in.k, in.v, with_bias); }, op,
                                               "key_bias has shape [1, 3, 8]"));
  AttentionOptions bad_cap;
  bad_cap.softcap = -1.0f;
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::attention(in.q, in.k, in.v, bad_cap); }, op,
                                               "softcap must be >= 0"));
  Tensor<float, 4> out(1, 8, 4, 15);
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::attention(in.q, in.k, in.v, o, TensorView<float, 4>(out.data(), out.dimensions()), nullptr); }, op,
      "out has shape [1, 8, 4, 15], expected [B=1, Lq=8, H=4, Pv=16]"));
  // The oracle rejects the same.
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::attention(odd_heads.q, odd_heads.k, odd_heads.v, o); },
                                               "ref::attention", "expected H a multiple of Hkv"));
  // Layouts: too short for the call, wrong head count, bad generator parameters.
  const char* sparse = "block_sparse_attention";
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::block_sparse_attention(in.q, in.k, in.v, attention::causal_layout(6, 4), o); }, sparse,
      "the layout covers 6 query and 6 key positions"));
  attention::LocalStrideParams p3{4, 1, 2, 3, 1, 0, 0, false};
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::block_sparse_attention(in.q, in.k, in.v, attention::local_stride_layout(8, p3), o); }, sparse,
      "the layout has 3 head patterns, expected 1 or H=4"));
  EXPECT_TRUE(testing::throws_error_mentioning([] { attention::sliding_window_layout(8, 0, 4); }, "sliding_window_layout",
                                               "block must be positive"));
  EXPECT_TRUE(testing::throws_error_mentioning([] { attention::sliding_window_layout(8, 4, 0); }, "sliding_window_layout",
                                               "window must be >= 1"));
  EXPECT_TRUE(testing::throws_error_mentioning([] { attention::power_layout(8, 4, 0); }, "power_layout",
                                               "window_blocks must be >= 1"));
  attention::LocalStrideParams bad_heads{4, 1, 2, 3, 2, 0, 0, false};
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::local_stride_layout(8, bad_heads); },
                                               "local_stride_layout", "must be a positive multiple of kv_heads"));
  EXPECT_TRUE(testing::throws_error_mentioning([] { attention::dilated_layout(8, 4, {{2, 0}}); }, "dilated_layout",
                                               "must be >= 1"));
  EXPECT_TRUE(testing::throws_error_mentioning(
      [] { attention::layout_union(attention::causal_layout(8, 4), attention::causal_layout(8, 2)); }, "layout_union",
      "layouts differ in blocks or lengths"));
}

}  // namespace
}  // namespace attention_cases
}  // namespace tokenmix
