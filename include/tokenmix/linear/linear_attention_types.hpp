#pragma once
// Arguments and validation of the linear-attention family (spec: lightning_natten.md part A), shared
// by the operators (linear/*.hpp) and their oracles (reference/linear_attention.hpp).
//
// Layout heads-last, as flash-linear-attention: q, k [B, L, H, K], v [B, L, H, V], out [B, L, H, V];
// recurrent state [B, H, K, V] (fla's state_v_first = False); per-token log decay g [B, L, H];
// per-head log decay g_gamma [H].
//
// The core is simple gated linear attention (fla's chunk_simple_gla), per (b, h):
//   S_t = exp(g_t)·S_{t-1} + k_tᵀ v_t        (S_{-1} = initial_state, or 0)
//   o_t = scale · q_t S_t
// with g_t = g[b, t, h] (per token), g_gamma[h] (per head: Lightning Attention with g_gamma = -slope,
// RetNet retention with g_gamma = log(1 - 2^(-5-h))) or 0 (plain causal linear attention). The
// final state is S_{L-1}.

#include <cmath>
#include <optional>
#include <vector>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::linear {

// Which form computes the prefill: the chunked form (Lightning Attention-2 / SSD: intra-chunk masked
// products with the decay matrix, inter-chunk through the running state), the token recurrence, or
// the entry point's choice (chunked from kLinearAutoMinLength tokens on when V fills a vector).
enum class LinearAlgorithm { auto_select, chunked, recurrent };

struct SimpleGlaOptions {
  std::optional<ConstTensorView<float, 3>> g;        // [B, L, H] per-token log decay (fla's g); or
  std::optional<ConstTensorView<float, 1>> g_gamma;  // [H] per-head log decay (fla's g_gamma); none: no decay
  std::optional<float> scale;                        // default 1/sqrt(K), as fla
  std::optional<ConstTensorView<float, 4>> initial_state;  // [B, H, K, V]
  LinearAlgorithm algorithm = LinearAlgorithm::auto_select;
  Index chunk_size = 0;  // 0: kLinearDefaultChunk
  const Eigen::ThreadPoolDevice* device = nullptr;
};

// Feature maps applied to q and k by linear_attention (φ(x) elementwise).
enum class FeatureMap {
  identity,      // φ(x) = x (the "softmax-free" form of TNL / fla's identity)
  elu_plus_one,  // φ(x) = elu(x) + 1 (Katharopoulos et al. 2020)
  relu,          // φ(x) = max(x, 0)
};

struct LinearAttentionOptions {
  bool causal = true;
  FeatureMap feature_map = FeatureMap::identity;
  // The classic denominator: o_t = scale·φ(q_t) S_t / (scale·φ(q_t)·z_t + eps), z_t = Σ_{s<=t} φ(k_s)
  // (non-causal: over all s), as fla's normalize=True (eps 1e-10 there).
  bool normalize = false;
  float eps = 1e-10f;
  std::optional<float> scale;                                 // default 1/sqrt(K), as fla
  std::optional<ConstTensorView<float, 4>> initial_state;     // [B, H, K, V] (causal)
  std::optional<ConstTensorView<float, 3>> initial_normalizer;  // [B, H, K] (causal, normalize)
  LinearAlgorithm algorithm = LinearAlgorithm::auto_select;
  Index chunk_size = 0;
  const Eigen::ThreadPoolDevice* device = nullptr;
};

struct LinearResult {
  Tensor<float, 4> out;          // [B, L, H, V]
  Tensor<float, 4> final_state;  // [B, H, K, V]
  Tensor<float, 3> final_normalizer;  // [B, H, K] (linear_attention with normalize; else empty)
};

struct LightningOptions {
  std::optional<ConstTensorView<float, 1>> slopes;  // [H], slope = -log λ >= 0; none: no decay
  float scale = 1.0f;                               // TransNormerLLM: 1
  std::optional<ConstTensorView<float, 4>> initial_state;  // [B, H, K, V]
  LinearAlgorithm algorithm = LinearAlgorithm::auto_select;
  Index block_size = 0;  // 0: kLinearDefaultChunk
  const Eigen::ThreadPoolDevice* device = nullptr;
};

