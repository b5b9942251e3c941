// Property tests of the block-layout generators (attention/block_layout.hpp) against their
// definitions in spec/sparse_attention.md, written without the generators' own rule functions
// (power_allowed, local_stride_allowed, ...): attention_test.cpp checks layout == own rule and
// engine == oracle; here each layout is checked against the spec's formula and the pattern's
// properties:
//   every layout      CSR consistent, key blocks ascending and unique, mask storage in range with
//                     no bits past the ends, full entries wholly allowed, masked entries neither
//                     empty nor wholly allowed, block_density in [0, 1];
//   causal generators no allowed j > i, no stored block above the diagonal, the diagonal always in;
//   §1 window+sinks   exact key count per row, stored blocks touch the window or the sinks, row
//                     bound ceil(S/B) + ceil((W-1)/B) + 1, window >= L is the causal layout;
//   §2 PowerAttention row qb = {sinks} ∪ [qb-Wb+1, qb] ∪ {qb - 2^k}, the paper's 32K example,
//                     reachability in <= popcount(δ) hops (App. B);
//   §3 S2 / DKernel   the spec's mask, union of vert_stride consecutive kv heads = full causal,
//                     homogeneous = head 0 everywhere, dense heads, KV-cache efficiency;
//   App. D dilated    segment and residue of every kept block, union over pairs, LongNet's pairs;
//   §11 combinators   OR / AND of the operands for every (h, i, j), heads 1 and H;
// lengths not divisible by the block, length 0 and 1, blocks larger than the length or than 64
// (several mask words), a seeded sweep, and every bad argument.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include "support/errors.hpp"
#include "support/random.hpp"
#include "tokenmix/attention/block_layout.hpp"

