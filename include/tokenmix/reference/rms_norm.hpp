#pragma once
// Oracle of blocks::rms_norm: plain loops, accumulation in Acc (double in tests).
//
// Source: transformers models/mamba/modeling_mamba.py::MambaRMSNorm.forward:
//   variance      = x.pow(2).mean(-1, keepdim=True)
//   out           = weight * (x * torch.rsqrt(variance + eps))
// x, out [M, D], weight [D].

#include <cmath>
#include <vector>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::ref {

template <class Acc = double>
void rms_norm(const ConstTensorView<float, 2>& x,       // [M, D]
              const ConstTensorView<float, 1>& weight,  // [D]
              double eps,
              TensorView<float, 2> out) {               // [M, D]
  const char* op = "ref::rms_norm";
  const Index M = x.dimension(0), D = x.dimension(1);
  TOKENMIX_CHECK(D > 0, op, ": x has shape ", shape_of(x), ", expected [M, D] with D > 0");
  tokenmix::detail::check_shape(op, "weight", weight, NamedShape<1>{{"D"}, {{D}}});
  tokenmix::detail::check_finite(op, "eps", eps);
  TOKENMIX_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
  tokenmix::detail::check_shape(op, "out", out, NamedShape<2>{{"M", "D"}, {{M, D}}}, " like x");
  for (Index m = 0; m < M; ++m) {
    Acc sum = 0;
    for (Index d = 0; d < D; ++d) sum += Acc(x(m, d)) * Acc(x(m, d));
    const Acc r = Acc(1) / std::sqrt(sum / Acc(D) + Acc(eps));
    for (Index d = 0; d < D; ++d) out(m, d) = static_cast<float>(Acc(weight(d)) * (Acc(x(m, d)) * r));
  }
}

template <class Acc = double>
Tensor<float, 2> rms_norm(const ConstTensorView<float, 2>& x, const ConstTensorView<float, 1>& weight,
                          double eps = 1e-5) {
  Tensor<float, 2> out(x.dimension(0), x.dimension(1));
  ref::rms_norm<Acc>(x, weight, eps, TensorView<float, 2>(out.data(), out.dimensions()));
  return out;
}

// Oracle of blocks::gated_rms_norm (mamba_ssm RMSNormGated, norm_before_gate = False; transformers
// MambaRMSNormGated when group_size = D): g = x · silu(gate); out = weight · g · rsqrt(mean_group(g²) + eps).
template <class Acc = double>
Tensor<float, 2> gated_rms_norm(const ConstTensorView<float, 2>& x, const ConstTensorView<float, 2>& gate,
                                const ConstTensorView<float, 1>& weight, double eps, Index group_size) {
  const char* op = "ref::gated_rms_norm";
  const Index M = x.dimension(0), D = x.dimension(1);
  TOKENMIX_CHECK(D > 0, op, ": x has shape ", shape_of(x), ", expected [M, D] with D > 0");
  tokenmix::detail::check_shape(op, "weight", weight, NamedShape<1>{{"D"}, {{D}}});
  tokenmix::detail::check_shape(op, "gate", gate, NamedShape<2>{{"M", "D"}, {{M, D}}}, " like x");
  TOKENMIX_CHECK(group_size > 0 && D % group_size == 0, op, ": group_size ", group_size,
                 " must be positive and divide D=", D);
  Tensor<float, 2> out(M, D);
  std::vector<Acc> g(static_cast<std::size_t>(D));
  for (Index m = 0; m < M; ++m) {
    for (Index d = 0; d < D; ++d) {
      const Acc z = gate(m, d);
      g[d] = Acc(x(m, d)) * z / (Acc(1) + std::exp(-z));
    }
    for (Index g0 = 0; g0 < D; g0 += group_size) {
      Acc sum = 0;
      for (Index d = g0; d < g0 + group_size; ++d) sum += g[d] * g[d];
      const Acc r = Acc(1) / std::sqrt(sum / Acc(group_size) + Acc(eps));
      for (Index d = g0; d < g0 + group_size; ++d) out(m, d) = static_cast<float>(Acc(weight(d)) * g[d] * r);
    }
  }
  return out;
}

}  // namespace tokenmix::ref
