#pragma once
// Oracles of the linear-attention family (linear::simple_gla, linear::lightning_attention,
// linear::linear_attention): the QUADRATIC (parallel, "left-product") form of each operator, as plain
// loops in Acc (double in tests), no SIMD, no threads. They share no arithmetic with the fast ops,
// which run a recurrence or a chunked decomposition: here every output is a direct sum over the past
// tokens, and every decay weight is computed on its own (no state, no chunk, no λ^(-t) factor).
//
// Sources (spec lightning_natten.md part A): Sun et al., "Retentive Network" (2023) and Yang et al.,
// "Gated Linear Attention Transformers with Hardware-Efficient Training" (2023) for simple GLA, with
// fla-org/flash-linear-attention fla/ops/simple_gla/naive.py (the parallel oracle) for the
// conventions (g per token or g_gamma per head, scale 1/sqrt(K), initial / final state); Qin et al.,
// "Lightning Attention-2" (2024) / "Various Lengths, Constant Speed" (2024) with OpenNLPLab
// lightning-attention lightning_attn/ops/torch/linear_attention.py (((Q Kᵀ) ⊙ M) V, M[t,s] =
// exp(-slope·(t-s)) for s <= t); Katharopoulos et al., "Transformers are RNNs" (2020) and fla's
// fla/ops/linear_attn/naive.py for the feature map and the normaliser. Layout heads-last
// (linear/linear_attention_types.hpp): q, k [B, L, H, K], v [B, L, H, V], states [B, H, K, V].
// Per batch b and head h, with 0-based tokens t, s:
//
//   ref::simple_gla (g_u = g[b,u,h], or g_gamma[h], or 0; scale default 1/sqrt(K)):
//     o_t   = scale · Σ_{s<=t} exp(Σ_{u=s+1..t} g_u) (q_t·k_s) v_s  +  scale · exp(Σ_{u=0..t} g_u) q_t S0
//     final = Σ_{s<L} exp(Σ_{u=s+1..L-1} g_u) k_sᵀ v_s  +  exp(Σ_{u<L} g_u) S0
//     (the exponent sums are accumulated directly, s from t down to 0, never as prefix differences)
//   ref::lightning_attention (λ_h = exp(-slope_h), or 1 without slopes; scale default 1):
//     o_t   = scale · ( Σ_{s<=t} M[t,s] (q_t·k_s) v_s + exp(-slope_h·(t+1)) q_t S0 ),
//             M[t,s] = exp(-slope_h·(t-s))
//     final = Σ_{s<L} exp(-slope_h·(L-1-s)) k_sᵀ v_s + exp(-slope_h·L) S0
//   ref::linear_attention (φ the feature map; scale default 1/sqrt(K); S0, z0 causal only):
//     num_t = scale · ( Σ_{s∈P(t)} (φ(q_t)·φ(k_s)) v_s + φ(q_t) S0 ),  P(t) = {s <= t} (causal) or all s
//     den_t = scale · ( Σ_{s∈P(t)} φ(q_t)·φ(k_s) + φ(q_t)·z0 ) + eps
//     o_t   = num_t / den_t  if normalize, else num_t
//     final_state = S0 + Σ_s φ(k_s)ᵀ v_s;  final_normalizer = z0 + Σ_s φ(k_s) (normalize only; else empty)
//
// NaN in the data propagates to every output it touches (φ(NaN) = NaN for every feature map, as
// torch's relu and elu). Arguments are validated with the ops' own checks (linear_attention_types.hpp),
// so the oracles reject exactly what the ops reject, with "ref::<op>: ..." messages. algorithm, chunk /
// block size and device are ignored (only validated). No fast op is called.

#include <algorithm>
#include <cmath>
#include <vector>

#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/linear/linear_attention_types.hpp"