namespace tokenmix {
namespace block_layout_cases {  // named: the family's files share one translation unit (tests/CMakeLists.txt)
namespace {

using attention::BlockLayout;
using attention::DilatedSegment;
using attention::LocalStrideParams;
using testing::Rng;
using Rule = std::function<bool(Index h, Index i, Index j)>;

std::string s(Index v) { return std::to_string(v); }

Index ceil_div(Index a, Index b) { return (a + b - 1) / b; }

// Key blocks stored in row (h, qb), ascending as stored.
std::vector<Index> row_blocks(const BlockLayout& L, Index h, Index qb) {
  const Index r = L.row(h, qb);
  return {L.key_block.begin() + L.row_start[static_cast<std::size_t>(r)],
          L.key_block.begin() + L.row_start[static_cast<std::size_t>(r) + 1]};
}

bool row_has(const BlockLayout& L, Index h, Index qb, Index kb) {
  const std::vector<Index> row = row_blocks(L, h, qb);
  return std::binary_search(row.begin(), row.end(), kb);
}

// The storage contract of BlockLayout, read from its fields (not through allowed()).
::testing::AssertionResult well_formed(const BlockLayout& L, const std::string& what) {
  auto fail = [&what] { return ::testing::AssertionFailure() << what << ": "; };
  if (L.q_block < 1 || L.k_block < 1 || L.heads < 1 || L.q_length < 0 || L.k_length < 0)
    return fail() << "bad geometry q_block=" << L.q_block << " k_block=" << L.k_block << " heads=" << L.heads;
  const Index rows = L.heads * L.q_blocks();
  if (static_cast<Index>(L.row_start.size()) != rows + 1)
    return fail() << "row_start has " << L.row_start.size() << " entries, expected heads·q_blocks + 1 = " << rows + 1;
  if (L.row_start.front() != 0 || L.row_start.back() != L.entries())
    return fail() << "row_start runs " << L.row_start.front() << ".." << L.row_start.back() << ", expected 0.."
                  << L.entries();
  if (L.mask_of.size() != L.key_block.size())
    return fail() << "mask_of has " << L.mask_of.size() << " entries, key_block " << L.key_block.size();
  const Index words = L.mask_words(), mask_size = L.k_block * words;
  if (static_cast<Index>(L.masks.size()) % mask_size != 0)
    return fail() << "masks has " << L.masks.size() << " words, not a multiple of k_block·words = " << mask_size;
  const Index n_masks = static_cast<Index>(L.masks.size()) / mask_size;
  for (Index r = 0; r < rows; ++r) {
    const Index first = L.row_start[static_cast<std::size_t>(r)], last = L.row_start[static_cast<std::size_t>(r) + 1];
    if (last < first) return fail() << "row_start decreases at row " << r;
    const Index h = r / std::max<Index>(L.q_blocks(), 1), qb = r % std::max<Index>(L.q_blocks(), 1);
    for (Index e = first; e < last; ++e) {
      const Index kb = L.key_block[static_cast<std::size_t>(e)];
      const std::int64_t m = L.mask_of[static_cast<std::size_t>(e)];
      const std::string where = "row (h=" + s(h) + ", qb=" + s(qb) + ") key block " + s(kb);
      if (kb < 0 || kb >= L.k_blocks()) return fail() << where << " outside [0, " << L.k_blocks() << ")";
      if (e > first && kb <= L.key_block[static_cast<std::size_t>(e) - 1])
        return fail() << where << " not after " << L.key_block[static_cast<std::size_t>(e) - 1] << " (unsorted or repeated)";
      if (m < -1 || m >= n_masks) return fail() << where << " has mask number " << m << " of " << n_masks;
      const Index qn = std::min(L.q_block, L.q_length - qb * L.q_block), kn = std::min(L.k_block, L.k_length - kb * L.k_block);
      if (m < 0) {
        // A full entry allows every (i, j) of the whole block, so the block may not be cut by an end.
        if (qn < L.q_block || kn < L.k_block) return fail() << where << " is full but cut by the end (" << qn << "x" << kn << ")";
        continue;
      }
      Index set = 0;
      for (Index jj = 0; jj < L.k_block; ++jj)
        for (Index ii = 0; ii < 64 * words; ++ii) {
          const std::uint64_t w = L.masks[static_cast<std::size_t>((m * L.k_block + jj) * words + ii / 64)];
          if (!((w >> (ii % 64)) & 1u)) continue;
          if (ii >= qn || jj >= kn)
            return fail() << where << " mask bit (key row " << jj << ", query bit " << ii << ") set past the ends";
          ++set;
        }
      if (set == 0) return fail() << where << " is a masked entry with no allowed token (should not be stored)";
      if (set == L.q_block * L.k_block) return fail() << where << " is masked but allows every token (should be full)";
    }
  }
  const double density = L.block_density();
  if (!(density >= 0.0 && density <= 1.0)) return fail() << "block_density " << density << " outside [0, 1]";
  return ::testing::AssertionSuccess();
}

// layout.allowed(h, i, j) == rule(h, i, j) for every head h < H and every position pair; nothing
// outside the positions.
::testing::AssertionResult matches_definition(const BlockLayout& L, Index H, const Rule& rule, const std::string& what) {
  for (Index h = 0; h < H; ++h) {
    if (L.allowed(h, -1, 0) || L.allowed(h, 0, -1) || L.allowed(h, L.q_length, 0) || L.allowed(h, 0, L.k_length))
      return ::testing::AssertionFailure() << what << ": allows a position outside the lengths (head " << h << ")";
    for (Index i = 0; i < L.q_length; ++i)
      for (Index j = 0; j < L.k_length; ++j)
        if (L.allowed(h, i, j) != rule(h, i, j))
          return ::testing::AssertionFailure() << what << ": head " << h << " query " << i << " key " << j << " (blocks "
                                               << i / L.q_block << ", " << j / L.k_block << "): layout "
                                               << L.allowed(h, i, j) << ", definition " << rule(h, i, j);
  }
  return ::testing::AssertionSuccess();
}

// Causality at token and block level, and no empty row (the diagonal is always in: spec §0).
::testing::AssertionResult causal_without_empty_rows(const BlockLayout& L, Index H, const std::string& what) {
  for (Index h = 0; h < H; ++h) {
    for (Index qb = 0; qb < L.q_blocks(); ++qb)
      for (const Index kb : row_blocks(L, h, qb))
        if (kb * L.k_block > qb * L.q_block + L.q_block - 1)
          return ::testing::AssertionFailure() << what << ": head " << h << " stores key block " << kb
                                               << " wholly after query block " << qb;
    for (Index i = 0; i < L.q_length; ++i) {
      if (!L.allowed(h, i, i))
        return ::testing::AssertionFailure() << what << ": head " << h << " query " << i << " misses its own key";
      for (Index j = i + 1; j < L.k_length; ++j)
        if (L.allowed(h, i, j))
          return ::testing::AssertionFailure() << what << ": head " << h << " query " << i << " sees later key " << j;
    }
  }
  return ::testing::AssertionSuccess();
}

// ---- The spec's definitions, written here from the spec text ------------------------------------

// §1: j <= i && (j < S || i - j < W).
bool window_spec(Index i, Index j, Index W, Index S) { return j <= i && (j < S || i - j < W); }

// §2 layout generator: row qb = {kb < sink_blocks} ∪ [max(0, qb-Wb+1), qb] ∪ {qb - 2^k : 2^k <= qb}.
std::vector<Index> power_row_spec(Index qb, Index Wb, Index sink_blocks) {
  std::set<Index> row;
  for (Index kb = 0; kb < std::min(sink_blocks, qb + 1); ++kb) row.insert(kb);
  for (Index kb = std::max<Index>(0, qb - Wb + 1); kb <= qb; ++kb) row.insert(kb);
  for (Index p = 1; p <= qb; p *= 2) row.insert(qb - p);
  return {row.begin(), row.end()};
}

// §3 causal "absolute" mask of kv head hk. The step: the spec writes max(1, vert_stride / num_heads);
// dkernel's current utils.get_sparse_attn_mask (homo_within_group_head=True, its default) makes one
// pattern per kv head under GQA and steps by vert_stride // num_kv_heads, which is what we follow
// (the two agree without GQA).
bool s2_block_spec(const LocalStrideParams& p, Index h, Index qb, Index kb) {
  if (kb > qb) return false;
  const Index hk = p.homogeneous ? 0 : h / (p.heads / p.kv_heads);
  if (hk >= p.kv_heads - p.dense_heads) return true;  // the last dense_heads kv heads
  const Index step = std::max<Index>(1, p.vert_stride / p.kv_heads);
  return qb - kb < p.local_blocks || (kb + hk * step + p.head_offset) % p.vert_stride == 0;
}
bool s2_spec(const LocalStrideParams& p, Index h, Index i, Index j) {
  return j <= i && s2_block_spec(p, h, i / p.block, j / p.block);
}

// App. D / LongNet over blocks: the diagonal, or one (segment, dilation) pair puts both blocks in
// one segment and one residue class.
bool dilated_block_spec(const std::vector<DilatedSegment>& pairs, Index qb, Index kb) {
  if (kb > qb) return false;
  if (kb == qb) return true;
  for (const DilatedSegment& p : pairs)
    if (qb / p.segment_blocks == kb / p.segment_blocks && qb % p.dilation == kb % p.dilation) return true;
  return false;
}

std::string describe(const LocalStrideParams& p, Index L) {
  return "L=" + s(L) + " block=" + s(p.block) + " local=" + s(p.local_blocks) + " stride=" + s(p.vert_stride) +
         " heads=" + s(p.heads) + " kv=" + s(p.kv_heads) + " offset=" + s(p.head_offset) + " dense=" + s(p.dense_heads) +
         (p.homogeneous ? " homo" : "");
}

// ---- §1 sliding window + sinks ------------------------------------------------------------------

TEST(SlidingWindowLayout, ExactKeysPerRowAndOnlyTouchedBlocks) {
  for (const Index L : {1, 5, 64, 130})
    for (const Index B : {1, 3, 16, 64, 200})
      for (const Index W : {1, 2, 17, 64, 1000})
        for (const Index S : {0, 1, 4, 33}) {
          const std::string what = "L=" + s(L) + " B=" + s(B) + " W=" + s(W) + " S=" + s(S);
          const BlockLayout layout = attention::sliding_window_layout(L, B, W, S);
          ASSERT_TRUE(well_formed(layout, what));
          EXPECT_EQ(layout.heads, 1) << what;
          EXPECT_TRUE(causal_without_empty_rows(layout, 1, what));
          EXPECT_TRUE(matches_definition(layout, 1, [&](Index, Index i, Index j) { return window_spec(i, j, W, S); }, what));
          // Row i: min(i+1, W) window keys plus the sink tokens before the window, j <= i - W.
          for (Index i = 0; i < L; ++i) {
            Index keys = 0;
            for (Index j = 0; j < L; ++j) keys += layout.allowed(0, i, j);
            const Index want = std::min(i + 1, W) + std::max<Index>(0, std::min(S, i - W + 1));
            EXPECT_EQ(keys, want) << what << " row " << i;
          }
          for (Index qb = 0; qb < layout.q_blocks(); ++qb) {
            const std::vector<Index> row = row_blocks(layout, 0, qb);
            // Stored blocks are the diagonal, hold a sink token, or come within the window of the
            // block's first query (the closest pair is (qb·B, kb·B + B - 1)).
            for (const Index kb : row)
              EXPECT_TRUE(kb == qb || kb * B < S || qb * B - (kb * B + B - 1) < W)
                  << what << " stores block (" << qb << ", " << kb << ") outside window and sinks";
            // §1: about ceil(S/B) + W/B + 1 blocks per row.
            EXPECT_LE(static_cast<Index>(row.size()), ceil_div(S, B) + ceil_div(W - 1, B) + 1) << what << " row " << qb;
          }
        }
}

// A window covering the whole sequence is plain causal attention, stored the same way.
TEST(SlidingWindowLayout, WindowAtLeastLengthIsTheCausalLayout) {
  for (const Index L : {1, 9, 100})
    for (const Index B : {1, 4, 32, 128})
      for (const Index W : {L, L + 1, 10 * L})
        for (const Index S : {0, 3}) {
          const BlockLayout window = attention::sliding_window_layout(L, B, W, S), causal = attention::causal_layout(L, B);
          const std::string what = "L=" + s(L) + " B=" + s(B) + " W=" + s(W) + " S=" + s(S);
          EXPECT_EQ(window.row_start, causal.row_start) << what;
          EXPECT_EQ(window.key_block, causal.key_block) << what;
          EXPECT_EQ(window.mask_of, causal.mask_of) << what;
          EXPECT_EQ(window.masks, causal.masks) << what;
        }
}

// ---- §2 PowerAttention --------------------------------------------------------------------------

TEST(PowerLayout, RowsAreSinksWindowAndPowerOfTwoDistances) {
  struct Case {
    Index L, B, Wb, sinks;
  };
  const std::vector<Case> cases = {{203, 16, 2, 1}, {256, 4, 5, 1}, {255, 4, 5, 1}, {300, 3, 1, 1}, {129, 1, 1, 0},
                                   {500, 8, 3, 2},  {40, 8, 100, 1}, {7, 16, 5, 1},  {1, 1, 1, 1},    {64, 1, 4, 3}};
  for (const Case& c : cases) {
    const std::string what =
        "L=" + s(c.L) + " B=" + s(c.B) + " Wb=" + s(c.Wb) + " sinks=" + s(c.sinks);
    const BlockLayout layout = attention::power_layout(c.L, c.B, c.Wb, c.sinks);
    ASSERT_TRUE(well_formed(layout, what));
    EXPECT_TRUE(causal_without_empty_rows(layout, 1, what));
    for (Index qb = 0; qb < layout.q_blocks(); ++qb) {
      const std::vector<Index> want = power_row_spec(qb, c.Wb, c.sinks);
      EXPECT_EQ(row_blocks(layout, 0, qb), want) << what << " row " << qb << " (count " << want.size() << ")";
      // Only the diagonal block is partial when the blocks are whole (and hold more than one
      // token: a 1x1 diagonal block is just (i, i), so full).
      const Index r = layout.row(0, qb);
      for (Index e = layout.row_start[static_cast<std::size_t>(r)]; e < layout.row_start[static_cast<std::size_t>(r) + 1]; ++e) {
        const Index kb = layout.key_block[static_cast<std::size_t>(e)];
        const bool cut = (qb + 1) * c.B > c.L || (kb + 1) * c.B > c.L;
        if (!cut) {
          EXPECT_EQ(layout.mask_of[static_cast<std::size_t>(e)] >= 0, kb == qb && c.B > 1)
              << what << " block (" << qb << ", " << kb << ")";
        }
      }
    }
    EXPECT_TRUE(matches_definition(
        layout, 1,
        [&](Index, Index i, Index j) {
          const std::vector<Index> row = power_row_spec(i / c.B, c.Wb, c.sinks);
          return j <= i && std::binary_search(row.begin(), row.end(), j / c.B);
        },
        what));
  }
}

// The paper's setting (§2): 32K tokens, B = 256, Wb = 5, one sink block. 128 blocks; the last row
// keeps the sink, the 5 window blocks and the power-of-two distances 8, 16, 32, 64: 10 blocks.
TEST(PowerLayout, PaperSettingAt32K) {
  const BlockLayout layout = attention::power_layout(32768, 256, 5, 1);
  ASSERT_TRUE(well_formed(layout, "32K"));
  ASSERT_EQ(layout.q_blocks(), 128);
  EXPECT_EQ(row_blocks(layout, 0, 127), (std::vector<Index>{0, 63, 95, 111, 119, 123, 124, 125, 126, 127}));
  Index most = 0;
  for (Index qb = 0; qb < 128; ++qb) {
    EXPECT_EQ(row_blocks(layout, 0, qb), power_row_spec(qb, 5, 1)) << "row " << qb;
    most = std::max<Index>(most, static_cast<Index>(row_blocks(layout, 0, qb).size()));
  }
  EXPECT_LE(most, 1 + 5 + 7);  // sink + window + log2(128) distances
  EXPECT_GT(1.0 - layout.block_density(), 0.9);
}

// App. B: along the kept block distances every earlier block is reachable in <= popcount(qb - kb)
// hops (one hop per set bit of δ); the pure pattern (Wb = 1, no sink) and the paper's.
TEST(PowerLayout, EveryEarlierBlockWithinPopcountHops) {
  for (const auto& [Wb, sinks] : std::vector<std::pair<Index, Index>>{{1, 0}, {5, 1}, {2, 2}}) {
    const Index B = 4, L = 128 * B - 3;  // 128 query blocks, the last one cut
    const BlockLayout layout = attention::power_layout(L, B, Wb, sinks);
    ASSERT_EQ(layout.q_blocks(), 128);
    for (Index start = 0; start < layout.q_blocks(); ++start) {
      std::vector<Index> hops(static_cast<std::size_t>(start + 1), -1);
      std::queue<Index> frontier;
      hops[static_cast<std::size_t>(start)] = 0, frontier.push(start);
      while (!frontier.empty()) {
        const Index qb = frontier.front();
        frontier.pop();
        for (const Index kb : row_blocks(layout, 0, qb))
          if (hops[static_cast<std::size_t>(kb)] < 0) hops[static_cast<std::size_t>(kb)] = hops[static_cast<std::size_t>(qb)] + 1, frontier.push(kb);
      }
      for (Index kb = 0; kb < start; ++kb) {
        const Index bound = __builtin_popcountll(static_cast<unsigned long long>(start - kb));
        EXPECT_TRUE(hops[static_cast<std::size_t>(kb)] >= 1 && hops[static_cast<std::size_t>(kb)] <= bound)
            << "Wb=" << Wb << " sinks=" << sinks << ": block " << kb << " from " << start << " in "
            << hops[static_cast<std::size_t>(kb)] << " hops, popcount " << bound;
      }
    }
  }
}

// ---- §3 S2-Attention / DKernel local-stride -----------------------------------------------------

const std::vector<LocalStrideParams>& s2_cases() {
  // block, local_blocks, vert_stride, heads, kv_heads, head_offset, dense_heads, homogeneous
  static const std::vector<LocalStrideParams> cases = {
      {16, 2, 3, 4, 2, 1, 0, false}, {8, 1, 4, 8, 4, 0, 0, false}, {8, 2, 4, 6, 6, 3, 0, false},
      {4, 1, 8, 4, 2, 0, 0, false},  {8, 3, 4, 4, 4, 0, 1, false}, {8, 1, 3, 4, 2, 0, 2, false},
      {16, 2, 4, 4, 2, 2, 0, true},  {5, 2, 3, 2, 1, 0, 0, false}, {7, 1, 2, 3, 3, 5, 1, false},
      {64, 16, 8, 8, 8, 0, 0, false}};
  return cases;
}

TEST(LocalStrideLayout, MatchesTheSpecMask) {
  for (const LocalStrideParams& p : s2_cases())
    for (const Index L : {1, 7, 64, 203}) {
      const std::string what = describe(p, L);
      const BlockLayout layout = attention::local_stride_layout(L, p);
      ASSERT_TRUE(well_formed(layout, what));
      EXPECT_EQ(layout.heads, p.homogeneous ? 1 : p.heads) << what;
      EXPECT_TRUE(causal_without_empty_rows(layout, p.heads, what));
      EXPECT_TRUE(matches_definition(layout, p.heads, [&](Index h, Index i, Index j) { return s2_spec(p, h, i, j); }, what));
      for (Index h = 0; h < layout.heads; ++h)
        for (Index qb = 0; qb < layout.q_blocks(); ++qb) {
          std::vector<Index> want;
          for (Index kb = 0; kb <= qb; ++kb)
            if (s2_block_spec(p, h, qb, kb)) want.push_back(kb);
          EXPECT_EQ(row_blocks(layout, h, qb), want) << what << " head " << h << " row " << qb;
        }
    }
}

// "Union of shards = full context": with step 1 (vert_stride <= kv_heads) any vert_stride
// consecutive kv heads together keep every causal (i, j); one head fewer does not.
TEST(LocalStrideLayout, UnionOfStrideConsecutiveKvHeadsIsFullCausal) {
  const Index L = 203;
  for (const LocalStrideParams& p : std::vector<LocalStrideParams>{{8, 1, 4, 8, 4, 0, 0, false},
                                                                   {8, 2, 4, 6, 6, 3, 0, false},
                                                                   {4, 1, 3, 10, 5, 1, 0, false},
                                                                   {16, 1, 2, 2, 2, 0, 0, false}}) {
    ASSERT_EQ(std::max<Index>(1, p.vert_stride / p.kv_heads), 1);
    const std::string what = describe(p, L);
    const BlockLayout layout = attention::local_stride_layout(L, p);
    const Index g = p.heads / p.kv_heads;
    auto covered = [&](Index first_kv, Index count, Index i, Index j) {
      for (Index hk = first_kv; hk < first_kv + count; ++hk)
        for (Index h = hk * g; h < (hk + 1) * g; ++h)
          if (layout.allowed(h, i, j)) return true;
      return false;
    };
    for (Index first = 0; first + p.vert_stride <= p.kv_heads; ++first) {
      Index missing = 0, fewer_missing = 0;
      for (Index i = 0; i < L; ++i)
        for (Index j = 0; j <= i; ++j) {
          missing += !covered(first, p.vert_stride, i, j);
          fewer_missing += !covered(first, p.vert_stride - 1, i, j);
        }
      EXPECT_EQ(missing, 0) << what << ": kv heads " << first << ".." << first + p.vert_stride - 1;
      EXPECT_GT(fewer_missing, 0) << what << ": kv heads " << first << ".." << first + p.vert_stride - 2
                                  << " already cover everything";
    }
  }
}

// homo_head: one pattern, head 0's, for every head.
TEST(LocalStrideLayout, HomogeneousIsHeadZeroForEveryHead) {
  const Index L = 203;
  for (LocalStrideParams p : std::vector<LocalStrideParams>{{16, 2, 4, 4, 2, 2, 0, true}, {8, 1, 3, 6, 3, 0, 0, true}}) {
    const BlockLayout homo = attention::local_stride_layout(L, p);
    p.homogeneous = false;
    const BlockLayout hetero = attention::local_stride_layout(L, p);
    EXPECT_EQ(homo.heads, 1);
    EXPECT_TRUE(matches_definition(homo, p.heads, [&](Index, Index i, Index j) { return hetero.allowed(0, i, j); },
                                   "homogeneous vs head 0, " + describe(p, L)));
  }
}

// The last dense_heads kv heads keep every causal block; the sparse heads do not.
TEST(LocalStrideLayout, DenseHeadsKeepEveryCausalBlock) {
  const Index L = 203;
  for (const LocalStrideParams& p : std::vector<LocalStrideParams>{{8, 3, 4, 4, 4, 0, 1, false},
                                                                   {8, 1, 3, 4, 2, 0, 2, false},
                                                                   {4, 1, 2, 6, 3, 1, 2, false}}) {
    const std::string what = describe(p, L);
    const BlockLayout layout = attention::local_stride_layout(L, p);
    const Index g = p.heads / p.kv_heads;
    for (Index h = 0; h < p.heads; ++h) {
      const bool dense = h / g >= p.kv_heads - p.dense_heads;
      Index short_rows = 0;
      for (Index qb = 0; qb < layout.q_blocks(); ++qb) {
        const std::vector<Index> row = row_blocks(layout, h, qb);
        short_rows += static_cast<Index>(row.size()) != qb + 1;
        if (dense) {
          std::vector<Index> all(static_cast<std::size_t>(qb + 1));
          for (Index kb = 0; kb <= qb; ++kb) all[static_cast<std::size_t>(kb)] = kb;
          EXPECT_EQ(row, all) << what << " dense head " << h << " row " << qb;
        }
      }
      if (!dense) {
        EXPECT_GT(short_rows, 0) << what << " sparse head " << h << " keeps every block";
      }
    }
  }
}

// KV-cache efficiency (dkernel is_kv_cache_efficient): the far blocks a head keeps are the same for
// every query, so down a key-block column the kept flag never comes back once dropped.
TEST(LocalStrideLayout, FarBlocksAreTheSameForEveryQuery) {
  const Index L = 203;
  for (const LocalStrideParams& p : s2_cases()) {
    const std::string what = describe(p, L);
    const BlockLayout layout = attention::local_stride_layout(L, p);
    for (Index h = 0; h < layout.heads; ++h)
      for (Index kb = 0; kb < layout.k_blocks(); ++kb) {
        const Index far = kb + p.local_blocks;
        if (far >= layout.q_blocks()) continue;
        const bool kept_far = row_has(layout, h, far, kb);
        bool previous = true;
        for (Index qb = kb; qb < layout.q_blocks(); ++qb) {
          const bool kept = row_has(layout, h, qb, kb);
          if (qb >= far) {
            EXPECT_EQ(kept, kept_far) << what << " head " << h << " key block " << kb << " query block " << qb;
          }
          EXPECT_FALSE(kept && !previous) << what << " head " << h << " key block " << kb << " comes back at " << qb;
          previous = kept;
        }
      }
  }
}

// homo_head means one pattern for all heads, dense heads mean some heads differ: dkernel asserts
// "Cannot have dense head if stride pattern for heads is homogeneous". Accepting both and quietly
// dropping the dense heads would return a layout where no head is dense.
TEST(LocalStrideLayout, HomogeneousWithDenseHeadsIsRejected) {
  const LocalStrideParams p{8, 1, 4, 4, 2, 0, 1, true};
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::local_stride_layout(64, p); }, "local_stride_layout",
                                               "dense_heads"));
}

