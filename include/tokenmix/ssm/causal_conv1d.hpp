#pragma once
// ssm::causal_conv1d: the depthwise causal conv1d of Mamba's mixer (Dao-AILab/causal-conv1d's
// causal_conv1d_fn), vectorized, and ssm::causal_conv1d_update, its one-token decode step.
//
//   ssm::CausalConv1dOptions o;  o.bias = b, o.activation_silu = true;
//   auto r = tokenmix::ssm::causal_conv1d(x, weight, o);
//       // r.out [B, L, D], r.final_state [B, D, K-1]
//   auto y = tokenmix::ssm::causal_conv1d_update(x_t, conv_state, weight, options);  // y [B, D]
//
// Equations and citations: reference/causal_conv1d.hpp (the oracles, same signatures in tokenmix::ref).
// Shapes (token-major; causal_conv1d_fn's x is [B, D, L]) and the conv-state convention
// (K-1 past raw inputs; mamba_ssm / HF's K-entry conv_state maps as ours = theirs[..., 1:]):
// ssm/causal_conv1d_types.hpp. Any K >= 1 (K = 1 has an empty [B, D, 0] state); K = 4 is specialised.
// Long sequences in pieces: conv(x1 ‖ x2) == conv(x2, initial_state = conv(x1).final_state), bitwise;
// for the block's prefill -> decode hand-off pass the same [B, D, K-1] buffer as initial_state and
// final_state (allowed: each channel's state is read before it is written) and then as conv_state.
// Token-by-token causal_conv1d_update reproduces causal_conv1d bitwise (same per-lane arithmetic).
// L = 0 is valid: empty output, final_state = initial_state (or zeros).
// NaN or inf in x propagates to the outputs of its channel within the next K tokens; nothing else.

#include <vector>

#include "tokenmix/core/threading.hpp"
#include "tokenmix/ssm/causal_conv1d_kernel.hpp"
#include "tokenmix/ssm/causal_conv1d_types.hpp"

namespace tokenmix::ssm {

// View-based core: writes out [B, L, D] and, if final_state is not null, final_state [B, D, K-1]
// (which may be the same buffer as options.initial_state). `out` must not overlap x.
template <class Arch = simd::default_arch>
void causal_conv1d(const ConstTensorView<float, 3>& x,       // [B, L, D]
                   const ConstTensorView<float, 2>& weight,  // [D, K]
                   const CausalConv1dOptions& options,
                   TensorView<float, 3> out,                 // [B, L, D]
                   TensorView<float, 3>* final_state) {      // [B, D, K-1] or nullptr
  const CausalConv1dShape s =
      detail::check_causal_conv1d_args("causal_conv1d", x, weight, options, &out, final_state);
  const detail::CausalConv1dProblem problem{s.batch, s.length, s.channels, s.kernel_size,
                                            x.data(), weight.data(),
                                            options.bias ? options.bias->data() : nullptr,
                                            options.activation_silu,
                                            options.initial_state ? options.initial_state->data() : nullptr,
                                            out.data(), final_state ? final_state->data() : nullptr};
  using Kernel = detail::CausalConv1dKernel<Arch>;
  tokenmix::detail::parallel_for(options.device, Kernel::num_items(problem), [&](Index first, Index last) {
    std::vector<float, xsimd::aligned_allocator<float, 64>> scratch(
        static_cast<std::size_t>(Kernel::scratch_floats(problem.kernel_size)));
    Kernel::run_items(problem, first, last, scratch.data());
  });
}

// Convenience overload: allocates and returns the output and the final state.
template <class Arch = simd::default_arch>
CausalConv1dResult causal_conv1d(const ConstTensorView<float, 3>& x, const ConstTensorView<float, 2>& weight,
                                 const CausalConv1dOptions& options = {}) {
  detail::check_causal_conv1d_args("causal_conv1d", x, weight, options, nullptr, nullptr);  // before allocating
  CausalConv1dResult r{Tensor<float, 3>(x.dimension(0), x.dimension(1), x.dimension(2)),
                       Tensor<float, 3>(x.dimension(0), x.dimension(2), weight.dimension(1) - 1)};
  TensorView<float, 3> out(r.out.data(), r.out.dimensions());
  TensorView<float, 3> last(r.final_state.data(), r.final_state.dimensions());
  ssm::causal_conv1d<Arch>(x, weight, options, out, &last);
  return r;
}

// One decode step: x [B, D] is the new token; conv_state [B, D, K-1] (the K-1 previous raw inputs,
// oldest first) is shifted by one and x appended, in place; out [B, D] = silu?(bias + conv).
// options.initial_state must be empty. `out` must not overlap x or conv_state.
template <class Arch = simd::default_arch>
void causal_conv1d_update(const ConstTensorView<float, 2>& x,       // [B, D]
                          TensorView<float, 3> conv_state,          // [B, D, K-1]
                          const ConstTensorView<float, 2>& weight,  // [D, K]
                          const CausalConv1dOptions& options,
                          TensorView<float, 2> out) {               // [B, D]
  const CausalConv1dShape s =
      detail::check_causal_conv1d_update_args("causal_conv1d_update", x, conv_state, weight, options, &out);
  const detail::CausalConv1dUpdateProblem problem{s.batch, s.channels, s.kernel_size, x.data(), conv_state.data(),
                                                  weight.data(), options.bias ? options.bias->data() : nullptr,
                                                  options.activation_silu, out.data()};
  using Kernel = detail::CausalConv1dUpdateKernel<Arch>;
  tokenmix::detail::parallel_for(options.device, Kernel::num_items(problem), [&](Index first, Index last) {
    std::vector<float, xsimd::aligned_allocator<float, 64>> scratch(
        static_cast<std::size_t>(Kernel::scratch_floats(problem.kernel_size)));
    Kernel::run_items(problem, first, last, scratch.data());
  });
}

// Convenience overload: updates conv_state in place and returns out [B, D].
template <class Arch = simd::default_arch>
Tensor<float, 2> causal_conv1d_update(const ConstTensorView<float, 2>& x, Tensor<float, 3>& conv_state,
                                      const ConstTensorView<float, 2>& weight,
                                      const CausalConv1dOptions& options = {}) {
  TensorView<float, 3> state(conv_state.data(), conv_state.dimensions());
  detail::check_causal_conv1d_update_args("causal_conv1d_update", x, state, weight, options, nullptr);
  Tensor<float, 2> out(x.dimension(0), x.dimension(1));
  ssm::causal_conv1d_update<Arch>(x, state, weight, options, TensorView<float, 2>(out.data(), out.dimensions()));
  return out;
}

}  // namespace tokenmix::ssm
