#pragma once
// Oracle of the SeqBoat layer: spec seqboat_h3.md §4's seqboat_ref as plain loops in Acc (double in
// tests), one sequence at a time, from zero state. It calls no tokenmix operator: the EMA is the
// direct convolution with its kernel, the attention explicit loops over each window.
//
// Source: Ren, Liu, Wang, Zhai, Mitra, Zhang, Wang, "Sparse Modular Activation for Efficient
// Sequence Modeling" (NeurIPS 2023) and renll/SeqBoat fairseq/modules/seqboat_unit.py
// (SeqBoatUnit.forward, element_attention, local_attention), seqboat_utils.py
// (LatentConfigurator, FastRelativePositionalBias, compress_seq / extract, RoPE),
// exponential_moving_average.py (MultiHeadEMA); the formulas as hybrid/seqboat_types.hpp states
// them. Per sequence x [L, D]:
//   xn = Norm(x) (prenorm);  K[d, l] = Σ_n p·β·γ·N^-½·q^l, p = σ(δ), q = 1 - p·σ(α)
//   y[t, d] = Σ_{j<=t} K[d, j] xn[t-j, d] (+ Σ_{j<=L-1-t} K2[d, j] xn[t+j, d]) + ω[d] xn[t, d]
//   mx = silu(y); [u0, u1 | hx] = mx·Whxᵀ + bhx; act = (u1 > u0 + act_bias) after / τ; g = P1
//   idx = activated t; for i < m: [z | r | v] = silu(mx[idx_i]·Wmxᵀ + bmx), Q = zγ0 + β0, K = zγ1 + β1
//   s_ij = c·<Q_i, K_j> + bias_ij over the window in compressed index; a = softmax or relu²
//   Hc_i = (r_i ⊙ Σ_j a_ij v_j)·Whᵀ + bh;  out = silu(x + hx + g·Hc scattered); Norm (postnorm)

#include <algorithm>
#include <cmath>
#include <vector>

#include "tokenmix/hybrid/seqboat_types.hpp"

