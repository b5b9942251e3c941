#pragma once
// SIMD kernel of the softmax attention engine (the equations are in reference/attention.hpp).
//
// Work item = (batch b, query head h, query block qb). A block's queries are taken in tiles of up to
// QV·W (W = lanes, QV <= 4: 64 queries on AVX-512), and every tile walks its key blocks (all of them
// for dense attention, those up to the diagonal when causal, the layout's row otherwise) with an
// online softmax, never materialising the Lq × Lk matrix. The tile is held TRANSPOSED, queries in
// the lanes:
//   Qt [P, QV·W]   the tile's queries, scaled by scale·log2(e) (exp2 is the cheap exp here)
//   S  [Bk, QV·W]  logits of one key block: S[j] = Σ_p k_j[p]·Qt[p]  (key row broadcast, FMA)
//   Ot [Pv, QV·W]  the running output:        Ot[p] = α·Ot[p] + Σ_j v_j[p]·S[j]
// so the softmax statistics (running max m, sum l) are per lane and every reduction over keys is a
// vertical max / add, never a horizontal one; K and V rows are read in place (no packing; the next
// key block's rows are prefetched), Q enters and O leaves through in-register W × W transposes.
// Both products run one register-blocked micro-kernel (broadcast_fma_rows: 6 rows × QV vectors).
// Masking: keys past the causal diagonal (position test), and the layout's token masks on masked
// blocks only (a vector blend per key row); full blocks pay nothing. A query with no allowed key
// ends with l = 0: out 0, lse -inf.
// The single-query case (decode against a KV cache, decode_rows) puts keys in the lanes instead:
// the heads of a chunk walk the keys together, 16 at a time, reading K and V in storage order.
// Each lane's arithmetic is the same whatever the thread or tile order: results are bitwise
// identical for any thread count.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "tokenmix/attention/block_layout.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/simd/exp.hpp"
#include "tokenmix/simd/transpose.hpp"

namespace tokenmix::attention::detail {

struct AttentionProblem {
  Index batch, q_len, k_len, heads, kv_heads, dim, v_dim;
  const float* q;         // [B, Lq, H, P]
  const float* k;         // [B, Lk, Hkv, P]
  const float* v;         // [B, Lk, Hkv, Pv]
  float scale;            // natural units
  bool causal;            // j <= i
  Index q_offset;         // absolute position of query row 0
  float softcap;          // 0 = off
  const float* key_bias;  // [B, Hb, Lk] or nullptr
  const float* row_scale; // [B, H, Lq] or nullptr
  Index bias_heads;       // Hb: 1, Hkv or H
  const BlockLayout* layout;  // nullptr: every key (cut by causal)
  Index q_block, k_block;     // tiles: the layout's blocks, or the dense defaults
  float* out;             // [B, Lq, H, Pv]
  float* lse;             // [B, H, Lq] or nullptr
  Index decode_heads = 1; // Lq = 1: query heads per work item (they walk the keys together)
};

using simd::kLn2;
using simd::kLog2e;

template <class Arch>
struct AttentionKernel {
  using V = simd::vfloat<Arch>;
  static constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  static constexpr Index kMaxQV = 4;            // query vectors per tile
  static constexpr Index kTile = kMaxQV * W;    // queries per tile
  static constexpr float kNegInf = -std::numeric_limits<float>::infinity();

