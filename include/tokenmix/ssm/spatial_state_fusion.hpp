#pragma once
// Spatial-Mamba's structure-aware state fusion (SASF, spec vision_ssm.md §8): the hidden states of a
// row-major scan, h [B, H, W, D, N], fused by depthwise dilated 3×3 convolutions with replicate
// padding and read out with C and the D skip (equations in spatial_state_fusion_types.hpp):
//
//   ssm::SelectiveScanStatesResult s = ssm::selective_scan_states(...);        // states [B, L, D, N]
//   ssm::SpatialStateFusionOptions o;  o.dilations = {1, 3, 5}, o.D = D, o.u = u;
//   Tensor<float, 4> y = ssm::spatial_state_fusion(states viewed as [B, H, W, D, N], kernels, alpha, C, o);
//
// Fast path: the fused state h' is never materialised. For each cell, the k·9 taps accumulate
// (α_k·K_k[d, tap]) · h[neighbour][d, n] over the cell's contiguous D·N block in vector registers
// (weights expanded over n once per call), then the C readout and the skip. Threads split image rows;
// every output is computed by the same operations whatever the split (bitwise identical).
// The released model's eval path folds the kernels into one 11×11 kernel with zero padding; this op
// is the training formula (replicate padding), which the spec takes as the definition.

#include <algorithm>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "tokenmix/core/threading.hpp"
#include "tokenmix/simd/arch.hpp"
#include "tokenmix/ssm/spatial_state_fusion_types.hpp"

namespace tokenmix::ssm {

template <class Arch = simd::default_arch>
void spatial_state_fusion(const ConstTensorView<float, 5>& h,        // [B, H, W, D, N]
                          const ConstTensorView<float, 4>& kernels,  // [k, D, 3, 3]
                          const ConstTensorView<float, 1>& alpha,    // [k]
                          const ConstTensorView<float, 4>& C,        // [B, H, W, N]
                          const SpatialStateFusionOptions& options,
                          TensorView<float, 4> out) {                // [B, H, W, D]
  const SpatialStateFusionShape s =
      detail::check_spatial_state_fusion_args("spatial_state_fusion", h, kernels, alpha, C, options, &out);
  const Index H = s.height, W = s.width, D = s.channels, N = s.state, DN = D * N, taps = 9 * s.kernels;
  using V = simd::vfloat<Arch>;
  constexpr Index WL = static_cast<Index>(simd::lanes<Arch>);
  // weights[tap][d·N + n] = α_k · K_k[d, a, c] (tap = 9k + 3(a+1) + (c+1)), repeated over n.
  std::vector<float, xsimd::aligned_allocator<float, 64>> weights(static_cast<std::size_t>(taps * DN));
  for (Index k = 0; k < s.kernels; ++k)
    for (Index t = 0; t < 9; ++t)
      for (Index d = 0; d < D; ++d) {
        const float w = alpha(k) * kernels(k, d, t / 3, t % 3);
        std::fill_n(weights.data() + (9 * k + t) * DN + d * N, N, w);
      }
  tokenmix::detail::parallel_for(options.device, s.batch * H, [&](Index first, Index last) {
    std::vector<float, xsimd::aligned_allocator<float, 64>> fused(static_cast<std::size_t>(DN));  // [D, N]
    std::vector<const float*> neighbour(static_cast<std::size_t>(taps));
    alignas(64) float pad[64];
    for (Index row = first; row < last; ++row) {
      const Index b = row / H, i = row % H;
      const float* hb = h.data() + b * H * W * DN;
      for (Index j = 0; j < W; ++j) {
        for (Index k = 0; k < s.kernels; ++k) {
          const Index r = options.dilations[static_cast<std::size_t>(k)];
          for (Index t = 0; t < 9; ++t) {
            const Index ii = std::clamp<Index>(i + (t / 3 - 1) * r, 0, H - 1);
            const Index jj = std::clamp<Index>(j + (t % 3 - 1) * r, 0, W - 1);
            neighbour[static_cast<std::size_t>(9 * k + t)] = hb + (ii * W + jj) * DN;
          }
        }
        for (Index x = 0; x < DN; x += WL) {  // fused[x] = Σ_tap weights[tap][x] · neighbour[tap][x]
          const Index count = std::min(WL, DN - x);
          V acc(0.0f);
          for (Index t = 0; t < taps; ++t)
            acc = simd::fmadd<Arch>(simd::load_upto<Arch>(weights.data() + t * DN + x, count, pad),
                                    simd::load_upto<Arch>(neighbour[static_cast<std::size_t>(t)] + x, count, pad), acc);
          simd::store_upto<Arch>(fused.data() + x, acc, count, pad);
        }
        const float* c = C.data() + ((b * H + i) * W + j) * N;
        const float* u = options.u ? options.u->data() + ((b * H + i) * W + j) * D : nullptr;
        float* y = out.data() + ((b * H + i) * W + j) * D;
        for (Index d = 0; d < D; ++d) {
          float v = u ? (*options.D)(d) * u[d] : 0.0f;
          const float* f = fused.data() + d * N;
          for (Index n = 0; n < N; ++n) v += c[n] * f[n];
          y[d] = v;
        }
      }
    }
  });
}

template <class Arch = simd::default_arch>
Tensor<float, 4> spatial_state_fusion(const ConstTensorView<float, 5>& h, const ConstTensorView<float, 4>& kernels,
                                      const ConstTensorView<float, 1>& alpha, const ConstTensorView<float, 4>& C,
                                      const SpatialStateFusionOptions& options = {}) {
  detail::check_spatial_state_fusion_args("spatial_state_fusion", h, kernels, alpha, C, options, nullptr);
  Tensor<float, 4> out(h.dimension(0), h.dimension(1), h.dimension(2), h.dimension(3));
  ssm::spatial_state_fusion<Arch>(h, kernels, alpha, C, options, TensorView<float, 4>(out.data(), out.dimensions()));
  return out;
}

}  // namespace tokenmix::ssm
