#pragma once
// blocks::Mamba2Mixer: transformers' Mamba2Mixer / mamba_ssm's Mamba2 as a composition of tokenmix's
// public ops (math, weight names and the released code's traps in blocks/mamba2_mixer_types.hpp):
//
//   blocks::Mamba2Mixer mixer(config, weights);            // validates, packs the projections
//   MambaMixerCache cache = mixer.new_cache(B);             // conv [B, conv_dim, K-1], ssm [B, H·P, N]
//   Tensor<float, 3> y = mixer.forward(x, &cache);          // prefill [B, L, d_model], chunked SSD
//   Tensor<float, 2> t = mixer.step(token, cache);          // decode [B, d_model], SSD state update
//
// Prefill: in_proj as three packed parts (z, xBC, dt come out contiguous) → causal_conv1d + SiLU on
// xBC → ssd (chunked or recurrent, the op picks; dt limit applied) → gated RMSNorm with z →
// out_proj, over chunks of at most kMambaPrefillChunk tokens with the state carried in the cache.
// Decode: the same at M = B with causal_conv1d_update and ssd_state_update (no dt limit, as the
// released step). Only packed projections are kept. Results are bitwise identical for any thread count.

#include <cstring>
#include <optional>

#include "tokenmix/blocks/linear.hpp"
#include "tokenmix/blocks/mamba2_mixer_types.hpp"
#include "tokenmix/blocks/mamba_mixer.hpp"
#include "tokenmix/blocks/rms_norm.hpp"
#include "tokenmix/ssm/causal_conv1d.hpp"
#include "tokenmix/ssm/ssd.hpp"

namespace tokenmix::blocks {

class Mamba2Mixer {
 public:
  Mamba2Mixer() = default;

  Mamba2Mixer(const Mamba2MixerConfig& config, const Mamba2MixerWeights& w,
              const Eigen::ThreadPoolDevice* device = nullptr)
      : config_(config) {
    detail::check_mamba2_mixer_weights("Mamba2Mixer", config_, w);
    const Index I = config_.d_inner(), CD = config_.conv_dim(), H = config_.heads, Dm = config_.d_model;
    const float* wp = w.in_proj_weight.data();
    in_z_ = PackedLinear(ConstTensorView<float, 2>(wp, I, Dm), device);
    in_xbc_ = PackedLinear(ConstTensorView<float, 2>(wp + I * Dm, CD, Dm), device);
    in_dt_ = PackedLinear(ConstTensorView<float, 2>(wp + (I + CD) * Dm, H, Dm), device);
    out_proj_ = PackedLinear(ConstTensorView<float, 2>(w.out_proj_weight), device);
    if (w.in_proj_bias) {
      const float* b = w.in_proj_bias->data();
      bias_z_ = slice(b, I), bias_xbc_ = slice(b + I, CD), bias_dt_ = slice(b + I + CD, H);
    }
    if (w.out_proj_bias) out_bias_ = *w.out_proj_bias;
    conv_weight_ = Tensor<float, 2>(CD, config_.d_conv);  // [conv_dim, 1, K] squeezed
    std::memcpy(conv_weight_.data(), w.conv1d_weight.data(), sizeof(float) * static_cast<std::size_t>(CD * config_.d_conv));
    if (w.conv1d_bias) conv_bias_ = *w.conv1d_bias;
    dt_bias_ = w.dt_bias;
    D_ = w.D;
    A_ = -w.A_log.exp();  // [H]
    norm_weight_ = w.norm_weight;
  }

  const Mamba2MixerConfig& config() const { return config_; }

  std::size_t parameter_bytes() const {
    std::size_t floats = in_z_.packed_floats() + in_xbc_.packed_floats() + in_dt_.packed_floats() +
                         out_proj_.packed_floats();
    floats += static_cast<std::size_t>(conv_weight_.size() + dt_bias_.size() + D_.size() + A_.size() + norm_weight_.size());
    for (const auto* b : {&bias_z_, &bias_xbc_, &bias_dt_, &out_bias_, &conv_bias_})
      if (*b) floats += static_cast<std::size_t>((*b)->size());
    return floats * sizeof(float);
  }

