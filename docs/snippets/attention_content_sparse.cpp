// docs/operators.md: content-dependent sparse attention (DMA, HAX, block top-k, SSA).
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, L = 256, H = 2, Hkv = 2, P = 32;
  Tensor<float, 4> q(Bt, L, H, P), k(Bt, L, Hkv, P), v(Bt, L, Hkv, P), q2(Bt, L, 1, 16), k2(Bt, L, 1, 16);
  Tensor<float, 4> v2(Bt, L, 1, P);
  Tensor<float, 2> W_dt(Hkv, Hkv * P), R(16, 6), scores(Bt, L);
  Tensor<float, 1> A_dma(Hkv), alpha(H);
  Tensor<float, 3> f(Bt, H, L);
  fill(q, -1, 1, 1), fill(k, -1, 1, 2), fill(v, -1, 1, 3), fill(q2, -1, 1, 4), fill(k2, -1, 1, 5);
  fill(v2, -1, 1, 6), fill(W_dt, -0.1f, 0.1f, 7), fill(R, -1, 1, 8), fill(scores, -1, 1, 9);
  fill(A_dma, -1, 0, 10), fill(alpha, -1, 1, 11), fill(f, -1, 1, 12);
  // snippet-begin
  using namespace tokenmix::attention;
  AttentionOptions causal;
  causal.causal = true;
  Tensor<float, 3> bias = dma_key_bias(v, W_dt, A_dma);                      // [B, Hkv, Lk]
  AttentionResult dma = dynamic_mask_attention(q, k, v, bias, /*window=*/64, causal);
  AttentionResult hax = hax_attention(q2, k2, v2, R, scores, /*budget=*/64);  // one head, causal
  BlockTopKParams tk;
  tk.block = 32, tk.top_k = 2;                                               // + sink and local blocks
  AttentionResult topk = block_topk_attention(q, k, v, tk);
  Tensor<float, 3> tau = ssa_query_temperature(f, alpha);                    // [B, H, Lq]
  AttentionResult ssa = selective_attention(q, k, v, tau, std::nullopt, causal);
  // snippet-end
  return dma.out.dimension(1) == L && hax.out.dimension(1) == L && topk.out.dimension(1) == L &&
                 ssa.out.dimension(1) == L
             ? 0
             : 1;
}
