#pragma once
// SIMD kernels of blocks::linear (out = x·Wᵀ + b, W in nn.Linear layout [N, K]); the equation is in
// reference/linear.hpp.
//
// GEMM (prefill, any M): W is packed once into panels of NR = NV·lanes output columns,
//   packed[p][k][c] = W[p·NR + c, k]   (c < NR, zero beyond N), each panel [K, NR] contiguous,
// 64-byte aligned. The micro-kernel keeps an MR × NR tile of out in MR·NV vector accumulators and,
// per k, loads NV vectors of the packed panel and broadcasts MR elements of x (one per row):
// MR·NV FMAs for NV + MR loads. Cache blocking (BLIS order): rows of x in blocks of MC (the
// MC × KC block of x stays in L2 while every panel of the thread passes over it), K in blocks of KC
// (a KC × NR slice of a panel, <= 32 KiB, stays in L1 while the MC rows pass over it). Partial
// tiles: rows by instantiating the micro-kernel for 1..MR rows, columns by masked / padded loads
// and stores of the last vectors (the packed panel is zero-padded, so no lane reads garbage).
// Decode-sized M (<= kSmallM) streams each panel once (KC = K), several panels per pass.
//
// GEMV (unpacked W, M <= kSmallM): W rows are contiguous in K, so R = 4 rows of W at a time are dot
// products with the M rows of x (M·R vector accumulators, a reduce_add each at the end): W is read
// exactly once, with no packing pass.
//
// Threads split panels (GEMM) or groups of R rows of W (GEMV). Every output element is computed
// by the same sequence of operations whatever the split, so results are bitwise identical for any
// thread count.

#include <algorithm>
#include <cstddef>

#include "tokenmix/core/tensor.hpp"
#include "tokenmix/simd/arch.hpp"

namespace tokenmix::blocks::detail {

// Decode path threshold: M <= kSmallM rows of x.
inline constexpr Index kLinearSmallM = 4;

// One validated call as raw pointers (row-major).
struct LinearProblem {
  Index M, N, K;
  const float* x;     // [M, K], rows ldx apart
  const float* bias;  // [N] or nullptr
  float* out;         // [M, N]
};

template <class Arch>
struct LinearKernel {
  using V = simd::vfloat<Arch>;
  static constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  // 32 vector registers on AVX-512: 8 × 2 tile = 16 accumulators + 2 panel vectors + 1 broadcast.
  // 16 registers elsewhere: 6 × 2 = 12 accumulators + 3.
  static constexpr int MR = simd::is_avx512<Arch> ? 8 : 6;
  static constexpr int NV = 2;
  static constexpr Index NR = NV * W;
  static constexpr Index KC = std::max<Index>(64, 8192 / NR);  // KC × NR floats = 32 KiB (L1)
  static constexpr Index MC = std::max<Index>(MR, (65536 / KC) / MR * MR);  // MC × KC floats <= 256 KiB (L2)
  static constexpr int GEMV_R = 4;  // rows of W per GEMV step

  enum class Init { zero, bias, accumulate };

  static Index num_panels(Index N) { return (N + NR - 1) / NR; }
  static Index packed_floats(Index N, Index K) { return num_panels(N) * K * NR; }

  // Packs panels [p0, p1) of w [N, K] into dst (packed_floats(N, K) floats, 64-byte aligned).
  // Transposes 16 k at a time so that reads are whole cache lines and writes stay in L1.
  static void pack_panels(const float* w, Index N, Index K, Index p0, Index p1, float* dst) noexcept {
    constexpr Index KB = 16;
    for (Index p = p0; p < p1; ++p) {
      float* panel = dst + p * K * NR;  // [K, NR]
      const Index n0 = p * NR, cols = std::min(NR, N - n0);
      for (Index k0 = 0; k0 < K; k0 += KB) {
        const Index kb = std::min(KB, K - k0);
        for (Index c = 0; c < cols; ++c) {
          const float* src = w + (n0 + c) * K + k0;
          for (Index k = 0; k < kb; ++k) panel[(k0 + k) * NR + c] = src[k];
        }
        for (Index c = cols; c < NR; ++c)
          for (Index k = 0; k < kb; ++k) panel[(k0 + k) * NR + c] = 0.0f;
      }
    }
  }

