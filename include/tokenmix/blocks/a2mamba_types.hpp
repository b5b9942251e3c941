#pragma once
// A2Mamba's block and backbone (LMMMEng/A2Mamba models/a2mamba.py: Block, BasicLayer, stem,
// A2Mamba; spec a2mamba.md §4): configuration, the released state dict's names and shapes, and
// loading from a safetensors file (a converted checkpoint) or a generated random one.
//
// Block (channels-last x [B, H, W, C]; LN = LayerNorm over channels, eps 1e-6; no layerscale, as
// the Nano and Tiny variants):
//   x = x + dwconv3x3(x)                (cpe1)
//   x = x + MASS(LN1(x))                (hybrid/mass_types.hpp)
//   x = x + dwconv3x3(x)                (cpe2)
//   x = x + fc2(t + dwconv3x3(t)),  t = gelu(fc1(LN2(x)))      (FFN, F = mlp_ratio·C, exact GELU)
// Backbone: stem (four 3x3 convs, strides 2, 1, 2, 1, each + eval BatchNorm, GELU after the first
// three), four stages of blocks (stage 4 in MASS's global mode, its bias table at image_size / 32),
// a 3x3 stride-2 conv + BN between stages; features = each stage's output (forward_features);
// head: 1x1 conv + BN + SiLU, global average pool, 1x1 conv to the classes.

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tokenmix/config.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/hybrid/mass_types.hpp"
#include "tokenmix/io/safetensors.hpp"

namespace tokenmix::blocks {

struct A2MambaConfig {
  Index image_size = 224;  // the training resolution (sets stage 4's global bias table: (image_size / 32)²)
  Index in_chans = 3;
  std::array<Index, 4> dims{32, 64, 128, 192};
  std::array<Index, 4> depths{2, 2, 8, 2};
  std::array<Index, 4> heads{2, 2, 4, 8};
  std::array<Index, 4> kernel_size{11, 9, 7, 7};
  std::array<double, 4> mlp_ratios{4, 4, 3, 3};
  Index projection = 1024;  // the head's width
  Index num_classes = 1000;

