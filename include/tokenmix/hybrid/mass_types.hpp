#pragma once
// A2Mamba's MASS token mixer (class `Attention` of the released code): configuration, weights,
// validation and the two pieces of its math shared by the fast op (hybrid/mass.hpp) and its oracle
// (reference/mass.hpp): the adaptive dilation rule and the bicubic resize of the global bias.
//
// Math (LMMMEng/A2Mamba models/a2mamba.py class Attention, spec a2mamba.md §3), channels-last, for
// the block's normalised input x [B, H, W, C] (nh heads of dh = C / nh channels, window K):
//   dil     = (min(H / K, K), min(W / K, K))                     (integer division; the adaptive rule)
//   gate    = silu(BN(x·gate_0ᵀ + b))                            (BatchNorm in eval mode, eps 1e-5)
//   [q|k|v] = x·qkvᵀ + b, channel order (q/k/v, head, dh);  lepe = dwconv5x5(v) + b
//   q, k    = RoPE2D(q)·dh^-1/2, RoPE2D(k): interleaved pairs (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin),
//             angles f_p = 10000^-(p / (dh/4 - 1)) (p < dh/4, each used by two pairs); pairs of the
//             first dh/2 channels rotate by row·f, of the last dh/2 by column·f
//   heads [0, nh/2):  a1 = softmax(neighborhood_qk(q1, k1, K, window_dilation) + rpb); o1 = a1·v1
//   heads [nh/2, nh): a2 = softmax(neighborhood_qk(q2, k2, K, dil) + rpb);  o2 = a2·(o1 + v2)  (cascade)
//   x_ms    = o1 ‖ o2;  mixed = A2SSM(x_ms, a1, a2, dil)       stages 1-3 (hybrid/a2ssm_types.hpp)
//             or, global_mode (stage 4): softmax(q·kᵀ + rpb_g)·x_ms per head over all L tokens
//   out     = LN_proj(LN_norm(mixed) + lepe) ⊙ gate)·proj_1ᵀ + b   (LN over channels, eps 1e-6)
// rpb [nh/2, 2K-1, 2K-1] serves both branches: the released list `[Parameter] * 2` holds ONE tensor
// twice (state-dict keys rpb.0 and rpb.1, equal values). rpb_g = rpb.2 [1, nh, L0, L0] of the stage's
// training resolution (H0, W0); at another size it is resized bicubically to [L, L] as released.

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/hybrid/a2ssm_types.hpp"

namespace tokenmix::hybrid {

struct MassConfig {
  Index channels = 0;                  // C
  Index heads = 0;                     // nh (even: two head groups; dh = C / nh a multiple of 4 for RoPE2D)
  Index kernel_size = 0;               // K (odd), both branches
  Index window_dilation = 1;           // the first branch's dilation (1 in every released variant)
  bool global_mode = false;            // stage 4: dense attention over all heads instead of A2SSM
  std::array<Index, 2> global_grid{};  // global_mode: (H0, W0) of the global bias table rpb.2
  bool use_rpb = true;                 // every released variant
  A2ssmConfig ssm;                     // channels / heads / kernel_size are filled from this config

