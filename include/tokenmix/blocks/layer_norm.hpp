#pragma once
// blocks::layer_norm: PyTorch's nn.LayerNorm over the last axis (A2Mamba's LayerNorm2d on
// channels-last maps, eps 1e-6), in fp32:
//
//   mean = Σ_d x[m, d] / D;  var = Σ_d (x[m, d] - mean)² / D   (biased, as torch)
//   out[m, d] = (x[m, d] - mean) / sqrt(var + eps) · weight[d] + bias[d]
//
// x, out [M, D] (flatten leading dims), weight, bias [D]. out may be x itself (in place); any other
// overlap with x is rejected. M = 0 is valid. Two passes over each row (mean, then the centred sum
// of squares: no cancellation for rows with a large mean; the mean itself is summed relative to the
// row's first element). Oracle: reference/layer_norm.hpp.
// Threads split rows; bitwise identical results for any thread count.

#include <cmath>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/simd/arch.hpp"

namespace tokenmix::blocks {

namespace detail {

inline void check_layer_norm_args(const char* op, const ConstTensorView<float, 2>& x,
                                  const ConstTensorView<float, 1>& weight, const ConstTensorView<float, 1>& bias,
                                  double eps, const TensorView<float, 2>* out) {
  tokenmix::detail::check_numel_fits(op, "x", shape_of(x));
  TOKENMIX_CHECK(x.dimension(1) > 0, op, ": x has shape ", shape_of(x), ", expected [M, D] with D > 0");
  const NamedShape<1> d{{"D"}, {{x.dimension(1)}}};
  tokenmix::detail::check_shape(op, "weight", weight, d);
  tokenmix::detail::check_shape(op, "bias", bias, d);
  tokenmix::detail::check_finite(op, "eps", eps);
  TOKENMIX_CHECK(eps > 0, op, ": eps must be > 0, got ", eps);
  if (out) {
    tokenmix::detail::check_shape(op, "out", *out, NamedShape<2>{{"M", "D"}, {{x.dimension(0), x.dimension(1)}}},
                                  " like x");
    TOKENMIX_CHECK(out->data() == x.data() || !tokenmix::detail::ranges_overlap(out->data(), out->size(), x.data(), x.size()),
                   op, ": out must be x itself (in place) or not overlap x");
  }
}

}  // namespace detail

template <class Arch = simd::default_arch>
void layer_norm(const ConstTensorView<float, 2>& x,       // [M, D]
                const ConstTensorView<float, 1>& weight,  // [D]
                const ConstTensorView<float, 1>& bias,    // [D]
                double eps,                               // nn.LayerNorm: 1e-5; A2Mamba's LayerNorm2d: 1e-6
                TensorView<float, 2> out,                 // [M, D]
                const Eigen::ThreadPoolDevice* device = nullptr) {
  detail::check_layer_norm_args("layer_norm", x, weight, bias, eps, &out);
  using V = simd::vfloat<Arch>;
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  const Index D = x.dimension(1);
  const float e = static_cast<float>(eps), inv_d = 1.0f / static_cast<float>(D);
  tokenmix::detail::parallel_for(device, x.dimension(0), [&](Index first, Index last) {
    alignas(64) float pad[64];
    for (Index m = first; m < last; ++m) {
      const float* xr = x.data() + m * D;
      float* orow = out.data() + m * D;
      // The mean of x - x[0] (rows with a large common offset keep their small partial sums exact).
      const float shift = xr[0];
      const V vshift(shift);
      V sum(0.0f);
      const Index full = D / W * W;
      for (Index d = 0; d < full; d += W) sum += simd::load<Arch>(xr + d) - vshift;
      float tail_sum = 0.0f;
      for (Index d = full; d < D; ++d) tail_sum += xr[d] - shift;
      // Centred values are formed as (x - shift) - mean_rel: both differences are exact or nearly so.
      const float mean_rel = (simd::reduce_add<Arch>(sum) + tail_sum) * inv_d;
      const V mean(mean_rel);
      V sq(0.0f);
      for (Index d = 0; d < full; d += W) {
        const V c = (simd::load<Arch>(xr + d) - vshift) - mean;
        sq = simd::fmadd<Arch>(c, c, sq);
      }
      float var = simd::reduce_add<Arch>(sq);
      for (Index d = full; d < D; ++d) {  // the tail: lanes past D stay out
        const float c = (xr[d] - shift) - mean_rel;
        var += c * c;
      }
      const V r(1.0f / std::sqrt(var * inv_d + e));
      for (Index d = 0; d < D; d += W) {
        const Index n = std::min(W, D - d);
        const V y = simd::fmadd<Arch>(((simd::load_upto<Arch>(xr + d, n, pad) - vshift) - mean) * r,
                                      simd::load_upto<Arch>(weight.data() + d, n, pad),
                                      simd::load_upto<Arch>(bias.data() + d, n, pad));
        simd::store_upto<Arch>(orow + d, y, n, pad);
      }
    }
  });
}

// Convenience overload: allocates and returns out [M, D].
template <class Arch = simd::default_arch>
Tensor<float, 2> layer_norm(const ConstTensorView<float, 2>& x, const ConstTensorView<float, 1>& weight,
                            const ConstTensorView<float, 1>& bias, double eps = 1e-5,
                            const Eigen::ThreadPoolDevice* device = nullptr) {
  detail::check_layer_norm_args("layer_norm", x, weight, bias, eps, nullptr);
  Tensor<float, 2> out(x.dimension(0), x.dimension(1));
  blocks::layer_norm<Arch>(x, weight, bias, eps, TensorView<float, 2>(out.data(), out.dimensions()), device);
  return out;
}

}  // namespace tokenmix::blocks
