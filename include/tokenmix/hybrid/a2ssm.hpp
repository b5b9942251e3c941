#pragma once
// hybrid::A2ssm: A2Mamba's attention-augmented SSM (Lou, Fu, Yu, 2025) composed from the library's
// public operators: blocks::depthwise_conv2d (the 5x5 input conv + SiLU), blocks::linear (x_proj,
// dt_proj), ssm::selective_scan_states (the raster scan returning every hidden state) and
// attention::neighborhood_av (the hidden states aggregated with MASS's two attention maps, at
// dilation 1 and at the adaptive dilation); the head-mixing 1x1 state fusion and the C / D readout
// are per-token loops here.
//
//   hybrid::A2ssm a2ssm(config, weights);                       // weights as the released state dict
//   Tensor<float, 4> y = a2ssm.forward(x_ms, attn1, attn2, {3, 3});  // x_ms, y [B, H, W, C]
//
// Math, shapes and the N > 1 generalisation: hybrid/a2ssm_types.hpp; oracle: reference/a2ssm.hpp.
// The op keeps its intermediate buffers (reused across calls), so one A2ssm must not run two calls
// at once; results are bitwise identical for any thread count of `device`.

#include <array>
#include <cmath>
#include <vector>

#include "tokenmix/attention/neighborhood_split.hpp"
#include "tokenmix/blocks/depthwise_conv2d.hpp"
#include "tokenmix/blocks/linear.hpp"
#include "tokenmix/core/profile.hpp"
#include "tokenmix/hybrid/a2ssm_types.hpp"
#include "tokenmix/simd/arch.hpp"
#include "tokenmix/ssm/selective_scan.hpp"

namespace tokenmix::hybrid {

class A2ssm {
 public:
  A2ssm(const A2ssmConfig& config, const A2ssmWeights& w, const Eigen::ThreadPoolDevice* device = nullptr)
      : config_(config), w_(w), device_(device) {
    detail::check_a2ssm_weights("A2ssm", config, w);
    const Index C = config.channels, N = config.d_state, K = config.conv_kernel;
    conv_weight_ = Tensor<float, 3>(C, K, K);
    std::copy_n(w.conv2d_weight.data(), C * K * K, conv_weight_.data());
    A_ = Tensor<float, 2>(C, N);
    for (Index i = 0; i < C * N; ++i) A_.data()[i] = -std::exp(w.A_logs.data()[i]);
    x_proj_ = blocks::PackedLinear(w.x_proj_weight, device);
    dt_proj_ = blocks::PackedLinear(w.dt_projs_weight, device);
  }

  const A2ssmConfig& config() const { return config_; }

  // out [B, H, W, C] = A2SSM(x_ms) with MASS's maps attn1 (heads [0, nh/2), dilation 1) and attn2
  // (heads [nh/2, nh), `dilation` per axis), both [B, H, W, nh/2, K²] post-softmax.
  void forward(const ConstTensorView<float, 4>& x_ms, const ConstTensorView<float, 5>& attn1,
               const ConstTensorView<float, 5>& attn2, const std::array<Index, 2>& dilation,
               TensorView<float, 4> out) {
    detail::check_a2ssm_input("A2ssm::forward", config_, x_ms, attn1, attn2, dilation, &out);
    const Index B = x_ms.dimension(0), H = x_ms.dimension(1), W = x_ms.dimension(2), L = H * W;
    const Index C = config_.channels, N = config_.d_state, R = config_.rank();
    const Index rows = B * L;
    using tokenmix::detail::timed;
    ensure(u_, {B, H, W, C});
    // u = silu(dwconv(x_ms) + bias)
    timed(profile_, "depthwise_conv2d", [&] {
      blocks::DepthwiseConv2dOptions conv;
      conv.bias = w_.conv2d_bias, conv.activation_silu = true, conv.device = device_;
      blocks::depthwise_conv2d(x_ms, conv_weight_, conv, TensorView<float, 4>(u_.data(), u_.dimensions()));
    });
    // [dt_r | Bm | Cm] = x_proj(u); delta = dt_proj(dt_r)
    ensure(z_, {rows, R + 2 * N}), ensure(dt_r_, {rows, R}), ensure(bm_, {B, L, N}), ensure(delta_, {B, L, C});
    timed(profile_, "linear", [&] {
      blocks::linear(ConstTensorView<float, 2>(u_.data(), rows, C), x_proj_, std::nullopt,
                     TensorView<float, 2>(z_.data(), z_.dimensions()), device_);
      for (Index r = 0; r < rows; ++r) {
        std::copy_n(z_.data() + r * (R + 2 * N), R, dt_r_.data() + r * R);
        std::copy_n(z_.data() + r * (R + 2 * N) + R, N, bm_.data() + r * N);
      }
      blocks::linear(ConstTensorView<float, 2>(dt_r_.data(), rows, R), dt_proj_, std::nullopt,
                     TensorView<float, 2>(delta_.data(), rows, C), device_);
    });
    // Every hidden state of the raster scan: Hs [B, L, C, N].
    ensure(states_, {B, L, C, N}), ensure(scan_out_, {B, L, C});
    timed(profile_, "selective_scan_states", [&] {
      ssm::SelectiveScanOptions scan;
      scan.delta_bias = w_.dt_projs_bias, scan.delta_softplus = true, scan.device = device_;
      const ConstTensorView<float, 3> u3(u_.data(), B, L, C), bm3(bm_.data(), B, L, N);
      ssm::selective_scan_states(u3, ConstTensorView<float, 3>(delta_.data(), B, L, C), A_, ssm::ScanOperand(bm3),
                                 ssm::ScanOperand(bm3), scan, TensorView<float, 3>(scan_out_.data(), B, L, C),
                                 TensorView<float, 4>(states_.data(), states_.dimensions()), nullptr);
    });
    // G: each head group's states aggregated with its map.
    timed(profile_, "neighborhood_av", [&] { aggregate(attn1, attn2, dilation, B, H, W); });
    timed(profile_, "state_fusion_readout", [&] { fuse_and_read_out(out, rows); });
  }

