#pragma once
// SIMD kernels of the depthwise causal conv1d and its one-token step (the equations are in
// reference/causal_conv1d.hpp).
//
// Vectorized over channels: one vector holds W = lanes<Arch> consecutive channels of one token, so
// out[t, d..d+W) = bias + sum_k w[:, k] * x[t-(K-1)+k, d..d+W) is K FMAs on whole vectors: no
// shuffles, no reductions. The op is memory-bound (K FMAs per 8 bytes of x + out), so the kernel
// walks memory in order: a work item is (batch b, channel block j); a thread takes its items in
// tiles of up to kMaxTileChannels consecutive channels of one batch row and walks the tokens of the
// tile row by row, so x and out are streamed in long runs (whole rows for D <= 4096), and the K-1
// previous rows a token needs are still in cache (x is read once from memory). The weights [D, K]
// are transposed once per tile into [K, tile] (plus bias), so every tap is one vector load.
// The K-1 tokens before t = 0 come from the initial state ([B, D, K-1], transposed per tile into
// `hist` [K-1, tile], zeros if absent); only the first K-1 tokens look there, the rest read x.
// K = 4 (Mamba's d_conv) is specialised at compile time (taps unrolled); other K loop.
// The last block of a row may be narrower than W: x is loaded with masked / zero-padded loads and
// only the valid lanes are stored; weights and bias are zero-padded, so padded lanes stay finite.
// Each lane's arithmetic (bias, then fmadd over k = 0..K-1 in order, then silu) is the same whatever
// the tiling or thread, and the same as the step kernel's, so results are bitwise identical for any
// thread count and token-by-token causal_conv1d_update reproduces causal_conv1d bitwise.

#include <algorithm>

#include "tokenmix/core/tensor.hpp"
#include "tokenmix/simd/activations.hpp"

namespace tokenmix::ssm::detail {

// One validated call as raw pointers (row-major, token-major).
struct CausalConv1dProblem {
  Index batch, length, channels, kernel_size;  // B, L, D, K
  const float* x;              // [B, L, D]
  const float* weight;         // [D, K]
  const float* bias;           // [D] or nullptr
  bool silu;
  const float* initial_state;  // [B, D, K-1] or nullptr
  float* out;                  // [B, L, D]
  float* final_state;          // [B, D, K-1] or nullptr (may equal initial_state)
};

// One validated step: x [B, D], conv_state [B, D, K-1] in place, out [B, D].
struct CausalConv1dUpdateProblem {
  Index batch, channels, kernel_size;
  const float* x;       // [B, D]
  float* conv_state;    // [B, D, K-1]
  const float* weight;  // [D, K]
  const float* bias;    // [D] or nullptr
  bool silu;
  float* out;           // [B, D]
};

template <class Arch>
struct CausalConv1dKernel {
  using V = simd::vfloat<Arch>;
  static constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  // 4096 channels: a whole row of most Mamba layers (d_inner = 1536 .. 5120) in one or two tiles, so
  // x and out stream sequentially (rows back to back); the K rows a token reads (<= 16 KiB each) and
  // the transposed weights stay in L1/L2.
  static constexpr Index kMaxTileChannels = 4096;
  static constexpr Index kMaxTileBlocks = kMaxTileChannels / W;

  static Index blocks_per_row(Index channels) { return (channels + W - 1) / W; }
  static Index num_items(const CausalConv1dProblem& p) { return p.batch * blocks_per_row(p.channels); }
  // Floats of scratch one thread needs: transposed weights [K, T], hist [K-1, T], bias [T], pad.
  static Index scratch_floats(Index kernel_size) { return (2 * kernel_size) * kMaxTileChannels + 2 * W; }

  // Runs items [first, last). scratch: scratch_floats(K) floats, 64-byte aligned.
  static void run_items(const CausalConv1dProblem& p, Index first, Index last, float* scratch) noexcept {
    const Index bpr = blocks_per_row(p.channels);
    for (Index item = first; item < last;) {
      const Index b = item / bpr, j0 = item % bpr;
      const Index j1 = std::min({bpr, j0 + kMaxTileBlocks, j0 + (last - item)});
      if (p.kernel_size == 4) run_tile<4>(p, b, j0, j1, scratch);
      else run_tile<0>(p, b, j0, j1, scratch);
      item += j1 - j0;
    }
  }


  // The one per-vector formula, shared by the conv and the step: bias, fmadd over k in order, silu.
  // tap(k): the input vector of tap k; w: [K, stride] transposed weights at this block.
  template <int KC, class Tap>
  static TOKENMIX_ALWAYS_INLINE V convolve(Index K_runtime, const float* w, Index stride, V bias, bool silu,
                                          Tap&& tap) noexcept {
    const Index K = KC > 0 ? KC : K_runtime;
    V acc = bias;
    for (Index k = 0; k < K; ++k) acc = simd::fmadd<Arch>(simd::load<Arch>(w + k * stride), tap(k), acc);
    return silu ? simd::silu<Arch>(acc) : acc;
  }

  // [K, T] <- weight[d0 + c, k] (zero beyond `width` channels, up to T = padded tile width).
  static void transpose_weights(const float* weight, Index K, Index d0, Index width, Index T, float* dst) noexcept {
    for (Index k = 0; k < K; ++k)
      for (Index c = 0; c < T; ++c) dst[k * T + c] = c < width ? weight[(d0 + c) * K + k] : 0.0f;
  }

