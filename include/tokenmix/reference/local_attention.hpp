#pragma once
// Oracle of local (sliding-window) attention: plain loops over each query's window, in Acc (double
// in tests). Semantics, shapes and the bias rule: attention/local_attention_types.hpp.
//
// Source: SeqBoat (Ren et al., "Sparse Modular Activation for Efficient Sequence Modeling", NeurIPS
// 2023), renll/SeqBoat fairseq/modules/seqboat_unit.py local attention (window W over the sequence
// index; softmax or relu², the positional bias added after scaling), spec seqboat_h3.md §1.3 / §4:
//   J(i) = {j : i - W <= j <= i} (causal) or {j : |i - j| <= W}, j in [0, L)
//   s_ij = scale·<q_i, k_j> + rel_pos_bias[h, clamp(pos_j - pos_i, -(M-1), M-1) + M-1]
//   softmax: out_i = sum_{j in J(i)} exp(s_ij) v_j / sum_{j in J(i)} exp(s_ij)
//   relu²:   out_i = sum_{j in J(i)} max(s_ij, 0)² v_j

#include <algorithm>
#include <cmath>
#include <vector>

#include "tokenmix/attention/local_attention_types.hpp"

namespace tokenmix::ref {

template <class Acc = double>
void local_attention(const ConstTensorView<float, 4>& q,  // [B, Lq, H, P]
                     const ConstTensorView<float, 4>& k,  // [B, L, H, P]
                     const ConstTensorView<float, 4>& v,  // [B, L, H, Pv]
                     const attention::LocalAttentionOptions& options,
                     TensorView<float, 4> out) {          // [B, Lq, H, Pv]
  const attention::detail::LocalAttentionShape s =
      attention::detail::check_local_attention_args("ref::local_attention", q, k, v, options, &out);
  const Index L = s.length, W = s.window, q_offset = s.length - s.q_len;
  std::vector<Acc> logits, acc(static_cast<std::size_t>(s.v_dim));
  for (Index b = 0; b < s.batch; ++b)
    for (Index h = 0; h < s.heads; ++h)
      for (Index r = 0; r < s.q_len; ++r) {
        const Index i = q_offset + r;  // the query's token
        const Index lo = std::max<Index>(0, i - W), hi = options.causal ? i : std::min(L - 1, i + W);
        logits.assign(static_cast<std::size_t>(hi - lo + 1), Acc(0));
        for (Index j = lo; j <= hi; ++j) {
          Acc dot = 0;
          for (Index p = 0; p < s.dim; ++p) dot += Acc(q(b, r, h, p)) * Acc(k(b, j, h, p));
          Acc logit = Acc(s.scale) * dot;
          if (options.rel_pos_bias) {
            const Index pi = options.positions ? (*options.positions)(b, i) : i;
            const Index pj = options.positions ? (*options.positions)(b, j) : j;
            logit += Acc((*options.rel_pos_bias)(h, attention::detail::rel_pos_index(pi, pj, s.max_positions)));
          }
          logits[static_cast<std::size_t>(j - lo)] = logit;
        }
        Acc norm = 1;
        if (options.kind == attention::LocalAttentionKind::softmax) {
          const Acc m = *std::max_element(logits.begin(), logits.end());
          norm = 0;
          for (Acc& x : logits) norm += (x = std::exp(x - m));
        } else {
          for (Acc& x : logits) x = x > 0 ? x * x : Acc(0);
        }
        std::fill(acc.begin(), acc.end(), Acc(0));
        for (Index j = lo; j <= hi; ++j)
          for (Index p = 0; p < s.v_dim; ++p)
            acc[static_cast<std::size_t>(p)] += logits[static_cast<std::size_t>(j - lo)] * Acc(v(b, j, h, p));
        for (Index p = 0; p < s.v_dim; ++p) out(b, r, h, p) = static_cast<float>(acc[static_cast<std::size_t>(p)] / norm);
      }
}

template <class Acc = double>
Tensor<float, 4> local_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                                 const ConstTensorView<float, 4>& v,
                                 const attention::LocalAttentionOptions& options) {
  attention::detail::check_local_attention_args("ref::local_attention", q, k, v, options, nullptr);
  Tensor<float, 4> out(q.dimension(0), q.dimension(1), q.dimension(2), v.dimension(3));
  ref::local_attention<Acc>(q, k, v, options, TensorView<float, 4>(out.data(), out.dimensions()));
  return out;
}

}  // namespace tokenmix::ref
