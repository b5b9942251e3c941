#pragma once
// The one vectorized exponential of tokenmix (DESIGN §5): exp and exp2 over xsimd batches.
//
// Method: range reduction x = k·ln2 + r (Cody-Waite, two-part ln2, |r| <= ln2/2) for exp, and
// t = k + f (|f| <= 1/2, exact) for exp2 (AVX-512: t = k + j/16 + r instead, |r| <= 1/32, with a
// 16-entry 2^(j/16) table in one register (VPERMPS) and a degree-3 polynomial: fewer FMA-pipe
// operations, which is what bounds the selective scan's N decays per token-channel);
// a degree-6 polynomial for e^r / 2^f (Remez minimax for
// relative error, coefficients rounded to float one at a time with the rest refitted: relative
// error 3.2e-9 for e^r, 5.2e-9 for 2^f: <= 0.05 / 0.09 ulp); the result is scaled by 2^k. AVX-512
// scales with VSCALEFPS, which produces subnormals and overflow to +inf exactly; other archs multiply
// by 2^k built from k's bits when every lane's 2^k is a normal float, else by two normal powers of two
// (k split in halves) so that subnormal results are also rounded once, not flushed (the same bits
// either way; the single multiply made AVX2's selective scan 2.5-4% faster).
//
// Accuracy, measured exhaustively (every float of [-105, 89] for exp, [-152, 129] for exp2, against
// std::exp / std::exp2 in double; subnormal results counted in subnormal ulps, 2^-149):
//   exp:  max 0.89 ulp with FMA (AVX-512, fma3<...>), 1.18 ulp without (SSE2 and plain AVX/AVX2
//         when the compiler does not contract xsimd's x*y+z); 0 below -103.97, +inf above 88.72.
//   exp2: max 0.88 ulp with FMA, 1.08 ulp without; 0 from -150 down, +inf from 128 up, exact at
//         integers. AVX-512 (table path): max 0.98 ulp on the test's 19M-float sample.
// tests/simd/math_test.cpp re-checks this on a sample (~19M floats per arch) for every compiled arch.
// Special values: exp(NaN) = NaN, exp(-inf) = 0, exp(+inf) = +inf, exp(+-0) = 1 (same for exp2).

#include "tokenmix/simd/arch.hpp"

namespace tokenmix::simd {

// exp(x) = exp2(x·log2 e): kernels that take exp2 fold log2 e into a scale, and ln 2 converts back.
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2 = 0.693147180559945309f;

namespace detail {

// p * 2^k for integral k (as float), any k.
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> scale_by_pow2(vfloat<Arch> p, vfloat<Arch> k) noexcept {
#if defined(__AVX512F__)
  if constexpr (is_avx512<Arch>) return _mm512_scalef_ps(p, k);
  else
#endif
  {
    const vint32<Arch> ki = xsimd::batch_cast<std::int32_t>(k);
    const vint32<Arch> bias(127);
    // Every lane's 2^k a normal float (the common case): one multiply, exact unless the result is
    // subnormal, which it then rounds once (|p| < 2, so no overflow below k = 128).
    if (xsimd::all((k >= vfloat<Arch>(-126.0f)) & (k <= vfloat<Arch>(127.0f))))
      return p * xsimd::bitwise_cast<vfloat<Arch>>((ki + bias) << 23);
    // Callers clamp k to [-152, 129]; split it so that both factors are normal floats.
    const vint32<Arch> k1 = ki >> 1;
    const vint32<Arch> k2 = ki - k1;
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

// 2^x for x in [-152, 129] (or NaN).
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> exp2_in_range(vfloat<Arch> x) noexcept {
  using V = vfloat<Arch>;
#if defined(__AVX512F__)
  if constexpr (is_avx512<Arch>) {
    // x = k + j/16 + r, |r| <= 1/32: adding 1.5·2^19 rounds x to a multiple of 1/16 and leaves 16·x
    // mod 16 = j in the low mantissa bits, which VPERMPS uses as the index into 2^(j/16).
    const V shifted = x + V(786432.0f);
    const V kj = shifted - V(786432.0f);  // k + j/16, exact
    const V r = x - kj;                   // exact
    // 2^(j/16), rounded to float. (A second, low-part table would bring the error from 1.6 to 0.8
    // ulp but costs a second VPERMPS per call: 17% of the selective scan's time on Zen 5.)
    const __m512 table = _mm512_setr_ps(1.0f, 1.04427373f, 1.09050775f, 1.13878858f, 1.18920708f, 1.24185777f,
                                        1.29683959f, 1.35425556f, 1.41421354f, 1.47682619f, 1.54221082f,
                                        1.61049032f, 1.68179286f, 1.75625217f, 1.8340081f, 1.91520655f);
    const V two_j = _mm512_permutexvar_ps(_mm512_castps_si512(shifted), table);
    // 2^r - 1 = r·(c1 + r·(c2 + r·c3)), minimax on [-1/32, 1/32] (relative error 1.6e-9).
    const V q = fmadd<Arch>(fmadd<Arch>(V(5.55021353e-2f), r, V(2.40234286e-1f)), r, V(6.93147182e-1f));
    // 2^(j/16 + r) = two_j + two_j·(2^r - 1)
    return _mm512_scalef_ps(fmadd<Arch>(two_j, r * q, two_j), kj);  // scalef uses floor(kj) = k
  } else
#endif
  {
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
}

}  // namespace detail

// 2^x. Inputs are clamped to [-152, 129], where the result is already 0 or +inf. (A VREDUCEPS
// variant needs no clamp but measured 35% slower on Zen: its throughput is low there.)
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> exp2(vfloat<Arch> x) noexcept {
  return detail::exp2_in_range<Arch>(detail::clamp_keep_nan<Arch>(x, -152.0f, 129.0f));
}

// 2^x for x <= 129, meant for a softmax's logits minus their maximum (<= 0, or a rounding above it):
// exp2 without its upper clamp, bitwise the same for every such x, -inf (0) and NaN included; above
// 129 the result is unspecified. One vector operation less: a softmax loop (load, subtract the max,
// exp2, store, sum) in L1 took 0.86 of the time on the Zen 5 VM (AVX-512), the two clamps being two
// of its fifteen operations.
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> exp2_nonpositive(vfloat<Arch> x) noexcept {
  return detail::exp2_in_range<Arch>(xsimd::max(vfloat<Arch>(-152.0f), x));  // NaN stays NaN (see clamp_keep_nan)
}

// exp2_nonpositive for finite x <= 129, bitwise the same; -inf and NaN are not allowed (unspecified
// results). AVX-512 drops the lower clamp as well: for finite x below -152 the table path's k + j/16
// is x rounded (its table index then meaningless: an entry in [1, 2) all the same), and VSCALEFPS by
// 2^k with k below -151 gives +0, as the clamp's 2^-152 does. Checked for every negative float once (a
// standalone loop on the Zen 5 VM: no bit differs); the test samples every 4099th. For the softmax of
// logits that cannot be -inf (no masks, no rpb): one vector operation of about thirteen less per logit
// (2-D neighbourhood attention 56x56 K 7 0.98-0.99 of the time on the Zen 5 VM).
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> exp2_finite_nonpositive(vfloat<Arch> x) noexcept {
  if constexpr (is_avx512<Arch>) return detail::exp2_in_range<Arch>(x);
  else return exp2_nonpositive<Arch>(x);
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
