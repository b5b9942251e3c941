#pragma once
// Block-sparse attention layouts (spec sparse_attention.md §11): which keys each query may attend
// to, as blocks of tokens, so that the attention engine (attention/attention.hpp) computes only the
// kept blocks and its cost follows the layout's density.
//
// Positions are absolute: query i and key j of the whole sequence (a chunked prefill or a decode
// step passes q_offset to the engine, so its rows are rows q_offset.. of the same layout). Query
// block qb = i / q_block, key block kb = j / k_block. Per head (or one row set shared by all heads),
// each query block has a sorted list of key blocks, each either
//   full    every (i, j) of the block is allowed, or
//   masked  a token mask says which are (window edges, the causal diagonal, token predicates).
// A layout states the whole pattern, causality included: generators of causal patterns mask the
// diagonal blocks themselves (the engine's causal flag is an extra AND).
//
//   BlockLayout::from_rules(...)        any pattern from a block rule and a token rule
//   BlockLayout::from_token_lists(...)  any pattern from per-query key lists (content-dependent)
//   sliding_window_layout               j <= i and i - j < window, plus `sinks` first tokens (StreamingLLM)
//   local_stride_layout                 S2-Attention / DKernel heterogeneous strided shards
//   power_layout                        PowerAttention: window + power-of-two block distances + sink
//   dilated_layout                      LongNet-style dilated segments (PowerAttention App. D baseline)
//   causal_layout, dense_layout         everything (causal / not), as layouts
//   layout_union, layout_intersection   combinators
// Every generator's token rule is also exposed (allowed(h, i, j)) for tests and oracles.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "tokenmix/config.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::attention {

enum class BlockKind : std::uint8_t { none, full, masked };

struct BlockLayout {
  Index q_block = 0, k_block = 0;    // tokens per query / key block
  Index q_length = 0, k_length = 0;  // positions covered: queries [0, q_length), keys [0, k_length)
  Index heads = 1;                   // 1: one pattern for every query head; else one per query head
  std::vector<Index> row_start;      // [heads·q_blocks() + 1] CSR: entries of row (h, qb)
  std::vector<Index> key_block;      // [entries] key blocks, ascending within a row
  std::vector<std::int64_t> mask_of; // [entries] -1: full block; else the entry's mask number m
  // [masks, k_block, words] token bits of masked entries, key-major (the engine's tile layout):
  // bit (i - qb·q_block) of words of row (j - kb·k_block) of mask m: query i may attend to key j.
  std::vector<std::uint64_t> masks;

  Index q_blocks() const { return (q_length + q_block - 1) / q_block; }
  Index k_blocks() const { return (k_length + k_block - 1) / k_block; }
  Index mask_words() const { return (q_block + 63) / 64; }
  Index entries() const { return static_cast<Index>(key_block.size()); }
  Index row(Index head, Index qb) const { return (heads == 1 ? 0 : head) * q_blocks() + qb; }

  // Kept (block) pairs over all rows and heads / all q_blocks·k_blocks pairs of the grid.
  double block_density() const {
    const double grid = double(heads) * double(q_blocks()) * double(k_blocks());
    return grid > 0 ? double(entries()) / grid : 0.0;
  }

  // Token-level rule of the stored layout (what the engine computes): query i may attend to key j.
  bool allowed(Index head, Index i, Index j) const {
    if (i < 0 || j < 0 || i >= q_length || j >= k_length) return false;
    const Index r = row(head, i / q_block), kb = j / k_block;
    const auto first = key_block.begin() + row_start[static_cast<std::size_t>(r)];
    const auto last = key_block.begin() + row_start[static_cast<std::size_t>(r) + 1];
    const auto it = std::lower_bound(first, last, kb);
    if (it == last || *it != kb) return false;
    const std::int64_t m = mask_of[static_cast<std::size_t>(it - key_block.begin())];
    return m < 0 || mask_bit(m, j - kb * k_block, i - (i / q_block) * q_block);
  }
  bool mask_bit(std::int64_t m, Index key_row, Index query_bit) const {
    const std::uint64_t w = masks[static_cast<std::size_t>((m * k_block + key_row) * mask_words() + query_bit / 64)];
    return (w >> (query_bit % 64)) & 1u;
  }

