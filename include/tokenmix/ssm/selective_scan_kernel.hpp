#pragma once
// SIMD kernel of the Mamba-1 selective scan (the equations are in reference/selective_scan.hpp).
//
// Vectorized over channels: one vector holds W = lanes<Arch> consecutive channels of one group, so
//  - exp(dt·A) for the W channels of one state index n is ONE vector exp2 (of dt · A·log2(e), the
//    CUDA kernel's formulation), i.e. W·N scalar exps per token become N vector exps;
//  - B[t, g, n] and C[t, g, n] are shared by the W channels: a broadcast, not a gather;
//  - while a block is scanned its state h[n] stays in registers (N specialised at compile time for
//    4, 8, 16 and 32), and y = sum_n h[n]·C[n] accumulates lane-wise: no horizontal reductions.
// Memory: u/delta/z/out are [B, L, D], so one channel block walks L rows D floats apart; walking all
// of L for one block before the next touches a new page per token and array. Instead a thread
// takes its blocks in tiles of up to a whole row (blocks_per_tile) and the tokens in chunks of
// kTokensPerChunk: every block of the tile advances one chunk (its state saved in scratch between
// chunks), then the next chunk. While a block's chunk runs, the rows of the next block are
// prefetched (strided rows defeat the hardware prefetcher).
// Per token, dt = softplus(delta + bias) and dt·x of the NEXT token are computed during this
// token's recurrence (software pipelining), so their latency hides behind the N exps.
// A block never straddles two groups (channels of one block share B and C). Blocks narrower than W
// (the end of a group) use masked / zero-padded loads, so every lane computes finite values, and
// only the valid lanes are written.
//
// Work item = (batch b, group g, channel block j). Each lane's arithmetic is the same whatever the
// tiling, chunking or thread, so results are bitwise identical for any thread count.

