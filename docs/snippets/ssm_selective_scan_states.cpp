// docs/operators.md: ssm::selective_scan_states.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, L = 16, D = 8, N = 4;
  // snippet-begin
  Tensor<float, 3> u(Bt, L, D), delta(Bt, L, D);
  Tensor<float, 2> A(D, N), ones(D, N);                 // ones: a time-invariant C [D, N]
  Tensor<float, 3> B(Bt, L, N);                         // [B, L, N]: one group
  fill(u, -1, 1, 1), fill(delta, -1, 1, 2), fill(A, -2, -0.1f, 3), fill(B, -1, 1, 4);
  ones.setConstant(1.0f);

  ssm::SelectiveScanOptions opt;
  opt.delta_softplus = true;
  ssm::SelectiveScanStatesResult r = ssm::selective_scan_states(u, delta, A, B, ones, opt);
  // r.states [B, L, D, N]: h_t after every token; r.out as selective_scan; r.last_state [B, D, N]
  const float h_last = r.states(0, L - 1, 0, 0);        // == r.last_state(0, 0, 0)
  // snippet-end
  return h_last == r.last_state(0, 0, 0) ? 0 : 1;
}
