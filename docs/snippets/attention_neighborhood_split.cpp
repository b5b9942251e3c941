// docs/operators.md: attention::neighborhood_qk / attention::neighborhood_av.
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
  Tensor<float, 5> logits = attention::neighborhood_qk(q, k, np, ConstTensorView<float, 3>(rpb));  // [B, X, Y, H, K*K]
  Tensor<float, 5> w = logits.exp();                    // softmax over the K*K slots (last axis)
  Tensor<float, 5> sums = w.sum(std::array<int, 1>{4}).reshape(std::array<Index, 5>{Bt, X, Y, H, 1})
                              .broadcast(std::array<Index, 5>{1, 1, 1, 1, K * K});
  w = w / sums;
  Tensor<float, 5> out = attention::neighborhood_av(w, v, np);  // [B, X, Y, H, Pv]
  // snippet-end
  return out.dimension(4) == P ? 0 : 1;
}
