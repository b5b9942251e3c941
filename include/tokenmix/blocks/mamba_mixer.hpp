#pragma once
// blocks::MambaMixer: the Mamba (S6) token mixer of transformers' MambaMixer / mamba_ssm's Mamba, as
// a composition of tokenmix's public ops (math and weight names in blocks/mamba_mixer_types.hpp):
//
//   blocks::MambaMixer mixer(weights);                       // validates, packs the projections
//   Tensor<float, 3> y = mixer.forward(x);                   // x, y [B, L, d_model], fresh state
//   MambaMixerCache cache = mixer.new_cache(B);              // zeros
//   y = mixer.forward(prompt, &cache);                       // prefill: continues from and updates cache
//   Tensor<float, 2> t = mixer.step(token, cache);           // decode: token, t [B, d_model]
//
// Prefill: in_proj (as two packed halves, so xs and z come out contiguous) → causal_conv1d + SiLU →
// x_proj → dt_proj (bias left to the scan) → selective_scan (softplus, D, z gate) → out_proj, over
// chunks of at most kMambaPrefillChunk tokens (the state carries between chunks through the
// cache), so scratch memory is bounded whatever L. Decode: the same projections at M = B (the
// packed GEMM streams each weight once), causal_conv1d_update and selective_state_update.
//
// Only the packed projections are kept (no second copy of the weights): decode memory is the
// weights plus O(B·I·N). Results are bitwise identical for any thread count; forward over L tokens
// and L steps agree within tolerance::mamba_mixer (different GEMM / scan roundings).

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "tokenmix/blocks/linear.hpp"
#include "tokenmix/blocks/mamba_mixer_types.hpp"
#include "tokenmix/ssm/causal_conv1d.hpp"
#include "tokenmix/ssm/selective_scan.hpp"
#include "tokenmix/ssm/selective_state_update.hpp"

namespace tokenmix::blocks {

// Tokens (B·L rows) per prefill chunk: large enough for the GEMMs to reach their peak (M >= 256),
// small enough that the scratch of one chunk (~4·I floats per token) stays in L3.
inline constexpr Index kMambaPrefillChunk = 512;

// Reusable scratch for MambaMixer::forward / step: pass the same object to consecutive calls (and
// to every layer of a model) to avoid reallocating. Not shared between threads.
class MambaMixerScratch {
 public:
  // floats [0, count) of 64-byte aligned storage, grown on demand; earlier pointers are invalidated.
  float* floats(std::size_t count) {
    if (buffer_.size() < count) buffer_.resize(count);
    return buffer_.data();
  }
  std::size_t capacity() const { return buffer_.size(); }

 private:
  std::vector<float, xsimd::aligned_allocator<float, 64>> buffer_;
};

namespace detail {

// The prefill driver shared by the Mamba mixers: runs chunk(x_chunk, B, n, out_chunk, scratch) over
// chunks of n <= kMambaPrefillChunk / B tokens of all B sequences of x [B, L, Dm] -> out [B, L, Dm],
// in order (the mixer's cache carries the state from one chunk to the next). chunk_floats(M) is the
// scratch one chunk of M = B·n rows needs; it is reserved once for the largest chunk, so chunk()
// may carve scratch from its start without reallocating. When B > 1 and L is split, the rows of a
// chunk are not contiguous in x: they are gathered into (and scattered back from) scratch behind
// the chunk's own buffers.
template <class ChunkFloats, class Chunk>
void run_prefill_chunks(const ConstTensorView<float, 3>& x, TensorView<float, 3>& out, MambaMixerScratch& scratch,
                        ChunkFloats&& chunk_floats, Chunk&& chunk) {
  const Index B = x.dimension(0), L = x.dimension(1), Dm = x.dimension(2);
  const Index Lc = std::max<Index>(1, std::min(L, kMambaPrefillChunk / std::max<Index>(B, 1)));
  const bool gather = B > 1 && Lc < L;
  const std::size_t own = chunk_floats(B * Lc);
  float* base = scratch.floats(own + (gather ? 2 * static_cast<std::size_t>(B * Lc * Dm) : 0));
  float* x_chunk = base + own;       // [B, Lc, Dm] when gathering
  float* out_chunk = x_chunk + B * Lc * Dm;
  const auto row_bytes = [&](Index n) { return sizeof(float) * static_cast<std::size_t>(n * Dm); };
  for (Index l0 = 0; l0 < L; l0 += Lc) {
    const Index n = std::min(Lc, L - l0);
    if (!gather) {  // B == 1 or a single chunk: x[:, l0:l0+n] is contiguous
      chunk(x.data() + l0 * Dm, B, n, out.data() + l0 * Dm, scratch);
      continue;
    }
    for (Index b = 0; b < B; ++b) std::memcpy(x_chunk + b * n * Dm, x.data() + (b * L + l0) * Dm, row_bytes(n));
    chunk(x_chunk, B, n, out_chunk, scratch);
    for (Index b = 0; b < B; ++b) std::memcpy(out.data() + (b * L + l0) * Dm, out_chunk + b * n * Dm, row_bytes(n));
  }
}

}  // namespace detail

class MambaMixer {
 public:
  MambaMixer() = default;