  // Output panels [p0, p1) (columns [p0·NR, min(p1·NR, N))) for all rows. packed: see above.
  // pad: W floats of scratch (partial loads on archs without masks).
  static void gemm_panels(const LinearProblem& pr, const float* packed, Index p0, Index p1, float* pad) noexcept {
    switch (pr.M) {  // decode-sized M: several panels per pass (see small_m_panels)
      case 1: return small_m_panels<1>(pr, packed, p0, p1, pad);
      case 2: return small_m_panels<2>(pr, packed, p0, p1, pad);
      case 3: return small_m_panels<3>(pr, packed, p0, p1, pad);
      case 4: return small_m_panels<4>(pr, packed, p0, p1, pad);
      default: break;
    }
    static_assert(kLinearSmallM == 4, "small_m_panels covers M <= 4");
    const Index kc_step = KC;
    for (Index i0 = 0; i0 < pr.M; i0 += MC) {
      const Index mc = std::min(MC, pr.M - i0);
      for (Index k0 = 0; k0 < pr.K; k0 += kc_step) {
        const Index kc = std::min(kc_step, pr.K - k0);
        const Init init = k0 > 0 ? Init::accumulate : pr.bias ? Init::bias : Init::zero;
        for (Index p = p0; p < p1; ++p) {
          const Index n0 = p * NR, cols = std::min(NR, pr.N - n0);
          const float* wp = packed + p * pr.K * NR + k0 * NR;  // [kc, NR]
          for (Index ir = 0; ir < mc; ir += MR) {
            const Index i = i0 + ir;
            dispatch_tile<MR>(static_cast<int>(std::min<Index>(MR, mc - ir)), kc, pr.x + i * pr.K + k0, pr.K, wp,
                              pr.out + i * pr.N + n0, pr.N, cols, init, pr.bias ? pr.bias + n0 : nullptr, pad);
          }
        }
      }
    }
  }

  // GEMV: rows [r0, r1) of w [N, K] (outputs out[:, r0..r1)) for the M <= kLinearSmallM rows of x.
  static void gemv_rows(const LinearProblem& pr, const float* w, Index r0, Index r1, float* pad) noexcept {
    switch (pr.M) {
      case 1: gemv_rows_m<1>(pr, w, r0, r1, pad); break;
      case 2: gemv_rows_m<2>(pr, w, r0, r1, pad); break;
      case 3: gemv_rows_m<3>(pr, w, r0, r1, pad); break;
      case 4: gemv_rows_m<4>(pr, w, r0, r1, pad); break;
      default: TOKENMIX_ASSERT(false); break;
    }
  }

 private:
  // M <= kLinearSmallM rows against panels [p0, p1), each panel streamed once (KC = K). P panels per
  // pass keep P weight streams in flight: one panel at a time leaves a single stream whose prefetch
  // cannot cover DRAM latency (measured 0.64-0.82 of read bandwidth, vs ~1.0 with 4 streams). Every
  // output element gets the same operations as tile<R> with KC = K (init, then FMAs in k order), so
  // the result is bitwise identical to one-panel tiles and to any thread split.
  template <int R>
  static void small_m_panels(const LinearProblem& pr, const float* packed, Index p0, Index p1, float* pad) noexcept {
    constexpr int P = R <= 2 ? 4 : 2;  // R·P·NV accumulators: 16 at most
    const Index K = pr.K;
    Index p = p0;
    for (; p + P <= p1 && (p + P) * NR <= pr.N; p += P)  // groups of full panels
      multi_panel_tile<R, P>(K, pr.x, packed + p * K * NR, pr.out + p * NR, pr.N, pr.bias ? pr.bias + p * NR : nullptr);
    for (; p < p1; ++p) {
      const Index n0 = p * NR;
      tile<R>(K, pr.x, K, packed + p * K * NR, pr.out + n0, pr.N, std::min(NR, pr.N - n0),
              pr.bias ? Init::bias : Init::zero, pr.bias ? pr.bias + n0 : nullptr, pad);
    }
  }

