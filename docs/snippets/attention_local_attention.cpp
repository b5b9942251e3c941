// docs/operators.md: attention::local_attention.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, L = 200, H = 2, P = 32, Pv = 64, Mpos = 256;
  // snippet-begin
  Tensor<float, 4> q(Bt, L, H, P), k(Bt, L, H, P), v(Bt, L, H, Pv);
  Tensor<float, 2> bias(H, 2 * Mpos - 1);                // rel_pos_bias [H, 2M-1]
  Tensor<Index, 2> pos(Bt, L);                           // e.g. original positions of kept tokens
  fill(q, -1, 1, 1), fill(k, -1, 1, 2), fill(v, -1, 1, 3), fill(bias, -0.1f, 0.1f, 4);
  for (Index t = 0; t < L; ++t) pos(0, t) = t + t / 4;

  attention::LocalAttentionOptions la;
  la.window = 32, la.causal = true, la.kind = attention::LocalAttentionKind::softmax;
  la.rel_pos_bias = bias, la.positions = pos;
  Tensor<float, 4> o = attention::local_attention(q, k, v, la);   // [B, L, H, Pv]
  // snippet-end
  return o.dimension(3) == Pv ? 0 : 1;
}