  // Validates `weights` (shapes consistent with each other, see mamba_mixer_types.hpp) and keeps a
  // packed copy of the projections; `weights` may be freed afterwards.
  explicit MambaMixer(const MambaMixerWeights& weights, const Eigen::ThreadPoolDevice* device = nullptr)
      : config_(detail::check_mamba_mixer_weights("MambaMixer", weights)) {
    const MambaMixerConfig& c = config_;
    const Index I = c.d_inner, Dm = c.d_model;
    const ConstTensorView<float, 2> in_x(weights.in_proj_weight.data(), I, Dm);       // rows [0, I)
    const ConstTensorView<float, 2> in_z(weights.in_proj_weight.data() + I * Dm, I, Dm);  // rows [I, 2I)
    in_proj_x_ = PackedLinear(in_x, device);
    in_proj_z_ = PackedLinear(in_z, device);
    x_proj_ = PackedLinear(ConstTensorView<float, 2>(weights.x_proj_weight), device);
    dt_proj_ = PackedLinear(ConstTensorView<float, 2>(weights.dt_proj_weight), device);
    out_proj_ = PackedLinear(ConstTensorView<float, 2>(weights.out_proj_weight), device);
    conv_weight_ = Tensor<float, 2>(I, c.d_conv);  // [I, 1, K] squeezed
    std::memcpy(conv_weight_.data(), weights.conv1d_weight.data(), sizeof(float) * static_cast<std::size_t>(I * c.d_conv));
    if (weights.conv1d_bias) conv_bias_ = *weights.conv1d_bias;
    if (weights.in_proj_bias) {
      in_bias_x_ = Tensor<float, 1>(I);
      in_bias_z_ = Tensor<float, 1>(I);
      std::memcpy(in_bias_x_->data(), weights.in_proj_bias->data(), sizeof(float) * static_cast<std::size_t>(I));
      std::memcpy(in_bias_z_->data(), weights.in_proj_bias->data() + I, sizeof(float) * static_cast<std::size_t>(I));
    }
    if (weights.out_proj_bias) out_bias_ = *weights.out_proj_bias;
    dt_bias_ = weights.dt_proj_bias;
    D_ = weights.D;
    A_ = -weights.A_log.exp();  // [I, N], computed once (fp32, as mamba_ssm)
  }

  const MambaMixerConfig& config() const { return config_; }

  // Bytes held by this mixer's parameters (packed projections included, padding counted).
  std::size_t parameter_bytes() const {
    std::size_t floats = 0;
    for (const PackedLinear* p : {&in_proj_x_, &in_proj_z_, &x_proj_, &dt_proj_, &out_proj_})
      floats += p->packed_floats();
    floats += static_cast<std::size_t>(conv_weight_.size() + A_.size() + D_.size() + dt_bias_.size());
    for (const auto* b : {&conv_bias_, &in_bias_x_, &in_bias_z_, &out_bias_})
      if (*b) floats += static_cast<std::size_t>((*b)->size());
    return floats * sizeof(float);
  }