  Tensor<float, 4> forward(const ConstTensorView<float, 4>& x_ms, const ConstTensorView<float, 5>& attn1,
                           const ConstTensorView<float, 5>& attn2, const std::array<Index, 2>& dilation) {
    detail::check_a2ssm_input("A2ssm::forward", config_, x_ms, attn1, attn2, dilation, nullptr);  // before allocating
    Tensor<float, 4> out(x_ms.dimension(0), x_ms.dimension(1), x_ms.dimension(2), config_.channels);
    forward(x_ms, attn1, attn2, dilation, TensorView<float, 4>(out.data(), out.dimensions()));
    return out;
  }

  // Adds each operator call's wall time to `profile` (nullptr: off).
  void set_profile(OpProfile* profile) { profile_ = profile; }

 private:
  // agg_[g] [B, H, W, nh/2, dh·N] = head group g's states aggregated with its map.
  void aggregate(const ConstTensorView<float, 5>& attn1, const ConstTensorView<float, 5>& attn2,
                 const std::array<Index, 2>& dilation, Index B, Index H, Index W) {
    const Index C = config_.channels, N = config_.d_state, nh = config_.heads, rows = B * H * W;
    const Index group = nh / 2, per_head = C / nh * N;
    ensure(values_, {B, H, W, group, per_head});
    for (int g = 0; g < 2; ++g) {
      for (Index r = 0; r < rows; ++r)  // the group's heads, contiguous
        std::copy_n(states_.data() + r * C * N + g * group * per_head, group * per_head, values_.data() + r * group * per_head);
      attention::NeighborhoodParams<2> p = attention::NeighborhoodParams<2>::uniform(config_.kernel_size);
      if (g == 1) p.dilation = dilation;
      ensure(agg_[std::size_t(g)], {B, H, W, group, per_head});
      attention::neighborhood_av<2>(g == 0 ? attn1 : attn2, ConstTensorView<float, 5>(values_.data(), values_.dimensions()), p,
                                    TensorView<float, 5>(agg_[std::size_t(g)].data(), agg_[std::size_t(g)].dimensions()), device_);
    }
  }