  Index head_dim() const { return heads > 0 ? channels / heads : 0; }
  A2ssmConfig ssm_config() const {
    A2ssmConfig c = ssm;
    c.channels = channels, c.heads = heads, c.kernel_size = kernel_size;
    return c;
  }
};

inline constexpr double kMassLayerNormEps = 1e-6;  // LayerNorm2d
inline constexpr double kMassBatchNormEps = 1e-5;  // nn.BatchNorm2d

// The parameters of one released `Attention` module, named as its state dict with '.' -> '_'.
struct MassWeights {
  Tensor<float, 4> qkv_weight;           // [3C, C, 1, 1]
  Tensor<float, 1> qkv_bias;             // [3C]
  Tensor<float, 4> gate_0_weight;        // [C, C, 1, 1]
  Tensor<float, 1> gate_0_bias;          // [C]
  Tensor<float, 1> gate_1_weight, gate_1_bias, gate_1_running_mean, gate_1_running_var;  // [C] BatchNorm2d
  Tensor<float, 4> lepe_weight;          // [C, 1, 5, 5]
  Tensor<float, 1> lepe_bias;            // [C]
  Tensor<float, 1> norm_weight, norm_bias;      // [C]
  Tensor<float, 1> proj_0_weight, proj_0_bias;  // [C] (LayerNorm)
  Tensor<float, 4> proj_1_weight;        // [C, C, 1, 1]
  Tensor<float, 1> proj_1_bias;          // [C]
  Tensor<float, 3> rpb;                  // [nh/2, 2K-1, 2K-1] = rpb.0 = rpb.1 (use_rpb)
  Tensor<float, 4> global_rpb;           // [1, nh, H0·W0, H0·W0] = rpb.2 (global_mode and use_rpb)
  A2ssmWeights ssm;                      // token_mixer.ssm.* (not global_mode)
};

// The released adaptive dilation of the second branch: (min(H / K, K), min(W / K, K)).
inline std::array<Index, 2> mass_dilation(Index H, Index W, Index K) {
  return {std::min(H / K, K), std::min(W / K, K)};
}

namespace detail {

inline void check_mass_weights(const char* op, const MassConfig& c, const MassWeights& w) {
  using tokenmix::detail::check_shape;
  const Index C = c.channels, nh = c.heads, K = c.kernel_size;
  TOKENMIX_CHECK(C > 0 && nh > 0 && nh % 2 == 0 && C % nh == 0 && (C / nh) % 4 == 0 && K > 0 && K % 2 == 1 &&
                     c.window_dilation >= 1,
                 op, ": channels=", C, ", heads=", nh, ", kernel_size=", K, ", window_dilation=", c.window_dilation,
                 ": expected an even number of heads dividing channels into heads of a multiple of 4 channels "
                 "(RoPE2D), an odd kernel_size and window_dilation >= 1");
  const NamedShape<1> c1{{"C"}, {{C}}};
  const NamedShape<4> square{{"C", "C", "1", "1"}, {{C, C, 1, 1}}};
  check_shape(op, "qkv_weight", w.qkv_weight, NamedShape<4>{{"3C", "C", "1", "1"}, {{3 * C, C, 1, 1}}});
  check_shape(op, "qkv_bias", w.qkv_bias, NamedShape<1>{{"3C"}, {{3 * C}}});
  check_shape(op, "gate_0_weight", w.gate_0_weight, square);
  check_shape(op, "proj_1_weight", w.proj_1_weight, square);
  check_shape(op, "lepe_weight", w.lepe_weight, NamedShape<4>{{"C", "1", "5", "5"}, {{C, 1, 5, 5}}});
  const std::pair<const char*, const Tensor<float, 1>*> vectors[] = {
      {"gate_0_bias", &w.gate_0_bias}, {"gate_1_weight", &w.gate_1_weight}, {"gate_1_bias", &w.gate_1_bias},
      {"gate_1_running_mean", &w.gate_1_running_mean}, {"gate_1_running_var", &w.gate_1_running_var},
      {"lepe_bias", &w.lepe_bias}, {"norm_weight", &w.norm_weight}, {"norm_bias", &w.norm_bias},
      {"proj_0_weight", &w.proj_0_weight}, {"proj_0_bias", &w.proj_0_bias}, {"proj_1_bias", &w.proj_1_bias}};
  for (const auto& [name, t] : vectors) check_shape(op, name, *t, c1);
  for (Index i = 0; i < C; ++i)
    TOKENMIX_CHECK(w.gate_1_running_var(i) >= 0, op, ": gate_1_running_var[", i, "] = ", w.gate_1_running_var(i),
                   ", expected a variance >= 0");
  if (c.use_rpb) {
    check_shape(op, "rpb", w.rpb, NamedShape<3>{{"nh/2", "2K-1", "2K-1"}, {{nh / 2, 2 * K - 1, 2 * K - 1}}});
  } else {
    TOKENMIX_CHECK(w.rpb.size() == 0 && w.global_rpb.size() == 0, op,
                   ": use_rpb is false but rpb / global_rpb are given (leave them empty)");
  }
  if (c.global_mode) {
    const Index L0 = c.global_grid[0] * c.global_grid[1];
    TOKENMIX_CHECK(!c.use_rpb || L0 > 0, op, ": global_mode with use_rpb needs global_grid (H0, W0) > 0, got (",
                   c.global_grid[0], ", ", c.global_grid[1], ")");
    if (c.use_rpb)
      check_shape(op, "global_rpb", w.global_rpb, NamedShape<4>{{"1", "nh", "H0*W0", "H0*W0"}, {{1, nh, L0, L0}}});
  } else {
    check_a2ssm_weights(op, c.ssm_config(), w.ssm);
  }
}

// x [B, H, W, C] with H, W >= K·window_dilation (every window of the first branch fits; the
// adaptive dilation then fits too); out [B, H, W, C].
inline void check_mass_input(const char* op, const MassConfig& c, const ConstTensorView<float, 4>& x,
                             const TensorView<float, 4>* out) {
  tokenmix::detail::check_numel_fits(op, "x", shape_of(x));
  const Index B = x.dimension(0), H = x.dimension(1), W = x.dimension(2), reach = c.kernel_size * c.window_dilation;
  TOKENMIX_CHECK(B > 0 && x.dimension(3) == c.channels, op, ": x has shape ", shape_of(x), ", expected [B, H, W, C=",
                 c.channels, "] with B > 0");
  TOKENMIX_CHECK(H >= reach && W >= reach, op, ": x has shape ", shape_of(x), ", expected H and W >= kernel_size·",
                 "window_dilation = ", reach, " (every neighbourhood window must fit the map)");
  if (out) {
    tokenmix::detail::check_shape(op, "out", *out, NamedShape<4>{{"B", "H", "W", "C"}, {{B, H, W, c.channels}}}, " like x");
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out->data(), out->size(), x.data(), x.size()), op,
                   ": out must not overlap x");
  }
}

