#pragma once
// hybrid::SeqBoatLayer: the SeqBoat layer (Ren et al., "Sparse Modular Activation for Efficient
// Sequence Modeling", NeurIPS 2023) composed from the library's public operators: ssm::diagonal_ssm
// (Mega's multi-head EMA: N real modes per channel), blocks::linear (hx, mx and h projections), and
// attention::local_attention (the GAU's windowed softmax / relu² attention over the compressed
// tokens, with the bias by original positions); the norms, router, compression and scatter are
// per-token loops here.
//
//   hybrid::SeqBoatLayer layer(config, weights);
//   Tensor<float, 3> y = layer.forward(x);                 // x, y [B, L, D]
//   SeqBoatState state = make_seqboat_state(config, B);    // causal layers: streaming
//   layer.forward(prompt, out, &state);  layer.step(x_t, state, y_t);
//
// Math, weights (the released state dict's names) and the state: hybrid/seqboat_types.hpp; oracle:
// reference/seqboat.hpp. Cost per token: the projections (O(D·(2 + D + Z + 2E + D))) for every
// token, the EMA (O(D·N)), and for ACTIVATED tokens only the GAU (O(W·(Z + E)) attention and the
// mx / h projections): the layer gets cheaper as fewer tokens are activated, and linear in L.
// activated() reports how many tokens of each sequence the last call activated.
// The layer keeps its intermediate buffers (reused across calls), so one SeqBoatLayer must not run
// two calls at once; results are bitwise identical for any thread count of `device`.

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "tokenmix/attention/local_attention.hpp"
#include "tokenmix/blocks/linear.hpp"
#include "tokenmix/hybrid/seqboat_types.hpp"
#include "tokenmix/simd/activations.hpp"
#include "tokenmix/ssm/diagonal_ssm.hpp"

namespace tokenmix::hybrid {

class SeqBoatLayer {
 public:
  SeqBoatLayer(const SeqBoatConfig& config, const SeqBoatWeights& w, const Eigen::ThreadPoolDevice* device = nullptr)
      : config_(config), w_(w), device_(device) {
    detail::check_seqboat_weights("SeqBoatLayer", config, w);
    const Index D = config.d_model, N = config.ndim;
    // EMA rows as diagonal_ssm parameters: dA = q (real), C = p·beta·gamma·N^-½ / 2 (the op
    // computes 2·Re(C·S)), skip = omega on the forward part only.
    auto ema_params = [&](Index first_row, Tensor<float, 3>& dA, Tensor<float, 3>& C) {
      dA = Tensor<float, 3>(D, N, 2), C = Tensor<float, 3>(D, N, 2);
      dA.setZero(), C.setZero();
      const double scale = 1.0 / std::sqrt(double(N));
      for (Index d = 0; d < D; ++d)
        for (Index n = 0; n < N; ++n) {
          const Index r = first_row + d;
          const double p = sigmoid(w.move_delta(r, n, 0)), a = sigmoid(w.move_alpha(r, n, 0));
          dA(d, n, 0) = static_cast<float>(1.0 - p * a);
          C(d, n, 0) = static_cast<float>(0.5 * p * double(w.move_beta(r, n, 0)) * double(w.move_gamma(r, n)) * scale);
        }
    };
    ema_params(0, ema_dA_, ema_C_);
    if (config.bidirectional) ema_params(D, ema_back_dA_, ema_back_C_);
    hx_proj_ = blocks::PackedLinear(w.hx_proj_weight, device);
    mx_proj_ = blocks::PackedLinear(w.mx_proj_weight, device);
    h_proj_ = blocks::PackedLinear(w.h_proj_weight, device);
    // The bias table as local_attention's [1, 2M'-1]. 'local' (--local-pos) indexes the released
    // 2·3W-1 table at (j - i) + W + 3W - 1 (its look-around blocks start one window back), i.e.
    // centred at M' - 1 with M' = 4W: the table extended by 2W unused entries.
    if (config.position != SeqBoatPosition::rotary) {
      const Index entries = config.position == SeqBoatPosition::simple ? config.bias_entries() : 8 * config.window - 1;
      bias_table_ = Tensor<float, 2>(1, entries);
      bias_table_.setZero();
      for (Index e = 0; e < config.bias_entries(); ++e) bias_table_(0, e) = w.rel_pos_bias(e);
    }
  }

