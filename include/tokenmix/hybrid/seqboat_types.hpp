#pragma once
// The SeqBoat layer's configuration, weights, streaming state and validation, shared by the fast
// layer (hybrid/seqboat.hpp) and its oracle (reference/seqboat.hpp).
//
// Math (renll/SeqBoat fairseq/modules/seqboat_unit.py SeqBoatUnit.forward in local mode, inference;
// spec seqboat_h3.md §1; the exact formulas as tests/data/make_seqboat_fixture.py transcribes them),
// for x [B, L, D] with Z = zdim, E = hdim, N = ndim, W = window:
//   xn = Norm(x) if prenorm                    (layernorm | rmsnorm | scalenorm | batchnorm, eps 1e-5)
//   y  = Mega's multi-head EMA of xn: p = σ(delta), q = 1 - p·σ(alpha),
//        K[d, l] = Σ_n p·beta·gamma·N^-½·q^l (rows D..2D-1 an anti-causal kernel if bidirectional:
//        lag 0 counted in both), + omega·xn
//   mx = silu(y); [u0, u1 | hx] = hx_proj(mx)
//   router: P = softmax([u0 + act_bias, u1] / exp(q_router_temp)); act = P1 > P0 (a tie is not
//        activated); g = P1 on activated tokens, 0 elsewhere
//   compress the activated tokens of each sequence (ALWAYS, whatever the density: spec ambiguity A1;
//        the released code skips compression when one row of the batch is fully activated, which
//        changes nothing when every token is activated and is batch-dependent otherwise)
//   GAU on the m compressed tokens: [z | r | v] = silu(mx_proj(mx)); Q = z·gamma[0] + beta[0],
//        K = z·gamma[1] + beta[1]; O = attention::local_attention(Q, K, v) with window W in the
//        compressed index, softmax (scale Z^-½) or relu² (scale 1/W causal, 1/(2W) bidirectional),
//        and the position term: 'simple' bias by ORIGINAL positions, 'local' bias by compressed
//        offset (--local-pos: table of 2·3W-1), 'rotary' RoPE on Q and K at original positions
//   h  = scatter(h_proj(r ⊙ O)) · g         (0 on tokens that are not activated)
//   out = silu(x + hx + h); Norm(out) if not prenorm
// Streaming (causal only): the state holds the EMA's state, the number of tokens seen and, per
// sequence, the keys, values and positions of its last W activated tokens; forward() continues from
// it, step() is forward() on one token. The cost of a token is bounded by the window.

#include <cmath>

#include "tokenmix/attention/local_attention_types.hpp"
#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::hybrid {

enum class SeqBoatNorm { layer_norm, rms_norm, scale_norm, batch_norm };
enum class SeqBoatPosition { simple, local, rotary };

struct SeqBoatConfig {
  Index d_model = 0;  // D (embed_dim)
  Index zdim = 0;     // Z: shared query / key width
  Index hdim = 0;     // E: value width
  Index ndim = 16;    // N: EMA components per channel
  Index window = 0;   // W: one-sided attention window over the compressed tokens (chunk_size)
  Index max_positions = 1024;  // M of the 'simple' bias table (2M-1 entries)
  bool bidirectional = false;  // false: causal (decoder / LM); true: encoder
  attention::LocalAttentionKind attention = attention::LocalAttentionKind::softmax;
  SeqBoatPosition position = SeqBoatPosition::simple;
  SeqBoatNorm norm = SeqBoatNorm::layer_norm;
  bool prenorm = true;
  float norm_eps = 1e-5f;
  float act_bias = 0.0f;  // added to router logit 0 (forward()'s act_bias; 0 in the released layers)

  Index ema_rows() const { return bidirectional ? 2 * d_model : d_model; }  // D'
  // Entries of rel_pos_bias: 2M-1 ('simple'), 2·3W-1 ('local'), none ('rotary').
  Index bias_entries() const {
    return position == SeqBoatPosition::simple ? 2 * max_positions - 1
           : position == SeqBoatPosition::local ? 6 * window - 1
                                                 : 0;
  }
};

