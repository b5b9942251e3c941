#pragma once
// Arguments of the diagonal (S4D) linear time-invariant SSM and its one-token step, shared by the
// fast ops (ssm/diagonal_ssm.hpp) and their oracles (reference/diagonal_ssm.hpp), so that both
// accept and reject exactly the same inputs.
//
// The discrete system, per channel d with parameter row h = d / (D / Hp) and complex modes m < M:
//   S[t, m] = dA[h, m]·S[t-1, m] + x[t, d]                   (complex state, real input)
//   out[t, d] = 2·Re(sum_m C[h, m]·S[t, m]) + Dskip[h]·x[t, d]
// i.e. a causal convolution with the kernel K[h, l] = 2·Re(sum_m C[h, m]·dA[h, m]^l): S4D's
// conjugate-pair convention (state-spaces / HazyResearch/H3 SSKernelDiag: the N/2 stored modes
// stand for N, hence the 2·Re). The input matrix is folded into C (C here = C·dB of S4D, see
// ssm::s4d_discretize), so the state is the one of a unit input: S4D's state = dB·S.
// Complex numbers are float pairs (re, im) in a trailing axis of 2, PyTorch's view_as_real layout:
//   x, out          [B, L, D]     (step: [B, D])
//   dA, C           [Hp, M, 2]    one row per parameter group; Hp divides D (H3: Hp heads of
//                                 head_dim² channels each; S4D: Hp = D)
//   D (skip)        [Hp]
//   initial / final state, state   [B, D, M, 2]

#include <optional>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::ssm {

struct DiagonalSsmOptions {
  std::optional<ConstTensorView<float, 1>> D;              // [Hp] skip term Dskip[h]·x
  // [B, D, M, 2] the state before token 0 (zeros if absent). May be the very same buffer as
  // final_state (in-place carry between chunks). Not accepted by diagonal_ssm_step, whose state
  // argument is the state.
  std::optional<ConstTensorView<float, 4>> initial_state;
  // Threads over batch x channel blocks; nullptr runs on the calling thread. Results are bitwise
  // identical for any thread count. Ignored by the oracle.
  const Eigen::ThreadPoolDevice* device = nullptr;
};

struct DiagonalSsmResult {
  Tensor<float, 3> out;          // [B, L, D]
  Tensor<float, 4> final_state;  // [B, D, M, 2] the state after the last token
};

// Extents of one validated call.
struct DiagonalSsmShape {
  Index batch, length, channels, rows, modes;  // B, L, D, Hp, M
};