  // Builds a layout from a block rule (none / full / masked: "some tokens may be excluded") and a
  // token rule, evaluated only inside blocks the block rule calls masked. A masked block whose
  // tokens all pass becomes full; one whose tokens all fail is dropped. Tokens outside
  // [0, q_length) × [0, k_length) are never allowed.
  template <class BlockRule, class TokenRule>
  static BlockLayout from_rules(const char* op, Index q_length, Index k_length, Index q_block, Index k_block,
                                Index heads, BlockRule&& block_rule, TokenRule&& token_rule) {
    TOKENMIX_CHECK(q_block > 0 && k_block > 0, op, ": block size must be positive, got q_block ", q_block,
                   ", k_block ", k_block);
    TOKENMIX_CHECK(q_length >= 0 && k_length >= 0, op, ": lengths must be >= 0, got ", q_length, " and ", k_length);
    TOKENMIX_CHECK(heads >= 1, op, ": heads must be >= 1, got ", heads);
    BlockLayout L;
    L.q_block = q_block, L.k_block = k_block, L.q_length = q_length, L.k_length = k_length, L.heads = heads;
    const Index words = L.mask_words();
    std::vector<std::uint64_t> bits(static_cast<std::size_t>(k_block * words));
    L.row_start.push_back(0);
    for (Index h = 0; h < heads; ++h)
      for (Index qb = 0; qb < L.q_blocks(); ++qb) {
        for (Index kb = 0; kb < L.k_blocks(); ++kb) {
          const BlockKind kind = block_rule(h, qb, kb);
          if (kind == BlockKind::none) continue;
          const Index i0 = qb * q_block, j0 = kb * k_block;
          const Index qn = std::min(q_block, q_length - i0), kn = std::min(k_block, k_length - j0);
          const bool edge = qn < q_block || kn < k_block;  // tokens past the ends are excluded
          if (kind == BlockKind::full && !edge) {
            L.key_block.push_back(kb), L.mask_of.push_back(-1);
            continue;
          }
          std::fill(bits.begin(), bits.end(), 0);
          Index kept = 0;
          for (Index jj = 0; jj < kn; ++jj)
            for (Index ii = 0; ii < qn; ++ii)
              if (kind == BlockKind::full || token_rule(h, i0 + ii, j0 + jj)) {
                bits[static_cast<std::size_t>(jj * words + ii / 64)] |= std::uint64_t(1) << (ii % 64);
                ++kept;
              }
          if (kept == 0) continue;
          L.key_block.push_back(kb);
          if (kept == q_block * k_block) {
            L.mask_of.push_back(-1);
          } else {
            L.mask_of.push_back(static_cast<std::int64_t>(L.masks.size()) / (k_block * words));
            L.masks.insert(L.masks.end(), bits.begin(), bits.end());
          }
        }
        L.row_start.push_back(L.entries());
      }
    return L;
  }

