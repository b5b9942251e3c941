#pragma once
// SIMD kernel of local (sliding-window) attention (the equations are in reference/local_attention.hpp).
//
// Queries in the lanes: a work item is a tile of T = W_lanes consecutive queries of one (batch, head).
// Their keys are one contiguous range [lo, hi) of the sequence (the union of the windows), so with
// the tile's queries transposed once (QT [P, T], pre-scaled) every key costs P broadcast-FMAs into
// ONE vector of T logits (8 keys at a time in registers), every value row P_v broadcast-FMAs into
// the output columns (OT [Pv, T], 8 columns at a time), and the window, bias and softmax are
// vertical vector operations on the [nk, T] logit block (nk <= T + 2W): no horizontal reductions.
// The outputs leave through 16x16 in-register transposes (AVX-512; scalar elsewhere).
// Each lane's arithmetic does not depend on the tiling or the thread, so results are bitwise
// identical for any thread count. Lanes past the sequence end compute on zero queries, never written.

#include <algorithm>
#include <limits>

#include "tokenmix/attention/local_attention_types.hpp"
#include "tokenmix/simd/exp.hpp"
#include "tokenmix/simd/transpose.hpp"

namespace tokenmix::attention::detail {

struct LocalAttentionProblem {
  Index batch, length, q_len, heads, dim, v_dim, window, max_positions;  // L, Lq: queries are tokens L - Lq ..
  bool causal, relu_squared;
  float scale;
  const float* q;             // [B, Lq, H, P]
  const float* k;             // [B, L, H, P]
  const float* v;             // [B, L, H, Pv]
  const Index* positions;     // [B, L] or nullptr
  const float* rel_pos_bias;  // [H, 2M-1] or nullptr
  float* out;                 // [B, Lq, H, Pv]
};

template <class Arch>
struct LocalAttentionKernel {
  using V = simd::vfloat<Arch>;
  static constexpr Index T = static_cast<Index>(simd::lanes<Arch>);  // queries per tile
  static constexpr int KB = 8;                                        // keys / value columns per register block

  static Index tiles(const LocalAttentionProblem& p) { return (p.q_len + T - 1) / T; }
  static Index num_items(const LocalAttentionProblem& p) { return p.batch * p.heads * tiles(p); }
  static Index max_keys(const LocalAttentionProblem& p) {
    return std::min(p.length, T + (p.causal ? 1 : 2) * p.window);
  }
  // QT [P, T], logits [nk, T], OT [Pv, T], the per-lane sums and positions, a pad.
  static Index scratch_floats(const LocalAttentionProblem& p) {
    return (p.dim + max_keys(p) + p.v_dim + 4) * T;
  }

  // Items [first, last) = (b, h, tile) in that order. scratch: scratch_floats(p), 64-byte aligned.
  static void run_items(const LocalAttentionProblem& p, Index first, Index last, float* scratch) noexcept {
    for (Index item = first; item < last; ++item) {
      const Index tile = item % tiles(p), bh = item / tiles(p);
      run_tile(p, bh / p.heads, bh % p.heads, tile * T, scratch);  // query rows tile·T ..
    }
  }