  // Query blocks overlapping the rows [q_offset, q_offset + Lq).
  static Index first_block(const AttentionProblem& p) { return p.q_offset / p.q_block; }
  static Index blocks(const AttentionProblem& p) {
    if (p.q_len == 0) return 0;
    return (p.q_offset + p.q_len - 1) / p.q_block - first_block(p) + 1;
  }
  static Index decode_chunks(const AttentionProblem& p) { return (p.heads + p.decode_heads - 1) / p.decode_heads; }
  static Index num_items(const AttentionProblem& p) {
    return p.q_len == 1 ? p.batch * decode_chunks(p) : p.batch * p.heads * blocks(p);
  }
  static Index padded(Index n) { return (n + W - 1) / W * W; }
  static Index scratch_floats(const AttentionProblem& p) {
    const Index kb = std::max(p.k_block, W);
    if (p.q_len == 1)  // decode_rows: per head q, o, m, l; then s, part, partT, pad
      return p.decode_heads * (padded(p.dim) + padded(p.v_dim) + 2) + kb + W + 2 * W * W + 2 * W;
    return (p.dim + p.v_dim + kb + 8) * kTile;  // run_tile: Qt, Ot, S, m, l, qpos, pad
  }

  static void run_items(const AttentionProblem& p, Index first, Index last, float* scratch) noexcept {
    for (Index item = first; item < last; ++item) {
      if (p.q_len == 1) {
        const Index chunks = decode_chunks(p), c = item % chunks;
        decode_rows(p, item / chunks, c * p.decode_heads, std::min(p.heads, (c + 1) * p.decode_heads), scratch);
        continue;
      }
      const Index nb = blocks(p);
      const Index qb = first_block(p) + item % nb, h = (item / nb) % p.heads, b = item / (nb * p.heads);
      // Absolute query positions of this block inside the call's rows.
      const Index i_begin = std::max(p.q_offset, qb * p.q_block);
      const Index i_end = std::min(p.q_offset + p.q_len, (qb + 1) * p.q_block);
      for (Index i0 = i_begin; i0 < i_end; i0 += kTile) {
        const Index n = std::min(kTile, i_end - i0);
        if (n <= W) run_tile<1>(p, b, h, qb, i0, n, scratch);
        else if (n <= 2 * W) run_tile<2>(p, b, h, qb, i0, n, scratch);
        else run_tile<4>(p, b, h, qb, i0, n, scratch);
      }
    }
  }

 private:
  // Key blocks of row (h, qb), in ascending order, as visit(kb, mask number or -1, next kb or -1).
  template <class Visit>
  static void for_each_key_block(const AttentionProblem& p, Index h, Index qb, Index i_last, Visit&& visit) {
    const Index k_end = p.causal ? std::min(p.k_len, i_last + 1) : p.k_len;  // keys past it are never used
    if (p.layout) {
      const BlockLayout& L = *p.layout;
      const Index r = L.row(h, qb), last = L.row_start[static_cast<std::size_t>(r) + 1];
      for (Index e = L.row_start[static_cast<std::size_t>(r)]; e < last; ++e) {
        const Index kb = L.key_block[static_cast<std::size_t>(e)];
        if (kb * p.k_block >= k_end) break;
        const Index next = e + 1 < last ? L.key_block[static_cast<std::size_t>(e) + 1] : -1;
        visit(kb, L.mask_of[static_cast<std::size_t>(e)], next * p.k_block < k_end ? next : Index(-1));
      }
      return;
    }
    for (Index kb = 0; kb * p.k_block < k_end; ++kb)
      visit(kb, std::int64_t(-1), (kb + 1) * p.k_block < k_end ? kb + 1 : Index(-1));
  }

  // Prefetches (into L2) the K and V rows [j, j + count) of a head: its rows are Hkv·P floats apart
  // (2 KiB at 8 × 64), a stride the hardware prefetcher loses at every page.
  static TOKENMIX_ALWAYS_INLINE void prefetch_rows(const AttentionProblem& p, const float* k_head, const float* v_head,
                                                   Index j, Index count) noexcept {
    const Index end = std::min(p.k_len, j + count);
    for (Index r = j; r < end; ++r) {
      for (Index d = 0; d < p.dim; d += 16) __builtin_prefetch(k_head + r * p.kv_heads * p.dim + d, 0, 1);
      for (Index d = 0; d < p.v_dim; d += 16) __builtin_prefetch(v_head + r * p.kv_heads * p.v_dim + d, 0, 1);
    }
  }

