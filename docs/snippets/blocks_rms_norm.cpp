// docs/operators.md: blocks::rms_norm (and gated_rms_norm).
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index M = 32, D = 48;
  // snippet-begin
  Tensor<float, 2> x(M, D), gate(M, D);                 // flatten leading dims to [M, D]
  Tensor<float, 1> weight(D);
  fill(x, -1, 1, 1), fill(gate, -1, 1, 2), fill(weight, 0.5f, 1.5f, 3);

  Tensor<float, 2> y = blocks::rms_norm(x, weight, /*eps=*/1e-5);     // MambaRMSNorm
  Tensor<float, 2> yg(M, D);                            // Mamba-2's gated norm, groups of 16 channels
  blocks::gated_rms_norm(x, gate, weight, 1e-5, /*group_size=*/16, TensorView<float, 2>(yg.data(), M, D));
  // snippet-end
  return y.dimension(1) == D ? 0 : 1;
}
