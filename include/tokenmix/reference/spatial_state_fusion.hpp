#pragma once
// Oracle of ssm::spatial_state_fusion: Spatial-Mamba's training-path formula as written in the spec
// (vision_ssm.md §8): replicate-pad h by r_k, depthwise 3×3 convolution with dilation r_k, weighted
// sum over k, then the C readout and the D skip. Plain loops, accumulation in Acc; arguments in
// ssm/spatial_state_fusion_types.hpp.

#include <algorithm>
#include <vector>

#include "tokenmix/ssm/spatial_state_fusion_types.hpp"

namespace tokenmix::ref {

template <class Acc = double>
Tensor<float, 4> spatial_state_fusion(const ConstTensorView<float, 5>& h,        // [B, H, W, D, N]
                                      const ConstTensorView<float, 4>& kernels,  // [k, D, 3, 3]
                                      const ConstTensorView<float, 1>& alpha,    // [k]
                                      const ConstTensorView<float, 4>& C,        // [B, H, W, N]
                                      const ssm::SpatialStateFusionOptions& o = {}) {
  const ssm::SpatialStateFusionShape s =
      ssm::detail::check_spatial_state_fusion_args("ref::spatial_state_fusion", h, kernels, alpha, C, o, nullptr);
  const Index H = s.height, W = s.width, D = s.channels, N = s.state;
  Tensor<float, 4> y(s.batch, H, W, D);
  std::vector<Acc> fused(static_cast<std::size_t>(D * N));
  for (Index b = 0; b < s.batch; ++b)
    for (Index i = 0; i < H; ++i)
      for (Index j = 0; j < W; ++j) {
        std::fill(fused.begin(), fused.end(), Acc(0));
        for (Index k = 0; k < s.kernels; ++k) {
          const Index r = o.dilations[static_cast<std::size_t>(k)];
          for (Index a = -1; a <= 1; ++a)
            for (Index c = -1; c <= 1; ++c) {
              // padrep: the padded map's cell (i + a·r, j + c·r) holds the nearest border cell.
              const Index ii = std::clamp<Index>(i + a * r, 0, H - 1), jj = std::clamp<Index>(j + c * r, 0, W - 1);
              for (Index d = 0; d < D; ++d) {
                const Acc w = Acc(alpha(k)) * Acc(kernels(k, d, a + 1, c + 1));
                for (Index n = 0; n < N; ++n) fused[d * N + n] += w * Acc(h(b, ii, jj, d, n));
              }
            }
        }
        for (Index d = 0; d < D; ++d) {
          Acc v = o.D ? Acc((*o.D)(d)) * Acc((*o.u)(b, i, j, d)) : Acc(0);
          for (Index n = 0; n < N; ++n) v += Acc(C(b, i, j, n)) * fused[d * N + n];
          y(b, i, j, d) = static_cast<float>(v);
        }
      }
  return y;
}

}  // namespace tokenmix::ref