  // One tile: queries [i0, i0 + n) of block qb (absolute positions), head h.
  template <int QV>
  static void run_tile(const AttentionProblem& p, Index b, Index h, Index qb, Index i0, Index n,
                       float* scratch) noexcept {
    constexpr Index T = QV * W;  // lanes of a tile row
    const Index P = p.dim, Pv = p.v_dim, hk = h / (p.heads / p.kv_heads);
    float* Qt = scratch;                             // [P, T]
    float* Ot = Qt + P * kTile;                      // [Pv, T]
    float* S = Ot + Pv * kTile;                      // [Bk, T]
    float* m = S + std::max(p.k_block, W) * kTile;   // [T] running max (log2 units)
    float* l = m + kTile;                            // [T] running sum
    float* qpos = l + kTile;                         // [T] query positions (float, exact below 2^24)
    float* pad = qpos + kTile;                       // [2W] select_by_bits on archs without a blend
    // Logits in log2 units: scale·log2(e) folded into Q unless softcap needs natural units first.
    const float q_scale = p.softcap > 0.0f ? p.scale : p.scale * kLog2e;
    const Index kv_row = p.kv_heads * P, v_row = p.kv_heads * Pv;
    const Index q_row = p.heads * P;  // query r + 1 is q_row floats after query r
    const float* q_first = p.q + ((b * p.q_len + (i0 - p.q_offset)) * p.heads + h) * P;
    float* lane_scale = l;  // [T] the logit scale of each lane, before l is initialised
    for (Index lane = 0; lane < T; ++lane) {
      const Index r = std::min(lane, n - 1);  // padding lanes repeat the last query
      lane_scale[lane] = p.row_scale ? q_scale * p.row_scale[(b * p.heads + h) * p.q_len + (i0 + r - p.q_offset)] : q_scale;
      qpos[lane] = static_cast<float>(i0 + r);
    }
    // Qt = the tile's queries transposed (W × W in-register transposes where a lane group is full),
    // each lane scaled.
    for (int v = 0; v < QV; ++v) {
      const bool full = simd::has_square_transpose<Arch> && P % W == 0 && (v + 1) * W <= n;
      if (full) {
        for (Index c = 0; c < P; c += W)
          simd::transpose_square<Arch>(q_first + v * W * q_row + c, q_row, Qt + c * T + v * W, T, W);
      } else {
        for (Index lane = v * W; lane < (v + 1) * W; ++lane) {
          const float* q = q_first + std::min(lane, n - 1) * q_row;
          for (Index d = 0; d < P; ++d) Qt[d * T + lane] = q[d];
        }
      }
      const V scale = simd::load<Arch>(lane_scale + v * W);
      for (Index d = 0; d < P; ++d) simd::store<Arch>(Qt + d * T + v * W, simd::load<Arch>(Qt + d * T + v * W) * scale);
    }
    std::fill(m, m + T, kNegInf);
    std::fill(l, l + T, 0.0f);
    std::fill(Ot, Ot + Pv * T, 0.0f);
    const float* k_head = p.k + (b * p.k_len * p.kv_heads + hk) * P;   // row j at + j·Hkv·P
    const float* v_head = p.v + (b * p.k_len * p.kv_heads + hk) * Pv;  // row j at + j·Hkv·Pv
    const float* bias = p.key_bias ? p.key_bias + (b * p.bias_heads + bias_head(p, h, hk)) * p.k_len : nullptr;
    const Index i_last = i0 + n - 1;

    for_each_key_block(p, h, qb, i_last, [&](Index kb, std::int64_t mask, Index next_kb) TOKENMIX_ALWAYS_INLINE_LAMBDA {
      const Index j0 = kb * p.k_block, kn = std::min(p.k_block, p.k_len - j0);
      // S = K_block · Qt, while the next block's rows are prefetched a few rows per micro-kernel.
      const Index next_j0 = next_kb >= 0 ? next_kb * p.k_block : p.k_len;
      Index j = 0;
      for (; j + 6 <= kn; j += 6) {
        broadcast_fma_rows<QV, 6>(k_head + (j0 + j) * kv_row, kv_row, 1, Qt, P, nullptr, S + j * T);
        prefetch_rows(p, k_head, v_head, next_j0 + j, 6);
      }
      for (; j + 4 <= kn; j += 4) {
        broadcast_fma_rows<QV, 4>(k_head + (j0 + j) * kv_row, kv_row, 1, Qt, P, nullptr, S + j * T);
        prefetch_rows(p, k_head, v_head, next_j0 + j, 4);
      }
      for (; j < kn; ++j) {
        broadcast_fma_rows<QV, 1>(k_head + (j0 + j) * kv_row, kv_row, 1, Qt, P, nullptr, S + j * T);
        prefetch_rows(p, k_head, v_head, next_j0 + j, 1);
      }
      // Logit transforms and masks, then the block's max per lane.
      const bool needs_causal = p.causal && j0 + kn - 1 > i0;
      V mx[QV];
      for (int v = 0; v < QV; ++v) mx[v] = simd::load<Arch>(m + v * W);
      for (Index jj = 0; jj < kn; ++jj) {
        float* s = S + jj * T;
        const std::uint64_t* mask_row = mask >= 0 ? mask_words(*p.layout, mask, jj) : nullptr;
        const V jpos(static_cast<float>(j0 + jj));
        const V bias_j(bias ? bias[j0 + jj] * kLog2e : 0.0f);
        for (int v = 0; v < QV; ++v) {
          V x = simd::load<Arch>(s + v * W);
          if (p.softcap > 0.0f) x = softcap_log2(x, p.softcap);
          if (bias) x = x + bias_j;
          if (needs_causal) x = xsimd::select(jpos > simd::load<Arch>(qpos + v * W), V(kNegInf), x);
          if (mask_row)
            x = simd::select_by_bits<Arch>(lane_bits(mask_row, p.q_block, i0 - qb * p.q_block + v * W), x,
                                           V(kNegInf), pad);
          simd::store<Arch>(s + v * W, x);
          mx[v] = xsimd::max(mx[v], x);
        }
      }
      // Online softmax: α = 2^(m_old - m_new), S ← 2^(S - m_new), l ← α·l + Σ_j S.
      V alpha[QV], shift[QV], sum[QV];
      for (int v = 0; v < QV; ++v) {
        const V m_old = simd::load<Arch>(m + v * W);
        shift[v] = xsimd::select(mx[v] == V(kNegInf), V(0.0f), mx[v]);  // all masked so far: keep 0s
        alpha[v] = simd::exp2<Arch>(m_old - shift[v]);
        simd::store<Arch>(m + v * W, mx[v]);
        sum[v] = V(0.0f);
      }
      for (Index jj = 0; jj < kn; ++jj)
        for (int v = 0; v < QV; ++v) {
          const V e = simd::exp2<Arch>(simd::load<Arch>(S + jj * T + v * W) - shift[v]);
          simd::store<Arch>(S + jj * T + v * W, e);
          sum[v] = sum[v] + e;
        }
      for (int v = 0; v < QV; ++v)
        simd::store<Arch>(l + v * W, simd::fmadd<Arch>(simd::load<Arch>(l + v * W), alpha[v], sum[v]));
      // Ot = α·Ot + Vᵀ·S
      const float* v_block = v_head + j0 * v_row;
      Index d = 0;
      for (; d + 6 <= Pv; d += 6) broadcast_fma_rows<QV, 6>(v_block + d, 1, v_row, S, kn, alpha, Ot + d * T);
      for (; d + 4 <= Pv; d += 4) broadcast_fma_rows<QV, 4>(v_block + d, 1, v_row, S, kn, alpha, Ot + d * T);
      for (; d < Pv; ++d) broadcast_fma_rows<QV, 1>(v_block + d, 1, v_row, S, kn, alpha, Ot + d * T);
    });

    // out = Ot / l (0 where no key was allowed: Ot is 0 there too), lse = (m + log2 l)·ln 2.
    const Index out_row = p.heads * Pv;  // query r + 1 is out_row floats after query r
    float* out_first = p.out + ((b * p.q_len + (i0 - p.q_offset)) * p.heads + h) * Pv;
    for (int v = 0; v < QV; ++v) {
      const Index lanes = std::min(W, n - v * W);
      if (lanes <= 0) break;
      if (simd::has_square_transpose<Arch> && Pv % W == 0 && lanes == W) {
        for (Index c = 0; c < Pv; c += W)
          simd::transpose_square<Arch>(Ot + c * T + v * W, T, out_first + v * W * out_row + c, out_row, W);
        for (Index lane = v * W; lane < (v + 1) * W; ++lane) {
          const V inv(l[lane] > 0.0f ? 1.0f / l[lane] : 0.0f);
          float* o = out_first + lane * out_row;
          for (Index d = 0; d < Pv; d += W) simd::store<Arch>(o + d, simd::load<Arch>(o + d) * inv);
        }
      } else {
        for (Index lane = v * W; lane < v * W + lanes; ++lane) {
          const float inv = l[lane] > 0.0f ? 1.0f / l[lane] : 0.0f;
          float* o = out_first + lane * out_row;
          for (Index d = 0; d < Pv; ++d) o[d] = Ot[d * T + lane] * inv;
        }
      }
    }
    if (p.lse)
      for (Index lane = 0; lane < n; ++lane)
        p.lse[(b * p.heads + h) * p.q_len + (i0 + lane - p.q_offset)] =
            l[lane] > 0.0f ? (m[lane] + std::log2(l[lane])) * kLn2 : kNegInf;
  }

