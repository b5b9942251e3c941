#pragma once
// The xsimd entry point of tokenmix (DESIGN §5): the only place, with the rest of simd/, that
// includes <xsimd/xsimd.hpp>. The architecture is chosen at compile time by the consumer's flags:
// `default_arch` is the best one the TU's -m flags enable (SSE2 without flags on x86-64, AVX-512 BW
// with -march=native on a Zen 4). Kernels are templated on Arch so tests can run every compiled arch.
//
// Version shims: xsimd 8.1 (Debian 12) has `hadd`; later versions renamed it `reduce_add` and removed
// `hadd`. xsimd 8.1's avx512f has no fma kernel (x*y+z, two roundings), fixed upstream later.

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "tokenmix/config.hpp"

#if XSIMD_VERSION_MAJOR < 8
#error "tokenmix needs xsimd >= 8.0"
#endif

#if defined(__SSE__)
#include <immintrin.h>  // _mm512_fmadd_ps / _mm512_scalef_ps / _mm512_roundscale_ps / blend shims, stream stores below
#endif

namespace tokenmix::simd {

using default_arch = xsimd::default_arch;

template <class Arch = default_arch>
using vfloat = xsimd::batch<float, Arch>;
template <class Arch = default_arch>
using vint32 = xsimd::batch<std::int32_t, Arch>;

template <class Arch>
constexpr std::size_t lanes = vfloat<Arch>::size;

template <class Arch>
constexpr bool is_avx512 =
#if defined(__AVX512F__)
    std::is_base_of<xsimd::avx512f, Arch>::value;
#else
    false;
#endif

template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> load(const float* p) noexcept {
  return vfloat<Arch>::load_unaligned(p);
}
template <class Arch>
TOKENMIX_ALWAYS_INLINE void store(float* p, vfloat<Arch> v) noexcept {
  v.store_unaligned(p);
}

// A non-temporal store of v at p (aligned to the vector's size): written to memory without fetching
// the line into the caches first (no read for ownership), for outputs larger than the caches that
// nothing reads soon. A plain store where the arch has none. stream_fence() orders such stores
// before what the thread does next (another thread's reads after a join, say).
template <class Arch>
TOKENMIX_ALWAYS_INLINE void store_stream(float* p, vfloat<Arch> v) noexcept {
#if defined(__AVX512F__)
  if constexpr (is_avx512<Arch>) return _mm512_stream_ps(p, v);
#endif
#if defined(__AVX__)
  if constexpr (!is_avx512<Arch> && lanes<Arch> == 8) return _mm256_stream_ps(p, v);
#endif
#if defined(__SSE__)
  if constexpr (lanes<Arch> == 4) return _mm_stream_ps(p, v);
#endif
  v.store_unaligned(p);
}
inline void stream_fence() noexcept {
#if defined(__SSE__)
  _mm_sfence();
#endif
}

// Makes the compiler keep v in a register from here on: a vector used by several FMAs is loaded once
// instead of being folded into each FMA as a memory operand (which GCC prefers, multiplying the
// loads of register-blocked micro-kernels).
template <class Arch>
TOKENMIX_ALWAYS_INLINE void in_register(vfloat<Arch>& v) noexcept {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  typename vfloat<Arch>::register_type r = v;
#if defined(__AVX512F__)
  asm("" : "+v"(r));
#else
  asm("" : "+x"(r));
#endif
  v = r;
#else
  (void)v;
#endif
}

// The first `count` (< lanes) floats at p, zeros beyond; never reads past p + count. AVX-512 uses a
// masked load; other archs copy through `pad` (lanes floats) with a plain loop (no memcpy call, so
// a hot loop with a partial-block path keeps its values in registers).
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> load_partial(const float* p, std::size_t count, float* pad) noexcept {
#if defined(__AVX512F__)
  if constexpr (is_avx512<Arch>) {
    (void)pad;
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1u), p);
  } else
#endif
  {
    for (std::size_t i = 0; i < lanes<Arch>; ++i) pad[i] = i < count ? p[i] : 0.0f;
    return load<Arch>(pad);
  }
}

// Stores the first `count` (< lanes) lanes of v at p; never writes past p + count.
template <class Arch>
TOKENMIX_ALWAYS_INLINE void store_partial(float* p, vfloat<Arch> v, std::size_t count, float* pad) noexcept {
#if defined(__AVX512F__)
  if constexpr (is_avx512<Arch>) {
    (void)pad;
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << count) - 1u), v);
  } else
#endif
  {
    store<Arch>(pad, v);
    for (std::size_t i = 0; i < count; ++i) p[i] = pad[i];
  }
}