  // Builds a layout from explicit key lists: keys(h, i) returns the keys (any order, duplicates
  // allowed, each in [0, k_length)) query i of head h may attend to. For content-dependent
  // selections (DMA's top-w, HAX's buckets, block top-k): O(Σ |keys|) plus the masks.
  template <class Keys>
  static BlockLayout from_token_lists(const char* op, Index q_length, Index k_length, Index q_block, Index k_block,
                                      Index heads, Keys&& keys) {
    TOKENMIX_CHECK(q_block > 0 && k_block > 0, op, ": block size must be positive, got q_block ", q_block,
                   ", k_block ", k_block);
    TOKENMIX_CHECK(q_length >= 0 && k_length >= 0 && heads >= 1, op, ": bad lengths or heads (", q_length, ", ",
                   k_length, ", ", heads, ")");
    BlockLayout L;
    L.q_block = q_block, L.k_block = k_block, L.q_length = q_length, L.k_length = k_length, L.heads = heads;
    const Index words = L.mask_words(), kbs = L.k_blocks();
    std::vector<Index> slot(static_cast<std::size_t>(kbs), -1);  // key block -> its mask in `bits`
    std::vector<Index> touched;
    std::vector<std::uint64_t> bits;  // [touched, k_block, words]
    std::vector<Index> counts;        // set bits per touched block
    L.row_start.push_back(0);
    for (Index h = 0; h < heads; ++h)
      for (Index qb = 0; qb < L.q_blocks(); ++qb) {
        touched.clear(), bits.clear(), counts.clear();
        const Index i0 = qb * q_block, qn = std::min(q_block, q_length - i0);
        for (Index ii = 0; ii < qn; ++ii)
          for (const Index j : keys(h, i0 + ii)) {
            TOKENMIX_CHECK(j >= 0 && j < k_length, op, ": key ", j, " of query ", i0 + ii, " is outside [0, ", k_length, ")");
            const Index kb = j / k_block;
            Index& m = slot[static_cast<std::size_t>(kb)];
            if (m < 0) {
              m = static_cast<Index>(touched.size());
              touched.push_back(kb);
              bits.resize(bits.size() + static_cast<std::size_t>(k_block * words), 0);
              counts.push_back(0);
            }
            std::uint64_t& w = bits[static_cast<std::size_t>((m * k_block + (j - kb * k_block)) * words + ii / 64)];
            const std::uint64_t bit = std::uint64_t(1) << (ii % 64);
            if (!(w & bit)) w |= bit, ++counts[static_cast<std::size_t>(m)];
          }
        std::vector<Index> order(touched.size());
        for (std::size_t t = 0; t < order.size(); ++t) order[t] = static_cast<Index>(t);
        std::sort(order.begin(), order.end(), [&](Index a, Index b) {
          return touched[static_cast<std::size_t>(a)] < touched[static_cast<std::size_t>(b)];
        });
        for (const Index m : order) {
          const Index kb = touched[static_cast<std::size_t>(m)];
          slot[static_cast<std::size_t>(kb)] = -1;
          L.key_block.push_back(kb);
          if (counts[static_cast<std::size_t>(m)] == q_block * k_block) {
            L.mask_of.push_back(-1);
          } else {
            L.mask_of.push_back(static_cast<std::int64_t>(L.masks.size()) / (k_block * words));
            const auto first = bits.begin() + m * k_block * words;
            L.masks.insert(L.masks.end(), first, first + k_block * words);
          }
        }
        L.row_start.push_back(L.entries());
      }
    return L;
  }
};

namespace detail {

inline void check_block_and_length(const char* op, Index length, Index block) {
  TOKENMIX_CHECK(block > 0, op, ": block must be positive, got ", block);
  TOKENMIX_CHECK(length >= 0, op, ": length must be >= 0, got ", length);
}

// Block rule of the causal patterns whose kept blocks are whole but for the diagonal (j <= i
// inside it): none above the diagonal or where the pattern drops the block.
inline BlockKind causal_block(Index qb, Index kb, bool kept) {
  if (kb > qb || !kept) return BlockKind::none;
  return kb == qb ? BlockKind::masked : BlockKind::full;
}

}  // namespace detail

