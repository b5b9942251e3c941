#pragma once
// Arguments of local (sliding-window) attention (attention/local_attention.hpp), shared with its
// oracle (reference/local_attention.hpp) so that both accept and reject exactly the same inputs.
//
// Query i attends to the keys j of its window, in sequence index:
//   causal:         i - W <= j <= i          (W + 1 keys; fewer at the start)
//   bidirectional:  i - W <= j <= i + W      (2W + 1 keys; fewer at both ends: windows are cut,
//                                             never shifted — unlike NATTEN's neighborhoods)
// Logit s_ij = scale·<q_i, k_j> + bias_ij, with the optional relative-position bias
//   bias_ij = rel_pos_bias[h, clamp(pos_j - pos_i, -(M-1), M-1) + M-1]
// where pos are `positions` (e.g. the original positions of a compressed sequence, as SeqBoat's
// default 'simple' bias) or the sequence index when absent (SeqBoat's --local-pos). Weights:
//   softmax:        a_ij = softmax_j(s_ij) over the window                     (default scale 1/√P)
//   relu_squared:   a_ij = relu(s_ij)², no normalisation                        (default scale 1/W
//                   causal, 1/(2W) bidirectional: SeqBoat's constant, not the real key count)
//   out_i = sum_j a_ij·v_j
// A rel_pos_bias entry of -inf masks the keys at its offset (softmax: weight 0; relu²: 0 as well);
// a softmax query whose whole window is masked gets NaN, as PyTorch's softmax in SeqBoat gives.
// Shapes (token-major): q [B, Lq, H, P]; k [B, L, H, P]; v [B, L, H, Pv]; out [B, Lq, H, Pv];
// positions [B, L] (Index); rel_pos_bias [H, 2M-1]. Lq <= L: the queries are the LAST Lq tokens
// (query row r is token i = L - Lq + r; Lq = L is the usual self-attention, Lq = 1 a decode step
// against a cache of the last keys). The source, SeqBoat's local attention: renll/SeqBoat
// fairseq/modules/seqboat_unit.py (local mode, chunk_size = W) and spec seqboat_h3.md §1.3.

#include <cmath>
#include <optional>

#include <unsupported/Eigen/CXX11/Tensor>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::attention {

enum class LocalAttentionKind { softmax, relu_squared };

struct LocalAttentionOptions {
  Index window = 0;  // W >= 0: one-sided window (SeqBoat's chunk_size)
  bool causal = true;
  LocalAttentionKind kind = LocalAttentionKind::softmax;
  std::optional<float> scale;  // default: 1/√P (softmax), 1/W or 1/(2W) (relu_squared; 1 if W = 0)
  // [B, L] the position of each token for the bias (default: its index). Must not decrease along
  // a sequence (a compressed sequence keeps its tokens' order).
  std::optional<ConstTensorView<Index, 2>> positions;
  std::optional<ConstTensorView<float, 2>> rel_pos_bias;  // [H, 2M-1]
  // Threads over (batch, head, query tile); bitwise identical results for any thread count.
  const Eigen::ThreadPoolDevice* device = nullptr;
};

