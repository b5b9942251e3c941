#pragma once
// Activations built on simd::exp: softplus (PyTorch's threshold), sigmoid, silu, gelu (erf form),
// and the softmax of a row.

#include <cmath>
#include <limits>

#include "tokenmix/simd/exp.hpp"
#include "tokenmix/simd/transpose.hpp"

namespace tokenmix::simd {

// softplus(x) = log(1 + e^x) with PyTorch's threshold semantics (torch.nn.functional.softplus,
// beta = 1, threshold = 20: x itself above 20), as mamba_ssm's CUDA kernel
// (`x <= 20 ? log1p(exp(x)) : x`).
// Computed as max(x, 0) + log1p(w), w = e^-|x| in [0, 1], with log1p(w) = w·Q(w) and Q a degree-8
// minimax polynomial (relative error 3e-8; a few ulp in float). It never overflows, is accurate
// relative to the result also for x << 0 (where softplus(x) ~ e^x), and rounds to x exactly above
// 20 (e^-20 is below half an ulp of 20), so the threshold needs no branch.
// softplus(NaN) = NaN, softplus(+inf) = +inf, softplus(-inf) = 0.
// This is the scan's input path (one per token and channel): a general log would cost twice as much.
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> softplus(vfloat<Arch> x) noexcept {
  using V = vfloat<Arch>;
  const V w = simd::exp<Arch>(-xsimd::abs(x));
  V q = V(5.23269316e-3f);
  q = fmadd<Arch>(q, w, V(-2.95052361e-2f));
  q = fmadd<Arch>(q, w, V(7.82259554e-2f));
  q = fmadd<Arch>(q, w, V(-1.36632457e-1f));
  q = fmadd<Arch>(q, w, V(1.91060066e-1f));
  q = fmadd<Arch>(q, w, V(-2.48429820e-1f));
  q = fmadd<Arch>(q, w, V(3.33190978e-1f));
  q = fmadd<Arch>(q, w, V(-4.99994934e-1f));
  q = fmadd<Arch>(q, w, V(9.99999940e-1f));
  return fmadd<Arch>(w, q, xsimd::max(x, V(0.0f)));
}

// sigmoid(x) = 1 / (1 + e^-x); exact limits 0 and 1 at -inf and +inf.
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> sigmoid(vfloat<Arch> x) noexcept {
  return vfloat<Arch>(1.0f) / (vfloat<Arch>(1.0f) + simd::exp<Arch>(-x));
}

// silu(x) = x * sigmoid(x) (a.k.a. swish), the gate activation of Mamba.
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> silu(vfloat<Arch> x) noexcept {
  return x * sigmoid<Arch>(x);
}

// x[i] = silu(x[i]) for i < n, in place: the activation pass over a buffer of the blocks.
template <class Arch = default_arch>
inline void silu_inplace(float* x, std::ptrdiff_t n) noexcept {
  constexpr std::ptrdiff_t W = static_cast<std::ptrdiff_t>(lanes<Arch>);
  alignas(64) float pad[64];
  for (std::ptrdiff_t i = 0; i < n; i += W) {
    const std::ptrdiff_t count = n - i < W ? n - i : W;
    store_upto<Arch>(x + i, silu<Arch>(load_upto<Arch>(x + i, count, pad)), count, pad);
  }
}

// x[i] = gelu(x[i]) = x·(1 + erf(x / √2)) / 2 for i < n, in place: PyTorch's nn.GELU() (the exact,
// approximate='none' form; A2Mamba's FFN). erf is xsimd's (a few ulp).
template <class Arch = default_arch>
inline void gelu_inplace(float* x, std::ptrdiff_t n) noexcept {
  using V = vfloat<Arch>;
  constexpr std::ptrdiff_t W = static_cast<std::ptrdiff_t>(lanes<Arch>);
  alignas(64) float pad[64];
  for (std::ptrdiff_t i = 0; i < n; i += W) {
    const std::ptrdiff_t count = n - i < W ? n - i : W;
    const V v = load_upto<Arch>(x + i, count, pad);
    store_upto<Arch>(x + i, V(0.5f) * v * (V(1.0f) + xsimd::erf(v * V(0.70710678118654752f))), count, pad);
  }
}

// x[0..n) = softmax(x[0..n)) in place (max subtracted first, as torch.softmax); n >= 1. A row of
// -inf (every slot masked) gives NaN as in PyTorch. Full vectors, then the tail through a partial
// store (its lanes past n never enter the max or the sum).
template <class Arch = default_arch>
inline void softmax_inplace(float* x, std::ptrdiff_t n) noexcept {
  using V = vfloat<Arch>;
  constexpr std::ptrdiff_t W = static_cast<std::ptrdiff_t>(lanes<Arch>);
  alignas(64) float pad[64];
  const std::ptrdiff_t full = n / W * W;
  V vmax(-std::numeric_limits<float>::infinity());
  for (std::ptrdiff_t i = 0; i < full; i += W) vmax = xsimd::max(vmax, load<Arch>(x + i));
  float m = simd::reduce_max<Arch>(vmax);
  for (std::ptrdiff_t i = full; i < n; ++i) m = x[i] > m ? x[i] : m;
  const V vm(m);
  V vsum(0.0f);
  for (std::ptrdiff_t i = 0; i < full; i += W) {
    const V e = simd::exp<Arch>(load<Arch>(x + i) - vm);
    vsum += e;
    store<Arch>(x + i, e);
  }
  float sum = reduce_add<Arch>(vsum);
  if (full < n) {
    store_partial<Arch>(x + full, simd::exp<Arch>(load_partial<Arch>(x + full, std::size_t(n - full), pad) - vm),
                        std::size_t(n - full), pad);
    for (std::ptrdiff_t i = full; i < n; ++i) sum += x[i];
  }
  const V inv(1.0f / sum);
  for (std::ptrdiff_t i = 0; i < n; i += W) {
    const std::ptrdiff_t count = n - i < W ? n - i : W;
    store_upto<Arch>(x + i, load_upto<Arch>(x + i, count, pad) * inv, count, pad);
  }
}

}  // namespace tokenmix::simd
