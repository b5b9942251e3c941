// docs/operators.md: hybrid::H3Layer.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 2, L = 40;
  // snippet-begin
  hybrid::H3Config c{/*d_model=*/64, /*d_state=*/16, /*head_dim=*/1};
  const Index D = c.d_model, N = c.d_state, Hh = c.heads(), M = c.modes();
  hybrid::H3Weights w;                                  // H3's state dict, '.' -> '_'
  w.q_proj_weight = rnd(-.1f, .1f, D, D), w.k_proj_weight = rnd(-.1f, .1f, D, D), w.v_proj_weight = rnd(-.1f, .1f, D, D);
  w.q_proj_bias = rnd(0, 0, D), w.k_proj_bias = rnd(0, 0, D), w.v_proj_bias = rnd(0, 0, D);
  w.ssm_k_kernel_B = rnd(-1, 1, D, N), w.ssm_k_kernel_C = rnd(-1, 1, D, N), w.ssm_k_D = rnd(-1, 1, D);
  w.kernel_log_dt = rnd(-4, -2, Hh), w.kernel_inv_A_real = rnd(-1, 0, Hh, M), w.kernel_A_imag = rnd(0, 3, Hh, M);
  w.kernel_B = rnd(-1, 1, Hh, M, 2), w.kernel_C = rnd(-1, 1, Hh, M, 2), w.D = rnd(-1, 1, Hh);
  w.output_linear_weight = rnd(-.1f, .1f, D, D), w.output_linear_bias = rnd(0, 0, D);

  hybrid::H3Layer h3(c, w);                             // packs projections, discretises the SSMs once
  Tensor<float, 3> u = rnd(-1, 1, Bt, L, D);
  Tensor<float, 3> y = h3.forward(u);                   // [B, L, D] from zero state
  hybrid::H3State state = hybrid::make_h3_state(c, Bt);
  Tensor<float, 3> prefill = h3.forward(u, &state);     // continues from / advances state
  Tensor<float, 2> u_t = rnd(-1, 1, Bt, D), y_t(Bt, D);
  h3.step(u_t, state, TensorView<float, 2>(y_t.data(), y_t.dimensions()));  // decode one token
  // snippet-end
  return y.dimension(2) == D && prefill.dimension(1) == L ? 0 : 1;
}