  static Index bias_head(const AttentionProblem& p, Index h, Index hk) {
    return p.bias_heads == p.heads ? h : (p.bias_heads == 1 ? 0 : hk);
  }

  // softcap·tanh(x / softcap)·log2(e), x in natural units; tanh(y) = 1 - 2 / (e^{2y} + 1).
  static TOKENMIX_ALWAYS_INLINE V softcap_log2(V x, float softcap) noexcept {
    const V e = simd::exp<Arch>(x * V(2.0f / softcap));
    return (V(1.0f) - V(2.0f) / (e + V(1.0f))) * V(softcap * kLog2e);
  }

  // The query bits of key row `key_row` of mask m (bit i: query i of the block may attend).
  static const std::uint64_t* mask_words(const BlockLayout& L, std::int64_t m, Index key_row) noexcept {
    return L.masks.data() + (m * L.k_block + key_row) * L.mask_words();
  }
  // Bits [first, first + W) of a row of `bits` bits (zeros past its end), as lane bits.
  static TOKENMIX_ALWAYS_INLINE std::uint32_t lane_bits(const std::uint64_t* words, Index bits, Index first) noexcept {
    if (first >= bits) return 0;
    const Index word = first / 64, shift = first % 64, words_in_row = (bits + 63) / 64;
    std::uint64_t w = words[word] >> shift;
    if (shift + W > 64 && word + 1 < words_in_row) w |= words[word + 1] << (64 - shift);
    return static_cast<std::uint32_t>(w & ((std::uint64_t(1) << W) - 1));
  }