  // State fusion over the heads, G'[o] = bsf[o] + Σ_i Wsf[o, i]·G[i] (vectors over a head's dh·N
  // entries), then y[c] = Σ_n G'[c·N + n]·Cm[n] + Ds[c]·u[c] (vectors over c when N = 1).
  void fuse_and_read_out(TensorView<float, 4> out, Index rows) {
    const Index C = config_.channels, N = config_.d_state, R = config_.rank(), nh = config_.heads, group = nh / 2;
    const Index per_head = C / nh * N;
    using V = simd::vfloat<>;
    constexpr Index Wl = static_cast<Index>(simd::lanes<simd::default_arch>);
    constexpr Index kOutputs = 8;  // output heads accumulated together: independent FMA chains
    tokenmix::detail::parallel_for(device_, rows, [&](Index first, Index last) {
      alignas(64) float pad[2 * Wl];
      std::vector<float> mixed(static_cast<std::size_t>(nh * per_head));
      std::vector<const float*> G(static_cast<std::size_t>(nh));  // head i's aggregated states
      for (Index r = first; r < last; ++r) {
        for (Index i = 0; i < nh; ++i)
          G[std::size_t(i)] = agg_[i < group ? 0 : 1].data() + (r * group + i % group) * per_head;
        for (Index e = 0; e < per_head; e += Wl)
          for (Index o0 = 0; o0 < nh; o0 += kOutputs) {
            const Index n = std::min(Wl, per_head - e), outputs = std::min(kOutputs, nh - o0);
            V acc[kOutputs];
            for (Index o = 0; o < outputs; ++o) acc[o] = V(w_.state_fusion_bias(o0 + o));
            for (Index i = 0; i < nh; ++i) {  // the same order of terms per output as one chain
              const V g = simd::load_upto<simd::default_arch>(G[std::size_t(i)] + e, n, pad);
              for (Index o = 0; o < outputs; ++o)
                acc[o] = simd::fmadd<simd::default_arch>(V(w_.state_fusion_weight(o0 + o, i, 0, 0)), g, acc[o]);
            }
            for (Index o = 0; o < outputs; ++o)
              simd::store_upto<simd::default_arch>(mixed.data() + (o0 + o) * per_head + e, acc[o], n, pad);
          }
        const float* cm = z_.data() + r * (R + 2 * N) + R + N;
        const float* u = u_.data() + r * C;
        float* y = out.data() + r * C;
        if (N == 1) {
          const V c0(cm[0]);
          for (Index c = 0; c < C; c += Wl) {
            const Index n = std::min(Wl, C - c);
            const V d = simd::load_upto<simd::default_arch>(w_.Ds.data() + c, n, pad);
            const V uc = simd::load_upto<simd::default_arch>(u + c, n, pad + Wl);
            simd::store_upto<simd::default_arch>(y + c, simd::fmadd<simd::default_arch>(simd::load_upto<simd::default_arch>(mixed.data() + c, n, pad), c0, d * uc), n, pad);
          }
          continue;
        }
        for (Index c = 0; c < C; ++c) {
          float acc = w_.Ds(c) * u[c];
          for (Index k = 0; k < N; ++k) acc += mixed[static_cast<std::size_t>(c * N + k)] * cm[k];
          y[c] = acc;
        }
      }
    });
  }

  // Keeps t when it already has these extents: the buffers are reused across calls of one shape
  // (fresh ones would page-fault on every call).
  template <int R>
  static void ensure(Tensor<float, R>& t, const std::array<Index, R>& dims) {
    bool same = true;
    for (int a = 0; a < R; ++a) same = same && t.dimension(a) == dims[std::size_t(a)];
    if (!same) t = Tensor<float, R>(dims);
  }

  A2ssmConfig config_;
  A2ssmWeights w_;
  const Eigen::ThreadPoolDevice* device_;
  OpProfile* profile_ = nullptr;
  Tensor<float, 3> conv_weight_;  // [C, K, K]
  Tensor<float, 2> A_;            // [C, N] = -exp(A_logs)
  blocks::PackedLinear x_proj_, dt_proj_;
  // Intermediates, reused across calls of one shape.
  Tensor<float, 4> u_, states_;   // [B, H, W, C], [B, L, C, N]
  Tensor<float, 2> z_, dt_r_;     // [B·L, R + 2N], [B·L, R]
  Tensor<float, 3> bm_, delta_, scan_out_;
  Tensor<float, 5> values_;                 // [B, H, W, nh/2, dh·N] one group's states
  std::array<Tensor<float, 5>, 2> agg_;     // [B, H, W, nh/2, dh·N] per head group, aggregated
};

// One call: A2ssm(config, weights, device).forward(...) (keep an A2ssm for repeated use).
inline Tensor<float, 4> a2ssm(const A2ssmConfig& config, const A2ssmWeights& weights,
                              const ConstTensorView<float, 4>& x_ms, const ConstTensorView<float, 5>& attn1,
                              const ConstTensorView<float, 5>& attn2, const std::array<Index, 2>& dilation,
                              const Eigen::ThreadPoolDevice* device = nullptr) {
  return A2ssm(config, weights, device).forward(x_ms, attn1, attn2, dilation);
}

}  // namespace tokenmix::hybrid
