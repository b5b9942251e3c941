#pragma once
// The one vectorized exponential of tokenmix (DESIGN §5): exp and exp2 over xsimd batches.
//
// Method: range reduction x = k·ln2 + r (Cody-Waite, two-part ln2, |r| <= ln2/2) for exp, and
// t = k + f (|f| <= 1/2, exact) for exp2; a degree-6 polynomial for e^r / 2^f (Remez minimax for
// relative error, coefficients rounded to float one at a time with the rest refitted: relative
// error 3.2e-9 for e^r, 5.2e-9 for 2^f: <= 0.05 / 0.09 ulp); the result is scaled by 2^k. AVX-512
// scales with VSCALEFPS, which produces subnormals and overflow to +inf exactly; other archs build
// 2^k as two normal powers of two (k split in halves) so that subnormal results are also rounded
// once, not flushed.
//
// Accuracy, measured exhaustively (every float of [-105, 89] for exp, [-152, 129] for exp2, against
// std::exp / std::exp2 in double; subnormal results counted in subnormal ulps, 2^-149):
//   exp:  max 0.89 ulp with FMA (AVX-512, fma3<...>), 1.18 ulp without (SSE2 and plain AVX/AVX2
//         when the compiler does not contract xsimd's x*y+z); 0 below -103.97, +inf above 88.72.
//   exp2: max 0.88 ulp with FMA, 1.08 ulp without; 0 from -150 down, +inf from 128 up, exact at
//         integers.
// tests/simd/math_test.cpp re-checks this on a sample (~19M floats per arch) for every compiled arch.
// Special values: exp(NaN) = NaN, exp(-inf) = 0, exp(+inf) = +inf, exp(+-0) = 1 (same for exp2).

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
  V p = V(1.58178751e-4f);
  p = fmadd<Arch>(p, f, V(1.34182756e-3f));
  p = fmadd<Arch>(p, f, V(9.61706415e-3f));
  p = fmadd<Arch>(p, f, V(5.55027239e-2f));
  p = fmadd<Arch>(p, f, V(2.40226552e-1f));
  p = fmadd<Arch>(p, f, V(6.93147242e-1f));
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
  V p = V(1.38380029e-3f);
  p = fmadd<Arch>(p, r, V(8.36916547e-3f));
  p = fmadd<Arch>(p, r, V(4.16681021e-2f));
  p = fmadd<Arch>(p, r, V(1.66665167e-1f));
  p = fmadd<Arch>(p, r, V(4.99999940e-1f));
  p = fmadd<Arch>(p, r, V(1.0f));
  p = fmadd<Arch>(p, r, V(1.0f));
  return detail::scale_by_pow2<Arch>(p, k);
}

}  // namespace tokenmix::simd
