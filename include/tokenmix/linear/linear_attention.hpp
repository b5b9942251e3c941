#pragma once
// linear::linear_attention: (causal or not) linear attention with a feature map and an optional
// normaliser (Katharopoulos et al. 2020; fla's chunk_linear_attn / fused_recurrent_linear_attn):
//
//   causal:      o_t = scale·φ(q_t) S_t,  S_t = S_{-1} + Σ_{s <= t} φ(k_s)ᵀ v_s
//   non-causal:  o_t = scale·φ(q_t) S,    S = Σ_s φ(k_s)ᵀ v_s
//   normalize:   o_t /= scale·φ(q_t)·z_t + eps,  z_t = z_{-1} + Σ_{s <= t} φ(k_s)  (non-causal: all s)
//
//   linear::LinearAttentionOptions o;  o.feature_map = FeatureMap::elu_plus_one, o.normalize = true;
//   auto r = linear::linear_attention(q, k, v, o);
//   // r.out [B, L, H, V], r.final_state [B, H, K, V], r.final_normalizer [B, H, K] (normalize)
//
// Causal: simple_gla with no decay on φ(q), φ(k) (the chunked / recurrent forms of simple_gla.hpp);
// the normaliser is the same recurrence with v = 1 (one value column). Non-causal: S = φ(K)ᵀ V and
// O = φ(Q) S per (b, h), vectorised over V. initial_state / initial_normalizer continue a causal
// sequence; they are rejected with causal = false. Options and shapes: linear_attention_types.hpp.

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "tokenmix/core/threading.hpp"
#include "tokenmix/linear/simple_gla.hpp"
#include "tokenmix/simd/transpose.hpp"