  // A zero cache for `batch` sequences: the state before their first token.
  MambaMixerCache new_cache(Index batch) const { return make_mamba_mixer_cache(config_, batch); }

  // out [B, L, d_model] = mixer(x [B, L, d_model]). With a cache, the sequences continue from it
  // (conv and scan states) and the cache is replaced by the state after their last token (L = 0
  // leaves it unchanged); without, they start from zero state.
  void forward(const ConstTensorView<float, 3>& x, TensorView<float, 3> out, MambaMixerCache* cache = nullptr,
               const Eigen::ThreadPoolDevice* device = nullptr, MambaMixerScratch* scratch = nullptr) const {
    const char* op = "MambaMixer::forward";
    check_ready(op);
    detail::check_mamba_mixer_input(op, config_, x, &out);
    const Index B = x.dimension(0), L = x.dimension(1);
    if (cache) detail::check_mamba_mixer_cache(op, config_, *cache, B);
    if (B == 0 || L == 0) return;
    MambaMixerCache local;
    if (!cache) {
      local = new_cache(B);
      cache = &local;
    }
    MambaMixerScratch local_scratch;
    detail::run_prefill_chunks(
        x, out, scratch ? *scratch : local_scratch, [&](Index M) { return chunk_floats(M); },
        [&](const float* xc, Index Bc, Index n, float* oc, MambaMixerScratch& s) {
          forward_chunk(xc, Bc, n, oc, *cache, device, s);
        });
  }

  Tensor<float, 3> forward(const ConstTensorView<float, 3>& x, MambaMixerCache* cache = nullptr,
                           const Eigen::ThreadPoolDevice* device = nullptr, MambaMixerScratch* scratch = nullptr) const {
    check_ready("MambaMixer::forward");
    detail::check_mamba_mixer_input("MambaMixer::forward", config_, x, nullptr);
    Tensor<float, 3> out(x.dimension(0), x.dimension(1), config_.d_model);
    forward(x, TensorView<float, 3>(out.data(), out.dimensions()), cache, device, scratch);
    return out;
  }

  // One decode step: out [B, d_model] = mixer(token [B, d_model]) for the next token of each of the
  // B sequences in `cache`, which advances by one token.
  void step(const ConstTensorView<float, 2>& token, MambaMixerCache& cache, TensorView<float, 2> out,
            const Eigen::ThreadPoolDevice* device = nullptr, MambaMixerScratch* scratch = nullptr) const {
    const char* op = "MambaMixer::step";
    check_ready(op);
    const ConstTensorView<float, 3> token3(token.data(), token.dimension(0), 1, token.dimension(1));
    TensorView<float, 3> out3(out.data(), out.dimension(0), 1, out.dimension(1));
    detail::check_mamba_mixer_input(op, config_, token3, &out3);
    const Index B = token.dimension(0);
    detail::check_mamba_mixer_cache(op, config_, cache, B);
    if (B == 0) return;
    MambaMixerScratch local_scratch;
    if (!scratch) scratch = &local_scratch;
    const Chunk s = carve(*scratch, B);
    const Index I = config_.d_inner, N = config_.d_state;
    project_in(token.data(), B, s, device);
    ssm::CausalConv1dOptions conv_options{conv_bias_view(), /*activation_silu=*/true, std::nullopt, device};
    ssm::causal_conv1d_update(ConstTensorView<float, 2>(s.xs, B, I),
                              TensorView<float, 3>(cache.conv_state.data(), cache.conv_state.dimensions()),
                              ConstTensorView<float, 2>(conv_weight_), conv_options, TensorView<float, 2>(s.xc, B, I));
    project_dt_B_C(B, s, device);
    ssm::SelectiveStateUpdateOptions scan_options;
    scan_options.D = ConstTensorView<float, 1>(D_);
    scan_options.z = ConstTensorView<float, 2>(s.z, B, I);
    scan_options.dt_bias = ConstTensorView<float, 1>(dt_bias_);
    scan_options.dt_softplus = true;
    scan_options.device = device;
    ssm::selective_state_update(TensorView<float, 3>(cache.ssm_state.data(), cache.ssm_state.dimensions()),
                                ConstTensorView<float, 2>(s.xc, B, I), ConstTensorView<float, 2>(s.delta, B, I),
                                ConstTensorView<float, 2>(A_), ConstTensorView<float, 3>(s.Bm, B, 1, N),
                                ConstTensorView<float, 3>(s.Cm, B, 1, N), scan_options, TensorView<float, 2>(s.y, B, I));
    project_out(B, s, out.data(), device);
  }