  // a2mamba_n: 4.2 M parameters, 0.8 GFLOPs at 224² (released README).
  static A2MambaConfig nano() { return A2MambaConfig{}; }
  Index ffn_dim(int stage) const { return static_cast<Index>(mlp_ratios[std::size_t(stage)] * double(dims[std::size_t(stage)])); }
  hybrid::MassConfig mixer(int stage) const {
    hybrid::MassConfig c;
    const std::size_t s = std::size_t(stage);
    c.channels = dims[s], c.heads = heads[s], c.kernel_size = kernel_size[s], c.global_mode = stage == 3;
    if (c.global_mode) c.global_grid = {image_size / 32, image_size / 32};
    return c;
  }
};

inline constexpr double kA2MambaLayerNormEps = 1e-6;
inline constexpr double kA2MambaBatchNormEps = 1e-5;

// One parameter of the released state dict, and how a random checkpoint draws it.
struct A2MambaParameter {
  enum class Init { weight, residual_weight, bias, norm_weight, running_mean, running_var, rpb, tied_rpb, a_logs, ds, dt_bias };
  std::string name;
  std::vector<Index> shape;
  Init init;
};

// Every parameter (buffers excluded) of A2Mamba with `config`, named and shaped as the released
// state dict: patch_embed.{0,3,6,9} convs and {1,4,7,10} BNs; layers.<2i>.blocks.<j>.* (stage i);
// layers.<2i+1>.{0,1} (downsample conv, BN); classifier.{0,1,4}.
inline std::vector<A2MambaParameter> a2mamba_parameters(const A2MambaConfig& c) {
  std::vector<A2MambaParameter> p;
  using Init = A2MambaParameter::Init;
  auto add = [&](std::string name, std::vector<Index> shape, Init init) { p.push_back({std::move(name), std::move(shape), init}); };
  auto norm = [&](const std::string& prefix, Index ch) {
    add(prefix + ".weight", {ch}, Init::norm_weight), add(prefix + ".bias", {ch}, Init::bias);
  };
  auto bn = [&](const std::string& prefix, Index ch) {
    norm(prefix, ch), add(prefix + ".running_mean", {ch}, Init::running_mean), add(prefix + ".running_var", {ch}, Init::running_var);
  };
  auto conv = [&](const std::string& prefix, Index out, Index in, Index k, bool bias, Init init = Init::weight) {
    add(prefix + ".weight", {out, in, k, k}, init);
    if (bias) add(prefix + ".bias", {out}, Init::bias);
  };
  const Index c0 = c.dims[0];
  const Index stem_in[4] = {c.in_chans, c0 / 2, c0 / 2, c0}, stem_out[4] = {c0 / 2, c0 / 2, c0, c0};
  for (int i = 0; i < 4; ++i) {
    conv("patch_embed." + std::to_string(3 * i), stem_out[i], stem_in[i], 3, false);
    bn("patch_embed." + std::to_string(3 * i + 1), stem_out[i]);
  }
  for (int s = 0; s < 4; ++s) {
    const Index C = c.dims[std::size_t(s)], F = c.ffn_dim(s), nh = c.heads[std::size_t(s)], K = c.kernel_size[std::size_t(s)];
    const hybrid::MassConfig m = c.mixer(s);
    for (Index j = 0; j < c.depths[std::size_t(s)]; ++j) {
      const std::string b = "layers." + std::to_string(2 * s) + ".blocks." + std::to_string(j) + ".", t = b + "token_mixer.";
      conv(b + "cpe1", C, 1, 3, true, Init::residual_weight), norm(b + "norm1", C);
      conv(t + "qkv", 3 * C, C, 1, true), conv(t + "gate.0", C, C, 1, true), bn(t + "gate.1", C);
      conv(t + "lepe", C, 1, 5, true), norm(t + "norm", C), norm(t + "proj.0", C), conv(t + "proj.1", C, C, 1, true);
      add(t + "rpb.0", {nh / 2, 2 * K - 1, 2 * K - 1}, Init::rpb), add(t + "rpb.1", {nh / 2, 2 * K - 1, 2 * K - 1}, Init::tied_rpb);
      if (m.global_mode) {
        const Index L0 = m.global_grid[0] * m.global_grid[1];
        add(t + "rpb.2", {1, nh, L0, L0}, Init::rpb);
      } else {
        const hybrid::A2ssmConfig a = m.ssm_config();
        conv(t + "ssm.conv2d", C, 1, a.conv_kernel, true);
        add(t + "ssm.x_proj_weight", {a.rank() + 2 * a.d_state, C}, Init::weight);
        add(t + "ssm.dt_projs_weight", {C, a.rank()}, Init::weight), add(t + "ssm.dt_projs_bias", {C}, Init::dt_bias);
        add(t + "ssm.A_logs", {C, a.d_state}, Init::a_logs), add(t + "ssm.Ds", {C}, Init::ds);
        conv(t + "ssm.state_fusion", nh, nh, 1, true);
      }
      conv(b + "cpe2", C, 1, 3, true, Init::residual_weight), norm(b + "norm2", C);
      conv(b + "mlp.fc1", F, C, 1, true), conv(b + "mlp.dwconv", F, 1, 3, true), conv(b + "mlp.fc2", C, F, 1, true);
    }
    if (s < 3) {
      const std::string d = "layers." + std::to_string(2 * s + 1) + ".";
      conv(d + "0", c.dims[std::size_t(s) + 1], C, 3, false), bn(d + "1", c.dims[std::size_t(s) + 1]);
    }
  }
  conv("classifier.0", c.projection, c.dims[3], 1, true), bn("classifier.1", c.projection);
  conv("classifier.4", c.num_classes, c.projection, 1, true);
  return p;
}

// A random checkpoint with the released names and shapes (benchmarks, examples): convs and linear
// maps ~ N(0, 1/fan_in) (the residual branches' cpe convs at 0.3 of that, keeping the stages' scale
// O(1)), BatchNorm statistics drawn around (0, 1), LN weights 1, the A2SSM init as released
// (A = -1, D = 1, dt bias from [1e-3, 0.1]), rpb ~ N(0, 0.1²). rpb.1 equals rpb.0 (tied).
inline io::SafetensorsFile a2mamba_random_checkpoint(const A2MambaConfig& c, std::uint64_t seed) {
  using Init = A2MambaParameter::Init;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> uniform(0.f, 1.f);
  const std::vector<A2MambaParameter> params = a2mamba_parameters(c);
  std::vector<std::vector<float>> storage;
  std::vector<io::SafetensorsEntry> entries;
  storage.reserve(params.size());
  for (const A2MambaParameter& p : params) {
    Index n = 1;
    for (Index d : p.shape) n *= d;
    const Index fan_in = p.shape.size() > 1 ? n / p.shape[0] : 1;
    std::vector<float> v(static_cast<std::size_t>(n));
    for (float& x : v) {
      switch (p.init) {
        case Init::weight: x = normal(rng) / std::sqrt(float(fan_in)); break;
        case Init::residual_weight: x = 0.3f * normal(rng) / std::sqrt(float(fan_in)); break;
        case Init::bias: case Init::running_mean: x = 0.05f * normal(rng); break;
        case Init::norm_weight: x = 1.f + 0.1f * normal(rng); break;
        case Init::running_var: x = 0.5f + uniform(rng); break;
        case Init::rpb: x = 0.1f * normal(rng); break;
        case Init::a_logs: x = 0.f; break;  // A = -1, as released for d_state 1
        case Init::ds: x = 1.f; break;
        case Init::dt_bias: {  // inverse softplus of dt log-uniform in [1e-3, 0.1], as released
          const double dt = std::exp(std::log(1e-3) + uniform(rng) * (std::log(0.1) - std::log(1e-3)));
          x = static_cast<float>(dt + std::log(-std::expm1(-dt)));
          break;
        }
        case Init::tied_rpb: break;
      }
    }
    if (p.init == Init::tied_rpb) v = storage.back();  // rpb.1 is rpb.0 (one tensor listed twice)
    storage.push_back(std::move(v));
    entries.emplace_back(p.name, storage.back().data(), p.shape);
  }
  return io::SafetensorsFile::from_bytes(io::serialize_safetensors(entries), "a2mamba_random_checkpoint");
}

namespace detail {

// Reads parameter `name` of rank R, checking the released shape (errors name the op and the key).
template <int R>
Tensor<float, R> read_parameter(const char* op, const io::SafetensorsFile& f, const std::string& name,
                                const std::array<Index, R>& shape) {
  TOKENMIX_CHECK(f.contains(name), op, ": the checkpoint has no parameter '", name, "'");
  const io::TensorInfo& t = f.info(name);
  bool same = t.shape.size() == std::size_t(R);
  for (int a = 0; same && a < R; ++a) same = t.shape[std::size_t(a)] == shape[std::size_t(a)];
  TOKENMIX_CHECK(same, op, ": parameter '", name, "' has shape ", io::detail::format_dims(t.shape), ", expected ",
                 io::detail::format_dims(std::vector<Index>(shape.begin(), shape.end())));
  return f.read_float<R>(name);
}

}  // namespace detail

struct A2MambaBlockWeights {
  Tensor<float, 3> cpe1_weight, cpe2_weight;   // [C, 3, 3] (the PyTorch [C, 1, 3, 3] squeezed)
  Tensor<float, 1> cpe1_bias, cpe2_bias;       // [C]
  Tensor<float, 1> norm1_weight, norm1_bias, norm2_weight, norm2_bias;  // [C]
  hybrid::MassWeights token_mixer;
  Tensor<float, 2> fc1_weight, fc2_weight;     // [F, C], [C, F]
  Tensor<float, 1> fc1_bias, fc2_bias;         // [F], [C]
  Tensor<float, 3> dwconv_weight;              // [F, 3, 3]
  Tensor<float, 1> dwconv_bias;                // [F]