// `count` (1..lanes) floats at p, zeros beyond: a plain load for a full vector, else load_partial
// (the channel blocks of the kernels: full except at the end of a group).
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> load_upto(const float* p, std::ptrdiff_t count, float* pad) noexcept {
  if (count == static_cast<std::ptrdiff_t>(lanes<Arch>)) return load<Arch>(p);
  return load_partial<Arch>(p, static_cast<std::size_t>(count), pad);
}
template <class Arch>
TOKENMIX_ALWAYS_INLINE void store_upto(float* p, vfloat<Arch> v, std::ptrdiff_t count, float* pad) noexcept {
  if (count == static_cast<std::ptrdiff_t>(lanes<Arch>)) return store<Arch>(p, v);
  store_partial<Arch>(p, v, static_cast<std::size_t>(count), pad);
}

// a * b + c, a single rounding wherever the arch has an FMA instruction.
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> fmadd(vfloat<Arch> a, vfloat<Arch> b, vfloat<Arch> c) noexcept {
#if defined(__AVX512F__)
  if constexpr (is_avx512<Arch>) return _mm512_fmadd_ps(a, b, c);
  else
#endif
    return xsimd::fma(a, b, c);
}

// acc += a * b, as fmadd, with the sum kept in acc's register: on AVX-512 one vfmadd231ps. Where
// a multiplicand dies at the FMA GCC may otherwise pick the 132 form, leave the sum in the
// multiplicand's register and move it back later: in the neighbourhood weighted sum (112 FMAs a
// loop iteration) that was 41 register moves an iteration, and the op took 0.97-1.00 of the time without
// them (Zen 5 VM, in-process alternation, five runs).
template <class Arch>
TOKENMIX_ALWAYS_INLINE void fmadd_to(vfloat<Arch>& acc, vfloat<Arch> a, vfloat<Arch> b) noexcept {
#if defined(__AVX512F__)
  if constexpr (is_avx512<Arch>) {
    __m512 sum = acc;
    asm("vfmadd231ps %2, %1, %0" : "+v"(sum) : "v"(static_cast<__m512>(a)), "v"(static_cast<__m512>(b)));
    acc = vfloat<Arch>(sum);
    return;
  }
#endif
  acc = fmadd<Arch>(a, b, acc);
}

// c - a * b (one rounding where the arch has FMA).
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> fnmadd(vfloat<Arch> a, vfloat<Arch> b, vfloat<Arch> c) noexcept {
#if defined(__AVX512F__)
  if constexpr (is_avx512<Arch>) return _mm512_fnmadd_ps(a, b, c);
  else
#endif
    return xsimd::fnma(a, b, c);
}

// Round to nearest integer (ties to even), result as float.
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> round_nearest(vfloat<Arch> x) noexcept {
#if defined(__AVX512F__)
  if constexpr (is_avx512<Arch>)
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  else
#endif
    return xsimd::nearbyint(x);
}

// Lane l of the result: a where bit l of `bits` is set, b elsewhere (a token mask applied to a
// vector of logits). AVX-512: one masked blend; AVX2: the bits tested against per-lane constants;
// otherwise through `pad` (2·lanes floats).
template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> select_by_bits(std::uint32_t bits, vfloat<Arch> a, vfloat<Arch> b,
                                                   float* pad) noexcept {
#if defined(__AVX512F__)
  if constexpr (is_avx512<Arch>) {
    (void)pad;
    return _mm512_mask_blend_ps(static_cast<__mmask16>(bits), b, a);
  } else
#endif
#if defined(__AVX2__)
  if constexpr (std::is_base_of<xsimd::avx2, Arch>::value && lanes<Arch> == 8) {
    (void)pad;
    const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256i set = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits)), lane_bit), lane_bit);
    return _mm256_blendv_ps(b, a, _mm256_castsi256_ps(set));
  } else
#endif
  {
    constexpr std::size_t n = lanes<Arch>;
    store<Arch>(pad, a);
    store<Arch>(pad + n, b);
    for (std::size_t l = 0; l < n; ++l)
      if (!((bits >> l) & 1u)) pad[l] = pad[n + l];
    return load<Arch>(pad);
  }
}

// Sum of the lanes.
template <class Arch>
TOKENMIX_ALWAYS_INLINE float reduce_add(vfloat<Arch> v) noexcept {
#if XSIMD_VERSION_MAJOR >= 10
  return xsimd::reduce_add(v);
#else
  return xsimd::hadd(v);
#endif
}

}  // namespace tokenmix::simd