  Tensor<float, 2> step(const ConstTensorView<float, 2>& token, MambaMixerCache& cache,
                        const Eigen::ThreadPoolDevice* device = nullptr, MambaMixerScratch* scratch = nullptr) const {
    check_ready("MambaMixer::step");
    Tensor<float, 2> out(token.dimension(0), config_.d_model);
    step(token, cache, TensorView<float, 2>(out.data(), out.dimensions()), device, scratch);
    return out;
  }

 private:
  // Scratch buffers of one chunk of M = B·n tokens (row-major, rows of one token).
  struct Chunk {
    float* xs;     // [M, I] in_proj x half (the conv input); reused as y, the scan output
    float* z;      // [M, I] in_proj z half (the gate)
    float* xc;     // [M, I] silu(conv(xs))
    float* delta;  // [M, I] dt_proj.weight · dt
    float* x_dbl;  // [M, R + 2N] x_proj output
    float* dt;     // [M, R]
    float* Bm;     // [M, N]
    float* Cm;     // [M, N]
    float* y;      // = xs
  };

  std::size_t chunk_floats(Index M) const {
    const Index I = config_.d_inner, N = config_.d_state, R = config_.dt_rank;
    auto round16 = [](Index n) { return static_cast<std::size_t>((n + 15) / 16 * 16); };  // keep 64-byte alignment
    return 4 * round16(M * I) + round16(M * (R + 2 * N)) + round16(M * R) + 2 * round16(M * N);
  }

  Chunk carve(MambaMixerScratch& scratch, Index M) const {
    const Index I = config_.d_inner, N = config_.d_state, R = config_.dt_rank;
    auto round16 = [](Index n) { return (n + 15) / 16 * 16; };
    float* p = scratch.floats(chunk_floats(M));
    Chunk s{};
    s.xs = p, p += round16(M * I);
    s.z = p, p += round16(M * I);
    s.xc = p, p += round16(M * I);
    s.delta = p, p += round16(M * I);
    s.x_dbl = p, p += round16(M * (R + 2 * N));
    s.dt = p, p += round16(M * R);
    s.Bm = p, p += round16(M * N);
    s.Cm = p;
    s.y = s.xs;
    return s;
  }

  void check_ready(const char* op) const {
    TOKENMIX_CHECK(!out_proj_.empty(), op, ": the mixer has no weights (default-constructed)");
  }

  std::optional<ConstTensorView<float, 1>> conv_bias_view() const {
    if (!conv_bias_) return std::nullopt;
    return ConstTensorView<float, 1>(*conv_bias_);
  }
  static std::optional<ConstTensorView<float, 1>> view_of(const std::optional<Tensor<float, 1>>& t) {
    if (!t) return std::nullopt;
    return ConstTensorView<float, 1>(*t);
  }

  // xs, z [M, I] = in_proj(x [M, d_model]).
  void project_in(const float* x, Index M, const Chunk& s, const Eigen::ThreadPoolDevice* device) const {
    const Index I = config_.d_inner;
    const ConstTensorView<float, 2> xv(x, M, config_.d_model);
    linear(xv, in_proj_x_, view_of(in_bias_x_), TensorView<float, 2>(s.xs, M, I), device);
    linear(xv, in_proj_z_, view_of(in_bias_z_), TensorView<float, 2>(s.z, M, I), device);
  }