// ---- App. D dilated (LongNet) -------------------------------------------------------------------

TEST(DilatedLayout, KeptBlocksShareSegmentAndResidue) {
  for (const DilatedSegment& pair : std::vector<DilatedSegment>{{4, 1}, {8, 2}, {6, 3}, {1, 1}, {16, 4}, {5, 7}})
    for (const auto& [L, B] : std::vector<std::pair<Index, Index>>{{203, 4}, {64, 8}, {1, 4}, {100, 1}}) {
      const std::string what = "pair (" + s(pair.segment_blocks) + ", " + s(pair.dilation) + ") L=" + s(L) + " B=" + s(B);
      const BlockLayout layout = attention::dilated_layout(L, B, {pair});
      ASSERT_TRUE(well_formed(layout, what));
      EXPECT_TRUE(causal_without_empty_rows(layout, 1, what));
      for (Index qb = 0; qb < layout.q_blocks(); ++qb) {
        std::vector<Index> want;
        for (Index kb = 0; kb <= qb; ++kb)
          if (qb / pair.segment_blocks == kb / pair.segment_blocks && (qb - kb) % pair.dilation == 0) want.push_back(kb);
        EXPECT_EQ(row_blocks(layout, 0, qb), want) << what << " row " << qb;
      }
      EXPECT_TRUE(matches_definition(
          layout, 1, [&](Index, Index i, Index j) { return j <= i && dilated_block_spec({pair}, i / B, j / B); }, what));
    }
}

