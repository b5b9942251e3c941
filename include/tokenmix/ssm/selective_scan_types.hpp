#pragma once
// Arguments of the selective scan, shared by the fast op (ssm/selective_scan.hpp) and its oracle
// (reference/selective_scan.hpp) so that both accept and reject exactly the same inputs.
//
// Layout differences from mamba_ssm's selective_scan_fn (which takes u/delta/z as [B, D, L] and
// B/C as [B, N, L] or [B, G, N, L]): tokenmix is token-major, channels last, so
//   u, delta, z, out   [B, L, D]
//   B, C               [B, L, G, N] (grouped), [B, L, N] (one group), or [D, N] (time-invariant)
//   A                  [D, N]
//   D, delta_bias      [D]
//   initial / last state [B, D, N] (N contiguous, like selective_state_update and ggml).

#include <optional>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::ssm {

// The B or C operand: selective (input-dependent) [B, L, G, N] / [B, L, N], or time-invariant [D, N].
// Channel d uses group d / (D / G), as mamba_ssm repeats each group over D/G contiguous channels.
class ScanOperand {
 public:
  ScanOperand(const ConstTensorView<float, 4>& v)  // [B, L, G, N]
      : data_(v.data()), rank_(4), dims_{v.dimension(0), v.dimension(1), v.dimension(2), v.dimension(3)} {}
  ScanOperand(const ConstTensorView<float, 3>& v)  // [B, L, N], G = 1
      : data_(v.data()), rank_(3), dims_{v.dimension(0), v.dimension(1), 1, v.dimension(2)} {}
  ScanOperand(const ConstTensorView<float, 2>& v)  // [D, N], time-invariant
      : data_(v.data()), rank_(2), dims_{0, 0, v.dimension(0), v.dimension(1)} {}
  ScanOperand(const Tensor<float, 4>& t) : ScanOperand(ConstTensorView<float, 4>(t)) {}
  ScanOperand(const Tensor<float, 3>& t) : ScanOperand(ConstTensorView<float, 3>(t)) {}
  ScanOperand(const Tensor<float, 2>& t) : ScanOperand(ConstTensorView<float, 2>(t)) {}

  const float* data() const { return data_; }
  bool time_invariant() const { return rank_ == 2; }
  int rank() const { return rank_; }
  Index batch() const { return dims_[0]; }
  Index length() const { return dims_[1]; }
  Index groups() const { return time_invariant() ? 1 : dims_[2]; }
  Index channels() const { return time_invariant() ? dims_[2] : 0; }  // D of a [D, N] operand
  Index state() const { return dims_[3]; }

  // The shape as the caller gave it.
  friend std::ostream& operator<<(std::ostream& os, const ScanOperand& s) {
    if (s.rank_ == 4) return os << Shape<4>{{s.dims_[0], s.dims_[1], s.dims_[2], s.dims_[3]}};
    if (s.rank_ == 3) return os << Shape<3>{{s.dims_[0], s.dims_[1], s.dims_[3]}};
    return os << Shape<2>{{s.dims_[2], s.dims_[3]}};
  }

 private:
  const float* data_;
  int rank_;
  std::array<Index, 4> dims_;
};

struct SelectiveScanOptions {
  std::optional<ConstTensorView<float, 1>> D;              // [D] skip: out = y + u * D
  std::optional<ConstTensorView<float, 3>> z;              // [B, L, D] gate: out *= silu(z)
  std::optional<ConstTensorView<float, 1>> delta_bias;     // [D] added to delta before softplus
  bool delta_softplus = false;                             // dt = softplus(delta + delta_bias), threshold 20
  // [B, D, N] state before t = 0; zeros if absent. May be the very same buffer as the view-based
  // call's last_state (in-place carry between chunks: each block of channels reads its initial state
  // before it writes its last state).
  std::optional<ConstTensorView<float, 3>> initial_state;
  // Threads over batch x channel blocks; nullptr runs on the calling thread. Results are bitwise
  // identical for any thread count. Ignored by the oracle.
  const Eigen::ThreadPoolDevice* device = nullptr;
};

struct SelectiveScanResult {
  Tensor<float, 3> out;         // [B, L, D]
  Tensor<float, 3> last_state;  // [B, D, N] state after the last token (= initial state when L = 0)
};

// selective_scan_states: the selective scan's result plus every state.
struct SelectiveScanStatesResult {
  Tensor<float, 3> out;         // [B, L, D], bitwise what selective_scan returns
  Tensor<float, 4> states;      // [B, L, D, N] states[b, t] = h_t, the state after token t
  Tensor<float, 3> last_state;  // [B, D, N] = states[:, L - 1] (= initial state when L = 0)
};

