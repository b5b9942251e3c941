// docs/operators.md: attention::neighborhood_qk / neighborhood_attention_weights / neighborhood_av.
#include <cmath>

#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, X = 14, Y = 14, H = 2, P = 16, K = 7;
  // snippet-begin
  Tensor<float, 5> q(Bt, X, Y, H, P), k(Bt, X, Y, H, P), v(Bt, X, Y, H, P);
  Tensor<float, 3> rpb(H, 2 * K - 1, 2 * K - 1);
  fill(q, -1, 1, 1), fill(k, -1, 1, 2), fill(v, -1, 1, 3), fill(rpb, -0.1f, 0.1f, 4);

  auto np = attention::NeighborhoodParams<2>::uniform(K, /*dilation=*/2);
  const ConstTensorView<float, 3> bias(rpb);
  Tensor<float, 5> logits = attention::neighborhood_qk(q, k, np, bias);  // [B, X, Y, H, K*K]
  // softmax(logits) over the K*K slots, computed in the kernel (no logits pass): MASS's attention maps
  Tensor<float, 5> w = attention::neighborhood_attention_weights(q, k, np, bias);
  Tensor<float, 5> out = attention::neighborhood_av(w, v, np);  // [B, X, Y, H, Pv]
  // snippet-end
  float row_sum = 0;  // one query's weights sum to 1
  for (Index s = 0; s < K * K; ++s) row_sum += w(0, 5, 5, 1, s);
  return out.dimension(4) == P && std::abs(row_sum - 1.0f) < 1e-5f && std::isfinite(logits(0, 5, 5, 1, 3)) ? 0 : 1;
}
