#pragma once
// The one vectorized exponential of tokenmix (DESIGN §5): exp and exp2 over xsimd batches.
//
// Method: range reduction x = k·ln2 + r (Cody-Waite, two-part ln2, |r| <= ln2/2) for exp, and
// t = k + f (|f| <= 1/2, exact) for exp2; a degree-6 minimax polynomial for e^r / 2^f (relative
// error 2e-9, below float rounding); the result is scaled by 2^k. AVX-512 scales with VSCALEFPS,
// which produces subnormals and overflow to +inf exactly; other archs build 2^k as two normal
// powers of two (k split in halves) so that subnormal results are also rounded once, not flushed.
//
// Accuracy (tests/simd/math_test.cpp, every 61st float plus the edges, against std::exp in double):
//   exp:  max 2 ulp over [-103.97, 88.72] (normal and subnormal results), 0 below, +inf above.
//   exp2: max 2 ulp over [-149, 128).
// Special values: exp(NaN) = NaN, exp(-inf) = 0, exp(+inf) = +inf (same for exp2).

#include "tokenmix/simd/arch.hpp"

namespace tokenmix::simd {
namespace detail {

// p * 2^k for integral k (as float), any k.
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> scale_by_pow2(vfloat<Arch> p, vfloat<Arch> k) noexcept {
#if defined(__AVX512F__)
  if constexpr (is_avx512<Arch>) return _mm512_scalef_ps(p, k);
  else
#endif
  {
    // Callers clamp k to [-152, 129]; split it so that both factors are normal floats.
    const vint32<Arch> ki = xsimd::batch_cast<std::int32_t>(k);
    const vint32<Arch> k1 = ki >> 1;
    const vint32<Arch> k2 = ki - k1;
    const vint32<Arch> bias(127);
    const vfloat<Arch> s1 = xsimd::bitwise_cast<vfloat<Arch>>((k1 + bias) << 23);
    const vfloat<Arch> s2 = xsimd::bitwise_cast<vfloat<Arch>>((k2 + bias) << 23);
    return (p * s1) * s2;
  }
}

// Clamp keeping NaN: x86 max/min return their second operand when either is NaN.
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> clamp_keep_nan(vfloat<Arch> x, float lo, float hi) noexcept {
  return xsimd::min(vfloat<Arch>(hi), xsimd::max(vfloat<Arch>(lo), x));
}

}  // namespace detail

// 2^x. Inputs are clamped to [-152, 129], where the result is already 0 or +inf.
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> exp2(vfloat<Arch> x) noexcept {
  using V = vfloat<Arch>;
  x = detail::clamp_keep_nan<Arch>(x, -152.0f, 129.0f);
  const V k = round_nearest<Arch>(x);
  const V f = x - k;  // exact, |f| <= 1/2
  // 2^f = 1 + f·(c1 + f·(c2 + ... + f·c6)), minimax on [-1/2, 1/2].
  V p = V(1.5353362e-4f);
  p = fmadd<Arch>(p, f, V(1.3398875e-3f));
  p = fmadd<Arch>(p, f, V(9.61843692e-3f));
  p = fmadd<Arch>(p, f, V(5.55033237e-2f));
  p = fmadd<Arch>(p, f, V(2.40226477e-1f));
  p = fmadd<Arch>(p, f, V(6.93147182e-1f));
  p = fmadd<Arch>(p, f, V(1.0f));
  return detail::scale_by_pow2<Arch>(p, k);
}

// e^x. Inputs are clamped to [-105, 89], where the result is already 0 or +inf.
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> exp(vfloat<Arch> x) noexcept {
  using V = vfloat<Arch>;
  x = detail::clamp_keep_nan<Arch>(x, -105.0f, 89.0f);
  const V k = round_nearest<Arch>(x * V(1.44269504f));
  // r = x - k·ln2 with ln2 split in a part exact in float (8 significant bits) and the rest.
  V r = fnmadd<Arch>(k, V(0.693359375f), x);
  r = fnmadd<Arch>(k, V(-2.12194440e-4f), r);
  // e^r = 1 + r·(c1 + r·(c2 + ... + r·c6)), minimax on [-ln2/2, ln2/2].
  V p = V(1.38436537e-3f);
  p = fmadd<Arch>(p, r, V(8.3741555e-3f));
  p = fmadd<Arch>(p, r, V(4.16680016e-2f));
  p = fmadd<Arch>(p, r, V(1.66664317e-1f));
  p = fmadd<Arch>(p, r, V(4.9999994e-1f));
  p = fmadd<Arch>(p, r, V(1.0f));
  p = fmadd<Arch>(p, r, V(1.0f));
  return detail::scale_by_pow2<Arch>(p, k);
}

}  // namespace tokenmix::simd
