#pragma once
// A2Mamba's attention-augmented SSM (A2SSM): configuration, weights and validation, shared by the
// fast op (hybrid/a2ssm.hpp) and its oracle (reference/a2ssm.hpp).
//
// Math (LMMMEng/A2Mamba models/a2mamba.py class A2SSM, spec a2mamba.md §2), channels-last, for the
// multi-scale attention's output x_ms [B, H, W, C] (L = H·W tokens in raster order, nh heads of
// dh = C / nh channels, N = d_state, R = dt_rank) and its two post-softmax neighbourhood maps
// attn1, attn2 [B, H, W, nh/2, K²] (heads [0, nh/2) at dilation 1, heads [nh/2, nh) at `dilation`):
//   u      = silu(depthwise_conv2d(x_ms, conv2d_weight, conv2d_bias))       5x5, 'same'
//   [dt_r | Bm | Cm] = x_proj_weight · u                                    R + 2N per token, no bias
//   delta  = dt_projs_weight · dt_r                                         [C] per token, no bias
//   h_t    = exp(Δ_t·A)·h_{t-1} + Δ_t·Bm_t·u_t, Δ = softplus(delta + dt_projs_bias), A = -exp(A_logs)
//            over the raster order, every state kept: Hs [B, L, C, N] (channel index c·N + n)
//   G      = neighborhood_av(attn1, Hs of group 1 heads, K, 1) ‖ neighborhood_av(attn2, Hs of group 2
//            heads, K, dilation)          (values per head: its dh·N hidden-state channels)
//   G'[o]  = Σ_i state_fusion_weight[o, i]·G[i] + state_fusion_bias[o]      (1x1 conv over heads)
//   y[c]   = Σ_n G'[c·N + n]·Cm[n] + Ds[c]·u[c]
// The released code only works for N = 1 (its CUDA scan and its broadcasting readout, spec §1b);
// this is the natural generalisation (the readout sums over n), equal to the released map for N = 1.

#include <array>
#include <cmath>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::hybrid {

struct A2ssmConfig {
  Index channels = 0;     // C (d_model; d_inner = C since expand = 1)
  Index heads = 0;        // nh (even: two head groups)
  Index d_state = 1;      // N (1 in every released variant)
  Index dt_rank = 0;      // R; 0 = ceil(C / 16) as released
  Index conv_kernel = 5;  // d_conv (odd)
  Index kernel_size = 0;  // K of the neighbourhood maps

  Index rank() const { return dt_rank > 0 ? dt_rank : (channels + 15) / 16; }
  Index head_dim() const { return heads > 0 ? channels / heads : 0; }
};

// The parameters of one released A2SSM module, named as its state dict with '.' -> '_'.
struct A2ssmWeights {
  Tensor<float, 4> conv2d_weight;        // [C, 1, d_conv, d_conv]
  Tensor<float, 1> conv2d_bias;          // [C]
  Tensor<float, 2> x_proj_weight;        // [R + 2N, C]
  Tensor<float, 2> dt_projs_weight;      // [C, R]
  Tensor<float, 1> dt_projs_bias;        // [C]
  Tensor<float, 2> A_logs;               // [C, N]
  Tensor<float, 1> Ds;                   // [C]
  Tensor<float, 4> state_fusion_weight;  // [nh, nh, 1, 1]
  Tensor<float, 1> state_fusion_bias;    // [nh]
};

namespace detail {

inline void check_a2ssm_weights(const char* op, const A2ssmConfig& c, const A2ssmWeights& w) {
  using tokenmix::detail::check_shape;
  TOKENMIX_CHECK(c.channels > 0 && c.heads > 0 && c.heads % 2 == 0 && c.channels % c.heads == 0 && c.d_state > 0 &&
                     c.conv_kernel > 0 && c.conv_kernel % 2 == 1 && c.kernel_size > 0,
                 op, ": channels=", c.channels, ", heads=", c.heads, ", d_state=", c.d_state, ", conv_kernel=",
                 c.conv_kernel, ", kernel_size=", c.kernel_size,
                 ": expected positive sizes, an even number of heads dividing channels and an odd conv_kernel");
  const Index C = c.channels, N = c.d_state, R = c.rank(), nh = c.heads, K = c.conv_kernel;
  const NamedShape<1> c1{{"C"}, {{C}}};
  check_shape(op, "conv2d_weight", w.conv2d_weight, NamedShape<4>{{"C", "1", "d_conv", "d_conv"}, {{C, 1, K, K}}});
  check_shape(op, "conv2d_bias", w.conv2d_bias, c1);
  check_shape(op, "x_proj_weight", w.x_proj_weight, NamedShape<2>{{"R+2N", "C"}, {{R + 2 * N, C}}});
  check_shape(op, "dt_projs_weight", w.dt_projs_weight, NamedShape<2>{{"C", "R"}, {{C, R}}});
  check_shape(op, "dt_projs_bias", w.dt_projs_bias, c1);
  check_shape(op, "A_logs", w.A_logs, NamedShape<2>{{"C", "N"}, {{C, N}}});
  check_shape(op, "Ds", w.Ds, c1);
  check_shape(op, "state_fusion_weight", w.state_fusion_weight, NamedShape<4>{{"nh", "nh", "1", "1"}, {{nh, nh, 1, 1}}});
  check_shape(op, "state_fusion_bias", w.state_fusion_bias, NamedShape<1>{{"nh"}, {{nh}}});
}

// x_ms [B, H, W, C]; attn1, attn2 [B, H, W, nh/2, K²]; dilation >= 1 with K·dilation fitting each
// axis (NATTEN's rule: every dilation group holds a whole window; K itself must fit for attn1);
// out [B, H, W, C].
inline void check_a2ssm_input(const char* op, const A2ssmConfig& c, const ConstTensorView<float, 4>& x,
                              const ConstTensorView<float, 5>& attn1, const ConstTensorView<float, 5>& attn2,
                              const std::array<Index, 2>& dilation, const TensorView<float, 4>* out) {
  using tokenmix::detail::check_shape;
  tokenmix::detail::check_numel_fits(op, "x_ms", shape_of(x));
  const Index B = x.dimension(0), H = x.dimension(1), W = x.dimension(2);
  TOKENMIX_CHECK(B > 0 && H > 0 && W > 0 && x.dimension(3) == c.channels, op, ": x_ms has shape ", shape_of(x),
                 ", expected [B, H, W, C=", c.channels, "] with B, H, W > 0");
  for (int a = 0; a < 2; ++a) {
    const Index extent = a == 0 ? H : W;
    TOKENMIX_CHECK(dilation[a] >= 1 && c.kernel_size * dilation[a] <= extent, op, ": dilation[", a, "] = ",
                   dilation[a], " with kernel_size ", c.kernel_size, " does not fit the ", a == 0 ? "height " : "width ",
                   extent, " (expected dilation >= 1 and kernel_size·dilation <= ", extent, ")");
  }
  const NamedShape<5> maps{{"B", "H", "W", "nh/2", "K*K"}, {{B, H, W, c.heads / 2, c.kernel_size * c.kernel_size}}};
  check_shape(op, "attn1", attn1, maps);
  check_shape(op, "attn2", attn2, maps);
  if (out) {
    check_shape(op, "out", *out, NamedShape<4>{{"B", "H", "W", "C"}, {{B, H, W, c.channels}}}, " like x_ms");
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out->data(), out->size(), x.data(), x.size()), op,
                   ": out must not overlap x_ms");
  }
}

}  // namespace detail
}  // namespace tokenmix::hybrid
