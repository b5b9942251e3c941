#pragma once
// hybrid::Mass: A2Mamba's MASS token mixer (Lou, Fu, Yu, 2025; class `Attention` of the released
// code) composed from the library's public operators: blocks::linear (qkv, gate with its eval-mode
// BatchNorm folded in, output projection), blocks::depthwise_conv2d (LePE), blocks::layer_norm,
// attention::neighborhood_attention_weights (qk, rpb and the softmax rows in one kernel pass) /
// neighborhood_av (the two branches, the second at the adaptive dilation over the cascaded values),
// hybrid::A2ssm (stages 1-3) and, in global mode (stage 4), a dense attention per head through
// blocks::linear. RoPE2D, the cascade and the gating are per-token passes here.
//
//   hybrid::Mass mass(config, weights);                    // weights as the released state dict
//   Tensor<float, 4> y = mass.forward(x);                  // x = LN(block input), y [B, H, W, C]
//
// Math, shapes and the released quirks (tied rpb, adaptive dilation): hybrid/mass_types.hpp;
// oracle: reference/mass.hpp. The op keeps its intermediate buffers (reused across calls of one
// shape), so one Mass must not run two calls at once; results are bitwise identical for any thread
// count of `device`.

#include <array>
#include <cmath>
#include <optional>

#include "tokenmix/attention/neighborhood_split.hpp"
#include "tokenmix/blocks/depthwise_conv2d.hpp"
#include "tokenmix/blocks/layer_norm.hpp"
#include "tokenmix/blocks/linear.hpp"
#include "tokenmix/core/profile.hpp"
#include "tokenmix/hybrid/a2ssm.hpp"
#include "tokenmix/hybrid/mass_types.hpp"
#include "tokenmix/simd/activations.hpp"

namespace tokenmix::hybrid {

class Mass {
 public:
  Mass(const MassConfig& config, const MassWeights& w, const Eigen::ThreadPoolDevice* device = nullptr)
      : config_(config), w_(w), device_(device) {
    detail::check_mass_weights("Mass", config, w);
    const Index C = config.channels;
    qkv_ = blocks::PackedLinear(ConstTensorView<float, 2>(w.qkv_weight.data(), 3 * C, C), device);
    proj_ = blocks::PackedLinear(ConstTensorView<float, 2>(w.proj_1_weight.data(), C, C), device);
    // gate = silu(BN(x·W0ᵀ + b0)); eval-mode BN is a per-channel affine s·y + t, folded into W0 and b0.
    Tensor<float, 2> gate_weight(C, C);
    gate_bias_ = Tensor<float, 1>(C);
    for (Index o = 0; o < C; ++o) {
      const double s = double(w.gate_1_weight(o)) / std::sqrt(double(w.gate_1_running_var(o)) + kMassBatchNormEps);
      for (Index i = 0; i < C; ++i) gate_weight(o, i) = static_cast<float>(s * w.gate_0_weight(o, i, 0, 0));
      gate_bias_(o) = static_cast<float>(s * (double(w.gate_0_bias(o)) - w.gate_1_running_mean(o)) + w.gate_1_bias(o));
    }
    gate_ = blocks::PackedLinear(gate_weight, device);
    lepe_weight_ = Tensor<float, 3>(C, 5, 5);
    std::copy_n(w.lepe_weight.data(), C * 25, lepe_weight_.data());
    if (!config.global_mode) ssm_.emplace(config.ssm_config(), w.ssm, device);
  }

  const MassConfig& config() const { return config_; }

