#pragma once
// The Mamba-2 mixer block's configuration, weights and validation, shared by the fast block
// (blocks/mamba2_mixer.hpp) and its oracle (reference/mamba2_mixer.hpp). The decode cache is
// blocks::MambaMixerCache (mamba_mixer_types.hpp) with conv_state [B, conv_dim, K-1] and
// ssm_state [B, H·P, N] (the [B, H, P, N] state, contiguous, viewed with H·P rows).
//
// Math (transformers 5.17 Mamba2Mixer.forward without the CUDA kernels; spec mamba_scan.md §4), for
// x [B, L, d_model], I = H·P, conv_dim = I + 2·G·N:
//   [z, xBC, dt]  = in_proj(x)                       z [I], xBC [conv_dim], dt [H] per token
//   xBC           = silu(causal_conv1d(xBC) + conv1d.bias)
//   [xs, Bt, Ct]  = xBC                               xs [H, P], Bt, Ct [G, N]
//   y             = ssd(xs, dt, A = -exp(A_log), Bt, Ct, D, dt_bias, softplus, dt limit)
//   y             = gated_rms_norm(y, z, norm.weight, eps, group_size)    (norm before the gate: no)
//   out           = out_proj(y)
// Traps (both from the released code, reproduced): the decode step does NOT clamp dt to
// time_step_limit (mamba_ssm's step and transformers' mamba2_selective_state_update skip it; only
// the chunked prefill clamps), and transformers' MambaRMSNormGated normalises over all I channels
// whatever n_groups is (mamba_ssm: groups of I / n_groups) — norm_group_size picks.

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>

#include "tokenmix/blocks/mamba_mixer_types.hpp"

namespace tokenmix::blocks {

struct Mamba2MixerConfig {
  Index d_model = 0;     // hidden_size
  Index heads = 0;       // H: num_heads
  Index head_dim = 64;   // P: head_dim
  Index d_state = 128;   // N: state_size
  Index n_groups = 1;    // G: n_groups (B/C groups; H must be a multiple)
  Index d_conv = 4;      // K: conv_kernel
  bool use_bias = false;      // in_proj / out_proj biases
  bool use_conv_bias = true;  // conv1d bias
  float dt_min = 0.0f;   // time_step_limit, applied to the prefill only (see the traps above)
  float dt_max = std::numeric_limits<float>::infinity();
  double norm_eps = 1e-5;      // layer_norm_epsilon (the gated norm's eps)
  Index norm_group_size = 0;   // 0 = d_inner (transformers); d_inner / n_groups = mamba_ssm
  Index chunk_size = 0;        // the SSD chunk of the prefill; 0 = the op picks

