#pragma once
// ssm::selective_state_update: one decode step of the Mamba-1 selective scan (mamba_ssm's
// selective_state_update), vectorized.
//
//   Tensor<float, 2> y = tokenmix::ssm::selective_state_update(state, x, dt, A, B, C, options);
//       // state [B, D, N] updated in place, y [B, D]
//
// Equations and citations: reference/selective_state_update.hpp (same signature in tokenmix::ref).
// Shapes: ssm/selective_state_update_types.hpp. Same options and numerics as ssm::selective_scan
// (D skip, z gate, dt_bias, dt_softplus with threshold 20, grouped or time-invariant B/C): feeding a
// sequence token by token through selective_state_update, starting from scan's initial_state,
// gives bitwise the same outputs and final state as ssm::selective_scan (with an FMA arch; see the
// kernel header). The state is the scan's initial_state / last_state layout, so prefill hands its
// last_state to decode as is.
// NaN or inf in the inputs propagates to the outputs and states of the channels it touches.

#include <vector>

#include "tokenmix/core/threading.hpp"
#include "tokenmix/ssm/selective_state_update_kernel.hpp"
#include "tokenmix/ssm/selective_state_update_types.hpp"

namespace tokenmix::ssm {

// View-based core: updates state [B, D, N] in place and writes out [B, D].
template <class Arch = simd::default_arch>
void selective_state_update(TensorView<float, 3> state,           // [B, D, N]
                            const ConstTensorView<float, 2>& x,   // [B, D]
                            const ConstTensorView<float, 2>& dt,  // [B, D]
                            const ConstTensorView<float, 2>& A,   // [D, N]
                            const StepOperand& B,                 // [B, G, N] or [D, N]
                            const StepOperand& C,                 // [B, G, N] or [D, N]
                            const SelectiveStateUpdateOptions& options,
                            TensorView<float, 2> out) {           // [B, D]
  const SelectiveStateUpdateShape s = detail::check_selective_state_update_args(
      "selective_state_update", state, x, dt, A, B, C, options, &out);
  const detail::SelectiveStateUpdateProblem problem{
      s.batch, s.channels, s.state, s.groups, state.data(), x.data(), dt.data(), A.data(), B.data(), C.data(),
      B.time_invariant(), C.time_invariant(),
      options.D ? options.D->data() : nullptr,
      options.z ? options.z->data() : nullptr,
      options.dt_bias ? options.dt_bias->data() : nullptr,
      options.dt_softplus, out.data()};
  using Kernel = detail::SelectiveStateUpdateKernel<Arch>;
  tokenmix::detail::parallel_for(options.device, Kernel::num_items(problem), [&](Index first, Index last) {
    std::vector<float, xsimd::aligned_allocator<float, 64>> scratch(
        static_cast<std::size_t>(Kernel::scratch_floats(problem)));
    Kernel::run_items(problem, first, last, scratch.data());
  });
}

// Convenience overload: updates state in place and returns out [B, D].
template <class Arch = simd::default_arch>
Tensor<float, 2> selective_state_update(Tensor<float, 3>& state, const ConstTensorView<float, 2>& x,
                                        const ConstTensorView<float, 2>& dt, const ConstTensorView<float, 2>& A,
                                        const StepOperand& B, const StepOperand& C,
                                        const SelectiveStateUpdateOptions& options = {}) {
  TensorView<float, 3> st(state.data(), state.dimensions());
  detail::check_selective_state_update_args("selective_state_update", st, x, dt, A, B, C, options, nullptr);
  Tensor<float, 2> out(x.dimension(0), x.dimension(1));
  ssm::selective_state_update<Arch>(st, x, dt, A, B, C, options, TensorView<float, 2>(out.data(), out.dimensions()));
  return out;
}

}  // namespace tokenmix::ssm