// Everything (non-causal) / every j <= i (causal), as layouts: the dense cases of the engine.
inline BlockLayout dense_layout(Index q_length, Index k_length, Index block) {
  return BlockLayout::from_rules("dense_layout", q_length, k_length, block, block, 1,
                                 [](Index, Index, Index) { return BlockKind::full; },
                                 [](Index, Index, Index) { return true; });
}
inline bool causal_allowed(Index i, Index j) { return j <= i; }
inline BlockLayout causal_layout(Index length, Index block) {
  detail::check_block_and_length("causal_layout", length, block);
  return BlockLayout::from_rules(
      "causal_layout", length, length, block, block, 1,
      [](Index, Index qb, Index kb) { return detail::causal_block(qb, kb, true); },
      [](Index, Index i, Index j) { return causal_allowed(i, j); });
}

// Sliding window with attention sinks (StreamingLLM): j <= i and (i - j < window or j < sinks).
inline bool sliding_window_allowed(Index i, Index j, Index window, Index sinks) {
  return j <= i && (i - j < window || j < sinks);
}
inline BlockLayout sliding_window_layout(Index length, Index block, Index window, Index sinks = 0) {
  constexpr const char* op = "sliding_window_layout";
  detail::check_block_and_length(op, length, block);
  TOKENMIX_CHECK(window >= 1, op, ": window must be >= 1 token, got ", window);
  TOKENMIX_CHECK(sinks >= 0, op, ": sinks must be >= 0 tokens, got ", sinks);
  return BlockLayout::from_rules(
      op, length, length, block, block, 1,
      [=](Index, Index qb, Index kb) {
        if (kb > qb) return BlockKind::none;
        const Index i_first = qb * block, i_last = i_first + block - 1, j_first = kb * block, j_last = j_first + block - 1;
        const bool sink_full = j_last < sinks, sink_any = j_first < sinks;
        const bool window_any = i_first - j_last < window;  // the closest pair is within the window
        const bool window_full = i_last - j_first < window;
        if (kb == qb) return BlockKind::masked;
        if (sink_full || window_full) return BlockKind::full;
        return sink_any || window_any ? BlockKind::masked : BlockKind::none;
      },
      [=](Index, Index i, Index j) { return sliding_window_allowed(i, j, window, sinks); });
}

// S2-Attention / DKernel local-stride shards (causal, "absolute" vertical positions), per query
// head h with kv head hk = h / (heads / kv_heads): block (qb, kb) is kept iff kb <= qb and
// (qb - kb < local_blocks or (kb + hk·step + head_offset) mod vert_stride == 0), step =
// max(1, vert_stride / kv_heads) (current DKernel under GQA; its older code and spec §3 divide by
// the query heads: the same without GQA); the last `dense_heads` kv heads keep every causal block;
// homogeneous: every head uses head 0's pattern. Tokens inside kept blocks: j <= i. Phi-3-small's
// own mask code adds 1 to kb + hk·step: head_offset = 1 reproduces it.
struct LocalStrideParams {
  Index block = 64, local_blocks = 16, vert_stride = 8;
  Index heads = 1, kv_heads = 1;  // query heads, kv heads (heads a multiple of kv_heads)
  Index head_offset = 0;          // DKernel's head_sliding_offset
  Index dense_heads = 0;          // DKernel's num_dense_heads (kv heads)
  bool homogeneous = false;       // DKernel's homo_head
};
inline bool local_stride_block_allowed(const LocalStrideParams& p, Index h, Index qb, Index kb) {
  if (kb > qb) return false;
  const Index hk = p.homogeneous ? 0 : h / (p.heads / p.kv_heads);
  if (hk >= p.kv_heads - p.dense_heads) return true;
  const Index step = std::max<Index>(1, p.vert_stride / p.kv_heads);
  return qb - kb < p.local_blocks || (kb + hk * step + p.head_offset) % p.vert_stride == 0;
}
inline bool local_stride_allowed(const LocalStrideParams& p, Index h, Index i, Index j) {
  return j <= i && local_stride_block_allowed(p, h, i / p.block, j / p.block);
}
inline BlockLayout local_stride_layout(Index length, const LocalStrideParams& p) {
  constexpr const char* op = "local_stride_layout";
  detail::check_block_and_length(op, length, p.block);
  TOKENMIX_CHECK(p.local_blocks >= 1, op, ": local_blocks must be >= 1, got ", p.local_blocks);
  TOKENMIX_CHECK(p.vert_stride >= 1, op, ": vert_stride must be >= 1, got ", p.vert_stride);
  TOKENMIX_CHECK(p.kv_heads >= 1 && p.heads >= 1 && p.heads % p.kv_heads == 0, op, ": heads (", p.heads,
                 ") must be a positive multiple of kv_heads (", p.kv_heads, ")");
  TOKENMIX_CHECK(p.dense_heads >= 0 && p.dense_heads <= p.kv_heads, op, ": dense_heads must be in [0, kv_heads=",
                 p.kv_heads, "], got ", p.dense_heads);
  TOKENMIX_CHECK(p.head_offset >= 0, op, ": head_offset must be >= 0, got ", p.head_offset);
  // DKernel rejects this too: one shared pattern cannot have dense heads.
  TOKENMIX_CHECK(!p.homogeneous || p.dense_heads == 0, op,
                 ": dense_heads must be 0 when homogeneous (one pattern for every head), got ", p.dense_heads);
  return BlockLayout::from_rules(
      op, length, length, p.block, p.block, p.homogeneous ? 1 : p.heads,
      [=](Index h, Index qb, Index kb) { return detail::causal_block(qb, kb, local_stride_block_allowed(p, h, qb, kb)); },
      [=](Index h, Index i, Index j) { return local_stride_allowed(p, h, i, j); });
}