TEST(DilatedLayout, PairsCombineAsTheirUnion) {
  const std::vector<std::vector<DilatedSegment>> sets = {
      {{4, 1}, {8, 2}}, {{3, 1}, {12, 3}, {7, 2}}, {{8, 1}, {16, 2}, {32, 4}, {64, 8}, {128, 16}}};  // last: LongNet's
  for (const auto& pairs : sets)
    for (const auto& [L, B] : std::vector<std::pair<Index, Index>>{{299, 2}, {203, 8}}) {
      const std::string what = s(static_cast<Index>(pairs.size())) + " pairs L=" + s(L) + " B=" + s(B);
      const BlockLayout layout = attention::dilated_layout(L, B, pairs);
      ASSERT_TRUE(well_formed(layout, what));
      EXPECT_TRUE(causal_without_empty_rows(layout, 1, what));
      std::vector<BlockLayout> single;
      for (const DilatedSegment& p : pairs) single.push_back(attention::dilated_layout(L, B, {p}));
      EXPECT_TRUE(matches_definition(
          layout, 1,
          [&](Index, Index i, Index j) {
            bool any = false;
            for (const BlockLayout& one : single) any = any || one.allowed(0, i, j);
            return any;
          },
          what + " vs the OR of single pairs"));
      EXPECT_TRUE(matches_definition(
          layout, 1, [&](Index, Index i, Index j) { return j <= i && dilated_block_spec(pairs, i / B, j / B); }, what));
      // And the union combinator over the single-pair layouts stores the same thing.
      BlockLayout folded = single.front();
      for (std::size_t k = 1; k < single.size(); ++k) folded = attention::layout_union(folded, single[k]);
      EXPECT_EQ(folded.row_start, layout.row_start) << what;
      EXPECT_EQ(folded.key_block, layout.key_block) << what;
      EXPECT_EQ(folded.mask_of, layout.mask_of) << what;
      EXPECT_EQ(folded.masks, layout.masks) << what;
    }
}

