#pragma once
// blocks::A2MambaBlock and blocks::A2MambaBackbone: A2Mamba (Lou, Fu, Yu, 2025) for images,
// channels-last, composed from the library's public operators: hybrid::Mass (the token mixer, with
// hybrid::A2ssm inside in stages 1-3), blocks::depthwise_conv2d (cpe1 / cpe2 / the FFN's 3x3),
// blocks::layer_norm and blocks::linear (the FFN's 1x1 convs, the stem / downsample 3x3 convs as an
// im2col product with their eval-mode BatchNorm folded in, the head).
//
//   auto ckpt = io::SafetensorsFile("a2mamba_nano.safetensors");   // the released state dict
//   blocks::A2MambaBackbone net(blocks::A2MambaConfig::nano(), ckpt);
//   auto features = net.features(image);                           // image [B, 224, 224, 3]
//   // features[i] [B, 56 / 2^i, 56 / 2^i, dims[i]];  net.logits(image) [B, num_classes]
//
// Math and the state dict: blocks/a2mamba_types.hpp; oracle: reference/a2mamba.hpp (the block);
// the backbone is checked against a PyTorch transcription of the released model
// (tests/data/a2mamba). Each object keeps its buffers (one call at a time per object); results are
// bitwise identical for any thread count of `device`.

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "tokenmix/blocks/a2mamba_types.hpp"
#include "tokenmix/blocks/depthwise_conv2d.hpp"
#include "tokenmix/blocks/layer_norm.hpp"
#include "tokenmix/blocks/linear.hpp"
#include "tokenmix/hybrid/mass.hpp"
#include "tokenmix/simd/activations.hpp"

namespace tokenmix::blocks {

// One released Block (no layerscale): x [B, H, W, C] -> [B, H, W, C].
class A2MambaBlock {
 public:
  A2MambaBlock(const hybrid::MassConfig& mixer, Index ffn_dim, const A2MambaBlockWeights& w,
               const Eigen::ThreadPoolDevice* device = nullptr)
      : w_(w), device_(device), mixer_(mixer, w.token_mixer, device), ffn_dim_(ffn_dim) {
    const Index C = mixer.channels;
    tokenmix::detail::check_shape("A2MambaBlock", "fc1_weight", w.fc1_weight, NamedShape<2>{{"F", "C"}, {{ffn_dim, C}}});
    tokenmix::detail::check_shape("A2MambaBlock", "fc2_weight", w.fc2_weight, NamedShape<2>{{"C", "F"}, {{C, ffn_dim}}});
    fc1_ = PackedLinear(w.fc1_weight, device), fc2_ = PackedLinear(w.fc2_weight, device);
  }

  const hybrid::MassConfig& mixer_config() const { return mixer_.config(); }

