#pragma once
// In-register W x W transposes of float blocks (x86: SSE 4x4, AVX 8x8, AVX-512 16x16): the states
// mode of the selective scan writes [N, W] staged states as [W, N] rows, the decode kernel of the
// attention engine turns W per-key partial-sum vectors into one vector of W logits.
//
//   simd::has_square_transpose<Arch>                 whether Arch has the in-register version
//   simd::transpose_square<Arch>(src, src_stride, dst, dst_stride, rows)
//       row i of the W x W block at src (rows src_stride apart) becomes column i; row `lane` of the
//       result goes to dst + lane·dst_stride, for lane < rows. On other archs: a scalar transpose.
//   simd::transpose_square_rows<Arch>(src_rows, dst, dst_stride, rows)   the same, row i at src_rows[i]
//   simd::transpose_block<Arch>(src, src_stride, rows, cols, dst, dst_stride)   any rows x cols block:
//       dst[c·dst_stride + r] = src[r·src_stride + c]; whole W x W squares in registers, scalar copies
//       at the edges (the keys of a chunk turned into Kᵀ for the chunked linear-attention products)
//   simd::lane_sums<Arch>(v)   for W vectors v[0..W): the vector whose lane r is the sum of the
//       lanes of v[r] (a transpose and a sum in one: 45 shuffles and adds on AVX-512, in registers).
//   simd::reduce_max<Arch>(v)  the largest lane.

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "tokenmix/simd/arch.hpp"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace tokenmix::simd {

namespace detail {
template <class Arch>
inline constexpr bool is_avx512_square = is_avx512<Arch>;
template <class Arch>
inline constexpr bool is_avx_square =
#if defined(__AVX__)
    !is_avx512<Arch> && std::is_base_of<xsimd::avx, Arch>::value && lanes<Arch> == 8;
#else
    false;
#endif
template <class Arch>
inline constexpr bool is_sse_square =
#if defined(__SSE2__)
    std::is_base_of<xsimd::sse2, Arch>::value && lanes<Arch> == 4;
#else
    false;
#endif
}  // namespace detail

template <class Arch>
inline constexpr bool has_square_transpose =
    detail::is_avx512_square<Arch> || detail::is_avx_square<Arch> || detail::is_sse_square<Arch>;

namespace detail {

// The transpose with source row i at row(i) (a pointer to W floats).
template <class Arch, class RowPtr>
TOKENMIX_ALWAYS_INLINE void transpose_square_from(RowPtr row, float* dst, std::ptrdiff_t dst_stride,
                                                  std::ptrdiff_t rows) noexcept {
#if defined(__AVX512F__)
  if constexpr (detail::is_avx512_square<Arch>) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(row(i));
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
      r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
      r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
      r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
      r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    // r[4q + k] (q = row quad, k = column in quad) holds, per 128-bit lane c, rows 4q..4q+3 of
    // column 4c + k. Gather the four quads of each 128-bit lane.
    for (int k = 0; k < 4; ++k) {
      const __m512 a = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x44);       // q0 c0,c1 | q1 c0,c1
      const __m512 b = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x44);  // q2 c0,c1 | q3 c0,c1
      const __m512 c = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xEE);       // q0 c2,c3 | q1 c2,c3
      const __m512 d = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xEE);  // q2 c2,c3 | q3 c2,c3
      t[k] = _mm512_shuffle_f32x4(a, b, 0x88);       // column k:      q0 q1 q2 q3 of lane c0
      t[4 + k] = _mm512_shuffle_f32x4(a, b, 0xDD);   // column 4 + k
      t[8 + k] = _mm512_shuffle_f32x4(c, d, 0x88);   // column 8 + k
      t[12 + k] = _mm512_shuffle_f32x4(c, d, 0xDD);  // column 12 + k
    }
    for (std::ptrdiff_t i = 0; i < rows; ++i) _mm512_storeu_ps(dst + i * dst_stride, t[i]);
    return;
  }
#endif
#if defined(__AVX__)
  if constexpr (detail::is_avx_square<Arch>) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(row(i));
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
      r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
      r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
      r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int k = 0; k < 4; ++k) {
      t[k] = _mm256_permute2f128_ps(r[k], r[4 + k], 0x20);
      t[4 + k] = _mm256_permute2f128_ps(r[k], r[4 + k], 0x31);
    }
    for (std::ptrdiff_t i = 0; i < rows; ++i) _mm256_storeu_ps(dst + i * dst_stride, t[i]);
    return;
  }
