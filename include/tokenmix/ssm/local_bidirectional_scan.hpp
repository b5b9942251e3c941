#pragma once
// ssm::local_bidirectional_scan: LBMamba's locally bi-directional selective scan (spec/vision_ssm.md
// §5), vectorized, fused into the selective scan's kernel (ssm/selective_scan_kernel.hpp).
//
//   auto r = tokenmix::ssm::local_bidirectional_scan(u, delta, A, B, C, options, /*window M=*/8);
//   // r.out [B, L, D], r.last_state [B, D, N] (the forward state hL after the last token)
//
// With a_t = exp(Δ_t A), b_t = Δ_t B_t u_t (Δ = delta, + delta_bias, softplus'd if asked, as in
// selective_scan):
//   hL_t = a_t hL_{t-1} + b_t              the global forward scan (hL_{-1} = initial_state or 0)
//   hR_t = a_t hR_{t+1} + b_t              backwards inside t's window only (0 after its last token)
//   h_t  = hL_t + hR_t - b_t,   out_t = (<C_t, h_t> + D u_t) · silu(z_t)   (skip and gate optional)
// Windows are the aligned blocks [kM, (k+1)M) of the original order; the last one may be partial.
// M = 1 is exactly selective_scan (hR_t = b_t), and runs it. LBMamba's CUDA build uses M = 4 for
// L <= 128, 8 for L <= 256, 16 otherwise (kNItems); expose the same to match its checkpoints.
// Shapes, options and validation are selective_scan's (ssm/selective_scan_types.hpp), plus M >= 1.
// last_state is hL after the last token, so a sequence can be continued by selective_scan / another
// call whose first window starts at the split (split at a multiple of M for the windows to agree).
// Oracle: reference/local_bidirectional_scan.hpp (plain loops from the definition above).
//
// Speed: one pass over memory. The forward kernel keeps each window's decays a_t and dt·u_t (M·(N+3)
// vectors, L1-resident) and runs the reverse pass over them when the window completes: no second
// exp, ~3 extra FMA-pipe operations per (t, n). Measured 1.17-1.21x the forward scan at M = 4..16
// on an idle Xeon (AVX-512), 1.31-1.39x on the busy 2-vCPU Zen 5 VM (counter vs_forward of
// bench/ssm/local_bidirectional_scan_bench.cpp). Scratch per thread: ~max(16, M)·(N + 3) vectors.

#include "tokenmix/ssm/selective_scan.hpp"

namespace tokenmix::ssm {

// View-based core: writes out [B, L, D] and, if last_state is not null, last_state [B, D, N].
// `out` must not overlap u, delta or z.
template <class Arch = simd::default_arch>
void local_bidirectional_scan(const ConstTensorView<float, 3>& u,      // [B, L, D]
                              const ConstTensorView<float, 3>& delta,  // [B, L, D]
                              const ConstTensorView<float, 2>& A,      // [D, N]
                              const ScanOperand& B,                    // [B, L, G, N], [B, L, N] or [D, N]
                              const ScanOperand& C,                    // [B, L, G, N], [B, L, N] or [D, N]
                              const SelectiveScanOptions& options,
                              Index window,                            // M >= 1
                              TensorView<float, 3> out,                // [B, L, D]
                              TensorView<float, 3>* last_state) {      // [B, D, N] or nullptr
  constexpr const char* op = "local_bidirectional_scan";
  detail::check_window_arg(op, window);
  const SelectiveScanShape s = detail::check_selective_scan_args(op, u, delta, A, B, C, options, &out, last_state);
  detail::SelectiveScanProblem problem = detail::make_scan_problem(s, u, delta, A, B, C, options, out, last_state);
  if (window == 1) return detail::run_scan_kernel<Arch, detail::ScanMode::forward>(problem, options.device);
  problem.window = window;
  detail::run_scan_kernel<Arch, detail::ScanMode::local_bidirectional>(problem, options.device);
}

// Convenience overload: allocates and returns the output and the last (forward) state.
template <class Arch = simd::default_arch>
SelectiveScanResult local_bidirectional_scan(const ConstTensorView<float, 3>& u,
                                             const ConstTensorView<float, 3>& delta,
                                             const ConstTensorView<float, 2>& A, const ScanOperand& B,
                                             const ScanOperand& C, const SelectiveScanOptions& options,
                                             Index window) {
  constexpr const char* op = "local_bidirectional_scan";
  detail::check_window_arg(op, window);
  return detail::scan_into_new_result(op, u, delta, A, B, C, options,
                                      [&](TensorView<float, 3>& out, TensorView<float, 3>& last) {
                                        ssm::local_bidirectional_scan<Arch>(u, delta, A, B, C, options, window,
                                                                            out, &last);
                                      });
}

}  // namespace tokenmix::ssm
