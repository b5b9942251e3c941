#pragma once
// Arguments of ssm::selective_scan_2d (selective scans along paths through an image, merged by
// sum; selective_scan_2d.hpp), shared with its oracles (reference/selective_scan_2d.hpp) so that
// both accept and reject exactly the same inputs.
//
// Shapes (images token-major, channels last):
//   u       [B, H, W, Du]     scan input (the conv + SiLU output)
//   delta   [B, H, W, Dd]     raw time step (before delta_bias and softplus)
//   A       [Dp, N]           Dp parameter channels: each direction uses a block of rows
//   Bm, Cm  [B, H, W, G, N]   G groups: each direction reads one
//   D, delta_bias [Dp]
//   z, out  [B, H, W, Do]
// Direction k reads channels [u_channel, +channels) of u, [delta_channel, +channels) of delta,
// parameter rows [param_channel, +channels), B/C group `group`, visits the cells of `path`, and adds
// its outputs to channels [out_channel, +channels) of out at the cells it visited.

#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/ssm/scan_path.hpp"

namespace tokenmix::ssm {

struct ScanDirection {
  std::shared_ptr<const ScanPath> path;
  Index channels = 0;       // how many channels this direction scans
  Index u_channel = 0;      // first channel of u it reads
  Index delta_channel = 0;  // first channel of delta it reads
  Index param_channel = 0;  // first row of A, D, delta_bias it uses
  Index out_channel = 0;    // first channel of out it adds to
  Index group = 0;          // the B/C group it reads
};

struct SelectiveScan2dOptions {
  std::optional<ConstTensorView<float, 1>> D;           // [Dp] skip, per direction: each adds D·u
  std::optional<ConstTensorView<float, 1>> delta_bias;  // [Dp] added to delta before softplus
  bool delta_softplus = false;
  // After the merge (sum over directions): out = merge_scale · Σ_k y_k, then out *= silu(z). A gate
  // inside each direction at the cell it visits is the same thing (Vim, PlainMamba).
  float merge_scale = 1.0f;
  std::optional<ConstTensorView<float, 4>> z;  // [B, H, W, Do]
  // PlainMamba's direction-aware update: B at step t += B_offset[path.moves[t]] (Θ, [5, N]).
  std::optional<ConstTensorView<float, 2>> B_offset;
  // false: only u follows the path; delta, B and C of step t are those of raster cell t (PlainMamba's
  // released code; needs bijective paths). true: every per-token input follows the path (the paper).
  bool permute_params = true;
  // Threads for the scans (batch × channel blocks); bitwise identical results for
  // any thread count. Ignored by the oracles.
  const Eigen::ThreadPoolDevice* device = nullptr;
};

// Vision Mamba's parameter sharing between the two directions (see ssm::bidirectional_scan).
enum class VimVariant { v1, v2 };

struct SelectiveScan2dShape {
  Index batch, height, width, state, groups, u_channels, delta_channels, param_channels, out_channels;
};

namespace detail {

// Validates every argument (DESIGN §4); `out` may be null (convenience overloads).
inline SelectiveScan2dShape check_selective_scan_2d_args(const char* op, const ConstTensorView<float, 4>& u,
                                                        const ConstTensorView<float, 4>& delta,
                                                        const ConstTensorView<float, 2>& A,
                                                        const ConstTensorView<float, 5>& Bm,
                                                        const ConstTensorView<float, 5>& Cm,
                                                        const std::vector<ScanDirection>& directions,
                                                        const SelectiveScan2dOptions& o, Index out_channels,
                                                        const TensorView<float, 4>* out) {
  using tokenmix::detail::check_numel_fits;
  using tokenmix::detail::check_shape;
  for (const auto& [name, shape] : {std::pair<const char*, Shape<4>>{"u", shape_of(u)}, {"delta", shape_of(delta)}})
    check_numel_fits(op, name, shape);
  check_numel_fits(op, "B", shape_of(Bm));
  check_numel_fits(op, "C", shape_of(Cm));
  SelectiveScan2dShape s{u.dimension(0), u.dimension(1), u.dimension(2), A.dimension(1), Bm.dimension(3),
                         u.dimension(3), delta.dimension(3), A.dimension(0), out_channels};
  TOKENMIX_CHECK(s.height > 0 && s.width > 0, op, ": u has shape ", shape_of(u), ", expected [B, H, W, D] with H, W > 0");
  TOKENMIX_CHECK(s.state > 0, op, ": A has shape ", shape_of(A), ", expected [Dp, N] with N > 0");
  check_shape(op, "delta", delta, NamedShape<4>{{"B", "H", "W", "Dd"}, {{s.batch, s.height, s.width, s.delta_channels}}});
  const NamedShape<5> bc{{"B", "H", "W", "G", "N"}, {{s.batch, s.height, s.width, s.groups, s.state}}};
  check_shape(op, "B", Bm, bc);
  check_shape(op, "C", Cm, bc);
  if (o.D) check_shape(op, "D", *o.D, NamedShape<1>{{"Dp"}, {{s.param_channels}}});
  if (o.delta_bias) check_shape(op, "delta_bias", *o.delta_bias, NamedShape<1>{{"Dp"}, {{s.param_channels}}});
  const NamedShape<4> bhwo{{"B", "H", "W", "Do"}, {{s.batch, s.height, s.width, out_channels}}};
  if (o.z) check_shape(op, "z", *o.z, bhwo);
  if (o.B_offset) check_shape(op, "B_offset", *o.B_offset, NamedShape<2>{{"5", "N"}, {{5, s.state}}});
  tokenmix::detail::check_finite(op, "merge_scale", o.merge_scale);
  TOKENMIX_CHECK(!directions.empty(), op, ": no scan directions");
  for (std::size_t k = 0; k < directions.size(); ++k) {
    const ScanDirection& d = directions[k];
    TOKENMIX_CHECK(d.path != nullptr, op, ": direction ", k, " has no path");
    TOKENMIX_CHECK(d.path->height == s.height && d.path->width == s.width, op, ": direction ", k, "'s path is over a ",
                   d.path->height, "x", d.path->width, " grid, but u is ", s.height, "x", s.width);
    // The range first (a loop that vectorises: this check walks every path on every call), then
    // the offending cell.
    Index lowest = -1, highest = -1;
    for (const Index p : d.path->index) lowest = std::min(lowest, p), highest = std::max(highest, p);
    if (lowest < -1 || highest >= s.height * s.width)
      for (const Index p : d.path->index)
        TOKENMIX_CHECK(p >= -1 && p < s.height * s.width, op, ": direction ", k, "'s path visits cell ", p,
                       ", outside the ", s.height, "x", s.width, " grid");
    auto fits = [&](const char* what, Index first, Index extent) {
      TOKENMIX_CHECK(first >= 0 && first + d.channels <= extent, op, ": direction ", k, " reads ", what, " channels [",
                     first, ", ", first + d.channels, "), outside the ", extent, " channels there");
    };
    TOKENMIX_CHECK(d.channels > 0, op, ": direction ", k, " scans ", d.channels, " channels, expected > 0");
    fits("u", d.u_channel, s.u_channels);
    fits("delta", d.delta_channel, s.delta_channels);
    fits("parameter (A, D, delta_bias)", d.param_channel, s.param_channels);
    fits("out", d.out_channel, out_channels);
    TOKENMIX_CHECK(d.group >= 0 && d.group < s.groups, op, ": direction ", k, " reads B/C group ", d.group, ", but there are G=",
                   s.groups);
    if (!o.permute_params)
      TOKENMIX_CHECK(d.path->is_bijection(), op, ": permute_params = false reads delta, B and C in raster order, which ",
                     "needs every path to visit each cell exactly once (direction ", k, " does not)");
  }
  if (out) {
    check_shape(op, "out", *out, bhwo);
    const Index n = out->size();
    auto overlaps = [&](const float* p, Index np) { return tokenmix::detail::ranges_overlap(out->data(), n, p, np); };
    TOKENMIX_CHECK(!overlaps(u.data(), u.size()) && !overlaps(delta.data(), delta.size()) &&
                       !overlaps(Bm.data(), Bm.size()) && !overlaps(Cm.data(), Cm.size()) &&
                       !(o.z && overlaps(o.z->data(), o.z->size())),
                   op, ": out must not overlap an input");
  }
  return s;
}

}  // namespace detail
}  // namespace tokenmix::ssm
