#pragma once
// Arguments of Spatial-Mamba's structure-aware state fusion (SASF, spec vision_ssm.md §8), shared by
// the fast op (ssm/spatial_state_fusion.hpp) and its oracle (reference/spatial_state_fusion.hpp).
//
// The hidden states of a row-major scan over an H×W image, h [B, H, W, D, N] (selective_scan's
// all-states output [B, L, D, N] viewed with L = H·W), are fused over the image by depthwise 3×3
// convolutions at several dilations with replicate padding, then read out with C and the D skip:
//   h'[i, j, d, n] = Σ_k α_k Σ_{a, c ∈ {-1, 0, 1}} K_k[d, a+1, c+1] · h[clampH(i + a·r_k), clampW(j + c·r_k), d, n]
//   y[i, j, d]    = Σ_n C[i, j, n] · h'[i, j, d, n] + D[d] · u[i, j, d]
// clamp = replicate padding (the border value repeats), r_k the dilations (the released model: 1, 3,
// 5), K_k [D, 3, 3] one kernel per channel shared over N (PyTorch's dw-conv weight [D, 1, 3, 3]
// squeezed), α [k] the mixing weights.

#include <optional>
#include <vector>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::ssm {

struct SpatialStateFusionOptions {
  std::vector<Index> dilations = {1, 3, 5};           // r_k, one per kernel
  std::optional<ConstTensorView<float, 1>> D;         // [D] skip: y += D·u (needs u)
  std::optional<ConstTensorView<float, 4>> u;         // [B, H, W, D]
  const Eigen::ThreadPoolDevice* device = nullptr;    // threads over image rows; ignored by the oracle
};

struct SpatialStateFusionShape {
  Index batch, height, width, channels, state, kernels;
};

namespace detail {

inline SpatialStateFusionShape check_spatial_state_fusion_args(const char* op, const ConstTensorView<float, 5>& h,
                                                               const ConstTensorView<float, 4>& kernels,
                                                               const ConstTensorView<float, 1>& alpha,
                                                               const ConstTensorView<float, 4>& C,
                                                               const SpatialStateFusionOptions& o,
                                                               const TensorView<float, 4>* out) {
  using tokenmix::detail::check_shape;
  tokenmix::detail::check_numel_fits(op, "h", shape_of(h));
  const SpatialStateFusionShape s{h.dimension(0), h.dimension(1), h.dimension(2), h.dimension(3), h.dimension(4),
                                  static_cast<Index>(o.dilations.size())};
  TOKENMIX_CHECK(s.height > 0 && s.width > 0 && s.channels > 0 && s.state > 0, op, ": h has shape ", shape_of(h),
                 ", expected [B, H, W, D, N] with H, W, D, N > 0");
  TOKENMIX_CHECK(s.kernels > 0, op, ": no dilations (one per kernel)");
  for (const Index r : o.dilations) TOKENMIX_CHECK(r >= 1, op, ": dilations must be >= 1, got ", r);
  check_shape(op, "kernels", kernels, NamedShape<4>{{"k", "D", "3", "3"}, {{s.kernels, s.channels, 3, 3}}});
  check_shape(op, "alpha", alpha, NamedShape<1>{{"k"}, {{s.kernels}}});
  check_shape(op, "C", C, NamedShape<4>{{"B", "H", "W", "N"}, {{s.batch, s.height, s.width, s.state}}});
  TOKENMIX_CHECK(o.D.has_value() == o.u.has_value(), op, ": the D skip needs both D and u (got ",
                 o.D ? "D" : "u", " alone)");
  if (o.D) check_shape(op, "D", *o.D, NamedShape<1>{{"D"}, {{s.channels}}});
  const NamedShape<4> bhwd{{"B", "H", "W", "D"}, {{s.batch, s.height, s.width, s.channels}}};
  if (o.u) check_shape(op, "u", *o.u, bhwd);
  if (out) {
    check_shape(op, "out", *out, bhwd);
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out->data(), out->size(), h.data(), h.size()) &&
                       !(o.u && tokenmix::detail::ranges_overlap(out->data(), out->size(), o.u->data(), o.u->size())),
                   op, ": out must not overlap h or u");
  }
  return s;
}

}  // namespace detail
}  // namespace tokenmix::ssm