  Index d_inner() const { return heads * head_dim; }
  Index conv_dim() const { return d_inner() + 2 * n_groups * d_state; }
  Index in_proj_rows() const { return d_inner() + conv_dim() + heads; }
  Index group_size() const { return norm_group_size > 0 ? norm_group_size : d_inner(); }
};

// The parameters of one transformers Mamba2Mixer, named and shaped as its state dict
// (`backbone.layers.{i}.mixer.<name with '.' for '_'>`), float32.
struct Mamba2MixerWeights {
  Tensor<float, 2> in_proj_weight;                // [I + conv_dim + H, d_model]: rows z | x | B | C | dt
  std::optional<Tensor<float, 1>> in_proj_bias;   // [I + conv_dim + H]   (use_bias)
  Tensor<float, 3> conv1d_weight;                 // [conv_dim, 1, K]
  std::optional<Tensor<float, 1>> conv1d_bias;    // [conv_dim]           (use_conv_bias)
  Tensor<float, 1> dt_bias;                       // [H]
  Tensor<float, 1> A_log;                         // [H]
  Tensor<float, 1> D;                             // [H]
  Tensor<float, 1> norm_weight;                   // [I]  mixer.norm.weight
  Tensor<float, 2> out_proj_weight;               // [d_model, I]
  std::optional<Tensor<float, 1>> out_proj_bias;  // [d_model]            (use_bias)
};

inline MambaMixerCache make_mamba2_mixer_cache(const Mamba2MixerConfig& c, Index batch) {
  MambaMixerCache cache{Tensor<float, 3>(batch, c.conv_dim(), c.d_conv - 1),
                        Tensor<float, 3>(batch, c.d_inner(), c.d_state)};
  cache.conv_state.setZero();
  cache.ssm_state.setZero();
  return cache;
}

namespace detail {

inline void check_mamba2_mixer_config(const char* op, const Mamba2MixerConfig& c) {
  TOKENMIX_CHECK(c.d_model > 0 && c.heads > 0 && c.head_dim > 0 && c.d_state > 0 && c.n_groups > 0 && c.d_conv > 0, op,
                 ": every extent of the Mamba-2 config must be positive, got d_model=", c.d_model, " heads=", c.heads,
                 " head_dim=", c.head_dim, " d_state=", c.d_state, " n_groups=", c.n_groups, " d_conv=", c.d_conv);
  TOKENMIX_CHECK(c.heads % c.n_groups == 0, op, ": n_groups=", c.n_groups, " must divide heads=", c.heads);
  TOKENMIX_CHECK(c.d_inner() % c.group_size() == 0, op, ": norm_group_size=", c.norm_group_size,
                 " must divide d_inner=", c.d_inner());
  TOKENMIX_CHECK(!(c.dt_min > c.dt_max) && !std::isnan(c.dt_min) && !std::isnan(c.dt_max), op,
                 ": the dt limit [", c.dt_min, ", ", c.dt_max, "] is empty");
  tokenmix::detail::check_finite(op, "norm_eps", c.norm_eps);
}

// Every weight against the config.
inline void check_mamba2_mixer_weights(const char* op, const Mamba2MixerConfig& c, const Mamba2MixerWeights& w) {
  using tokenmix::detail::check_shape;
  check_mamba2_mixer_config(op, c);
  const Index I = c.d_inner(), H = c.heads, Dm = c.d_model, CD = c.conv_dim(), R = c.in_proj_rows();
  check_shape(op, "in_proj_weight", w.in_proj_weight, NamedShape<2>{{"I+conv_dim+H", "d_model"}, {{R, Dm}}});
  check_shape(op, "conv1d_weight", w.conv1d_weight, NamedShape<3>{{"conv_dim", "1", "K"}, {{CD, 1, c.d_conv}}});
  for (const auto& [name, t] : {std::pair<const char*, const Tensor<float, 1>*>{"dt_bias", &w.dt_bias},
                                {"A_log", &w.A_log}, {"D", &w.D}})
    check_shape(op, name, *t, NamedShape<1>{{"H"}, {{H}}});
  check_shape(op, "norm_weight", w.norm_weight, NamedShape<1>{{"I"}, {{I}}});
  check_shape(op, "out_proj_weight", w.out_proj_weight, NamedShape<2>{{"d_model", "I"}, {{Dm, I}}});
  TOKENMIX_CHECK(w.in_proj_bias.has_value() == c.use_bias && w.out_proj_bias.has_value() == c.use_bias, op,
                 ": use_bias is ", c.use_bias ? "true" : "false", " but in_proj_bias is ",
                 w.in_proj_bias ? "present" : "absent", " and out_proj_bias ", w.out_proj_bias ? "present" : "absent");
  TOKENMIX_CHECK(w.conv1d_bias.has_value() == c.use_conv_bias, op, ": use_conv_bias is ",
                 c.use_conv_bias ? "true" : "false", " but conv1d_bias is ", w.conv1d_bias ? "present" : "absent");
  if (w.in_proj_bias) check_shape(op, "in_proj_bias", *w.in_proj_bias, NamedShape<1>{{"I+conv_dim+H"}, {{R}}});
  if (w.conv1d_bias) check_shape(op, "conv1d_bias", *w.conv1d_bias, NamedShape<1>{{"conv_dim"}, {{CD}}});
  if (w.out_proj_bias) check_shape(op, "out_proj_bias", *w.out_proj_bias, NamedShape<1>{{"d_model"}, {{Dm}}});
}

inline void check_mamba2_mixer_cache(const char* op, const Mamba2MixerConfig& c, const MambaMixerCache& cache,
                                     Index batch) {
  using tokenmix::detail::check_shape;
  check_shape(op, "cache.conv_state", cache.conv_state,
              NamedShape<3>{{"B", "conv_dim", "K-1"}, {{batch, c.conv_dim(), c.d_conv - 1}}});
  check_shape(op, "cache.ssm_state", cache.ssm_state, NamedShape<3>{{"B", "H·P", "N"}, {{batch, c.d_inner(), c.d_state}}});
}

}  // namespace detail

// Random weights in transformers' scheme (Mamba2PreTrainedModel._init_weights / nn defaults): linear
// and conv weights U(±1/√fan_in), dt_bias = softplus⁻¹(dt) with dt log-uniform in [0.001, 0.1],
// A_log = log(U[1, 16]), D = 1, norm weight 1, biases U(±1/√fan_in). Same seed, same weights everywhere.
inline Mamba2MixerWeights random_mamba2_mixer_weights(const Mamba2MixerConfig& c, std::uint64_t seed) {
  detail::check_mamba2_mixer_config("random_mamba2_mixer_weights", c);
  SplitMix64 rng(seed);
  auto uniform = [&](auto& t, Index fan_in) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
    rng.fill_uniform(t.data(), t.size(), -bound, bound);
  };
  const Index I = c.d_inner(), H = c.heads, Dm = c.d_model, CD = c.conv_dim(), R = c.in_proj_rows();
  Mamba2MixerWeights w;
  w.in_proj_weight = Tensor<float, 2>(R, Dm);
  uniform(w.in_proj_weight, Dm);
  w.conv1d_weight = Tensor<float, 3>(CD, 1, c.d_conv);
  uniform(w.conv1d_weight, c.d_conv);
  w.dt_bias = Tensor<float, 1>(H), w.A_log = Tensor<float, 1>(H), w.D = Tensor<float, 1>(H);
  for (Index h = 0; h < H; ++h) {
    const double dt = std::exp(std::log(0.001) + rng.uniform01() * (std::log(0.1) - std::log(0.001)));
    w.dt_bias(h) = static_cast<float>(dt + std::log(-std::expm1(-dt)));
    w.A_log(h) = std::log(rng.uniform(1.0f, 16.0f));
  }
  w.D.setConstant(1.0f);
  w.norm_weight = Tensor<float, 1>(I);
  w.norm_weight.setConstant(1.0f);
  w.out_proj_weight = Tensor<float, 2>(Dm, I);
  uniform(w.out_proj_weight, I);
  if (c.use_conv_bias) w.conv1d_bias = Tensor<float, 1>(CD), uniform(*w.conv1d_bias, c.d_conv);
  if (c.use_bias) {
    w.in_proj_bias = Tensor<float, 1>(R), uniform(*w.in_proj_bias, Dm);
    w.out_proj_bias = Tensor<float, 1>(Dm), uniform(*w.out_proj_bias, I);
  }
  return w;
}

}  // namespace tokenmix::blocks
