#pragma once
// The H3 layer's configuration, weights, decode state and validation, shared by the fast layer
// (hybrid/h3.hpp) and its oracle (reference/h3.hpp).
//
// Math (HazyResearch/H3 src/models/ssm/h3.py::H3.forward / step; spec seqboat_h3.md §3), for
// u [B, L, D], Hh = D / hd heads of hd = head_dim channels, N = d_state, M = N/2 complex modes:
//   q, k, v  = q_proj(u), k_proj(u), v_proj(u)                              [B, L, D] each
//   k'       = shift SSM on k: causal FIR of width N with Ks[c, j] = sum_n Bs[c, n]·Cs[c, n+j]
//              (a cross-correlation; Bs = e_1 at init, so Ks = Cs) + ssm_k_D[c]·k
//   kv[h, i, j] = k'[h·hd + i]·v[h·hd + j]                                  [B, L, Hh, hd, hd]
//   y        = diagonal SSM of head h on each of its hd² channels: S4D-Lin, bilinear,
//              dt = exp(log_dt[h]), A = -exp(inv_A_real) + i·A_imag, kernel 2·Re(C·B·dt/(1 - dtA/2)·dA^l)
//              + D[h]·kv
//   o[j·Hh + h] = sum_i q[h·hd + i]·y[h, i, j]        (the PyTorch path's (j, h) channel order; the
//              CUDA FlashConv uses (h, j): they differ for hd > 1 only — spec A9)
//   out      = output_linear(o)
// No nonlinearity anywhere inside (spec A11). The released checkpoints use hd = 1.
//
// Decode state (this library's, not H3's inference_params): the shift SSM's last N-1 raw k inputs
// (ssm::causal_conv1d's state) and the diagonal SSM's unit-input complex state (ssm::diagonal_ssm's:
// H3's state = dB·ours). A prefill that is given an H3State continues from it and leaves the state
// after its last token in it, so prefill → step → step ... is the same map as one long prefill.

#include <cmath>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::hybrid {

struct H3Config {
  Index d_model = 0;   // D
  Index d_state = 64;  // N: the shift SSM's width and twice the diagonal SSM's complex modes
  Index head_dim = 1;  // hd: D / hd heads

  Index heads() const { return head_dim > 0 ? d_model / head_dim : 0; }  // Hh
  Index modes() const { return d_state / 2; }                                // M
  Index kv_channels() const { return d_model * head_dim; }                   // Hh·hd² channels of the diagonal SSM
};

// The parameters of one H3 module, named and shaped as its state dict with '.' -> '_' (float32;
// view_as_real tensors keep their trailing 2; the channels = 1 axis of the kernels' C is dropped).
struct H3Weights {
  Tensor<float, 2> q_proj_weight, k_proj_weight, v_proj_weight;  // [D, D]
  Tensor<float, 1> q_proj_bias, k_proj_bias, v_proj_bias;        // [D]
  Tensor<float, 2> ssm_k_kernel_B;        // [D, N]    ssm_k_kernel.kernel.B
  Tensor<float, 2> ssm_k_kernel_C;        // [D, N]    ssm_k_kernel.kernel.C [1, D, N]
  Tensor<float, 1> ssm_k_D;               // [D]
  Tensor<float, 1> kernel_log_dt;         // [Hh]      kernel.kernel.log_dt
  Tensor<float, 2> kernel_inv_A_real;     // [Hh, M]   kernel.kernel.inv_A_real (A.real = -exp(.))
  Tensor<float, 2> kernel_A_imag;         // [Hh, M]   kernel.kernel.A_imag
  Tensor<float, 3> kernel_B;              // [Hh, M, 2] kernel.kernel.B
  Tensor<float, 3> kernel_C;              // [Hh, M, 2] kernel.kernel.C [1, Hh, M, 2]
  Tensor<float, 1> D;                     // [Hh]
  Tensor<float, 2> output_linear_weight;  // [D, D]
  Tensor<float, 1> output_linear_bias;    // [D]
};

// The decode state of a batch of B sequences.
struct H3State {
  Tensor<float, 3> shift_state;     // [B, D, N-1] the last N-1 raw k inputs, oldest first
  Tensor<float, 4> diagonal_state;  // [B, Hh·hd², M, 2] (channel (h·hd + i)·hd + j)
};