  const SeqBoatConfig& config() const { return config_; }
  const std::vector<Index>& activated() const { return activated_; }  // per sequence, the last call

  // out [B, L, D] = SeqBoat(x [B, L, D]). With a state (causal layers): continues the sequences it
  // holds and leaves their state after the last token in it.
  void forward(const ConstTensorView<float, 3>& x, TensorView<float, 3> out, SeqBoatState* state = nullptr) {
    detail::check_seqboat_input("SeqBoatLayer::forward", config_, x, &out, state);
    const Index B = x.dimension(0), L = x.dimension(1), D = config_.d_model, rows = B * L;
    activated_.assign(static_cast<std::size_t>(B), 0);
    if (L == 0) return;
    grow(xn_, rows * D), grow(mx_, rows * D), grow(hu_, rows * (2 + D)), grow(gate_, rows);
    // 1. Norm (prenorm), 2. EMA, 3. silu.
    const float* xn = x.data();
    if (config_.prenorm) normalize(x.data(), xn_.data(), rows), xn = xn_.data();
    ema(ConstTensorView<float, 3>(xn, B, L, D), TensorView<float, 3>(mx_.data(), B, L, D), state);
    simd::silu_inplace(mx_.data(), rows * D);
    // 4. hx projection with the router logits, 5. router.
    blocks::linear(ConstTensorView<float, 2>(mx_.data(), rows, D), hx_proj_, optional_view(w_.hx_proj_bias),
                   TensorView<float, 2>(hu_.data(), rows, 2 + D), device_);
    const double inv_temp = std::exp(-double(w_.q_router_temp(0)));
    for (Index r = 0; r < rows; ++r) {
      const double l0 = (double(hu_[r * (2 + D)]) + double(config_.act_bias)) * inv_temp;
      const double l1 = double(hu_[r * (2 + D) + 1]) * inv_temp;
      gate_[r] = l1 > l0 ? static_cast<float>(1.0 / (1.0 + std::exp(l0 - l1))) : 0.0f;  // P1 > P0 strictly
    }
    // 6. out = x + hx (+ the GAU's h on activated tokens, below).
    float* o = out.data();
    for (Index r = 0; r < rows; ++r)
      for (Index d = 0; d < D; ++d) o[r * D + d] = x.data()[r * D + d] + hu_[r * (2 + D) + 2 + d];
    const Index first_position = state ? state->tokens : 0;
    for (Index b = 0; b < B; ++b) gau(b, L, first_position, o + b * L * D, state);
    // 7. silu, postnorm.
    simd::silu_inplace(o, rows * D);
    if (!config_.prenorm) {
      normalize(o, xn_.data(), rows);
      std::copy(xn_.begin(), xn_.begin() + rows * D, o);
    }
    if (state) state->tokens += L;
  }

  Tensor<float, 3> forward(const ConstTensorView<float, 3>& x, SeqBoatState* state = nullptr) {
    detail::check_seqboat_input("SeqBoatLayer::forward", config_, x, nullptr, state);  // before allocating
    Tensor<float, 3> out(x.dimension(0), x.dimension(1), config_.d_model);
    forward(x, TensorView<float, 3>(out.data(), out.dimensions()), state);
    return out;
  }

