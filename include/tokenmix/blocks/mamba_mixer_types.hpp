#pragma once
// The Mamba (S6) mixer block's configuration, weights, decode cache and argument validation, shared
// by the fast block (blocks/mamba_mixer.hpp) and its oracle (reference/mamba_mixer.hpp) so that both
// accept and reject exactly the same inputs.
//
// Math (spec mamba_scan.md §2-§3; transformers MambaMixer.slow_forward, mamba_ssm Mamba.forward),
// for x [B, L, d_model], with I = d_inner, N = d_state, K = d_conv, R = dt_rank:
//   [xs, z]      = in_proj(x)                      xs = first I outputs, z = last I   [B, L, I] each
//   xc           = silu(causal_conv1d(xs) + conv1d.bias)   depthwise, w[:, 0, K-1] on the current token
//   [dt, Bt, Ct] = x_proj(xc)                       first R, next N, last N outputs
//   delta        = dt_proj.weight · dt              dt_proj.bias enters the scan as delta_bias
//   y            = selective_scan(xc, delta, A = -exp(A_log), Bt, Ct, D, z,
//                                 delta_bias = dt_proj.bias, delta_softplus = true)
//   out          = out_proj(y)                                                        [B, L, d_model]
// The decode step runs the same math on one token per sequence, carrying MambaMixerCache.

#include <cmath>
#include <cstdint>
#include <optional>

#include "tokenmix/config.hpp"
#include "tokenmix/core/random.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::blocks {

// Extents and switches of one mixer. The names in comments are transformers' MambaConfig keys.
struct MambaMixerConfig {
  Index d_model = 0;           // hidden_size
  Index d_inner = 0;           // I: intermediate_size (= expand · hidden_size)
  Index d_state = 16;          // N: state_size
  Index d_conv = 4;            // K: conv_kernel
  Index dt_rank = 0;           // R: time_step_rank ("auto" = ceil(hidden_size / 16))
  bool use_bias = false;       // use_bias: in_proj and out_proj biases
  bool use_conv_bias = true;   // use_conv_bias: conv1d bias

  friend bool operator==(const MambaMixerConfig& a, const MambaMixerConfig& b) {
    return a.d_model == b.d_model && a.d_inner == b.d_inner && a.d_state == b.d_state && a.d_conv == b.d_conv &&
           a.dt_rank == b.dt_rank && a.use_bias == b.use_bias && a.use_conv_bias == b.use_conv_bias;
  }
  friend std::ostream& operator<<(std::ostream& os, const MambaMixerConfig& c) {
    return os << "{d_model=" << c.d_model << ", d_inner=" << c.d_inner << ", d_state=" << c.d_state
              << ", d_conv=" << c.d_conv << ", dt_rank=" << c.dt_rank << ", use_bias=" << c.use_bias
              << ", use_conv_bias=" << c.use_conv_bias << "}";
  }
};

// The parameters of one transformers MambaMixer, named and shaped as its state dict
// (`backbone.layers.{i}.mixer.<name with '.' for '_'>`), all float32.
struct MambaMixerWeights {
  Tensor<float, 2> in_proj_weight;               // [2·I, d_model]
  std::optional<Tensor<float, 1>> in_proj_bias;  // [2·I]           (use_bias)
  Tensor<float, 3> conv1d_weight;                // [I, 1, K]       nn.Conv1d(groups=I) weight
  std::optional<Tensor<float, 1>> conv1d_bias;   // [I]             (use_conv_bias)
  Tensor<float, 2> x_proj_weight;                // [R + 2·N, I]    no bias
  Tensor<float, 2> dt_proj_weight;               // [I, R]
  Tensor<float, 1> dt_proj_bias;                 // [I]             always present
  Tensor<float, 2> A_log;                        // [I, N]          A = -exp(A_log)
  Tensor<float, 1> D;                            // [I]
  Tensor<float, 2> out_proj_weight;              // [d_model, I]
  std::optional<Tensor<float, 1>> out_proj_bias;  // [d_model]      (use_bias)
};

// The decode cache of one mixer: everything a step needs from the tokens before it. Plain tensors:
// copy it to fork a sequence, save it with MambaLMCache::save (mamba_lm.hpp).
//   conv_state [B, I, K-1]  the K-1 raw (pre-conv) xs inputs before the next token, oldest first.
//                           transformers' / mamba_ssm's conv_states [B, I, K] = [anything, ours].
//   ssm_state  [B, I, N]    the scan state h after the last token (transformers' ssm_states).
struct MambaMixerCache {
  Tensor<float, 3> conv_state;
  Tensor<float, 3> ssm_state;