inline H3State make_h3_state(const H3Config& c, Index batch) {
  H3State s{Tensor<float, 3>(batch, c.d_model, c.d_state - 1), Tensor<float, 4>(batch, c.kv_channels(), c.modes(), 2)};
  s.shift_state.setZero();
  s.diagonal_state.setZero();
  return s;
}

namespace detail {

inline void check_h3_config(const char* op, const H3Config& c) {
  TOKENMIX_CHECK(c.d_model > 0 && c.head_dim > 0 && c.d_model % c.head_dim == 0, op, ": d_model=", c.d_model,
                 " and head_dim=", c.head_dim, " must be positive with head_dim dividing d_model");
  TOKENMIX_CHECK(c.d_state >= 2 && c.d_state % 2 == 0, op, ": d_state=", c.d_state,
                 " must be even and >= 2 (d_state/2 complex modes)");
}

inline void check_h3_weights(const char* op, const H3Config& c, const H3Weights& w) {
  using tokenmix::detail::check_shape;
  check_h3_config(op, c);
  const Index D = c.d_model, N = c.d_state, Hh = c.heads(), M = c.modes();
  const NamedShape<2> dd{{"D", "D"}, {{D, D}}}, dn{{"D", "N"}, {{D, N}}}, hm{{"Hh", "M"}, {{Hh, M}}};
  const NamedShape<1> d1{{"D"}, {{D}}}, h1{{"Hh"}, {{Hh}}};
  const NamedShape<3> hm2{{"Hh", "M", "2"}, {{Hh, M, 2}}};
  check_shape(op, "q_proj_weight", w.q_proj_weight, dd);
  check_shape(op, "k_proj_weight", w.k_proj_weight, dd);
  check_shape(op, "v_proj_weight", w.v_proj_weight, dd);
  check_shape(op, "q_proj_bias", w.q_proj_bias, d1);
  check_shape(op, "k_proj_bias", w.k_proj_bias, d1);
  check_shape(op, "v_proj_bias", w.v_proj_bias, d1);
  check_shape(op, "ssm_k_kernel_B", w.ssm_k_kernel_B, dn);
  check_shape(op, "ssm_k_kernel_C", w.ssm_k_kernel_C, dn);
  check_shape(op, "ssm_k_D", w.ssm_k_D, d1);
  check_shape(op, "kernel_log_dt", w.kernel_log_dt, h1);
  check_shape(op, "kernel_inv_A_real", w.kernel_inv_A_real, hm);
  check_shape(op, "kernel_A_imag", w.kernel_A_imag, hm);
  check_shape(op, "kernel_B", w.kernel_B, hm2);
  check_shape(op, "kernel_C", w.kernel_C, hm2);
  check_shape(op, "D", w.D, h1);
  check_shape(op, "output_linear_weight", w.output_linear_weight, dd);
  check_shape(op, "output_linear_bias", w.output_linear_bias, d1);
  for (Index h = 0; h < Hh; ++h)
    TOKENMIX_CHECK(std::isfinite(w.kernel_log_dt(h)), op, ": kernel_log_dt[", h, "] = ", w.kernel_log_dt(h),
                   " must be finite");
}

// u [B, L, D] (L may be 0); out [B, L, D]; state (optional) of batch B.
inline void check_h3_input(const char* op, const H3Config& c, const ConstTensorView<float, 3>& u,
                           const TensorView<float, 3>* out, const H3State* state) {
  using tokenmix::detail::check_shape;
  tokenmix::detail::check_numel_fits(op, "u", shape_of(u));
  const Index B = u.dimension(0), L = u.dimension(1);
  TOKENMIX_CHECK(B > 0 && u.dimension(2) == c.d_model, op, ": u has shape ", shape_of(u), ", expected [B, L, D=",
                 c.d_model, "] with B > 0");
  if (out) {
    check_shape(op, "out", *out, NamedShape<3>{{"B", "L", "D"}, {{B, L, c.d_model}}}, " like u");
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out->data(), out->size(), u.data(), u.size()), op,
                   ": out must not overlap u");
  }
  if (state) {
    check_shape(op, "state.shift_state", state->shift_state,
                NamedShape<3>{{"B", "D", "N-1"}, {{B, c.d_model, c.d_state - 1}}});
    check_shape(op, "state.diagonal_state", state->diagonal_state,
                NamedShape<4>{{"B", "Hh*hd*hd", "M", "2"}, {{B, c.kv_channels(), c.modes(), 2}}});
  }
}

}  // namespace detail
}  // namespace tokenmix::hybrid