 private:
  template <int KC>
  static void run_tile(const CausalConv1dProblem& p, Index b, Index j0, Index j1, float* scratch) noexcept {
    const Index K = KC > 0 ? KC : p.kernel_size, D = p.channels, L = p.length;
    const Index d0 = j0 * W, T = (j1 - j0) * W, width = std::min(D, j1 * W) - d0;
    float* wT = scratch;             // [K, T]
    float* hist = wT + K * T;        // [K-1, T] inputs at t = -(K-1) .. -1
    float* bias = hist + (K - 1) * T;  // [T]
    float* pad = bias + T;           // [2, W]
    transpose_weights(p.weight, K, d0, width, T, wT);
    for (Index c = 0; c < T; ++c) bias[c] = p.bias && c < width ? p.bias[d0 + c] : 0.0f;
    const float* init = p.initial_state ? p.initial_state + (b * D + d0) * (K - 1) : nullptr;
    for (Index i = 0; i < K - 1; ++i)
      for (Index c = 0; c < T; ++c) hist[i * T + c] = init && c < width ? init[c * (K - 1) + i] : 0.0f;

    const float* x = p.x + b * L * D + d0;  // row t at x + t·D
    float* out = p.out + b * L * D + d0;
    const Index head = std::min(L, K - 1);  // tokens that reach into hist
    for (Index t = 0; t < L; ++t) {
      for (Index j = 0; j < j1 - j0; ++j) {
        const Index c = j * W, w = std::min(W, width - c);
        const float* xc = x + c;
        V y;
        if (t >= head) {
          const float* x0 = xc + (t - (K - 1)) * D;  // row of tap 0
          y = convolve<KC>(K, wT + c, T, simd::load<Arch>(bias + c), p.silu,
                           [&](Index k) TOKENMIX_ALWAYS_INLINE_LAMBDA { return simd::load_upto<Arch>(x0 + k * D, w, pad); });
        } else {
          y = convolve<KC>(K, wT + c, T, simd::load<Arch>(bias + c), p.silu, [&](Index k) TOKENMIX_ALWAYS_INLINE_LAMBDA {
            const Index s = t - (K - 1) + k;  // input time of tap k
            return s < 0 ? simd::load<Arch>(hist + (K - 1 + s) * T + c) : simd::load_upto<Arch>(xc + s * D, w, pad);
          });
        }
        simd::store_upto<Arch>(out + t * D + c, y, w, pad + W);
      }
    }
    if (p.final_state) {  // the last K-1 raw inputs; hist already holds the initial state (aliasing is fine)
      float* fin = p.final_state + (b * D + d0) * (K - 1);
      for (Index c = 0; c < width; ++c)
        for (Index i = 0; i < K - 1; ++i) {
          const Index s = L - (K - 1) + i;
          fin[c * (K - 1) + i] = s >= 0 ? x[s * D + c] : hist[(K - 1 + s) * T + c];
        }
    }
  }
};

// The one-token step, same formula as the conv. Work item = (batch b, channel block j).
template <class Arch>
struct CausalConv1dUpdateKernel {
  using Conv = CausalConv1dKernel<Arch>;
  using V = typename Conv::V;
  static constexpr Index W = Conv::W;

  static Index num_items(const CausalConv1dUpdateProblem& p) { return p.batch * Conv::blocks_per_row(p.channels); }
  // window [K, W], transposed weights [K, W], bias [W], pad [2, W].
  static Index scratch_floats(Index kernel_size) { return 2 * kernel_size * W + 3 * W; }

  static void run_items(const CausalConv1dUpdateProblem& p, Index first, Index last, float* scratch) noexcept {
    if (p.kernel_size == 4) run<4>(p, first, last, scratch);
    else run<0>(p, first, last, scratch);
  }

 private:
  template <int KC>
  static void run(const CausalConv1dUpdateProblem& p, Index first, Index last, float* scratch) noexcept {
    const Index K = KC > 0 ? KC : p.kernel_size, D = p.channels, bpr = Conv::blocks_per_row(D);
    float* window = scratch;     // [K, W] conv_state ‖ x, transposed
    float* wT = window + K * W;  // [K, W]
    float* bias = wT + K * W;    // [W]
    float* pad = bias + W;       // [2, W]
    for (Index item = first; item < last; ++item) {
      const Index b = item / bpr, d0 = (item % bpr) * W, width = std::min(W, D - d0);
      float* state = p.conv_state + (b * D + d0) * (K - 1);  // [width, K-1]
      const float* x = p.x + b * D + d0;
      Conv::transpose_weights(p.weight, K, d0, width, W, wT);
      for (Index c = 0; c < W; ++c) bias[c] = p.bias && c < width ? p.bias[d0 + c] : 0.0f;
      for (Index k = 0; k < K; ++k)
        for (Index c = 0; c < W; ++c)
          window[k * W + c] = c >= width ? 0.0f : k < K - 1 ? state[c * (K - 1) + k] : x[c];
      const V y = Conv::template convolve<KC>(K, wT, W, simd::load<Arch>(bias), p.silu,
                                              [&](Index k) TOKENMIX_ALWAYS_INLINE_LAMBDA {
                                                return simd::load<Arch>(window + k * W);
                                              });
      simd::store_upto<Arch>(p.out + b * D + d0, y, width, pad);
      for (Index c = 0; c < width; ++c)  // shift: drop the oldest, append x
        for (Index k = 0; k < K - 1; ++k) state[c * (K - 1) + k] = window[(k + 1) * W + c];
    }
  }
};

}  // namespace tokenmix::ssm::detail