  // x += the block's residual branches, in place: x [B, H, W, C] (H, W >= the mixer's window).
  void forward_inplace(TensorView<float, 4> x) {
    const Index B = x.dimension(0), H = x.dimension(1), W = x.dimension(2), C = x.dimension(3), rows = B * H * W;
    hybrid::detail::check_mass_input("A2MambaBlock::forward", mixer_.config(), ConstTensorView<float, 4>(x.data(), x.dimensions()), nullptr);
    ensure(t_, {B, H, W, C}), ensure(mixed_, {B, H, W, C}), ensure(hidden_, {B, H, W, ffn_dim_}), ensure(hidden_conv_, {B, H, W, ffn_dim_});
    using tokenmix::detail::timed;
    add_depthwise3x3(x, w_.cpe1_weight, w_.cpe1_bias);
    timed(profile_, "layer_norm", [&] {
      layer_norm(cflat(x.data(), rows, C), w_.norm1_weight, w_.norm1_bias, kA2MambaLayerNormEps, flat(t_.data(), rows, C), device_);
    });
    mixer_.forward(ConstTensorView<float, 4>(t_.data(), t_.dimensions()), TensorView<float, 4>(mixed_.data(), mixed_.dimensions()));
    timed(profile_, "elementwise", [&] {
      for (Index i = 0; i < rows * C; ++i) x.data()[i] += mixed_.data()[i];
    });
    add_depthwise3x3(x, w_.cpe2_weight, w_.cpe2_bias);
    // FFN: t = gelu(fc1(LN2(x))); x += fc2(t + dwconv3x3(t)).
    timed(profile_, "layer_norm", [&] {
      layer_norm(cflat(x.data(), rows, C), w_.norm2_weight, w_.norm2_bias, kA2MambaLayerNormEps, flat(t_.data(), rows, C), device_);
    });
    timed(profile_, "linear", [&] { linear(cflat(t_.data(), rows, C), fc1_, w_.fc1_bias, flat(hidden_.data(), rows, ffn_dim_), device_); });
    timed(profile_, "gelu", [&] { simd::gelu_inplace(hidden_.data(), rows * ffn_dim_); });
    timed(profile_, "depthwise_conv2d", [&] {
      DepthwiseConv2dOptions conv;
      conv.bias = w_.dwconv_bias, conv.device = device_;
      depthwise_conv2d(ConstTensorView<float, 4>(hidden_.data(), hidden_.dimensions()), w_.dwconv_weight, conv,
                       TensorView<float, 4>(hidden_conv_.data(), hidden_conv_.dimensions()));
    });
    timed(profile_, "elementwise", [&] {
      for (Index i = 0; i < rows * ffn_dim_; ++i) hidden_conv_.data()[i] += hidden_.data()[i];
    });
    timed(profile_, "linear", [&] { linear(cflat(hidden_conv_.data(), rows, ffn_dim_), fc2_, w_.fc2_bias, flat(mixed_.data(), rows, C), device_); });
    timed(profile_, "elementwise", [&] {
      for (Index i = 0; i < rows * C; ++i) x.data()[i] += mixed_.data()[i];
    });
  }

  // Adds each operator call's wall time to `profile` (nullptr: off), the mixer's too.
  void set_profile(OpProfile* profile) { profile_ = profile, mixer_.set_profile(profile); }

  Tensor<float, 4> forward(const ConstTensorView<float, 4>& x) {
    Tensor<float, 4> out(x.dimensions());
    std::copy_n(x.data(), x.size(), out.data());
    forward_inplace(TensorView<float, 4>(out.data(), out.dimensions()));
    return out;
  }

 private:
  static TensorView<float, 2> flat(float* p, Index rows, Index cols) { return TensorView<float, 2>(p, rows, cols); }
  static ConstTensorView<float, 2> cflat(const float* p, Index rows, Index cols) { return ConstTensorView<float, 2>(p, rows, cols); }
  template <int R>
  static void ensure(Tensor<float, R>& t, const std::array<Index, R>& dims) {
    bool same = true;
    for (int a = 0; a < R; ++a) same = same && t.dimension(a) == dims[std::size_t(a)];
    if (!same) t = Tensor<float, R>(dims);
  }
  // x += dwconv3x3(x) + bias (the conditional position encodings).
  void add_depthwise3x3(TensorView<float, 4> x, const Tensor<float, 3>& weight, const Tensor<float, 1>& bias) {
    tokenmix::detail::timed(profile_, "depthwise_conv2d", [&] {
      DepthwiseConv2dOptions conv;
      conv.bias = bias, conv.device = device_;
      depthwise_conv2d(ConstTensorView<float, 4>(x.data(), x.dimensions()), weight, conv,
                       TensorView<float, 4>(mixed_.data(), mixed_.dimensions()));
    });
    tokenmix::detail::timed(profile_, "elementwise", [&] {
      for (Index i = 0; i < x.size(); ++i) x.data()[i] += mixed_.data()[i];
    });
  }

