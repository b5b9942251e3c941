#pragma once
// Oracle of blocks::layer_norm: plain loops, accumulation in Acc (double in tests).
//
// Source: PyTorch nn.LayerNorm(D, eps) over the last axis (torch.nn.functional.layer_norm):
//   mean = Σ x / D;  var = Σ (x - mean)² / D;  out = (x - mean) / sqrt(var + eps) · weight + bias
// x, out [M, D], weight, bias [D].

#include <cmath>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::ref {

template <class Acc = double>
Tensor<float, 2> layer_norm(const ConstTensorView<float, 2>& x,       // [M, D]
                            const ConstTensorView<float, 1>& weight,  // [D]
                            const ConstTensorView<float, 1>& bias,    // [D]
                            double eps) {
  const char* op = "ref::layer_norm";  // the oracle's own checks (reference/ includes no optimized op)
  TOKENMIX_CHECK(x.dimension(1) > 0 && eps > 0, op, ": x has shape ", shape_of(x), " and eps ", eps,
                 ", expected [M, D] with D > 0 and eps > 0");
  tokenmix::detail::check_shape(op, "weight", weight, NamedShape<1>{{"D"}, {{x.dimension(1)}}});
  tokenmix::detail::check_shape(op, "bias", bias, NamedShape<1>{{"D"}, {{x.dimension(1)}}});
  const Index M = x.dimension(0), D = x.dimension(1);
  Tensor<float, 2> out(M, D);
  for (Index m = 0; m < M; ++m) {
    Acc mean = 0, var = 0;
    for (Index d = 0; d < D; ++d) mean += Acc(x(m, d));
    mean /= Acc(D);
    for (Index d = 0; d < D; ++d) var += (Acc(x(m, d)) - mean) * (Acc(x(m, d)) - mean);
    const Acc r = Acc(1) / std::sqrt(var / Acc(D) + Acc(eps));
    for (Index d = 0; d < D; ++d) out(m, d) = static_cast<float>((Acc(x(m, d)) - mean) * r * Acc(weight(d)) + Acc(bias(d)));
  }
  return out;
}

}  // namespace tokenmix::ref
