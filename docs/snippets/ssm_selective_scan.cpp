// docs/operators.md: ssm::selective_scan (the lines between the snippet markers are shown there).
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 2, L = 64, D = 32, N = 16, G = 1;
  // snippet-begin
  Tensor<float, 3> u(Bt, L, D), delta(Bt, L, D), z(Bt, L, D);  // token-major [B, L, D]
  Tensor<float, 2> A(D, N);                                     // A = -exp(A_log)
  Tensor<float, 4> B(Bt, L, G, N), C(Bt, L, G, N);
  Tensor<float, 1> skip(D), dt_bias(D);
  fill(u, -1, 1, 1), fill(delta, -1, 1, 2), fill(z, -1, 1, 3), fill(A, -2, -0.1f, 4);
  fill(B, -1, 1, 5), fill(C, -1, 1, 6), fill(skip, 0, 1, 7), fill(dt_bias, -2, 0, 8);

  ssm::SelectiveScanOptions opt;
  opt.D = skip, opt.z = z, opt.delta_bias = dt_bias, opt.delta_softplus = true;
  ssm::SelectiveScanResult r = ssm::selective_scan(u, delta, A, B, C, opt);  // r.out [B, L, D]
  opt.initial_state = r.last_state;            // [B, D, N]: continue the sequence in a later call
  ssm::SelectiveScanResult next = ssm::selective_scan(u, delta, A, B, C, opt);
  // snippet-end
  return r.out.dimension(1) == L && next.last_state.dimension(2) == N ? 0 : 1;
}
