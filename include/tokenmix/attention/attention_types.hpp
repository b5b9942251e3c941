#pragma once
// Arguments of the softmax attention engine (attention/attention.hpp), shared with its oracle
// (reference/attention.hpp) so both accept and reject exactly the same inputs.
//
// Shapes (token-major, as flash-attn's [batch, seqlen, nheads, headdim]):
//   q [B, Lq, H, P]; k [B, Lk, Hkv, P]; v [B, Lk, Hkv, Pv]; out [B, Lq, H, Pv]; lse [B, H, Lq].
//   GQA / MQA: H a multiple of Hkv, query head h reads kv head h / (H / Hkv).
// Positions are absolute: query row r is position i = q_offset + r, key row j is position j. Causal
// means j <= i. q_offset defaults to Lk - Lq (the last query sees every key: prefill when Lq = Lk,
// decode and chunked prefill against a KV cache otherwise), as flash-attn aligns causal masks.
// Logit s_ij = scale·row_scale[b, h, r]·<q_i, k_j> (row_scale: Selective Attention's per-query
// temperature, 1 when absent), then softcap·tanh(s / softcap) when softcap > 0 (Gemma 2), then
// + key_bias[b, h, j] (DMA's value-derived bias, ALiBi-free per-key biases). A query with no allowed
// key gets out = 0 and lse = -inf (defined, tested; flash-attn's convention for empty rows).

#include <cmath>
#include <optional>

#include <unsupported/Eigen/CXX11/Tensor>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::attention {

struct AttentionOptions {
  std::optional<float> scale;     // default 1/sqrt(P)
  bool causal = false;            // j <= i
  std::optional<Index> q_offset;  // absolute position of query row 0; default Lk - Lq
  float softcap = 0.0f;           // > 0: s = softcap·tanh(s / softcap)
  // [B, Hb, Lk], Hb = 1 (shared), Hkv (per kv head) or H (per query head): added to the logits.
  std::optional<ConstTensorView<float, 3>> key_bias;
  // [B, H, Lq]: multiplies the logits of each query (Selective Attention's temperature τ_q).
  std::optional<ConstTensorView<float, 3>> row_scale;
  // Threads over (batch, head, query block); bitwise identical results for any thread count.
  const Eigen::ThreadPoolDevice* device = nullptr;
};

struct AttentionResult {
  Tensor<float, 4> out;  // [B, Lq, H, Pv]
  Tensor<float, 3> lse;  // [B, H, Lq] natural-log log-sum-exp of the allowed logits
};

namespace detail {

struct AttentionShape {
  Index batch, q_len, k_len, heads, kv_heads, dim, v_dim, q_offset, bias_heads;
  float scale;
};

inline AttentionShape check_attention_args(const char* op, const ConstTensorView<float, 4>& q,
                                           const ConstTensorView<float, 4>& k, const ConstTensorView<float, 4>& v,
                                           const AttentionOptions& o) {
  AttentionShape s{};
  s.batch = q.dimension(0), s.q_len = q.dimension(1), s.heads = q.dimension(2), s.dim = q.dimension(3);
  s.k_len = k.dimension(1), s.kv_heads = k.dimension(2), s.v_dim = v.dimension(3);
  TOKENMIX_CHECK(s.heads > 0 && s.dim > 0, op, ": q has shape ", shape_of(q), ", expected [B, Lq, H, P] with H, P > 0");
  TOKENMIX_CHECK(k.dimension(0) == s.batch && s.kv_heads > 0 && k.dimension(3) == s.dim, op, ": k has shape ",
                 shape_of(k), ", expected [B=", s.batch, ", Lk, Hkv, P=", s.dim, "] with Hkv > 0");
  TOKENMIX_CHECK(s.heads % s.kv_heads == 0, op, ": q has ", s.heads, " heads and k has ", s.kv_heads,
                 ", expected H a multiple of Hkv (GQA / MQA)");
  TOKENMIX_CHECK(v.dimension(0) == s.batch && v.dimension(1) == s.k_len && v.dimension(2) == s.kv_heads &&
                     s.v_dim > 0,
                 op, ": v has shape ", shape_of(v), ", expected [B=", s.batch, ", Lk=", s.k_len, ", Hkv=", s.kv_heads,
                 ", Pv] with Pv > 0");
  s.q_offset = o.q_offset ? *o.q_offset : s.k_len - s.q_len;
  TOKENMIX_CHECK(s.q_offset >= 0, op, ": q_offset is ", s.q_offset,
                 ", expected >= 0 (default Lk - Lq: pass q_offset when there are more queries than keys)");
  s.scale = o.scale ? *o.scale : 1.0f / std::sqrt(static_cast<float>(s.dim));
  TOKENMIX_CHECK(std::isfinite(s.scale), op, ": scale must be finite, got ", s.scale);
  TOKENMIX_CHECK(o.softcap >= 0.0f && std::isfinite(o.softcap), op, ": softcap must be >= 0 (0 = off), got ",
                 o.softcap);
  s.bias_heads = 0;
  if (o.key_bias) {
    const ConstTensorView<float, 3>& b = *o.key_bias;
    s.bias_heads = b.dimension(1);
    TOKENMIX_CHECK(b.dimension(0) == s.batch && b.dimension(2) == s.k_len &&
                       (s.bias_heads == 1 || s.bias_heads == s.kv_heads || s.bias_heads == s.heads),
                   op, ": key_bias has shape ", shape_of(b), ", expected [B=", s.batch, ", 1, Hkv=", s.kv_heads,
                   " or H=", s.heads, ", Lk=", s.k_len, "]");
  }
  if (o.row_scale)
    tokenmix::detail::check_shape(op, "row_scale", *o.row_scale,
                                  NamedShape<3>{{"B", "H", "Lq"}, {{s.batch, s.heads, s.q_len}}});
  return s;
}

inline void check_attention_outputs(const char* op, const AttentionShape& s, const TensorView<float, 4>& out,
                                    const TensorView<float, 3>* lse) {
  tokenmix::detail::check_shape(op, "out", out,
                                NamedShape<4>{{"B", "Lq", "H", "Pv"}, {{s.batch, s.q_len, s.heads, s.v_dim}}});
  if (lse)
    tokenmix::detail::check_shape(op, "lse", *lse, NamedShape<3>{{"B", "H", "Lq"}, {{s.batch, s.heads, s.q_len}}});
}

}  // namespace detail
}  // namespace tokenmix::attention
