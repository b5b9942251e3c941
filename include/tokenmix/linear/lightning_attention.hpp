#pragma once
// Lightning Attention (TransNormerLLM / Lightning Attention-2, decayed causal linear attention) and
// RetNet-style retention, as parameters of simple_gla (linear/simple_gla.hpp):
//
//   o_t = scale · Σ_{s <= t} λ_h^(t-s) (q_t · k_s) v_s,   λ_h = exp(-slope_h)
//
//   std::vector<float> slopes = linear::tnl_slopes(H, layer, num_layers);
//   linear::LightningOptions o;  o.slopes.emplace(slopes.data(), H);
//   auto r = linear::lightning_attention(q, k, v, o);                        // r.out, r.final_state
//   linear::LightningStepOptions so;  so.slopes = o.slopes;
//   Tensor<float, 3> y = linear::lightning_attention_step(state, q1, k1, v1, so);  // state [B, H, K, V] in place
//
// No softmax, no denominator, no feature map; scale defaults to 1 as TransNormerLLM (fla's
// chunk_lightning_attn uses 1/sqrt(K): pass it). No slopes: the no-decay variant (λ = 1). The block
// size of Lightning Attention-2 is simple_gla's chunk size (default kLinearDefaultChunk = 32; lightning_attn2's BLOCK is 64 on GPUs).
// Initial and final states [B, H, K, V] continue a sequence across calls (OpenNLPLab's kernel has
// neither; fla's and the HF TNL decode path have both, with this convention: the state after token t
// holds Σ_{s <= t} λ^(t-s) k_sᵀ v_s).
//
// The two slope conventions (spec lightning_natten.md A2) — they differ numerically; pick the one
// your checkpoint was trained with:
//   tnl_slopes(H, layer, num_layers)        OpenNLPLab / TNL checkpoints: ALiBi slopes
//       2^(-8(h+1)/H) (H a power of two; otherwise the power-of-two list of the next lower power plus
//       every other slope of twice that), times (1 - layer/(num_layers - 1) + 1e-5)
//   fla_lightning_slopes(H, layer, num_layers)   fla's chunk_lightning_attn: slope_h = (8/H)·(1 -
//       layer/num_layers)·h (linear in h: head 0 has no decay)
//   retention_log_decay(H)                  RetNet / fla's chunk_retention: g_gamma_h = log(1 - 2^(-5-h))

#include <cmath>
#include <optional>
#include <vector>

#include "tokenmix/linear/simple_gla.hpp"