  // One token per sequence (causal layers): forward() on [B, 1, D], bitwise the same.
  void step(const ConstTensorView<float, 2>& x, SeqBoatState& state, TensorView<float, 2> out) {
    const char* op = "SeqBoatLayer::step";
    const Index B = x.dimension(0), D = config_.d_model;
    TOKENMIX_CHECK(B > 0 && x.dimension(1) == D, op, ": x has shape ", shape_of(x), ", expected [B, D=", D,
                   "] with B > 0");
    tokenmix::detail::check_shape(op, "out", out, NamedShape<2>{{"B", "D"}, {{B, D}}}, " like x");
    forward(ConstTensorView<float, 3>(x.data(), B, 1, D), TensorView<float, 3>(out.data(), B, 1, D), &state);
  }

 private:
  static double sigmoid(double a) { return 1.0 / (1.0 + std::exp(-a)); }
  template <class Vec>
  static void grow(Vec& v, Index n) {
    if (static_cast<Index>(v.size()) < n) v.resize(static_cast<std::size_t>(n));
  }

  // Norm over the D channels of each of `rows` tokens, in -> out (vectorized over channels; mean,
  // variance and mean square as float lane sums).
  void normalize(const float* in, float* out, Index rows) const {
    using Arch = simd::default_arch;
    using V = simd::vfloat<Arch>;
    constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
    const Index D = config_.d_model;
    const float eps = config_.norm_eps;
    const float *gain = w_.norm_weight.data(), *shift = w_.norm_bias.data();
    alignas(64) float pad[64];
    auto sum_of = [&](const float* x, auto&& term) {
      V acc(0.0f);
      for (Index d = 0; d < D; d += W) acc = acc + term(simd::load_upto<Arch>(x + d, std::min(W, D - d), pad), d);
      return simd::reduce_add<Arch>(acc);
    };
    for (Index r = 0; r < rows; ++r) {
      const float* x = in + r * D;
      float* y = out + r * D;
      auto each = [&](auto&& f) {  // y[d] = f(x[d], d) over the row, W channels at a time
        for (Index d = 0; d < D; d += W) {
          const Index count = std::min(W, D - d);
          simd::store_upto<Arch>(y + d, f(simd::load_upto<Arch>(x + d, count, pad), d, count), count, pad);
        }
      };
      auto vec = [&](const float* p, Index d, Index count) { return simd::load_upto<Arch>(p + d, count, pad); };
      switch (config_.norm) {
        case SeqBoatNorm::layer_norm: {
          const float mean = sum_of(x, [](V v, Index) { return v; }) / float(D);
          // Lanes past D load 0: their (0 - mean)² is removed from the sum.
          const float tail = float((W - D % W) % W) * mean * mean;
          const float var = (sum_of(x, [&](V v, Index) { return (v - V(mean)) * (v - V(mean)); }) - tail) / float(D);
          const V inv(1.0f / std::sqrt(var + eps));
          each([&](V v, Index d, Index count) { return (v - V(mean)) * inv * vec(gain, d, count) + vec(shift, d, count); });
          break;
        }
        case SeqBoatNorm::rms_norm: {
          const V inv(1.0f / std::sqrt(sum_of(x, [](V v, Index) { return v * v; }) / float(D) + eps));
          each([&](V v, Index d, Index count) { return v * inv * vec(gain, d, count); });
          break;
        }
        case SeqBoatNorm::scale_norm: {
          const V inv(w_.norm_scalar(0) / std::sqrt(sum_of(x, [](V v, Index) { return v * v; }) / float(D) + eps));
          each([&](V v, Index, Index) { return v * inv; });
          break;
        }
        case SeqBoatNorm::batch_norm:
          for (Index d = 0; d < D; ++d)
            y[d] = (x[d] - w_.norm_running_mean(d)) / std::sqrt(w_.norm_running_var(d) + eps) * gain[d] + shift[d];
          break;
      }
    }
  }