  MambaMixerCache new_cache(Index batch) const { return make_mamba2_mixer_cache(config_, batch); }

  // out [B, L, d_model] = mixer(x [B, L, d_model]), continuing from and updating `cache` if given.
  void forward(const ConstTensorView<float, 3>& x, TensorView<float, 3> out, MambaMixerCache* cache = nullptr,
               const Eigen::ThreadPoolDevice* device = nullptr, MambaMixerScratch* scratch = nullptr) const {
    const char* op = "Mamba2Mixer::forward";
    check_io(op, x, out);
    const Index B = x.dimension(0), L = x.dimension(1);
    if (cache) detail::check_mamba2_mixer_cache(op, config_, *cache, B);
    if (B == 0 || L == 0) return;
    MambaMixerCache local;
    if (!cache) local = new_cache(B), cache = &local;
    MambaMixerScratch local_scratch;
    detail::run_prefill_chunks(
        x, out, scratch ? *scratch : local_scratch, [&](Index M) { return chunk_floats(M); },
        [&](const float* xc, Index Bc, Index n, float* oc, MambaMixerScratch& s) {
          forward_chunk(xc, Bc, n, oc, *cache, device, s);
        });
  }

  Tensor<float, 3> forward(const ConstTensorView<float, 3>& x, MambaMixerCache* cache = nullptr,
                           const Eigen::ThreadPoolDevice* device = nullptr, MambaMixerScratch* scratch = nullptr) const {
    Tensor<float, 3> out(x.dimension(0), x.dimension(1), config_.d_model);
    forward(x, TensorView<float, 3>(out.data(), out.dimensions()), cache, device, scratch);
    return out;
  }

  // One decode step for the next token of each of the B sequences in `cache`.
  void step(const ConstTensorView<float, 2>& token, MambaMixerCache& cache, TensorView<float, 2> out,
            const Eigen::ThreadPoolDevice* device = nullptr, MambaMixerScratch* scratch = nullptr) const {
    const char* op = "Mamba2Mixer::step";
    check_io(op, ConstTensorView<float, 3>(token.data(), token.dimension(0), 1, token.dimension(1)),
             TensorView<float, 3>(out.data(), out.dimension(0), 1, out.dimension(1)));
    const Index B = token.dimension(0);
    detail::check_mamba2_mixer_cache(op, config_, cache, B);
    if (B == 0) return;
    MambaMixerScratch local_scratch;
    const Chunk s = carve(scratch ? *scratch : local_scratch, B);
    const Index CD = config_.conv_dim(), H = config_.heads, P = config_.head_dim, G = config_.n_groups,
                N = config_.d_state;
    project_in(token.data(), B, s, device);
    ssm::CausalConv1dOptions conv;
    conv.bias = view_of(conv_bias_), conv.activation_silu = true, conv.device = device;
    ssm::causal_conv1d_update(ConstTensorView<float, 2>(s.xbc, B, CD),
                              TensorView<float, 3>(cache.conv_state.data(), cache.conv_state.dimensions()),
                              ConstTensorView<float, 2>(conv_weight_), conv, TensorView<float, 2>(s.xbc_conv, B, CD));
    split_xbc(B, s);
    ssm::SsdOptions so = ssd_options(device, /*prefill=*/false);
    ssm::ssd_state_update(TensorView<float, 4>(cache.ssm_state.data(), B, H, P, N), ConstTensorView<float, 3>(s.xs, B, H, P),
                          ConstTensorView<float, 2>(s.dt, B, H), ConstTensorView<float, 1>(A_),
                          ConstTensorView<float, 3>(s.Bm, B, G, N), ConstTensorView<float, 3>(s.Cm, B, G, N), so,
                          TensorView<float, 3>(s.y, B, H, P));
    project_out(B, s, out.data(), device);
  }

  Tensor<float, 2> step(const ConstTensorView<float, 2>& token, MambaMixerCache& cache,
                        const Eigen::ThreadPoolDevice* device = nullptr, MambaMixerScratch* scratch = nullptr) const {
    Tensor<float, 2> out(token.dimension(0), config_.d_model);
    step(token, cache, TensorView<float, 2>(out.data(), out.dimensions()), device, scratch);
    return out;
  }