  A2MambaBlockWeights w_;
  const Eigen::ThreadPoolDevice* device_;
  OpProfile* profile_ = nullptr;
  hybrid::Mass mixer_;
  Index ffn_dim_;
  PackedLinear fc1_, fc2_;
  Tensor<float, 4> t_, mixed_, hidden_, hidden_conv_;  // [B, H, W, C] x2, [B, H, W, F] x2
};

// A 3x3 convolution (padding 1, stride 1 or 2, no bias) followed by an eval-mode BatchNorm, as one
// product: im2col rows [B·Ho·Wo, 9·Cin] (taps (kh, kw, cin)) times the BN-scaled weight.
class Conv3x3Bn {
 public:
  Conv3x3Bn() = default;
  Conv3x3Bn(const io::SafetensorsFile& f, const std::string& conv, const std::string& bn, Index in, Index out,
            Index stride, const Eigen::ThreadPoolDevice* device)
      : in_(in), out_(out), stride_(stride) {
    const char* op = "A2MambaBackbone";
    const Tensor<float, 4> w = detail::read_parameter<4>(op, f, conv + ".weight", {out, in, 3, 3});
    const std::array<Index, 1> c1{out};
    const Tensor<float, 1> gamma = detail::read_parameter<1>(op, f, bn + ".weight", c1);
    const Tensor<float, 1> beta = detail::read_parameter<1>(op, f, bn + ".bias", c1);
    const Tensor<float, 1> mean = detail::read_parameter<1>(op, f, bn + ".running_mean", c1);
    const Tensor<float, 1> var = detail::read_parameter<1>(op, f, bn + ".running_var", c1);
    Tensor<float, 2> folded(out, 9 * in);  // [Cout, (kh, kw, cin)]
    shift_ = Tensor<float, 1>(out);
    for (Index o = 0; o < out; ++o) {
      TOKENMIX_CHECK(var(o) >= 0, op, ": ", bn, ".running_var[", o, "] = ", var(o), ", expected a variance >= 0");
      const double s = double(gamma(o)) / std::sqrt(double(var(o)) + kA2MambaBatchNormEps);
      for (Index ci = 0; ci < in; ++ci)
        for (Index k = 0; k < 9; ++k) folded(o, k * in + ci) = static_cast<float>(s * w(o, ci, k / 3, k % 3));
      shift_(o) = static_cast<float>(beta(o) - s * mean(o));
    }
    weight_ = PackedLinear(folded, device);
  }

  Index out_channels() const { return out_; }
  static Index out_size(Index n, Index stride) { return (n - 1) / stride + 1; }  // (n + 2 - 3) / s + 1

  // x [B, H, W, Cin] -> out [B, Ho, Wo, Cout] (resized when needed).
  void forward(const ConstTensorView<float, 4>& x, Tensor<float, 4>& out, const Eigen::ThreadPoolDevice* device) {
    const Index B = x.dimension(0), H = x.dimension(1), W = x.dimension(2), Ho = out_size(H, stride_), Wo = out_size(W, stride_);
    TOKENMIX_CHECK(x.dimension(3) == in_, "A2MambaBackbone: a 3x3 conv input has shape ", shape_of(x), ", expected [B, H, W, ", in_, "]");
    const Index rows = B * Ho * Wo;
    if (cols_.dimension(0) != rows || cols_.dimension(1) != 9 * in_) cols_ = Tensor<float, 2>(rows, 9 * in_);
    if (out.dimension(0) != B || out.dimension(1) != Ho || out.dimension(2) != Wo || out.dimension(3) != out_)
      out = Tensor<float, 4>(B, Ho, Wo, out_);
    tokenmix::detail::parallel_for(device, rows, [&](Index first, Index last) {
      for (Index r = first; r < last; ++r) {
        const Index b = r / (Ho * Wo), i = r / Wo % Ho, j = r % Wo;
        float* dst = cols_.data() + r * 9 * in_;
        for (Index k = 0; k < 9; ++k, dst += in_) {
          const Index y = i * stride_ + k / 3 - 1, z = j * stride_ + k % 3 - 1;
          if (y < 0 || y >= H || z < 0 || z >= W)
            std::fill(dst, dst + in_, 0.0f);
          else
            std::copy_n(x.data() + ((b * H + y) * W + z) * in_, in_, dst);
        }
      }
    });
    linear(ConstTensorView<float, 2>(cols_.data(), rows, 9 * in_), weight_, ConstTensorView<float, 1>(shift_.data(), out_),
           TensorView<float, 2>(out.data(), rows, out_), device);
  }

