#pragma once
// SIMD kernel of the diagonal (S4D) LTI SSM (the equations are in reference/diagonal_ssm.hpp): the
// recurrence S = dA·S + x, y = 2·Re(C·S) + Dskip·x, never the kernel or an FFT.
//
// Vectorized over channels: one vector holds W = lanes<Arch> consecutive channels (each lane with
// the parameters of its own row), so a complex mode of W channels is two vectors (re, im) and one
// token costs, per mode, 6 FMA-pipe operations and no shuffles:
//   re' = ar·re - ai·im + x      im' = ar·im + ai·re      y += cr·re' - ci·im'
// Work item = (batch b, channel block). Per item the lane-wise parameters [M, 4, W] (ar, ai, 2·cr,
// 2·ci) and the state [M, 2, W] live in L1 scratch; the tokens go in chunks of kTokensPerChunk:
// the chunk's x rows are copied once ([T, W]), then each group of G modes keeps its 2·G state
// vectors in registers across the whole chunk (the parameters are memory operands of the FMAs:
// 32 registers cannot hold both) and adds its part of y into the chunk's y rows. Every lane's
// arithmetic is the same whatever the chunking or thread, so results are bitwise identical for any
// thread count, and the one-token step (this kernel with L = 1 and the state in place) reproduces
// the sequence call bitwise.
// Channels past D in the last block compute on zeros (finite) and are never written.

#include <algorithm>

#include "tokenmix/core/tensor.hpp"
#include "tokenmix/simd/arch.hpp"

namespace tokenmix::ssm::detail {

// One validated call as raw pointers (row-major, token-major).
struct DiagonalSsmProblem {
  Index batch, length, channels, rows, modes;  // B, L, D, Hp, M
  const float* x;              // [B, L, D]
  const float* dA;             // [Hp, M, 2]
  const float* C;              // [Hp, M, 2]
  const float* D;              // [Hp] or nullptr
  const float* initial_state;  // [B, D, M, 2] or nullptr (may equal final_state)
  float* out;                  // [B, L, D]
  float* final_state;          // [B, D, M, 2] or nullptr
};

template <class Arch>
struct DiagonalSsmKernel {
  using V = simd::vfloat<Arch>;
  static constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  static constexpr Index kTokensPerChunk = 64;
  // Modes whose state stays in registers over a chunk: 2·G state vectors + x, y and temporaries.
  static constexpr int G = simd::is_avx512<Arch> ? 8 : 4;

  static Index blocks(const DiagonalSsmProblem& p) { return (p.channels + W - 1) / W; }
  static Index num_items(const DiagonalSsmProblem& p) { return p.batch * blocks(p); }
  // Floats of scratch one thread needs: parameters [M, 4, W], state [M, 2, W], x and y chunks
  // [T, W] each, the skip vector and a pad vector.
  static Index scratch_floats(const DiagonalSsmProblem& p) { return (6 * p.modes + 2 * kTokensPerChunk + 2) * W; }

  // Runs items [first, last). scratch: scratch_floats(p) floats, 64-byte aligned.
  static void run_items(const DiagonalSsmProblem& p, Index first, Index last, float* scratch) noexcept {
    for (Index item = first; item < last; ++item) run_item(p, item / blocks(p), item % blocks(p) * W, scratch);
  }

