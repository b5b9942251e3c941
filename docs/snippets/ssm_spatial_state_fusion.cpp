// docs/operators.md: ssm::spatial_state_fusion.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, H = 12, W = 12, D = 16, N = 4;
  // snippet-begin
  Tensor<float, 3> u(Bt, H * W, D), delta(Bt, H * W, D), B(Bt, H * W, N);
  Tensor<float, 2> A(D, N), ones(D, N);
  fill(u, -1, 1, 1), fill(delta, -1, 1, 2), fill(B, -1, 1, 3), fill(A, -2, -0.1f, 4), ones.setConstant(1);
  ssm::SelectiveScanOptions so;
  so.delta_softplus = true;
  ssm::SelectiveScanStatesResult s = ssm::selective_scan_states(u, delta, A, B, ones, so);  // raster scan

  Tensor<float, 4> kernels(3, D, 3, 3), C(Bt, H, W, N);  // one 3x3 kernel per dilation and channel
  Tensor<float, 1> alpha(3), skip(D);
  fill(kernels, -0.3f, 0.3f, 5), fill(C, -1, 1, 6), fill(alpha, 0, 1, 7), fill(skip, 0, 1, 8);
  ssm::SpatialStateFusionOptions o;                       // dilations {1, 3, 5} by default
  o.D = skip, o.u = ConstTensorView<float, 4>(u.data(), Bt, H, W, D);
  Tensor<float, 4> y = ssm::spatial_state_fusion(ConstTensorView<float, 5>(s.states.data(), Bt, H, W, D, N),
                                                 kernels, alpha, C, o);  // y [B, H, W, D]
  // snippet-end
  return y.dimension(3) == D ? 0 : 1;
}
