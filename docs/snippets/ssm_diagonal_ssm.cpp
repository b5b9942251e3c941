// docs/operators.md: ssm::diagonal_ssm, ssm::diagonal_ssm_step and ssm::s4d_discretize.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, L = 128, D = 16, Hp = 16, M = 8;
  // snippet-begin
  Tensor<float, 3> A(Hp, M, 2), Bc(Hp, M, 2), Cc(Hp, M, 2);  // continuous-time, complex as (re, im)
  Tensor<float, 1> dt(Hp), skip(Hp);
  fill(A, -1, -0.1f, 1), fill(Bc, -1, 1, 2), fill(Cc, -1, 1, 3), fill(dt, 0.001f, 0.1f, 4), fill(skip, 0, 1, 5);
  ssm::DiagonalSsmParams p = ssm::s4d_discretize(A, Bc, Cc, dt, ssm::S4dDiscretization::bilinear);

  Tensor<float, 3> x(Bt, L, D);
  fill(x, -1, 1, 6);
  ssm::DiagonalSsmOptions o;
  o.D = skip;
  ssm::DiagonalSsmResult r = ssm::diagonal_ssm(x, p.dA, p.C, o);  // r.out [B, L, D], r.final_state [B, D, M, 2]

  Tensor<float, 2> x_t(Bt, D), y_t(Bt, D);                        // decode: state updated in place
  fill(x_t, -1, 1, 7);
  ssm::diagonal_ssm_step(x_t, TensorView<float, 4>(r.final_state.data(), r.final_state.dimensions()), p.dA, p.C, o,
                         TensorView<float, 2>(y_t.data(), y_t.dimensions()));
  // snippet-end
  return y_t.dimension(1) == D ? 0 : 1;
}