namespace tokenmix::ref {

namespace detail {

inline linear::LinearResult linear_result(const linear::detail::LinearShape& s, bool with_normalizer) {
  linear::LinearResult r{Tensor<float, 4>(s.batch, s.length, s.heads, s.value_dim),
                         Tensor<float, 4>(s.batch, s.heads, s.key_dim, s.value_dim), Tensor<float, 3>()};
  if (with_normalizer) r.final_normalizer = Tensor<float, 3>(s.batch, s.heads, s.key_dim);
  return r;
}

template <class Acc>
Acc dot(const float* a, const float* b, Index n) {
  Acc d = 0;
  for (Index i = 0; i < n; ++i) d += Acc(a[i]) * Acc(b[i]);
  return d;
}

template <class Acc>
Acc feature(linear::FeatureMap map, float x) {
  const Acc v = x;
  switch (map) {
    case linear::FeatureMap::elu_plus_one:
      return v > 0 ? v + Acc(1) : std::exp(v);  // elu(x) + 1 (NaN propagates)
    case linear::FeatureMap::relu:
      return v < 0 ? Acc(0) : v;  // max(x, 0), NaN propagates (as torch.relu)
    case linear::FeatureMap::identity:
      break;
  }
  return v;
}

}  // namespace detail

// Simple gated linear attention (fla's chunk_simple_gla), quadratic form.
template <class Acc = double>
linear::LinearResult simple_gla(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                                const ConstTensorView<float, 4>& v, const linear::SimpleGlaOptions& options = {}) {
  constexpr const char* op = "ref::simple_gla";
  const linear::detail::LinearShape s = linear::detail::check_linear_qkv(op, q, k, v);
  linear::detail::check_simple_gla_options(op, options, s);
  const Index L = s.length, H = s.heads, K = s.key_dim, V = s.value_dim;
  const Acc scale = options.scale ? Acc(*options.scale) : Acc(1) / std::sqrt(Acc(K));
  // g_u of head h in batch b.
  auto log_decay = [&](Index b, Index u, Index h) -> Acc {
    if (options.g) return Acc(options.g->data()[(b * L + u) * H + h]);
    if (options.g_gamma) return Acc(options.g_gamma->data()[h]);
    return Acc(0);
  };
  linear::LinearResult r = detail::linear_result(s, false);
  std::vector<Acc> o(static_cast<std::size_t>(V)), S(static_cast<std::size_t>(K * V));
  for (Index b = 0; b < s.batch; ++b)
    for (Index h = 0; h < H; ++h) {
      const float* S0 = options.initial_state ? options.initial_state->data() + (b * H + h) * K * V : nullptr;
      for (Index t = 0; t < L; ++t) {
        const float* qt = q.data() + ((b * L + t) * H + h) * K;
        std::fill(o.begin(), o.end(), Acc(0));
        Acc w = 0;  // Σ_{u=s+1..t} g_u
        for (Index s_ = t; s_ >= 0; --s_) {
          const Acc c = std::exp(w) * detail::dot<Acc>(qt, k.data() + ((b * L + s_) * H + h) * K, K);
          const float* vs = v.data() + ((b * L + s_) * H + h) * V;
          for (Index j = 0; j < V; ++j) o[j] += c * Acc(vs[j]);
          w += log_decay(b, s_, h);
        }
        if (S0) {  // w = Σ_{u=0..t} g_u
          const Acc e = std::exp(w);
          for (Index i = 0; i < K; ++i)
            for (Index j = 0; j < V; ++j) o[j] += e * Acc(qt[i]) * Acc(S0[i * V + j]);
        }
        float* out = r.out.data() + ((b * L + t) * H + h) * V;
        for (Index j = 0; j < V; ++j) out[j] = static_cast<float>(scale * o[j]);
      }
      std::fill(S.begin(), S.end(), Acc(0));
      Acc w = 0;  // Σ_{u=s+1..L-1} g_u
      for (Index s_ = L - 1; s_ >= 0; --s_) {
        const Acc e = std::exp(w);
        const float* ks = k.data() + ((b * L + s_) * H + h) * K;
        const float* vs = v.data() + ((b * L + s_) * H + h) * V;
        for (Index i = 0; i < K; ++i)
          for (Index j = 0; j < V; ++j) S[i * V + j] += e * Acc(ks[i]) * Acc(vs[j]);
        w += log_decay(b, s_, h);
      }
      if (S0)
        for (Index i = 0; i < K * V; ++i) S[i] += std::exp(w) * Acc(S0[i]);
      float* fs = r.final_state.data() + (b * H + h) * K * V;
      for (Index i = 0; i < K * V; ++i) fs[i] = static_cast<float>(S[i]);
    }
  return r;
}

// Lightning Attention (OpenNLPLab's torch reference ((Q Kᵀ) ⊙ M) V), with scale and states.
template <class Acc = double>
linear::LinearResult lightning_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                                         const ConstTensorView<float, 4>& v,
                                         const linear::LightningOptions& options = {}) {
  constexpr const char* op = "ref::lightning_attention";
  const linear::detail::LinearShape s = linear::detail::check_linear_qkv(op, q, k, v);
  linear::detail::lightning_log_decay(op, options.slopes, s.heads);  // validation only
  const Acc scale = linear::detail::check_linear_scale(op, options.scale, s.key_dim);
  if (options.initial_state) linear::detail::check_linear_state(op, "initial_state", *options.initial_state, s);
  TOKENMIX_CHECK(options.block_size >= 0, op, ": block_size is ", options.block_size,
                 ", expected >= 0 (0: the default)");
  const Index L = s.length, H = s.heads, K = s.key_dim, V = s.value_dim;
  linear::LinearResult r = detail::linear_result(s, false);
  std::vector<Acc> o(static_cast<std::size_t>(V)), S(static_cast<std::size_t>(K * V));
  for (Index b = 0; b < s.batch; ++b)
    for (Index h = 0; h < H; ++h) {
      const Acc slope = options.slopes ? Acc(options.slopes->data()[h]) : Acc(0);
      const float* S0 = options.initial_state ? options.initial_state->data() + (b * H + h) * K * V : nullptr;
      for (Index t = 0; t < L; ++t) {
        const float* qt = q.data() + ((b * L + t) * H + h) * K;
        std::fill(o.begin(), o.end(), Acc(0));
        for (Index s_ = 0; s_ <= t; ++s_) {
          const Acc m = std::exp(-slope * Acc(t - s_));  // M[t, s]
          const Acc c = m * detail::dot<Acc>(qt, k.data() + ((b * L + s_) * H + h) * K, K);
          const float* vs = v.data() + ((b * L + s_) * H + h) * V;
          for (Index j = 0; j < V; ++j) o[j] += c * Acc(vs[j]);
        }
        if (S0) {
          const Acc e = std::exp(-slope * Acc(t + 1));
          for (Index i = 0; i < K; ++i)
            for (Index j = 0; j < V; ++j) o[j] += e * Acc(qt[i]) * Acc(S0[i * V + j]);
        }
        float* out = r.out.data() + ((b * L + t) * H + h) * V;
        for (Index j = 0; j < V; ++j) out[j] = static_cast<float>(scale * o[j]);
      }
      std::fill(S.begin(), S.end(), Acc(0));
      for (Index s_ = 0; s_ < L; ++s_) {
        const Acc e = std::exp(-slope * Acc(L - 1 - s_));
        const float* ks = k.data() + ((b * L + s_) * H + h) * K;
        const float* vs = v.data() + ((b * L + s_) * H + h) * V;
        for (Index i = 0; i < K; ++i)
          for (Index j = 0; j < V; ++j) S[i * V + j] += e * Acc(ks[i]) * Acc(vs[j]);
      }
      if (S0)
        for (Index i = 0; i < K * V; ++i) S[i] += std::exp(-slope * Acc(L)) * Acc(S0[i]);
      float* fs = r.final_state.data() + (b * H + h) * K * V;
      for (Index i = 0; i < K * V; ++i) fs[i] = static_cast<float>(S[i]);
    }
  return r;
}

