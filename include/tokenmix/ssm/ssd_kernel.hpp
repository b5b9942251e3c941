#pragma once
// SIMD kernels of the Mamba-2 SSD operator (equations: reference/ssd.hpp): the recurrent form (also
// the decode step) and the chunked form (SSD). Work item = (batch b, head h), item = b·H + h; the
// arithmetic of an item does not depend on which thread runs it or which items share its range, so
// results are bitwise identical for any thread count.
//
// dt of a head (SsdInputs::head_dt): dt[b, t, h] is strided by H in memory; a block of tokens is
// gathered into scratch, then bias, simd::softplus (threshold 20), the clamp and exp(dt·A) run
// vectorized over tokens (one exp per (token, head)).
//
// Recurrent (SsdRecurrentKernel), vectorized over N: the state [P, N] has N contiguous, so a state
// row is NV = ceil(N / W) vectors (zero-padded when W does not divide N: padded lanes stay 0 and add
// 0 to every sum). Tokens go in blocks of kTokens; for each block, R rows of the state (R·NV
// vectors, R = 4 for NV <= 4, 2 for NV <= 8 on AVX-512) stay in registers while the block's tokens
// pass: per token, s = fmadd(dA, s, (dt·x[p])·B_t) and y_p += s·C_t (lane-wise partial sums).
// B_t / C_t rows are shared by the R rows (loaded once per token). The W lane-wise partial sums of
// W rows p0..p0+W-1 of one token are reduced at once by a transpose-add (xsimd::haddp) into the
// vector y[p0..p0+W-1], then the D skip, the gate and the store run vectorized over p.
// Larger N (NV above the register budget) keeps the state in L1 instead (R = 1, same arithmetic).
// A seq_idx boundary at token t zeroes the state and its decay, so the update gives s = (dt·x)·B
// exactly (no 0·s: an inf or NaN of the previous sequence does not leak into the next).
// The state works in place in final_state when W divides N (the decode step then reads and writes
// the state once), else in a padded scratch copy.
//
// Chunked (SsdChunkedKernel), ssd_minimal_discrete generalised (partial last chunk, initial state,
// seq_idx, D, z): per chunk of Q tokens [t0, t0 + Qc) and head,
//   Acum[l] = sum_{k <= l} dt_k·A         (double: the differences below stay exact to float)
//   CB[l][s] = C_l · B_s                   (Q x Q over N; one per group, shared by the group's heads)
//   M[l][s]  = CB[l][s]·exp(Acum[l] - Acum[s])·dt_s   for s <= l in l's sequence, else 0
//   out[l]   = exp(Acum[l])·(C_l · S_in) + sum_s M[l][s]·x_s      (S_in: state entering the chunk;
//              the first term only for tokens of the sequence S_in belongs to)
//   S_out    = exp(Acum[Qc-1])·S_in + sum_s exp(Acum[Qc-1] - Acum[s])·dt_s·x_s ⊗ B_s
//              (the first term only if no boundary inside the chunk; s only in the last sequence)
// Every exponent is a difference Acum[l] - Acum[s] with s <= l (or Acum[l] alone): never exp(-Acum).
// The three products run through one register-blocked micro-kernel (MR x NV·W accumulators, A
// operand broadcast with any row / k stride, B operand rows of contiguous vectors): CB (K = N),
// C·S_in (K = N) + M·X (K = Qc, causal: the rows before a tile of rows l0.., then the tile's lower
// triangle), and the state update (K = Qc). The state is kept transposed, S[n][p] (p contiguous), so that it is the B operand
// of C·S_in and the output of the update; it is transposed from / to [P, N] once per call.
// Items are processed in runs of consecutive heads of one batch element: chunk by chunk, every head
// of the run advances one chunk (its state in scratch), CB computed once per group and chunk; the
// token rows of all heads are consumed together (a long sequence streams through the cache once).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "tokenmix/core/tensor.hpp"
#include "tokenmix/simd/activations.hpp"
#include "tokenmix/simd/transpose.hpp"

#if defined(__GNUC__) || defined(__clang__)
#define TOKENMIX_SSD_NOINLINE __attribute__((noinline))
#else
#define TOKENMIX_SSD_NOINLINE
#endif

namespace tokenmix::ssm::detail {

// One validated call as raw pointers (row-major, token-major). The decode step is length 1 with
// initial_state = final_state = the state.
struct SsdProblem {
  Index batch, length, heads, head_dim, state, groups;
  const float* x;        // [B, L, H, P]
  const float* dt;       // [B, L, H]
  const float* A;        // [H]
  const float* B;        // [B, L, G, N]
  const float* C;        // [B, L, G, N]
  const float* D;        // [H] or [H·P] (D_per_channel), or nullptr
  bool D_per_channel;
  const float* z;        // [B, L, H, P] or nullptr
  const float* dt_bias;  // [H] or nullptr
  bool dt_softplus;
  bool dt_clamp;
  float dt_min, dt_max;
  const float* initial_state;   // [B, H, P, N] or nullptr (may equal final_state)
  const std::int32_t* seq_idx;  // [B, L] or nullptr
  float* out;                   // [B, L, H, P]
  float* final_state;           // [B, H, P, N] or nullptr
  // Generalisations for linear attention (linear/simple_gla.hpp builds these problems; ssm::ssd never
  // sets them): dt == nullptr means dt = 1 for every token (no bias, softplus or clamp);
  // log_decay [B, L, H] (or nullptr) replaces dt·A as the per-token decay exponent, dt then only
  // weighting the input.
  const float* log_decay = nullptr;
};

template <class Arch>
struct SsdCommon {
  using V = simd::vfloat<Arch>;
  static constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  static Index round_up(Index n, Index m) { return (n + m - 1) / m * m; }