  // dt [M, R], Bm, Cm [M, N] = split(x_proj(xc)); delta [M, I] = dt_proj.weight · dt.
  void project_dt_B_C(Index M, const Chunk& s, const Eigen::ThreadPoolDevice* device) const {
    const Index I = config_.d_inner, N = config_.d_state, R = config_.dt_rank, W = R + 2 * N;
    linear(ConstTensorView<float, 2>(s.xc, M, I), x_proj_, std::nullopt, TensorView<float, 2>(s.x_dbl, M, W), device);
    for (Index m = 0; m < M; ++m) {  // de-interleave the [dt | B | C] columns (M·(R+2N) floats)
      const float* row = s.x_dbl + m * W;
      std::memcpy(s.dt + m * R, row, sizeof(float) * static_cast<std::size_t>(R));
      std::memcpy(s.Bm + m * N, row + R, sizeof(float) * static_cast<std::size_t>(N));
      std::memcpy(s.Cm + m * N, row + R + N, sizeof(float) * static_cast<std::size_t>(N));
    }
    linear(ConstTensorView<float, 2>(s.dt, M, R), dt_proj_, std::nullopt, TensorView<float, 2>(s.delta, M, I), device);
  }

  // out [M, d_model] = out_proj(y [M, I]).
  void project_out(Index M, const Chunk& s, float* out, const Eigen::ThreadPoolDevice* device) const {
    linear(ConstTensorView<float, 2>(s.y, M, config_.d_inner), out_proj_, view_of(out_bias_),
           TensorView<float, 2>(out, M, config_.d_model), device);
  }

  // One chunk: x [B, n, d_model] (contiguous) → out [B, n, d_model], carrying `cache`.
  void forward_chunk(const float* x, Index B, Index n, float* out, MambaMixerCache& cache,
                     const Eigen::ThreadPoolDevice* device, MambaMixerScratch& scratch) const {
    const Index I = config_.d_inner, N = config_.d_state, M = B * n;
    // forward() sized the scratch for its largest chunk (plus the gather buffers after it), so this
    // does not reallocate and the gather buffers stay valid.
    const Chunk s = carve(scratch, M);
    project_in(x, M, s, device);
    ssm::CausalConv1dOptions conv_options{conv_bias_view(), /*activation_silu=*/true,
                                          ConstTensorView<float, 3>(cache.conv_state), device};
    TensorView<float, 3> conv_state(cache.conv_state.data(), cache.conv_state.dimensions());
    ssm::causal_conv1d(ConstTensorView<float, 3>(s.xs, B, n, I), ConstTensorView<float, 2>(conv_weight_), conv_options,
                       TensorView<float, 3>(s.xc, B, n, I), &conv_state);
    project_dt_B_C(M, s, device);
    ssm::SelectiveScanOptions scan_options;
    scan_options.D = ConstTensorView<float, 1>(D_);
    scan_options.z = ConstTensorView<float, 3>(s.z, B, n, I);
    scan_options.delta_bias = ConstTensorView<float, 1>(dt_bias_);
    scan_options.delta_softplus = true;
    scan_options.initial_state = ConstTensorView<float, 3>(cache.ssm_state);
    scan_options.device = device;
    TensorView<float, 3> ssm_state(cache.ssm_state.data(), cache.ssm_state.dimensions());
    ssm::selective_scan(ConstTensorView<float, 3>(s.xc, B, n, I), ConstTensorView<float, 3>(s.delta, B, n, I),
                        ConstTensorView<float, 2>(A_), ConstTensorView<float, 4>(s.Bm, B, n, 1, N),
                        ConstTensorView<float, 4>(s.Cm, B, n, 1, N), scan_options,
                        TensorView<float, 3>(s.y, B, n, I), &ssm_state);
    project_out(M, s, out, device);
  }

  MambaMixerConfig config_{};
  PackedLinear in_proj_x_, in_proj_z_;  // [I, d_model] each: in_proj rows [0, I) and [I, 2I)
  PackedLinear x_proj_;                 // [R + 2N, I]
  PackedLinear dt_proj_;                // [I, R]
  PackedLinear out_proj_;               // [d_model, I]
  Tensor<float, 2> conv_weight_;        // [I, K]
  Tensor<float, 2> A_;                  // [I, N] = -exp(A_log)
  Tensor<float, 1> D_, dt_bias_;        // [I]
  std::optional<Tensor<float, 1>> conv_bias_, in_bias_x_, in_bias_z_;  // [I]
  std::optional<Tensor<float, 1>> out_bias_;                           // [d_model]
};

}  // namespace tokenmix::blocks