  // out [B, H, W, C] = MASS(x), x [B, H, W, C] the normalised block input (H, W >= K·window_dilation).
  void forward(const ConstTensorView<float, 4>& x, TensorView<float, 4> out) {
    detail::check_mass_input("Mass::forward", config_, x, &out);
    const Index B = x.dimension(0), H = x.dimension(1), W = x.dimension(2), L = H * W, rows = B * L;
    const Index C = config_.channels, nh = config_.heads, dh = C / nh, half = nh / 2, K = config_.kernel_size;
    const std::array<Index, 2> dil = mass_dilation(H, W, K);
    prepare_rope(H, W);
    const ConstTensorView<float, 2> x2(x.data(), rows, C);
    using tokenmix::detail::timed;
    // gate [rows, C]; qkv [rows, 3C]; lepe = dwconv5x5(v) [B, H, W, C].
    ensure(gate_out_, {rows, C}), ensure(qkv_out_, {rows, 3 * C}), ensure(v_, {B, H, W, C}), ensure(lepe_, {B, H, W, C});
    timed(profile_, "linear", [&] {
      blocks::linear(x2, gate_, ConstTensorView<float, 1>(gate_bias_.data(), C), view(gate_out_), device_);
      blocks::linear(x2, qkv_, ConstTensorView<float, 1>(w_.qkv_bias.data(), 3 * C), view(qkv_out_), device_);
    });
    timed(profile_, "elementwise", [&] {
      simd::silu_inplace(gate_out_.data(), rows * C);
      for (Index r = 0; r < rows; ++r) std::copy_n(qkv_out_.data() + r * 3 * C + 2 * C, C, v_.data() + r * C);
    });
    timed(profile_, "depthwise_conv2d", [&] {
      blocks::DepthwiseConv2dOptions conv;
      conv.bias = ConstTensorView<float, 1>(w_.lepe_bias.data(), C), conv.device = device_;
      blocks::depthwise_conv2d(ConstTensorView<float, 4>(v_.data(), v_.dimensions()), lepe_weight_, conv, view(lepe_));
    });
    // Per head group g: q, k (RoPE2D; q scaled) and v as [B, H, W, nh/2, dh].
    for (int g = 0; g < 2; ++g) ensure(q_[g], {B, H, W, half, dh}), ensure(k_[g], {B, H, W, half, dh}), ensure(vg_[g], {B, H, W, half, dh});
    timed(profile_, "rope_2d", [&] { rope_split(rows, L); });
    // Branch 1 (window dilation), branch 2 (adaptive dilation) over the cascaded values o1 + v2.
    attention::NeighborhoodParams<2> p1 = attention::NeighborhoodParams<2>::uniform(K, config_.window_dilation);
    attention::NeighborhoodParams<2> p2 = attention::NeighborhoodParams<2>::uniform(K);
    p2.dilation = dil, p1.scale = 1.0f, p2.scale = 1.0f;  // q carries dh^-1/2 (as released)
    attention_map(0, p1, attn1_);
    ensure(o1_, {B, H, W, half, dh}), ensure(o2_, {B, H, W, half, dh});
    timed(profile_, "neighborhood_av", [&] { attention::neighborhood_av<2>(cview(attn1_), cview(vg_[0]), p1, view(o1_), device_); });
    timed(profile_, "elementwise", [&] {
      for (Index i = 0; i < o1_.size(); ++i) vg_[1].data()[i] += o1_.data()[i];
    });
    attention_map(1, p2, attn2_);
    timed(profile_, "neighborhood_av", [&] { attention::neighborhood_av<2>(cview(attn2_), cview(vg_[1]), p2, view(o2_), device_); });
    ensure(x_ms_, {B, H, W, C});
    timed(profile_, "elementwise", [&] {
      for (Index r = 0; r < rows; ++r) {
        std::copy_n(o1_.data() + r * half * dh, half * dh, x_ms_.data() + r * C);
        std::copy_n(o2_.data() + r * half * dh, half * dh, x_ms_.data() + r * C + half * dh);
      }
    });
    // Mixing, then out = proj(LN_proj((LN_norm(mixed) + lepe) ⊙ gate)).
    ensure(mixed_, {B, H, W, C});
    if (config_.global_mode)
      timed(profile_, "global_attention", [&] { global_attention(B, L); });
    else
      ssm_->forward(cview(x_ms_), cview(attn1_), cview(attn2_), dil, view(mixed_));
    const TensorView<float, 2> m2(mixed_.data(), rows, C);
    const ConstTensorView<float, 2> m2c(m2.data(), rows, C);
    timed(profile_, "layer_norm", [&] {
      blocks::layer_norm(m2c, vec(w_.norm_weight), vec(w_.norm_bias), kMassLayerNormEps, m2, device_);
    });
    timed(profile_, "elementwise", [&] {
      for (Index i = 0; i < rows * C; ++i) m2.data()[i] = (m2.data()[i] + lepe_.data()[i]) * gate_out_.data()[i];
    });
    timed(profile_, "layer_norm", [&] {
      blocks::layer_norm(m2c, vec(w_.proj_0_weight), vec(w_.proj_0_bias), kMassLayerNormEps, m2, device_);
    });
    timed(profile_, "linear", [&] {
      blocks::linear(m2c, proj_, vec(w_.proj_1_bias), TensorView<float, 2>(out.data(), rows, C), device_);
    });
  }

