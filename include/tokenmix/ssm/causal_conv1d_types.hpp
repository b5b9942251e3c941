#pragma once
// Arguments of the depthwise causal conv1d (prefill) and its one-token step, shared by the fast ops
// (ssm/causal_conv1d.hpp) and their oracles (reference/causal_conv1d.hpp) so that both accept and
// reject exactly the same inputs.
//
// Layout differences from Dao-AILab/causal-conv1d (causal_conv1d_fn takes x as [B, D, L]) and from
// mamba_ssm / transformers (conv_state [B, D, K] including the current token): tokenmix is
// token-major, channels last, and keeps only the K-1 PAST raw inputs, like llama.cpp:
//   x, out              [B, L, D]      (step: [B, D])
//   weight              [D, K]         (PyTorch conv1d weight [D, 1, K] squeezed)
//   bias                [D]
//   initial / final state, conv_state   [B, D, K-1]: the K-1 raw (pre-conv, pre-activation) inputs
//                       before the first token / after the last one, oldest first.
// Mapping to mamba_ssm / HF's conv_state [B, D, K] (newest at index K-1, AFTER its step's update):
//   ours = theirs[..., 1:]     theirs = concat(anything, ours)  (theirs[..., 0] is never read again:
//   the next step shifts it out before convolving). So a mamba conv_state converts with one slice.

#include <optional>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::ssm {

struct CausalConv1dOptions {
  std::optional<ConstTensorView<float, 1>> bias;           // [D] added before the activation
  bool activation_silu = false;                            // out = silu(conv + bias) (Mamba: true)
  // [B, D, K-1] the K-1 raw inputs before token 0, oldest first; zeros if absent. May be the very
  // same buffer as final_state (in-place carry between chunks). Not accepted by causal_conv1d_update,
  // whose conv_state argument is the state.
  std::optional<ConstTensorView<float, 3>> initial_state;
  // Threads over batch x channel blocks; nullptr runs on the calling thread. Results are bitwise
  // identical for any thread count. Ignored by the oracle.
  const Eigen::ThreadPoolDevice* device = nullptr;
};

struct CausalConv1dResult {
  Tensor<float, 3> out;          // [B, L, D]
  Tensor<float, 3> final_state;  // [B, D, K-1] the last K-1 raw inputs (of initial_state ‖ x), oldest first
};

// Extents of one causal_conv1d call, validated.
struct CausalConv1dShape {
  Index batch, length, channels, kernel_size;
};

namespace detail {

// weight [D, K] with D = channels and K > 0; bias [D].
inline Index check_conv_weight(const char* op, const ConstTensorView<float, 2>& weight, Index channels,
                               const CausalConv1dOptions& o) {
  tokenmix::detail::check_numel_fits(op, "weight", shape_of(weight));
  const Index K = weight.dimension(1);
  TOKENMIX_CHECK(weight.dimension(0) == channels && K > 0, op, ": weight has shape ", shape_of(weight),
                 ", expected [D=", channels, ", K] with kernel size K > 0");
  if (o.bias) tokenmix::detail::check_shape(op, "bias", *o.bias, NamedShape<1>{{"D"}, {{channels}}});
  return K;
}

// Validates every argument of causal_conv1d (DESIGN §4). `out` and `final_state` (either may be
// null) are the outputs of the view-based call.
inline CausalConv1dShape check_causal_conv1d_args(const char* op, const ConstTensorView<float, 3>& x,
                                                  const ConstTensorView<float, 2>& weight,
                                                  const CausalConv1dOptions& o, const TensorView<float, 3>* out,
                                                  const TensorView<float, 3>* final_state) {
  using tokenmix::detail::check_shape;
  const Index batch = x.dimension(0), length = x.dimension(1), channels = x.dimension(2);
  tokenmix::detail::check_numel_fits(op, "x", shape_of(x));
  TOKENMIX_CHECK(batch > 0, op, ": x has shape ", shape_of(x), ", batch B must be > 0");
  TOKENMIX_CHECK(channels > 0, op, ": x has shape ", shape_of(x), ", channels D must be > 0");
  const Index K = check_conv_weight(op, weight, channels, o);
  const NamedShape<3> bdk{{"B", "D", "K-1"}, {{batch, channels, K - 1}}};
  if (o.initial_state) check_shape(op, "initial_state", *o.initial_state, bdk);
  const NamedShape<3> bld{{"B", "L", "D"}, {{batch, length, channels}}};
  if (out) {
    check_shape(op, "out", *out, bld, " like x");
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out->data(), out->size(), x.data(), x.size()), op,
                   ": out must not overlap the input x");
  }
  if (final_state) {
    check_shape(op, "final_state", *final_state, bdk);
    const float* f = final_state->data();
    const Index nf = final_state->size();
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(f, nf, x.data(), x.size()) &&
                       !(out && tokenmix::detail::ranges_overlap(f, nf, out->data(), out->size())),
                   op, ": final_state must not overlap x or out");
    TOKENMIX_CHECK(!o.initial_state || o.initial_state->data() == f ||
                       !tokenmix::detail::ranges_overlap(f, nf, o.initial_state->data(), o.initial_state->size()),
                   op, ": final_state must be either the same buffer as initial_state or not overlap it");
  }
  return {batch, length, channels, K};
}

// Validates causal_conv1d_update: x [B, D], conv_state [B, D, K-1], out [B, D] (null: convenience).
inline CausalConv1dShape check_causal_conv1d_update_args(const char* op, const ConstTensorView<float, 2>& x,
                                                         const TensorView<float, 3>& conv_state,
                                                         const ConstTensorView<float, 2>& weight,
                                                         const CausalConv1dOptions& o,
                                                         const TensorView<float, 2>* out) {
  using tokenmix::detail::check_shape;
  const Index batch = x.dimension(0), channels = x.dimension(1);
  tokenmix::detail::check_numel_fits(op, "x", shape_of(x));
  TOKENMIX_CHECK(batch > 0, op, ": x has shape ", shape_of(x), ", batch B must be > 0");
  TOKENMIX_CHECK(channels > 0, op, ": x has shape ", shape_of(x), ", channels D must be > 0");
  const Index K = check_conv_weight(op, weight, channels, o);
  TOKENMIX_CHECK(!o.initial_state, op,
                 ": options.initial_state must be empty (the conv_state argument is the state, updated in place)");
  check_shape(op, "conv_state", conv_state, NamedShape<3>{{"B", "D", "K-1"}, {{batch, channels, K - 1}}});
  TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(conv_state.data(), conv_state.size(), x.data(), x.size()), op,
                 ": conv_state must not overlap x");
  if (out) {
    check_shape(op, "out", *out, NamedShape<2>{{"B", "D"}, {{batch, channels}}}, " like x");
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out->data(), out->size(), x.data(), x.size()) &&
                       !tokenmix::detail::ranges_overlap(out->data(), out->size(), conv_state.data(), conv_state.size()),
                   op, ": out must not overlap x or conv_state");
  }
  return {batch, 1, channels, K};
}

}  // namespace detail
}  // namespace tokenmix::ssm
