#pragma once
// linear::linear_attention: (causal or not) linear attention with a feature map and an optional
// normaliser (Katharopoulos et al. 2020; fla's chunk_linear_attn / fused_recurrent_linear_attn):
//
//   causal:      o_t = scale·φ(q_t) S_t,  S_t = S_{-1} + Σ_{s <= t} φ(k_s)ᵀ v_s
//   non-causal:  o_t = scale·φ(q_t) S,    S = Σ_s φ(k_s)ᵀ v_s
//   normalize:   o_t /= scale·φ(q_t)·z_t + eps,  z_t = z_{-1} + Σ_{s <= t} φ(k_s)  (non-causal: all s)
//
//   auto r = linear::linear_attention(q, k, v, {.feature_map = FeatureMap::elu_plus_one, .normalize = true});
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

namespace tokenmix::linear {

namespace detail {

inline float feature(FeatureMap map, float x) {
  switch (map) {
    case FeatureMap::elu_plus_one:
      return x > 0.0f ? x + 1.0f : std::exp(x);  // elu(x) + 1 = exp(x) for x <= 0
    case FeatureMap::relu:
      return x > 0.0f ? x : 0.0f;
    case FeatureMap::identity:
      break;
  }
  return x;
}

inline Tensor<float, 4> apply_feature_map(FeatureMap map, const ConstTensorView<float, 4>& x) {
  Tensor<float, 4> y(x.dimensions());
  for (Index i = 0; i < x.size(); ++i) y.data()[i] = feature(map, x.data()[i]);
  return y;
}

// Non-causal per (b, h): S = φ(K)ᵀ V [K, V], z = Σ φ(k) [K]; o = scale·φ(Q) S (/ (scale·φ(q)·z + eps)).
template <class Arch>
void linear_attention_noncausal(const LinearShape& s, const float* q, const float* k, const float* v, float scale,
                                bool normalize, float eps, float* out, float* state, float* normalizer,
                                const Eigen::ThreadPoolDevice* device) {
  using Vf = simd::vfloat<Arch>;
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  const Index L = s.length, H = s.heads, K = s.key_dim, Vd = s.value_dim;
  tokenmix::detail::parallel_for(device, s.batch * H, [&](Index first, Index last) {
    alignas(64) float pad[2 * W];
    for (Index bh = first; bh < last; ++bh) {
      const Index b = bh / H, h = bh % H;
      float* S = state + bh * K * Vd;  // [K, V]
      float* z = normalizer + bh * K;  // [K]
      std::fill_n(S, K * Vd, 0.0f);
      std::fill_n(z, K, 0.0f);
      for (Index t = 0; t < L; ++t) {
        const float* kt = k + ((b * L + t) * H + h) * K;
        const float* vt = v + ((b * L + t) * H + h) * Vd;
        for (Index r = 0; r < K; ++r) {
          const Vf kr(kt[r]);
          z[r] += kt[r];
          for (Index c = 0; c < Vd; c += W) {
            const Index n = std::min(W, Vd - c);
            simd::store_upto<Arch>(S + r * Vd + c,
                                   simd::fmadd<Arch>(kr, simd::load_upto<Arch>(vt + c, n, pad),
                                                     simd::load_upto<Arch>(S + r * Vd + c, n, pad + W)),
                                   n, pad);
          }
        }
      }
      for (Index t = 0; t < L; ++t) {
        const float* qt = q + ((b * L + t) * H + h) * K;
        float* ot = out + ((b * L + t) * H + h) * Vd;
        float den = 0.0f;
        for (Index r = 0; r < K; ++r) den += qt[r] * z[r];
        const float factor = normalize ? scale / (scale * den + eps) : scale;
        for (Index c = 0; c < Vd; c += W) {
          const Index n = std::min(W, Vd - c);
          Vf acc(0.0f);
          for (Index r = 0; r < K; ++r) acc = simd::fmadd<Arch>(Vf(qt[r]), simd::load_upto<Arch>(S + r * Vd + c, n, pad), acc);
          simd::store_upto<Arch>(ot + c, acc * Vf(factor), n, pad);
        }
      }
    }
  });
}

}  // namespace detail

template <class Arch = simd::default_arch>
LinearResult linear_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                              const ConstTensorView<float, 4>& v, const LinearAttentionOptions& options = {}) {
  constexpr const char* op = "linear_attention";
  using tokenmix::detail::check_shape;
  const detail::LinearShape s = detail::check_linear_qkv(op, q, k, v);
  const float scale = detail::check_linear_scale(op, options.scale, s.key_dim);
  TOKENMIX_CHECK(options.causal || (!options.initial_state && !options.initial_normalizer), op,
                 ": initial_state / initial_normalizer continue a causal sequence; causal is false");
  TOKENMIX_CHECK(options.normalize || !options.initial_normalizer, op, ": initial_normalizer needs normalize = true");
  TOKENMIX_CHECK(options.eps >= 0.0f && std::isfinite(options.eps), op, ": eps is ", options.eps, ", expected finite >= 0");
  if (options.initial_state) detail::check_linear_state(op, "initial_state", *options.initial_state, s);
  if (options.initial_normalizer)
    check_shape(op, "initial_normalizer", *options.initial_normalizer,
                NamedShape<3>{{"B", "H", "K"}, {{s.batch, s.heads, s.key_dim}}});
  TOKENMIX_CHECK(options.chunk_size >= 0, op, ": chunk_size is ", options.chunk_size, ", expected >= 0 (0: the default)");

  // φ(q), φ(k): copies unless the map is the identity.
  std::optional<Tensor<float, 4>> fq, fk;
  if (options.feature_map != FeatureMap::identity)
    fq = detail::apply_feature_map(options.feature_map, q), fk = detail::apply_feature_map(options.feature_map, k);
  const ConstTensorView<float, 4> Q = fq ? ConstTensorView<float, 4>(fq->data(), fq->dimensions()) : q;
  const ConstTensorView<float, 4> Kf = fk ? ConstTensorView<float, 4>(fk->data(), fk->dimensions()) : k;

  LinearResult r = detail::new_linear_result(s, [](TensorView<float, 4>, TensorView<float, 4>*) {});
  if (options.normalize) r.final_normalizer = Tensor<float, 3>(s.batch, s.heads, s.key_dim);
  if (!options.causal) {
    Tensor<float, 3> z(s.batch, s.heads, s.key_dim);
    detail::linear_attention_noncausal<Arch>(s, Q.data(), Kf.data(), v.data(), scale, options.normalize, options.eps,
                                             r.out.data(), r.final_state.data(), z.data(), options.device);
    if (options.normalize) r.final_normalizer = z;
    return r;
  }
  SimpleGlaOptions o;
  o.scale = scale, o.initial_state = options.initial_state, o.algorithm = options.algorithm;
  o.chunk_size = options.chunk_size, o.device = options.device;
  TensorView<float, 4> state(r.final_state.data(), r.final_state.dimensions());
  simple_gla<Arch>(Q, Kf, v, o, TensorView<float, 4>(r.out.data(), r.out.dimensions()), &state);
  if (options.normalize) {
    // The denominator: the same recurrence with one value column of ones.
    Tensor<float, 4> ones(s.batch, s.length, s.heads, 1), den(s.batch, s.length, s.heads, 1),
        z(s.batch, s.heads, s.key_dim, 1);
    ones.setConstant(1.0f);
    SimpleGlaOptions zo = o;
    zo.initial_state.reset();
    if (options.initial_normalizer) zo.initial_state.emplace(options.initial_normalizer->data(), s.batch, s.heads, s.key_dim, 1);
    TensorView<float, 4> z_view(z.data(), z.dimensions());
    simple_gla<Arch>(Q, Kf, ones, zo, TensorView<float, 4>(den.data(), den.dimensions()), &z_view);
    for (Index row = 0; row < s.batch * s.length * s.heads; ++row) {
      const float inv = 1.0f / (den.data()[row] + options.eps);
      for (Index c = 0; c < s.value_dim; ++c) r.out.data()[row * s.value_dim + c] *= inv;
    }
    std::copy(z.data(), z.data() + z.size(), r.final_normalizer.data());
  }
  return r;
}

}  // namespace tokenmix::linear