 private:
  static void run_item(const DiagonalSsmProblem& p, Index b, Index d0, float* scratch) noexcept {
    const Index L = p.length, D = p.channels, M = p.modes, per_row = D / p.rows;
    const Index width = std::min(W, D - d0);
    float* params = scratch;                   // [M, 4, W]: ar, ai, 2·cr, 2·ci
    float* state = params + 4 * M * W;         // [M, 2, W]: re, im
    float* xs = state + 2 * M * W;             // [T, W]
    float* ys = xs + kTokensPerChunk * W;      // [T, W]
    float* skip = ys + kTokensPerChunk * W;    // [W]
    float* pad = skip + W;                     // [W]
    for (Index l = 0; l < W; ++l) {
      // Lanes past D repeat the last channel's parameters on zero input (finite, never written).
      const Index d = d0 + std::min(l, width - 1), h = d / per_row;
      skip[l] = p.D ? p.D[h] : 0.0f;
      for (Index m = 0; m < M; ++m) {
        const float* a = p.dA + (h * M + m) * 2;
        const float* c = p.C + (h * M + m) * 2;
        params[(m * 4 + 0) * W + l] = a[0];
        params[(m * 4 + 1) * W + l] = a[1];
        params[(m * 4 + 2) * W + l] = 2.0f * c[0];
        params[(m * 4 + 3) * W + l] = 2.0f * c[1];
        const float* s0 = p.initial_state && l < width ? p.initial_state + ((b * D + d) * M + m) * 2 : nullptr;
        state[(m * 2 + 0) * W + l] = s0 ? s0[0] : 0.0f;
        state[(m * 2 + 1) * W + l] = s0 ? s0[1] : 0.0f;
      }
    }
    const V skip_v = simd::load<Arch>(skip);
    for (Index t0 = 0; t0 < L; t0 += kTokensPerChunk) {
      const Index T = std::min(kTokensPerChunk, L - t0);
      const float* x = p.x + (b * L + t0) * D + d0;  // rows D apart
      for (Index t = 0; t < T; ++t) {
        const V xv = simd::load_upto<Arch>(x + t * D, width, pad);
        simd::store<Arch>(xs + t * W, xv);
        simd::store<Arch>(ys + t * W, skip_v * xv);
      }
      Index m = 0;
      for (; m + G <= M; m += G) run_group<G>(params + m * 4 * W, state + m * 2 * W, xs, ys, T);
      for (; m < M; ++m) run_group<1>(params + m * 4 * W, state + m * 2 * W, xs, ys, T);
      float* out = p.out + (b * L + t0) * D + d0;
      for (Index t = 0; t < T; ++t) simd::store_upto<Arch>(out + t * D, simd::load<Arch>(ys + t * W), width, pad);
    }
    if (p.final_state)
      for (Index l = 0; l < width; ++l)
        for (Index mm = 0; mm < M; ++mm) {
          float* s = p.final_state + ((b * D + d0 + l) * M + mm) * 2;
          s[0] = state[(mm * 2 + 0) * W + l];
          s[1] = state[(mm * 2 + 1) * W + l];
        }
  }

  // Modes [0, NG) of params [NG, 4, W] / state [NG, 2, W] over the chunk's T tokens: ys[t] += their
  // part of y. The state vectors stay in registers for the whole chunk.
  template <int NG>
  static void run_group(const float* params, float* state, const float* xs, float* ys, Index T) noexcept {
    V re[NG], im[NG];
    for (int i = 0; i < NG; ++i) {
      re[i] = simd::load<Arch>(state + (2 * i + 0) * W);
      im[i] = simd::load<Arch>(state + (2 * i + 1) * W);
    }
    for (Index t = 0; t < T; ++t) {
      const V xv = simd::load<Arch>(xs + t * W);
      V y(0.0f);
      for (int i = 0; i < NG; ++i) {
        const float* pm = params + 4 * i * W;
        const V ar = simd::load<Arch>(pm), ai = simd::load<Arch>(pm + W);
        const V next_re = simd::fmadd<Arch>(ar, re[i], simd::fnmadd<Arch>(ai, im[i], xv));
        const V next_im = simd::fmadd<Arch>(ar, im[i], ai * re[i]);
        y = simd::fmadd<Arch>(simd::load<Arch>(pm + 2 * W), next_re, y);
        y = simd::fnmadd<Arch>(simd::load<Arch>(pm + 3 * W), next_im, y);
        re[i] = next_re, im[i] = next_im;
      }
      simd::store<Arch>(ys + t * W, simd::load<Arch>(ys + t * W) + y);
    }
    for (int i = 0; i < NG; ++i) {
      simd::store<Arch>(state + (2 * i + 0) * W, re[i]);
      simd::store<Arch>(state + (2 * i + 1) * W, im[i]);
    }
  }
};

}  // namespace tokenmix::ssm::detail