#include <algorithm>
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
  static constexpr Index kTokensPerChunk = 64;
  // A tile holds up to 256 KiB of per-block state (A·log2 e and h), L2-resident, and at most 256
  // blocks (4096 channels: a whole row of most models, so each page of u/delta/z/out is visited once
  // per chunk instead of once per chunk and tile).
  static Index blocks_per_tile(const SelectiveScanProblem& p) {
    return std::max<Index>(1, std::min<Index>(256, (Index(256) << 10) / (2 * p.state * W * Index(sizeof(float)))));
  }

  static Index blocks_per_group(const SelectiveScanProblem& p) { return (p.channels / p.groups + W - 1) / W; }
  static Index num_items(const SelectiveScanProblem& p) { return p.batch * p.groups * blocks_per_group(p); }
  // Floats of scratch one thread needs (whatever its range of items).
  static Index scratch_floats(const SelectiveScanProblem& p) {
    return blocks_per_tile(p) * 2 * p.state * W + (2 * p.state + 8) * W;
  }

  // Runs items [first, last). scratch: scratch_floats(p) floats.
  static void run_items(const SelectiveScanProblem& p, Index first, Index last, float* scratch) noexcept {
    const Index tile = blocks_per_tile(p);
    for (Index tile_first = first; tile_first < last; tile_first += tile)
      run_tile(p, tile_first, std::min(last, tile_first + tile), scratch);
  }

 private:
  struct Block {
    Index b, g, d0, width;  // batch, group, first channel, valid lanes (<= W)
  };
  // Rows to prefetch (into L2) while a block's chunk runs: at token t, row t of each stream
  // (delta, u, z, out of the next block) at base + t·row_stride, for t < rows.
  struct RowPrefetch {
    const float* base[4] = {};
    Index rows = 0;
    Index row_stride = 0;
    TOKENMIX_ALWAYS_INLINE void operator()(Index t) const noexcept {
      if (t >= rows) return;
      for (const float* r : base)
        if (r) __builtin_prefetch(r + t * row_stride, 0, 2);
    }
  };
  static Block locate(const SelectiveScanProblem& p, Index item) {
    const Index bpg = blocks_per_group(p), per_group = p.channels / p.groups;
    const Index j = item % bpg, g = (item / bpg) % p.groups;
    return {item / (p.groups * bpg), g, g * per_group + j * W, std::min(W, per_group - j * W)};
  }

  static void run_tile(const SelectiveScanProblem& p, Index first, Index last, float* scratch) noexcept {
    const Index N = p.state, blocks = last - first;
    auto blk = [&](Index i) { return locate(p, first + i); };
    float* A2 = scratch;                     // [tile, N, W] A[d, n]·log2(e) of each block's channels
    float* h = A2 + blocks * N * W;          // [tile, N, W] each block's state between chunks
    float* shared = h + blocks * N * W;      // [2N + 8, W] time-invariant B/C, padding

    for (Index i = 0; i < blocks; ++i) {
      transpose_in(p.A, blk(i).d0, blk(i).width, N, A2 + i * N * W);
      for (Index k = 0; k < N * W; ++k) A2[i * N * W + k] *= 1.44269504088896341f;  // exp(x) = exp2(x·log2(e))
      if (p.initial_state)
        transpose_in(p.initial_state + blk(i).b * p.channels * N, blk(i).d0, blk(i).width, N, h + i * N * W);
      else
        std::fill(h + i * N * W, h + (i + 1) * N * W, 0.0f);
    }
    for (Index t0 = 0; t0 < p.length; t0 += kTokensPerChunk) {
      const Index tokens = std::min(p.length - t0, kTokensPerChunk);
      for (Index i = 0; i < blocks; ++i) {
        // While this block's chunk runs, prefetch the rows of the next one (strided rows defeat the
        // hardware prefetcher; a chunk is long enough to hide their latency).
        RowPrefetch prefetch;
        const bool next_in_chunk = i + 1 < blocks;
        const Index next_t0 = next_in_chunk ? t0 : t0 + kTokensPerChunk;
        if (next_t0 < p.length) {
          const Block nk = next_in_chunk ? blk(i + 1) : blk(0);
          const Index row0 = (nk.b * p.length + next_t0) * p.channels + nk.d0;  // (b, next_t0, d0) in [B, L, D]
          prefetch = {{p.delta + row0, p.u + row0, p.z ? p.z + row0 : nullptr, p.out + row0},
                      std::min(kTokensPerChunk, p.length - next_t0), p.channels};
        }
        scan_chunk(p, blk(i), t0, tokens, A2 + i * N * W, h + i * N * W, shared, prefetch);
      }
    }
    if (p.last_state)
      for (Index i = 0; i < blocks; ++i)
        transpose_out(h + i * N * W, blk(i).d0, blk(i).width, N, p.last_state + blk(i).b * p.channels * N);
  }

  static void scan_chunk(const SelectiveScanProblem& p, const Block& blk, Index t0, Index tokens, const float* A2,
                         float* h, float* shared, const RowPrefetch& pf) noexcept {
    if (!p.B_time_invariant && !p.C_time_invariant) {
      switch (p.state) {
        case 4: return chunk<4, true, true>(p, blk, t0, tokens, A2, h, shared, pf);
        case 8: return chunk<8, true, true>(p, blk, t0, tokens, A2, h, shared, pf);
        case 16: return chunk<16, true, true>(p, blk, t0, tokens, A2, h, shared, pf);
        case 32: return chunk<32, true, true>(p, blk, t0, tokens, A2, h, shared, pf);
        default: return chunk<0, true, true>(p, blk, t0, tokens, A2, h, shared, pf);
      }
    }
    if (!p.B_time_invariant) return chunk<0, true, false>(p, blk, t0, tokens, A2, h, shared, pf);
    if (!p.C_time_invariant) return chunk<0, false, true>(p, blk, t0, tokens, A2, h, shared, pf);
    return chunk<0, false, false>(p, blk, t0, tokens, A2, h, shared, pf);
  }

  // dst[n * W + lane] = src[(d0 + lane) * N + n] for lane < width, 0 beyond (a [W, N] -> [N, W] transpose).
  static void transpose_in(const float* src, Index d0, Index width, Index N, float* dst) noexcept {
    for (Index n = 0; n < N; ++n)
      for (Index lane = 0; lane < W; ++lane) dst[n * W + lane] = lane < width ? src[(d0 + lane) * N + n] : 0.0f;
  }
  static void transpose_out(const float* src, Index d0, Index width, Index N, float* dst) noexcept {
    for (Index n = 0; n < N; ++n)
      for (Index lane = 0; lane < width; ++lane) dst[(d0 + lane) * N + n] = src[n * W + lane];
  }
  // f(v_0, ..., v_{NC-1}) with NC zero vectors as separate arguments.
  template <int... I, class F>
  static TOKENMIX_ALWAYS_INLINE void with_registers(std::integer_sequence<int, I...>, F&& f) noexcept {
    f(((void)I, V(0.0f))...);
  }

  // Scans tokens [t0, t0 + tokens) of one block, state h [N, W] in and out.
  // NC: N known at compile time (state in registers), or 0 (state stays in h).
  // VarB / VarC: selective [B, L, G, N] operand (broadcast per token) vs time-invariant [D, N].
  template <int NC, bool VarB, bool VarC>
  static void chunk(const SelectiveScanProblem& p, const Block& blk, Index t0, Index tokens, const float* A2, float* h,
                    float* shared, const RowPrefetch& pf) noexcept {
    const Index N = NC > 0 ? NC : p.state, width = blk.width, stride = p.channels;
    float* B_ti = shared;        // [N, W] time-invariant B (unused when VarB)
    float* C_ti = B_ti + N * W;  // [N, W] time-invariant C (unused when VarC)
    float* pad = C_ti + N * W;   // [8, W] zero-padded copies for partial blocks
    if constexpr (!VarB) transpose_in(p.B, blk.d0, width, N, B_ti);
    if constexpr (!VarC) transpose_in(p.C, blk.d0, width, N, C_ti);
    const Index row0 = (blk.b * p.length + t0) * stride + blk.d0;  // (b, t0, d0) in [B, L, D]
    const float* u = p.u + row0;                                    // row t at u + t·D
    const float* delta = p.delta + row0;
    const float* z = p.z ? p.z + row0 : nullptr;
    float* out = p.out + row0;
    const Index bc_row = p.groups * N;  // B[b, t0 + t, g, :] at B_rows + t·G·N
    const float* B_rows = VarB ? p.B + (blk.b * p.length + t0) * bc_row + blk.g * N : nullptr;
    const float* C_rows = VarC ? p.C + (blk.b * p.length + t0) * bc_row + blk.g * N : nullptr;
    const V bias = p.delta_bias ? simd::load_upto<Arch>(p.delta_bias + blk.d0, width, pad) : V(0.0f);
    const V skip = p.D ? simd::load_upto<Arch>(p.D + blk.d0, width, pad + W) : V(0.0f);

    // dt = softplus(delta + bias) and dt·x of token t. They do not depend on the state, so token
    // t + 1's are computed during token t's recurrence (software pipelining): the softplus latency
    // (exp, log, divide) then hides behind the N exps instead of stalling them.
    auto inputs = [&](Index t, V& dt, V& dt_x) TOKENMIX_ALWAYS_INLINE_LAMBDA {
      V d = simd::load_upto<Arch>(delta + t * stride, width, pad + 2 * W) + bias;
      if (p.delta_softplus) d = simd::softplus<Arch>(d);
      dt = d;
      dt_x = d * simd::load_upto<Arch>(u + t * stride, width, pad + 3 * W);
    };

    // The token loop; update_state(update) applies h[n] = update(n, h[n]) to every state vector.
    auto scan_tokens = [&](auto&& update_state) TOKENMIX_ALWAYS_INLINE_LAMBDA {
      V dt, dt_x;
      if (tokens > 0) inputs(0, dt, dt_x);
      for (Index t = 0; t < tokens; ++t) {
        pf(t);
        const V gate = z ? simd::silu<Arch>(simd::load_upto<Arch>(z + t * stride, width, pad + 4 * W)) : V(1.0f);
        V dt_next = dt, dt_x_next = dt_x;
        if (t + 1 < tokens) inputs(t + 1, dt_next, dt_x_next);
        const float* B_t = VarB ? B_rows + t * bc_row : nullptr;  // [N] B[b, t0 + t, g, :]
        const float* C_t = VarC ? C_rows + t * bc_row : nullptr;  // [N] C[b, t0 + t, g, :]
        // Two partial sums of y over even and odd n halve the dependency chain of the readout.
        V y_even(0.0f), y_odd(0.0f);
        update_state([&](Index n, V state) TOKENMIX_ALWAYS_INLINE_LAMBDA {
          const V decay = simd::exp2<Arch>(dt * simd::load<Arch>(A2 + n * W));
          const V Bn = VarB ? V(B_t[n]) : simd::load<Arch>(B_ti + n * W);
          const V Cn = VarC ? V(C_t[n]) : simd::load<Arch>(C_ti + n * W);
          state = simd::fmadd<Arch>(decay, state, dt_x * Bn);
          V& acc = (n & 1) ? y_odd : y_even;
          acc = simd::fmadd<Arch>(state, Cn, acc);
          return state;
        });
        V y = y_even + y_odd;
        if (p.D) y = simd::fmadd<Arch>(simd::load_upto<Arch>(u + t * stride, width, pad + 5 * W), skip, y);
        simd::store_upto<Arch>(out + t * stride, y * gate, width, pad + 6 * W);
        dt = dt_next, dt_x = dt_x_next;
      }
    };

    if constexpr (NC > 0) {
      // The NC state vectors are NC separate local variables (a parameter pack), not an array: the
      // compiler keeps them in registers, where an array stays in memory (and its stores can
      // falsely alias the strided input loads, 4K aliasing, which costs up to 50%).
      with_registers(std::make_integer_sequence<int, NC>{}, [&](auto... h_reg) TOKENMIX_ALWAYS_INLINE_LAMBDA {
        Index n = 0;
        ((h_reg = simd::load<Arch>(h + (n++) * W)), ...);
        scan_tokens([&](auto&& update) TOKENMIX_ALWAYS_INLINE_LAMBDA {
          Index m = 0;
          ((h_reg = update(m++, h_reg)), ...);
        });
        n = 0;
        (simd::store<Arch>(h + (n++) * W, h_reg), ...);
      });
    } else {
      scan_tokens([&](auto&& update) TOKENMIX_ALWAYS_INLINE_LAMBDA {
        for (Index n = 0; n < N; ++n) simd::store<Arch>(h + n * W, update(n, simd::load<Arch>(h + n * W)));
      });
    }
  }
};

}  // namespace tokenmix::ssm::detail
