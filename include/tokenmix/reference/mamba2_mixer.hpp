#pragma once
// Oracle of blocks::Mamba2Mixer: transformers' Mamba2Mixer.forward (torch path) written as plain
// loops token by token (no SIMD, no threads, no tokenmix op), accumulation in Acc. Weights, cache
// and the released code's traps in blocks/mamba2_mixer_types.hpp:
//   [z, xBC, dt] = in_proj(x);  xBC = silu(conv(xBC) + bias);  [x, B, C] = xBC
//   dt' = softplus(dt + dt_bias) (clamped to the dt limit when clamp_dt: the prefill; the released
//   decode step does not clamp);  h = exp(dt'·A)·h + dt'·x ⊗ B_g;  y = h·C_g + D·x
//   y = weight · g · rsqrt(mean_group(g²) + eps) with g = y · silu(z);  out = out_proj(y)

#include <algorithm>
#include <cmath>
#include <vector>

#include "tokenmix/blocks/mamba2_mixer_types.hpp"

namespace tokenmix::ref {

template <class Acc = double>
Tensor<float, 3> mamba2_mixer(const blocks::Mamba2MixerConfig& c, const blocks::Mamba2MixerWeights& w,
                              const ConstTensorView<float, 3>& x, blocks::MambaMixerCache* cache = nullptr,
                              bool clamp_dt = true) {
  const char* op = "ref::mamba2_mixer";
  blocks::detail::check_mamba2_mixer_weights(op, c, w);
  TOKENMIX_CHECK(x.dimension(2) == c.d_model, op, ": x has shape ", shape_of(x), ", expected [B, L, d_model=", c.d_model, "]");
  const Index Bt = x.dimension(0), L = x.dimension(1), Dm = c.d_model, I = c.d_inner(), CD = c.conv_dim(), H = c.heads,
              P = c.head_dim, N = c.d_state, G = c.n_groups, K = c.d_conv, R = c.in_proj_rows(), GS = c.group_size();
  if (cache) blocks::detail::check_mamba2_mixer_cache(op, c, *cache, Bt);
  auto silu = [](Acc v) { return v / (Acc(1) + std::exp(-v)); };
  Tensor<float, 3> out(Bt, L, Dm);
  for (Index b = 0; b < Bt; ++b) {
    std::vector<Acc> hist(static_cast<std::size_t>(CD * (K - 1)), Acc(0));  // [conv_dim, K-1], oldest first
    std::vector<Acc> h(static_cast<std::size_t>(H * P * N), Acc(0));        // [H, P, N]
    if (cache) {
      for (Index i = 0; i < CD * (K - 1); ++i) hist[i] = cache->conv_state.data()[b * CD * (K - 1) + i];
      for (Index i = 0; i < H * P * N; ++i) h[i] = cache->ssm_state.data()[b * H * P * N + i];
    }
    for (Index t = 0; t < L; ++t) {
      std::vector<Acc> proj(static_cast<std::size_t>(R));
      for (Index r = 0; r < R; ++r) {
        Acc v = w.in_proj_bias ? Acc((*w.in_proj_bias)(r)) : Acc(0);
        for (Index k = 0; k < Dm; ++k) v += Acc(w.in_proj_weight(r, k)) * Acc(x(b, t, k));
        proj[r] = v;
      }
      const Acc* z = proj.data();
      const Acc* xbc = proj.data() + I;
      const Acc* dt = proj.data() + I + CD;
      std::vector<Acc> conv(static_cast<std::size_t>(CD));
      for (Index ch = 0; ch < CD; ++ch) {
        Acc v = w.conv1d_bias ? Acc((*w.conv1d_bias)(ch)) : Acc(0);
        for (Index k = 0; k < K - 1; ++k) v += Acc(w.conv1d_weight(ch, 0, k)) * hist[ch * (K - 1) + k];
        v += Acc(w.conv1d_weight(ch, 0, K - 1)) * xbc[ch];
        conv[ch] = silu(v);
        for (Index k = 0; k + 1 < K - 1; ++k) hist[ch * (K - 1) + k] = hist[ch * (K - 1) + k + 1];
        if (K > 1) hist[ch * (K - 1) + K - 2] = xbc[ch];
      }
      const Acc* xs = conv.data();
      const Acc* Bm = conv.data() + I;
      const Acc* Cm = conv.data() + I + G * N;
      std::vector<Acc> y(static_cast<std::size_t>(I));
      for (Index hd = 0; hd < H; ++hd) {
        Acc d = dt[hd] + Acc(w.dt_bias(hd));
        d = d > Acc(20) ? d : std::log1p(std::exp(d));
        if (clamp_dt) d = std::min(std::max(d, Acc(c.dt_min)), Acc(c.dt_max));
        const Acc dA = std::exp(d * -std::exp(Acc(w.A_log(hd))));
        const Index g = hd / (H / G);
        for (Index p = 0; p < P; ++p) {
          const Acc xv = xs[hd * P + p];
          Acc acc = 0;
          for (Index n = 0; n < N; ++n) {
            Acc& s = h[(hd * P + p) * N + n];
            s = dA * s + d * xv * Bm[g * N + n];
            acc += s * Cm[g * N + n];
          }
          y[hd * P + p] = acc + Acc(w.D(hd)) * xv;
        }
      }
      for (Index i = 0; i < I; ++i) y[i] *= silu(z[i]);
      for (Index g0 = 0; g0 < I; g0 += GS) {
        Acc sum = 0;
        for (Index i = g0; i < g0 + GS; ++i) sum += y[i] * y[i];
        const Acc r = Acc(1) / std::sqrt(sum / Acc(GS) + Acc(c.norm_eps));
        for (Index i = g0; i < g0 + GS; ++i) y[i] = Acc(w.norm_weight(i)) * y[i] * r;
      }
      for (Index m = 0; m < Dm; ++m) {
        Acc v = w.out_proj_bias ? Acc((*w.out_proj_bias)(m)) : Acc(0);
        for (Index i = 0; i < I; ++i) v += Acc(w.out_proj_weight(m, i)) * y[i];
        out(b, t, m) = static_cast<float>(v);
      }
    }
    if (cache) {
      for (Index i = 0; i < CD * (K - 1); ++i) cache->conv_state.data()[b * CD * (K - 1) + i] = static_cast<float>(hist[i]);
      for (Index i = 0; i < H * P * N; ++i) cache->ssm_state.data()[b * H * P * N + i] = static_cast<float>(h[i]);
    }
  }
  return out;
}

}  // namespace tokenmix::ref