  // dt after bias, softplus and clamp for tokens [t0, t0 + n) of head h of batch b into dt_out,
  // and, if dA_out is not null, exp(dt·A[h]) into dA_out. Both hold round_up(n, W) floats.
  static void head_dt(const SsdProblem& p, Index b, Index h, Index t0, Index n, float* dt_out,
                      float* dA_out) noexcept {
    const Index n_pad = round_up(n, W), token0 = (b * p.length + t0) * p.heads + h;
    for (Index i = 0; i < n; ++i) dt_out[i] = p.dt ? p.dt[token0 + i * p.heads] : 1.0f;
    for (Index i = n; i < n_pad; ++i) dt_out[i] = 0.0f;
    if (dA_out && p.log_decay) {  // the exponents, exponentiated below
      for (Index i = 0; i < n; ++i) dA_out[i] = p.log_decay[token0 + i * p.heads];
      for (Index i = n; i < n_pad; ++i) dA_out[i] = 0.0f;
    }
    const V bias(p.dt_bias ? p.dt_bias[h] : 0.0f), a(p.log_decay ? 0.0f : p.A[h]);
    for (Index i = 0; i < n_pad; i += W) {
      V d = simd::load<Arch>(dt_out + i);
      if (p.dt) {
        if (p.dt_bias) d = d + bias;
        if (p.dt_softplus) d = simd::softplus<Arch>(d);
        if (p.dt_clamp) d = simd::detail::clamp_keep_nan<Arch>(d, p.dt_min, p.dt_max);
        simd::store<Arch>(dt_out + i, d);
      }
      if (dA_out) simd::store<Arch>(dA_out + i, simd::exp<Arch>(p.log_decay ? simd::load<Arch>(dA_out + i) : d * a));
    }
  }

  // out[b, t, h, p0 .. p0 + width) = (y + D·x) · silu(z) for one token row (width <= W).
  static TOKENMIX_ALWAYS_INLINE void finish_row(const SsdProblem& p, Index row, Index h, Index p0, Index width, V y,
                                                float* pad) noexcept {
    // row: offset of (b, t, h, 0) in [B, L, H, P]
    if (p.D) {
      const V xv = simd::load_upto<Arch>(p.x + row + p0, width, pad);
      const V dv = p.D_per_channel ? simd::load_upto<Arch>(p.D + h * p.head_dim + p0, width, pad + W) : V(p.D[h]);
      y = simd::fmadd<Arch>(xv, dv, y);
    }
    if (p.z) y = y * simd::silu<Arch>(simd::load_upto<Arch>(p.z + row + p0, width, pad + 2 * W));
    simd::store_upto<Arch>(p.out + row + p0, y, width, pad + 3 * W);
  }
};

// ---------------------------------------------------------------------------------------------
// Recurrent form (and the decode step).

template <class Arch>
struct SsdRecurrentKernel {
  using Common = SsdCommon<Arch>;
  using V = simd::vfloat<Arch>;
  static constexpr Index W = Common::W;
  static constexpr Index kTokens = 16;  // tokens per block (state rows stay in registers across them)
  static constexpr int kMaxRegisterNV = simd::is_avx512<Arch> ? 8 : 4;

  static Index num_items(const SsdProblem& p) { return p.batch * p.heads; }
  static Index padded_state(const SsdProblem& p) { return Common::round_up(p.state, W); }
  // Floats of scratch one thread needs (64-byte aligned).
  static Index scratch_floats(const SsdProblem& p) {
    const Index np = padded_state(p);
    return 3 * kTokens                 // dt, dA, reset
           + 2 * kTokens * np          // padded B, C rows
           + kTokens * W * W           // lane-wise partial sums of y
           + p.head_dim * np           // padded state
           + 8 * W;                    // pads
  }

  static void run_items(const SsdProblem& p, Index first, Index last, float* scratch) noexcept {
    for (Index item = first; item < last; ++item) run_item(p, item / p.heads, item % p.heads, scratch);
  }

 private:
  struct Block {
    Index T;             // tokens in the block
    const float* dt;     // [T]
    const float* dA;     // [T]
    const float* reset;  // [T] nonzero where the state restarts (seq_idx boundary)
    const float* Bt;     // [T] rows ld apart (padded to NV·W)
    const float* Ct;
    Index ld;
    const float* x;      // x[b, t0, h, 0]; token rows ldx apart
    Index ldx;
    float* y;            // [T][W][W] partial sums: y[t·W·W + r·W + lane]
  };

