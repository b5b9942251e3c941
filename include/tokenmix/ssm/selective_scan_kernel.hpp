#pragma once
// SIMD kernel of the Mamba-1 selective scan (the equations are in reference/selective_scan.hpp).
//
// Vectorized over channels: one vector holds W = lanes<Arch> consecutive channels of one group, so
//  - exp(dt·A) for the W channels of one state index n is ONE vector exp2 (of dt · A·log2(e), the
//    CUDA kernel's formulation), i.e. W·N scalar exps per token become N vector exps;
//  - B[t, g, n] and C[t, g, n] are shared by the W channels: a broadcast, not a gather;
//  - the state h[n] of the W channels stays in registers across all L tokens (N specialised at
//    compile time for 4, 8, 16 and 32), so the recurrence costs no memory traffic;
//  - y = sum_n h[n]·C[n] accumulates lane-wise: no horizontal reductions.
// A block never straddles two groups (channels of one block share B and C). Blocks narrower than W
// (the end of a group) go through zero-padded copies of their inputs, so every lane computes finite
// values and only the valid lanes are written.
//
// Work item = (batch b, group g, channel block j); items are independent and their results do not
// depend on which thread runs them (bitwise identical for any thread count).

#include <algorithm>
#include <cstring>
#include <utility>  // std::integer_sequence

#include "tokenmix/core/tensor.hpp"
#include "tokenmix/simd/activations.hpp"

namespace tokenmix::ssm::detail {

// One validated call as raw pointers (row-major, token-major).
struct SelectiveScanProblem {
  Index batch, length, channels, state, groups;
  const float* u;              // [B, L, D]
  const float* delta;          // [B, L, D]
  const float* A;              // [D, N]
  const float* B;              // [B, L, G, N], or [D, N] when B_time_invariant
  const float* C;              // [B, L, G, N], or [D, N] when C_time_invariant
  bool B_time_invariant, C_time_invariant;
  const float* D;              // [D] or nullptr
  const float* z;              // [B, L, D] or nullptr
  const float* delta_bias;     // [D] or nullptr
  bool delta_softplus;
  const float* initial_state;  // [B, D, N] or nullptr
  float* out;                  // [B, L, D]
  float* last_state;           // [B, D, N] or nullptr
};

template <class Arch>
struct SelectiveScanKernel {
  using V = simd::vfloat<Arch>;
  static constexpr Index W = static_cast<Index>(simd::lanes<Arch>);

  static Index blocks_per_group(const SelectiveScanProblem& p) {
    const Index per_group = p.channels / p.groups;
    return (per_group + W - 1) / W;
  }
  static Index num_items(const SelectiveScanProblem& p) { return p.batch * p.groups * blocks_per_group(p); }
  // Floats of scratch one thread needs (reused for all its items).
  static Index scratch_floats(const SelectiveScanProblem& p) { return (4 * p.state + 8) * W; }

  static void run_item(const SelectiveScanProblem& p, Index item, float* scratch) noexcept {
    const Index bpg = blocks_per_group(p), per_group = p.channels / p.groups;
    const Index b = item / (p.groups * bpg);
    const Index g = (item / bpg) % p.groups;
    const Index j = item % bpg;
    const Index d0 = g * per_group + j * W;
    const Index width = std::min(W, per_group - j * W);
    const bool selective = !p.B_time_invariant && !p.C_time_invariant;
    if (selective) {
      switch (p.state) {
        case 4: return block<4, true, true>(p, b, g, d0, width, scratch);
        case 8: return block<8, true, true>(p, b, g, d0, width, scratch);
        case 16: return block<16, true, true>(p, b, g, d0, width, scratch);
        case 32: return block<32, true, true>(p, b, g, d0, width, scratch);
        default: return block<0, true, true>(p, b, g, d0, width, scratch);
      }
    }
    if (!p.B_time_invariant) return block<0, true, false>(p, b, g, d0, width, scratch);
    if (!p.C_time_invariant) return block<0, false, true>(p, b, g, d0, width, scratch);
    return block<0, false, false>(p, b, g, d0, width, scratch);
  }

 private:
  // dst[n * W + lane] = src[(d0 + lane) * N + n] for lane < width, 0 beyond (a [W, N] -> [N, W] transpose).
  static void transpose_in(const float* src, Index d0, Index width, Index N, float* dst) noexcept {
    for (Index n = 0; n < N; ++n)
      for (Index lane = 0; lane < W; ++lane) dst[n * W + lane] = lane < width ? src[(d0 + lane) * N + n] : 0.0f;
  }
  static void transpose_out(const float* src, Index d0, Index width, Index N, float* dst) noexcept {
    for (Index n = 0; n < N; ++n)
      for (Index lane = 0; lane < width; ++lane) dst[(d0 + lane) * N + n] = src[n * W + lane];
  }
  template <int... I, class F>
  static TOKENMIX_ALWAYS_INLINE void for_each_index(std::integer_sequence<int, I...>, F&& f) noexcept {
    (f(std::integral_constant<int, I>{}), ...);
  }
  // Load `width` floats, zero-padded to W through `pad` when the block is partial.
  static TOKENMIX_ALWAYS_INLINE V load_block(const float* src, Index width, float* pad) noexcept {
    if (width == W) return simd::load<Arch>(src);
    std::memset(pad, 0, sizeof(float) * W);
    std::memcpy(pad, src, sizeof(float) * static_cast<std::size_t>(width));
    return simd::load<Arch>(pad);
  }
  static TOKENMIX_ALWAYS_INLINE void store_block(float* dst, V v, Index width, float* pad) noexcept {
    if (width == W) return simd::store<Arch>(dst, v);
    simd::store<Arch>(pad, v);
    std::memcpy(dst, pad, sizeof(float) * static_cast<std::size_t>(width));
  }

