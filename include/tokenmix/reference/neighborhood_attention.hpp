#pragma once
// Oracle of neighborhood attention in R = 1, 2, 3 spatial dimensions (NATTEN >= 0.20 semantics, the
// window rule in attention/neighborhood_types.hpp), written as loops from the definition:
//   for each batch b, query position x (R coordinates) and head h (kv head h / (H / Hkv)):
//     keys = the product over axes of neighborhood_axis_window(x_a, L_a, K_a, d_a, s_a, causal_a)
//     s_j = scale·<q[b, x, h], k[b, j, hk]> + rpb[h, rpb index per axis]   (rpb optional)
//     out[b, x, h] = Σ_j softmax(s)_j · v[b, j, hk];  lse[b, x, h] = log Σ_j e^{s_j}
// Layout heads-last, as NATTEN >= 0.20: q [B, X.., H, P], k [B, X.., Hkv, P], v [B, X.., Hkv, Pv],
// out [B, X.., H, Pv], lse [B, X.., H]; rpb [H, 2K_1 - 1, ..., 2K_R - 1] (NATTEN <= 0.17's table).

#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "tokenmix/attention/neighborhood_types.hpp"
#include "tokenmix/core/shape.hpp"

namespace tokenmix::ref {

template <int R, class Acc = double>
Tensor<float, R + 3> neighborhood_attention(const ConstTensorView<float, R + 3>& q, const ConstTensorView<float, R + 3>& k,
                                            const ConstTensorView<float, R + 3>& v,
                                            const attention::NeighborhoodParams<R>& params,
                                            const std::optional<ConstTensorView<float, R + 1>>& rpb = std::nullopt,
                                            Tensor<float, R + 2>* lse = nullptr) {
  constexpr const char* op = "ref::neighborhood_attention";
  const Index B = q.dimension(0), H = q.dimension(R + 1), P = q.dimension(R + 2);
  const Index Hkv = k.dimension(R + 1), Pv = v.dimension(R + 2);
  const std::array<Index, R> extent = attention::detail::check_neighborhood_qkv<R>(op, q, k, v);
  Index tokens = 1;
  for (const Index e : extent) tokens *= e;
  attention::detail::check_neighborhood_params<R>(op, params, extent);
  if (rpb) attention::detail::check_neighborhood_rpb<R>(op, *rpb, params, H);
  const Acc scale = params.scale ? Acc(*params.scale) : Acc(1) / std::sqrt(Acc(P));
  const attention::detail::NeighborhoodGrid<R> grid(q, params);
  std::array<Index, R + 3> out_dims;  // [B, X.., H, Pv]
  for (int a = 0; a < R + 3; ++a) out_dims[std::size_t(a)] = q.dimension(a);
  out_dims[std::size_t(R + 2)] = Pv;
  Tensor<float, R + 3> out(out_dims);
  if (lse) {
    std::array<Index, R + 2> dims;
    for (int a = 0; a < R + 2; ++a) dims[std::size_t(a)] = q.dimension(a);
    *lse = Tensor<float, R + 2>(dims);
  }
  std::vector<Acc> logit, acc(static_cast<std::size_t>(Pv));
  std::vector<Index> key_token;
  for (Index b = 0; b < B; ++b)
    for (Index t = 0; t < tokens; ++t) {
      for (Index h = 0; h < H; ++h) {
        const Index hk = h / (H / Hkv);
        logit.clear(), key_token.clear();
        grid.for_each_slot(t, params, [&](Index, Index j, Index r) {
          Acc dot = 0;
          for (Index d = 0; d < P; ++d)
            dot += Acc(q.data()[((b * tokens + t) * H + h) * P + d]) * Acc(k.data()[((b * tokens + j) * Hkv + hk) * P + d]);
          Acc s = scale * dot;
          if (rpb) s += Acc(rpb->data()[h * (rpb->size() / H) + r]);
          logit.push_back(s), key_token.push_back(j);
        });
        Acc m = -std::numeric_limits<Acc>::infinity();
        for (const Acc s : logit) m = std::max(m, s);
        Acc sum = 0;
        std::fill(acc.begin(), acc.end(), Acc(0));
        for (std::size_t n2 = 0; n2 < logit.size(); ++n2) {
          const Acc e = std::exp(logit[n2] - m);
          sum += e;
          const float* vj = v.data() + ((b * tokens + key_token[n2]) * Hkv + hk) * Pv;
          for (Index d = 0; d < Pv; ++d) acc[std::size_t(d)] += e * Acc(vj[d]);
        }
        float* o = out.data() + ((b * tokens + t) * H + h) * Pv;
        for (Index d = 0; d < Pv; ++d) o[d] = static_cast<float>(acc[std::size_t(d)] / sum);
        if (lse) lse->data()[(b * tokens + t) * H + h] = static_cast<float>(m + std::log(sum));
      }
    }
  return out;
}

}  // namespace tokenmix::ref
