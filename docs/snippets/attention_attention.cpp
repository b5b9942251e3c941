// docs/operators.md: attention::attention (dense, prefill and decode).
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, L = 96, H = 4, Hkv = 2, P = 32;
  // snippet-begin
  Tensor<float, 4> q(Bt, L, H, P), k(Bt, L, Hkv, P), v(Bt, L, Hkv, P);  // GQA: H a multiple of Hkv
  fill(q, -1, 1, 1), fill(k, -1, 1, 2), fill(v, -1, 1, 3);

  attention::AttentionOptions ao;
  ao.causal = true;                                    // scale 1/sqrt(P) by default
  attention::AttentionResult r = attention::attention(q, k, v, ao);  // r.out [B, Lq, H, Pv], r.lse [B, H, Lq]

  Tensor<float, 4> q1(Bt, 1, H, P);                    // decode: Lq = 1, q_offset defaults to Lk - 1
  fill(q1, -1, 1, 4);
  attention::AttentionResult step = attention::attention(q1, k, v, ao);
  // snippet-end
  return r.out.dimension(1) == L && step.out.dimension(1) == 1 ? 0 : 1;
}