// The parameters of one SeqBoatUnit, named as its state dict with '.' -> '_' (float32, released shapes).
struct SeqBoatWeights {
  Tensor<float, 1> norm_weight;        // [D] norm.norm.weight (layer / rms / batch norm)
  Tensor<float, 1> norm_bias;          // [D] norm.norm.bias (layer / batch norm)
  Tensor<float, 1> norm_scalar;        // [1] norm.norm.scalar (scale norm)
  Tensor<float, 1> norm_running_mean;  // [D] norm.norm.running_mean (batch norm, inference)
  Tensor<float, 1> norm_running_var;   // [D] norm.norm.running_var
  Tensor<float, 3> move_delta, move_alpha, move_beta;  // [D', N, 1]
  Tensor<float, 2> move_gamma;         // [D', N]
  Tensor<float, 1> move_omega;         // [D]
  Tensor<float, 1> q_router_temp;      // [1] log temperature
  Tensor<float, 2> hx_proj_weight;     // [2 + D, D]: rows 0, 1 router logits, then hx
  Tensor<float, 1> hx_proj_bias;       // [2 + D]
  Tensor<float, 2> mx_proj_weight;     // [Z + 2E, D]: z | r | v
  Tensor<float, 1> mx_proj_bias;       // [Z + 2E]
  Tensor<float, 2> gamma, beta;        // [2, Z]: query, key
  Tensor<float, 2> h_proj_weight;      // [D, E]
  Tensor<float, 1> h_proj_bias;        // [D]
  Tensor<float, 1> rel_pos_bias;       // [bias_entries()] rel_pos_bias.rel_pos_bias ('simple' / 'local')
};

// The streaming state of a batch of B causal sequences.
struct SeqBoatState {
  Tensor<float, 4> ema_state;      // [B, D, N, 2] ssm::diagonal_ssm's state of the EMA (imaginary parts 0)
  Tensor<float, 3> keys;           // [B, W, Z] the last activated tokens' keys (rotated for 'rotary'), oldest first
  Tensor<float, 3> values;         // [B, W, E]
  Tensor<Index, 2> key_positions;  // [B, W] their original positions
  Tensor<Index, 1> cached;         // [B] how many of the W slots hold a token
  Index tokens = 0;                // tokens seen (the position of the next one)
};

inline SeqBoatState make_seqboat_state(const SeqBoatConfig& c, Index batch) {
  SeqBoatState s{Tensor<float, 4>(batch, c.d_model, c.ndim, 2), Tensor<float, 3>(batch, c.window, c.zdim),
                 Tensor<float, 3>(batch, c.window, c.hdim), Tensor<Index, 2>(batch, c.window), Tensor<Index, 1>(batch),
                 0};
  s.ema_state.setZero(), s.keys.setZero(), s.values.setZero(), s.key_positions.setZero(), s.cached.setZero();
  return s;
}

