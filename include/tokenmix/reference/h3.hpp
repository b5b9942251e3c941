#pragma once
// Oracle of the H3 layer: plain loops straight from the equations of spec seqboat_h3.md §4 (the
// direct O(L²) convolutions that H3's FFT path computes), in Acc (double in tests), from zero state.
// It calls no tokenmix operator: the projections, both SSM kernels, the K·V products and the Q
// contraction are written out here.
//
// Source: Fu, Dao, Saab, Thomas, Rudra, Ré, "Hungry Hungry Hippos" (ICLR 2023) §3 and
// HazyResearch/H3 src/models/ssm/h3.py::H3.forward (use_fast_fftconv = False),
// ss_kernel_shift.py::SSKernelShift.forward, ss_kernel_diag.py::SSKernelDiag.forward (disc
// 'bilinear', real_type 'exp'). For one sequence, Hh heads of hd channels, N = d_state, M = N/2:
//   q, k, v = u·Wqᵀ + bq, u·Wkᵀ + bk, u·Wvᵀ + bv
//   Ks[c, j] = sum_{n=0}^{N-1-j} Bs[c, n]·Cs[c, n+j]                    (j < N)
//   k2[t, c] = sum_{j <= min(t, N-1)} Ks[c, j]·k[t-j, c] + Ds[c]·k[t, c]
//   dt = exp(log_dt[h]);  A = -exp(inv_A_real[h, m]) + i·A_imag[h, m];  dtA = dt·A
//   Kd[h, l] = 2·Re(sum_m C[h, m]·B[h, m]·dt/(1 - dtA/2)·((1 + dtA/2)/(1 - dtA/2))^l)
//   x_ij[t] = k2[t, h·hd + i]·v[t, h·hd + j];  y_ij[t] = sum_{s<=t} Kd[h, t-s]·x_ij[s] + Dd[h]·x_ij[t]
//   o[t, j·Hh + h] = sum_i q[t, h·hd + i]·y_ij[t]
//   out = o·Woᵀ + bo

#include <algorithm>
#include <cmath>
#include <complex>
#include <vector>

#include "tokenmix/hybrid/h3_types.hpp"

namespace tokenmix::ref {

template <class Acc = double>
Tensor<float, 3> h3(const hybrid::H3Config& config, const hybrid::H3Weights& w,
                    const ConstTensorView<float, 3>& u) {  // [B, L, D] -> [B, L, D]
  using cplx = std::complex<Acc>;
  hybrid::detail::check_h3_weights("ref::h3", config, w);
  hybrid::detail::check_h3_input("ref::h3", config, u, nullptr, nullptr);
  const Index B = u.dimension(0), L = u.dimension(1), D = config.d_model, N = config.d_state;
  const Index hd = config.head_dim, Hh = config.heads(), M = config.modes();
  auto at = [](Index i, Index j, Index cols) { return static_cast<std::size_t>(i * cols + j); };

  std::vector<Acc> Ks(static_cast<std::size_t>(D * N), Acc(0));  // [D, N]
  for (Index c = 0; c < D; ++c)
    for (Index j = 0; j < N; ++j)
      for (Index n = 0; n + j < N; ++n) Ks[at(c, j, N)] += Acc(w.ssm_k_kernel_B(c, n)) * Acc(w.ssm_k_kernel_C(c, n + j));
  std::vector<Acc> Kd(static_cast<std::size_t>(Hh * L), Acc(0));  // [Hh, L]
  for (Index h = 0; h < Hh; ++h) {
    const Acc dt = std::exp(Acc(w.kernel_log_dt(h)));
    for (Index m = 0; m < M; ++m) {
      const cplx A(-std::exp(Acc(w.kernel_inv_A_real(h, m))), Acc(w.kernel_A_imag(h, m)));
      const cplx Bm(Acc(w.kernel_B(h, m, 0)), Acc(w.kernel_B(h, m, 1)));
      const cplx Cm(Acc(w.kernel_C(h, m, 0)), Acc(w.kernel_C(h, m, 1)));
      const cplx dtA = dt * A, dA = (Acc(1) + dtA / Acc(2)) / (Acc(1) - dtA / Acc(2));
      const cplx coeff = Cm * Bm * dt / (Acc(1) - dtA / Acc(2));
      for (Index l = 0; l < L; ++l) Kd[at(h, l, L)] += Acc(2) * (coeff * std::pow(dA, Acc(l))).real();
    }
  }

  Tensor<float, 3> out(B, L, D);
  std::vector<Acc> q(static_cast<std::size_t>(L * D)), k(q.size()), v(q.size()), k2(q.size()), o(q.size());
  for (Index b = 0; b < B; ++b) {
    for (Index t = 0; t < L; ++t)
      for (Index c = 0; c < D; ++c) {
        Acc aq = Acc(w.q_proj_bias(c)), ak = Acc(w.k_proj_bias(c)), av = Acc(w.v_proj_bias(c));
        for (Index e = 0; e < D; ++e) {
          const Acc x = Acc(u(b, t, e));
          aq += Acc(w.q_proj_weight(c, e)) * x, ak += Acc(w.k_proj_weight(c, e)) * x, av += Acc(w.v_proj_weight(c, e)) * x;
        }
        q[at(t, c, D)] = aq, k[at(t, c, D)] = ak, v[at(t, c, D)] = av;
      }
    for (Index t = 0; t < L; ++t)
      for (Index c = 0; c < D; ++c) {
        Acc acc = Acc(w.ssm_k_D(c)) * k[at(t, c, D)];
        for (Index j = 0; j <= std::min(t, N - 1); ++j) acc += Ks[at(c, j, N)] * k[at(t - j, c, D)];
        k2[at(t, c, D)] = acc;
      }
    std::fill(o.begin(), o.end(), Acc(0));
    for (Index h = 0; h < Hh; ++h)
      for (Index i = 0; i < hd; ++i)
        for (Index j = 0; j < hd; ++j)
          for (Index t = 0; t < L; ++t) {
            auto x = [&](Index s) { return k2[at(s, h * hd + i, D)] * v[at(s, h * hd + j, D)]; };
            Acc y = Acc(w.D(h)) * x(t);
            for (Index s = 0; s <= t; ++s) y += Kd[at(h, t - s, L)] * x(s);
            o[at(t, j * Hh + h, D)] += q[at(t, h * hd + i, D)] * y;
          }
    for (Index t = 0; t < L; ++t)
      for (Index c = 0; c < D; ++c) {
        Acc acc = Acc(w.output_linear_bias(c));
        for (Index e = 0; e < D; ++e) acc += Acc(w.output_linear_weight(c, e)) * o[at(t, e, D)];
        out(b, t, c) = static_cast<float>(acc);
      }
  }
  return out;
}

}  // namespace tokenmix::ref
