#pragma once
// Oracle of blocks::linear: plain loops, accumulation in Acc (double in tests), no SIMD, no threads.
//
// Source: PyTorch torch.nn.functional.linear / nn.Linear (weight stored [out_features, in_features]):
//   out[m, n] = sum_k x[m, k] * W[n, k] + b[n]        (bias optional)
// x [M, K], W [N, K], b [N], out [M, N], all row-major.

#include <optional>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::ref {

namespace detail {
// The oracle's own argument checks (reference/ includes no optimized op): the same rules as
// blocks::linear, so both reject the same inputs.
inline void check_linear_args(const ConstTensorView<float, 2>& x, const ConstTensorView<float, 2>& weight,
                              const std::optional<ConstTensorView<float, 1>>& bias, const TensorView<float, 2>* out) {
  const char* op = "ref::linear";
  const Index N = weight.dimension(0), K = weight.dimension(1);
  tokenmix::detail::check_numel_fits(op, "weight", shape_of(weight));
  tokenmix::detail::check_numel_fits(op, "x", shape_of(x));
  TOKENMIX_CHECK(N > 0 && K > 0, op, ": weight has shape ", shape_of(weight),
                 ", expected [N, K] (nn.Linear [out_features, in_features]) with N > 0 and K > 0");
  TOKENMIX_CHECK(x.dimension(1) == K, op, ": x has shape ", shape_of(x), ", expected [M, K=", K, "]");
  if (bias) tokenmix::detail::check_shape(op, "bias", *bias, NamedShape<1>{{"N"}, {{N}}});
  if (out) tokenmix::detail::check_shape(op, "out", *out, NamedShape<2>{{"M", "N"}, {{x.dimension(0), N}}});
}
}  // namespace detail

template <class Acc = double>
void linear(const ConstTensorView<float, 2>& x,                   // [M, K]
            const ConstTensorView<float, 2>& weight,              // [N, K]
            const std::optional<ConstTensorView<float, 1>>& bias,  // [N] or nullopt
            TensorView<float, 2> out) {                           // [M, N]
  const Index N = weight.dimension(0), K = weight.dimension(1);
  detail::check_linear_args(x, weight, bias, &out);
  for (Index m = 0; m < x.dimension(0); ++m)
    for (Index n = 0; n < N; ++n) {
      Acc s = 0;
      for (Index k = 0; k < K; ++k) s += Acc(x(m, k)) * Acc(weight(n, k));
      if (bias) s += Acc((*bias)(n));
      out(m, n) = static_cast<float>(s);
    }
}

template <class Acc = double>
Tensor<float, 2> linear(const ConstTensorView<float, 2>& x, const ConstTensorView<float, 2>& weight,
                        const std::optional<ConstTensorView<float, 1>>& bias = std::nullopt) {
  detail::check_linear_args(x, weight, bias, nullptr);
  Tensor<float, 2> out(x.dimension(0), weight.dimension(0));
  ref::linear<Acc>(x, weight, bias, TensorView<float, 2>(out.data(), out.dimensions()));
  return out;
}

}  // namespace tokenmix::ref