  Index batch() const { return ssm_state.dimension(0); }
};

// A zero cache (the state before the first token) for `batch` sequences.
inline MambaMixerCache make_mamba_mixer_cache(const MambaMixerConfig& c, Index batch) {
  MambaMixerCache cache{Tensor<float, 3>(batch, c.d_inner, c.d_conv - 1), Tensor<float, 3>(batch, c.d_inner, c.d_state)};
  cache.conv_state.setZero();
  cache.ssm_state.setZero();
  return cache;
}

namespace detail {

inline void check_mamba_mixer_config(const char* op, const MambaMixerConfig& c) {
  TOKENMIX_CHECK(c.d_model > 0 && c.d_inner > 0 && c.d_state > 0 && c.d_conv > 0 && c.dt_rank > 0, op,
                 ": every extent of the mixer config must be positive, got ", c);
}

// Validates the shapes of every weight against each other; returns the config they describe.
inline MambaMixerConfig check_mamba_mixer_weights(const char* op, const MambaMixerWeights& w) {
  using tokenmix::detail::check_shape;
  MambaMixerConfig c;
  c.d_inner = w.in_proj_weight.dimension(0) / 2;
  c.d_model = w.in_proj_weight.dimension(1);
  c.d_state = w.A_log.dimension(1);
  c.d_conv = w.conv1d_weight.dimension(2);
  c.dt_rank = w.dt_proj_weight.dimension(1);
  c.use_bias = w.in_proj_bias.has_value();
  c.use_conv_bias = w.conv1d_bias.has_value();
  TOKENMIX_CHECK(w.in_proj_weight.dimension(0) % 2 == 0 && c.d_inner > 0 && c.d_model > 0, op,
                 ": in_proj_weight has shape ", shape_of(w.in_proj_weight),
                 ", expected [2·I, d_model] with I > 0 and d_model > 0");
  const Index I = c.d_inner, N = c.d_state, K = c.d_conv, R = c.dt_rank;
  TOKENMIX_CHECK(N > 0, op, ": A_log has shape ", shape_of(w.A_log), ", expected [I=", I, ", N] with N > 0");
  TOKENMIX_CHECK(K > 0, op, ": conv1d_weight has shape ", shape_of(w.conv1d_weight), ", expected [I=", I,
                 ", 1, K] with K > 0");
  TOKENMIX_CHECK(R > 0, op, ": dt_proj_weight has shape ", shape_of(w.dt_proj_weight), ", expected [I=", I,
                 ", R] with R > 0");
  check_shape(op, "A_log", w.A_log, NamedShape<2>{{"I", "N"}, {{I, N}}});
  check_shape(op, "conv1d_weight", w.conv1d_weight, NamedShape<3>{{"I", "1", "K"}, {{I, 1, K}}});
  check_shape(op, "dt_proj_weight", w.dt_proj_weight, NamedShape<2>{{"I", "R"}, {{I, R}}});
  check_shape(op, "x_proj_weight", w.x_proj_weight, NamedShape<2>{{"R+2N", "I"}, {{R + 2 * N, I}}});
  check_shape(op, "dt_proj_bias", w.dt_proj_bias, NamedShape<1>{{"I"}, {{I}}});
  check_shape(op, "D", w.D, NamedShape<1>{{"I"}, {{I}}});
  check_shape(op, "out_proj_weight", w.out_proj_weight, NamedShape<2>{{"d_model", "I"}, {{c.d_model, I}}});
  if (w.in_proj_bias) check_shape(op, "in_proj_bias", *w.in_proj_bias, NamedShape<1>{{"2·I"}, {{2 * I}}});
  if (w.conv1d_bias) check_shape(op, "conv1d_bias", *w.conv1d_bias, NamedShape<1>{{"I"}, {{I}}});
  TOKENMIX_CHECK(w.out_proj_bias.has_value() == c.use_bias, op, ": in_proj_bias is ",
                 c.use_bias ? "present" : "absent", " but out_proj_bias is ", c.use_bias ? "absent" : "present",
                 " (transformers' use_bias sets both)");
  if (w.out_proj_bias) check_shape(op, "out_proj_bias", *w.out_proj_bias, NamedShape<1>{{"d_model"}, {{c.d_model}}});
  return c;
}

// The cache of `batch` sequences: conv_state [B, I, K-1], ssm_state [B, I, N].
inline void check_mamba_mixer_cache(const char* op, const MambaMixerConfig& c, const MambaMixerCache& cache,
                                    Index batch) {
  using tokenmix::detail::check_shape;
  check_shape(op, "cache.conv_state", cache.conv_state,
              NamedShape<3>{{"B", "I", "K-1"}, {{batch, c.d_inner, c.d_conv - 1}}});
  check_shape(op, "cache.ssm_state", cache.ssm_state, NamedShape<3>{{"B", "I", "N"}, {{batch, c.d_inner, c.d_state}}});
}

// x [B, L, d_model] (any B, L >= 0) and, when given, out of the same shape, not overlapping x.
inline void check_mamba_mixer_input(const char* op, const MambaMixerConfig& c, const ConstTensorView<float, 3>& x,
                                    const TensorView<float, 3>* out) {
  tokenmix::detail::check_numel_fits(op, "x", shape_of(x));
  TOKENMIX_CHECK(x.dimension(2) == c.d_model, op, ": x has shape ", shape_of(x), ", expected [B, L, d_model=",
                 c.d_model, "]");
  if (out) {
    tokenmix::detail::check_shape(op, "out", *out,
                                  NamedShape<3>{{"B", "L", "d_model"}, {{x.dimension(0), x.dimension(1), c.d_model}}});
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out->data(), out->size(), x.data(), x.size()), op,
                   ": out must not overlap x");
  }
}

}  // namespace detail