  // The parameters under `prefix` (e.g. "layers.0.blocks.1.") of a released checkpoint.
  static A2MambaBlockWeights load(const io::SafetensorsFile& f, const std::string& prefix, const hybrid::MassConfig& m,
                                  Index ffn_dim);
};

inline A2MambaBlockWeights A2MambaBlockWeights::load(const io::SafetensorsFile& f, const std::string& prefix,
                                                     const hybrid::MassConfig& m, Index ffn_dim) {
  const char* op = "A2MambaBackbone";
  const Index C = m.channels, F = ffn_dim, nh = m.heads, K = m.kernel_size;
  auto vec = [&](const std::string& name, Index n) { return detail::read_parameter<1>(op, f, prefix + name, {n}); };
  auto conv4 = [&](const std::string& name, Index o, Index i, Index k) { return detail::read_parameter<4>(op, f, prefix + name, {o, i, k, k}); };
  auto depthwise = [&](const std::string& name, Index ch, Index k) {  // [ch, 1, k, k] -> [ch, k, k]
    const Tensor<float, 4> w = conv4(name, ch, 1, k);
    Tensor<float, 3> out(ch, k, k);
    std::copy_n(w.data(), w.size(), out.data());
    return out;
  };
  auto matrix = [&](const std::string& name, Index o, Index i) {  // [o, i, 1, 1] -> [o, i]
    const Tensor<float, 4> w = conv4(name, o, i, 1);
    Tensor<float, 2> out(o, i);
    std::copy_n(w.data(), w.size(), out.data());
    return out;
  };
  A2MambaBlockWeights w;
  w.cpe1_weight = depthwise("cpe1.weight", C, 3), w.cpe1_bias = vec("cpe1.bias", C);
  w.cpe2_weight = depthwise("cpe2.weight", C, 3), w.cpe2_bias = vec("cpe2.bias", C);
  w.norm1_weight = vec("norm1.weight", C), w.norm1_bias = vec("norm1.bias", C);
  w.norm2_weight = vec("norm2.weight", C), w.norm2_bias = vec("norm2.bias", C);
  w.fc1_weight = matrix("mlp.fc1.weight", F, C), w.fc1_bias = vec("mlp.fc1.bias", F);
  w.fc2_weight = matrix("mlp.fc2.weight", C, F), w.fc2_bias = vec("mlp.fc2.bias", C);
  w.dwconv_weight = depthwise("mlp.dwconv.weight", F, 3), w.dwconv_bias = vec("mlp.dwconv.bias", F);
  hybrid::MassWeights& t = w.token_mixer;
  const std::string tm = "token_mixer.";
  t.qkv_weight = conv4(tm + "qkv.weight", 3 * C, C, 1), t.qkv_bias = vec(tm + "qkv.bias", 3 * C);
  t.gate_0_weight = conv4(tm + "gate.0.weight", C, C, 1), t.gate_0_bias = vec(tm + "gate.0.bias", C);
  t.gate_1_weight = vec(tm + "gate.1.weight", C), t.gate_1_bias = vec(tm + "gate.1.bias", C);
  t.gate_1_running_mean = vec(tm + "gate.1.running_mean", C), t.gate_1_running_var = vec(tm + "gate.1.running_var", C);
  t.lepe_weight = conv4(tm + "lepe.weight", C, 1, 5), t.lepe_bias = vec(tm + "lepe.bias", C);
  t.norm_weight = vec(tm + "norm.weight", C), t.norm_bias = vec(tm + "norm.bias", C);
  t.proj_0_weight = vec(tm + "proj.0.weight", C), t.proj_0_bias = vec(tm + "proj.0.bias", C);
  t.proj_1_weight = conv4(tm + "proj.1.weight", C, C, 1), t.proj_1_bias = vec(tm + "proj.1.bias", C);
  t.rpb = detail::read_parameter<3>(op, f, prefix + tm + "rpb.0", {nh / 2, 2 * K - 1, 2 * K - 1});
  if (f.contains(prefix + tm + "rpb.1")) {  // the released list holds one tensor twice: both branches use rpb.0
    const Tensor<float, 3> second = detail::read_parameter<3>(op, f, prefix + tm + "rpb.1", {nh / 2, 2 * K - 1, 2 * K - 1});
    TOKENMIX_CHECK(std::equal(second.data(), second.data() + second.size(), t.rpb.data()), op, ": '", prefix, tm,
                   "rpb.1' differs from rpb.0; the released model ties them (one Parameter listed twice)");
  }
  if (m.global_mode) {
    const Index L0 = m.global_grid[0] * m.global_grid[1];
    t.global_rpb = detail::read_parameter<4>(op, f, prefix + tm + "rpb.2", {1, nh, L0, L0});
  } else {
    const hybrid::A2ssmConfig a = m.ssm_config();
    const std::string s = tm + "ssm.";
    t.ssm.conv2d_weight = conv4(s + "conv2d.weight", C, 1, a.conv_kernel), t.ssm.conv2d_bias = vec(s + "conv2d.bias", C);
    t.ssm.x_proj_weight = detail::read_parameter<2>(op, f, prefix + s + "x_proj_weight", {a.rank() + 2 * a.d_state, C});
    t.ssm.dt_projs_weight = detail::read_parameter<2>(op, f, prefix + s + "dt_projs_weight", {C, a.rank()});
    t.ssm.dt_projs_bias = vec(s + "dt_projs_bias", C);
    t.ssm.A_logs = detail::read_parameter<2>(op, f, prefix + s + "A_logs", {C, a.d_state});
    t.ssm.Ds = vec(s + "Ds", C);
    t.ssm.state_fusion_weight = conv4(s + "state_fusion.weight", nh, nh, 1), t.ssm.state_fusion_bias = vec(s + "state_fusion.bias", nh);
  }
  return w;
}

}  // namespace tokenmix::blocks