  // c[R, P·NR] (rows ldc apart) = bias + x[R, K] (rows K apart) · P full panels starting at wp.
  template <int R, int P>
  static void multi_panel_tile(Index K, const float* TOKENMIX_RESTRICT x, const float* TOKENMIX_RESTRICT wp,
                               float* TOKENMIX_RESTRICT c, Index ldc, const float* bias) noexcept {
    V acc[R][P][NV];
    for (int q = 0; q < P; ++q)
      for (int v = 0; v < NV; ++v) {
        const V b = bias ? simd::load<Arch>(bias + q * NR + v * W) : V(0.0f);
        for (int r = 0; r < R; ++r) acc[r][q][v] = b;
      }
    for (Index k = 0; k < K; ++k) {
      V b[P][NV];
      for (int q = 0; q < P; ++q)
        for (int v = 0; v < NV; ++v) b[q][v] = V::load_aligned(wp + q * K * NR + k * NR + v * W);
      for (int r = 0; r < R; ++r) {
        const V a(x[r * K + k]);
        for (int q = 0; q < P; ++q)
          for (int v = 0; v < NV; ++v) acc[r][q][v] = simd::fmadd<Arch>(a, b[q][v], acc[r][q][v]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < P; ++q)
        for (int v = 0; v < NV; ++v) simd::store<Arch>(c + r * ldc + q * NR + v * W, acc[r][q][v]);
  }

  // Vector v of a tile row of `cols` valid columns: full load, partial load or zeros.
  static TOKENMIX_ALWAYS_INLINE V load_cols(const float* p, int v, Index cols, float* pad) noexcept {
    const Index valid = cols - v * W;
    if (valid >= W) return simd::load<Arch>(p + v * W);
    if (valid > 0) return simd::load_partial<Arch>(p + v * W, static_cast<std::size_t>(valid), pad);
    return V(0.0f);
  }
  static TOKENMIX_ALWAYS_INLINE void store_cols(float* p, int v, V value, Index cols, float* pad) noexcept {
    const Index valid = cols - v * W;
    if (valid >= W) simd::store<Arch>(p + v * W, value);
    else if (valid > 0) simd::store_partial<Arch>(p + v * W, value, static_cast<std::size_t>(valid), pad);
  }

  template <int R>
  static TOKENMIX_ALWAYS_INLINE void dispatch_tile(int rows, Index kc, const float* x, Index ldx, const float* wp,
                                                   float* c, Index ldc, Index cols, Init init, const float* bias,
                                                   float* pad) noexcept {
    if constexpr (R > 1) {
      if (rows < R) return dispatch_tile<R - 1>(rows, kc, x, ldx, wp, c, ldc, cols, init, bias, pad);
    }
    tile<R>(kc, x, ldx, wp, c, ldc, cols, init, bias, pad);
  }

  // c[R, cols] (rows ldc apart) = init + x[R, kc] (rows ldx apart) · wp[kc, NR] (first cols columns).
  template <int R>
  static void tile(Index kc, const float* TOKENMIX_RESTRICT x, Index ldx, const float* TOKENMIX_RESTRICT wp,
                   float* TOKENMIX_RESTRICT c, Index ldc, Index cols, Init init, const float* bias,
                   float* pad) noexcept {
    V acc[R][NV];
    if (init == Init::accumulate) {
      for (int r = 0; r < R; ++r)
        for (int v = 0; v < NV; ++v) acc[r][v] = load_cols(c + r * ldc, v, cols, pad);
    } else {
      V b[NV];
      for (int v = 0; v < NV; ++v) b[v] = init == Init::bias ? load_cols(bias, v, cols, pad) : V(0.0f);
      for (int r = 0; r < R; ++r)
        for (int v = 0; v < NV; ++v) acc[r][v] = b[v];
    }
    const float* xr[R];
    for (int r = 0; r < R; ++r) xr[r] = x + r * ldx;
    for (Index k = 0; k < kc; ++k) {
      V b[NV];
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 4
#endif
      for (int v = 0; v < NV; ++v) b[v] = V::load_aligned(wp + k * NR + v * W);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 8
#endif
      for (int r = 0; r < R; ++r) {
        const V a(xr[r][k]);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 4
#endif
        for (int v = 0; v < NV; ++v) acc[r][v] = simd::fmadd<Arch>(a, b[v], acc[r][v]);
      }
    }
    if (cols == NR) {
      for (int r = 0; r < R; ++r)
        for (int v = 0; v < NV; ++v) simd::store<Arch>(c + r * ldc + v * W, acc[r][v]);
    } else {
      for (int r = 0; r < R; ++r)
        for (int v = 0; v < NV; ++v) store_cols(c + r * ldc, v, acc[r][v], cols, pad);
    }
  }

  template <int M>
  static void gemv_rows_m(const LinearProblem& pr, const float* w, Index r0, Index r1, float* pad) noexcept {
    Index n = r0;
    for (; n + GEMV_R <= r1; n += GEMV_R) gemv_block<M, GEMV_R>(pr, w, n, pad);
    for (; n < r1; ++n) gemv_block<M, 1>(pr, w, n, pad);
  }

  // out[m, n0 + r] = dot(x[m, :], w[n0 + r, :]) + bias[n0 + r], m < M, r < R.
  template <int M, int R>
  static TOKENMIX_ALWAYS_INLINE void gemv_block(const LinearProblem& pr, const float* TOKENMIX_RESTRICT w, Index n0,
                                                float* pad) noexcept {
    const Index K = pr.K;
    V acc[M][R];
    for (int m = 0; m < M; ++m)
      for (int r = 0; r < R; ++r) acc[m][r] = V(0.0f);
    const float* wr[R];
    for (int r = 0; r < R; ++r) wr[r] = w + (n0 + r) * K;
    Index k = 0;
    for (; k + W <= K; k += W) {
      V xv[M];
      for (int m = 0; m < M; ++m) xv[m] = simd::load<Arch>(pr.x + m * K + k);
      for (int r = 0; r < R; ++r) {
        const V wv = simd::load<Arch>(wr[r] + k);
        for (int m = 0; m < M; ++m) acc[m][r] = simd::fmadd<Arch>(xv[m], wv, acc[m][r]);
      }
    }
    if (k < K) {
      const std::size_t tail = static_cast<std::size_t>(K - k);
      V xv[M];
      for (int m = 0; m < M; ++m) xv[m] = simd::load_partial<Arch>(pr.x + m * K + k, tail, pad);
      for (int r = 0; r < R; ++r) {
        const V wv = simd::load_partial<Arch>(wr[r] + k, tail, pad);
        for (int m = 0; m < M; ++m) acc[m][r] = simd::fmadd<Arch>(xv[m], wv, acc[m][r]);
      }
    }
    for (int m = 0; m < M; ++m)
      for (int r = 0; r < R; ++r) {
        const float dot = simd::reduce_add<Arch>(acc[m][r]);
        pr.out[m * pr.N + n0 + r] = pr.bias ? dot + pr.bias[n0 + r] : dot;
      }
  }
};

}  // namespace tokenmix::blocks::detail