  // The tile micro-kernel: C[r] = c0[r] + Σ_x a(r, x)·M[x] for R rows of QV vectors (rows of C and
  // M T = QV·W floats apart), a(r, x) = a[r·a_row + x·a_col] broadcast; R × QV accumulators in
  // registers. c0 = 0, or C·scale (lane-wise, scale [QV] vectors) when scale is not null.
  //   S = K_block · Qt:        a = K rows (a_row = Hkv·P, a_col = 1), M = Qt, x over P
  //   Ot = α·Ot + Vᵀ·S:        a = V columns (a_row = 1, a_col = Hkv·Pv), M = S, x over the keys
  template <int QV, int R>
  static TOKENMIX_ALWAYS_INLINE void broadcast_fma_rows(const float* a, Index a_row, Index a_col, const float* M,
                                                        Index n, const V* scale, float* C) noexcept {
    constexpr Index T = QV * W;
    V acc[R][QV];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < QV; ++v) acc[r][v] = scale ? simd::load<Arch>(C + r * T + v * W) * scale[v] : V(0.0f);
    for (Index x = 0; x < n; ++x) {
      V m[QV];
#pragma GCC unroll 4
      for (int v = 0; v < QV; ++v) m[v] = simd::load<Arch>(M + x * T + v * W);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const V ar(a[r * a_row + x * a_col]);
#pragma GCC unroll 4
        for (int v = 0; v < QV; ++v) acc[r][v] = simd::fmadd<Arch>(ar, m[v], acc[r][v]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < QV; ++v) simd::store<Arch>(C + r * T + v * W, acc[r][v]);
  }

