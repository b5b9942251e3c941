// docs/operators.md: the 2-D scans (ssm::cross_scan_2d and the ssm::selective_scan_2d engine).
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, H = 8, W = 8, D = 16, N = 4;
  // snippet-begin
  // VMamba SS2D: 4 directions (RM, CM, rev RM, rev CM), parameter block k for direction k
  Tensor<float, 4> u(Bt, H, W, D), delta(Bt, H, W, 4 * D), z(Bt, H, W, D);
  Tensor<float, 2> A(4 * D, N);
  Tensor<float, 5> B(Bt, H, W, 4, N), C(Bt, H, W, 4, N);
  Tensor<float, 1> skip(4 * D), dt_bias(4 * D);
  fill(u, -1, 1, 1), fill(delta, -1, 1, 2), fill(z, -1, 1, 3), fill(A, -2, -0.1f, 4);
  fill(B, -1, 1, 5), fill(C, -1, 1, 6), fill(skip, 0, 1, 7), fill(dt_bias, -2, 0, 8);

  ssm::SelectiveScan2dOptions o;
  o.D = skip, o.delta_bias = dt_bias, o.delta_softplus = true, o.z = z;
  Tensor<float, 4> y = ssm::cross_scan_2d(u, delta, A, B, C, o);          // [B, H, W, D]
  // the same through the engine, with the directions spelled out (any ScanPath works)
  Tensor<float, 4> y2 = ssm::selective_scan_2d(u, delta, A, B, C, ssm::cross_scan_directions(H, W, D), o, D);
  // snippet-end
  return y.dimension(3) == D && y2.dimension(3) == D ? 0 : 1;
}