// Extents of one selective-scan call, validated.
struct SelectiveScanShape {
  Index batch, length, channels, state, groups;
};

namespace detail {

// Validates every argument of selective_scan (DESIGN §4) and returns the extents. `out` and
// `last_state` (either may be null) are the outputs of the view-based call.
inline SelectiveScanShape check_selective_scan_args(const char* op, const ConstTensorView<float, 3>& u,
                                                    const ConstTensorView<float, 3>& delta,
                                                    const ConstTensorView<float, 2>& A, const ScanOperand& B,
                                                    const ScanOperand& C, const SelectiveScanOptions& o,
                                                    const TensorView<float, 3>* out,
                                                    const TensorView<float, 3>* last_state) {
  using tokenmix::detail::check_numel_fits;
  using tokenmix::detail::check_shape;
  const Index batch = u.dimension(0), length = u.dimension(1), channels = u.dimension(2);
  check_numel_fits(op, "u", shape_of(u));
  TOKENMIX_CHECK(batch > 0, op, ": u has shape ", shape_of(u), ", batch B must be > 0");
  TOKENMIX_CHECK(channels > 0, op, ": u has shape ", shape_of(u), ", channels D must be > 0");
  const NamedShape<3> bld{{"B", "L", "D"}, {{batch, length, channels}}};
  check_shape(op, "delta", delta, bld, " like u");

  const Index state = A.dimension(1);
  check_numel_fits(op, "A", shape_of(A));
  TOKENMIX_CHECK(A.dimension(0) == channels && state > 0, op, ": A has shape ", shape_of(A),
                 ", expected [D=", channels, ", N] with N > 0");

  for (const auto& [name, operand] : {std::pair<const char*, const ScanOperand*>{"B", &B}, {"C", &C}}) {
    if (operand->time_invariant()) {
      TOKENMIX_CHECK(operand->channels() == channels && operand->state() == state, op, ": ", name,
                     " has shape ", *operand, ", expected [D=", channels, ", N=", state,
                     "] (time-invariant) or [B, L, G, N]");
      continue;
    }
    TOKENMIX_CHECK(operand->batch() == batch && operand->length() == length && operand->state() == state &&
                       operand->groups() > 0,
                   op, ": ", name, " has shape ", *operand, ", expected [B=", batch, ", L=", length,
                   ", G, N=", state, "] with G > 0 (or [B, L, N], or [D, N] time-invariant)");
    check_numel_fits(op, name, Shape<4>{{operand->batch(), operand->length(), operand->groups(), state}});
    TOKENMIX_CHECK(channels % operand->groups() == 0, op, ": ", name, " has G=", operand->groups(),
                   " groups, which does not divide D=", channels);
  }
  TOKENMIX_CHECK(B.time_invariant() || C.time_invariant() || B.groups() == C.groups(), op,
                 ": B has G=", B.groups(), " groups but C has G=", C.groups());

  const NamedShape<1> d_only{{"D"}, {{channels}}};
  if (o.D) check_shape(op, "D", *o.D, d_only);
  if (o.delta_bias) check_shape(op, "delta_bias", *o.delta_bias, d_only);
  if (o.z) check_shape(op, "z", *o.z, bld, " like u");
  const NamedShape<3> bdn{{"B", "D", "N"}, {{batch, channels, state}}};
  if (o.initial_state) check_shape(op, "initial_state", *o.initial_state, bdn);
  if (out) {
    check_shape(op, "out", *out, bld, " like u");
    const Index n = out->size();
    auto overlaps = [&](const float* p, Index np) { return tokenmix::detail::ranges_overlap(out->data(), n, p, np); };
    TOKENMIX_CHECK(!overlaps(u.data(), u.size()) && !overlaps(delta.data(), delta.size()) &&
                       !(o.z && overlaps(o.z->data(), o.z->size())),
                   op, ": out must not overlap the inputs u, delta or z");
  }
  if (last_state) check_shape(op, "last_state", *last_state, bdn);
  return {batch, length, channels, state, B.time_invariant() ? C.groups() : B.groups()};
}

// The extra checks of selective_scan_states: states [B, L, D, N] (N·L floats per channel), and no
// overlap with any input or the other outputs (whole-tensor writes from several threads).
inline void check_states_arg(const char* op, const SelectiveScanShape& s, const ConstTensorView<float, 3>& u,
                             const ConstTensorView<float, 3>& delta, const ConstTensorView<float, 2>& A,
                             const ScanOperand& B, const ScanOperand& C, const SelectiveScanOptions& o,
                             const TensorView<float, 3>& out, const TensorView<float, 4>& states,
                             const TensorView<float, 3>* last_state) {
  using tokenmix::detail::check_shape;
  const NamedShape<4> bldn{{"B", "L", "D", "N"}, {{s.batch, s.length, s.channels, s.state}}};
  check_shape(op, "states", states, bldn);
  const float* p = states.data();
  const Index n = states.size();
  auto overlaps = [&](const float* q, Index nq) { return tokenmix::detail::ranges_overlap(p, n, q, nq); };
  auto operand_size = [&](const ScanOperand& X) {
    return X.time_invariant() ? s.channels * s.state : X.batch() * X.length() * X.groups() * s.state;
  };
  TOKENMIX_CHECK(!overlaps(u.data(), u.size()) && !overlaps(delta.data(), delta.size()) &&
                     !overlaps(A.data(), A.size()) && !overlaps(B.data(), operand_size(B)) &&
                     !overlaps(C.data(), operand_size(C)) && !(o.z && overlaps(o.z->data(), o.z->size())) &&
                     !(o.D && overlaps(o.D->data(), o.D->size())) &&
                     !(o.delta_bias && overlaps(o.delta_bias->data(), o.delta_bias->size())) &&
                     !(o.initial_state && overlaps(o.initial_state->data(), o.initial_state->size())),
                 op, ": states must not overlap the inputs (u, delta, A, B, C, D, z, delta_bias, initial_state)");
  TOKENMIX_CHECK(!overlaps(out.data(), out.size()) && !(last_state && overlaps(last_state->data(), last_state->size())),
                 op, ": states must not overlap out or last_state");
}

// The window M of local_bidirectional_scan.
inline void check_window_arg(const char* op, Index window) {
  TOKENMIX_CHECK(window >= 1, op, ": window M must be >= 1 (tokens per local window), got ", window);
}

// The convenience overloads of the oracle and the fast op: validates, allocates out [B, L, D] and
// last_state [B, D, N], and runs view_scan(out_view, last_state_view).
template <class ViewScan>
SelectiveScanResult scan_into_new_result(const char* op, const ConstTensorView<float, 3>& u,
                                         const ConstTensorView<float, 3>& delta, const ConstTensorView<float, 2>& A,
                                         const ScanOperand& B, const ScanOperand& C, const SelectiveScanOptions& o,
                                         ViewScan&& view_scan) {
  check_selective_scan_args(op, u, delta, A, B, C, o, nullptr, nullptr);  // before allocating
  SelectiveScanResult r{Tensor<float, 3>(u.dimension(0), u.dimension(1), u.dimension(2)),
                        Tensor<float, 3>(u.dimension(0), u.dimension(2), A.dimension(1))};
  TensorView<float, 3> out(r.out.data(), r.out.dimensions());
  TensorView<float, 3> last(r.last_state.data(), r.last_state.dimensions());
  view_scan(out, last);
  return r;
}

// The same for selective_scan_states: also allocates states [B, L, D, N] (checked to fit first).
template <class ViewScan>
SelectiveScanStatesResult scan_states_into_new_result(const char* op, const ConstTensorView<float, 3>& u,
                                                      const ConstTensorView<float, 3>& delta,
                                                      const ConstTensorView<float, 2>& A, const ScanOperand& B,
                                                      const ScanOperand& C, const SelectiveScanOptions& o,
                                                      ViewScan&& view_scan) {
  const SelectiveScanShape s = check_selective_scan_args(op, u, delta, A, B, C, o, nullptr, nullptr);
  tokenmix::detail::check_numel_fits(op, "states", Shape<4>{{s.batch, s.length, s.channels, s.state}});
  SelectiveScanStatesResult r{Tensor<float, 3>(s.batch, s.length, s.channels),
                              Tensor<float, 4>(s.batch, s.length, s.channels, s.state),
                              Tensor<float, 3>(s.batch, s.channels, s.state)};
  TensorView<float, 3> out(r.out.data(), r.out.dimensions());
  TensorView<float, 4> states(r.states.data(), r.states.dimensions());
  TensorView<float, 3> last(r.last_state.data(), r.last_state.dimensions());
  view_scan(out, states, last);
  return r;
}

}  // namespace detail
}  // namespace tokenmix::ssm