  // The W-lane vector of <k_r, q> for the `count` key rows at k (rows k_stride apart), 0 past
  // count: per key a vector of partial products (PW = P / W known at compile time: the query in
  // registers, a tree of adds; or 0 for any P), then simd::lane_sums.
  template <int PW>
  static TOKENMIX_ALWAYS_INLINE V key_logits(const float* k, Index k_stride, const float* qs, Index P, Index count,
                                             float* pad) noexcept {
    V part[W];
    if constexpr (PW > 0) {
      V q[PW];
#pragma GCC unroll 8
      for (int c = 0; c < PW; ++c) q[c] = simd::load<Arch>(qs + c * W);
#pragma GCC unroll 16
      for (Index r = 0; r < W; ++r) {
        if (r >= count) {
          part[r] = V(0.0f);
          continue;
        }
        const float* row = k + r * k_stride;
        V prod[PW];
#pragma GCC unroll 8
        for (int c = 0; c < PW; ++c) prod[c] = simd::load<Arch>(row + c * W) * q[c];
#pragma GCC unroll 8
        for (int width = PW / 2; width > 0; width /= 2)
#pragma GCC unroll 8
          for (int c = 0; c < width; ++c) prod[c] = prod[c] + prod[c + width];
        part[r] = prod[0];
      }
    } else {
      for (Index r = 0; r < W; ++r) {
        V acc(0.0f);
        if (r < count) {
          const float* row = k + r * k_stride;
          Index d = 0;
          for (; d + W <= P; d += W) acc = simd::fmadd<Arch>(simd::load<Arch>(row + d), simd::load<Arch>(qs + d), acc);
          if (d < P) acc = simd::fmadd<Arch>(simd::load_partial<Arch>(row + d, P - d, pad), simd::load<Arch>(qs + d), acc);
        }
        part[r] = acc;
      }
    }
    return simd::lane_sums<Arch>(part);
  }

