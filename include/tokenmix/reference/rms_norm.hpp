#pragma once
// Oracle of blocks::rms_norm: plain loops, accumulation in Acc (double in tests).
//
// Source: transformers models/mamba/modeling_mamba.py::MambaRMSNorm.forward:
//   variance      = x.pow(2).mean(-1, keepdim=True)
//   out           = weight * (x * torch.rsqrt(variance + eps))
// x, out [M, D], weight [D].

#include <cmath>

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

}  // namespace tokenmix::ref