  // Scans channels [d0, d0 + width) of batch b, group g over all L tokens.
  // NC: N known at compile time (state in registers), or 0 (state in scratch).
  // VarB / VarC: selective [B, L, G, N] operand (broadcast per token) vs time-invariant [D, N].
  template <int NC, bool VarB, bool VarC>
  static void block(const SelectiveScanProblem& p, Index b, Index g, Index d0, Index width,
                    float* scratch) noexcept {
    const Index N = NC > 0 ? NC : p.state;
    const Index L = p.length, D = p.channels, G = p.groups;
    float* A2 = scratch;          // [N, W] A[d0 + lane, n] * log2(e)
    float* B_ti = A2 + N * W;     // [N, W] time-invariant B (unused when VarB)
    float* C_ti = B_ti + N * W;   // [N, W] time-invariant C (unused when VarC)
    float* h_mem = C_ti + N * W;  // [N, W] state when NC == 0; staging for initial / last state
    float* pad = h_mem + N * W;   // [8, W] zero-padded copies for partial blocks

    transpose_in(p.A, d0, width, N, A2);
    for (Index i = 0; i < N * W; ++i) A2[i] *= 1.44269504088896341f;  // exp(x) = exp2(x·log2(e))
    if constexpr (!VarB) transpose_in(p.B, d0, width, N, B_ti);
    if constexpr (!VarC) transpose_in(p.C, d0, width, N, C_ti);
    if (p.initial_state)
      transpose_in(p.initial_state + b * D * N, d0, width, N, h_mem);
    else
      std::fill(h_mem, h_mem + N * W, 0.0f);

    const V bias = p.delta_bias ? load_block(p.delta_bias + d0, width, pad) : V(0.0f);
    const V skip = p.D ? load_block(p.D + d0, width, pad + W) : V(0.0f);

    V h_reg[NC > 0 ? NC : 1];  // the state in registers when N is known
    // Every access to h_reg uses a constant index (for_each_index, not a loop unrolled later), so
    // the compiler can keep each h_reg[n] in a register.
    if constexpr (NC > 0)
      for_each_index(std::make_integer_sequence<int, NC>{}, [&](auto n) TOKENMIX_ALWAYS_INLINE_LAMBDA {
        h_reg[n()] = simd::load<Arch>(h_mem + n() * W);
      });

    for (Index t = 0; t < L; ++t) {
      const Index off = (b * L + t) * D + d0;  // (b, t, d0) in [B, L, D]
      V dt = load_block(p.delta + off, width, pad + 2 * W) + bias;
      if (p.delta_softplus) dt = simd::softplus<Arch>(dt);
      const V x = load_block(p.u + off, width, pad + 3 * W);
      const V dt_x = dt * x;
      const float* B_t = VarB ? p.B + ((b * L + t) * G + g) * N : nullptr;  // [N] B[b, t, g, :]
      const float* C_t = VarC ? p.C + ((b * L + t) * G + g) * N : nullptr;  // [N] C[b, t, g, :]
      V y(0.0f);
      auto update = [&](Index n, V h) TOKENMIX_ALWAYS_INLINE_LAMBDA {
        const V decay = simd::exp2<Arch>(dt * simd::load<Arch>(A2 + n * W));
        const V Bn = VarB ? V(B_t[n]) : simd::load<Arch>(B_ti + n * W);
        const V Cn = VarC ? V(C_t[n]) : simd::load<Arch>(C_ti + n * W);
        h = simd::fmadd<Arch>(decay, h, dt_x * Bn);
        y = simd::fmadd<Arch>(h, Cn, y);
        return h;
      };
      if constexpr (NC > 0) {
        for_each_index(std::make_integer_sequence<int, NC>{}, [&](auto n) TOKENMIX_ALWAYS_INLINE_LAMBDA {
          h_reg[n()] = update(n(), h_reg[n()]);
        });
      } else {
        for (Index n = 0; n < N; ++n)
          simd::store<Arch>(h_mem + n * W, update(n, simd::load<Arch>(h_mem + n * W)));
      }
      if (p.D) y = simd::fmadd<Arch>(x, skip, y);
      if (p.z) y *= simd::silu<Arch>(load_block(p.z + off, width, pad + 4 * W));
      store_block(p.out + off, y, width, pad + 5 * W);
    }

    if (p.last_state) {
      if constexpr (NC > 0)
        for_each_index(std::make_integer_sequence<int, NC>{}, [&](auto n) TOKENMIX_ALWAYS_INLINE_LAMBDA {
          simd::store<Arch>(h_mem + n() * W, h_reg[n()]);
        });
      transpose_out(h_mem, d0, width, N, p.last_state + b * D * N);
    }
  }
};

}  // namespace tokenmix::ssm::detail
