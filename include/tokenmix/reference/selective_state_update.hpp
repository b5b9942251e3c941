#pragma once
// Oracle of the selective-scan decode step: plain loops, no SIMD, no threads, accumulation in Acc.
//
// Source: state-spaces/mamba mamba_ssm/ops/triton/selective_state_update.py::selective_state_update_ref
// (single-head form), i.e. one token of reference/selective_scan.hpp. Per batch b, channel d
// (group g = d / (D/G)), state index n:
//   dt        = dt[b,d] + dt_bias[d]                 (bias optional)
//   dt        = softplus(dt)  if dt_softplus         (x > 20 -> x, torch's threshold)
//   state[b,d,n] = exp(dt * A[d,n]) * state[b,d,n] + dt * B[b,g,n] * x[b,d]
//   y         = sum_n state[b,d,n] * C[b,g,n]
//   out[b,d]  = (y + x[b,d] * D[d]) * silu(z[b,d])   (skip and gate optional)
// Time-invariant B or C ([D, N]) use B[d, n].

#include <cmath>
#include <vector>

#include "tokenmix/ssm/selective_state_update_types.hpp"

namespace tokenmix::ref {

template <class Acc = double>
void selective_state_update(TensorView<float, 3> state,           // [B, D, N], updated in place
                            const ConstTensorView<float, 2>& x,   // [B, D]
                            const ConstTensorView<float, 2>& dt,  // [B, D]
                            const ConstTensorView<float, 2>& A,   // [D, N]
                            const ssm::StepOperand& B,            // [B, G, N] or [D, N]
                            const ssm::StepOperand& C,            // [B, G, N] or [D, N]
                            const ssm::SelectiveStateUpdateOptions& options,
                            TensorView<float, 2> out) {           // [B, D]
  const ssm::SelectiveStateUpdateShape s = ssm::detail::check_selective_state_update_args(
      "ref::selective_state_update", state, x, dt, A, B, C, options, &out);
  const Index D = s.channels, N = s.state;
  auto operand_at = [&](const ssm::StepOperand& X, Index b, Index d, Index n) -> Acc {
    if (X.time_invariant()) return X.data()[d * N + n];
    const Index G = X.groups(), g = d / (D / G);
    return X.data()[(b * G + g) * N + n];
  };
  for (Index b = 0; b < s.batch; ++b)
    for (Index d = 0; d < D; ++d) {
      Acc delta = dt(b, d);
      if (options.dt_bias) delta += Acc((*options.dt_bias)(d));
      if (options.dt_softplus) delta = delta > Acc(20) ? delta : std::log1p(std::exp(delta));
      const Acc xv = x(b, d);
      Acc y = 0;
      for (Index n = 0; n < N; ++n) {
        const Acc h = std::exp(delta * Acc(A(d, n))) * Acc(state(b, d, n)) + delta * operand_at(B, b, d, n) * xv;
        state(b, d, n) = static_cast<float>(h);
        y += h * operand_at(C, b, d, n);
      }
      if (options.D) y += xv * Acc((*options.D)(d));
      if (options.z) {
        const Acc zv = (*options.z)(b, d);
        y *= zv / (Acc(1) + std::exp(-zv));
      }
      out(b, d) = static_cast<float>(y);
    }
}

// Convenience overload: updates state in place and returns out [B, D].
template <class Acc = double>
Tensor<float, 2> selective_state_update(Tensor<float, 3>& state, const ConstTensorView<float, 2>& x,
                                        const ConstTensorView<float, 2>& dt, const ConstTensorView<float, 2>& A,
                                        const ssm::StepOperand& B, const ssm::StepOperand& C,
                                        const ssm::SelectiveStateUpdateOptions& options = {}) {
  TensorView<float, 3> st(state.data(), state.dimensions());
  ssm::detail::check_selective_state_update_args("ref::selective_state_update", st, x, dt, A, B, C, options, nullptr);
  Tensor<float, 2> out(x.dimension(0), x.dimension(1));
  ref::selective_state_update<Acc>(st, x, dt, A, B, C, options, TensorView<float, 2>(out.data(), out.dimensions()));
  return out;
}

}  // namespace tokenmix::ref