namespace detail {

// dA, C [Hp, M, 2] with Hp dividing D; D skip [Hp].
inline void check_diagonal_ssm_params(const char* op, const ConstTensorView<float, 3>& dA,
                                      const ConstTensorView<float, 3>& C, Index channels,
                                      const DiagonalSsmOptions& o) {
  using tokenmix::detail::check_shape;
  tokenmix::detail::check_numel_fits(op, "dA", shape_of(dA));
  const Index rows = dA.dimension(0), modes = dA.dimension(1);
  TOKENMIX_CHECK(rows > 0 && modes > 0 && dA.dimension(2) == 2 && channels % rows == 0, op, ": dA has shape ",
                 shape_of(dA), ", expected [Hp, M, 2] (complex as re, im) with Hp > 0 dividing D=", channels,
                 " and M > 0");
  check_shape(op, "C", C, NamedShape<3>{{"Hp", "M", "2"}, {{rows, modes, 2}}}, " like dA");
  if (o.D) check_shape(op, "D", *o.D, NamedShape<1>{{"Hp"}, {{rows}}});
}

// Validates every argument of diagonal_ssm (DESIGN §4). `out` and `final_state` (either may be null)
// are the outputs of the view-based call.
inline DiagonalSsmShape check_diagonal_ssm_args(const char* op, const ConstTensorView<float, 3>& x,
                                                const ConstTensorView<float, 3>& dA,
                                                const ConstTensorView<float, 3>& C, const DiagonalSsmOptions& o,
                                                const TensorView<float, 3>* out,
                                                const TensorView<float, 4>* final_state) {
  using tokenmix::detail::check_shape;
  using tokenmix::detail::ranges_overlap;
  const Index batch = x.dimension(0), length = x.dimension(1), channels = x.dimension(2);
  tokenmix::detail::check_numel_fits(op, "x", shape_of(x));
  TOKENMIX_CHECK(batch > 0 && channels > 0, op, ": x has shape ", shape_of(x),
                 ", expected [B, L, D] with B > 0 and D > 0");
  check_diagonal_ssm_params(op, dA, C, channels, o);
  const Index rows = dA.dimension(0), modes = dA.dimension(1);
  const NamedShape<4> state_shape{{"B", "D", "M", "2"}, {{batch, channels, modes, 2}}};
  if (o.initial_state) check_shape(op, "initial_state", *o.initial_state, state_shape);
  if (out) {
    check_shape(op, "out", *out, NamedShape<3>{{"B", "L", "D"}, {{batch, length, channels}}}, " like x");
    TOKENMIX_CHECK(!ranges_overlap(out->data(), out->size(), x.data(), x.size()) &&
                       !(o.initial_state &&
                         ranges_overlap(out->data(), out->size(), o.initial_state->data(), o.initial_state->size())),
                   op, ": out must not overlap x or initial_state");
  }
  if (final_state) {
    check_shape(op, "final_state", *final_state, state_shape);
    const float* f = final_state->data();
    const Index nf = final_state->size();
    TOKENMIX_CHECK(!ranges_overlap(f, nf, x.data(), x.size()) &&
                       !(out && ranges_overlap(f, nf, out->data(), out->size())),
                   op, ": final_state must not overlap x or out");
    TOKENMIX_CHECK(!o.initial_state || o.initial_state->data() == f ||
                       !ranges_overlap(f, nf, o.initial_state->data(), o.initial_state->size()),
                   op, ": final_state must be either the same buffer as initial_state or not overlap it");
  }
  return {batch, length, channels, rows, modes};
}

// Validates diagonal_ssm_step: x [B, D], state [B, D, M, 2] (updated in place), out [B, D].
inline DiagonalSsmShape check_diagonal_ssm_step_args(const char* op, const ConstTensorView<float, 2>& x,
                                                     const TensorView<float, 4>& state,
                                                     const ConstTensorView<float, 3>& dA,
                                                     const ConstTensorView<float, 3>& C,
                                                     const DiagonalSsmOptions& o, const TensorView<float, 2>* out) {
  using tokenmix::detail::check_shape;
  using tokenmix::detail::ranges_overlap;
  const Index batch = x.dimension(0), channels = x.dimension(1);
  tokenmix::detail::check_numel_fits(op, "x", shape_of(x));
  TOKENMIX_CHECK(batch > 0 && channels > 0, op, ": x has shape ", shape_of(x),
                 ", expected [B, D] with B > 0 and D > 0");
  check_diagonal_ssm_params(op, dA, C, channels, o);
  TOKENMIX_CHECK(!o.initial_state, op,
                 ": options.initial_state must be empty (the state argument is the state, updated in place)");
  const Index rows = dA.dimension(0), modes = dA.dimension(1);
  check_shape(op, "state", state, NamedShape<4>{{"B", "D", "M", "2"}, {{batch, channels, modes, 2}}});
  TOKENMIX_CHECK(!ranges_overlap(state.data(), state.size(), x.data(), x.size()), op,
                 ": state must not overlap x");
  if (out) {
    check_shape(op, "out", *out, NamedShape<2>{{"B", "D"}, {{batch, channels}}}, " like x");
    TOKENMIX_CHECK(!ranges_overlap(out->data(), out->size(), x.data(), x.size()) &&
                       !ranges_overlap(out->data(), out->size(), state.data(), state.size()),
                   op, ": out must not overlap x or state");
  }
  return {batch, 1, channels, rows, modes};
}

}  // namespace detail
}  // namespace tokenmix::ssm