  // o = α·o + Σ_j w[j]·v_j over the kn value rows at v (rows v_stride apart). VW = Pv / W known at
  // compile time (o in 2·VW registers: even and odd keys, independent FMA chains), or 0 for any Pv.
  template <int VW>
  static TOKENMIX_ALWAYS_INLINE void weighted_values(const float* v, Index v_stride, const float* w, Index kn,
                                                     float alpha, Index Pv, float* o, float* pad) noexcept {
    if constexpr (VW > 0) {
      V even[VW], odd[VW];
#pragma GCC unroll 8
      for (int c = 0; c < VW; ++c) even[c] = simd::load<Arch>(o + c * W) * V(alpha), odd[c] = V(0.0f);
      Index j = 0;
      for (; j + 2 <= kn; j += 2) {
        const V w0(w[j]), w1(w[j + 1]);
#pragma GCC unroll 8
        for (int c = 0; c < VW; ++c) {
          even[c] = simd::fmadd<Arch>(w0, simd::load<Arch>(v + j * v_stride + c * W), even[c]);
          odd[c] = simd::fmadd<Arch>(w1, simd::load<Arch>(v + (j + 1) * v_stride + c * W), odd[c]);
        }
      }
      if (j < kn) {
        const V w0(w[j]);
#pragma GCC unroll 8
        for (int c = 0; c < VW; ++c) even[c] = simd::fmadd<Arch>(w0, simd::load<Arch>(v + j * v_stride + c * W), even[c]);
      }
#pragma GCC unroll 8
      for (int c = 0; c < VW; ++c) simd::store<Arch>(o + c * W, even[c] + odd[c]);
    } else {
      for (Index d = 0; d < Pv; d += W) {
        const Index n = std::min(W, Pv - d);
        V acc = simd::load<Arch>(o + d) * V(alpha);
        for (Index j = 0; j < kn; ++j)
          acc = simd::fmadd<Arch>(V(w[j]), simd::load_upto<Arch>(v + j * v_stride + d, n, pad + W), acc);
        simd::store<Arch>(o + d, acc);
      }
    }
  }