#endif
#if defined(__SSE2__)
  if constexpr (detail::is_sse_square<Arch>) {
    __m128 r0 = _mm_loadu_ps(row(0)), r1 = _mm_loadu_ps(row(1)), r2 = _mm_loadu_ps(row(2)), r3 = _mm_loadu_ps(row(3));
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    const __m128 t[4] = {r0, r1, r2, r3};
    for (std::ptrdiff_t i = 0; i < rows; ++i) _mm_storeu_ps(dst + i * dst_stride, t[i]);
    return;
  }
#endif
  constexpr std::ptrdiff_t W = static_cast<std::ptrdiff_t>(lanes<Arch>);
  for (std::ptrdiff_t i = 0; i < rows; ++i)
    for (std::ptrdiff_t j = 0; j < W; ++j) dst[i * dst_stride + j] = row(int(j))[i];
}

}  // namespace detail

template <class Arch>
TOKENMIX_ALWAYS_INLINE void transpose_square(const float* src, std::ptrdiff_t src_stride, float* dst,
                                             std::ptrdiff_t dst_stride, std::ptrdiff_t rows) noexcept {
  detail::transpose_square_from<Arch>([=](int i) { return src + i * src_stride; }, dst, dst_stride, rows);
}

// The same with source row i at src_rows[i] (e.g. clamped to the valid rows of a border block).
template <class Arch>
TOKENMIX_ALWAYS_INLINE void transpose_square_rows(const float* const* src_rows, float* dst, std::ptrdiff_t dst_stride,
                                                  std::ptrdiff_t rows) noexcept {
  detail::transpose_square_from<Arch>([=](int i) { return src_rows[i]; }, dst, dst_stride, rows);
}

template <class Arch>
inline void transpose_block(const float* src, std::ptrdiff_t src_stride, std::ptrdiff_t rows, std::ptrdiff_t cols,
                            float* dst, std::ptrdiff_t dst_stride) noexcept {
  constexpr std::ptrdiff_t W = static_cast<std::ptrdiff_t>(lanes<Arch>);
  for (std::ptrdiff_t r = 0; r < rows; r += W)
    for (std::ptrdiff_t c = 0; c < cols; c += W) {
      const float* s = src + r * src_stride + c;
      float* d = dst + c * dst_stride + r;
      if (r + W <= rows && c + W <= cols) {
        transpose_square<Arch>(s, src_stride, d, dst_stride, W);
        continue;
      }
      for (std::ptrdiff_t i = 0; i < std::min(W, rows - r); ++i)
        for (std::ptrdiff_t j = 0; j < std::min(W, cols - c); ++j) d[j * dst_stride + i] = s[i * src_stride + j];
    }
}

template <class Arch>
TOKENMIX_ALWAYS_INLINE vfloat<Arch> lane_sums(const vfloat<Arch>* v) noexcept {
#if defined(__AVX512F__)
  if constexpr (detail::is_avx512_square<Arch>) {
    // Level 1: pairs of vectors; per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3].
    __m512 t[8];
    for (int i = 0; i < 8; ++i) {
      const __m512 a = v[2 * i], b = v[2 * i + 1];
      t[i] = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    }
    // Level 2: per 128-bit lane c, u[j] holds the lane-c partial sums of vectors 4j .. 4j + 3.
    __m512 u[4];
    for (int j = 0; j < 4; ++j) {
      const __m512d x = _mm512_castps_pd(t[2 * j]), y = _mm512_castps_pd(t[2 * j + 1]);
      u[j] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    // Level 3: sum the four 128-bit lanes; 128-bit lane q of the result holds vectors 4q .. 4q + 3.
    const __m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x44), _mm512_shuffle_f32x4(u[0], u[1], 0xEE));
    const __m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x44), _mm512_shuffle_f32x4(u[2], u[3], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, 0x88), _mm512_shuffle_f32x4(s01, s23, 0xDD));
  } else
#endif
  {
    constexpr std::size_t W = lanes<Arch>;
    alignas(64) float lanes_of[W * W], sums[W];
    for (std::size_t r = 0; r < W; ++r) store<Arch>(lanes_of + r * W, v[r]);
    for (std::size_t r = 0; r < W; ++r) {
      float sum = 0.0f;
      for (std::size_t l = 0; l < W; ++l) sum += lanes_of[r * W + l];
      sums[r] = sum;
    }
    return load<Arch>(sums);
  }
}

template <class Arch>
TOKENMIX_ALWAYS_INLINE float reduce_max(vfloat<Arch> v) noexcept {
#if defined(__AVX512F__)
  if constexpr (is_avx512<Arch>) return _mm512_reduce_max_ps(v);
  else
#endif
  {
    constexpr std::size_t W = lanes<Arch>;
    alignas(64) float x[W];
    store<Arch>(x, v);
    float m = x[0];
    for (std::size_t l = 1; l < W; ++l) m = x[l] > m ? x[l] : m;
    return m;
  }
}

}  // namespace tokenmix::simd