 private:
  Index in_ = 0, out_ = 0, stride_ = 1;
  PackedLinear weight_;      // [Cout, 9·Cin], BN scale folded in
  Tensor<float, 1> shift_;   // [Cout] BN shift
  Tensor<float, 2> cols_;    // im2col [B·Ho·Wo, 9·Cin]
};

class A2MambaBackbone {
 public:
  A2MambaBackbone(const A2MambaConfig& config, const io::SafetensorsFile& f, const Eigen::ThreadPoolDevice* device = nullptr)
      : config_(config), device_(device) {
    const Index c0 = config.dims[0];
    const Index stem_in[4] = {config.in_chans, c0 / 2, c0 / 2, c0}, stem_out[4] = {c0 / 2, c0 / 2, c0, c0};
    for (int i = 0; i < 4; ++i)
      stem_[std::size_t(i)] = Conv3x3Bn(f, "patch_embed." + std::to_string(3 * i), "patch_embed." + std::to_string(3 * i + 1),
                                        stem_in[i], stem_out[i], i % 2 == 0 ? 2 : 1, device);
    for (int s = 0; s < 4; ++s) {
      const hybrid::MassConfig m = config.mixer(s);
      for (Index j = 0; j < config.depths[std::size_t(s)]; ++j) {
        const std::string prefix = "layers." + std::to_string(2 * s) + ".blocks." + std::to_string(j) + ".";
        stages_[std::size_t(s)].emplace_back(m, config.ffn_dim(s), A2MambaBlockWeights::load(f, prefix, m, config.ffn_dim(s)), device);
      }
      if (s < 3) {
        const std::string d = "layers." + std::to_string(2 * s + 1);
        downsample_[std::size_t(s)] = Conv3x3Bn(f, d + ".0", d + ".1", config.dims[std::size_t(s)], config.dims[std::size_t(s) + 1], 2, device);
      }
    }
    load_head(f);
  }

  const A2MambaConfig& config() const { return config_; }

  // Each stage's output (the released forward_features): [B, H/4, W/4, dims[0]] ... [B, H/32, W/32, dims[3]]
  // for image [B, H, W, in_chans]; every stage's map must hold its window (H/32 >= K of stage 4).
  std::array<Tensor<float, 4>, 4> features(const ConstTensorView<float, 4>& image) {
    const char* op = "A2MambaBackbone::features";
    TOKENMIX_CHECK(image.dimension(0) > 0 && image.dimension(3) == config_.in_chans, op, ": image has shape ",
                   shape_of(image), ", expected [B, H, W, in_chans=", config_.in_chans, "] with B > 0");
    std::array<Tensor<float, 4>, 4> out;
    using tokenmix::detail::timed;
    // Stem: conv-BN-GELU x3, conv-BN.
    timed(profile_, "conv3x3_bn", [&] { stem_[0].forward(image, a_, device_); });
    timed(profile_, "gelu", [&] { simd::gelu_inplace(a_.data(), a_.size()); });
    timed(profile_, "conv3x3_bn", [&] { stem_[1].forward(cview(a_), b_, device_); });
    timed(profile_, "gelu", [&] { simd::gelu_inplace(b_.data(), b_.size()); });
    timed(profile_, "conv3x3_bn", [&] { stem_[2].forward(cview(b_), a_, device_); });
    timed(profile_, "gelu", [&] { simd::gelu_inplace(a_.data(), a_.size()); });
    timed(profile_, "conv3x3_bn", [&] { stem_[3].forward(cview(a_), out[0], device_); });
    for (int s = 0; s < 4; ++s) {
      Tensor<float, 4>& x = out[std::size_t(s)];
      const Index K = config_.kernel_size[std::size_t(s)];
      TOKENMIX_CHECK(x.dimension(1) >= K && x.dimension(2) >= K, op, ": image has shape ", shape_of(image), "; stage ",
                     s + 1, " gets a ", x.dimension(1), "x", x.dimension(2), " map, smaller than its window ", K,
                     " (the input must be at least ", 32 * config_.kernel_size[3], " pixels per side for this config)");
      for (A2MambaBlock& block : stages_[std::size_t(s)]) block.forward_inplace(TensorView<float, 4>(x.data(), x.dimensions()));
      if (s < 3) timed(profile_, "conv3x3_bn", [&] { downsample_[std::size_t(s)].forward(cview(x), out[std::size_t(s) + 1], device_); });
    }
    return out;
  }