// Linear attention with a feature map and an optional normaliser, causal or not, quadratic form.
template <class Acc = double>
linear::LinearResult linear_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                                      const ConstTensorView<float, 4>& v,
                                      const linear::LinearAttentionOptions& options = {}) {
  constexpr const char* op = "ref::linear_attention";
  using tokenmix::detail::check_shape;
  const linear::detail::LinearShape s = linear::detail::check_linear_qkv(op, q, k, v);
  linear::detail::check_linear_scale(op, options.scale, s.key_dim);  // validation (the default is below, in Acc)
  TOKENMIX_CHECK(options.causal || (!options.initial_state && !options.initial_normalizer), op,
                 ": initial_state / initial_normalizer continue a causal sequence; causal is false");
  TOKENMIX_CHECK(options.normalize || !options.initial_normalizer, op,
                 ": initial_normalizer / final_normalizer need normalize = true");
  TOKENMIX_CHECK(options.eps >= 0.0f && std::isfinite(options.eps), op, ": eps is ", options.eps,
                 ", expected finite >= 0");
  if (options.initial_state) linear::detail::check_linear_state(op, "initial_state", *options.initial_state, s);
  if (options.initial_normalizer)
    check_shape(op, "initial_normalizer", *options.initial_normalizer,
                NamedShape<3>{{"B", "H", "K"}, {{s.batch, s.heads, s.key_dim}}});
  TOKENMIX_CHECK(options.chunk_size >= 0, op, ": chunk_size is ", options.chunk_size,
                 ", expected >= 0 (0: the default)");
  const Index L = s.length, H = s.heads, K = s.key_dim, V = s.value_dim;
  const Acc scale = options.scale ? Acc(*options.scale) : Acc(1) / std::sqrt(Acc(K));
  const linear::FeatureMap map = options.feature_map;
  linear::LinearResult r = detail::linear_result(s, options.normalize);
  std::vector<Acc> o(static_cast<std::size_t>(V)), fq(static_cast<std::size_t>(K)), S(static_cast<std::size_t>(K * V)),
      z(static_cast<std::size_t>(K));
  auto phi_dot = [&](const float* kk) {  // φ(q_t)·φ(k_s), φ(q_t) in fq
    Acc d = 0;
    for (Index i = 0; i < K; ++i) d += fq[i] * detail::feature<Acc>(map, kk[i]);
    return d;
  };
  for (Index b = 0; b < s.batch; ++b)
    for (Index h = 0; h < H; ++h) {
      const float* S0 = options.initial_state ? options.initial_state->data() + (b * H + h) * K * V : nullptr;
      const float* z0 = options.initial_normalizer ? options.initial_normalizer->data() + (b * H + h) * K : nullptr;
      for (Index t = 0; t < L; ++t) {
        const float* qt = q.data() + ((b * L + t) * H + h) * K;
        for (Index i = 0; i < K; ++i) fq[i] = detail::feature<Acc>(map, qt[i]);
        std::fill(o.begin(), o.end(), Acc(0));
        Acc den = 0;
        const Index last = options.causal ? t : L - 1;
        for (Index s_ = 0; s_ <= last; ++s_) {
          const Acc c = phi_dot(k.data() + ((b * L + s_) * H + h) * K);
          const float* vs = v.data() + ((b * L + s_) * H + h) * V;
          for (Index j = 0; j < V; ++j) o[j] += c * Acc(vs[j]);
          den += c;
        }
        if (S0)
          for (Index i = 0; i < K; ++i)
            for (Index j = 0; j < V; ++j) o[j] += fq[i] * Acc(S0[i * V + j]);
        if (z0)
          for (Index i = 0; i < K; ++i) den += fq[i] * Acc(z0[i]);
        const Acc divisor = options.normalize ? scale * den + Acc(options.eps) : Acc(1);
        float* out = r.out.data() + ((b * L + t) * H + h) * V;
        for (Index j = 0; j < V; ++j) out[j] = static_cast<float>(scale * o[j] / divisor);
      }
      for (Index i = 0; i < K * V; ++i) S[i] = S0 ? Acc(S0[i]) : Acc(0);
      for (Index i = 0; i < K; ++i) z[i] = z0 ? Acc(z0[i]) : Acc(0);
      for (Index s_ = 0; s_ < L; ++s_) {
        const float* ks = k.data() + ((b * L + s_) * H + h) * K;
        const float* vs = v.data() + ((b * L + s_) * H + h) * V;
        for (Index i = 0; i < K; ++i) {
          const Acc fk = detail::feature<Acc>(map, ks[i]);
          z[i] += fk;
          for (Index j = 0; j < V; ++j) S[i * V + j] += fk * Acc(vs[j]);
        }
      }
      float* fs = r.final_state.data() + (b * H + h) * K * V;
      for (Index i = 0; i < K * V; ++i) fs[i] = static_cast<float>(S[i]);
      if (options.normalize) {
        float* fz = r.final_normalizer.data() + (b * H + h) * K;
        for (Index i = 0; i < K; ++i) fz[i] = static_cast<float>(z[i]);
      }
    }
  return r;
}

}  // namespace tokenmix::ref
