#pragma once
// Activations built on simd::exp: softplus (PyTorch's threshold), sigmoid, silu.

#include "tokenmix/simd/exp.hpp"

namespace tokenmix::simd {

// softplus(x) = log(1 + e^x), and x itself above the threshold 20, as torch.nn.functional.softplus
// (beta = 1, threshold = 20) and mamba_ssm's CUDA kernel (`x <= 20 ? log1p(exp(x)) : x`).
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> softplus(vfloat<Arch> x) noexcept {
  const vfloat<Arch> soft = xsimd::log1p(simd::exp<Arch>(x));
  return xsimd::select(x > vfloat<Arch>(20.0f), x, soft);
}

// sigmoid(x) = 1 / (1 + e^-x); exact limits 0 and 1 at +-inf.
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> sigmoid(vfloat<Arch> x) noexcept {
  return vfloat<Arch>(1.0f) / (vfloat<Arch>(1.0f) + simd::exp<Arch>(-x));
}

// silu(x) = x * sigmoid(x) (a.k.a. swish), the gate activation of Mamba.
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> silu(vfloat<Arch> x) noexcept {
  return x * sigmoid<Arch>(x);
}

}  // namespace tokenmix::simd