namespace detail {

struct LocalAttentionShape {
  Index batch, length, q_len, heads, dim, v_dim, window, max_positions;  // L, Lq, M (0 without a bias table)
  float scale;
};

inline LocalAttentionShape check_local_attention_args(const char* op, const ConstTensorView<float, 4>& q,
                                                      const ConstTensorView<float, 4>& k,
                                                      const ConstTensorView<float, 4>& v,
                                                      const LocalAttentionOptions& o,
                                                      const TensorView<float, 4>* out) {
  using tokenmix::detail::check_shape;
  using tokenmix::detail::ranges_overlap;
  LocalAttentionShape s{};
  tokenmix::detail::check_numel_fits(op, "q", shape_of(q));
  s.batch = q.dimension(0), s.q_len = q.dimension(1), s.heads = q.dimension(2), s.dim = q.dimension(3);
  s.length = k.dimension(1), s.v_dim = v.dimension(3);
  TOKENMIX_CHECK(s.batch > 0 && s.heads > 0 && s.dim > 0, op, ": q has shape ", shape_of(q),
                 ", expected [B, Lq, H, P] with B, H, P > 0");
  TOKENMIX_CHECK(k.dimension(0) == s.batch && s.length >= s.q_len && k.dimension(2) == s.heads &&
                     k.dimension(3) == s.dim,
                 op, ": k has shape ", shape_of(k), ", expected [B=", s.batch, ", L >= Lq=", s.q_len, ", H=", s.heads,
                 ", P=", s.dim, "] (the queries are the last Lq tokens)");
  TOKENMIX_CHECK(v.dimension(0) == s.batch && v.dimension(1) == s.length && v.dimension(2) == s.heads && s.v_dim > 0,
                 op, ": v has shape ", shape_of(v), ", expected [B=", s.batch, ", L=", s.length, ", H=", s.heads,
                 ", Pv] with Pv > 0");
  TOKENMIX_CHECK(s.length < (Index(1) << 24), op, ": k has ", s.length,
                 " tokens, expected L < 2^24 (the kernel compares token indices as floats)");
  TOKENMIX_CHECK(o.window >= 0, op, ": window is ", o.window, ", expected W >= 0 (keys i-W..i, or i-W..i+W)");
  s.window = o.window;
  if (o.scale) {
    s.scale = *o.scale;
  } else if (o.kind == LocalAttentionKind::softmax) {
    s.scale = 1.0f / std::sqrt(static_cast<float>(s.dim));
  } else {
    s.scale = o.window == 0 ? 1.0f : 1.0f / static_cast<float>(o.causal ? o.window : 2 * o.window);
  }
  TOKENMIX_CHECK(std::isfinite(s.scale), op, ": scale must be finite, got ", s.scale);
  if (o.positions) {
    check_shape(op, "positions", *o.positions, NamedShape<2>{{"B", "L"}, {{s.batch, s.length}}});
    const ConstTensorView<Index, 2>& p = *o.positions;
    for (Index b = 0; b < s.batch; ++b)
      for (Index t = 1; t < s.length; ++t)
        TOKENMIX_CHECK(p(b, t) >= p(b, t - 1), op, ": positions must not decrease along a sequence, got positions[",
                       b, ", ", t, "] = ", p(b, t), " after ", p(b, t - 1));
  }
  s.max_positions = 0;
  if (o.rel_pos_bias) {
    const ConstTensorView<float, 2>& t = *o.rel_pos_bias;
    TOKENMIX_CHECK(t.dimension(0) == s.heads && t.dimension(1) > 0 && t.dimension(1) % 2 == 1, op,
                   ": rel_pos_bias has shape ", shape_of(t), ", expected [H=", s.heads, ", 2M-1] with M >= 1");
    s.max_positions = (t.dimension(1) + 1) / 2;
  }
  if (out) {
    check_shape(op, "out", *out, NamedShape<4>{{"B", "Lq", "H", "Pv"}, {{s.batch, s.q_len, s.heads, s.v_dim}}});
    const Index n = out->size();
    TOKENMIX_CHECK(!ranges_overlap(out->data(), n, q.data(), q.size()) &&
                       !ranges_overlap(out->data(), n, k.data(), k.size()) &&
                       !ranges_overlap(out->data(), n, v.data(), v.size()),
                   op, ": out must not overlap q, k or v");
  }
  return s;
}

// The bias table index of a (query, key) position pair: clamp(pos_j - pos_i, -(M-1), M-1) + M-1.
inline Index rel_pos_index(Index pos_query, Index pos_key, Index max_positions) {
  const Index d = pos_key - pos_query, m = max_positions - 1;
  return (d < -m ? -m : d > m ? m : d) + m;
}

}  // namespace detail
}  // namespace tokenmix::attention