// PowerAttention (arXiv 2503.03588 Alg. 1): δ = i/B - j/B; allowed iff j <= i and (δ < window_blocks
// or δ is 0 or a power of two or j < sink_blocks·B).
inline bool power_block_allowed(Index qb, Index kb, Index window_blocks, Index sink_blocks) {
  if (kb > qb) return false;
  const Index d = qb - kb;
  return d < window_blocks || (d & (d - 1)) == 0 || kb < sink_blocks;
}
inline bool power_allowed(Index i, Index j, Index block, Index window_blocks, Index sink_blocks) {
  return j <= i && power_block_allowed(i / block, j / block, window_blocks, sink_blocks);
}
inline BlockLayout power_layout(Index length, Index block, Index window_blocks, Index sink_blocks = 1) {
  constexpr const char* op = "power_layout";
  detail::check_block_and_length(op, length, block);
  TOKENMIX_CHECK(window_blocks >= 1, op, ": window_blocks must be >= 1, got ", window_blocks);
  TOKENMIX_CHECK(sink_blocks >= 0, op, ": sink_blocks must be >= 0, got ", sink_blocks);
  return BlockLayout::from_rules(
      op, length, length, block, block, 1,
      [=](Index, Index qb, Index kb) {
        return detail::causal_block(qb, kb, power_block_allowed(qb, kb, window_blocks, sink_blocks));
      },
      [=](Index, Index i, Index j) { return power_allowed(i, j, block, window_blocks, sink_blocks); });
}

