#pragma once
// Oracle of the softmax attention engine (attention/attention.hpp): for every query, the logits of
// every key written out, the allowed set from a token predicate, a dense softmax in Acc:
//   s_ij = scale·row_scale_i·<q_i, k_j>;  s_ij = softcap·tanh(s_ij / softcap) if softcap > 0;  s_ij += key_bias_j
//   allowed(i, j) = predicate(h, i, j) and (j <= i if causal),  i = q_offset + r
//   out_i = Σ_{allowed j} e^{s_ij - m_i} v_j / Σ_{allowed j} e^{s_ij - m_i},  lse_i = m_i + log Σ e^{s_ij - m_i}
//   no allowed key: out_i = 0, lse_i = -inf.
// Arguments and validation: attention/attention_types.hpp. No blocks, no online softmax.

#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "tokenmix/attention/attention_types.hpp"
#include "tokenmix/attention/block_layout.hpp"

namespace tokenmix::ref {

// predicate(h, i, j): query head h, absolute positions; nullptr-like default = every key.
template <class Acc = double>
attention::AttentionResult masked_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                                            const ConstTensorView<float, 4>& v, const attention::AttentionOptions& o,
                                            const std::function<bool(Index, Index, Index)>& predicate = {}) {
  const attention::detail::AttentionShape s = attention::detail::check_attention_args("ref::attention", q, k, v, o);
  attention::AttentionResult r{Tensor<float, 4>(s.batch, s.q_len, s.heads, s.v_dim),
                               Tensor<float, 3>(s.batch, s.heads, s.q_len)};
  const Index group = s.heads / s.kv_heads;
  std::vector<Acc> logit(static_cast<std::size_t>(s.k_len));
  std::vector<char> ok(static_cast<std::size_t>(s.k_len));
  for (Index b = 0; b < s.batch; ++b)
    for (Index h = 0; h < s.heads; ++h) {
      const Index hk = h / group;
      const Index hb = s.bias_heads == s.heads ? h : (s.bias_heads == 1 ? 0 : hk);
      for (Index row = 0; row < s.q_len; ++row) {
        const Index i = s.q_offset + row;
        Acc m = -std::numeric_limits<Acc>::infinity();
        for (Index j = 0; j < s.k_len; ++j) {
          Acc dot = 0;
          for (Index d = 0; d < s.dim; ++d) dot += Acc(q(b, row, h, d)) * Acc(k(b, j, hk, d));
          Acc x = Acc(s.scale) * dot;
          if (o.row_scale) x *= Acc((*o.row_scale)(b, h, row));
          if (o.softcap > 0) x = Acc(o.softcap) * std::tanh(x / Acc(o.softcap));
          if (o.key_bias) x += Acc((*o.key_bias)(b, hb, j));
          const bool allowed = (!o.causal || j <= i) && (!predicate || predicate(h, i, j));
          ok[static_cast<std::size_t>(j)] = allowed;
          logit[static_cast<std::size_t>(j)] = x;
          if (allowed) m = std::max(m, x);
        }
        Acc sum = 0;
        std::vector<Acc> acc(static_cast<std::size_t>(s.v_dim), Acc(0));
        for (Index j = 0; j < s.k_len; ++j) {
          if (!ok[static_cast<std::size_t>(j)]) continue;
          const Acc e = std::exp(logit[static_cast<std::size_t>(j)] - m);
          sum += e;
          for (Index d = 0; d < s.v_dim; ++d) acc[static_cast<std::size_t>(d)] += e * Acc(v(b, j, hk, d));
        }
        for (Index d = 0; d < s.v_dim; ++d)
          r.out(b, row, h, d) = sum > 0 ? static_cast<float>(acc[static_cast<std::size_t>(d)] / sum) : 0.0f;
        r.lse(b, h, row) =
            sum > 0 ? static_cast<float>(m + std::log(sum)) : -std::numeric_limits<float>::infinity();
      }
    }
  return r;
}

// Dense attention (every key, cut by causal).
template <class Acc = double>
attention::AttentionResult attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                                     const ConstTensorView<float, 4>& v, const attention::AttentionOptions& o = {}) {
  return masked_attention<Acc>(q, k, v, o);
}

}  // namespace tokenmix::ref
