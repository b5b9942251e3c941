// docs/operators.md: attention::neighborhood_attention.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, X = 16, Y = 16, H = 2, P = 32;
  // snippet-begin
  Tensor<float, 5> q(Bt, X, Y, H, P), k(Bt, X, Y, H, P), v(Bt, X, Y, H, P);  // heads-last, as natten.na2d
  fill(q, -1, 1, 1), fill(k, -1, 1, 2), fill(v, -1, 1, 3);

  attention::NeighborhoodParams<2> np;
  np.kernel_size = {7, 7}, np.dilation = {1, 2};       // stride, causal per axis too; scale 1/sqrt(P)
  Tensor<float, 4> lse;                                 // optional [B, X, Y, H]
  Tensor<float, 5> o = attention::neighborhood_attention(q, k, v, np, std::nullopt, &lse);  // [B, X, Y, H, Pv]

  Tensor<float, 3> rpb(H, 2 * 7 - 1, 2 * 7 - 1);        // NATTEN <= 0.17's relative positional bias
  fill(rpb, -0.1f, 0.1f, 4);
  Tensor<float, 5> o2 = attention::neighborhood_attention(q, k, v, np, ConstTensorView<float, 3>(rpb));
  // snippet-end
  return o.dimension(4) == P && o2.dimension(4) == P ? 0 : 1;
}