  static void run_item(const SsdProblem& p, Index b, Index h, float* scratch) noexcept {
    const Index L = p.length, H = p.heads, P = p.head_dim, N = p.state, G = p.groups, NP = padded_state(p);
    const Index g = h / (H / G);
    float* dt = scratch;                 // [kTokens]
    float* dA = dt + kTokens;            // [kTokens]
    float* reset = dA + kTokens;         // [kTokens]
    float* Bpad = reset + kTokens;       // [kTokens, NP]
    float* Cpad = Bpad + kTokens * NP;   // [kTokens, NP]
    float* ysum = Cpad + kTokens * NP;   // [kTokens, W, W]
    float* spad = ysum + kTokens * W * W;  // [P, NP]
    float* pad = spad + P * NP;          // [8, W]

    // Working state S [P, ldS]: final_state itself when rows need no padding, else spad.
    const bool direct = p.final_state && NP == N;
    float* S = direct ? p.final_state + (b * H + h) * P * N : spad;
    const Index ldS = direct ? N : NP;
    const float* init = p.initial_state ? p.initial_state + (b * H + h) * P * N : nullptr;
    if (!direct || init != S) {
      for (Index r = 0; r < P; ++r) {
        for (Index n = 0; n < N; ++n) S[r * ldS + n] = init ? init[r * N + n] : 0.0f;
        for (Index n = N; n < ldS; ++n) S[r * ldS + n] = 0.0f;
      }
    }

    for (Index t0 = 0; t0 < L; t0 += kTokens) {
      const Index T = std::min(kTokens, L - t0);
      Common::head_dt(p, b, h, t0, T, dt, dA);
      for (Index t = 0; t < T; ++t) {
        const Index tt = t0 + t;
        reset[t] = (p.seq_idx && tt > 0 && p.seq_idx[b * L + tt] != p.seq_idx[b * L + tt - 1]) ? 1.0f : 0.0f;
        if (reset[t] != 0.0f) dA[t] = 0.0f;  // the state restarts from zero (see rows_in_registers)
      }
      const float* Bsrc = p.B + ((b * L + t0) * G + g) * N;  // rows G·N apart
      const float* Csrc = p.C + ((b * L + t0) * G + g) * N;
      Block blk{T, dt, dA, reset, Bsrc, Csrc, G * N, p.x + ((b * L + t0) * H + h) * P, H * P, ysum};
      if (NP != N) {  // zero-padded copies so every row is NV whole vectors
        for (Index t = 0; t < T; ++t) {
          for (Index n = 0; n < N; ++n) Bpad[t * NP + n] = Bsrc[t * G * N + n], Cpad[t * NP + n] = Csrc[t * G * N + n];
          for (Index n = N; n < NP; ++n) Bpad[t * NP + n] = 0.0f, Cpad[t * NP + n] = 0.0f;
        }
        blk.Bt = Bpad, blk.Ct = Cpad, blk.ld = NP;
      }
      for (Index p0 = 0; p0 < P; p0 += W) {
        const Index rows = std::min(W, P - p0);
        run_rows_block(NP / W, blk, S + p0 * ldS, ldS, p0, rows);
        if (rows < W)
          for (Index t = 0; t < T; ++t) std::fill(ysum + t * W * W + rows * W, ysum + (t + 1) * W * W, 0.0f);
        for (Index t = 0; t < T; ++t)
          Common::finish_row(p, ((b * L + t0 + t) * H + h) * P, h, p0, rows, row_sums(ysum + t * W * W), pad);
      }
    }
    if (p.final_state && !direct) {
      float* dst = p.final_state + (b * H + h) * P * N;
      for (Index r = 0; r < P; ++r)
        for (Index n = 0; n < N; ++n) dst[r * N + n] = S[r * ldS + n];
    }
  }

  // The vector of the W row sums of m [W, W] (row-major): result[k] = sum_j m[k·W + j]. A fixed
  // tree of adds, so the result does not depend on where the rows came from.
  static TOKENMIX_ALWAYS_INLINE V row_sums(const float* m) noexcept {
#if defined(__AVX512F__)
    if constexpr (simd::is_avx512<Arch>) {
      // (xsimd 8.1's haddp for avx512f returns its sums in the lane order 0 1 4 5 2 3 6 7 ..., so
      // this is written out.) Level 1: row k and row k + 8 folded to 8 partials each.
      __m512 s1[8], s2[4];
      for (int k = 0; k < 8; ++k) {
        const __m512 a = _mm512_loadu_ps(m + k * 16), b = _mm512_loadu_ps(m + (k + 8) * 16);
        s1[k] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
      }
      // Level 2: 4 partials per row; s2[k] holds rows k, k + 8, k + 4, k + 12 in its 128-bit quarters.
      for (int k = 0; k < 4; ++k)
        s2[k] = _mm512_add_ps(_mm512_shuffle_f32x4(s1[k], s1[k + 4], _MM_SHUFFLE(2, 0, 2, 0)),
                              _mm512_shuffle_f32x4(s1[k], s1[k + 4], _MM_SHUFFLE(3, 1, 3, 1)));
      // Level 3: a 4 x 4 transpose-add inside each quarter; quarter q, element i = row of s2[i].
      const __m512 v0 = _mm512_add_ps(_mm512_unpacklo_ps(s2[0], s2[1]), _mm512_unpackhi_ps(s2[0], s2[1]));
      const __m512 v1 = _mm512_add_ps(_mm512_unpacklo_ps(s2[2], s2[3]), _mm512_unpackhi_ps(s2[2], s2[3]));
      const __m512 sum = _mm512_add_ps(_mm512_shuffle_ps(v0, v1, _MM_SHUFFLE(1, 0, 1, 0)),
                                       _mm512_shuffle_ps(v0, v1, _MM_SHUFFLE(3, 2, 3, 2)));
      return _mm512_shuffle_f32x4(sum, sum, _MM_SHUFFLE(3, 1, 2, 0));  // quarters: rows 0-3, 4-7, 8-11, 12-15
    } else
#endif
    {
      V rows[W];
      for (Index r = 0; r < W; ++r) rows[r] = simd::load<Arch>(m + r * W);
      return xsimd::haddp(rows);
    }
  }

  // Rows p0 .. p0 + rows of the state (S: row p0, rows ldS apart) through the block's tokens.
  static void run_rows_block(Index NV, const Block& blk, float* S, Index ldS, Index p0, Index rows) noexcept {
    switch (NV) {
      case 1: return rows_nv<1>(blk, S, ldS, p0, rows);
      case 2: return rows_nv<2>(blk, S, ldS, p0, rows);
      case 3: return rows_nv<3>(blk, S, ldS, p0, rows);
      case 4: return rows_nv<4>(blk, S, ldS, p0, rows);
      default: break;
    }
    if constexpr (kMaxRegisterNV >= 8) {
      switch (NV) {
        case 5: return rows_nv<5>(blk, S, ldS, p0, rows);
        case 6: return rows_nv<6>(blk, S, ldS, p0, rows);
        case 7: return rows_nv<7>(blk, S, ldS, p0, rows);
        case 8: return rows_nv<8>(blk, S, ldS, p0, rows);
        default: break;
      }
    }
    for (Index r = 0; r < rows; ++r) rows_in_memory(NV, blk, S + r * ldS, p0 + r, r);
  }