// ---- §11 combinators ----------------------------------------------------------------------------

TEST(LayoutCombinators, UnionIsOrAndIntersectionIsAndForEveryHeadAndToken) {
  for (const auto& [L, B] : std::vector<std::pair<Index, Index>>{{203, 16}, {64, 8}, {5, 8}, {1, 4}, {150, 70}}) {
    const Index H = 4;
    const LocalStrideParams s2{B, 2, 3, H, 2, 1, 0, false}, s2_shifted{B, 1, 2, H, 4, 1, 1, false};
    struct Operands {
      std::string name;
      BlockLayout a, b;
    };
    const std::vector<Operands> pairs = {
        {"S2(H) with window(1)", attention::local_stride_layout(L, s2), attention::sliding_window_layout(L, B, 20, 3)},
        {"window(1) with S2(H)", attention::sliding_window_layout(L, B, 9), attention::local_stride_layout(L, s2)},
        {"power with dilated", attention::power_layout(L, B, 1, 0), attention::dilated_layout(L, B, {{4, 2}})},
        {"S2(H) with S2(H)", attention::local_stride_layout(L, s2), attention::local_stride_layout(L, s2_shifted)},
        {"dense with window", attention::dense_layout(L, L, B), attention::sliding_window_layout(L, B, 13, 1)},
        {"causal with power", attention::causal_layout(L, B), attention::power_layout(L, B, 2, 1)}};
    for (const Operands& o : pairs) {
      const std::string what = o.name + " L=" + s(L) + " B=" + s(B);
      for (const bool is_union : {true, false}) {
        const BlockLayout c = is_union ? attention::layout_union(o.a, o.b) : attention::layout_intersection(o.a, o.b);
        const std::string name = (is_union ? "union of " : "intersection of ") + what;
        ASSERT_TRUE(well_formed(c, name));
        EXPECT_EQ(c.heads, std::max(o.a.heads, o.b.heads)) << name;
        EXPECT_TRUE(matches_definition(
            c, H,
            [&](Index h, Index i, Index j) {
              return is_union ? (o.a.allowed(h, i, j) || o.b.allowed(h, i, j)) : (o.a.allowed(h, i, j) && o.b.allowed(h, i, j));
            },
            name));
        // Per head, a union row holds each operand's row and an intersection row lies in both.
        for (const BlockLayout* operand : {&o.a, &o.b}) {
          if (is_union)
            EXPECT_GE(c.block_density(), operand->block_density()) << name;
          else
            EXPECT_LE(c.block_density(), operand->block_density()) << name;
        }
      }
    }
  }
}

