#pragma once
// blocks::rms_norm: RMSNorm as transformers' MambaRMSNorm / Mamba2's RMSNorm (no gate), in fp32:
//
//   out[m, d] = weight[d] * (x[m, d] * rsqrt(mean_d(x[m, :]^2) + eps))
//
// x, out [M, D] (flatten leading dims), weight [D]. rsqrt is 1 / std::sqrt in float, as torch.rsqrt.
// out may be x itself (in place); any other overlap with x or weight is rejected. M = 0 is valid.
// Oracle: reference/rms_norm.hpp. NaN or inf in a row reaches the whole row of out.
// Threads split rows; each row's sum of squares is reduced in one fixed order (bitwise identical
// for any thread count). Arch: simd::default_arch of the including TU.

#include <algorithm>
#include <cmath>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/simd/activations.hpp"
#include "tokenmix/simd/arch.hpp"

namespace tokenmix::blocks {

namespace detail {

inline void check_rms_norm_args(const char* op, const ConstTensorView<float, 2>& x,
                                const ConstTensorView<float, 1>& weight, double eps, const TensorView<float, 2>* out) {
  tokenmix::detail::check_numel_fits(op, "x", shape_of(x));
  TOKENMIX_CHECK(x.dimension(1) > 0, op, ": x has shape ", shape_of(x), ", expected [M, D] with D > 0");
  tokenmix::detail::check_shape(op, "weight", weight, NamedShape<1>{{"D"}, {{x.dimension(1)}}});
  tokenmix::detail::check_finite(op, "eps", eps);
  TOKENMIX_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
  if (out) {
    tokenmix::detail::check_shape(op, "out", *out, NamedShape<2>{{"M", "D"}, {{x.dimension(0), x.dimension(1)}}},
                                  " like x");
    const float* o = out->data();
    const Index n = out->size();
    auto overlaps = [&](const float* p, Index np) { return n > 0 && np > 0 && o < p + np && p < o + n; };
    TOKENMIX_CHECK((o == x.data() || !overlaps(x.data(), x.size())) && !overlaps(weight.data(), weight.size()), op,
                   ": out must be x itself (in place) or not overlap x and weight");
  }
}

// Rows [r0, r1) of x [M, D] -> out. 4 accumulators for the sum of squares, combined in a fixed order.
template <class Arch>
void rms_norm_rows(const float* x, const float* w, float eps, float* out, Index D, Index r0, Index r1) noexcept {
  using V = simd::vfloat<Arch>;
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  alignas(64) float pad[64];
  for (Index m = r0; m < r1; ++m) {
    const float* xr = x + m * D;
    float* orow = out + m * D;
    V a0(0.0f), a1(0.0f), a2(0.0f), a3(0.0f);
    Index d = 0;
    for (; d + 4 * W <= D; d += 4 * W) {
      const V v0 = simd::load<Arch>(xr + d), v1 = simd::load<Arch>(xr + d + W);
      const V v2 = simd::load<Arch>(xr + d + 2 * W), v3 = simd::load<Arch>(xr + d + 3 * W);
      a0 = simd::fmadd<Arch>(v0, v0, a0), a1 = simd::fmadd<Arch>(v1, v1, a1);
      a2 = simd::fmadd<Arch>(v2, v2, a2), a3 = simd::fmadd<Arch>(v3, v3, a3);
    }
    for (; d + W <= D; d += W) {
      const V v = simd::load<Arch>(xr + d);
      a0 = simd::fmadd<Arch>(v, v, a0);
    }
    if (d < D) {
      const V v = simd::load_partial<Arch>(xr + d, static_cast<std::size_t>(D - d), pad);
      a1 = simd::fmadd<Arch>(v, v, a1);
    }
    const float sum = simd::reduce_add<Arch>((a0 + a1) + (a2 + a3));
    const float r = 1.0f / std::sqrt(sum / static_cast<float>(D) + eps);
    const V vr(r);
    for (d = 0; d + W <= D; d += W)
      simd::store<Arch>(orow + d, simd::load<Arch>(w + d) * (simd::load<Arch>(xr + d) * vr));
    if (d < D) {
      const std::size_t tail = static_cast<std::size_t>(D - d);
      const V xv = simd::load_partial<Arch>(xr + d, tail, pad);
      const V wv = simd::load_partial<Arch>(w + d, tail, pad);
      simd::store_partial<Arch>(orow + d, wv * (xv * vr), tail, pad);
    }
  }
}

}  // namespace detail

// View-based core: out [M, D] (may be x itself).
template <class Arch = simd::default_arch>
void rms_norm(const ConstTensorView<float, 2>& x,       // [M, D]
              const ConstTensorView<float, 1>& weight,  // [D]
              double eps,                               // HF Mamba: 1e-5
              TensorView<float, 2> out,                 // [M, D]
              const Eigen::ThreadPoolDevice* device = nullptr) {
  detail::check_rms_norm_args("rms_norm", x, weight, eps, &out);
  const Index D = x.dimension(1);
  const float* xp = x.data();
  const float* wp = weight.data();
  float* op = out.data();
  const float e = static_cast<float>(eps);
  tokenmix::detail::parallel_for(device, x.dimension(0), [&](Index first, Index last) {
    detail::rms_norm_rows<Arch>(xp, wp, e, op, D, first, last);
  });
}

// Convenience overload: allocates and returns out [M, D].
template <class Arch = simd::default_arch>
Tensor<float, 2> rms_norm(const ConstTensorView<float, 2>& x, const ConstTensorView<float, 1>& weight,
                          double eps = 1e-5, const Eigen::ThreadPoolDevice* device = nullptr) {
  detail::check_rms_norm_args("rms_norm", x, weight, eps, nullptr);
  Tensor<float, 2> out(x.dimension(0), x.dimension(1));
  blocks::rms_norm<Arch>(x, weight, eps, TensorView<float, 2>(out.data(), out.dimensions()), device);
  return out;
}

// ---- gated RMSNorm (Mamba-2) -----------------------------------------------------------------------
//
// blocks::gated_rms_norm: Mamba-2's RMSNormGated with norm_before_gate = False, in fp32:
//   g         = x ⊙ silu(gate)
//   out[m, d] = weight[d] · g[m, d] · rsqrt(mean over d's group of g[m, :]² + eps)
// Groups are consecutive runs of group_size channels (D must be a multiple). transformers'
// MambaRMSNormGated (5.17) normalises over the whole row: group_size = D, whatever n_groups is;
// mamba_ssm's RMSNormGated uses group_size = D / ngroups. The two agree when ngroups = 1.
// x, gate, out [M, D]; weight [D]; out may be x itself. Oracle: ref::gated_rms_norm.
template <class Arch = simd::default_arch>
void gated_rms_norm(const ConstTensorView<float, 2>& x,       // [M, D]
                    const ConstTensorView<float, 2>& gate,    // [M, D]
                    const ConstTensorView<float, 1>& weight,  // [D]
                    double eps, Index group_size,
                    TensorView<float, 2> out,                 // [M, D]
                    const Eigen::ThreadPoolDevice* device = nullptr) {
  const char* op = "gated_rms_norm";
  detail::check_rms_norm_args(op, x, weight, eps, &out);
  const Index D = x.dimension(1);
  tokenmix::detail::check_shape(op, "gate", gate, NamedShape<2>{{"M", "D"}, {{x.dimension(0), D}}}, " like x");
  TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out.data(), out.size(), gate.data(), gate.size()), op,
                 ": out must not overlap gate (x itself is allowed)");
  TOKENMIX_CHECK(group_size > 0 && D % group_size == 0, op, ": group_size ", group_size,
                 " must be positive and divide D=", D);
  using V = simd::vfloat<Arch>;
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  const float e = static_cast<float>(eps);
  tokenmix::detail::parallel_for(device, x.dimension(0), [&](Index first, Index last) {
    alignas(64) float pad[64];
    for (Index m = first; m < last; ++m) {
      const float* xr = x.data() + m * D;
      const float* zr = gate.data() + m * D;
      float* orow = out.data() + m * D;
      for (Index d = 0; d < D; d += W) {  // g = x · silu(gate), into out
        const Index count = std::min(W, D - d);
        const V g = simd::load_upto<Arch>(xr + d, count, pad) * simd::silu<Arch>(simd::load_upto<Arch>(zr + d, count, pad));
        simd::store_upto<Arch>(orow + d, g, count, pad);
      }
      for (Index g0 = 0; g0 < D; g0 += group_size) {
        float sum = 0.0f;
        for (Index d = g0; d < g0 + group_size; ++d) sum += orow[d] * orow[d];
        const float r = 1.0f / std::sqrt(sum / static_cast<float>(group_size) + e);
        for (Index d = g0; d < g0 + group_size; ++d) orow[d] = weight(d) * (orow[d] * r);
      }
    }
  });
}

}  // namespace tokenmix::blocks
