#pragma once
// Oracle of the Mamba-2 SSD operator (ssm::ssd) and its decode step (ssm::ssd_state_update): the
// sequential recurrence as plain loops in the order of the equations, no SIMD, no threads,
// accumulation in Acc (double in tests).
//
// Source: Dao & Gu, "Transformers are SSMs: Generalized Models and Efficient Algorithms Through
// Structured State Space Duality" (2024), state-spaces/mamba mamba_ssm/modules/ssd_minimal.py
// (ssd_minimal_discrete: the chunked algorithm this recurrence equals) and
// mamba_ssm/ops/triton/ssd_combined.py::mamba_chunk_scan_combined (dt_bias, softplus, dt_limit,
// D, z, initial_states, seq_idx); layout in ssm/ssd_types.hpp. Per batch b, head h (group
// g = h / (H/G)), head channel p, state index n, time t:
//   dt        = dt[b,t,h] + dt_bias[h]                           (bias optional)
//   dt        = softplus(dt)  if dt_softplus                     (x > 20 -> x, torch's threshold)
//   dt        = clamp(dt, dt_min, dt_max)  unless (dt_min, dt_max) = (0, inf)
//   if seq_idx[b,t] != seq_idx[b,t-1] (t > 0):  s[p][n] = 0    (a new packed sequence)
//   s[p][n]   = exp(dt * A[h]) * s[p][n] + dt * x[b,t,h,p] * B[b,t,g,n]   (s starts at initial_state or 0)
//   y         = sum_n s[p][n] * C[b,t,g,n] + D * x[b,t,h,p]       (D[h] or D[h*P + p]; optional)
//   out[b,t,h,p] = y * silu(z[b,t,h,p])                          (gate optional; skip before gate)
// final_state[b,h,p,n] = s[p][n] after the last token. The step is the same for one token, with
// the state read and written in place.

#include <cmath>
#include <vector>

#include "tokenmix/ssm/ssd_types.hpp"