  // Adds each operator call's wall time to `profile` (nullptr: off), every block's too (the head's
  // operators are not profiled).
  void set_profile(OpProfile* profile) {
    profile_ = profile;
    for (auto& stage : stages_)
      for (A2MambaBlock& block : stage) block.set_profile(profile);
  }

  // Class logits [B, num_classes]: 1x1 conv + BN + SiLU on the last features, global average pool,
  // 1x1 conv (the released classifier).
  Tensor<float, 2> logits(const ConstTensorView<float, 4>& image) {
    const Tensor<float, 4> last = features(image)[3];
    const Index B = last.dimension(0), L = last.dimension(1) * last.dimension(2), C = last.dimension(3), P = config_.projection;
    const Tensor<float, 2> hidden = linear(ConstTensorView<float, 2>(last.data(), B * L, C), head_proj_,
                                           ConstTensorView<float, 1>(head_shift_.data(), P), device_);
    Tensor<float, 2> pooled(B, P);
    pooled.setZero();
    for (Index b = 0; b < B; ++b)
      for (Index t = 0; t < L; ++t)
        for (Index p = 0; p < P; ++p) {
          const float v = hidden(b * L + t, p);
          pooled(b, p) += v / (1.0f + std::exp(-v)) / float(L);
        }
    return linear(ConstTensorView<float, 2>(pooled.data(), B, P), head_fc_, ConstTensorView<float, 1>(head_bias_.data(), config_.num_classes), device_);
  }

 private:
  static ConstTensorView<float, 4> cview(const Tensor<float, 4>& t) { return ConstTensorView<float, 4>(t.data(), t.dimensions()); }

  void load_head(const io::SafetensorsFile& f) {
    const char* op = "A2MambaBackbone";
    const Index C = config_.dims[3], P = config_.projection, N = config_.num_classes;
    const Tensor<float, 4> w0 = detail::read_parameter<4>(op, f, "classifier.0.weight", {P, C, 1, 1});
    const std::array<Index, 1> p1{P};
    const Tensor<float, 1> b0 = detail::read_parameter<1>(op, f, "classifier.0.bias", p1);
    const Tensor<float, 1> gamma = detail::read_parameter<1>(op, f, "classifier.1.weight", p1);
    const Tensor<float, 1> beta = detail::read_parameter<1>(op, f, "classifier.1.bias", p1);
    const Tensor<float, 1> mean = detail::read_parameter<1>(op, f, "classifier.1.running_mean", p1);
    const Tensor<float, 1> var = detail::read_parameter<1>(op, f, "classifier.1.running_var", p1);
    Tensor<float, 2> folded(P, C);
    head_shift_ = Tensor<float, 1>(P);
    for (Index o = 0; o < P; ++o) {
      const double s = double(gamma(o)) / std::sqrt(double(var(o)) + kA2MambaBatchNormEps);
      for (Index i = 0; i < C; ++i) folded(o, i) = static_cast<float>(s * w0(o, i, 0, 0));
      head_shift_(o) = static_cast<float>(s * (double(b0(o)) - mean(o)) + beta(o));
    }
    head_proj_ = PackedLinear(folded, device_);
    const Tensor<float, 4> w4 = detail::read_parameter<4>(op, f, "classifier.4.weight", {N, P, 1, 1});
    head_fc_ = PackedLinear(ConstTensorView<float, 2>(w4.data(), N, P), device_);
    head_bias_ = detail::read_parameter<1>(op, f, "classifier.4.bias", {N});
  }

  A2MambaConfig config_;
  const Eigen::ThreadPoolDevice* device_;
  OpProfile* profile_ = nullptr;
  std::array<Conv3x3Bn, 4> stem_;
  std::array<std::vector<A2MambaBlock>, 4> stages_;
  std::array<Conv3x3Bn, 3> downsample_;
  PackedLinear head_proj_, head_fc_;  // [P, C] (BN folded), [classes, P]
  Tensor<float, 1> head_shift_, head_bias_;
  Tensor<float, 4> a_, b_;            // stem intermediates
};

}  // namespace tokenmix::blocks
