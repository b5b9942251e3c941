// docs/operators.md: ssm::selective_state_update.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 2, D = 32, N = 16, G = 1;
  // snippet-begin
  Tensor<float, 3> state(Bt, D, N);                     // e.g. selective_scan's last_state
  Tensor<float, 2> x(Bt, D), dt(Bt, D), z(Bt, D), A(D, N);
  Tensor<float, 3> B(Bt, G, N), C(Bt, G, N);            // mamba_ssm's [B, N] is [B, 1, N]
  Tensor<float, 1> skip(D), dt_bias(D);
  state.setZero(), fill(x, -1, 1, 1), fill(dt, -1, 1, 2), fill(z, -1, 1, 3), fill(A, -2, -0.1f, 4);
  fill(B, -1, 1, 5), fill(C, -1, 1, 6), fill(skip, 0, 1, 7), fill(dt_bias, -2, 0, 8);

  ssm::SelectiveStateUpdateOptions o;
  o.D = skip, o.z = z, o.dt_bias = dt_bias, o.dt_softplus = true;
  Tensor<float, 2> y = ssm::selective_state_update(state, x, dt, A, B, C, o);  // y [B, D]; state updated
  // snippet-end
  return y.dimension(1) == D ? 0 : 1;
}