namespace tokenmix::linear {

namespace detail {

// y = φ(x) over n floats, vectorised (elu(x) + 1 = exp(x) for x <= 0).
template <class Arch>
void apply_feature_map(FeatureMap map, const float* x, Index n, float* y, const Eigen::ThreadPoolDevice* device) {
  using V = simd::vfloat<Arch>;
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>), kBlock = 1 << 14;
  tokenmix::detail::parallel_for(device, (n + kBlock - 1) / kBlock, [&](Index first, Index last) {
    alignas(64) float pad[2 * W];
    for (Index i = first * kBlock; i < std::min(n, last * kBlock); i += W) {
      const Index m = std::min(W, n - i);
      const V v = simd::load_upto<Arch>(x + i, m, pad);
      V f = v;
      // NaN propagates (torch's elu / relu): comparisons are false for NaN, so NaN lanes keep v.
      const auto positive = v > V(0.0f);
      if (map == FeatureMap::elu_plus_one) f = xsimd::select(positive, v + V(1.0f), simd::exp<Arch>(xsimd::select(positive, V(0.0f), v)));
      if (map == FeatureMap::relu) f = xsimd::select(v < V(0.0f), V(0.0f), v);
      simd::store_upto<Arch>(y + i, f, m, pad + W);
    }
  });
}

// Non-causal per (b, h): S = φ(K)ᵀ V [K, V], z = Σ φ(k) [K]; o = scale·φ(Q) S (/ (scale·φ(q)·z + eps)).
// Both products run on the chunked SSD kernel's register tiles (ssm/ssd_kernel.hpp): S accumulates
// over blocks of T tokens from a transposed copy of the block's k rows (Kᵀ [K, T]) times its v rows;
// O takes the query rows in place times S (padded to whole vectors, [K, VP]). z sums each block in
// float and the blocks in double.
template <class Arch>
void linear_attention_noncausal(const LinearShape& s, const float* q, const float* k, const float* v, float scale,
                                bool normalize, float eps, float* out, float* state, float* normalizer,
                                const Eigen::ThreadPoolDevice* device) {
  using Kernel = ssm::detail::SsdChunkedKernel<Arch>;
  using Vf = simd::vfloat<Arch>;
  using Buffer = std::vector<float, xsimd::aligned_allocator<float, 64>>;
  constexpr Index W = Kernel::W;
  constexpr int MR = Kernel::MR, NVMAX = Kernel::NVMAX;
  constexpr Index T = 64;  // tokens per block of the S product: their Kᵀ and v rows stay in L1
  const Index L = s.length, H = s.heads, K = s.key_dim, Vd = s.value_dim, VP = (Vd + W - 1) / W * W;
  const Index ldq = H * K, ldv = H * Vd;  // token rows of one head
  tokenmix::detail::parallel_for(device, s.batch * H, [&](Index first, Index last) {
    Buffer KT(std::size_t(K * T)), Vpad(VP != Vd ? std::size_t(T * VP) : 0), Sp(std::size_t(K * VP)),
        tile(std::size_t(MR * NVMAX * W));
    std::vector<double> z_sum(static_cast<std::size_t>(K));
    alignas(64) float pad[2 * W];
    for (Index bh = first; bh < last; ++bh) {
      const Index b = bh / H, h = bh % H;
      const float* kb = k + (b * L * H + h) * K;
      const float* qb = q + (b * L * H + h) * K;
      const float* vb = v + (b * L * H + h) * Vd;
      float* ob = out + (b * L * H + h) * Vd;
      float* S = state + bh * K * Vd;  // [K, V]
      float* z = normalizer + bh * K;  // [K]
      std::fill(Sp.begin(), Sp.end(), 0.0f);
      std::fill(z_sum.begin(), z_sum.end(), 0.0);
      for (Index t_lo = 0; t_lo < L; t_lo += T) {
        const Index Tc = std::min(T, L - t_lo);
        simd::transpose_block<Arch>(kb + t_lo * ldq, ldq, Tc, K, KT.data(), T);  // Kᵀ [K, T]
        if (normalize)
          for (Index r = 0; r < K; r += W) {  // the block's Σ k in float, lane = feature
            const Index n = std::min(W, K - r);
            Vf block(0.0f);
            for (Index t = 0; t < Tc; ++t) block += simd::load_upto<Arch>(kb + (t_lo + t) * ldq + r, n, pad);
            alignas(64) float lanes[64];
            simd::store<Arch>(lanes, block);
            for (Index j = 0; j < n; ++j) z_sum[std::size_t(r + j)] += double(lanes[j]);
          }
        const float* vrows = vb + t_lo * ldv;  // v rows of the block, ldb apart
        Index ldb = ldv;
        if (VP != Vd) {  // whole vectors: a zero-padded copy
          for (Index t = 0; t < Tc; ++t) {
            std::copy_n(vrows + t * ldv, Vd, Vpad.data() + t * VP);
            std::fill(Vpad.data() + t * VP + Vd, Vpad.data() + (t + 1) * VP, 0.0f);
          }
          vrows = Vpad.data(), ldb = VP;
        }
        for (Index r0 = 0; r0 < K; r0 += MR)
          for (Index c0 = 0; c0 < VP / W; c0 += NVMAX)
            Kernel::template dispatch<MR>(int(std::min<Index>(MR, K - r0)), int(std::min<Index>(NVMAX, VP / W - c0)),
                                          [&](auto R_, auto NV_) TOKENMIX_ALWAYS_INLINE_LAMBDA {
                                            constexpr int R = decltype(R_)::value, NV = decltype(NV_)::value;
                                            float* dst = Sp.data() + r0 * VP + c0 * W;
                                            Kernel::template tile<R, NV, false>(
                                                dst, VP, dst, 1.0f, {KT.data() + r0 * T, T, vrows + c0 * W, ldb, Tc},
                                                nullptr, Kernel::kNone, Kernel::kNone);
                                          });
      }
      for (Index r = 0; r < K; ++r) std::copy_n(Sp.data() + r * VP, Vd, S + r * Vd);
      for (Index r = 0; r < K; ++r) z[r] = static_cast<float>(z_sum[std::size_t(r)]);
      // o[t0 .. t0 + MR) = factor_t · q_t S, a tile of MR tokens at a time.
      for (Index t0 = 0; t0 < L; t0 += MR) {
        const int rows = int(std::min<Index>(MR, L - t0));
        float factor[MR];
        for (int i = 0; i < rows; ++i) {
          float den = 0.0f;
          if (normalize) {
            Vf acc(0.0f);
            for (Index r = 0; r < K; r += W) {
              const Index n = std::min(W, K - r);
              acc = simd::fmadd<Arch>(simd::load_upto<Arch>(qb + (t0 + i) * ldq + r, n, pad),
                                      simd::load_upto<Arch>(z + r, n, pad + W), acc);
            }
            den = simd::reduce_add<Arch>(acc);
          }
          factor[i] = normalize ? scale / (scale * den + eps) : scale;
        }
        for (Index c0 = 0; c0 < VP / W; c0 += NVMAX) {
          const int nv = int(std::min<Index>(NVMAX, VP / W - c0));
          Kernel::template dispatch<MR>(rows, nv, [&](auto R_, auto NV_) TOKENMIX_ALWAYS_INLINE_LAMBDA {
            constexpr int R = decltype(R_)::value, NV = decltype(NV_)::value;
            Kernel::template tile<R, NV, false>(tile.data(), NVMAX * W, nullptr, 0.0f,
                                                {qb + t0 * ldq, ldq, Sp.data() + c0 * W, VP, K}, nullptr, Kernel::kNone,
                                                Kernel::kNone);
          });
          for (int i = 0; i < rows; ++i)
            for (int j = 0; j < nv; ++j) {
              const Index c = (c0 + j) * W, n = std::min(W, Vd - c);
              simd::store_upto<Arch>(ob + (t0 + i) * ldv + c, simd::load<Arch>(tile.data() + i * NVMAX * W + j * W) * Vf(factor[i]),
                                     n, pad);
            }
        }
      }
    }
  });
}

}  // namespace detail

