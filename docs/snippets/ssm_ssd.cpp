// docs/operators.md: ssm::ssd and ssm::ssd_state_update.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, L = 100, H = 4, P = 16, G = 1, N = 32;
  // snippet-begin
  Tensor<float, 4> x(Bt, L, H, P), B(Bt, L, G, N), C(Bt, L, G, N);
  Tensor<float, 3> dt(Bt, L, H);                        // raw dt, before dt_bias / softplus
  Tensor<float, 1> A(H), skip(H), dt_bias(H);           // A = -exp(A_log), one per head
  fill(x, -1, 1, 1), fill(B, -1, 1, 2), fill(C, -1, 1, 3), fill(dt, -1, 1, 4);
  fill(A, -2, -0.5f, 5), fill(skip, 0, 1, 6), fill(dt_bias, -2, 0, 7);

  ssm::SsdOptions o;
  o.D = skip, o.dt_bias = dt_bias, o.dt_softplus = true;   // algorithm auto, chunk 64
  ssm::SsdResult r = ssm::ssd(x, dt, A, B, C, o);        // r.out [B, L, H, P], r.final_state [B, H, P, N]

  Tensor<float, 3> x1(Bt, H, P), B1(Bt, G, N), C1(Bt, G, N);  // decode: one token
  Tensor<float, 2> dt1(Bt, H);
  fill(x1, -1, 1, 8), fill(B1, -1, 1, 9), fill(C1, -1, 1, 10), fill(dt1, -1, 1, 11);
  Tensor<float, 3> y1 = ssm::ssd_state_update(r.final_state, x1, dt1, A, B1, C1, o);  // [B, H, P]
  // snippet-end
  return y1.dimension(2) == P ? 0 : 1;
}