  // y [B, L, D] = EMA(xn): the causal part (with omega) through diagonal_ssm, continuing from the
  // state; the bidirectional layer adds the anti-causal part, run on the time-reversed input.
  void ema(const ConstTensorView<float, 3>& xn, TensorView<float, 3> y, SeqBoatState* state) {
    const Index B = xn.dimension(0), L = xn.dimension(1), D = xn.dimension(2);
    ssm::DiagonalSsmOptions o;
    o.D = w_.move_omega;
    o.device = device_;
    std::optional<TensorView<float, 4>> final_state;
    if (state) {
      o.initial_state.emplace(state->ema_state.data(), state->ema_state.dimensions());
      final_state.emplace(state->ema_state.data(), state->ema_state.dimensions());
    }
    ssm::diagonal_ssm(xn, ema_dA_, ema_C_, o, y, final_state ? &*final_state : nullptr);
    if (!config_.bidirectional) return;
    grow(reversed_, 2 * B * L * D);
    float* rev_in = reversed_.data();
    float* rev_out = rev_in + B * L * D;
    for (Index b = 0; b < B; ++b)
      for (Index t = 0; t < L; ++t)
        std::copy_n(xn.data() + (b * L + t) * D, D, rev_in + (b * L + (L - 1 - t)) * D);
    ssm::DiagonalSsmOptions back;
    back.device = device_;
    ssm::diagonal_ssm(ConstTensorView<float, 3>(rev_in, B, L, D), ema_back_dA_, ema_back_C_, back,
                      TensorView<float, 3>(rev_out, B, L, D), nullptr);
    for (Index b = 0; b < B; ++b)
      for (Index t = 0; t < L; ++t) {
        const float* r = rev_out + (b * L + (L - 1 - t)) * D;
        float* yt = y.data() + (b * L + t) * D;
        for (Index d = 0; d < D; ++d) yt[d] += r[d];
      }
  }

  // The GAU of sequence b over its activated tokens (plus the cached ones of a state): adds
  // gate·h_proj(r ⊙ O) to their rows of out [L, D] and refreshes the cache.
  void gau(Index b, Index L, Index first_position, float* out, SeqBoatState* state) {
    const Index D = config_.d_model, Z = config_.zdim, E = config_.hdim, W = config_.window;
    const Index F = Z + 2 * E;
    std::vector<Index>& idx = index_;
    idx.clear();
    for (Index t = 0; t < L; ++t)
      if (gate_[b * L + t] > 0.0f) idx.push_back(t);
    const Index m = static_cast<Index>(idx.size());
    activated_[static_cast<std::size_t>(b)] = m;
    const Index cached = state ? state->cached(b) : 0, n = cached + m;  // keys: the cache, then the new tokens
    if (m == 0) return;
    grow(rows_, m * D), grow(base_, m * F), grow(q_, m * Z), grow(k_, n * Z), grow(v_, n * E), grow(o_, m * E);
    grow(h_, m * D);
    positions_ = Tensor<Index, 2>(1, n);
    for (Index i = 0; i < m; ++i) std::copy_n(mx_.data() + (b * L + idx[i]) * D, D, rows_.data() + i * D);
    blocks::linear(ConstTensorView<float, 2>(rows_.data(), m, D), mx_proj_, optional_view(w_.mx_proj_bias),
                   TensorView<float, 2>(base_.data(), m, F), device_);
    if (cached > 0) {
      std::copy_n(state->keys.data() + b * W * Z, cached * Z, k_.data());
      std::copy_n(state->values.data() + b * W * E, cached * E, v_.data());
      for (Index j = 0; j < cached; ++j) positions_(0, j) = state->key_positions(b, j);
    }
    simd::silu_inplace(base_.data(), m * F);
    for (Index i = 0; i < m; ++i) {
      const float* f = base_.data() + i * F;
      float* qi = q_.data() + i * Z;
      float* ki = k_.data() + (cached + i) * Z;
      for (Index c = 0; c < Z; ++c) {
        qi[c] = f[c] * w_.gamma(0, c) + w_.beta(0, c);
        ki[c] = f[c] * w_.gamma(1, c) + w_.beta(1, c);
      }
      std::copy_n(f + Z + E, E, v_.data() + (cached + i) * E);
      const Index position = first_position + idx[i];
      positions_(0, cached + i) = position;
      if (config_.position == SeqBoatPosition::rotary) rotate(qi, position), rotate(ki, position);
    }
    attention::LocalAttentionOptions a;
    a.window = W, a.causal = !config_.bidirectional, a.kind = config_.attention, a.device = device_;
    if (config_.position != SeqBoatPosition::rotary)
      a.rel_pos_bias.emplace(bias_table_.data(), bias_table_.dimensions());
    if (config_.position == SeqBoatPosition::simple) a.positions.emplace(positions_.data(), positions_.dimensions());
    attention::local_attention(ConstTensorView<float, 4>(q_.data(), 1, m, 1, Z),
                               ConstTensorView<float, 4>(k_.data(), 1, n, 1, Z),
                               ConstTensorView<float, 4>(v_.data(), 1, n, 1, E), a,
                               TensorView<float, 4>(o_.data(), 1, m, 1, E));
    for (Index i = 0; i < m; ++i) {
      const float* r = base_.data() + i * F + Z;
      float* oi = o_.data() + i * E;
      for (Index c = 0; c < E; ++c) oi[c] *= r[c];
    }
    blocks::linear(ConstTensorView<float, 2>(o_.data(), m, E), h_proj_, optional_view(w_.h_proj_bias),
                   TensorView<float, 2>(h_.data(), m, D), device_);
    for (Index i = 0; i < m; ++i) {
      const float g = gate_[b * L + idx[i]];
      float* row = out + idx[i] * D;
      for (Index d = 0; d < D; ++d) row[d] += g * h_[i * D + d];
    }
    if (state) {  // keep the last min(W, n) keys, values and positions
      const Index keep = std::min(W, n), from = n - keep;
      std::copy_n(k_.data() + from * Z, keep * Z, state->keys.data() + b * W * Z);
      std::copy_n(v_.data() + from * E, keep * E, state->values.data() + b * W * E);
      for (Index j = 0; j < keep; ++j) state->key_positions(b, j) = positions_(0, from + j);
      state->cached(b) = keep;
    }
  }

