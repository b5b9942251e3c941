#pragma once
// SIMD kernel of the selective-scan decode step (equations: reference/selective_state_update.hpp).
//
// Vectorized over N: the state [B, D, N] has N contiguous, so a channel's N states are N/W plain
// vector loads (a masked / zero-padded tail when W does not divide N), and so are A[d, :] and the
// B[b, g, :] / C[b, g, :] rows (or B[d, :] time-invariant). Per channel: one vector exp2 of
// dt · (A·log2 e) per W states, h = fmadd(decay, h, dt·x·B), state stored back: the state is read
// and written once, with no transposes. (The channel-vectorized layout of ssm::selective_scan's
// kernel would need a [W, N] <-> [N, W] transpose of every block's state and of A per step: measured
// 36 us vs 21 us for this kernel at B=1, D=1536, N=16, cold state, AVX-512, one thread; a decode
// step is bound by moving the state, not by its exps.)
// Bitwise identical to ssm::selective_scan, token by token: every per-element operation is the
// scan's (dt = softplus(dt + bias) and dt·x vectorized over W channels exactly as the scan does;
// A·log2(e) rounded to float; simd::exp2; simd::fmadd), and y = sum_n h[n]·C[n] is accumulated in
// the scan's order -- two fused multiply-add chains over even and odd n, then y_even + y_odd -- as
// scalar FMAs (std::fma, a single rounding like the scan's vector FMA) instead of a horizontal
// reduction, whose different summation order would break bitwise equality; the D skip, the gate
// and the store are vectorized over channels again. On archs without FMA (SSE2, AVX) the scan's
// fmadd is x*y+z, and the step uses x*y+z too; whether the compiler contracts either one is its
// choice, so there decode == scan holds within tolerance only.
// Work item = (batch b, group g, channel block j of W channels); a block never straddles two groups.

#include <algorithm>
#include <cmath>  // std::fma
#include <type_traits>

#include "tokenmix/core/tensor.hpp"
#include "tokenmix/simd/activations.hpp"

namespace tokenmix::ssm::detail {

struct SelectiveStateUpdateProblem {
  Index batch, channels, state, groups;
  float* h;                    // [B, D, N] in place
  const float* x;              // [B, D]
  const float* dt;             // [B, D]
  const float* A;              // [D, N]
  const float* B;              // [B, G, N], or [D, N] when B_time_invariant
  const float* C;              // [B, G, N], or [D, N] when C_time_invariant
  bool B_time_invariant, C_time_invariant;
  const float* D;              // [D] or nullptr
  const float* z;              // [B, D] or nullptr
  const float* dt_bias;        // [D] or nullptr
  bool dt_softplus;
  float* out;                  // [B, D]
};

template <class Arch>
struct SelectiveStateUpdateKernel {
  using V = simd::vfloat<Arch>;
  static constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  // Whether simd::fmadd<Arch> is a fused multiply-add (then the scalar y chain uses std::fma).
  static constexpr bool kFusedFma = simd::is_avx512<Arch>
#if XSIMD_WITH_FMA3_SSE
                                    || std::is_same_v<Arch, xsimd::fma3<xsimd::sse4_2>>
#endif
#if XSIMD_WITH_FMA3_AVX
                                    || std::is_same_v<Arch, xsimd::fma3<xsimd::avx>>
#endif
#if XSIMD_WITH_FMA3_AVX2
                                    || std::is_same_v<Arch, xsimd::fma3<xsimd::avx2>>
#endif
      ;

  static Index blocks_per_group(const SelectiveStateUpdateProblem& p) { return (p.channels / p.groups + W - 1) / W; }
  static Index num_items(const SelectiveStateUpdateProblem& p) { return p.batch * p.groups * blocks_per_group(p); }
  // dt, dt·x, y of a block [3, W]; pads [8, W].
  static Index scratch_floats(const SelectiveStateUpdateProblem&) { return 11 * W; }

  static void run_items(const SelectiveStateUpdateProblem& p, Index first, Index last, float* scratch) noexcept {
    for (Index item = first; item < last; ++item) {
      const Index bpg = blocks_per_group(p), per_group = p.channels / p.groups;
      const Index j = item % bpg, g = (item / bpg) % p.groups, b = item / (p.groups * bpg);
      const Index d0 = g * per_group + j * W, width = std::min(W, per_group - j * W);
      if (!p.B_time_invariant && !p.C_time_invariant) step<true, true>(p, b, g, d0, width, scratch);
      else if (!p.B_time_invariant) step<true, false>(p, b, g, d0, width, scratch);
      else if (!p.C_time_invariant) step<false, true>(p, b, g, d0, width, scratch);
      else step<false, false>(p, b, g, d0, width, scratch);
    }
  }

