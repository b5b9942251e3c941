// docs/operators.md: blocks::layer_norm.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, H = 8, W = 8, C = 32;
  // snippet-begin
  Tensor<float, 4> x(Bt, H, W, C);                      // channels-last map
  Tensor<float, 1> weight(C), bias(C);
  fill(x, 90, 110, 1), fill(weight, 0.5f, 1.5f, 2), fill(bias, -0.1f, 0.1f, 3);

  ConstTensorView<float, 2> rows(x.data(), Bt * H * W, C);            // LayerNorm over the last axis
  Tensor<float, 2> y = blocks::layer_norm(rows, weight, bias, /*eps=*/1e-6);  // A2Mamba's LayerNorm2d
  // snippet-end
  return y.dimension(1) == C ? 0 : 1;
}