  // RoPE on adjacent pairs at `position`: angle_k = position·10000^(-2k/Z).
  void rotate(float* x, Index position) const {
    const Index Z = config_.zdim;
    for (Index k = 0; k < Z / 2; ++k) {
      const double angle = double(position) * std::pow(10000.0, -2.0 * double(k) / double(Z));
      const double c = std::cos(angle), s = std::sin(angle), a = x[2 * k], b = x[2 * k + 1];
      x[2 * k] = static_cast<float>(a * c - b * s);
      x[2 * k + 1] = static_cast<float>(a * s + b * c);
    }
  }

  SeqBoatConfig config_;
  SeqBoatWeights w_;
  const Eigen::ThreadPoolDevice* device_;
  Tensor<float, 3> ema_dA_, ema_C_, ema_back_dA_, ema_back_C_;  // [D, N, 2]
  blocks::PackedLinear hx_proj_, mx_proj_, h_proj_;
  Tensor<float, 2> bias_table_;                                 // [1, 2M'-1]
  // Per-call buffers, reused.
  std::vector<float> xn_, mx_, hu_, gate_, reversed_;          // [B·L, ...]
  std::vector<float> rows_, base_, q_, k_, v_, o_, h_;         // one sequence's GAU
  std::vector<Index> index_, activated_;
  Tensor<Index, 2> positions_;
};

// One call: SeqBoatLayer(config, weights, device).forward(x), no streaming state (keep a
// SeqBoatLayer for repeated use: it packs the projections once).
inline Tensor<float, 3> seqboat(const SeqBoatConfig& config, const SeqBoatWeights& weights,
                                const ConstTensorView<float, 3>& x, const Eigen::ThreadPoolDevice* device = nullptr) {
  return SeqBoatLayer(config, weights, device).forward(x);
}

}  // namespace tokenmix::hybrid