 private:
  struct Chunk {
    float* z;         // [M, I]
    float* xbc;       // [M, conv_dim] in_proj output
    float* dt;        // [M, H]
    float* xbc_conv;  // [M, conv_dim] after conv + SiLU
    float* xs;        // [M, I] = [M, H, P]
    float* Bm;        // [M, G, N]
    float* Cm;        // [M, G, N]
    float* y;         // [M, I] scan output, then normed in place
  };

  static Index round16(Index n) { return (n + 15) / 16 * 16; }  // keeps every buffer 64-byte aligned

  std::size_t chunk_floats(Index M) const {
    const Index I = config_.d_inner(), CD = config_.conv_dim(), H = config_.heads, GN = config_.n_groups * config_.d_state;
    return static_cast<std::size_t>(3 * round16(M * I) + 2 * round16(M * CD) + round16(M * H) + 2 * round16(M * GN));
  }

  Chunk carve(MambaMixerScratch& scratch, Index M) const {
    const Index I = config_.d_inner(), CD = config_.conv_dim(), H = config_.heads, GN = config_.n_groups * config_.d_state;
    float* p = scratch.floats(chunk_floats(M));
    Chunk s{};
    s.z = p, p += round16(M * I);
    s.xbc = p, p += round16(M * CD);
    s.dt = p, p += round16(M * H);
    s.xbc_conv = p, p += round16(M * CD);
    s.xs = p, p += round16(M * I);
    s.Bm = p, p += round16(M * GN);
    s.Cm = p, p += round16(M * GN);
    s.y = p;
    return s;
  }

  static Tensor<float, 1> slice(const float* p, Index n) {
    Tensor<float, 1> t(n);
    std::memcpy(t.data(), p, sizeof(float) * static_cast<std::size_t>(n));
    return t;
  }
  static std::optional<ConstTensorView<float, 1>> view_of(const std::optional<Tensor<float, 1>>& t) {
    if (!t) return std::nullopt;
    return ConstTensorView<float, 1>(*t);
  }

