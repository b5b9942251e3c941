// docs/operators.md: linear::retention.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, L = 128, H = 4, K = 32, V = 64;
  // snippet-begin
  Tensor<float, 4> q(Bt, L, H, K), k(Bt, L, H, K), v(Bt, L, H, V);
  fill(q, -1, 1, 1), fill(k, -1, 1, 2), fill(v, -1, 1, 3);

  // RetNet: simple_gla with g_gamma[h] = log(1 - 2^(-5-h)); scale 1/sqrt(K) as fla's chunk_retention
  linear::LinearResult r = linear::retention(q, k, v);   // r.out [B, L, H, V], r.final_state [B, H, K, V]
  linear::SimpleGlaOptions o;
  o.initial_state = r.final_state;                        // continue the sequence
  linear::LinearResult next = linear::retention(q, k, v, o);
  // snippet-end
  return next.out.dimension(3) == V ? 0 : 1;
}