namespace tokenmix::ref {

namespace detail {

// dt after bias, softplus and clamp, in Acc.
template <class Acc>
Acc ssd_dt(float raw, Index h, const ssm::SsdOptions& o) {
  Acc dt = raw;
  if (o.dt_bias) dt += Acc((*o.dt_bias)(h));
  if (o.dt_softplus) dt = dt > Acc(20) ? dt : std::log1p(std::exp(dt));
  if (ssm::detail::ssd_dt_clamped(o)) dt = std::min(std::max(dt, Acc(o.dt_min)), Acc(o.dt_max));
  return dt;
}

// One token of one head: updates s [P, N] and writes out[p] for p < P. x, z, out: [P]; Bt, Ct: [N].
template <class Acc>
void ssd_token(Acc* s, Index P, Index N, Acc dt, Acc a, const float* x, const float* Bt, const float* Ct,
               const float* D, bool D_per_channel, const float* z, float* out) {
  const Acc dA = std::exp(dt * a);
  for (Index p = 0; p < P; ++p) {
    const Acc xp = x[p];
    Acc y = 0;
    for (Index n = 0; n < N; ++n) {
      s[p * N + n] = dA * s[p * N + n] + dt * xp * Acc(Bt[n]);
      y += s[p * N + n] * Acc(Ct[n]);
    }
    if (D) y += Acc(D_per_channel ? D[p] : D[0]) * xp;
    if (z) {
      const Acc zv = z[p];
      y *= zv / (Acc(1) + std::exp(-zv));  // silu(z) = z * sigmoid(z)
    }
    out[p] = static_cast<float>(y);
  }
}

}  // namespace detail

template <class Acc = double>
void ssd(const ConstTensorView<float, 4>& x,   // [B, L, H, P]
         const ConstTensorView<float, 3>& dt,  // [B, L, H]
         const ConstTensorView<float, 1>& A,   // [H]
         const ConstTensorView<float, 4>& B,   // [B, L, G, N]
         const ConstTensorView<float, 4>& C,   // [B, L, G, N]
         const ssm::SsdOptions& options,
         TensorView<float, 4> out,             // [B, L, H, P]
         TensorView<float, 4>* final_state) {  // [B, H, P, N] or nullptr
  const ssm::SsdShape s = ssm::detail::check_ssd_args("ref::ssd", x, dt, A, B, C, options, &out, final_state);
  const Index L = s.length, H = s.heads, P = s.head_dim, N = s.state, G = s.groups;
  std::vector<Acc> st(static_cast<std::size_t>(P * N));
  for (Index b = 0; b < s.batch; ++b) {
    for (Index h = 0; h < H; ++h) {
      const Index g = h / (H / G);
      for (Index p = 0; p < P; ++p)
        for (Index n = 0; n < N; ++n)
          st[p * N + n] = options.initial_state ? Acc((*options.initial_state)(b, h, p, n)) : Acc(0);
      for (Index t = 0; t < L; ++t) {
        if (options.seq_idx && t > 0 && (*options.seq_idx)(b, t) != (*options.seq_idx)(b, t - 1))
          std::fill(st.begin(), st.end(), Acc(0));
        const Acc dtv = detail::ssd_dt<Acc>(dt(b, t, h), h, options);
        const float* D = options.D ? options.D->data() + (s.D_per_channel ? h * P : h) : nullptr;
        detail::ssd_token<Acc>(st.data(), P, N, dtv, Acc(A(h)), &x(b, t, h, 0), &B(b, t, g, 0), &C(b, t, g, 0), D,
                               s.D_per_channel, options.z ? &(*options.z)(b, t, h, 0) : nullptr, &out(b, t, h, 0));
      }
      if (final_state)
        for (Index p = 0; p < P; ++p)
          for (Index n = 0; n < N; ++n) (*final_state)(b, h, p, n) = static_cast<float>(st[p * N + n]);
    }
  }
}

// Convenience overload returning the output and the final state.
template <class Acc = double>
ssm::SsdResult ssd(const ConstTensorView<float, 4>& x, const ConstTensorView<float, 3>& dt,
                   const ConstTensorView<float, 1>& A, const ConstTensorView<float, 4>& B,
                   const ConstTensorView<float, 4>& C, const ssm::SsdOptions& options = {}) {
  return ssm::detail::ssd_into_new_result("ref::ssd", x, dt, A, B, C, options,
                                          [&](TensorView<float, 4>& out, TensorView<float, 4>& last) {
                                            ref::ssd<Acc>(x, dt, A, B, C, options, out, &last);
                                          });
}

// One decode step: state [B, H, P, N] in place, out [B, H, P].
template <class Acc = double>
void ssd_state_update(TensorView<float, 4> state,           // [B, H, P, N]
                      const ConstTensorView<float, 3>& x,   // [B, H, P]
                      const ConstTensorView<float, 2>& dt,  // [B, H]
                      const ConstTensorView<float, 1>& A,   // [H]
                      const ConstTensorView<float, 3>& B,   // [B, G, N]
                      const ConstTensorView<float, 3>& C,   // [B, G, N]
                      const ssm::SsdOptions& options,
                      TensorView<float, 3> out) {           // [B, H, P]
  const ssm::SsdShape s =
      ssm::detail::check_ssd_state_update_args("ref::ssd_state_update", state, x, dt, A, B, C, options, &out);
  const Index H = s.heads, P = s.head_dim, N = s.state, G = s.groups;
  std::vector<Acc> st(static_cast<std::size_t>(P * N));
  for (Index b = 0; b < s.batch; ++b)
    for (Index h = 0; h < H; ++h) {
      const Index g = h / (H / G);
      for (Index i = 0; i < P * N; ++i) st[i] = state(b, h, i / N, i % N);
      const float* D = options.D ? options.D->data() + (s.D_per_channel ? h * P : h) : nullptr;
      detail::ssd_token<Acc>(st.data(), P, N, detail::ssd_dt<Acc>(dt(b, h), h, options), Acc(A(h)), &x(b, h, 0),
                             &B(b, g, 0), &C(b, g, 0), D, s.D_per_channel,
                             options.z ? &(*options.z)(b, 0, h, 0) : nullptr, &out(b, h, 0));
      for (Index i = 0; i < P * N; ++i) state(b, h, i / N, i % N) = static_cast<float>(st[i]);
    }
}

// Convenience overload: updates state in place and returns out [B, H, P].
template <class Acc = double>
Tensor<float, 3> ssd_state_update(Tensor<float, 4>& state, const ConstTensorView<float, 3>& x,
                                  const ConstTensorView<float, 2>& dt, const ConstTensorView<float, 1>& A,
                                  const ConstTensorView<float, 3>& B, const ConstTensorView<float, 3>& C,
                                  const ssm::SsdOptions& options = {}) {
  TensorView<float, 4> st(state.data(), state.dimensions());
  ssm::detail::check_ssd_state_update_args("ref::ssd_state_update", st, x, dt, A, B, C, options, nullptr);
  Tensor<float, 3> out(x.dimension(0), x.dimension(1), x.dimension(2));
  ref::ssd_state_update<Acc>(st, x, dt, A, B, C, options, TensorView<float, 3>(out.data(), out.dimensions()));
  return out;
}

}  // namespace tokenmix::ref
