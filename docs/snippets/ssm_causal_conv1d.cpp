// docs/operators.md: ssm::causal_conv1d and ssm::causal_conv1d_update.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 2, L = 64, D = 32, K = 4;
  // snippet-begin
  Tensor<float, 3> x(Bt, L, D);                         // [B, L, D]
  Tensor<float, 2> weight(D, K);                        // nn.Conv1d weight [D, 1, K] squeezed
  Tensor<float, 1> bias(D);
  fill(x, -1, 1, 1), fill(weight, -0.5f, 0.5f, 2), fill(bias, -0.1f, 0.1f, 3);

  ssm::CausalConv1dOptions o;
  o.bias = bias, o.activation_silu = true;
  ssm::CausalConv1dResult r = ssm::causal_conv1d(x, weight, o);  // r.out [B, L, D], r.final_state [B, D, K-1]

  Tensor<float, 2> x_t(Bt, D);                          // the next token
  fill(x_t, -1, 1, 4);
  Tensor<float, 2> y_t = ssm::causal_conv1d_update(x_t, r.final_state, weight, o);  // state shifted in place
  // snippet-end
  return y_t.dimension(1) == D ? 0 : 1;
}