namespace tokenmix::ref {

template <class Acc = double>
Tensor<float, 3> seqboat(const hybrid::SeqBoatConfig& c, const hybrid::SeqBoatWeights& w,
                         const ConstTensorView<float, 3>& x) {  // [B, L, D] -> [B, L, D]
  using hybrid::SeqBoatNorm;
  using hybrid::SeqBoatPosition;
  hybrid::detail::check_seqboat_weights("ref::seqboat", c, w);
  hybrid::detail::check_seqboat_input("ref::seqboat", c, x, nullptr, nullptr);
  const Index B = x.dimension(0), L = x.dimension(1), D = c.d_model, Z = c.zdim, E = c.hdim, N = c.ndim;
  const Index W = c.window;
  using Vec = std::vector<Acc>;
  auto silu = [](Acc a) { return a / (Acc(1) + std::exp(-a)); };
  auto sigmoid = [](Acc a) { return Acc(1) / (Acc(1) + std::exp(-a)); };
  auto norm = [&](Vec& v) {  // one token's D values, in place
    Acc mean = 0, square = 0;
    for (Acc a : v) mean += a, square += a * a;
    mean /= Acc(D), square /= Acc(D);
    Acc var = 0;
    for (Acc a : v) var += (a - mean) * (a - mean);
    var /= Acc(D);
    for (Index d = 0; d < D; ++d) {
      Acc& a = v[static_cast<std::size_t>(d)];
      switch (c.norm) {
        case SeqBoatNorm::layer_norm: a = (a - mean) / std::sqrt(var + Acc(c.norm_eps)) * Acc(w.norm_weight(d)) + Acc(w.norm_bias(d)); break;
        case SeqBoatNorm::rms_norm: a = a / std::sqrt(square + Acc(c.norm_eps)) * Acc(w.norm_weight(d)); break;
        case SeqBoatNorm::scale_norm: a = a / std::sqrt(square + Acc(c.norm_eps)) * Acc(w.norm_scalar(0)); break;
        case SeqBoatNorm::batch_norm:
          a = (a - Acc(w.norm_running_mean(d))) / std::sqrt(Acc(w.norm_running_var(d)) + Acc(c.norm_eps)) *
                  Acc(w.norm_weight(d)) + Acc(w.norm_bias(d));
          break;
      }
    }
  };
  // The EMA kernels K[row, l], rows [0, D') (D' = 2D when bidirectional: rows D.. anti-causal).
  const Index Dp = c.ema_rows();
  Vec kernel(static_cast<std::size_t>(Dp * L), Acc(0));
  for (Index r = 0; r < Dp; ++r)
    for (Index n = 0; n < N; ++n) {
      const Acc p = sigmoid(Acc(w.move_delta(r, n, 0))), q = Acc(1) - p * sigmoid(Acc(w.move_alpha(r, n, 0)));
      const Acc coeff = p * Acc(w.move_beta(r, n, 0)) * Acc(w.move_gamma(r, n)) / std::sqrt(Acc(N));
      for (Index l = 0; l < L; ++l) kernel[static_cast<std::size_t>(r * L + l)] += coeff * std::pow(q, Acc(l));
    }
  Tensor<float, 3> out(B, L, D);
  for (Index b = 0; b < B; ++b) {
    std::vector<Vec> xn(static_cast<std::size_t>(L), Vec(static_cast<std::size_t>(D)));
    for (Index t = 0; t < L; ++t) {
      for (Index d = 0; d < D; ++d) xn[t][d] = Acc(x(b, t, d));
      if (c.prenorm) norm(xn[t]);
    }
    std::vector<Vec> mx(static_cast<std::size_t>(L), Vec(static_cast<std::size_t>(D)));
    for (Index t = 0; t < L; ++t)
      for (Index d = 0; d < D; ++d) {
        Acc y = Acc(w.move_omega(d)) * xn[t][d];
        for (Index j = 0; j <= t; ++j) y += kernel[static_cast<std::size_t>(d * L + j)] * xn[t - j][d];
        if (c.bidirectional)
          for (Index j = 0; t + j < L; ++j) y += kernel[static_cast<std::size_t>((D + d) * L + j)] * xn[t + j][d];
        mx[t][d] = silu(y);
      }
    // hx projection, router.
    std::vector<Vec> hx(static_cast<std::size_t>(L), Vec(static_cast<std::size_t>(D)));
    Vec gate(static_cast<std::size_t>(L), Acc(0));
    std::vector<Index> idx;
    for (Index t = 0; t < L; ++t) {
      Acc u[2];
      for (Index o = 0; o < 2 + D; ++o) {
        Acc a = Acc(w.hx_proj_bias(o));
        for (Index d = 0; d < D; ++d) a += Acc(w.hx_proj_weight(o, d)) * mx[t][d];
        if (o < 2) u[o] = a;
        else hx[t][o - 2] = a;
      }
      const Acc tau = std::exp(Acc(w.q_router_temp(0)));
      const Acc l0 = (u[0] + Acc(c.act_bias)) / tau, l1 = u[1] / tau, top = std::max(l0, l1);
      const Acc p1 = std::exp(l1 - top) / (std::exp(l0 - top) + std::exp(l1 - top));
      if (l1 > l0) idx.push_back(t), gate[t] = p1;
    }
    // GAU on the compressed tokens.
    const Index m = static_cast<Index>(idx.size());
    std::vector<Vec> Q(static_cast<std::size_t>(m), Vec(static_cast<std::size_t>(Z))), K = Q;
    std::vector<Vec> R(static_cast<std::size_t>(m), Vec(static_cast<std::size_t>(E))), V = R;
    for (Index i = 0; i < m; ++i) {
      for (Index f = 0; f < Z + 2 * E; ++f) {
        Acc a = Acc(w.mx_proj_bias(f));
        for (Index d = 0; d < D; ++d) a += Acc(w.mx_proj_weight(f, d)) * mx[idx[i]][d];
        a = silu(a);
        if (f < Z) {
          Q[i][f] = a * Acc(w.gamma(0, f)) + Acc(w.beta(0, f));
          K[i][f] = a * Acc(w.gamma(1, f)) + Acc(w.beta(1, f));
        } else if (f < Z + E) {
          R[i][f - Z] = a;
        } else {
          V[i][f - Z - E] = a;
        }
      }
      if (c.position == SeqBoatPosition::rotary)
        for (Vec* t : {&Q[i], &K[i]})
          for (Index k = 0; k < Z / 2; ++k) {
            const Acc angle = Acc(idx[i]) * std::pow(Acc(10000), -Acc(2 * k) / Acc(Z));
            const Acc a0 = (*t)[2 * k], a1 = (*t)[2 * k + 1];
            (*t)[2 * k] = a0 * std::cos(angle) - a1 * std::sin(angle);
            (*t)[2 * k + 1] = a0 * std::sin(angle) + a1 * std::cos(angle);
          }
    }
    std::vector<Vec> h(static_cast<std::size_t>(L), Vec(static_cast<std::size_t>(D), Acc(0)));
    const bool relu = c.attention == attention::LocalAttentionKind::relu_squared;
    const Acc scale = relu ? Acc(1) / Acc(c.bidirectional ? 2 * W : W) : Acc(1) / std::sqrt(Acc(Z));
    for (Index i = 0; i < m; ++i) {
      const Index lo = std::max<Index>(0, i - W), hi = c.bidirectional ? std::min(m - 1, i + W) : i;
      Vec a(static_cast<std::size_t>(hi - lo + 1));
      for (Index j = lo; j <= hi; ++j) {
        Acc s = 0;
        for (Index f = 0; f < Z; ++f) s += Q[i][f] * K[j][f];
        s *= scale;
        if (c.position == SeqBoatPosition::simple) {
          const Index M = c.max_positions, off = std::clamp<Index>(idx[j] - idx[i], -(M - 1), M - 1);
          s += Acc(w.rel_pos_bias(off + M - 1));
        } else if (c.position == SeqBoatPosition::local) {
          s += Acc(w.rel_pos_bias((j - i) + 4 * W - 1));  // the released look-around indexing
        }
        a[j - lo] = s;
      }
      Acc sum = 1;
      if (relu) {
        for (Acc& s : a) s = s > 0 ? s * s : Acc(0);
      } else {
        const Acc top = *std::max_element(a.begin(), a.end());
        sum = 0;
        for (Acc& s : a) sum += (s = std::exp(s - top));
      }
      Vec ro(static_cast<std::size_t>(E), Acc(0));
      for (Index j = lo; j <= hi; ++j)
        for (Index e = 0; e < E; ++e) ro[e] += a[j - lo] / sum * V[j][e];
      for (Index e = 0; e < E; ++e) ro[e] *= R[i][e];
      for (Index d = 0; d < D; ++d) {
        Acc hc = Acc(w.h_proj_bias(d));
        for (Index e = 0; e < E; ++e) hc += Acc(w.h_proj_weight(d, e)) * ro[e];
        h[idx[i]][d] = gate[idx[i]] * hc;
      }
    }
    for (Index t = 0; t < L; ++t) {
      Vec o(static_cast<std::size_t>(D));
      for (Index d = 0; d < D; ++d) o[d] = silu(Acc(x(b, t, d)) + hx[t][d] + h[t][d]);
      if (!c.prenorm) norm(o);
      for (Index d = 0; d < D; ++d) out(b, t, d) = static_cast<float>(o[d]);
    }
  }
  return out;
}

}  // namespace tokenmix::ref
