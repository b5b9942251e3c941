// docs/operators.md: ssm::local_bidirectional_scan.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, L = 100, D = 32, N = 16;
  // snippet-begin
  Tensor<float, 3> u(Bt, L, D), delta(Bt, L, D), z(Bt, L, D);
  Tensor<float, 2> A(D, N);
  Tensor<float, 3> B(Bt, L, N), C(Bt, L, N);
  Tensor<float, 1> skip(D);
  fill(u, -1, 1, 1), fill(delta, -1, 1, 2), fill(z, -1, 1, 3), fill(A, -2, -0.1f, 4);
  fill(B, -1, 1, 5), fill(C, -1, 1, 6), fill(skip, 0, 1, 7);

  ssm::SelectiveScanOptions o;                 // selective_scan's options
  o.D = skip, o.z = z, o.delta_softplus = true;
  const Index M = 16;                          // window: LBMamba uses 4 (L <= 128), 8 (L <= 256), 16
  ssm::SelectiveScanResult r = ssm::local_bidirectional_scan(u, delta, A, B, C, o, M);  // r.out [B, L, D]
  // snippet-end
  return r.out.dimension(2) == D ? 0 : 1;
}