 private:
  static TOKENMIX_ALWAYS_INLINE float scalar_fmadd(float a, float b, float c) noexcept {
    if constexpr (kFusedFma) return std::fma(a, b, c);
    else return a * b + c;
  }

  // One channel: h [N] in place, A, Brow, Crow [N]; returns y = sum_n h[n]·C[n] in the scan's order.
  template <bool VarB, bool VarC>
  static TOKENMIX_ALWAYS_INLINE float channel(Index N, float* h, const float* A, const float* Brow, const float* Crow,
                                              float dt, float dt_x, float* pad) noexcept {
    const V vdt(dt), vdt_x(dt_x), log2e(1.44269504088896341f);
    Index n = 0;
    for (; n + W <= N; n += W) {
      const V decay = simd::exp2<Arch>(vdt * (simd::load<Arch>(A + n) * log2e));
      simd::store<Arch>(h + n, simd::fmadd<Arch>(decay, simd::load<Arch>(h + n), vdt_x * simd::load<Arch>(Brow + n)));
    }
    if (n < N) {  // tail: zero-padded loads, only the valid lanes stored
      const std::size_t rest = static_cast<std::size_t>(N - n);
      const V a = simd::load_partial<Arch>(A + n, rest, pad), hv = simd::load_partial<Arch>(h + n, rest, pad + W);
      const V bv = simd::load_partial<Arch>(Brow + n, rest, pad + 2 * W);
      const V decay = simd::exp2<Arch>(vdt * (a * log2e));
      simd::store_partial<Arch>(h + n, simd::fmadd<Arch>(decay, hv, vdt_x * bv), rest, pad + 3 * W);
    }
    float y_even = 0.0f, y_odd = 0.0f;
    for (Index m = 0; m + 1 < N; m += 2) {
      y_even = scalar_fmadd(h[m], Crow[m], y_even);
      y_odd = scalar_fmadd(h[m + 1], Crow[m + 1], y_odd);
    }
    if (N & 1) y_even = scalar_fmadd(h[N - 1], Crow[N - 1], y_even);
    return y_even + y_odd;
  }

  template <bool VarB, bool VarC>
  static void step(const SelectiveStateUpdateProblem& p, Index b, Index g, Index d0, Index width,
                   float* scratch) noexcept {
    const Index N = p.state, D = p.channels;
    float* dt_s = scratch;      // [W]
    float* dtx_s = dt_s + W;    // [W]
    float* y_s = dtx_s + W;     // [W]
    float* pad = y_s + W;       // [8, W]
    const Index row = b * D + d0;
    // dt and dt·x for the W channels, vectorized over channels exactly as the scan computes them.
    const V bias = p.dt_bias ? simd::load_upto<Arch>(p.dt_bias + d0, width, pad) : V(0.0f);
    V dt = simd::load_upto<Arch>(p.dt + row, width, pad + W) + bias;
    if (p.dt_softplus) dt = simd::softplus<Arch>(dt);
    const V xv = simd::load_upto<Arch>(p.x + row, width, pad + 2 * W);
    simd::store<Arch>(dt_s, dt);
    simd::store<Arch>(dtx_s, dt * xv);
    const float* B_t = VarB ? p.B + (b * p.groups + g) * N : nullptr;  // [N] B[b, g, :]
    const float* C_t = VarC ? p.C + (b * p.groups + g) * N : nullptr;  // [N] C[b, g, :]
    for (Index c = 0; c < width; ++c) {
      const Index d = d0 + c;
      y_s[c] = channel<VarB, VarC>(N, p.h + (b * D + d) * N, p.A + d * N, VarB ? B_t : p.B + d * N,
                                   VarC ? C_t : p.C + d * N, dt_s[c], dtx_s[c], pad + 3 * W);
    }
    for (Index c = width; c < W; ++c) y_s[c] = 0.0f;
    V y = simd::load<Arch>(y_s);
    if (p.D) y = simd::fmadd<Arch>(xv, simd::load_upto<Arch>(p.D + d0, width, pad + 7 * W), y);
    const V gate = p.z ? simd::silu<Arch>(simd::load_upto<Arch>(p.z + row, width, pad + 7 * W)) : V(1.0f);
    y = y * gate;
    if (width == W) simd::store<Arch>(p.out + row, y);
    else simd::store_partial<Arch>(p.out + row, y, static_cast<std::size_t>(width), pad + 7 * W);
  }
};

}  // namespace tokenmix::ssm::detail