// PyTorch's F.interpolate(t, size=(L, L), mode='bicubic', align_corners=False) of t [heads, L0, L0]:
// separable cubic convolution (A = -0.75), source coordinate (dst + 0.5)·L0/L - 0.5 (not clamped),
// taps floor - 1 .. floor + 2 clamped to the table. Returns [heads, L, L] (a copy when L == L0).
template <class Acc = double>
Tensor<float, 3> resize_bicubic(const float* table, Index heads, Index L0, Index L) {
  auto weights = [](Acc t) {  // the four tap weights at fractional offset t
    const Acc A = -0.75;
    auto near = [&](Acc x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };
    auto far = [&](Acc x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };
    return std::array<Acc, 4>{far(t + 1), near(t), near(1 - t), far(2 - t)};
  };
  struct Taps {
    std::array<Index, 4> index;
    std::array<Acc, 4> weight;
  };
  std::vector<Taps> taps(static_cast<std::size_t>(L));
  const Acc scale = Acc(L0) / Acc(L);
  for (Index d = 0; d < L; ++d) {
    const Acc src = (Acc(d) + Acc(0.5)) * scale - Acc(0.5);
    const Acc fl = std::floor(src);
    Taps& t = taps[std::size_t(d)];
    t.weight = weights(src - fl);
    for (int k = 0; k < 4; ++k) t.index[std::size_t(k)] = std::clamp<Index>(Index(fl) - 1 + k, 0, L0 - 1);
  }
  Tensor<float, 3> out(heads, L, L);
  if (L == L0) {
    std::copy_n(table, heads * L * L, out.data());  // torch copies when the size is unchanged
    return out;
  }
  for (Index h = 0; h < heads; ++h)
    for (Index r = 0; r < L; ++r)
      for (Index col = 0; col < L; ++col) {
        const Taps &tr = taps[std::size_t(r)], &tc = taps[std::size_t(col)];
        Acc acc = 0;
        for (int a = 0; a < 4; ++a) {
          Acc row = 0;
          for (int b = 0; b < 4; ++b) row += tc.weight[std::size_t(b)] * Acc(table[(h * L0 + tr.index[std::size_t(a)]) * L0 + tc.index[std::size_t(b)]]);
          acc += tr.weight[std::size_t(a)] * row;
        }
        out(h, r, col) = static_cast<float>(acc);
      }
  return out;
}

}  // namespace detail
}  // namespace tokenmix::hybrid
