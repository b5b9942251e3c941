// docs/operators.md: linear::lightning_attention (+ _step).
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, L = 128, H = 8, K = 32, V = 32;
  // snippet-begin
  Tensor<float, 4> q(Bt, L, H, K), k(Bt, L, H, K), v(Bt, L, H, V);
  fill(q, -1, 1, 1), fill(k, -1, 1, 2), fill(v, -1, 1, 3);

  std::vector<float> slopes = linear::tnl_slopes(H, /*layer=*/0, /*num_layers=*/24);  // or fla_lightning_slopes
  linear::LightningOptions lo;                          // scale 1, block 32 by default
  lo.slopes.emplace(slopes.data(), H);
  linear::LinearResult r = linear::lightning_attention(q, k, v, lo);  // r.out [B, L, H, V]

  Tensor<float, 3> q1(Bt, H, K), k1(Bt, H, K), v1(Bt, H, V);          // decode one token
  fill(q1, -1, 1, 4), fill(k1, -1, 1, 5), fill(v1, -1, 1, 6);
  linear::LightningStepOptions so;
  so.slopes = lo.slopes;
  TensorView<float, 4> state(r.final_state.data(), r.final_state.dimensions());  // [B, H, K, V], in place
  Tensor<float, 3> o1 = linear::lightning_attention_step(state, q1, k1, v1, so);  // [B, H, V]
  // snippet-end
  return o1.dimension(2) == V ? 0 : 1;
}