  Tensor<float, 4> forward(const ConstTensorView<float, 4>& x) {
    detail::check_mass_input("Mass::forward", config_, x, nullptr);  // before allocating
    Tensor<float, 4> out(x.dimensions());
    forward(x, view(out));
    return out;
  }

  // Adds each operator call's wall time to `profile` (nullptr: off); A2SSM's operators too.
  void set_profile(OpProfile* profile) {
    profile_ = profile;
    if (ssm_) ssm_->set_profile(profile);
  }

  // The last forward's post-softmax maps [B, H, W, nh/2, K²] of the two branches (A2SSM's inputs).
  const Tensor<float, 5>& attn1() const { return attn1_; }
  const Tensor<float, 5>& attn2() const { return attn2_; }

 private:
  template <int R>
  static TensorView<float, R> view(Tensor<float, R>& t) { return TensorView<float, R>(t.data(), t.dimensions()); }
  template <int R>
  static ConstTensorView<float, R> cview(const Tensor<float, R>& t) { return ConstTensorView<float, R>(t.data(), t.dimensions()); }
  static ConstTensorView<float, 1> vec(const Tensor<float, 1>& t) { return cview(t); }
  // Keeps t when it already has these extents (no page faults on repeated calls of one shape).
  template <int R>
  static void ensure(Tensor<float, R>& t, const std::array<Index, R>& dims) {
    bool same = true;
    for (int a = 0; a < R; ++a) same = same && t.dimension(a) == dims[std::size_t(a)];
    if (!same) t = Tensor<float, R>(dims);
  }

  // sin / cos [H, W, dh/2] of the RoPE2D angle of each pair (rows for the first dh/4 pairs, columns
  // for the last), computed in double once per map size.
  void prepare_rope(Index H, Index W) {
    const Index dh = config_.head_dim(), pairs = dh / 2, n_freq = dh / 4;
    if (rope_sin_.dimension(0) == H && rope_sin_.dimension(1) == W) return;
    rope_sin_ = Tensor<float, 3>(H, W, pairs), rope_cos_ = Tensor<float, 3>(H, W, pairs);
    for (Index i = 0; i < H; ++i)
      for (Index j = 0; j < W; ++j)
        for (Index p = 0; p < pairs; ++p) {
          const bool by_row = p < pairs / 2;
          const Index f = by_row ? p : p - pairs / 2;
          const double freq = 1.0 / std::pow(10000.0, n_freq > 1 ? double(f) / double(n_freq - 1) : 0.0);
          const double angle = double(by_row ? i : j) * freq;
          rope_sin_(i, j, p) = static_cast<float>(std::sin(angle)), rope_cos_(i, j, p) = static_cast<float>(std::cos(angle));
        }
  }

  // qkv [rows, (3, nh, dh)] -> q_[g], k_[g] (rotated; q scaled) and vg_[g], [rows, nh/2, dh] each.
  void rope_split(Index rows, Index L) {
    const Index C = config_.channels, nh = config_.heads, dh = C / nh, half = nh / 2, pairs = dh / 2;
    const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
    tokenmix::detail::parallel_for(device_, rows, [&](Index first, Index last) {
      for (Index r = first; r < last; ++r) {
        const float* src = qkv_out_.data() + r * 3 * C;
        const float *sn = rope_sin_.data() + (r % L) * pairs, *cs = rope_cos_.data() + (r % L) * pairs;
        for (Index h = 0; h < nh; ++h) {
          const int g = h < half ? 0 : 1;
          const Index off = (r * half + h % half) * dh;
          for (int m = 0; m < 2; ++m) {
            const float* in = src + m * C + h * dh;
            float* dst = (m == 0 ? q_[g] : k_[g]).data() + off;
            const float s = m == 0 ? scale : 1.0f;
            for (Index p = 0; p < pairs; ++p) {
              const float x0 = in[2 * p], x1 = in[2 * p + 1];
              dst[2 * p] = (x0 * cs[p] - x1 * sn[p]) * s;
              dst[2 * p + 1] = (x1 * cs[p] + x0 * sn[p]) * s;
            }
          }
          std::copy_n(src + 2 * C + h * dh, dh, vg_[g].data() + off);
        }
      }
    });
  }