  template <int NV>
  static void rows_nv(const Block& blk, float* S, Index ldS, Index p0, Index rows) noexcept {
    constexpr int R = NV <= 4 && simd::is_avx512<Arch> ? 4 : 2;
    Index r = 0;
    for (; r + R <= rows; r += R) rows_in_registers<NV, R>(blk, S + r * ldS, ldS, p0 + r, r);
    for (; r < rows; ++r) rows_in_registers<NV, 1>(blk, S + r * ldS, ldS, p0 + r, r);
  }

  // Token t_end of the segment starting at t: the next token that restarts the state (or T).
  static TOKENMIX_ALWAYS_INLINE Index segment_end(const Block& blk, Index t) noexcept {
    Index e = t + 1;
    while (e < blk.T && blk.reset[e] == 0.0f) ++e;
    return e;
  }

  // R state rows of NV vectors in registers across the block's tokens. p: first row's head channel;
  // r0: its index within the W-row group (slot of its partial sums). A token that restarts the
  // state zeroes the registers before its update, whose decay run_item has set to 0:
  // fmadd(0, 0, (dt·x)·B) = (dt·x)·B exactly. Not inlined: as its own function (pointers in
  // locals, no branch inside the token loop) GCC 12 keeps the R·NV state vectors in registers.
  template <int NV, int R>
  static TOKENMIX_SSD_NOINLINE void rows_in_registers(const Block& blk, float* S, Index ldS, Index p,
                                                     Index r0) noexcept {
    const Index T = blk.T, ld = blk.ld, ldx = blk.ldx;
    const float* TOKENMIX_RESTRICT Bb = blk.Bt;
    const float* TOKENMIX_RESTRICT Cb = blk.Ct;
    const float* TOKENMIX_RESTRICT xb = blk.x + p;
    const float* TOKENMIX_RESTRICT dtb = blk.dt;
    const float* TOKENMIX_RESTRICT dAb = blk.dA;
    float* TOKENMIX_RESTRICT yb = blk.y + r0 * W;
    V s[R][NV];
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NV; ++v) s[r][v] = simd::load<Arch>(S + r * ldS + v * W);
    for (Index t = 0; t < T;) {
      const Index t_end = segment_end(blk, t);
      if (blk.reset[t] != 0.0f)
        for (int r = 0; r < R; ++r)
          for (int v = 0; v < NV; ++v) s[r][v] = V(0.0f);
      for (; t < t_end; ++t) {
        const float* Bt = Bb + t * ld;
        const float* Ct = Cb + t * ld;
        const V a(dAb[t]);
        V dtx[R], y[2][R];  // y: partial sums over even and odd vectors (two shorter FMA chains)
        for (int r = 0; r < R; ++r) dtx[r] = V(dtb[t] * xb[t * ldx + r]), y[0][r] = y[1][r] = V(0.0f);
        for (int v = 0; v < NV; ++v) {
          const V Bv = simd::load<Arch>(Bt + v * W);
          for (int r = 0; r < R; ++r) s[r][v] = simd::fmadd<Arch>(a, s[r][v], dtx[r] * Bv);
        }
        for (int v = 0; v < NV; ++v) {
          const V Cv = simd::load<Arch>(Ct + v * W);
          for (int r = 0; r < R; ++r) y[v & 1][r] = simd::fmadd<Arch>(s[r][v], Cv, y[v & 1][r]);
        }
        for (int r = 0; r < R; ++r) simd::store<Arch>(yb + t * W * W + r * W, y[0][r] + y[1][r]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NV; ++v) simd::store<Arch>(S + r * ldS + v * W, s[r][v]);
  }

  // One state row of NV vectors kept in memory (L1): the same arithmetic, for large N.
  static void rows_in_memory(Index NV, const Block& blk, float* S, Index p, Index r0) noexcept {
    for (Index t = 0; t < blk.T; ++t) {
      const float* Bt = blk.Bt + t * blk.ld;
      const float* Ct = blk.Ct + t * blk.ld;
      const V dtx(blk.dt[t] * blk.x[t * blk.ldx + p]), a(blk.dA[t]);
      if (blk.reset[t] != 0.0f)
        for (Index v = 0; v < NV; ++v) simd::store<Arch>(S + v * W, V(0.0f));
      V y[2] = {V(0.0f), V(0.0f)};
      for (Index v = 0; v < NV; ++v) {
        const V sv = simd::fmadd<Arch>(a, simd::load<Arch>(S + v * W), dtx * simd::load<Arch>(Bt + v * W));
        simd::store<Arch>(S + v * W, sv);
        y[v & 1] = simd::fmadd<Arch>(sv, simd::load<Arch>(Ct + v * W), y[v & 1]);
      }
      simd::store<Arch>(blk.y + t * W * W + r0 * W, y[0] + y[1]);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Chunked form (SSD).

template <class Arch>
struct SsdChunkedKernel {
  using Common = SsdCommon<Arch>;
  using V = simd::vfloat<Arch>;
  static constexpr Index W = Common::W;
  // Micro-kernel tile: MR rows x NVMAX vectors. AVX-512 (32 registers): 6 x 4 = 24 accumulators +
  // 4 B-operand vectors + 1 broadcast; 16-register archs: 6 x 2 = 12 + 2 + 1.
  static constexpr int MR = 6;
  static constexpr int NVMAX = simd::is_avx512<Arch> ? 4 : 2;

  static Index num_items(const SsdProblem& p) { return p.batch * p.heads; }

  struct Dims {
    Index Q, QP, PP, NP;  // chunk, chunk padded to W, P padded to W, N (unpadded: rows of S)
  };
  static Dims dims(const SsdProblem& p, Index chunk) {
    return {chunk, Common::round_up(chunk, W), Common::round_up(p.head_dim, W), p.state};
  }
  static Index scratch_floats(const SsdProblem& p, Index chunk) {
    const Dims d = dims(p, chunk);
    return p.heads * d.NP * d.PP  // S of every head of a run, [N, PP] each
           + d.NP * d.QP                  // BT [N, QP]
           + 2 * d.Q * d.QP               // CB, M [Q, QP]
           + 2 * d.Q * d.PP               // X (padded copy), Xw [Q, PP]
           + 2 * d.Q                      // Acum (double)
           + 6 * d.QP                     // dt, e, w, diff row; segment starts (Index)
           + MR * NVMAX * W               // one output tile
           + 8 * W                        // pads
           + d.Q + d.QP + W;              // decay row (constant decay per head)
  }

  // Items [first, last) in runs of consecutive heads of one (b, g).
  static void run_items(const SsdProblem& p, Index chunk, Index first, Index last, float* scratch) noexcept {
    for (Index item = first; item < last;) {
      const Index b = item / p.heads, h = item % p.heads;
      const Index run_end = std::min(last, (b + 1) * p.heads);
      run(p, dims(p, chunk), b, h, run_end - item, scratch);
      item = run_end;
    }
  }

  // The micro-kernel and its dispatch are public for bench/ssm/ssd_bench.cpp (BM_SSD_ChunkedMatmuls).
  template <int I>
  using ic = std::integral_constant<int, I>;

  // f(ic<R>, ic<NV>) for runtime rows in [1, MR] and nv in [1, NVMAX].
  template <int R, int NV, class F>
  static TOKENMIX_ALWAYS_INLINE void dispatch_nv(int nv, F&& f) {
    if constexpr (NV > 1) {
      if (nv < NV) return dispatch_nv<R, NV - 1>(nv, f);
    }
    f(ic<R>{}, ic<NV>{});
  }
  template <int R, int NVM = NVMAX, class F>
  static TOKENMIX_ALWAYS_INLINE void dispatch(int rows, int nv, F&& f) {
    if constexpr (R > 1) {
      if (rows < R) return dispatch<R - 1, NVM>(rows, nv, f);
    }
    dispatch_nv<R, NVM>(nv, f);
  }

  // One operand pair of a tile product: row r of A is K consecutive floats at a + r·a_rs; row k of
  // B is NV·W floats at b + k·ldb. K = 0: no product.
  struct Operands {
    const float* a;
    Index a_rs;
    const float* b;
    Index ldb;
    Index K;
  };
  static constexpr Operands kNone{nullptr, 0, nullptr, 0, 0};

  // One R x NV·W output tile, accumulators in registers from init to store:
  //   c  = init ? init_scale·init[r][v] : 0                        (init rows ldd apart; may be dst)
  //   c += A1·B1;  then row r times row_scale[r] (exactly 0 where row_scale[r] < 0), if row_scale
  //   c += A2·B2
  //   c += the lower triangle of the R x R block A3·B3 (row r sums k <= r: a row never reads the
  //        operands of later tokens, so a NaN or inf there cannot reach it through a 0 weight), if Lower
  //   dst[r][v] = c                                                  (rows ldd apart)
  // The operands by reference: by value (40 bytes each, on the stack) GCC 12 built them with scalar
  // stores and copied them with 32-byte loads, a failed store-to-load forwarding per call (~3% of
  // a Lightning chunk).
  // Not inlined on purpose: inlined into the chunk's loops GCC 12 kept the accumulators on the stack
  // (measured 3x slower); as its own function they live in registers, and with the init and the
  // store inside it (instead of an accumulator array passed between several calls) the block
  // products of a Lightning chunk went from 0.53 to 0.63 of the FMA peak.
  template <int R, int NV, bool Lower>
  static TOKENMIX_SSD_NOINLINE void tile(float* dst, Index ldd, const float* init, float init_scale,
                                         const Operands& p1, const float* row_scale, const Operands& p2,
                                         const Operands& p3) noexcept {
    V c[R][NV];
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NV; ++v)
        c[r][v] = init ? V(init_scale) * simd::load<Arch>(init + r * ldd + v * W) : V(0.0f);
    accumulate<R, NV>(c, p1);
    if (row_scale)
      for (int r = 0; r < R; ++r) {
        const float scale = row_scale[r];
        for (int v = 0; v < NV; ++v) c[r][v] = scale < 0.0f ? V(0.0f) : c[r][v] * V(scale);
      }
    accumulate<R, NV>(c, p2);
    if constexpr (Lower)
      for (int k = 0; k < R; ++k) {
        V bv[NV];
        for (int v = 0; v < NV; ++v) bv[v] = simd::load<Arch>(p3.b + k * p3.ldb + v * W);
        for (int r = k; r < R; ++r) {
          const V av(p3.a[r * p3.a_rs + k]);
          for (int v = 0; v < NV; ++v) c[r][v] = simd::fmadd<Arch>(av, bv[v], c[r][v]);
        }
      }
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NV; ++v) simd::store<Arch>(dst + r * ldd + v * W, c[r][v]);
  }

  // CB [Qc, QP]: CB[l][s] = C_l · B_s for s < round_up(l + 1, W), the lower triangle by whole
  // vectors (C: Qc rows of N floats c_rs apart; BT [N, QP] = Bᵀ). Its rows are short (one vector
  // for l < W), so its tiles take more rows than the MR x NVMAX of the other products: AVX-512
  // 8 rows x up to 3 vectors (24 accumulators). Measured at Q 32, N 64 on Zen 5: 94 -> 117 GFLOP/s.
  static constexpr int kCbRows = simd::is_avx512<Arch> ? 8 : MR;
  static constexpr int kCbVectors = simd::is_avx512<Arch> ? 3 : NVMAX;
  static void cb_tiles(Index Qc, Index N, Index QP, const float* C, Index c_rs, const float* BT, float* CB) noexcept {
    for (Index l0 = 0; l0 < Qc; l0 += kCbRows) {
      const int rows = static_cast<int>(std::min<Index>(kCbRows, Qc - l0));
      const Index vecs = (l0 + rows + W - 1) / W;  // columns s < l0 + rows suffice (s <= l)
      for (Index c0 = 0; c0 < vecs; c0 += kCbVectors) {
        const int nv = static_cast<int>(std::min<Index>(kCbVectors, vecs - c0));
        dispatch<kCbRows, kCbVectors>(rows, nv, [&](auto R_, auto NV_) TOKENMIX_ALWAYS_INLINE_LAMBDA {
          constexpr int R = decltype(R_)::value, NV = decltype(NV_)::value;
          tile<R, NV, false>(CB + l0 * QP + c0 * W, QP, nullptr, 0.0f, {C + l0 * c_rs, c_rs, BT + c0 * W, QP, N},
                             nullptr, kNone, kNone);
        });
      }
    }
  }

 private:
  template <int R, int NV>
  static TOKENMIX_ALWAYS_INLINE void accumulate(V (&c)[R][NV], const Operands& p) noexcept {
    for (Index k = 0; k < p.K; ++k) {
      V bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = simd::load<Arch>(p.b + k * p.ldb + v * W);
      for (int r = 0; r < R; ++r) {
        const V av(p.a[r * p.a_rs + k]);
        for (int v = 0; v < NV; ++v) c[r][v] = simd::fmadd<Arch>(av, bv[v], c[r][v]);
      }
    }
  }

  struct Scratch {
    float* S;    // [heads, N, PP]
    float* BT;   // [N, QP]
    float* CB;   // [Q, QP]
    float* M;    // [Q, QP]
    float* X;    // [Q, PP]
    float* Xw;   // [Q, PP]
    double* acum;  // [Q]
    float* dt;   // [QP]
    float* e;    // [QP]
    float* w;    // [QP]
    float* diff;   // [QP]
    Index* seg;  // [Q] first token of each token's sequence within the chunk
    float* tile;  // [MR, NVMAX·W] one output tile before its epilogue
    float* pad;   // [8, W]
    float* decay_row;  // [Q + QP + W] constant decay per head: exp(d·A) at Q - 1 - d, zeros after Q
  };
  static Scratch carve(const SsdProblem& p, const Dims& d, float* f) {
    Scratch s;
    s.S = f, f += p.heads * d.NP * d.PP;
    s.BT = f, f += d.NP * d.QP;
    s.CB = f, f += d.Q * d.QP;
    s.M = f, f += d.Q * d.QP;
    s.X = f, f += d.Q * d.PP;
    s.Xw = f, f += d.Q * d.PP;
    s.acum = reinterpret_cast<double*>(f), f += 2 * d.Q;
    s.dt = f, f += d.QP;
    s.e = f, f += d.QP;
    s.w = f, f += d.QP;
    s.diff = f, f += d.QP;
    static_assert(sizeof(Index) <= 2 * sizeof(float), "Index must fit two floats");
    s.seg = reinterpret_cast<Index*>(f), f += 2 * d.QP;
    s.tile = f, f += MR * NVMAX * W;
    s.pad = f, f += 8 * W;
    s.decay_row = f;
    return s;
  }

  // Chunk-level sequence structure.
  struct ChunkInfo {
    Index t0, Qc;
    Index first_new;   // first token not in the sequence of the entering state (Qc if none)
    Index last_start;  // first token of the last token's sequence
  };

  static void run(const SsdProblem& p, const Dims& d, Index b, Index h_first, Index nh,
                  float* scratch) noexcept {
    const Index L = p.length, H = p.heads, P = p.head_dim, N = p.state, PP = d.PP;
    Scratch s = carve(p, d, scratch);
    // Initial states, transposed to S[n][p].
    for (Index k = 0; k < nh; ++k) {
      float* S = s.S + k * N * PP;
      const float* init = p.initial_state ? p.initial_state + (b * H + h_first + k) * P * N : nullptr;
      for (Index n = 0; n < N; ++n) {
        for (Index q = 0; q < P; ++q) S[n * PP + q] = init ? init[q * N + n] : 0.0f;
        for (Index q = P; q < PP; ++q) S[n * PP + q] = 0.0f;
      }
    }
    for (Index t0 = 0; t0 < L; t0 += d.Q) {
      ChunkInfo ci{t0, std::min(d.Q, L - t0), 0, 0};
      ci.first_new = ci.Qc;
      if (p.seq_idx) {
        const std::int32_t* seq = p.seq_idx + b * L + t0;
        const std::int32_t prev = t0 > 0 ? seq[-1] : seq[0];
        for (Index l = 0; l < ci.Qc; ++l) {
          s.seg[l] = (l > 0 && seq[l] == seq[l - 1]) ? s.seg[l - 1] : l;
          if (ci.first_new == ci.Qc && seq[l] != prev) ci.first_new = l;
        }
        ci.last_start = s.seg[ci.Qc - 1];
      } else {
        for (Index l = 0; l < ci.Qc; ++l) s.seg[l] = 0;
      }
      // CB once per group and chunk, shared by the group's heads of the run.
      const Index per_group = p.heads / p.groups;
      for (Index k = 0, g = -1; k < nh; ++k) {
        if ((h_first + k) / per_group != g) g = (h_first + k) / per_group, chunk_cb(p, d, s, b, g, ci);
        // Its rows' next reader: the run's next head in this chunk, or its first in the next one.
        const Index next_h = k + 1 < nh ? h_first + k + 1 : h_first, next_t0 = k + 1 < nh ? ci.t0 : ci.t0 + d.Q;
        chunk_head(p, d, s, b, g, h_first + k, s.S + k * N * PP, ci, next_t0, next_h);
      }
    }
    if (p.final_state)
      for (Index k = 0; k < nh; ++k) {
        const float* S = s.S + k * N * PP;
        float* dst = p.final_state + (b * H + h_first + k) * P * N;
        for (Index q = 0; q < P; ++q)
          for (Index n = 0; n < N; ++n) dst[q * N + n] = S[n * PP + q];
      }
  }

  // BT [N, QP] = B chunkᵀ (zero beyond Qc) and CB[l][s] = C_l · B_s for s < round_up(l + 1, W).
  static void chunk_cb(const SsdProblem& p, const Dims& d, const Scratch& s, Index b, Index g,
                       const ChunkInfo& ci) noexcept {
    const Index L = p.length, G = p.groups, N = p.state, QP = d.QP;
    const float* Bc = p.B + ((b * L + ci.t0) * G + g) * N;  // rows G·N apart
    const float* Cc = p.C + ((b * L + ci.t0) * G + g) * N;
    simd::transpose_block<Arch>(Bc, G * N, ci.Qc, N, s.BT, QP);
    if (ci.Qc < QP)
      for (Index n = 0; n < N; ++n) std::fill(s.BT + n * QP + ci.Qc, s.BT + (n + 1) * QP, 0.0f);
    cb_tiles(ci.Qc, N, QP, Cc, G * N, s.BT, s.CB);
  }

  static void chunk_head(const SsdProblem& p, const Dims& d, const Scratch& s, Index b, Index g, Index h, float* S,
                         const ChunkInfo& ci, Index next_t0, Index next_h) noexcept {
    const Index L = p.length, H = p.heads, P = p.head_dim, N = p.state, G = p.groups, QP = d.QP, PP = d.PP;
    const Index Qc = ci.Qc, t0 = ci.t0;
    Common::head_dt(p, b, h, t0, Qc, s.dt, nullptr);
    // Acum[l] = Σ of the decays from the start of l's packed sequence in the chunk (or the chunk's
    // start) to l. Only differences within a sequence are read, and exp(Acum) of the tokens before the
    // chunk's first new sequence, so the sum restarts at each sequence start: a NaN / inf decay then
    // stays in its own sequence (a sum over the whole chunk carried it into every later token).
    double run = 0.0;
    if (p.log_decay) {
      const float* g = p.log_decay + (b * L + t0) * H + h;
      for (Index l = 0; l < Qc; ++l) s.acum[l] = run = (s.seg[l] == l ? 0.0 : run) + double(g[l * H]);
    } else {
      const double a = p.A[h];
      for (Index l = 0; l < Qc; ++l) s.acum[l] = run = (s.seg[l] == l ? 0.0 : run) + double(s.dt[l]) * a;
    }

    // e[l] = exp(Acum[l]) for tokens of the entering state's sequence (0 beyond).
    for (Index l = 0; l < QP; ++l) s.diff[l] = l < Qc ? static_cast<float>(s.acum[l]) : 0.0f;
    for (Index l = 0; l < QP; l += W) simd::store<Arch>(s.e + l, simd::exp<Arch>(simd::load<Arch>(s.diff + l)));
    // Constant decay per head (Lightning Attention, RetNet: no dt, no per-token log decay): Acum[l] =
    // (l + 1)·A exactly (double), so exp(Acum[l] - Acum[s]) = exp((l - s)·A) depends on l - s only and
    // the chunk's decay matrix is one row of exps, decay_row[Q - 1 - d] = exp(d·A) (the same floats
    // the general path computes), zeros after Q: row l reads it from Q - 1 - l, and s > l reads 0.
    const bool constant_decay = !p.log_decay && !p.dt;
    if (constant_decay) {
      const double a = p.A[h];
      float* row = s.decay_row;
      for (Index j = 0; j < d.Q; ++j) row[j] = static_cast<float>(double(d.Q - 1 - j) * a);
      for (Index j = 0; j < d.Q; j += W) {
        const Index n = std::min(W, d.Q - j);
        simd::store_upto<Arch>(row + j, simd::exp<Arch>(simd::load_upto<Arch>(row + j, n, s.pad)), n, s.pad);
      }
      std::fill(row + d.Q, row + d.Q + d.QP + W, 0.0f);
    }
    // M[l][s] = CB[l][s]·exp(Acum[l] - Acum[s])·dt[s] for seg[l] <= s <= l, 0 elsewhere up to the
    // end of the vector holding the last column its row tile reads (s < min(l0 + MR, Qc)).
    for (Index l = 0; l < Qc; ++l) {
      const Index tile_end = std::min(l / MR * MR + MR, Qc);
      const Index lo = s.seg[l], hi = Common::round_up(tile_end, W);  // [lo, l] nonzero; zeros up to hi
      float* Ml = s.M + l * QP;
      const float* CBl = s.CB + l * QP;
      const double al = s.acum[l];
      const Index v0 = lo / W * W;
      if (constant_decay) {
        const float* decay = s.decay_row + (d.Q - 1 - l);  // decay[q] = exp((l - q)·A), 0 for q > l
        for (Index q = v0; q < hi; q += W)
          simd::store<Arch>(Ml + q, simd::load<Arch>(CBl + q) * simd::load<Arch>(decay + q));
      } else {
        for (Index q = v0; q <= l; ++q) s.diff[q] = static_cast<float>(al - s.acum[q]);
        for (Index q = l + 1; q < hi; ++q) s.diff[q] = 0.0f;
        for (Index q = v0; q < hi; q += W) {
          const V m = simd::load<Arch>(CBl + q) * simd::exp<Arch>(simd::load<Arch>(s.diff + q)) *
                      simd::load<Arch>(s.dt + q);
          simd::store<Arch>(Ml + q, m);
        }
      }
      for (Index q = 0; q < lo; ++q) Ml[q] = 0.0f;
      for (Index q = l + 1; q < hi; ++q) Ml[q] = 0.0f;
    }

    // X: the chunk's x rows, read in place when P fills whole vectors, else a padded copy.
    const float* xc = p.x + ((b * L + t0) * H + h) * P;  // rows H·P apart
    const float* X = xc;
    Index ldx = H * P;
    if (PP != P) {
      for (Index l = 0; l < Qc; ++l) {
        for (Index q = 0; q < P; ++q) s.X[l * PP + q] = xc[l * H * P + q];
        for (Index q = P; q < PP; ++q) s.X[l * PP + q] = 0.0f;
      }
      X = s.X, ldx = PP;
    }
    const float* Cc = p.C + ((b * L + t0) * G + g) * N;

    // Outputs: tiles of MR tokens x NV·W channels.
    const Index pv = PP / W;
    for (Index l0 = 0; l0 < Qc; l0 += MR) {
      const int rows = static_cast<int>(std::min<Index>(MR, Qc - l0));
      const Index k_lo = s.seg[l0];
      // The same rows of the next (chunk, head) this thread runs, one tile at a time: its inputs x, z
      // and (for write) its outputs, and B, C when it starts a chunk. In token-major layout a head's
      // rows are H·P floats apart, and a long sequence streams from memory with a miss per row
      // otherwise (z's alone: 8% of Mamba-2's SSD). The next head, not the next chunk of this head:
      // a chunk of every other head runs in between, and the lines would be gone.
      for (Index l = next_t0 + l0; l < std::min(L, next_t0 + l0 + MR); ++l) {
        const Index row = (b * L + l) * H + next_h;
        for (Index f = 0; f < P; f += 16) {
          __builtin_prefetch(p.x + row * P + f, 0), __builtin_prefetch(p.out + row * P + f, 1);
          if (p.z) __builtin_prefetch(p.z + row * P + f, 0);
        }
        if (next_t0 != t0)
          for (Index gg = 0; gg < G; ++gg)
            for (Index f = 0; f < N; f += 16) {
              const Index bc_row = ((b * L + l) * G + gg) * N;
              __builtin_prefetch(p.B + bc_row + f, 0), __builtin_prefetch(p.C + bc_row + f, 0);
            }
      }
      for (Index c0 = 0; c0 < pv; c0 += NVMAX) {
        const int nv = static_cast<int>(std::min<Index>(NVMAX, pv - c0));
        dispatch<MR>(rows, nv, [&](auto R_, auto NV_) TOKENMIX_ALWAYS_INLINE_LAMBDA {
          constexpr int R = decltype(R_)::value, NV = decltype(NV_)::value;
          // C_l · S_in scaled by exp(Acum[l]) (rows of a new sequence: 0), then M·X: the rows
          // before the tile in full, then its lower-triangular diagonal block.
          const bool carried = l0 < ci.first_new;
          float row_scale[MR];
          // -1: a row of a new sequence, which the carried state must not reach even where it holds
          // NaN (tile zeroes it); an exp(Acum) that underflowed to 0 multiplies instead, so a NaN
          // carried into a row of its own sequence stays NaN, as in the recurrent form.
          for (int r = 0; r < R; ++r) row_scale[r] = l0 + r < ci.first_new ? s.e[l0 + r] : -1.0f;
          const Operands cs = carried ? Operands{Cc + l0 * G * N, G * N, S + c0 * W, PP, N} : kNone;
          const Operands mx{s.M + l0 * QP + k_lo, QP, X + k_lo * ldx + c0 * W, ldx, l0 - k_lo};
          const Operands diag{s.M + l0 * QP + l0, QP, X + l0 * ldx + c0 * W, ldx, R};
          tile<R, NV, true>(s.tile, NVMAX * W, nullptr, 0.0f, cs, carried ? row_scale : nullptr, mx, diag);
          for (int r = 0; r < R; ++r) {
            const Index row = ((b * L + t0 + l0 + r) * H + h) * P;
            for (int v = 0; v < NV; ++v) {
              const Index q0 = (c0 + v) * W;
              Common::finish_row(p, row, h, q0, std::min(W, P - q0), simd::load<Arch>(s.tile + r * NVMAX * W + v * W),
                                 s.pad);
            }
          }
        });
      }
    }

    // State update: S = keep·exp(Acum[Qc-1])·S + sum_{s >= last_start} w[s]·B_s ⊗ x_s.
    const Index ls = ci.last_start;
    const bool keep = ci.first_new == Qc;
    const double a_end = s.acum[Qc - 1];
    for (Index q = 0; q < QP; ++q) s.diff[q] = q >= ls && q < Qc ? static_cast<float>(a_end - s.acum[q]) : 0.0f;
    for (Index q = 0; q < QP; q += W)
      simd::store<Arch>(s.w + q, simd::exp<Arch>(simd::load<Arch>(s.diff + q)) * simd::load<Arch>(s.dt + q));
    for (Index l = ls; l < Qc; ++l) {
      const V wl(s.w[l]);
      for (Index q = 0; q < PP; q += W) simd::store<Arch>(s.Xw + l * PP + q, wl * simd::load<Arch>(X + l * ldx + q));
    }
    const float decay = static_cast<float>(std::exp(a_end));
    for (Index n0 = 0; n0 < N; n0 += MR) {
      const int rows = static_cast<int>(std::min<Index>(MR, N - n0));
      for (Index c0 = 0; c0 < pv; c0 += NVMAX) {
        const int nv = static_cast<int>(std::min<Index>(NVMAX, pv - c0));
        dispatch<MR>(rows, nv, [&](auto R_, auto NV_) TOKENMIX_ALWAYS_INLINE_LAMBDA {
          constexpr int R = decltype(R_)::value, NV = decltype(NV_)::value;
          float* Sn = S + n0 * PP + c0 * W;
          tile<R, NV, false>(Sn, PP, keep ? Sn : nullptr, decay,
                             {s.BT + n0 * QP + ls, QP, s.Xw + ls * PP + c0 * W, PP, Qc - ls}, nullptr, kNone, kNone);
        });
      }
    }
  }
};

}  // namespace tokenmix::ssm::detail
