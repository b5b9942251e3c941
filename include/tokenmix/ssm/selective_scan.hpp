#pragma once
// ssm::selective_scan: the Mamba-1 selective scan (mamba_ssm's selective_scan_fn), vectorized.
//
//   auto r = tokenmix::ssm::selective_scan(u, delta, A, B, C, options);  // r.out [B, L, D], r.last_state [B, D, N]
//
// Equations and citations: reference/selective_scan.hpp (the oracle, same signature in tokenmix::ref).
// Shapes (token-major; mamba_ssm's u/delta/z are [B, D, L]): ssm/selective_scan_types.hpp.
// Every option of selective_scan_fn: D skip, z gate, delta_bias, delta_softplus (threshold 20),
// grouped B/C (G divides D), time-invariant B/C [D, N], plus an initial state (mamba_ssm#233) and the
// last state, so a long sequence can be scanned in pieces: scan(x1 ‖ x2) == scan(x2, scan(x1).last_state).
// L = 0 is valid: empty output, last_state = initial_state (or zeros).
// NaN or inf in the inputs propagates to the outputs of the channels it touches; nothing else.
// Complex A (legacy S4D mode of selective_scan_fn) is not supported.
//
// ssm::selective_scan_states (below) also returns every state h_t, [B, L, D, N];
// ssm::local_bidirectional_scan (ssm/local_bidirectional_scan.hpp) is LBMamba's scan. All three run
// the one kernel of ssm/selective_scan_kernel.hpp (compile-time modes).
//
// Speed: see README (B=1, L=2048, D=1536, N=16). The architecture is the one the including TU is
// compiled for (simd::default_arch); build with -march=native or at least -mavx2 -mfma.

#include <algorithm>
#include <vector>

#include "tokenmix/core/threading.hpp"
#include "tokenmix/ssm/selective_scan_kernel.hpp"
#include "tokenmix/ssm/selective_scan_types.hpp"