// View-based core: writes out [B, L, H, V], final_state [B, H, K, V] and, with normalize,
// final_normalizer [B, H, K] (each may be null but out). Scratch (φ(q), φ(k), the denominator pass) is
// kept per thread across calls: fresh buffers would cost a page fault per 4 KiB on every call.
template <class Arch = simd::default_arch>
void linear_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                      const ConstTensorView<float, 4>& v, const LinearAttentionOptions& options, TensorView<float, 4> out,
                      TensorView<float, 4>* final_state, TensorView<float, 3>* final_normalizer) {
  constexpr const char* op = "linear_attention";
  using tokenmix::detail::check_shape;
  const detail::LinearShape s = detail::check_linear_qkv(op, q, k, v);
  const float scale = detail::check_linear_scale(op, options.scale, s.key_dim);
  TOKENMIX_CHECK(options.causal || (!options.initial_state && !options.initial_normalizer), op,
                 ": initial_state / initial_normalizer continue a causal sequence; causal is false");
  TOKENMIX_CHECK(options.normalize || (!options.initial_normalizer && !final_normalizer), op,
                 ": initial_normalizer / final_normalizer need normalize = true");
  TOKENMIX_CHECK(options.eps >= 0.0f && std::isfinite(options.eps), op, ": eps is ", options.eps, ", expected finite >= 0");
  if (options.initial_state) detail::check_linear_state(op, "initial_state", *options.initial_state, s);
  const NamedShape<3> z_shape{{"B", "H", "K"}, {{s.batch, s.heads, s.key_dim}}};
  if (options.initial_normalizer) check_shape(op, "initial_normalizer", *options.initial_normalizer, z_shape);
  check_shape(op, "out", out, NamedShape<4>{{"B", "L", "H", "V"}, {{s.batch, s.length, s.heads, s.value_dim}}});
  if (final_state) detail::check_linear_state(op, "final_state", *final_state, s);
  if (final_normalizer) check_shape(op, "final_normalizer", *final_normalizer, z_shape);
  TOKENMIX_CHECK(options.chunk_size >= 0, op, ": chunk_size is ", options.chunk_size, ", expected >= 0 (0: the default)");
  detail::check_no_alias(op, out.data(), out.size(), {q.data(), k.data(), v.data()}, {q.size(), k.size(), v.size()});
  if (final_state)
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(final_state->data(), final_state->size(), out.data(), out.size()), op,
                   ": final_state must not overlap out");
  if (final_normalizer)
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(final_normalizer->data(), final_normalizer->size(), out.data(), out.size()),
                   op, ": final_normalizer must not overlap out");

  using Buffer = std::vector<float, xsimd::aligned_allocator<float, 64>>;
  static thread_local Buffer fq, fk, state_buf, z_buf, ones, den;
  // φ(q), φ(k): copies unless the map is the identity.
  const float *Qp = q.data(), *Kp = k.data();
  if (options.feature_map != FeatureMap::identity) {
    fq.resize(std::size_t(q.size())), fk.resize(std::size_t(k.size()));
    detail::apply_feature_map<Arch>(options.feature_map, q.data(), q.size(), fq.data(), options.device);
    detail::apply_feature_map<Arch>(options.feature_map, k.data(), k.size(), fk.data(), options.device);
    Qp = fq.data(), Kp = fk.data();
  }
  const ConstTensorView<float, 4> Q(Qp, q.dimensions()), Kf(Kp, k.dimensions());
  state_buf.resize(std::size_t(s.batch * s.heads * s.key_dim * s.value_dim));
  z_buf.resize(std::size_t(s.batch * s.heads * s.key_dim));
  float* S = final_state ? final_state->data() : state_buf.data();
  float* z = final_normalizer ? final_normalizer->data() : z_buf.data();
  if (!options.causal) {
    detail::linear_attention_noncausal<Arch>(s, Qp, Kp, v.data(), scale, options.normalize, options.eps, out.data(), S, z,
                                             options.device);
    return;
  }
  SimpleGlaOptions o;
  o.scale = scale, o.initial_state = options.initial_state, o.algorithm = options.algorithm;
  o.chunk_size = options.chunk_size, o.device = options.device;
  TensorView<float, 4> state(S, s.batch, s.heads, s.key_dim, s.value_dim);
  simple_gla<Arch>(Q, Kf, v, o, out, &state);
  if (!options.normalize) return;
  // The denominator: the same recurrence with one value column of ones.
  const Index rows = s.batch * s.length * s.heads;
  ones.assign(std::size_t(rows), 1.0f), den.resize(std::size_t(rows));
  SimpleGlaOptions zo = o;
  zo.initial_state.reset();
  if (options.initial_normalizer) zo.initial_state.emplace(options.initial_normalizer->data(), s.batch, s.heads, s.key_dim, 1);
  TensorView<float, 4> z_view(z, s.batch, s.heads, s.key_dim, 1);
  simple_gla<Arch>(Q, Kf, ConstTensorView<float, 4>(ones.data(), s.batch, s.length, s.heads, 1), zo,
                   TensorView<float, 4>(den.data(), s.batch, s.length, s.heads, 1), &z_view);
  for (Index row = 0; row < rows; ++row) {
    const float inv = 1.0f / (den[std::size_t(row)] + options.eps);
    for (Index c = 0; c < s.value_dim; ++c) out.data()[row * s.value_dim + c] *= inv;
  }
}

// Convenience overload: allocates and returns out, the final state and (normalize) the final
// normaliser.
template <class Arch = simd::default_arch>
LinearResult linear_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                              const ConstTensorView<float, 4>& v, const LinearAttentionOptions& options = {}) {
  const detail::LinearShape s = detail::check_linear_qkv("linear_attention", q, k, v);
  Tensor<float, 3> z = options.normalize ? Tensor<float, 3>(s.batch, s.heads, s.key_dim) : Tensor<float, 3>();
  TensorView<float, 3> z_view(z.data(), z.dimensions());
  LinearResult r = detail::new_linear_result(s, [&](TensorView<float, 4> out, TensorView<float, 4>* state) {
    linear_attention<Arch>(q, k, v, options, out, state, options.normalize ? &z_view : nullptr);
  });
  r.final_normalizer = std::move(z);
  return r;
}

}  // namespace tokenmix::linear
