#pragma once
// Oracle of blocks::MambaMixer: transformers' MambaMixer.slow_forward written as plain loops (no
// SIMD, no threads, no tokenmix op), accumulation in Acc (double in tests). Weights, cache and math
// in blocks/mamba_mixer_types.hpp; spec mamba_scan.md §3:
//   xz = in_proj(x); xs, z = xz[:I], xz[I:]
//   xc[t, i] = silu(Σ_k conv1d.weight[i, 0, k] · xs[t - (K-1) + k, i] + conv1d.bias[i])   (xs before
//              token 0 comes from the cache's conv_state, zeros without)
//   x_dbl = x_proj(xc); dt, Bt, Ct = x_dbl[:R], x_dbl[R:R+N], x_dbl[R+N:]
//   dt = softplus(dt_proj(dt))       (weight and bias; softplus threshold 20 as torch)
//   h[i, n] = exp(dt[i] · A[i, n]) · h[i, n] + dt[i] · Bt[n] · xc[i],  A = -exp(A_log)
//   y[i] = (Σ_n h[i, n] · Ct[n] + D[i] · xc[i]) · silu(z[i]);  out = out_proj(y)
// One function serves prefill and decode: the step is forward over L = 1 with a cache.

#include <cmath>
#include <vector>

#include "tokenmix/blocks/mamba_mixer_types.hpp"

namespace tokenmix::ref {

// x [B, L, d_model] -> out [B, L, d_model]; with a cache, continues from it and leaves in it the
// state after the last token.
template <class Acc = double>
Tensor<float, 3> mamba_mixer(const blocks::MambaMixerWeights& w, const ConstTensorView<float, 3>& x,
                             blocks::MambaMixerCache* cache = nullptr) {
  const char* op = "ref::mamba_mixer";
  const blocks::MambaMixerConfig c = blocks::detail::check_mamba_mixer_weights(op, w);
  blocks::detail::check_mamba_mixer_input(op, c, x, nullptr);
  const Index B = x.dimension(0), L = x.dimension(1), Dm = c.d_model, I = c.d_inner, N = c.d_state,
              K = c.d_conv, R = c.dt_rank;
  if (cache) blocks::detail::check_mamba_mixer_cache(op, c, *cache, B);
  auto silu = [](Acc v) { return v / (Acc(1) + std::exp(-v)); };
  auto softplus = [](Acc v) { return v > Acc(20) ? v : std::log1p(std::exp(v)); };
  auto linear = [](const std::vector<Acc>& in, const Tensor<float, 2>& weight, const std::optional<Tensor<float, 1>>& bias,
                   Index row0, Index rows) {  // rows [row0, row0 + rows) of weight · in (+ bias)
    std::vector<Acc> o(static_cast<std::size_t>(rows));
    for (Index r = 0; r < rows; ++r) {
      Acc s = bias ? Acc((*bias)(row0 + r)) : Acc(0);
      for (Index k = 0; k < weight.dimension(1); ++k) s += Acc(weight(row0 + r, k)) * in[k];
      o[r] = s;
    }
    return o;
  };

  Tensor<float, 3> out(B, L, Dm);
  for (Index b = 0; b < B; ++b) {
    // history[i][j]: the K-1 raw xs before the current token, oldest first; h[i][n] the scan state.
    std::vector<std::vector<Acc>> history(I, std::vector<Acc>(K - 1, Acc(0)));
    std::vector<std::vector<Acc>> h(I, std::vector<Acc>(N, Acc(0)));
    if (cache)
      for (Index i = 0; i < I; ++i) {
        for (Index j = 0; j < K - 1; ++j) history[i][j] = cache->conv_state(b, i, j);
        for (Index n = 0; n < N; ++n) h[i][n] = cache->ssm_state(b, i, n);
      }
    for (Index t = 0; t < L; ++t) {
      std::vector<Acc> xt(Dm);
      for (Index k = 0; k < Dm; ++k) xt[k] = x(b, t, k);
      const std::vector<Acc> xs = linear(xt, w.in_proj_weight, w.in_proj_bias, 0, I);
      const std::vector<Acc> z = linear(xt, w.in_proj_weight, w.in_proj_bias, I, I);
      std::vector<Acc> xc(I);
      for (Index i = 0; i < I; ++i) {
        Acc s = w.conv1d_bias ? Acc((*w.conv1d_bias)(i)) : Acc(0);
        for (Index k = 0; k < K - 1; ++k) s += Acc(w.conv1d_weight(i, 0, k)) * history[i][k];
        s += Acc(w.conv1d_weight(i, 0, K - 1)) * xs[i];
        xc[i] = silu(s);
        if (K > 1) {  // shift the window: drop the oldest, append this token's raw input
          history[i].erase(history[i].begin());
          history[i].push_back(xs[i]);
        }
      }
      const std::vector<Acc> x_dbl = linear(xc, w.x_proj_weight, std::nullopt, 0, R + 2 * N);
      const std::vector<Acc> dt_low(x_dbl.begin(), x_dbl.begin() + R);
      std::vector<Acc> y(I);
      for (Index i = 0; i < I; ++i) {
        Acc dt = Acc(w.dt_proj_bias(i));
        for (Index r = 0; r < R; ++r) dt += Acc(w.dt_proj_weight(i, r)) * dt_low[r];
        dt = softplus(dt);
        Acc yi = 0;
        for (Index n = 0; n < N; ++n) {
          const Acc A = -std::exp(Acc(w.A_log(i, n)));
          h[i][n] = std::exp(dt * A) * h[i][n] + dt * x_dbl[R + n] * xc[i];
          yi += h[i][n] * x_dbl[R + N + n];
        }
        y[i] = (yi + Acc(w.D(i)) * xc[i]) * silu(z[i]);
      }
      const std::vector<Acc> o = linear(y, w.out_proj_weight, w.out_proj_bias, 0, Dm);
      for (Index k = 0; k < Dm; ++k) out(b, t, k) = static_cast<float>(o[k]);
    }
    if (cache)
      for (Index i = 0; i < I; ++i) {
        for (Index j = 0; j < K - 1; ++j) cache->conv_state(b, i, j) = static_cast<float>(history[i][j]);
        for (Index n = 0; n < N; ++n) cache->ssm_state(b, i, n) = static_cast<float>(h[i][n]);
      }
  }
  return out;
}

}  // namespace tokenmix::ref