  // a = softmax(neighborhood_qk(q_g, k_g) + rpb) over each row of K² slots: [B, H, W, nh/2, K²], in
  // one kernel pass (attention::neighborhood_attention_weights: no logits written and read back).
  void attention_map(int g, const attention::NeighborhoodParams<2>& p, Tensor<float, 5>& a) {
    std::optional<ConstTensorView<float, 3>> rpb;
    if (config_.use_rpb) rpb = cview(w_.rpb);
    const Index K = config_.kernel_size;
    ensure(a, {q_[g].dimension(0), q_[g].dimension(1), q_[g].dimension(2), q_[g].dimension(3), K * K});
    tokenmix::detail::timed(profile_, "neighborhood_attention_weights", [&] {
      attention::neighborhood_attention_weights<2>(cview(q_[g]), cview(k_[g]), p, rpb, view(a), device_);
    });
  }

  // mixed_ = softmax(q·kᵀ + rpb_g)·x_ms per head over all L tokens (stage 4), through blocks::linear.
  void global_attention(Index B, Index L) {
    const Index C = config_.channels, nh = config_.heads, dh = C / nh, half = nh / 2;
    if (config_.use_rpb && global_bias_.dimension(1) != L)
      global_bias_ = detail::resize_bicubic(w_.global_rpb.data(), nh, config_.global_grid[0] * config_.global_grid[1], L);
    Tensor<float, 2> qh(L, dh), kh(L, dh), vt(dh, L), logits(L, L), oh(L, dh);
    for (Index b = 0; b < B; ++b)
      for (Index h = 0; h < nh; ++h) {
        const int g = h < half ? 0 : 1;
        for (Index t = 0; t < L; ++t) {
          const Index off = ((b * L + t) * half + h % half) * dh;
          std::copy_n(q_[g].data() + off, dh, qh.data() + t * dh);
          std::copy_n(k_[g].data() + off, dh, kh.data() + t * dh);
          for (Index e = 0; e < dh; ++e) vt(e, t) = x_ms_.data()[(b * L + t) * C + h * dh + e];
        }
        blocks::linear(cview(qh), cview(kh), std::nullopt, view(logits), device_);  // [L, L] = q·kᵀ
        for (Index t = 0; t < L; ++t) {
          float* row = logits.data() + t * L;
          if (config_.use_rpb)
            for (Index m = 0; m < L; ++m) row[m] += global_bias_(h, t, m);
          simd::softmax_inplace(row, L);
        }
        blocks::linear(cview(logits), cview(vt), std::nullopt, view(oh), device_);  // [L, dh]
        for (Index t = 0; t < L; ++t) std::copy_n(oh.data() + t * dh, dh, mixed_.data() + (b * L + t) * C + h * dh);
      }
  }

  MassConfig config_;
  MassWeights w_;
  const Eigen::ThreadPoolDevice* device_;
  OpProfile* profile_ = nullptr;
  blocks::PackedLinear qkv_, gate_, proj_;
  Tensor<float, 1> gate_bias_;           // [C] (BN folded)
  Tensor<float, 3> lepe_weight_;         // [C, 5, 5]
  std::optional<A2ssm> ssm_;             // stages 1-3
  Tensor<float, 3> rope_sin_, rope_cos_;  // [H, W, dh/2]
  Tensor<float, 3> global_bias_;         // [nh, L, L] (rpb.2 resized to the map)
  // Intermediates, reused across calls of one shape.
  Tensor<float, 2> gate_out_, qkv_out_;  // [B·L, C], [B·L, 3C]
  Tensor<float, 4> v_, lepe_, x_ms_, mixed_;  // [B, H, W, C]
  std::array<Tensor<float, 5>, 2> q_, k_, vg_;  // per head group [B, H, W, nh/2, dh]
  Tensor<float, 5> attn1_, attn2_, o1_, o2_;
};

// One call: Mass(config, weights, device).forward(x) (keep a Mass for repeated use).
inline Tensor<float, 4> mass(const MassConfig& config, const MassWeights& weights, const ConstTensorView<float, 4>& x,
                             const Eigen::ThreadPoolDevice* device = nullptr) {
  return Mass(config, weights, device).forward(x);
}

}  // namespace tokenmix::hybrid
