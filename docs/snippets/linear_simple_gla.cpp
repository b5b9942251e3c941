// docs/operators.md: linear::simple_gla (+ simple_gla_step).
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, L = 128, H = 4, K = 32, V = 32;
  // snippet-begin
  Tensor<float, 4> q(Bt, L, H, K), k(Bt, L, H, K), v(Bt, L, H, V);
  Tensor<float, 3> g(Bt, L, H);                          // per-token log decay (<= 0)
  fill(q, -1, 1, 1), fill(k, -1, 1, 2), fill(v, -1, 1, 3), fill(g, -0.2f, 0, 4);

  linear::SimpleGlaOptions o;                            // scale 1/sqrt(K); or o.g_gamma [H]
  o.g = g;
  linear::LinearResult r = linear::simple_gla(q, k, v, o);  // r.out [B, L, H, V], r.final_state [B, H, K, V]

  Tensor<float, 3> q1(Bt, H, K), k1(Bt, H, K), v1(Bt, H, V);
  Tensor<float, 2> g1(Bt, H);
  fill(q1, -1, 1, 5), fill(k1, -1, 1, 6), fill(v1, -1, 1, 7), fill(g1, -0.2f, 0, 8);
  linear::LinearStepOptions so;
  so.g = g1;
  Tensor<float, 3> o1 = linear::simple_gla_step(TensorView<float, 4>(r.final_state.data(), r.final_state.dimensions()),
                                                q1, k1, v1, so);  // [B, H, V], state in place
  // snippet-end
  return o1.dimension(2) == V ? 0 : 1;
}