// ---- lengths and blocks at the edges ------------------------------------------------------------

struct Generated {
  std::string name;
  BlockLayout layout;
  Index heads;  // query heads to check
  Rule rule;
  bool causal;
};

std::vector<Generated> every_generator(Index L, Index B) {
  const LocalStrideParams s2{B, 1, 2, 4, 2, 1, 1, false};
  const std::vector<DilatedSegment> pairs = {{2, 1}, {4, 2}};
  return {
      {"causal", attention::causal_layout(L, B), 1, [](Index, Index i, Index j) { return j <= i; }, true},
      {"dense", attention::dense_layout(L, L, B), 1, [](Index, Index, Index) { return true; }, false},
      {"window 3 sinks 2", attention::sliding_window_layout(L, B, 3, 2), 1,
       [](Index, Index i, Index j) { return window_spec(i, j, 3, 2); }, true},
      {"power Wb 2", attention::power_layout(L, B, 2, 1), 1,
       [B](Index, Index i, Index j) {
         const std::vector<Index> row = power_row_spec(i / B, 2, 1);
         return j <= i && std::binary_search(row.begin(), row.end(), j / B);
       },
       true},
      {"S2", attention::local_stride_layout(L, s2), 4, [s2](Index h, Index i, Index j) { return s2_spec(s2, h, i, j); },
       true},
      {"dilated", attention::dilated_layout(L, B, pairs), 1,
       [pairs, B](Index, Index i, Index j) { return j <= i && dilated_block_spec(pairs, i / B, j / B); }, true},
  };
}

