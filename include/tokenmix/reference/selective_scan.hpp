#pragma once
// Oracle of the Mamba-1 selective scan: plain loops in the order of the equations, no SIMD, no
// threads, accumulation in Acc (double in tests).
//
// Source: Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces" (2023), and
// state-spaces/mamba mamba_ssm/ops/selective_scan_interface.py::selective_scan_ref, extended with an
// initial state (mamba_ssm#233) and written for the token-major layout (see ssm/selective_scan_types.hpp).
// Per batch b, channel d (group g = d / (D/G)), state index n, time t:
//   dt[t]      = delta[b,t,d] + delta_bias[d]                   (bias optional)
//   dt[t]      = softplus(dt[t])  if delta_softplus             (x > 20 -> x, as torch's threshold)
//   h[n]       = exp(dt[t] * A[d,n]) * h[n] + dt[t] * B[b,t,g,n] * u[b,t,d]     (h starts at initial_state or 0)
//   y          = sum_n h[n] * C[b,t,g,n]
//   out[b,t,d] = (y + u[b,t,d] * D[d]) * silu(z[b,t,d])         (skip and gate optional; skip before gate)
// Time-invariant B or C ([D, N]) use B[d,n] at every t. last_state[b,d,n] = h[n] after the last token.
// selective_scan_states also writes states[b,t,d,n] = h[n] after token t's update ([B, L, D, N]).

#include <cmath>
#include <vector>

#include "tokenmix/ssm/selective_scan_types.hpp"

namespace tokenmix::ref {

namespace detail {

// The loops of both oracles; states (nullable) [B, L, D, N]. Arguments validated by the caller.
template <class Acc>
void selective_scan_loops(const ssm::SelectiveScanShape& s, const ConstTensorView<float, 3>& u,
                          const ConstTensorView<float, 3>& delta, const ConstTensorView<float, 2>& A,
                          const ssm::ScanOperand& B, const ssm::ScanOperand& C,
                          const ssm::SelectiveScanOptions& options, TensorView<float, 3>& out,
                          TensorView<float, 4>* states, TensorView<float, 3>* last_state) {
  const Index L = s.length, D = s.channels, N = s.state;

  // B or C value at (b, t, d, n) for either operand form.
  auto operand_at = [&](const ssm::ScanOperand& X, Index b, Index t, Index d, Index n) -> Acc {
    if (X.time_invariant()) return X.data()[d * N + n];
    const Index G = X.groups(), g = d / (D / G);
    return X.data()[((b * L + t) * G + g) * N + n];
  };

  std::vector<Acc> h(static_cast<std::size_t>(N));
  for (Index b = 0; b < s.batch; ++b) {
    for (Index d = 0; d < D; ++d) {
      for (Index n = 0; n < N; ++n)
        h[n] = options.initial_state ? Acc((*options.initial_state)(b, d, n)) : Acc(0);
      for (Index t = 0; t < L; ++t) {
        Acc dt = delta(b, t, d);
        if (options.delta_bias) dt += Acc((*options.delta_bias)(d));
        if (options.delta_softplus) dt = dt > Acc(20) ? dt : std::log1p(std::exp(dt));
        const Acc x = u(b, t, d);
        Acc y = 0;
        for (Index n = 0; n < N; ++n) {
          const Acc dA = std::exp(dt * Acc(A(d, n)));
          h[n] = dA * h[n] + dt * operand_at(B, b, t, d, n) * x;
          y += h[n] * operand_at(C, b, t, d, n);
        }
        if (states)
          for (Index n = 0; n < N; ++n) (*states)(b, t, d, n) = static_cast<float>(h[n]);
        if (options.D) y += x * Acc((*options.D)(d));
        if (options.z) {
          const Acc zv = (*options.z)(b, t, d);
          y *= zv / (Acc(1) + std::exp(-zv));  // silu(z) = z * sigmoid(z)
        }
        out(b, t, d) = static_cast<float>(y);
      }
      if (last_state)
        for (Index n = 0; n < N; ++n) (*last_state)(b, d, n) = static_cast<float>(h[n]);
    }
  }
}

}  // namespace detail

template <class Acc = double>
void selective_scan(const ConstTensorView<float, 3>& u,      // [B, L, D]
                    const ConstTensorView<float, 3>& delta,  // [B, L, D]
                    const ConstTensorView<float, 2>& A,      // [D, N]
                    const ssm::ScanOperand& B,               // [B, L, G, N] or [D, N]
                    const ssm::ScanOperand& C,               // [B, L, G, N] or [D, N]
                    const ssm::SelectiveScanOptions& options,
                    TensorView<float, 3> out,                // [B, L, D]
                    TensorView<float, 3>* last_state) {      // [B, D, N] or nullptr
  const ssm::SelectiveScanShape s = ssm::detail::check_selective_scan_args(
      "ref::selective_scan", u, delta, A, B, C, options, &out, last_state);
  detail::selective_scan_loops<Acc>(s, u, delta, A, B, C, options, out, nullptr, last_state);
}

// Convenience overload returning the output and the last state.
template <class Acc = double>
ssm::SelectiveScanResult selective_scan(const ConstTensorView<float, 3>& u, const ConstTensorView<float, 3>& delta,
                                        const ConstTensorView<float, 2>& A, const ssm::ScanOperand& B,
                                        const ssm::ScanOperand& C, const ssm::SelectiveScanOptions& options = {}) {
  return ssm::detail::scan_into_new_result("ref::selective_scan", u, delta, A, B, C, options,
                                           [&](TensorView<float, 3>& out, TensorView<float, 3>& last) {
                                             ref::selective_scan<Acc>(u, delta, A, B, C, options, out, &last);
                                           });
}

// Oracle of ssm::selective_scan_states: selective_scan that also writes every state h_t.
template <class Acc = double>
void selective_scan_states(const ConstTensorView<float, 3>& u,      // [B, L, D]
                           const ConstTensorView<float, 3>& delta,  // [B, L, D]
                           const ConstTensorView<float, 2>& A,      // [D, N]
                           const ssm::ScanOperand& B,               // [B, L, G, N] or [D, N]
                           const ssm::ScanOperand& C,               // [B, L, G, N] or [D, N]
                           const ssm::SelectiveScanOptions& options,
                           TensorView<float, 3> out,                // [B, L, D]
                           TensorView<float, 4> states,             // [B, L, D, N]
                           TensorView<float, 3>* last_state) {      // [B, D, N] or nullptr
  constexpr const char* op = "ref::selective_scan_states";
  const ssm::SelectiveScanShape s =
      ssm::detail::check_selective_scan_args(op, u, delta, A, B, C, options, &out, last_state);
  ssm::detail::check_states_arg(op, s, u, delta, A, B, C, options, out, states, last_state);
  detail::selective_scan_loops<Acc>(s, u, delta, A, B, C, options, out, &states, last_state);
}

template <class Acc = double>
ssm::SelectiveScanStatesResult selective_scan_states(const ConstTensorView<float, 3>& u,
                                                     const ConstTensorView<float, 3>& delta,
                                                     const ConstTensorView<float, 2>& A, const ssm::ScanOperand& B,
                                                     const ssm::ScanOperand& C,
                                                     const ssm::SelectiveScanOptions& options = {}) {
  return ssm::detail::scan_states_into_new_result(
      "ref::selective_scan_states", u, delta, A, B, C, options,
      [&](TensorView<float, 3>& out, TensorView<float, 4>& states, TensorView<float, 3>& last) {
        ref::selective_scan_states<Acc>(u, delta, A, B, C, options, out, states, &last);
      });
}

}  // namespace tokenmix::ref
