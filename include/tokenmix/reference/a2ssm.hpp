#pragma once
// Oracle of A2Mamba's A2SSM: spec a2mamba.md §1a / §1b / §2 as plain loops in Acc (double in tests),
// channels-last. It calls no tokenmix operator: the 5x5 conv, the projections, the scan recurrence,
// NATTEN's clamped-window rule for the two aggregations (the shared window rule of
// attention/neighborhood_types.hpp, itself tested against hand-worked NATTEN cases and PyTorch
// fixtures), the state fusion and the readout are written out here.
//
// Source: LMMMEng/A2Mamba models/a2mamba.py class A2SSM (forward: conv2d + SiLU, x_proj / dt_projs,
// selective_scan_cuda_oflex_rh returning every hidden state, na2d_av of the states with attn1 at
// dilation 1 and attn2 at the adaptive dilation, state_fusion, G·C + u·D), for x_ms [B, H, W, C]:
//   u[i, j, c]   = silu(b[c] + Σ_{p,q<5} w[c, p, q]·x[i+p-2, j+q-2, c])            (zero padding)
//   z[t]         = x_proj_weight·u[t] = [dt_r | Bm | Cm];  delta[t] = dt_projs_weight·dt_r[t]
//   Δ[t, c]      = softplus(delta[t, c] + dt_projs_bias[c]);  A = -exp(A_logs)
//   h[t, c, n]   = exp(Δ[t, c]·A[c, n])·h[t-1, c, n] + Δ[t, c]·Bm[t, n]·u[t, c]   (t = i·W + j)
//   G[t, head, e] = Σ_slots attn_g[t, head', slot]·h[key(t, slot), head·dh·N + e]  (head' in its group)
//   G'[t, o, e]  = Σ_i Wsf[o, i]·G[t, i, e] + bsf[o];  y[t, c] = Σ_n G'[t, c·N + n]·Cm[t, n] + Ds[c]·u[t, c]

#include <array>
#include <cmath>
#include <vector>

#include "tokenmix/attention/neighborhood_types.hpp"
#include "tokenmix/hybrid/a2ssm_types.hpp"

namespace tokenmix::ref {

template <class Acc = double>
Tensor<float, 4> a2ssm(const hybrid::A2ssmConfig& c, const hybrid::A2ssmWeights& w,
                       const ConstTensorView<float, 4>& x,      // [B, H, W, C]
                       const ConstTensorView<float, 5>& attn1,  // [B, H, W, nh/2, K²]
                       const ConstTensorView<float, 5>& attn2,  // [B, H, W, nh/2, K²]
                       const std::array<Index, 2>& dilation) {
  hybrid::detail::check_a2ssm_weights("ref::a2ssm", c, w);
  hybrid::detail::check_a2ssm_input("ref::a2ssm", c, x, attn1, attn2, dilation, nullptr);
  const Index B = x.dimension(0), H = x.dimension(1), W = x.dimension(2), L = H * W;
  const Index C = c.channels, N = c.d_state, R = c.rank(), nh = c.heads, dh = C / nh, Kc = c.conv_kernel;
  const Index K = c.kernel_size, half = Kc / 2;
  auto at = [](Index a, Index b, Index n) { return static_cast<std::size_t>(a * n + b); };
  Tensor<float, 4> y(B, H, W, C);
  for (Index b = 0; b < B; ++b) {
    std::vector<Acc> u(static_cast<std::size_t>(L * C)), z(static_cast<std::size_t>(L * (R + 2 * N)));
    for (Index i = 0; i < H; ++i)
      for (Index j = 0; j < W; ++j)
        for (Index ch = 0; ch < C; ++ch) {
          Acc acc = Acc(w.conv2d_bias(ch));
          for (Index p = 0; p < Kc; ++p)
            for (Index q = 0; q < Kc; ++q) {
              const Index yy = i + p - half, zz = j + q - half;
              if (yy >= 0 && yy < H && zz >= 0 && zz < W) acc += Acc(w.conv2d_weight(ch, 0, p, q)) * Acc(x(b, yy, zz, ch));
            }
          u[at(i * W + j, ch, C)] = acc / (Acc(1) + std::exp(-acc));
        }
    for (Index t = 0; t < L; ++t)
      for (Index f = 0; f < R + 2 * N; ++f) {
        Acc acc = 0;
        for (Index ch = 0; ch < C; ++ch) acc += Acc(w.x_proj_weight(f, ch)) * u[at(t, ch, C)];
        z[at(t, f, R + 2 * N)] = acc;
      }
    // The scan, every state: h [L, C·N].
    std::vector<Acc> h(static_cast<std::size_t>(L * C * N)), state(static_cast<std::size_t>(C * N), Acc(0));
    for (Index t = 0; t < L; ++t)
      for (Index ch = 0; ch < C; ++ch) {
        Acc delta = Acc(w.dt_projs_bias(ch));
        for (Index r = 0; r < R; ++r) delta += Acc(w.dt_projs_weight(ch, r)) * z[at(t, r, R + 2 * N)];
        const Acc dt = delta > Acc(20) ? delta : std::log1p(std::exp(delta));
        for (Index n = 0; n < N; ++n) {
          Acc& s = state[at(ch, n, N)];
          s = std::exp(dt * -std::exp(Acc(w.A_logs(ch, n)))) * s + dt * z[at(t, R + n, R + 2 * N)] * u[at(t, ch, C)];
          h[at(t, ch * N + n, C * N)] = s;
        }
      }
    // Aggregation (NATTEN's window rule per axis), state fusion, readout.
    const Index per_head = dh * N;
    std::vector<Acc> G(static_cast<std::size_t>(nh * per_head));
    for (Index i = 0; i < H; ++i)
      for (Index j = 0; j < W; ++j) {
        for (Index head = 0; head < nh; ++head) {
          const bool second = head >= nh / 2;
          const Index di = second ? dilation[0] : 1, dj = second ? dilation[1] : 1;
          const attention::AxisWindow wi = attention::neighborhood_axis_window(i, H, K, di, 1, false);
          const attention::AxisWindow wj = attention::neighborhood_axis_window(j, W, K, dj, 1, false);
          const ConstTensorView<float, 5>& maps = second ? attn2 : attn1;
          for (Index e = 0; e < per_head; ++e) {
            Acc acc = 0;
            for (Index p = 0; p < K; ++p)
              for (Index q = 0; q < K; ++q) {
                const Index key = (wi.first + p * wi.step) * W + (wj.first + q * wj.step);
                acc += Acc(maps(b, i, j, head % (nh / 2), p * K + q)) * h[at(key, head * per_head + e, C * N)];
              }
            G[at(head, e, per_head)] = acc;
          }
        }
        const Index t = i * W + j;
        for (Index ch = 0; ch < C; ++ch) {
          Acc acc = Acc(w.Ds(ch)) * u[at(t, ch, C)];
          for (Index n = 0; n < N; ++n) {
            const Index o = ch / dh, e = (ch % dh) * N + n;  // channel ch·N + n = head o, entry e
            Acc fused = Acc(w.state_fusion_bias(o));
            for (Index in = 0; in < nh; ++in) fused += Acc(w.state_fusion_weight(o, in, 0, 0)) * G[at(in, e, per_head)];
            acc += fused * z[at(t, R + N + n, R + 2 * N)];
          }
          y(b, i, j, ch) = static_cast<float>(acc);
        }
      }
  }
  return y;
}

}  // namespace tokenmix::ref