// LongNet dilated attention over blocks (arXiv 2307.02486; PowerAttention App. D's baseline with
// pairs (8, 1), (16, 2), ..., (128, 16)): for each (segment, dilation) pair, in blocks, the segment
// is sparsified to every `dilation`-th block and attention is dense among the kept blocks; LongNet
// shifts the offset across heads so every residue is covered, so here query block qb may attend to
// key block kb iff, for some pair, both lie in one segment and qb ≡ kb (mod dilation). Causal,
// the diagonal always kept; the union over the pairs.
struct DilatedSegment {
  Index segment_blocks, dilation;
};
inline bool dilated_block_allowed(const std::vector<DilatedSegment>& pairs, Index qb, Index kb) {
  if (kb > qb) return false;
  if (kb == qb) return true;
  for (const DilatedSegment& s : pairs)
    if (qb / s.segment_blocks == kb / s.segment_blocks && (qb - kb) % s.dilation == 0) return true;
  return false;
}
inline bool dilated_allowed(const std::vector<DilatedSegment>& pairs, Index block, Index i, Index j) {
  return j <= i && dilated_block_allowed(pairs, i / block, j / block);
}
inline BlockLayout dilated_layout(Index length, Index block, const std::vector<DilatedSegment>& pairs) {
  constexpr const char* op = "dilated_layout";
  detail::check_block_and_length(op, length, block);
  TOKENMIX_CHECK(!pairs.empty(), op, ": at least one (segment, dilation) pair is needed");
  for (const DilatedSegment& s : pairs)
    TOKENMIX_CHECK(s.segment_blocks >= 1 && s.dilation >= 1, op, ": segment_blocks and dilation must be >= 1, got (",
                   s.segment_blocks, ", ", s.dilation, ")");
  return BlockLayout::from_rules(
      op, length, length, block, block, 1,
      [=](Index, Index qb, Index kb) { return detail::causal_block(qb, kb, dilated_block_allowed(pairs, qb, kb)); },
      [=](Index, Index i, Index j) { return dilated_allowed(pairs, block, i, j); });
}

// Union / intersection of two layouts over the same positions and blocks (heads: 1 and H combine
// to H).
namespace detail {
template <class Op>
BlockLayout combine_layouts(const char* op, const BlockLayout& a, const BlockLayout& b, bool keep_if_either, Op&& bit_op) {
  TOKENMIX_CHECK(a.q_block == b.q_block && a.k_block == b.k_block && a.q_length == b.q_length &&
                     a.k_length == b.k_length,
                 op, ": layouts differ in blocks or lengths (", a.q_block, "x", a.k_block, " over ", a.q_length, "x",
                 a.k_length, " vs ", b.q_block, "x", b.k_block, " over ", b.q_length, "x", b.k_length, ")");
  TOKENMIX_CHECK(a.heads == b.heads || a.heads == 1 || b.heads == 1, op, ": layouts have ", a.heads, " and ", b.heads,
                 " heads, expected equal counts or one shared pattern");
  auto has = [](const BlockLayout& L, Index r, Index kb, std::int64_t& m) {
    const auto first = L.key_block.begin() + L.row_start[static_cast<std::size_t>(r)];
    const auto last = L.key_block.begin() + L.row_start[static_cast<std::size_t>(r) + 1];
    const auto it = std::lower_bound(first, last, kb);
    if (it == last || *it != kb) return false;
    m = L.mask_of[static_cast<std::size_t>(it - L.key_block.begin())];
    return true;
  };
  const Index heads = std::max(a.heads, b.heads);
  return BlockLayout::from_rules(
      op, a.q_length, a.k_length, a.q_block, a.k_block, heads,
      [&](Index h, Index qb, Index kb) {
        std::int64_t ma = 0, mb = 0;
        const bool ia = has(a, a.row(h, qb), kb, ma), ib = has(b, b.row(h, qb), kb, mb);
        const bool keep = keep_if_either ? (ia || ib) : (ia && ib);
        if (!keep) return BlockKind::none;
        if (keep_if_either ? ((ia && ma < 0) || (ib && mb < 0)) : (ma < 0 && mb < 0)) return BlockKind::full;
        return BlockKind::masked;
      },
      [&](Index h, Index i, Index j) { return bit_op(a.allowed(h, i, j), b.allowed(h, i, j)); });
}
}  // namespace detail

inline BlockLayout layout_union(const BlockLayout& a, const BlockLayout& b) {
  return detail::combine_layouts("layout_union", a, b, true, [](bool x, bool y) { return x || y; });
}
inline BlockLayout layout_intersection(const BlockLayout& a, const BlockLayout& b) {
  return detail::combine_layouts("layout_intersection", a, b, false, [](bool x, bool y) { return x && y; });
}

}  // namespace tokenmix::attention