namespace detail {

inline void check_seqboat_config(const char* op, const SeqBoatConfig& c) {
  TOKENMIX_CHECK(c.d_model > 0 && c.zdim > 0 && c.hdim > 0 && c.ndim > 0 && c.window > 0, op,
                 ": d_model, zdim, hdim, ndim and window must be positive, got d_model=", c.d_model, " zdim=", c.zdim,
                 " hdim=", c.hdim, " ndim=", c.ndim, " window=", c.window);
  TOKENMIX_CHECK(c.position != SeqBoatPosition::simple || c.max_positions > 0, op, ": max_positions=",
                 c.max_positions, " must be positive for the 'simple' bias");
  TOKENMIX_CHECK(c.position != SeqBoatPosition::rotary || c.zdim % 2 == 0, op, ": zdim=", c.zdim,
                 " must be even for rotary positions (pairs of channels rotate)");
  TOKENMIX_CHECK(std::isfinite(c.norm_eps) && c.norm_eps > 0 && std::isfinite(c.act_bias), op,
                 ": norm_eps must be finite and > 0 and act_bias finite, got ", c.norm_eps, " and ", c.act_bias);
}

inline void check_seqboat_weights(const char* op, const SeqBoatConfig& c, const SeqBoatWeights& w) {
  using tokenmix::detail::check_shape;
  check_seqboat_config(op, c);
  const Index D = c.d_model, Dp = c.ema_rows(), N = c.ndim, Z = c.zdim, E = c.hdim;
  const NamedShape<1> d1{{"D"}, {{D}}};
  if (c.norm == SeqBoatNorm::scale_norm) {
    check_shape(op, "norm_scalar", w.norm_scalar, NamedShape<1>{{"1"}, {{1}}});
  } else {
    check_shape(op, "norm_weight", w.norm_weight, d1);
    if (c.norm != SeqBoatNorm::rms_norm) check_shape(op, "norm_bias", w.norm_bias, d1);
    if (c.norm == SeqBoatNorm::batch_norm) {
      check_shape(op, "norm_running_mean", w.norm_running_mean, d1);
      check_shape(op, "norm_running_var", w.norm_running_var, d1);
    }
  }
  const NamedShape<3> dn1{{"D'", "N", "1"}, {{Dp, N, 1}}};
  check_shape(op, "move_delta", w.move_delta, dn1);
  check_shape(op, "move_alpha", w.move_alpha, dn1);
  check_shape(op, "move_beta", w.move_beta, dn1);
  check_shape(op, "move_gamma", w.move_gamma, NamedShape<2>{{"D'", "N"}, {{Dp, N}}});
  check_shape(op, "move_omega", w.move_omega, d1);
  check_shape(op, "q_router_temp", w.q_router_temp, NamedShape<1>{{"1"}, {{1}}});
  TOKENMIX_CHECK(std::isfinite(w.q_router_temp(0)), op, ": q_router_temp must be finite, got ", w.q_router_temp(0));
  check_shape(op, "hx_proj_weight", w.hx_proj_weight, NamedShape<2>{{"2+D", "D"}, {{2 + D, D}}});
  check_shape(op, "hx_proj_bias", w.hx_proj_bias, NamedShape<1>{{"2+D"}, {{2 + D}}});
  check_shape(op, "mx_proj_weight", w.mx_proj_weight, NamedShape<2>{{"Z+2E", "D"}, {{Z + 2 * E, D}}});
  check_shape(op, "mx_proj_bias", w.mx_proj_bias, NamedShape<1>{{"Z+2E"}, {{Z + 2 * E}}});
  check_shape(op, "gamma", w.gamma, NamedShape<2>{{"2", "Z"}, {{2, Z}}});
  check_shape(op, "beta", w.beta, NamedShape<2>{{"2", "Z"}, {{2, Z}}});
  check_shape(op, "h_proj_weight", w.h_proj_weight, NamedShape<2>{{"D", "E"}, {{D, E}}});
  check_shape(op, "h_proj_bias", w.h_proj_bias, d1);
  if (c.position != SeqBoatPosition::rotary)
    check_shape(op, "rel_pos_bias", w.rel_pos_bias,
                NamedShape<1>{{c.position == SeqBoatPosition::simple ? "2M-1" : "6W-1"}, {{c.bias_entries()}}});
}

// x [B, L, D] (L may be 0); out [B, L, D]; state (causal only) of batch B.
inline void check_seqboat_input(const char* op, const SeqBoatConfig& c, const ConstTensorView<float, 3>& x,
                                const TensorView<float, 3>* out, const SeqBoatState* state) {
  using tokenmix::detail::check_shape;
  tokenmix::detail::check_numel_fits(op, "x", shape_of(x));
  const Index B = x.dimension(0), L = x.dimension(1);
  TOKENMIX_CHECK(B > 0 && x.dimension(2) == c.d_model, op, ": x has shape ", shape_of(x), ", expected [B, L, D=",
                 c.d_model, "] with B > 0");
  if (out) {
    check_shape(op, "out", *out, NamedShape<3>{{"B", "L", "D"}, {{B, L, c.d_model}}}, " like x");
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out->data(), out->size(), x.data(), x.size()), op,
                   ": out must not overlap x");
  }
  if (state) {
    TOKENMIX_CHECK(!c.bidirectional, op,
                   ": a streaming state needs the causal layer (bidirectional=false): a bidirectional layer sees the "
                   "whole sequence at once");
    check_shape(op, "state.ema_state", state->ema_state, NamedShape<4>{{"B", "D", "N", "2"}, {{B, c.d_model, c.ndim, 2}}});
    check_shape(op, "state.keys", state->keys, NamedShape<3>{{"B", "W", "Z"}, {{B, c.window, c.zdim}}});
    check_shape(op, "state.values", state->values, NamedShape<3>{{"B", "W", "E"}, {{B, c.window, c.hdim}}});
    check_shape(op, "state.key_positions", state->key_positions, NamedShape<2>{{"B", "W"}, {{B, c.window}}});
    check_shape(op, "state.cached", state->cached, NamedShape<1>{{"B"}, {{B}}});
    for (Index b = 0; b < B; ++b)
      TOKENMIX_CHECK(state->cached(b) >= 0 && state->cached(b) <= c.window && state->cached(b) <= state->tokens, op,
                     ": state.cached[", b, "] = ", state->cached(b), " must be in [0, min(W, tokens)]");
  }
}

}  // namespace detail
}  // namespace tokenmix::hybrid