 private:
  // Query rows [r0, r0 + nq) = tokens [i0, i0 + nq), i0 = L - Lq + r0.
  static void run_tile(const LocalAttentionProblem& p, Index b, Index h, Index r0, float* scratch) noexcept {
    const Index L = p.length, H = p.heads, P = p.dim, Pv = p.v_dim, W = p.window;
    const Index nq = std::min(T, p.q_len - r0), i0 = L - p.q_len + r0;
    float* QT = scratch;                 // [P, T]
    float* S = QT + P * T;               // [nk, T] logits, then weights
    float* OT = S + max_keys(p) * T;     // [Pv, T]
    float* lane_pos = OT + Pv * T;       // [T] positions of the queries (as float: exact below 2^24)
    float* pad = lane_pos + T;           // [2T]
    const Index row_q = H * P, row_v = H * Pv;  // floats between consecutive tokens

    // QT[p][l] = scale·q[i0 + l][p] (0 for lanes past L).
    const float* q = p.q + ((b * p.q_len + r0) * H + h) * P;
    for (Index d = 0; d < P; ++d)
      for (Index l = 0; l < T; ++l) QT[d * T + l] = l < nq ? p.scale * q[l * row_q + d] : 0.0f;

    const Index lo = std::max<Index>(0, i0 - W);
    const Index hi = std::min(L, i0 + nq + (p.causal ? 0 : W));
    const Index nk = hi - lo;

    // Logits: S[j - lo] = QT · k_j for the keys of the tile's windows.
    const float* k = p.k + ((b * L + lo) * H + h) * P;
    for (Index j0 = 0; j0 < nk; j0 += KB)
      dispatch_block(static_cast<int>(std::min<Index>(KB, nk - j0)), [&](auto NK) {
        logits_block<decltype(NK)::value>(QT, P, k + j0 * row_q, row_q, S + j0 * T);
      });

    // Window (and bias): lane l (query i = i0 + l) keeps key j iff i - W <= j <= i (+ W).
    alignas(64) float iota[64];
    for (Index l = 0; l < T; ++l) iota[l] = static_cast<float>(i0 + l);
    const V query_index = simd::load<Arch>(iota);
    const float* table = p.rel_pos_bias ? p.rel_pos_bias + h * (2 * p.max_positions - 1) : nullptr;
    const Index* pos = p.positions ? p.positions + b * L : nullptr;
    const float neg_inf = -std::numeric_limits<float>::infinity();
    V row_max(neg_inf);
    for (Index j = 0; j < nk; ++j) {
      const Index key = lo + j;
      const auto keep = (query_index <= V(static_cast<float>(key + W))) &
                        (query_index >= V(static_cast<float>(p.causal ? key : key - W))) &
                        (query_index < V(static_cast<float>(i0 + nq)));
      V s = simd::load<Arch>(S + j * T);
      if (table) {
        for (Index l = 0; l < T; ++l) {
          const Index i = std::min(i0 + l, L - 1);
          pad[l] = table[rel_pos_index(pos ? pos[i] : i, pos ? pos[key] : key, p.max_positions)];
        }
        s = s + simd::load<Arch>(pad);
      }
      if (p.relu_squared) {
        const V r = xsimd::max(s, V(0.0f));
        s = xsimd::select(keep, r * r, V(0.0f));
      } else {
        s = xsimd::select(keep, s, V(neg_inf));
        row_max = xsimd::max(row_max, s);
      }
      simd::store<Arch>(S + j * T, s);
    }
    V inv_sum(1.0f);
    if (!p.relu_squared) {
      // A lane whose every kept logit is -inf (a rel_pos_bias of -inf over its whole window) has
      // sum 0: 1/0 = inf times the 0 weighted sum gives NaN, as the oracle's and PyTorch's softmax.
      const V m = xsimd::select(row_max == V(neg_inf), V(0.0f), row_max);
      V sum(0.0f);
      for (Index j = 0; j < nk; ++j) {
        const V e = simd::exp<Arch>(simd::load<Arch>(S + j * T) - m);  // exp(-inf) = 0
        sum = sum + e;
        simd::store<Arch>(S + j * T, e);
      }
      inv_sum = V(1.0f) / sum;
    }

    // OT[c] = sum_j S[j]·v_j[c], 8 columns at a time, then normalised.
    const float* v = p.v + ((b * L + lo) * H + h) * Pv;
    for (Index c0 = 0; c0 < Pv; c0 += KB)
      dispatch_block(static_cast<int>(std::min<Index>(KB, Pv - c0)), [&](auto NC) {
        values_block<decltype(NC)::value>(S, nk, v + c0, row_v, inv_sum, OT + c0 * T);
      });

    // out[i0 + l][c] = OT[c][l] for l < nq.
    float* out = p.out + ((b * p.q_len + r0) * H + h) * Pv;
    Index c0 = 0;
    if constexpr (simd::has_square_transpose<Arch>)
      for (; c0 + T <= Pv; c0 += T) simd::transpose_square<Arch>(OT + c0 * T, T, out + c0, row_v, nq);
    for (; c0 < Pv; ++c0)
      for (Index l = 0; l < nq; ++l) out[l * row_v + c0] = OT[c0 * T + l];
  }

  template <class F>
  static TOKENMIX_ALWAYS_INLINE void dispatch_block(int n, F&& f) {
    switch (n) {
      case 8: return f(std::integral_constant<int, 8>{});
      case 7: return f(std::integral_constant<int, 7>{});
      case 6: return f(std::integral_constant<int, 6>{});
      case 5: return f(std::integral_constant<int, 5>{});
      case 4: return f(std::integral_constant<int, 4>{});
      case 3: return f(std::integral_constant<int, 3>{});
      case 2: return f(std::integral_constant<int, 2>{});
      default: return f(std::integral_constant<int, 1>{});
    }
  }

  // out[jj] = sum_d QT[d]·k[jj·row + d], jj < NK: NK keys' logits for the tile's T queries.
  template <int NK>
  static void logits_block(const float* QT, Index P, const float* k, Index row, float* out) noexcept {
    V acc[NK];
    for (int jj = 0; jj < NK; ++jj) acc[jj] = V(0.0f);
    for (Index d = 0; d < P; ++d) {
      const V qd = simd::load<Arch>(QT + d * T);
      for (int jj = 0; jj < NK; ++jj) acc[jj] = simd::fmadd<Arch>(qd, V(k[jj * row + d]), acc[jj]);
    }
    for (int jj = 0; jj < NK; ++jj) simd::store<Arch>(out + jj * T, acc[jj]);
  }

  // OT[cc] = inv_sum·sum_j S[j]·v[j·row + cc], cc < NC: NC output columns for the tile's queries.
  template <int NC>
  static void values_block(const float* S, Index nk, const float* v, Index row, V inv_sum, float* OT) noexcept {
    V acc[NC];
    for (int cc = 0; cc < NC; ++cc) acc[cc] = V(0.0f);
    for (Index j = 0; j < nk; ++j) {
      const V a = simd::load<Arch>(S + j * T);
      for (int cc = 0; cc < NC; ++cc) acc[cc] = simd::fmadd<Arch>(a, V(v[j * row + cc]), acc[cc]);
    }
    for (int cc = 0; cc < NC; ++cc) simd::store<Arch>(OT + cc * T, acc[cc] * inv_sum);
  }
};

}  // namespace tokenmix::attention::detail