// Lengths 0, 1, around and not divisible by the block; blocks of 1, larger than the length, and
// over 64 (two and three mask words).
TEST(BlockLayouts, EdgeLengthsAndBlocks) {
  for (const Index L : {0, 1, 2, 3, 5, 17, 64, 65, 131})
    for (const Index B : {1, 2, 4, 8, 64, 100, 130})
      for (const Generated& g : every_generator(L, B)) {
        const std::string what = g.name + " L=" + s(L) + " B=" + s(B);
        ASSERT_TRUE(well_formed(g.layout, what));
        EXPECT_EQ(g.layout.q_blocks(), ceil_div(L, B)) << what;
        if (L == 0) {
          EXPECT_EQ(g.layout.entries(), 0) << what;
        }
        EXPECT_TRUE(matches_definition(g.layout, g.heads, g.rule, what));
        if (g.causal) {
          EXPECT_TRUE(causal_without_empty_rows(g.layout, g.heads, what));
        }
      }
}

// A seeded sweep of lengths, blocks and parameters for every causal generator.
TEST(BlockLayouts, SeededSweepMatchesDefinitions) {
  const std::uint64_t seed = 20250;
  Rng rng(seed);
  auto pick = [&rng](Index lo, Index hi) { return testing::random_index(lo, hi, rng); };
  for (int trial = 0; trial < 60; ++trial) {
    const Index L = pick(1, 150), B = pick(1, 40);
    const std::string at = " L=" + s(L) + " B=" + s(B) + " (seed " + std::to_string(seed) + ", trial " + std::to_string(trial) + ")";
    {
      const Index W = pick(1, 60), S = pick(0, 20);
      const std::string what = "window " + s(W) + " sinks " + s(S) + at;
      const BlockLayout layout = attention::sliding_window_layout(L, B, W, S);
      ASSERT_TRUE(well_formed(layout, what));
      EXPECT_TRUE(causal_without_empty_rows(layout, 1, what));
      EXPECT_TRUE(matches_definition(layout, 1, [&](Index, Index i, Index j) { return window_spec(i, j, W, S); }, what));
    }
    {
      const Index Wb = pick(1, 6), sinks = pick(0, 3);
      const std::string what = "power Wb " + s(Wb) + " sinks " + s(sinks) + at;
      const BlockLayout layout = attention::power_layout(L, B, Wb, sinks);
      ASSERT_TRUE(well_formed(layout, what));
      EXPECT_TRUE(causal_without_empty_rows(layout, 1, what));
      for (Index qb = 0; qb < layout.q_blocks(); ++qb)
        EXPECT_EQ(row_blocks(layout, 0, qb), power_row_spec(qb, Wb, sinks)) << what << " row " << qb;
    }
    {
      const Index kv = pick(1, 4);
      LocalStrideParams p{B, pick(1, 4), pick(1, 6), kv * pick(1, 3), kv, pick(0, 5), pick(0, kv), false};
      if (pick(0, 3) == 0) p.homogeneous = true, p.dense_heads = 0;
      const std::string what = describe(p, L) + at;
      const BlockLayout layout = attention::local_stride_layout(L, p);
      ASSERT_TRUE(well_formed(layout, what));
      EXPECT_TRUE(causal_without_empty_rows(layout, p.heads, what));
      EXPECT_TRUE(matches_definition(layout, p.heads, [&](Index h, Index i, Index j) { return s2_spec(p, h, i, j); }, what));
    }
    {
      std::vector<DilatedSegment> pairs(static_cast<std::size_t>(pick(1, 3)));
      for (DilatedSegment& d : pairs) d = {pick(1, 10), pick(1, 4)};
      const std::string what = "dilated" + at;
      const BlockLayout layout = attention::dilated_layout(L, B, pairs);
      ASSERT_TRUE(well_formed(layout, what));
      EXPECT_TRUE(causal_without_empty_rows(layout, 1, what));
      EXPECT_TRUE(matches_definition(
          layout, 1, [&](Index, Index i, Index j) { return j <= i && dilated_block_spec(pairs, i / B, j / B); }, what));
    }
  }
}

// ---- bad arguments (DESIGN §4): tokenmix::Error naming the generator and the argument -------------

