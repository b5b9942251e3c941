// docs/operators.md: blocks::linear.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 2, L = 16, K = 64, N = 96;
  // snippet-begin
  Tensor<float, 3> x(Bt, L, K);
  Tensor<float, 2> weight(N, K);                        // nn.Linear layout [out_features, in_features]
  Tensor<float, 1> bias(N);
  fill(x, -1, 1, 1), fill(weight, -0.1f, 0.1f, 2), fill(bias, -0.1f, 0.1f, 3);

  ConstTensorView<float, 2> rows(x.data(), Bt * L, K);  // flatten [B, L, K] -> [B·L, K]
  Tensor<float, 2> y = blocks::linear(rows, weight, optional_view(bias));  // [B·L, N], packs on the fly
  blocks::PackedLinear packed(weight);                  // pack once for repeated calls (prefill, decode)
  Tensor<float, 2> y2 = blocks::linear(rows, packed, optional_view(bias));
  // snippet-end
  return y.dimension(1) == N && y2.dimension(0) == Bt * L ? 0 : 1;
}
