// docs/operators.md: hybrid::SeqBoatLayer.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, L = 60;
  // snippet-begin
  hybrid::SeqBoatConfig c;                              // causal, softmax, 'simple' bias, prenorm LayerNorm
  c.d_model = 32, c.zdim = 16, c.hdim = 64, c.ndim = 4, c.window = 8, c.max_positions = 128;
  const Index D = c.d_model, Dp = c.ema_rows(), N = c.ndim, Z = c.zdim, E = c.hdim;
  hybrid::SeqBoatWeights w;                             // the released state dict, '.' -> '_'
  w.norm_weight = rnd(1, 1, D), w.norm_bias = rnd(0, 0, D), w.q_router_temp = rnd(0, 0, 1);
  w.move_delta = rnd(-1, 1, Dp, N, 1), w.move_alpha = rnd(-1, 1, Dp, N, 1), w.move_beta = rnd(-1, 1, Dp, N, 1);
  w.move_gamma = rnd(-1, 1, Dp, N), w.move_omega = rnd(-1, 1, D);
  w.hx_proj_weight = rnd(-.2f, .2f, 2 + D, D), w.hx_proj_bias = rnd(0, 0, 2 + D);
  w.mx_proj_weight = rnd(-.2f, .2f, Z + 2 * E, D), w.mx_proj_bias = rnd(0, 0, Z + 2 * E);
  w.gamma = rnd(-1, 1, 2, Z), w.beta = rnd(-1, 1, 2, Z), w.rel_pos_bias = rnd(-.1f, .1f, c.bias_entries());
  w.h_proj_weight = rnd(-.2f, .2f, D, E), w.h_proj_bias = rnd(0, 0, D);

  hybrid::SeqBoatLayer layer(c, w);
  Tensor<float, 3> x = rnd(-1, 1, Bt, L, D);
  Tensor<float, 3> y = layer.forward(x);                // [B, L, D]; layer.activated()[b] tokens used the GAU
  hybrid::SeqBoatState st = hybrid::make_seqboat_state(c, Bt);  // streaming (causal layers)
  Tensor<float, 3> prefill = layer.forward(x, &st);
  Tensor<float, 2> x_t = rnd(-1, 1, Bt, D), y_t(Bt, D);
  layer.step(x_t, st, TensorView<float, 2>(y_t.data(), y_t.dimensions()));  // O(window) per token
  // snippet-end
  return y.dimension(2) == D && prefill.dimension(1) == L ? 0 : 1;
}
