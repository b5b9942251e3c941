#pragma once
// SIMD kernel of the depthwise 2-D convolution (the equation is in reference/depthwise_conv2d.hpp).
//
// Channels-last images make every tap a vector operation over W = lanes<Arch> consecutive channels:
// with the weights transposed once to wt [K, K, C], output pixel (i, j) of channel block c is
// sum_{u, v} wt[u, v, c..]·x[i + u - K/2, j + v - K/2, c..]. Work item = one output row of one image.
// Columns whose taps all fall inside the image go four at a time (each weight vector loaded once for
// the four, in registers); the K/2 border columns at each end check their taps (outside = 0, never
// read). The last channel block uses masked / zero-padded loads and stores. Each output's sum is
// taken in the same (u, v) order whatever the blocking, so results are bitwise identical for any
// thread count.

#include <algorithm>

#include "tokenmix/core/tensor.hpp"
#include "tokenmix/simd/activations.hpp"

namespace tokenmix::blocks::detail {

struct DepthwiseConv2dProblem {
  Index batch, height, width, channels, kernel_size;
  const float* x;     // [B, H, W, C]
  const float* wt;    // [K, K, C] the weights transposed
  const float* bias;  // [C] or nullptr
  bool activation_silu;
  float* out;         // [B, H, W, C]
};

template <class Arch>
struct DepthwiseConv2dKernel {
  using V = simd::vfloat<Arch>;
  static constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  static constexpr int kColumns = 4;  // interior output columns per register block

  static Index num_items(const DepthwiseConv2dProblem& p) { return p.batch * p.height; }

  // Output rows [first, last) of the (batch, row) items.
  static void run_items(const DepthwiseConv2dProblem& p, Index first, Index last) noexcept {
    alignas(64) float pad[64];
    for (Index item = first; item < last; ++item) run_row(p, item / p.height, item % p.height, pad);
  }

 private:
  static void run_row(const DepthwiseConv2dProblem& p, Index b, Index i, float* pad) noexcept {
    const Index Wd = p.width, C = p.channels, K = p.kernel_size, half = K / 2;
    const Index u_lo = std::max<Index>(0, half - i), u_hi = std::min(K, p.height - i + half);  // taps inside
    const float* image = p.x + b * p.height * Wd * C;
    float* out = p.out + ((b * p.height + i) * Wd) * C;
    const Index interior_lo = std::min(half, Wd), interior_hi = std::max(interior_lo, Wd - half);
    for (Index c0 = 0; c0 < C; c0 += W) {
      const Index count = std::min(W, C - c0);
      const V bias = p.bias ? simd::load_upto<Arch>(p.bias + c0, count, pad) : V(0.0f);
      // One column with bounds checks (the borders, and the interior's remainder).
      auto single = [&](Index j) {
        V acc = bias;
        for (Index u = u_lo; u < u_hi; ++u) {
          const float* row = image + (i + u - half) * Wd * C + c0;
          for (Index v = 0; v < K; ++v) {
            const Index z = j + v - half;
            if (z < 0 || z >= Wd) continue;
            acc = simd::fmadd<Arch>(simd::load_upto<Arch>(p.wt + (u * K + v) * C + c0, count, pad),
                                    simd::load_upto<Arch>(row + z * C, count, pad), acc);
          }
        }
        finish(p, acc, out + j * C + c0, count, pad);
      };
      for (Index j = 0; j < interior_lo; ++j) single(j);
      Index j = interior_lo;
      for (; j + kColumns <= interior_hi; j += kColumns) {
        V acc[kColumns];
        for (int jj = 0; jj < kColumns; ++jj) acc[jj] = bias;
        for (Index u = u_lo; u < u_hi; ++u) {
          const float* row = image + (i + u - half) * Wd * C + c0;
          for (Index v = 0; v < K; ++v) {
            const V w = simd::load_upto<Arch>(p.wt + (u * K + v) * C + c0, count, pad);
            for (int jj = 0; jj < kColumns; ++jj)
              acc[jj] = simd::fmadd<Arch>(w, simd::load_upto<Arch>(row + (j + jj + v - half) * C, count, pad), acc[jj]);
          }
        }
        for (int jj = 0; jj < kColumns; ++jj) finish(p, acc[jj], out + (j + jj) * C + c0, count, pad);
      }
      for (; j < Wd; ++j) single(j);
    }
  }

  static TOKENMIX_ALWAYS_INLINE void finish(const DepthwiseConv2dProblem& p, V acc, float* dst, Index count,
                                            float* pad) noexcept {
    if (p.activation_silu) acc = simd::silu<Arch>(acc);
    simd::store_upto<Arch>(dst, acc, count, pad);
  }
};

}  // namespace tokenmix::blocks::detail
