#pragma once
// Arguments of the Mamba-2 SSD operator family, shared by the fast ops (ssm/ssd.hpp) and the oracle
// (reference/ssd.hpp) so that both accept and reject exactly the same inputs.
//
// Layout (token-major, channels last; mamba_ssm's mamba_chunk_scan_combined takes the same
// x [B, L, H, P], dt [B, L, H], B/C [B, L, G, N]; only the state differs from nothing):
//   x, z, out            [B, L, H, P]
//   dt                   [B, L, H]     raw, before dt_bias / softplus / clamp
//   A                    [H]           already negative (= -exp(A_log))
//   B, C                 [B, L, G, N]  head h uses group g = h / (H / G); G divides H
//   D                    [H] (one per head) or [H * P] (mamba_ssm's D_has_hdim, one per channel)
//   dt_bias              [H]
//   initial / final state [B, H, P, N] (N contiguous, as mamba_ssm's ssm_state)
//   seq_idx              [B, L] int32, non-decreasing (packed sequences, mamba_ssm's seq_idx)
// The decode step (ssd_state_update) takes one token: x, out [B, H, P], dt [B, H], B, C [B, G, N],
// the state [B, H, P, N] in place (mamba_ssm's selective_state_update with heads), and the options'
// z as one token of the prefill's layout, [B, 1, H, P].

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::ssm {

// Which form of the operator computes the prefill (both give the same result within rounding).
enum class SsdAlgorithm {
  auto_select,  // the faster one for the shape (rule in ssm/ssd.hpp)
  chunked,      // SSD: per chunk of chunk_size tokens, matrix multiplies (ssd_minimal_discrete)
  recurrent,    // the sequential recurrence over tokens
};

struct SsdOptions {
  // Skip: out = y + D * x, before the gate. [H] (per head) or [H * P] (per channel, D_has_hdim).
  std::optional<ConstTensorView<float, 1>> D;
  // Gate [B, L, H, P] (ssd_state_update: [B, 1, H, P]): out *= silu(z), after the D skip.
  std::optional<ConstTensorView<float, 4>> z;
  std::optional<ConstTensorView<float, 1>> dt_bias;  // [H] added to dt before softplus
  bool dt_softplus = false;                          // dt = softplus(dt + dt_bias), threshold 20 (torch)
  // mamba's dt_limit: dt = clamp(dt, dt_min, dt_max) after softplus. The default (0, +inf) means no
  // clamp at all, as in mamba_ssm (so without softplus a negative dt is kept, not clamped to 0).
  float dt_min = 0.0f;
  float dt_max = std::numeric_limits<float>::infinity();
  // [B, H, P, N] state before t = 0; zeros if absent. May be the very same buffer as final_state
  // (each (b, h) reads its initial state before it writes its final state). Rejected by
  // ssd_state_update (its state argument is the state).
  std::optional<ConstTensorView<float, 4>> initial_state;
  // [B, L] packed sequences: the state is reset to zero at every t > 0 where
  // seq_idx[b, t] != seq_idx[b, t - 1]; initial_state applies to the first sequence only. Must be
  // non-decreasing along L. Rejected by ssd_state_update.
  std::optional<ConstTensorView<std::int32_t, 2>> seq_idx;
  SsdAlgorithm algorithm = SsdAlgorithm::auto_select;  // ignored by the oracle and by ssd_state_update
  Index chunk_size = 0;  // tokens per chunk of the chunked form; 0 = pick; any positive value (need
                         // not divide L). Ignored by the recurrent form, the oracle and ssd_state_update.
  // Threads over batch x heads; nullptr runs on the calling thread. Results are bitwise identical
  // for any thread count. Ignored by the oracle.
  const Eigen::ThreadPoolDevice* device = nullptr;
};

struct SsdResult {
  Tensor<float, 4> out;          // [B, L, H, P]
  Tensor<float, 4> final_state;  // [B, H, P, N] state after the last token (= initial state when L = 0)
};

// Extents of one validated call.
struct SsdShape {
  Index batch, length, heads, head_dim, state, groups;
  bool D_per_channel;  // D has H * P entries (else H)
};

namespace detail {

// Whether the (dt_min, dt_max) pair asks for a clamp (mamba_ssm skips it for (0, inf)).
inline bool ssd_dt_clamped(const SsdOptions& o) {
  return !(o.dt_min == 0.0f && o.dt_max == std::numeric_limits<float>::infinity());
}

// Checks shared by the prefill and the step: the per-head options.
inline void check_ssd_head_options(const char* op, const SsdOptions& o, Index heads, Index head_dim) {
  using tokenmix::detail::check_shape;
  if (o.D) {
    const Index n = o.D->dimension(0);
    TOKENMIX_CHECK(n == heads || n == heads * head_dim, op, ": D has shape ", shape_of(*o.D), ", expected [H=",
                   heads, "] or [H*P=", heads * head_dim, "]");
  }
  if (o.dt_bias) check_shape(op, "dt_bias", *o.dt_bias, NamedShape<1>{{"H"}, {{heads}}});
  TOKENMIX_CHECK(!std::isnan(o.dt_min) && !std::isnan(o.dt_max) && o.dt_min <= o.dt_max &&
                     o.dt_min != std::numeric_limits<float>::infinity() &&
                     o.dt_max != -std::numeric_limits<float>::infinity(),
                 op, ": dt limits must satisfy dt_min <= dt_max (not NaN, not both infinite the same way), got [",
                 o.dt_min, ", ", o.dt_max, "]");
}

// Validates every argument of ssd (DESIGN §4) and returns the extents. `out` and `final_state`
// (either may be null) are the outputs of the view-based call.
inline SsdShape check_ssd_args(const char* op, const ConstTensorView<float, 4>& x, const ConstTensorView<float, 3>& dt,
                               const ConstTensorView<float, 1>& A, const ConstTensorView<float, 4>& B,
                               const ConstTensorView<float, 4>& C, const SsdOptions& o,
                               const TensorView<float, 4>* out, const TensorView<float, 4>* final_state) {
  using tokenmix::detail::check_numel_fits;
  using tokenmix::detail::check_shape;
  using tokenmix::detail::ranges_overlap;
  const Index batch = x.dimension(0), length = x.dimension(1), heads = x.dimension(2), head_dim = x.dimension(3);
  check_numel_fits(op, "x", shape_of(x));
  TOKENMIX_CHECK(batch > 0, op, ": x has shape ", shape_of(x), ", batch B must be > 0");
  TOKENMIX_CHECK(heads > 0, op, ": x has shape ", shape_of(x), ", heads H must be > 0");
  TOKENMIX_CHECK(head_dim > 0, op, ": x has shape ", shape_of(x), ", head dim P must be > 0");
  check_shape(op, "dt", dt, NamedShape<3>{{"B", "L", "H"}, {{batch, length, heads}}}, " like x");
  check_shape(op, "A", A, NamedShape<1>{{"H"}, {{heads}}});

  const Index groups = B.dimension(2), state = B.dimension(3);
  check_numel_fits(op, "B", shape_of(B));
  TOKENMIX_CHECK(B.dimension(0) == batch && B.dimension(1) == length && groups > 0 && state > 0, op,
                 ": B has shape ", shape_of(B), ", expected [B=", batch, ", L=", length, ", G, N] with G > 0, N > 0");
  check_shape(op, "C", C, NamedShape<4>{{"B", "L", "G", "N"}, {{batch, length, groups, state}}}, " like B");
  TOKENMIX_CHECK(heads % groups == 0, op, ": B has G=", groups, " groups, which does not divide H=", heads);

  check_ssd_head_options(op, o, heads, head_dim);
  const NamedShape<4> blhp{{"B", "L", "H", "P"}, {{batch, length, heads, head_dim}}};
  if (o.z) check_shape(op, "z", *o.z, blhp, " like x");
  const NamedShape<4> bhpn{{"B", "H", "P", "N"}, {{batch, heads, head_dim, state}}};
  check_numel_fits(op, "final_state", bhpn.shape);
  if (o.initial_state) check_shape(op, "initial_state", *o.initial_state, bhpn);
  if (o.seq_idx) {
    check_shape(op, "seq_idx", *o.seq_idx, NamedShape<2>{{"B", "L"}, {{batch, length}}});
    for (Index b = 0; b < batch; ++b)
      for (Index t = 1; t < length; ++t)
        TOKENMIX_CHECK((*o.seq_idx)(b, t - 1) <= (*o.seq_idx)(b, t), op, ": seq_idx must be non-decreasing along L, but seq_idx[",
                       b, ", ", t, "] = ", (*o.seq_idx)(b, t), " < seq_idx[", b, ", ", t - 1, "] = ", (*o.seq_idx)(b, t - 1));
  }
  TOKENMIX_CHECK(o.chunk_size >= 0, op, ": chunk_size must be >= 0 (0 = pick), got ", o.chunk_size);
  TOKENMIX_CHECK(o.algorithm == SsdAlgorithm::auto_select || o.algorithm == SsdAlgorithm::chunked ||
                     o.algorithm == SsdAlgorithm::recurrent,
                 op, ": unknown algorithm ", static_cast<int>(o.algorithm));

  auto overlaps_inputs = [&](const float* p, Index n) {
    return ranges_overlap(p, n, x.data(), x.size()) || ranges_overlap(p, n, dt.data(), dt.size()) ||
           ranges_overlap(p, n, A.data(), A.size()) || ranges_overlap(p, n, B.data(), B.size()) ||
           ranges_overlap(p, n, C.data(), C.size()) || (o.z && ranges_overlap(p, n, o.z->data(), o.z->size())) ||
           (o.D && ranges_overlap(p, n, o.D->data(), o.D->size())) ||
           (o.dt_bias && ranges_overlap(p, n, o.dt_bias->data(), o.dt_bias->size()));
  };
  if (out) {
    check_shape(op, "out", *out, blhp, " like x");
    TOKENMIX_CHECK(!overlaps_inputs(out->data(), out->size()) &&
                       !(o.initial_state && ranges_overlap(out->data(), out->size(), o.initial_state->data(),
                                                           o.initial_state->size())),
                   op, ": out must not overlap the inputs (x, dt, A, B, C, z, D, dt_bias, initial_state)");
  }
  if (final_state) {
    check_shape(op, "final_state", *final_state, bhpn);
    TOKENMIX_CHECK(!overlaps_inputs(final_state->data(), final_state->size()) &&
                       !(out && ranges_overlap(final_state->data(), final_state->size(), out->data(), out->size())),
                   op, ": final_state must not overlap out or the inputs (x, dt, A, B, C, z, D, dt_bias)");
    TOKENMIX_CHECK(!o.initial_state || o.initial_state->data() == final_state->data() ||
                       !ranges_overlap(final_state->data(), final_state->size(), o.initial_state->data(),
                                       o.initial_state->size()),
                   op, ": final_state must be the very buffer of initial_state or not overlap it");
  }
  return {batch, length, heads, head_dim, state, groups, o.D && o.D->dimension(0) != heads};
}

// Validates every argument of ssd_state_update. `out` may be null (convenience overload).
inline SsdShape check_ssd_state_update_args(const char* op, const TensorView<float, 4>& state,
                                            const ConstTensorView<float, 3>& x, const ConstTensorView<float, 2>& dt,
                                            const ConstTensorView<float, 1>& A, const ConstTensorView<float, 3>& B,
                                            const ConstTensorView<float, 3>& C, const SsdOptions& o,
                                            const TensorView<float, 3>* out) {
  using tokenmix::detail::check_numel_fits;
  using tokenmix::detail::check_shape;
  using tokenmix::detail::ranges_overlap;
  const Index batch = x.dimension(0), heads = x.dimension(1), head_dim = x.dimension(2);
  check_numel_fits(op, "x", shape_of(x));
  TOKENMIX_CHECK(batch > 0, op, ": x has shape ", shape_of(x), ", batch B must be > 0");
  TOKENMIX_CHECK(heads > 0, op, ": x has shape ", shape_of(x), ", heads H must be > 0");
  TOKENMIX_CHECK(head_dim > 0, op, ": x has shape ", shape_of(x), ", head dim P must be > 0");
  check_shape(op, "dt", dt, NamedShape<2>{{"B", "H"}, {{batch, heads}}}, " like x");
  check_shape(op, "A", A, NamedShape<1>{{"H"}, {{heads}}});
  const Index groups = B.dimension(1), N = B.dimension(2);
  check_numel_fits(op, "B", shape_of(B));
  TOKENMIX_CHECK(B.dimension(0) == batch && groups > 0 && N > 0, op, ": B has shape ", shape_of(B), ", expected [B=",
                 batch, ", G, N] with G > 0, N > 0");
  check_shape(op, "C", C, NamedShape<3>{{"B", "G", "N"}, {{batch, groups, N}}}, " like B");
  TOKENMIX_CHECK(heads % groups == 0, op, ": B has G=", groups, " groups, which does not divide H=", heads);
  check_numel_fits(op, "state", shape_of(state));
  check_shape(op, "state", state, NamedShape<4>{{"B", "H", "P", "N"}, {{batch, heads, head_dim, N}}});
  check_ssd_head_options(op, o, heads, head_dim);
  TOKENMIX_CHECK(!o.initial_state, op, ": initial_state is not an option of the step (pass the state as `state`)");
  TOKENMIX_CHECK(!o.seq_idx, op, ": seq_idx is not an option of the step (reset the state of a new sequence instead)");
  const NamedShape<3> bhp{{"B", "H", "P"}, {{batch, heads, head_dim}}};
  // The options' z is rank 4: the step's gate is one token of the prefill's layout, [B, 1, H, P].
  if (o.z) check_shape(op, "z", *o.z, NamedShape<4>{{"B", "L", "H", "P"}, {{batch, 1, heads, head_dim}}}, " (one token)");
  auto overlaps_inputs = [&](const float* p, Index n) {
    return ranges_overlap(p, n, x.data(), x.size()) || ranges_overlap(p, n, dt.data(), dt.size()) ||
           ranges_overlap(p, n, A.data(), A.size()) || ranges_overlap(p, n, B.data(), B.size()) ||
           ranges_overlap(p, n, C.data(), C.size()) || (o.z && ranges_overlap(p, n, o.z->data(), o.z->size())) ||
           (o.D && ranges_overlap(p, n, o.D->data(), o.D->size())) ||
           (o.dt_bias && ranges_overlap(p, n, o.dt_bias->data(), o.dt_bias->size()));
  };
  TOKENMIX_CHECK(!overlaps_inputs(state.data(), state.size()), op,
                 ": state must not overlap the inputs (x, dt, A, B, C, z, D, dt_bias)");
  if (out) {
    check_shape(op, "out", *out, bhp, " like x");
    TOKENMIX_CHECK(!overlaps_inputs(out->data(), out->size()) &&
                       !ranges_overlap(out->data(), out->size(), state.data(), state.size()),
                   op, ": out must not overlap state or the inputs (x, dt, A, B, C, z, D, dt_bias)");
  }
  return {batch, 1, heads, head_dim, N, groups, o.D && o.D->dimension(0) != heads};
}

// The convenience overloads of the oracle and the fast op: validates, allocates out [B, L, H, P] and
// final_state [B, H, P, N], and runs view_ssd(out_view, final_state_view).
template <class ViewSsd>
SsdResult ssd_into_new_result(const char* op, const ConstTensorView<float, 4>& x, const ConstTensorView<float, 3>& dt,
                              const ConstTensorView<float, 1>& A, const ConstTensorView<float, 4>& B,
                              const ConstTensorView<float, 4>& C, const SsdOptions& o, ViewSsd&& view_ssd) {
  const SsdShape s = check_ssd_args(op, x, dt, A, B, C, o, nullptr, nullptr);  // before allocating
  SsdResult r{Tensor<float, 4>(s.batch, s.length, s.heads, s.head_dim),
              Tensor<float, 4>(s.batch, s.heads, s.head_dim, s.state)};
  TensorView<float, 4> out(r.out.data(), r.out.dimensions());
  TensorView<float, 4> last(r.final_state.data(), r.final_state.dimensions());
  view_ssd(out, last);
  return r;
}

}  // namespace detail
}  // namespace tokenmix::ssm