namespace tokenmix::linear {

// ALiBi slopes of H heads (OpenNLPLab's _build_slope_tensor / get_slopes).
inline std::vector<float> alibi_slopes(Index H) {
  TOKENMIX_CHECK(H >= 1, "alibi_slopes: H is ", H, ", expected >= 1");
  auto power_of_two = [](Index n) {
    std::vector<double> s;
    const double start = std::pow(2.0, -std::pow(2.0, -(std::log2(double(n)) - 3.0)));
    for (Index i = 0; i < n; ++i) s.push_back(start * std::pow(start, double(i)));
    return s;
  };
  std::vector<double> s;
  if ((H & (H - 1)) == 0) {
    s = power_of_two(H);
  } else {
    const Index closest = Index(1) << Index(std::floor(std::log2(double(H))));
    s = power_of_two(closest);
    const std::vector<double> extra = power_of_two(2 * closest);
    for (Index i = 0; i < H - closest; ++i) s.push_back(extra[std::size_t(2 * i)]);
  }
  return std::vector<float>(s.begin(), s.end());
}

// TNL's per-layer slopes: alibi_slopes(H) · (1 - layer/(num_layers - 1) + 1e-5) (layer 0-based).
inline std::vector<float> tnl_slopes(Index H, Index layer, Index num_layers) {
  TOKENMIX_CHECK(H >= 1 && num_layers >= 1 && layer >= 0 && layer < num_layers, "tnl_slopes: H ", H, ", layer ", layer,
                 " of ", num_layers, ", expected H >= 1 and 0 <= layer < num_layers");
  const double factor = num_layers > 1 ? 1.0 - double(layer) / double(num_layers - 1) + 1e-5 : 1.0 + 1e-5;
  std::vector<float> s = alibi_slopes(H);
  for (float& x : s) x = static_cast<float>(double(x) * factor);
  return s;
}

// fla's chunk_lightning_attn convention: slope_h = (8/H)·(1 - layer/num_layers)·h.
inline std::vector<float> fla_lightning_slopes(Index H, Index layer, Index num_layers) {
  TOKENMIX_CHECK(H >= 1 && num_layers >= 1 && layer >= 0 && layer < num_layers, "fla_lightning_slopes: H ", H,
                 ", layer ", layer, " of ", num_layers, ", expected H >= 1 and 0 <= layer < num_layers");
  std::vector<float> s(static_cast<std::size_t>(H));
  for (Index h = 0; h < H; ++h) s[std::size_t(h)] = float(8.0 / double(H) * (1.0 - double(layer) / double(num_layers)) * double(h));
  return s;
}

// RetNet's per-head decay as a log: g_gamma_h = log(1 - 2^(-5-h)).
inline std::vector<float> retention_log_decay(Index H) {
  TOKENMIX_CHECK(H >= 1, "retention_log_decay: H is ", H, ", expected >= 1");
  std::vector<float> g(static_cast<std::size_t>(H));
  for (Index h = 0; h < H; ++h) g[std::size_t(h)] = float(std::log1p(-std::exp2(-5.0 - double(h))));
  return g;
}

template <class Arch = simd::default_arch>
void lightning_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                         const ConstTensorView<float, 4>& v, const LightningOptions& options, TensorView<float, 4> out,
                         TensorView<float, 4>* final_state) {
  constexpr const char* op = "lightning_attention";
  const detail::LinearShape s = detail::check_linear_qkv(op, q, k, v);
  const std::vector<float> g_gamma = detail::lightning_log_decay(op, options.slopes, s.heads);
  SimpleGlaOptions o;
  if (!g_gamma.empty()) o.g_gamma.emplace(g_gamma.data(), s.heads);
  o.scale = options.scale, o.initial_state = options.initial_state, o.algorithm = options.algorithm;
  o.chunk_size = options.block_size, o.device = options.device;
  TOKENMIX_CHECK(options.block_size >= 0, op, ": block_size is ", options.block_size, ", expected >= 0 (0: the default)");
  detail::simple_gla_core<Arch>(op, q, k, v, o, out, final_state);
}

template <class Arch = simd::default_arch>
LinearResult lightning_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                                 const ConstTensorView<float, 4>& v, const LightningOptions& options = {}) {
  return detail::new_linear_result(detail::check_linear_qkv("lightning_attention", q, k, v),
                                   [&](TensorView<float, 4> out, TensorView<float, 4>* state) {
                                     lightning_attention<Arch>(q, k, v, options, out, state);
                                   });
}


// One decode step of lightning_attention: state [B, H, K, V] in place, q1 / k1 [B, H, K], v1 [B, H, V].
template <class Arch = simd::default_arch>
Tensor<float, 3> lightning_attention_step(TensorView<float, 4> state, const ConstTensorView<float, 3>& q1,
                                          const ConstTensorView<float, 3>& k1, const ConstTensorView<float, 3>& v1,
                                          const LightningStepOptions& options = {}) {
  const std::vector<float> g_gamma = detail::lightning_log_decay("lightning_attention_step", options.slopes, q1.dimension(1));
  LinearStepOptions o;
  if (!g_gamma.empty()) o.g_gamma.emplace(g_gamma.data(), q1.dimension(1));
  o.scale = options.scale;
  Tensor<float, 3> out(q1.dimension(0), q1.dimension(1), v1.dimension(2));
  detail::simple_gla_step_core<Arch>("lightning_attention_step", state, q1, k1, v1, o, TensorView<float, 3>(out.data(), out.dimensions()));
  return out;
}

// RetNet-style retention (fla's chunk_retention): simple_gla with g_gamma = retention_log_decay(H);
// scale defaults to 1/sqrt(K) as fla. options.g / g_gamma must be unset.
template <class Arch = simd::default_arch>
LinearResult retention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                       const ConstTensorView<float, 4>& v, SimpleGlaOptions options = {}) {
  TOKENMIX_CHECK(!options.g && !options.g_gamma, "retention: the decay is fixed per head (retention_log_decay); g and g_gamma must be unset");
  detail::check_linear_qkv("retention", q, k, v);  // before the heads are read from q
  const std::vector<float> g_gamma = retention_log_decay(q.dimension(2));
  options.g_gamma.emplace(g_gamma.data(), q.dimension(2));
  return simple_gla<Arch>(q, k, v, options);
}

}  // namespace tokenmix::linear