// Random weights with transformers' initialisation scheme (MambaPreTrainedModel._init_weights and
// nn.Linear / nn.Conv1d defaults): linear and conv weights U(±1/√fan_in), dt_proj.weight U(±R^-½),
// dt_proj.bias = softplus⁻¹(dt) with dt log-uniform in [0.001, 0.1], A_log[i, n] = log(n + 1), D = 1,
// other biases U(±1/√fan_in). The same seed gives the same weights on every platform.
inline MambaMixerWeights random_mamba_mixer_weights(const MambaMixerConfig& c, std::uint64_t seed) {
  detail::check_mamba_mixer_config("random_mamba_mixer_weights", c);
  const Index I = c.d_inner, N = c.d_state, K = c.d_conv, R = c.dt_rank, Dm = c.d_model;
  SplitMix64 rng(seed);
  auto uniform = [&](auto& t, Index fan_in) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
    rng.fill_uniform(t.data(), t.size(), -bound, bound);
  };
  MambaMixerWeights w;
  w.in_proj_weight = Tensor<float, 2>(2 * I, Dm);
  uniform(w.in_proj_weight, Dm);
  w.conv1d_weight = Tensor<float, 3>(I, 1, K);
  uniform(w.conv1d_weight, K);
  w.x_proj_weight = Tensor<float, 2>(R + 2 * N, I);
  uniform(w.x_proj_weight, I);
  w.dt_proj_weight = Tensor<float, 2>(I, R);
  uniform(w.dt_proj_weight, R);
  w.dt_proj_bias = Tensor<float, 1>(I);
  for (Index i = 0; i < I; ++i) {
    const double dt = std::exp(std::log(0.001) + rng.uniform01() * (std::log(0.1) - std::log(0.001)));
    w.dt_proj_bias(i) = static_cast<float>(dt + std::log(-std::expm1(-dt)));  // softplus⁻¹(dt)
  }
  w.A_log = Tensor<float, 2>(I, N);
  for (Index i = 0; i < I; ++i)
    for (Index n = 0; n < N; ++n) w.A_log(i, n) = std::log(static_cast<float>(n + 1));
  w.D = Tensor<float, 1>(I);
  w.D.setConstant(1.0f);
  w.out_proj_weight = Tensor<float, 2>(Dm, I);
  uniform(w.out_proj_weight, I);
  if (c.use_conv_bias) {
    w.conv1d_bias = Tensor<float, 1>(I);
    uniform(*w.conv1d_bias, K);
  }
  if (c.use_bias) {
    w.in_proj_bias = Tensor<float, 1>(2 * I);
    uniform(*w.in_proj_bias, Dm);
    w.out_proj_bias = Tensor<float, 1>(Dm);
    uniform(*w.out_proj_bias, I);
  }
  return w;
}

}  // namespace tokenmix::blocks
