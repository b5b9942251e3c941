#pragma once
// Oracle of A2Mamba's MASS token mixer: spec a2mamba.md §3 as plain loops in Acc (double in tests),
// channels-last, in the order the spec lists the steps. It calls no tokenmix operator: the 1x1
// convs, the BatchNorm, the 5x5 LePE, RoPE2D, both neighbourhood branches (NATTEN's window rule of
// attention/neighborhood_types.hpp) with the cascaded values, the dense global branch, the norms and
// the projection are written out here; the A2SSM step is its own oracle ref::a2ssm (fed the maps
// rounded to float, as the fast op feeds its own), and the bicubic resize of the global bias is the
// shared hybrid::detail::resize_bicubic (checked against torch's F.interpolate by the fixtures).
//
// Source: LMMMEng/A2Mamba models/a2mamba.py class Attention (forward), RoPE, theta_shift,
// rotate_every_two, LayerNorm2d. Shapes and math: hybrid/mass_types.hpp.

#include <array>
#include <cmath>
#include <vector>

#include "tokenmix/attention/neighborhood_types.hpp"
#include "tokenmix/hybrid/mass_types.hpp"
#include "tokenmix/reference/a2ssm.hpp"

namespace tokenmix::ref {

namespace detail {

// Rows of v [rows, D] normalised over D in place (nn.LayerNorm, biased variance).
template <class Acc>
void layer_norm_rows(std::vector<Acc>& v, Index D, const Tensor<float, 1>& weight, const Tensor<float, 1>& bias,
                     double eps) {
  for (std::size_t r = 0; r < v.size(); r += std::size_t(D)) {
    Acc mean = 0, var = 0;
    for (Index d = 0; d < D; ++d) mean += v[r + std::size_t(d)];
    mean /= Acc(D);
    for (Index d = 0; d < D; ++d) var += (v[r + std::size_t(d)] - mean) * (v[r + std::size_t(d)] - mean);
    const Acc inv = Acc(1) / std::sqrt(var / Acc(D) + Acc(eps));
    for (Index d = 0; d < D; ++d)
      v[r + std::size_t(d)] = (v[r + std::size_t(d)] - mean) * inv * Acc(weight(d)) + Acc(bias(d));
  }
}

}  // namespace detail

template <class Acc = double>
Tensor<float, 4> mass(const hybrid::MassConfig& c, const hybrid::MassWeights& w,
                      const ConstTensorView<float, 4>& x) {  // [B, H, W, C]
  hybrid::detail::check_mass_weights("ref::mass", c, w);
  hybrid::detail::check_mass_input("ref::mass", c, x, nullptr);
  const Index B = x.dimension(0), H = x.dimension(1), W = x.dimension(2), L = H * W;
  const Index C = c.channels, nh = c.heads, dh = C / nh, K = c.kernel_size, S = K * K, half = nh / 2;
  const std::array<Index, 2> dil = hybrid::mass_dilation(H, W, K);
  auto at = [](Index a, Index b, Index n) { return static_cast<std::size_t>(a * n + b); };
  // RoPE2D angles: f_p = 1 / 10000^(p / (n - 1)), p < n = dh / 4 (torch.linspace(0, 1, n); [0] for n = 1).
  const Index n_freq = dh / 4;
  std::vector<Acc> freq(static_cast<std::size_t>(n_freq));
  for (Index p = 0; p < n_freq; ++p)
    freq[std::size_t(p)] = Acc(1) / std::pow(Acc(10000), n_freq > 1 ? Acc(p) / Acc(n_freq - 1) : Acc(0));
  Tensor<float, 4> out(B, H, W, C);
  Tensor<float, 5> attn1(B, H, W, half, S), attn2(B, H, W, half, S);
  std::vector<Acc> all_gate, all_lepe, all_mixed;  // [B·L, C]
  Tensor<float, 4> x_ms(B, H, W, C);
  for (Index b = 0; b < B; ++b) {
    std::vector<Acc> gate(std::size_t(L * C)), qkv(std::size_t(L * 3 * C)), lepe(std::size_t(L * C));
    for (Index t = 0; t < L; ++t) {
      const Index i = t / W, j = t % W;
      for (Index o = 0; o < C; ++o) {
        Acc g = Acc(w.gate_0_bias(o));
        for (Index ci = 0; ci < C; ++ci) g += Acc(w.gate_0_weight(o, ci, 0, 0)) * Acc(x(b, i, j, ci));
        g = (g - Acc(w.gate_1_running_mean(o))) / std::sqrt(Acc(w.gate_1_running_var(o)) + Acc(hybrid::kMassBatchNormEps)) *
                Acc(w.gate_1_weight(o)) + Acc(w.gate_1_bias(o));
        gate[at(t, o, C)] = g / (Acc(1) + std::exp(-g));
      }
      for (Index f = 0; f < 3 * C; ++f) {
        Acc acc = Acc(w.qkv_bias(f));
        for (Index ci = 0; ci < C; ++ci) acc += Acc(w.qkv_weight(f, ci, 0, 0)) * Acc(x(b, i, j, ci));
        qkv[at(t, f, 3 * C)] = acc;
      }
    }
    // LePE: depthwise 5x5 (zero padding) of v = the last C channels of qkv.
    for (Index t = 0; t < L; ++t)
      for (Index ch = 0; ch < C; ++ch) {
        Acc acc = Acc(w.lepe_bias(ch));
        for (Index p = 0; p < 5; ++p)
          for (Index q = 0; q < 5; ++q) {
            const Index yy = t / W + p - 2, zz = t % W + q - 2;
            if (yy >= 0 && yy < H && zz >= 0 && zz < W) acc += Acc(w.lepe_weight(ch, 0, p, q)) * qkv[at(yy * W + zz, 2 * C + ch, 3 * C)];
          }
        lepe[at(t, ch, C)] = acc;
      }
    // q, k, v [L, nh, dh] (channel (m, head, e)); RoPE2D on q (scaled) and k.
    std::vector<Acc> q(std::size_t(L * C)), k(std::size_t(L * C)), v(std::size_t(L * C));
    const Acc scale = Acc(1) / std::sqrt(Acc(dh));
    for (Index t = 0; t < L; ++t)
      for (Index h = 0; h < nh; ++h)
        for (Index e = 0; e < dh; e += 2) {
          const bool by_row = e < dh / 2;
          const Acc angle = Acc(by_row ? t / W : t % W) * freq[std::size_t((by_row ? e : e - dh / 2) / 2)];
          const Acc cs = std::cos(angle), sn = std::sin(angle);
          for (int m = 0; m < 2; ++m) {
            const Acc x0 = qkv[at(t, m * C + h * dh + e, 3 * C)], x1 = qkv[at(t, m * C + h * dh + e + 1, 3 * C)];
            std::vector<Acc>& dst = m == 0 ? q : k;
            const Acc s = m == 0 ? scale : Acc(1);
            dst[at(t, h * dh + e, C)] = (x0 * cs - x1 * sn) * s;
            dst[at(t, h * dh + e + 1, C)] = (x1 * cs + x0 * sn) * s;
          }
          v[at(t, h * dh + e, C)] = qkv[at(t, 2 * C + h * dh + e, 3 * C)];
          v[at(t, h * dh + e + 1, C)] = qkv[at(t, 2 * C + h * dh + e + 1, 3 * C)];
        }
    // The two neighbourhood branches; the second aggregates the cascaded values o1 + v2.
    std::vector<Acc> o(std::size_t(L * C)), logits(static_cast<std::size_t>(S));
    for (int branch = 0; branch < 2; ++branch) {
      const Index di = branch == 0 ? c.window_dilation : dil[0], dj = branch == 0 ? c.window_dilation : dil[1];
      for (Index t = 0; t < L; ++t) {
        const attention::AxisWindow wi = attention::neighborhood_axis_window(t / W, H, K, di, 1, false);
        const attention::AxisWindow wj = attention::neighborhood_axis_window(t % W, W, K, dj, 1, false);
        for (Index lh = 0; lh < half; ++lh) {
          const Index h = branch * half + lh;
          Acc mx = -INFINITY, sum = 0;
          for (Index p = 0; p < K; ++p)
            for (Index s = 0; s < K; ++s) {
              const Index key = (wi.first + p * wi.step) * W + (wj.first + s * wj.step);
              Acc acc = c.use_rpb ? Acc(w.rpb(lh, wi.rpb_first + p, wj.rpb_first + s)) : Acc(0);
              for (Index e = 0; e < dh; ++e) acc += q[at(t, h * dh + e, C)] * k[at(key, h * dh + e, C)];
              logits[std::size_t(p * K + s)] = acc, mx = std::max(mx, acc);
            }
          for (Acc& l : logits) l = std::exp(l - mx), sum += l;
          Tensor<float, 5>& maps = branch == 0 ? attn1 : attn2;
          for (Index e = 0; e < dh; ++e) {
            Acc acc = 0;
            for (Index p = 0; p < K; ++p)
              for (Index s = 0; s < K; ++s) {
                const Index key = (wi.first + p * wi.step) * W + (wj.first + s * wj.step);
                const Acc value = v[at(key, h * dh + e, C)] + (branch == 1 ? o[at(key, lh * dh + e, C)] : Acc(0));
                acc += logits[std::size_t(p * K + s)] / sum * value;
              }
            o[at(t, h * dh + e, C)] = acc;
          }
          for (Index s = 0; s < S; ++s) maps(b, t / W, t % W, lh, s) = static_cast<float>(logits[std::size_t(s)] / sum);
        }
      }
    }
    // Mixing: dense attention over all heads with the (resized) global bias, or A2SSM below.
    std::vector<Acc> mixed(std::size_t(L * C));
    if (c.global_mode) {
      Tensor<float, 3> bias;
      if (c.use_rpb) bias = hybrid::detail::resize_bicubic<Acc>(w.global_rpb.data(), nh, c.global_grid[0] * c.global_grid[1], L);
      std::vector<Acc> row(static_cast<std::size_t>(L));
      for (Index h = 0; h < nh; ++h)
        for (Index t = 0; t < L; ++t) {
          Acc mx = -INFINITY, sum = 0;
          for (Index m = 0; m < L; ++m) {
            Acc acc = c.use_rpb ? Acc(bias(h, t, m)) : Acc(0);
            for (Index e = 0; e < dh; ++e) acc += q[at(t, h * dh + e, C)] * k[at(m, h * dh + e, C)];
            row[std::size_t(m)] = acc, mx = std::max(mx, acc);
          }
          for (Acc& r : row) r = std::exp(r - mx), sum += r;
          for (Index e = 0; e < dh; ++e) {
            Acc acc = 0;
            for (Index m = 0; m < L; ++m) acc += row[std::size_t(m)] / sum * o[at(m, h * dh + e, C)];
            mixed[at(t, h * dh + e, C)] = acc;
          }
        }
    }
    for (Index t = 0; t < L; ++t)
      for (Index ch = 0; ch < C; ++ch) x_ms(b, t / W, t % W, ch) = static_cast<float>(o[at(t, ch, C)]);
    all_gate.insert(all_gate.end(), gate.begin(), gate.end());
    all_lepe.insert(all_lepe.end(), lepe.begin(), lepe.end());
    all_mixed.insert(all_mixed.end(), mixed.begin(), mixed.end());
  }
  if (!c.global_mode) {
    const Tensor<float, 4> y = ref::a2ssm<Acc>(c.ssm_config(), w.ssm, x_ms, attn1, attn2, dil);
    for (Index r = 0; r < B * L * C; ++r) all_mixed[std::size_t(r)] = Acc(y.data()[r]);
  }
  // out = proj_1(LN_proj(LN_norm(mixed) + lepe) ⊙ gate)
  detail::layer_norm_rows(all_mixed, C, w.norm_weight, w.norm_bias, hybrid::kMassLayerNormEps);
  for (std::size_t r = 0; r < all_mixed.size(); ++r) all_mixed[r] = (all_mixed[r] + all_lepe[r]) * all_gate[r];
  detail::layer_norm_rows(all_mixed, C, w.proj_0_weight, w.proj_0_bias, hybrid::kMassLayerNormEps);
  for (Index r = 0; r < B * L; ++r)
    for (Index o = 0; o < C; ++o) {
      Acc acc = Acc(w.proj_1_bias(o));
      for (Index ci = 0; ci < C; ++ci) acc += Acc(w.proj_1_weight(o, ci, 0, 0)) * all_mixed[at(r, ci, C)];
      out.data()[r * C + o] = static_cast<float>(acc);
    }
  return out;
}

}  // namespace tokenmix::ref