  // A single query (decode) for query heads [h0, h1) of batch b. The heads walk the key blocks
  // together (when they share the block list: dense, or a layout with one pattern), head after head
  // within a block, so K and V are read row after row, as stored ([Lk, Hkv, P]): a sequential
  // stream the hardware prefetcher follows, where one head alone would stride 2 KiB per key.
  // Per group of W keys and head: W partial-sum vectors of the dot products over P, one in-register
  // transpose and a tree of adds give the W logits in one vector; the online softmax advances by
  // the group, and o = α·o + Σ_j w_j·v_j runs on vectors of Pv.
  static void decode_rows(const AttentionProblem& p, Index b, Index h0, Index h1, float* scratch) noexcept {
    const Index P = p.dim, Pv = p.v_dim, i = p.q_offset, group = p.heads / p.kv_heads;
    const Index qb = i / p.q_block, bit = i - qb * p.q_block, kb_cap = std::max(p.k_block, W);
    const Index P_pad = padded(P), Pv_pad = padded(Pv), per_head = P_pad + Pv_pad + 2, nh = h1 - h0;
    float* s = scratch + nh * per_head;  // [kb_cap + W] logits, then weights, of one group and head
    float* pad = s + kb_cap + W;         // [2W]
    for (Index h = h0; h < h1; ++h) {    // per head: qs [P_pad] scaled query, o [Pv_pad], m, l
      float* qs = scratch + (h - h0) * per_head;
      const float q_scale = (p.softcap > 0.0f ? p.scale : p.scale * kLog2e) *
                            (p.row_scale ? p.row_scale[b * p.heads + h] : 1.0f);
      const float* q = p.q + (b * p.heads + h) * P;
      std::fill(qs, qs + per_head, 0.0f);
      for (Index d = 0; d < P; ++d) qs[d] = q[d] * q_scale;
      qs[P_pad + Pv_pad] = kNegInf;  // m
    }
    const Index kv_row = p.kv_heads * P, v_row = p.kv_heads * Pv;
    for_each_key_block(p, h0, qb, i, [&](Index kb, std::int64_t mask, Index) TOKENMIX_ALWAYS_INLINE_LAMBDA {
      const Index j0 = kb * p.k_block, kn = std::min(p.k_block, p.k_len - j0);
      // Groups of W keys, every head of the chunk per group: the group's rows of K and V (all kv
      // heads, W·Hkv·P floats) are read in order, then left for the next group.
      for (Index g = 0; g < kn; g += W) {
        const Index count = std::min(W, kn - g), j = j0 + g;  // keys [j, j + count)
        std::uint32_t allowed = 0;  // in range, causal, and the layout's mask, as lane bits
        for (Index r = 0; r < count; ++r) {
          const bool ok = (!p.causal || j + r <= i) && (mask < 0 || p.layout->mask_bit(mask, g + r, bit));
          allowed |= std::uint32_t(ok) << r;
        }
        if (allowed == 0) continue;
        for (Index h = h0; h < h1; ++h) {
          float* qs = scratch + (h - h0) * per_head;
          float* o = qs + P_pad;
          float& m = o[Pv_pad];
          float& l = o[Pv_pad + 1];
          const Index hk = h / group;
          const float* k_rows = p.k + ((b * p.k_len + j) * p.kv_heads + hk) * P;  // key j + r at + r·Hkv·P
          const float* v_rows = p.v + ((b * p.k_len + j) * p.kv_heads + hk) * Pv;
          V x;  // the W logits (log2 units)
          switch (P == P_pad ? P / W : 0) {  // the query in registers for the common head dims
            case 1: x = key_logits<1>(k_rows, kv_row, qs, P, count, pad); break;
            case 2: x = key_logits<2>(k_rows, kv_row, qs, P, count, pad); break;
            case 4: x = key_logits<4>(k_rows, kv_row, qs, P, count, pad); break;
            case 8: x = key_logits<8>(k_rows, kv_row, qs, P, count, pad); break;
            default: x = key_logits<0>(k_rows, kv_row, qs, P, count, pad);
          }
          if (p.softcap > 0.0f) x = softcap_log2(x, p.softcap);
          if (p.key_bias)
            x = x + simd::load_upto<Arch>(p.key_bias + (b * p.bias_heads + bias_head(p, h, hk)) * p.k_len + j, count, pad) *
                        V(kLog2e);
          x = simd::select_by_bits<Arch>(allowed, x, V(kNegInf), pad);
          // Online softmax over the group: m ← max(m, max x), α = 2^(m_old - m), w = 2^(x - m).
          // A group whose allowed keys a key_bias of -inf masks adds nothing (and while m is still
          // -inf, m - max x would be NaN): skipped, as the tiles keep their 0s.
          const float group_max = simd::reduce_max<Arch>(x);
          if (group_max == kNegInf) continue;
          const float mx = std::max(m, group_max);
          const float alpha = std::exp2(m - mx);
          m = mx;
          const V w = simd::exp2<Arch>(x - V(mx));  // -inf lanes give 0
          simd::store<Arch>(s, w);
          l = l * alpha + simd::reduce_add<Arch>(w);
          switch (Pv == Pv_pad ? Pv / W : 0) {  // the output in registers for the common value dims
            case 1: weighted_values<1>(v_rows, v_row, s, count, alpha, Pv, o, pad); break;
            case 2: weighted_values<2>(v_rows, v_row, s, count, alpha, Pv, o, pad); break;
            case 4: weighted_values<4>(v_rows, v_row, s, count, alpha, Pv, o, pad); break;
            case 8: weighted_values<8>(v_rows, v_row, s, count, alpha, Pv, o, pad); break;
            default: weighted_values<0>(v_rows, v_row, s, count, alpha, Pv, o, pad);
          }
        }
      }
    });
    for (Index h = h0; h < h1; ++h) {
      const float* o = scratch + (h - h0) * per_head + P_pad;
      const float m = o[Pv_pad], l = o[Pv_pad + 1];
      float* out = p.out + (b * p.heads + h) * Pv;
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      for (Index d = 0; d < Pv; ++d) out[d] = o[d] * inv;
      if (p.lse) p.lse[b * p.heads + h] = l > 0.0f ? (m + std::log2(l)) * kLn2 : kNegInf;
    }
  }
};

}  // namespace tokenmix::attention::detail
