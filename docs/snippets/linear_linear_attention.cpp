// docs/operators.md: linear::linear_attention.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, L = 128, H = 4, K = 32, V = 32;
  // snippet-begin
  Tensor<float, 4> q(Bt, L, H, K), k(Bt, L, H, K), v(Bt, L, H, V);   // heads-last, as fla
  fill(q, -1, 1, 1), fill(k, -1, 1, 2), fill(v, -1, 1, 3);

  linear::LinearAttentionOptions o;
  o.causal = true, o.feature_map = linear::FeatureMap::elu_plus_one, o.normalize = true;
  linear::LinearResult r = linear::linear_attention(q, k, v, o);
  // r.out [B, L, H, V], r.final_state [B, H, K, V], r.final_normalizer [B, H, K]
  o.initial_state = r.final_state, o.initial_normalizer = r.final_normalizer;  // continue later
  linear::LinearResult next = linear::linear_attention(q, k, v, o);
  // snippet-end
  return next.out.dimension(3) == V ? 0 : 1;
}