TEST(BlockLayouts, RejectBadArguments) {
  using attention::causal_layout;
  using attention::dense_layout;
  using attention::dilated_layout;
  using attention::layout_intersection;
  using attention::layout_union;
  using attention::local_stride_layout;
  using attention::power_layout;
  using attention::sliding_window_layout;
  using testing::throws_error_mentioning;
  // Block and length.
  EXPECT_TRUE(throws_error_mentioning([] { causal_layout(8, 0); }, "causal_layout", "block must be positive, got 0"));
  EXPECT_TRUE(throws_error_mentioning([] { causal_layout(-1, 4); }, "causal_layout", "length must be >= 0, got -1"));
  EXPECT_TRUE(throws_error_mentioning([] { dense_layout(8, 8, 0); }, "dense_layout", "block size must be positive"));
  EXPECT_TRUE(throws_error_mentioning([] { dense_layout(8, -2, 4); }, "dense_layout", "lengths must be >= 0"));
  EXPECT_TRUE(throws_error_mentioning([] { sliding_window_layout(8, 0, 4); }, "sliding_window_layout",
                                      "block must be positive, got 0"));
  EXPECT_TRUE(throws_error_mentioning([] { sliding_window_layout(8, -3, 4); }, "sliding_window_layout",
                                      "block must be positive, got -3"));
  EXPECT_TRUE(throws_error_mentioning([] { sliding_window_layout(-5, 4, 4); }, "sliding_window_layout",
                                      "length must be >= 0, got -5"));
  EXPECT_TRUE(throws_error_mentioning([] { power_layout(8, 0, 2); }, "power_layout", "block must be positive"));
  EXPECT_TRUE(throws_error_mentioning([] { dilated_layout(8, 0, {{2, 1}}); }, "dilated_layout", "block must be positive"));
  LocalStrideParams zero_block{0, 1, 2, 1, 1, 0, 0, false};
  EXPECT_TRUE(throws_error_mentioning([&] { local_stride_layout(8, zero_block); }, "local_stride_layout",
                                      "block must be positive, got 0"));
  // Window and sinks.
  EXPECT_TRUE(throws_error_mentioning([] { sliding_window_layout(8, 4, 0); }, "sliding_window_layout",
                                      "window must be >= 1 token, got 0"));
  EXPECT_TRUE(throws_error_mentioning([] { sliding_window_layout(8, 4, -2); }, "sliding_window_layout",
                                      "window must be >= 1 token, got -2"));
  EXPECT_TRUE(throws_error_mentioning([] { sliding_window_layout(8, 4, 2, -1); }, "sliding_window_layout",
                                      "sinks must be >= 0 tokens, got -1"));
  EXPECT_TRUE(throws_error_mentioning([] { power_layout(8, 4, 0); }, "power_layout", "window_blocks must be >= 1, got 0"));
  EXPECT_TRUE(throws_error_mentioning([] { power_layout(8, 4, 2, -1); }, "power_layout", "sink_blocks must be >= 0, got -1"));
  // Local-stride parameters.
  auto s2 = [](Index local, Index stride, Index heads, Index kv, Index offset, Index dense) {
    return LocalStrideParams{4, local, stride, heads, kv, offset, dense, false};
  };
  const char* ls = "local_stride_layout";
  EXPECT_TRUE(throws_error_mentioning([&] { local_stride_layout(8, s2(0, 2, 2, 1, 0, 0)); }, ls, "local_blocks must be >= 1, got 0"));
  EXPECT_TRUE(throws_error_mentioning([&] { local_stride_layout(8, s2(1, 0, 2, 1, 0, 0)); }, ls, "vert_stride must be >= 1, got 0"));
  EXPECT_TRUE(throws_error_mentioning([&] { local_stride_layout(8, s2(1, 2, 3, 2, 0, 0)); }, ls,
                                      "heads (3) must be a positive multiple of kv_heads (2)"));
  EXPECT_TRUE(throws_error_mentioning([&] { local_stride_layout(8, s2(1, 2, 2, 0, 0, 0)); }, ls,
                                      "heads (2) must be a positive multiple of kv_heads (0)"));
  EXPECT_TRUE(throws_error_mentioning([&] { local_stride_layout(8, s2(1, 2, 0, 1, 0, 0)); }, ls,
                                      "heads (0) must be a positive multiple of kv_heads (1)"));
  EXPECT_TRUE(throws_error_mentioning([&] { local_stride_layout(8, s2(1, 2, 4, 2, 0, 3)); }, ls,
                                      "dense_heads must be in [0, kv_heads=2], got 3"));
  EXPECT_TRUE(throws_error_mentioning([&] { local_stride_layout(8, s2(1, 2, 4, 2, 0, -1)); }, ls,
                                      "dense_heads must be in [0, kv_heads=2], got -1"));
  EXPECT_TRUE(throws_error_mentioning([&] { local_stride_layout(8, s2(1, 2, 4, 2, -1, 0)); }, ls,
                                      "head_offset must be >= 0, got -1"));
  // Dilated pairs.
  EXPECT_TRUE(throws_error_mentioning([] { dilated_layout(8, 4, {}); }, "dilated_layout",
                                      "at least one (segment, dilation) pair is needed"));
  EXPECT_TRUE(throws_error_mentioning([] { dilated_layout(8, 4, {{2, 1}, {0, 1}}); }, "dilated_layout",
                                      "segment_blocks and dilation must be >= 1, got (0, 1)"));
  EXPECT_TRUE(throws_error_mentioning([] { dilated_layout(8, 4, {{2, 0}}); }, "dilated_layout",
                                      "segment_blocks and dilation must be >= 1, got (2, 0)"));
  // Combinators: blocks, lengths, head counts.
  EXPECT_TRUE(throws_error_mentioning([] { layout_union(causal_layout(8, 4), causal_layout(8, 2)); }, "layout_union",
                                      "layouts differ in blocks or lengths (4x4 over 8x8 vs 2x2 over 8x8)"));
  EXPECT_TRUE(throws_error_mentioning([] { layout_intersection(causal_layout(8, 4), causal_layout(9, 4)); },
                                      "layout_intersection", "layouts differ in blocks or lengths (4x4 over 8x8 vs 4x4 over 9x9)"));
  EXPECT_TRUE(throws_error_mentioning([] { layout_union(dense_layout(8, 12, 4), dense_layout(8, 8, 4)); }, "layout_union",
                                      "layouts differ in blocks or lengths"));
  const BlockLayout two = local_stride_layout(8, s2(1, 2, 2, 2, 0, 0)), three = local_stride_layout(8, s2(1, 2, 3, 3, 0, 0));
  EXPECT_TRUE(throws_error_mentioning([&] { layout_union(two, three); }, "layout_union",
                                      "layouts have 2 and 3 heads, expected equal counts or one shared pattern"));
  EXPECT_TRUE(throws_error_mentioning([&] { layout_intersection(three, two); }, "layout_intersection",
                                      "layouts have 3 and 2 heads"));
  // The builder itself.
  EXPECT_TRUE(throws_error_mentioning(
      [] {
        BlockLayout::from_rules(
            "custom", 8, 8, 4, 4, 0, [](Index, Index, Index) { return attention::BlockKind::full; },
            [](Index, Index, Index) { return true; });
      },
      "custom", "heads must be >= 1, got 0"));
}

}  // namespace
}  // namespace block_layout_cases
}  // namespace tokenmix