namespace tokenmix::ssm {

namespace detail {

// The kernel's view of one validated call (states / window set by the callers that use them).
inline SelectiveScanProblem make_scan_problem(const SelectiveScanShape& s, const ConstTensorView<float, 3>& u,
                                              const ConstTensorView<float, 3>& delta,
                                              const ConstTensorView<float, 2>& A, const ScanOperand& B,
                                              const ScanOperand& C, const SelectiveScanOptions& options,
                                              TensorView<float, 3>& out, TensorView<float, 3>* last_state) {
  return SelectiveScanProblem{
      s.batch, s.length, s.channels, s.state, s.groups,
      u.data(), delta.data(), A.data(), B.data(), C.data(), B.time_invariant(), C.time_invariant(),
      options.D ? options.D->data() : nullptr,
      options.z ? options.z->data() : nullptr,
      options.delta_bias ? options.delta_bias->data() : nullptr,
      options.delta_softplus,
      options.initial_state ? options.initial_state->data() : nullptr,
      out.data(), last_state ? last_state->data() : nullptr};
}

// Runs SelectiveScanKernel<Arch, Mode> over every work item of problems[0, count), split across the
// device's threads: each thread takes the same share of every problem's items, and runs its shares
// interleaved chunk by chunk when count > 1 (the kernel's run_items: the forward mode, problems that
// write disjoint out values).
template <class Arch, ScanMode Mode>
void run_scan_kernel(const SelectiveScanProblem* layout_problems, int count, const Eigen::ThreadPoolDevice* device) {
  using Kernel = SelectiveScanKernel<Arch, Mode>;
  constexpr bool kForward = Mode == ScanMode::forward || Mode == ScanMode::forward_resampled;
  TOKENMIX_CHECK(count >= 1 && count <= Kernel::kMaxInterleaved && (count == 1 || Mode == ScanMode::forward),
                 "selective scan kernel: ", count, " problems interleaved, expected 1, or up to ",
                 Kernel::kMaxInterleaved, " in the forward mode");
  SelectiveScanProblem problems[Kernel::kMaxInterleaved];
  Index most_items = 0;
  std::size_t floats = 0;
  for (int k = 0; k < count; ++k) {
    const SelectiveScanProblem problem = problems[k] = with_dense_layout_defaults(layout_problems[k]);
    TOKENMIX_CHECK(kForward || (!problem.path && !problem.param_path && !problem.out_accumulate &&
                                problem.rows_per_batch == problem.length),
                   "selective scan kernel: the grid layout is implemented for the forward modes only");
    TOKENMIX_CHECK((Mode == ScanMode::forward_resampled) == (problem.resample_taps != nullptr) &&
                       (!problem.resample_taps || (!problem.path && !problem.out_accumulate &&
                                                   !problem.B_time_invariant && !problem.C_time_invariant)),
                   "selective scan kernel: a resample needs the forward_resampled mode (and that mode a resample), "
                   "the dense layout, out written (not accumulated) and selective B and C");
    most_items = std::max(most_items, Kernel::num_items(problem));
    floats += static_cast<std::size_t>(Kernel::scratch_floats(problem));
  }
  tokenmix::detail::parallel_for(device, most_items, [&](Index first, Index last) {
    // 64-byte aligned: the kernel's per-block vectors must not straddle cache lines. Kept per thread
    // and grown only: a fresh zeroed buffer per call (up to ~300 KiB) cost 10% of a small scan, and
    // the 2-D scans call the kernel once per direction. The kernel writes every value before it
    // reads it, so old contents are harmless.
    thread_local std::vector<float, xsimd::aligned_allocator<float, 64>> scratch;
    if (scratch.size() < floats) scratch.resize(floats);
    typename Kernel::ItemRange ranges[Kernel::kMaxInterleaved];
    for (int k = 0; k < count; ++k) {  // the same share of each problem's items
      const Index items = Kernel::num_items(problems[k]);
      ranges[k] = {first * items / most_items, last * items / most_items};
    }
    Kernel::run_items(problems, count, ranges, scratch.data());
  });
}

template <class Arch, ScanMode Mode>
void run_scan_kernel(const SelectiveScanProblem& problem, const Eigen::ThreadPoolDevice* device) {
  run_scan_kernel<Arch, Mode>(&problem, 1, device);
}

}  // namespace detail

// View-based core: writes out [B, L, D] and, if last_state is not null, last_state [B, D, N].
// `out` must not overlap u, delta or z. Arch selects the kernel instantiation (tests run every arch).
template <class Arch = simd::default_arch>
void selective_scan(const ConstTensorView<float, 3>& u,      // [B, L, D]
                    const ConstTensorView<float, 3>& delta,  // [B, L, D]
                    const ConstTensorView<float, 2>& A,      // [D, N]
                    const ScanOperand& B,                    // [B, L, G, N], [B, L, N] or [D, N]
                    const ScanOperand& C,                    // [B, L, G, N], [B, L, N] or [D, N]
                    const SelectiveScanOptions& options,
                    TensorView<float, 3> out,                // [B, L, D]
                    TensorView<float, 3>* last_state) {      // [B, D, N] or nullptr
  const SelectiveScanShape s =
      detail::check_selective_scan_args("selective_scan", u, delta, A, B, C, options, &out, last_state);
  detail::run_scan_kernel<Arch, detail::ScanMode::forward>(
      detail::make_scan_problem(s, u, delta, A, B, C, options, out, last_state), options.device);
}

// Convenience overload: allocates and returns the output and the last state.
template <class Arch = simd::default_arch>
SelectiveScanResult selective_scan(const ConstTensorView<float, 3>& u, const ConstTensorView<float, 3>& delta,
                                   const ConstTensorView<float, 2>& A, const ScanOperand& B, const ScanOperand& C,
                                   const SelectiveScanOptions& options = {}) {
  return detail::scan_into_new_result("selective_scan", u, delta, A, B, C, options,
                                      [&](TensorView<float, 3>& out, TensorView<float, 3>& last) {
                                        ssm::selective_scan<Arch>(u, delta, A, B, C, options, out, &last);
                                      });
}

// ---- selective_scan_states: the same scan, also returning every state --------------------------
//
//   auto r = tokenmix::ssm::selective_scan_states(u, delta, A, B, C, options);
//   // r.out [B, L, D] (bitwise selective_scan's), r.states [B, L, D, N], r.last_state [B, D, N]
//
// states[b, t, d, n] = h_t[n] of channel d, the state after token t (after the update, before the C
// readout): states[:, L - 1] == last_state. For A2SSM and Spatial-Mamba (spec/vision_ssm.md §8),
// which need the states rather than the outputs: Spatial-Mamba scans "without C and D", i.e. pass any
// C (e.g. a time-invariant [D, N] of ones) and ignore out, or leave D out of the options. C, D, z,
// delta_bias and initial_state mean exactly what they mean for selective_scan.
// Memory: states holds N·L floats per channel (B·L·D·N in all: 38.5 MB for L = 3136, D = 192,
// N = 16), written once; the scan becomes store-bandwidth bound for large N. The layout is
// token-major like everything else (Spatial-Mamba's code uses [B, D, N, L]).
// states must not overlap any input or the other outputs.

// View-based core: writes out [B, L, D], states [B, L, D, N] and, if not null, last_state [B, D, N].
template <class Arch = simd::default_arch>
void selective_scan_states(const ConstTensorView<float, 3>& u,      // [B, L, D]
                           const ConstTensorView<float, 3>& delta,  // [B, L, D]
                           const ConstTensorView<float, 2>& A,      // [D, N]
                           const ScanOperand& B,                    // [B, L, G, N], [B, L, N] or [D, N]
                           const ScanOperand& C,                    // [B, L, G, N], [B, L, N] or [D, N]
                           const SelectiveScanOptions& options,
                           TensorView<float, 3> out,                // [B, L, D]
                           TensorView<float, 4> states,             // [B, L, D, N]
                           TensorView<float, 3>* last_state) {      // [B, D, N] or nullptr
  constexpr const char* op = "selective_scan_states";
  const SelectiveScanShape s = detail::check_selective_scan_args(op, u, delta, A, B, C, options, &out, last_state);
  detail::check_states_arg(op, s, u, delta, A, B, C, options, out, states, last_state);
  detail::SelectiveScanProblem problem = detail::make_scan_problem(s, u, delta, A, B, C, options, out, last_state);
  problem.states = states.data();
  detail::run_scan_kernel<Arch, detail::ScanMode::states>(problem, options.device);
}

// Convenience overload: allocates and returns out, states and the last state.
template <class Arch = simd::default_arch>
SelectiveScanStatesResult selective_scan_states(const ConstTensorView<float, 3>& u,
                                                const ConstTensorView<float, 3>& delta,
                                                const ConstTensorView<float, 2>& A, const ScanOperand& B,
                                                const ScanOperand& C, const SelectiveScanOptions& options = {}) {
  return detail::scan_states_into_new_result(
      "selective_scan_states", u, delta, A, B, C, options,
      [&](TensorView<float, 3>& out, TensorView<float, 4>& states, TensorView<float, 3>& last) {
        ssm::selective_scan_states<Arch>(u, delta, A, B, C, options, out, states, &last);
      });
}

}  // namespace tokenmix::ssm
