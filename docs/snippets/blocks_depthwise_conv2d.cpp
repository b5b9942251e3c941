// docs/operators.md: blocks::depthwise_conv2d.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, H = 20, W = 20, C = 32, K = 5;
  // snippet-begin
  Tensor<float, 4> x(Bt, H, W, C);                      // channels-last image
  Tensor<float, 3> weight(C, K, K);                     // Conv2d(C, C, K, padding=K//2, groups=C) weight [C, 1, K, K]
  Tensor<float, 1> bias(C);
  fill(x, -1, 1, 1), fill(weight, -0.2f, 0.2f, 2), fill(bias, -0.1f, 0.1f, 3);

  blocks::DepthwiseConv2dOptions o;
  o.bias = bias, o.activation_silu = true;
  Tensor<float, 4> y = blocks::depthwise_conv2d(x, weight, o);  // [B, H, W, C], 'same' size, zero padding
  // snippet-end
  return y.dimension(3) == C ? 0 : 1;
}
