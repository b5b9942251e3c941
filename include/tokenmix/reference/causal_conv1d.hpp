#pragma once
// Oracle of the depthwise causal conv1d (Mamba's short convolution) and its one-token step: plain
// loops in the order of the equations, no SIMD, no threads, accumulation in Acc (double in tests).
//
// Source: Gu & Dao, "Mamba" (2023) §3.4 / mamba_ssm/modules/mamba_simple.py::Mamba (nn.Conv1d with
// groups = D, padding = K-1, first L outputs) and Dao-AILab/causal-conv1d
// causal_conv1d/causal_conv1d_interface.py::causal_conv1d_ref / causal_conv1d_update_ref, written
// for the token-major layout and the K-1 entry state (see ssm/causal_conv1d_types.hpp).
// Per batch b, channel d, time t (PyTorch conv1d is a cross-correlation):
//   xs[b, d, s]  = x[b, s, d] for s >= 0;  initial_state[b, d, K-1+s] (or 0) for -(K-1) <= s < 0
//   out[b, t, d] = bias[d] + sum_{k=0}^{K-1} weight[d, k] * xs[b, d, t-(K-1)+k]     (bias optional)
//   out[b, t, d] = silu(out[b, t, d])   if activation_silu
//   final_state[b, d, j] = xs[b, d, L-(K-1)+j], j = 0..K-2  (the last K-1 raw inputs, oldest first)
// Step (causal_conv1d_update), for x [B, D]: window = conv_state[b, d, :] ‖ x[b, d] (K values),
// out[b, d] = silu?(bias[d] + sum_k weight[d, k] * window[k]); conv_state[b, d, :] = window[1:].

#include <cmath>
#include <vector>

#include "tokenmix/ssm/causal_conv1d_types.hpp"

namespace tokenmix::ref {

namespace detail {
template <class Acc>
float conv_window(const std::vector<Acc>& window, const ConstTensorView<float, 2>& weight, Index d,
                  const ssm::CausalConv1dOptions& o) {
  Acc acc = o.bias ? Acc((*o.bias)(d)) : Acc(0);
  for (Index k = 0; k < weight.dimension(1); ++k) acc += Acc(weight(d, k)) * window[static_cast<std::size_t>(k)];
  if (o.activation_silu) acc = acc / (Acc(1) + std::exp(-acc));  // silu(a) = a * sigmoid(a)
  return static_cast<float>(acc);
}
}  // namespace detail

template <class Acc = double>
void causal_conv1d(const ConstTensorView<float, 3>& x,       // [B, L, D]
                   const ConstTensorView<float, 2>& weight,  // [D, K]
                   const ssm::CausalConv1dOptions& options,
                   TensorView<float, 3> out,                 // [B, L, D]
                   TensorView<float, 3>* final_state) {      // [B, D, K-1] or nullptr
  const ssm::CausalConv1dShape s =
      ssm::detail::check_causal_conv1d_args("ref::causal_conv1d", x, weight, options, &out, final_state);
  const Index L = s.length, K = s.kernel_size;
  std::vector<Acc> xs(static_cast<std::size_t>(K - 1 + L)), window(static_cast<std::size_t>(K));
  for (Index b = 0; b < s.batch; ++b)
    for (Index d = 0; d < s.channels; ++d) {
      // xs[K-1+s] = the input at time s, for s in [-(K-1), L).
      for (Index i = 0; i < K - 1; ++i) xs[i] = options.initial_state ? Acc((*options.initial_state)(b, d, i)) : Acc(0);
      for (Index t = 0; t < L; ++t) xs[K - 1 + t] = x(b, t, d);
      for (Index t = 0; t < L; ++t) {
        for (Index k = 0; k < K; ++k) window[k] = xs[t + k];
        out(b, t, d) = detail::conv_window(window, weight, d, options);
      }
      if (final_state)
        for (Index j = 0; j < K - 1; ++j) (*final_state)(b, d, j) = static_cast<float>(xs[L + j]);
    }
}

// Convenience overload returning the output and the final state.
template <class Acc = double>
ssm::CausalConv1dResult causal_conv1d(const ConstTensorView<float, 3>& x, const ConstTensorView<float, 2>& weight,
                                      const ssm::CausalConv1dOptions& options = {}) {
  ssm::detail::check_causal_conv1d_args("ref::causal_conv1d", x, weight, options, nullptr, nullptr);
  ssm::CausalConv1dResult r{Tensor<float, 3>(x.dimension(0), x.dimension(1), x.dimension(2)),
                            Tensor<float, 3>(x.dimension(0), x.dimension(2), weight.dimension(1) - 1)};
  TensorView<float, 3> out(r.out.data(), r.out.dimensions()), last(r.final_state.data(), r.final_state.dimensions());
  ref::causal_conv1d<Acc>(x, weight, options, out, &last);
  return r;
}

template <class Acc = double>
void causal_conv1d_update(const ConstTensorView<float, 2>& x,       // [B, D]
                          TensorView<float, 3> conv_state,          // [B, D, K-1], updated in place
                          const ConstTensorView<float, 2>& weight,  // [D, K]
                          const ssm::CausalConv1dOptions& options,
                          TensorView<float, 2> out) {               // [B, D]
  const ssm::CausalConv1dShape s = ssm::detail::check_causal_conv1d_update_args(
      "ref::causal_conv1d_update", x, conv_state, weight, options, &out);
  const Index K = s.kernel_size;
  std::vector<Acc> window(static_cast<std::size_t>(K));
  for (Index b = 0; b < s.batch; ++b)
    for (Index d = 0; d < s.channels; ++d) {
      for (Index k = 0; k < K - 1; ++k) window[k] = conv_state(b, d, k);
      window[K - 1] = x(b, d);
      out(b, d) = detail::conv_window(window, weight, d, options);
      for (Index k = 0; k < K - 1; ++k) conv_state(b, d, k) = static_cast<float>(window[k + 1]);
    }
}

template <class Acc = double>
Tensor<float, 2> causal_conv1d_update(const ConstTensorView<float, 2>& x, Tensor<float, 3>& conv_state,
                                      const ConstTensorView<float, 2>& weight,
                                      const ssm::CausalConv1dOptions& options = {}) {
  TensorView<float, 3> state(conv_state.data(), conv_state.dimensions());
  ssm::detail::check_causal_conv1d_update_args("ref::causal_conv1d_update", x, state, weight, options, nullptr);
  Tensor<float, 2> out(x.dimension(0), x.dimension(1));
  ref::causal_conv1d_update<Acc>(x, state, weight, options, TensorView<float, 2>(out.data(), out.dimensions()));
  return out;
}

}  // namespace tokenmix::ref