  void check_io(const char* op, const ConstTensorView<float, 3>& x, const TensorView<float, 3>& out) const {
    TOKENMIX_CHECK(!out_proj_.empty(), op, ": the mixer has no weights (default-constructed)");
    tokenmix::detail::check_numel_fits(op, "x", shape_of(x));
    TOKENMIX_CHECK(x.dimension(2) == config_.d_model, op, ": x has shape ", shape_of(x), ", expected [B, L, d_model=",
                   config_.d_model, "]");
    tokenmix::detail::check_shape(op, "out", out,
                                  NamedShape<3>{{"B", "L", "d_model"}, {{x.dimension(0), x.dimension(1), config_.d_model}}});
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out.data(), out.size(), x.data(), x.size()), op,
                   ": out must not overlap x");
  }

  // The prefill clamps dt to the configured limit; the decode step does not (see the types header).
  ssm::SsdOptions ssd_options(const Eigen::ThreadPoolDevice* device, bool prefill) const {
    ssm::SsdOptions o;
    o.D = ConstTensorView<float, 1>(D_);
    o.dt_bias = ConstTensorView<float, 1>(dt_bias_);
    o.dt_softplus = true;
    if (prefill) o.dt_min = config_.dt_min, o.dt_max = config_.dt_max, o.chunk_size = config_.chunk_size;
    o.device = device;
    return o;
  }

  // z [M, I], xbc [M, conv_dim], dt [M, H] = in_proj(x [M, d_model]).
  void project_in(const float* x, Index M, const Chunk& s, const Eigen::ThreadPoolDevice* device) const {
    const ConstTensorView<float, 2> xv(x, M, config_.d_model);
    linear(xv, in_z_, view_of(bias_z_), TensorView<float, 2>(s.z, M, config_.d_inner()), device);
    linear(xv, in_xbc_, view_of(bias_xbc_), TensorView<float, 2>(s.xbc, M, config_.conv_dim()), device);
    linear(xv, in_dt_, view_of(bias_dt_), TensorView<float, 2>(s.dt, M, config_.heads), device);
  }

  // xbc_conv rows [x | B | C] → contiguous xs [M, I], Bm, Cm [M, G·N].
  void split_xbc(Index M, const Chunk& s) const {
    const Index I = config_.d_inner(), CD = config_.conv_dim(), GN = config_.n_groups * config_.d_state;
    for (Index m = 0; m < M; ++m) {
      const float* row = s.xbc_conv + m * CD;
      std::memcpy(s.xs + m * I, row, sizeof(float) * static_cast<std::size_t>(I));
      std::memcpy(s.Bm + m * GN, row + I, sizeof(float) * static_cast<std::size_t>(GN));
      std::memcpy(s.Cm + m * GN, row + I + GN, sizeof(float) * static_cast<std::size_t>(GN));
    }
  }

  // y = gated_rms_norm(y, z) in place; out [M, d_model] = out_proj(y).
  void project_out(Index M, const Chunk& s, float* out, const Eigen::ThreadPoolDevice* device) const {
    const Index I = config_.d_inner();
    gated_rms_norm(ConstTensorView<float, 2>(s.y, M, I), ConstTensorView<float, 2>(s.z, M, I),
                   ConstTensorView<float, 1>(norm_weight_), config_.norm_eps, config_.group_size(),
                   TensorView<float, 2>(s.y, M, I), device);
    linear(ConstTensorView<float, 2>(s.y, M, I), out_proj_, view_of(out_bias_),
           TensorView<float, 2>(out, M, config_.d_model), device);
  }

  void forward_chunk(const float* x, Index B, Index n, float* out, MambaMixerCache& cache,
                     const Eigen::ThreadPoolDevice* device, MambaMixerScratch& scratch) const {
    const Index M = B * n, CD = config_.conv_dim(), H = config_.heads, P = config_.head_dim, G = config_.n_groups,
                N = config_.d_state;
    const Chunk s = carve(scratch, M);
    project_in(x, M, s, device);
    ssm::CausalConv1dOptions conv;
    conv.bias = view_of(conv_bias_), conv.activation_silu = true, conv.device = device;
    conv.initial_state.emplace(cache.conv_state.data(), cache.conv_state.dimensions());
    TensorView<float, 3> conv_state(cache.conv_state.data(), cache.conv_state.dimensions());
    ssm::causal_conv1d(ConstTensorView<float, 3>(s.xbc, B, n, CD), ConstTensorView<float, 2>(conv_weight_), conv,
                       TensorView<float, 3>(s.xbc_conv, B, n, CD), &conv_state);
    split_xbc(M, s);
    ssm::SsdOptions so = ssd_options(device, /*prefill=*/true);
    so.initial_state.emplace(cache.ssm_state.data(), B, H, P, N);  // in place: read before written
    TensorView<float, 4> final_state(cache.ssm_state.data(), B, H, P, N);
    ssm::ssd(ConstTensorView<float, 4>(s.xs, B, n, H, P), ConstTensorView<float, 3>(s.dt, B, n, H),
             ConstTensorView<float, 1>(A_), ConstTensorView<float, 4>(s.Bm, B, n, G, N),
             ConstTensorView<float, 4>(s.Cm, B, n, G, N), so, TensorView<float, 4>(s.y, B, n, H, P), &final_state);
    project_out(M, s, out, device);
  }

  Mamba2MixerConfig config_{};
  PackedLinear in_z_, in_xbc_, in_dt_;  // in_proj rows [0, I), [I, I+conv_dim), [I+conv_dim, +H)
  PackedLinear out_proj_;               // [d_model, I]
  std::optional<Tensor<float, 1>> bias_z_, bias_xbc_, bias_dt_, out_bias_, conv_bias_;
  Tensor<float, 2> conv_weight_;        // [conv_dim, K]
  Tensor<float, 1> dt_bias_, D_, A_;    // [H]
  Tensor<float, 1> norm_weight_;        // [I]
};

}  // namespace tokenmix::blocks
