#pragma once
// Oracle of LBMamba's locally bi-directional selective scan: plain loops straight from the
// definition, no SIMD, no threads, accumulation in Acc (double in tests). NOT the kernel's
// decomposition (excl_t = a_t·r_{t+1}); the tests cross-check both against the spec's identity.
//
// Source: Zhang et al., "LBMamba: Locally Bi-directional Mamba" (2025), cvlab-stonybrook/LBMamba@5215551
// (csrc/selective_scan/selective_scan_fwd_kernel.cuh, cuda_validation/grad_derivation.md), as written
// in spec/vision_ssm.md §5, for the token-major layout (see ssm/selective_scan_types.hpp).
// Per batch b, channel d (group g = d / (D/G)), state index n, time t, window M:
//   dt[t]    = softplus?(delta[b,t,d] + delta_bias[d])            (as ref::selective_scan)
//   a_t[n]   = exp(dt[t] * A[d,n]),   b_t[n] = dt[t] * B[b,t,g,n] * u[b,t,d]
//   hL_t     = a_t * hL_{t-1} + b_t                  forward over all t, hL_{-1} = initial_state or 0
//   hR_t     = a_t * hR_{t+1} + b_t                  backward within t's window [kM, min((k+1)M, L)),
//                                                    hR = 0 after the window's last token
//   h_t      = hL_t + hR_t - b_t
//   out[b,t,d] = (sum_n C[b,t,g,n] * h_t[n] + u[b,t,d] * D[d]) * silu(z[b,t,d])   (skip, gate optional)
// last_state[b,d,n] = hL after the last token (= initial_state when L = 0).

#include <algorithm>
#include <cmath>
#include <vector>

#include "tokenmix/ssm/selective_scan_types.hpp"

namespace tokenmix::ref {

template <class Acc = double>
void local_bidirectional_scan(const ConstTensorView<float, 3>& u,      // [B, L, D]
                              const ConstTensorView<float, 3>& delta,  // [B, L, D]
                              const ConstTensorView<float, 2>& A,      // [D, N]
                              const ssm::ScanOperand& B,               // [B, L, G, N] or [D, N]
                              const ssm::ScanOperand& C,               // [B, L, G, N] or [D, N]
                              const ssm::SelectiveScanOptions& options,
                              Index window,                            // M >= 1
                              TensorView<float, 3> out,                // [B, L, D]
                              TensorView<float, 3>* last_state) {      // [B, D, N] or nullptr
  constexpr const char* op = "ref::local_bidirectional_scan";
  ssm::detail::check_window_arg(op, window);
  const ssm::SelectiveScanShape s =
      ssm::detail::check_selective_scan_args(op, u, delta, A, B, C, options, &out, last_state);
  const Index L = s.length, D = s.channels, N = s.state, M = window;

  auto operand_at = [&](const ssm::ScanOperand& X, Index b, Index t, Index d, Index n) -> Acc {
    if (X.time_invariant()) return X.data()[d * N + n];
    const Index G = X.groups(), g = d / (D / G);
    return X.data()[((b * L + t) * G + g) * N + n];
  };

  const auto LN = static_cast<std::size_t>(L * N);
  std::vector<Acc> a(LN), bt(LN), hL(LN), hR(LN);  // [L, N] each, one channel at a time
  for (Index b = 0; b < s.batch; ++b) {
    for (Index d = 0; d < D; ++d) {
      // a_t, b_t
      for (Index t = 0; t < L; ++t) {
        Acc dt = delta(b, t, d);
        if (options.delta_bias) dt += Acc((*options.delta_bias)(d));
        if (options.delta_softplus) dt = dt > Acc(20) ? dt : std::log1p(std::exp(dt));
        for (Index n = 0; n < N; ++n) {
          a[t * N + n] = std::exp(dt * Acc(A(d, n)));
          bt[t * N + n] = dt * operand_at(B, b, t, d, n) * Acc(u(b, t, d));
        }
      }
      // hL: the global forward scan.
      for (Index n = 0; n < N; ++n) {
        Acc h = options.initial_state ? Acc((*options.initial_state)(b, d, n)) : Acc(0);
        for (Index t = 0; t < L; ++t) {
          h = a[t * N + n] * h + bt[t * N + n];
          hL[t * N + n] = h;
        }
        if (last_state) (*last_state)(b, d, n) = static_cast<float>(h);
      }
      // hR: backwards inside each aligned window [s, e).
      for (Index start = 0; start < L; start += M) {
        const Index end = std::min(L, start + M);
        for (Index n = 0; n < N; ++n) {
          Acc h = 0;
          for (Index t = end - 1; t >= start; --t) {
            h = a[t * N + n] * h + bt[t * N + n];
            hR[t * N + n] = h;
          }
        }
      }
      // h = hL + hR - b, readout, skip, gate.
      for (Index t = 0; t < L; ++t) {
        Acc y = 0;
        for (Index n = 0; n < N; ++n) {
          const Acc h = hL[t * N + n] + hR[t * N + n] - bt[t * N + n];
          y += operand_at(C, b, t, d, n) * h;
        }
        const Acc x = u(b, t, d);
        if (options.D) y += x * Acc((*options.D)(d));
        if (options.z) {
          const Acc zv = (*options.z)(b, t, d);
          y *= zv / (Acc(1) + std::exp(-zv));  // silu(z) = z * sigmoid(z)
        }
        out(b, t, d) = static_cast<float>(y);
      }
    }
  }
}

// Convenience overload returning the output and the last (forward) state.
template <class Acc = double>
ssm::SelectiveScanResult local_bidirectional_scan(const ConstTensorView<float, 3>& u,
                                                  const ConstTensorView<float, 3>& delta,
                                                  const ConstTensorView<float, 2>& A, const ssm::ScanOperand& B,
                                                  const ssm::ScanOperand& C,
                                                  const ssm::SelectiveScanOptions& options, Index window) {
  constexpr const char* op = "ref::local_bidirectional_scan";
  ssm::detail::check_window_arg(op, window);
  return ssm::detail::scan_into_new_result(op, u, delta, A, B, C, options,
                                           [&](TensorView<float, 3>& out, TensorView<float, 3>& last) {
                                             ref::local_bidirectional_scan<Acc>(u, delta, A, B, C, options, window,
                                                                                out, &last);
                                           });
}

}  // namespace tokenmix::ref