namespace detail {

// -slopes as simple_gla's g_gamma, validated (finite, >= 0: λ in (0, 1]).
inline std::vector<float> lightning_log_decay(const char* op, const std::optional<ConstTensorView<float, 1>>& slopes,
                                              Index heads) {
  if (!slopes) return {};
  tokenmix::detail::check_shape(op, "slopes", *slopes, NamedShape<1>{{"H"}, {{heads}}});
  std::vector<float> g(static_cast<std::size_t>(heads));
  for (Index h = 0; h < heads; ++h) {
    const float s = slopes->data()[h];
    TOKENMIX_CHECK(std::isfinite(s) && s >= 0.0f, op, ": slopes[", h, "] is ", s,
                   ", expected a finite slope >= 0 (decay exp(-slope) in (0, 1])");
    g[std::size_t(h)] = -s;
  }
  return g;
}

}  // namespace detail

struct LightningStepOptions {
  std::optional<ConstTensorView<float, 1>> slopes;  // [H]; none: no decay
  float scale = 1.0f;
};

namespace detail {

struct LinearShape {
  Index batch, length, heads, key_dim, value_dim;
};

// q, k [B, L, H, K], v [B, L, H, V] (K, V >= 1).
template <class Q, class Kt, class Vt>
LinearShape check_linear_qkv(const char* op, const Q& q, const Kt& k, const Vt& v) {
  using tokenmix::detail::check_shape;
  const LinearShape s{q.dimension(0), q.dimension(1), q.dimension(2), q.dimension(3), v.dimension(3)};
  TOKENMIX_CHECK(s.heads >= 1 && s.key_dim >= 1 && s.value_dim >= 1, op, ": q has shape ", shape_of(q), " and v ",
                 shape_of(v), ", expected H, K and V >= 1");
  check_shape(op, "k", k, NamedShape<4>{{"B", "L", "H", "K"}, {{s.batch, s.length, s.heads, s.key_dim}}}, " like q");
  check_shape(op, "v", v, NamedShape<4>{{"B", "L", "H", "V"}, {{s.batch, s.length, s.heads, s.value_dim}}},
              " (the batch, length and heads of q)");
  return s;
}

template <class State>
void check_linear_state(const char* op, const char* arg, const State& state, const LinearShape& s) {
  tokenmix::detail::check_shape(op, arg, state,
                                NamedShape<4>{{"B", "H", "K", "V"}, {{s.batch, s.heads, s.key_dim, s.value_dim}}});
}

// Allocates out [B, L, H, V] and final_state [B, H, K, V], then runs core(out_view, &state_view).
template <class Core>
LinearResult new_linear_result(const LinearShape& s, Core&& core) {
  LinearResult r{Tensor<float, 4>(s.batch, s.length, s.heads, s.value_dim),
                 Tensor<float, 4>(s.batch, s.heads, s.key_dim, s.value_dim), Tensor<float, 3>()};
  TensorView<float, 4> out(r.out.data(), r.out.dimensions()), state(r.final_state.data(), r.final_state.dimensions());
  core(out, &state);
  return r;
}

inline float check_linear_scale(const char* op, const std::optional<float>& scale, Index key_dim) {
  if (!scale) return 1.0f / std::sqrt(static_cast<float>(key_dim));
  TOKENMIX_CHECK(std::isfinite(*scale), op, ": scale is ", *scale, ", expected a finite number");
  return *scale;
}

inline void check_simple_gla_options(const char* op, const SimpleGlaOptions& o, const LinearShape& s) {
  using tokenmix::detail::check_shape;
  TOKENMIX_CHECK(!(o.g && o.g_gamma), op, ": pass g (per token) or g_gamma (per head), not both (as fla)");
  if (o.g) check_shape(op, "g", *o.g, NamedShape<3>{{"B", "L", "H"}, {{s.batch, s.length, s.heads}}});
  if (o.g_gamma) check_shape(op, "g_gamma", *o.g_gamma, NamedShape<1>{{"H"}, {{s.heads}}});
  if (o.initial_state) check_linear_state(op, "initial_state", *o.initial_state, s);
  TOKENMIX_CHECK(o.chunk_size >= 0, op, ": chunk_size is ", o.chunk_size, ", expected >= 0 (0: the default)");
  check_linear_scale(op, o.scale, s.key_dim);
}

}  // namespace detail
}  // namespace tokenmix::linear
