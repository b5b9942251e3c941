#pragma once
// Arguments of the selective-scan decode step (mamba_ssm/ops/triton/selective_state_update.py::
// selective_state_update), shared by the fast op (ssm/selective_state_update.hpp) and its oracle
// (reference/selective_state_update.hpp) so that both accept and reject exactly the same inputs.
//
// Shapes (mamba_ssm's single-head form, with its optional head dimension dropped):
//   state              [B, D, N]  updated in place (N contiguous, like selective_scan's states)
//   x, dt, z, out      [B, D]
//   A                  [D, N]
//   B, C               [B, G, N] (G divides D; mamba_ssm's [B, N] is [B, 1, N]) or [D, N] time-invariant
//   D, dt_bias         [D]

#include <optional>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::ssm {

// The B or C operand of one step: selective [B, G, N], or time-invariant [D, N].
// Channel d uses group d / (D / G), as in selective_scan.
class StepOperand {
 public:
  StepOperand(const ConstTensorView<float, 3>& v)  // [B, G, N]
      : data_(v.data()), rank_(3), dims_{v.dimension(0), v.dimension(1), v.dimension(2)} {}
  StepOperand(const ConstTensorView<float, 2>& v)  // [D, N], time-invariant
      : data_(v.data()), rank_(2), dims_{0, v.dimension(0), v.dimension(1)} {}
  StepOperand(const Tensor<float, 3>& t) : StepOperand(ConstTensorView<float, 3>(t)) {}
  StepOperand(const Tensor<float, 2>& t) : StepOperand(ConstTensorView<float, 2>(t)) {}

  const float* data() const { return data_; }
  bool time_invariant() const { return rank_ == 2; }
  Index batch() const { return dims_[0]; }
  Index groups() const { return time_invariant() ? 1 : dims_[1]; }
  Index channels() const { return time_invariant() ? dims_[1] : 0; }
  Index state() const { return dims_[2]; }
  friend std::ostream& operator<<(std::ostream& os, const StepOperand& s) {
    if (s.rank_ == 3) return os << Shape<3>{{s.dims_[0], s.dims_[1], s.dims_[2]}};
    return os << Shape<2>{{s.dims_[1], s.dims_[2]}};
  }

 private:
  const float* data_;
  int rank_;
  std::array<Index, 3> dims_;
};

struct SelectiveStateUpdateOptions {
  std::optional<ConstTensorView<float, 1>> D;        // [D] skip: out = y + x * D
  std::optional<ConstTensorView<float, 2>> z;        // [B, D] gate: out *= silu(z)
  std::optional<ConstTensorView<float, 1>> dt_bias;  // [D] added to dt before softplus
  bool dt_softplus = false;                          // dt = softplus(dt + dt_bias), threshold 20
  // Threads over batch x channel blocks; nullptr runs on the calling thread. Results are bitwise
  // identical for any thread count. Ignored by the oracle.
  const Eigen::ThreadPoolDevice* device = nullptr;
};

struct SelectiveStateUpdateShape {
  Index batch, channels, state, groups;
};

namespace detail {

// Validates every argument of selective_state_update (DESIGN §4). `out` may be null (convenience).
inline SelectiveStateUpdateShape check_selective_state_update_args(
    const char* op, const TensorView<float, 3>& state, const ConstTensorView<float, 2>& x,
    const ConstTensorView<float, 2>& dt, const ConstTensorView<float, 2>& A, const StepOperand& B,
    const StepOperand& C, const SelectiveStateUpdateOptions& o, const TensorView<float, 2>* out) {
  using tokenmix::detail::check_numel_fits;
  using tokenmix::detail::check_shape;
  const Index batch = x.dimension(0), channels = x.dimension(1);
  check_numel_fits(op, "x", shape_of(x));
  TOKENMIX_CHECK(batch > 0, op, ": x has shape ", shape_of(x), ", batch B must be > 0");
  TOKENMIX_CHECK(channels > 0, op, ": x has shape ", shape_of(x), ", channels D must be > 0");
  const NamedShape<2> bd{{"B", "D"}, {{batch, channels}}};
  check_shape(op, "dt", dt, bd, " like x");
  const Index N = A.dimension(1);
  check_numel_fits(op, "A", shape_of(A));
  TOKENMIX_CHECK(A.dimension(0) == channels && N > 0, op, ": A has shape ", shape_of(A), ", expected [D=",
                 channels, ", N] with N > 0");
  check_numel_fits(op, "state", shape_of(state));
  check_shape(op, "state", state, NamedShape<3>{{"B", "D", "N"}, {{batch, channels, N}}});
  for (const auto& [name, operand] : {std::pair<const char*, const StepOperand*>{"B", &B}, {"C", &C}}) {
    if (operand->time_invariant()) {
      TOKENMIX_CHECK(operand->channels() == channels && operand->state() == N, op, ": ", name, " has shape ",
                     *operand, ", expected [D=", channels, ", N=", N, "] (time-invariant) or [B, G, N]");
      continue;
    }
    TOKENMIX_CHECK(operand->batch() == batch && operand->state() == N && operand->groups() > 0, op, ": ", name,
                   " has shape ", *operand, ", expected [B=", batch, ", G, N=", N,
                   "] with G > 0 (or [D, N] time-invariant)");
    TOKENMIX_CHECK(channels % operand->groups() == 0, op, ": ", name, " has G=", operand->groups(),
                   " groups, which does not divide D=", channels);
  }
  TOKENMIX_CHECK(B.time_invariant() || C.time_invariant() || B.groups() == C.groups(), op, ": B has G=",
                 B.groups(), " groups but C has G=", C.groups());
  const NamedShape<1> d_only{{"D"}, {{channels}}};
  if (o.D) check_shape(op, "D", *o.D, d_only);
  if (o.dt_bias) check_shape(op, "dt_bias", *o.dt_bias, d_only);
  if (o.z) check_shape(op, "z", *o.z, bd, " like x");
  auto overlaps_state = [&](const float* p, Index n) { return tokenmix::detail::ranges_overlap(state.data(), state.size(), p, n); };
  TOKENMIX_CHECK(!overlaps_state(x.data(), x.size()) && !overlaps_state(dt.data(), dt.size()) &&
                     !overlaps_state(A.data(), A.size()) && !(o.z && overlaps_state(o.z->data(), o.z->size())),
                 op, ": state must not overlap the inputs x, dt, A or z");
  if (out) {
    check_shape(op, "out", *out, bd, " like x");
    auto overlaps = [&](const float* p, Index n) { return tokenmix::detail::ranges_overlap(out->data(), out->size(), p, n); };
    TOKENMIX_CHECK(!overlaps(x.data(), x.size()) && !overlaps(dt.data(), dt.size()) &&
                       !overlaps(state.data(), state.size()) && !(o.z && overlaps(o.z->data(), o.z->size())),
                   op, ": out must not overlap state or the inputs x, dt or z");
  }
  return {batch, channels, N, B.time_invariant() ? C.groups() : B.groups()};
}

}  // namespace detail
}  // namespace tokenmix::ssm
