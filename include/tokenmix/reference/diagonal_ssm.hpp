#pragma once
// Oracle of the diagonal (S4D) linear time-invariant SSM: its convolution form, plain loops in the
// order of the equations, no SIMD, no threads, complex arithmetic in std::complex<Acc> (double in
// tests). The fast op runs the recurrence; this computes the convolution the recurrence is equal to.
//
// Source: Gu, Gupta, Goel, Ré, "On the Parameterization and Initialization of Diagonal State Space
// Models" (S4D, 2022) §2 and HazyResearch/H3 src/models/ssm/ss_kernel_diag.py::SSKernelDiag
// (forward: kernel K = 2·Re(C·dA^l) through the Vandermonde product; step: S = dA·S + dB·u,
// y = 2·Re(C·S)). Shapes and the folded input matrix: ssm/diagonal_ssm_types.hpp.
// Per batch b, channel d, row h = d / (D / Hp), time t:
//   K[h, l]     = 2·Re(sum_m C[h, m]·dA[h, m]^l)                                  (the kernel)
//   out[b, t, d] = sum_{s=0}^{t} K[h, t-s]·x[b, s, d]                             (causal conv)
//                + 2·Re(sum_m C[h, m]·dA[h, m]^(t+1)·S0[b, d, m])                 (initial state)
//                + Dskip[h]·x[b, t, d]
//   final_state[b, d, m] = dA[h, m]^L·S0[b, d, m] + sum_{s<L} dA[h, m]^(L-1-s)·x[b, s, d]
// Step (diagonal_ssm_step) for x [B, D]: state = dA·state + x; out = 2·Re(sum_m C·state) + Dskip·x.

#include <complex>
#include <vector>

#include "tokenmix/ssm/diagonal_ssm_types.hpp"

namespace tokenmix::ref {

namespace detail {
template <class Acc>
std::complex<Acc> complex_at(const ConstTensorView<float, 3>& t, Index h, Index m) {
  return {Acc(t(h, m, 0)), Acc(t(h, m, 1))};
}
template <class Acc, class State>
std::complex<Acc> state_at(const State& s, Index b, Index d, Index m) {
  return {Acc(s(b, d, m, 0)), Acc(s(b, d, m, 1))};
}
}  // namespace detail

template <class Acc = double>
void diagonal_ssm(const ConstTensorView<float, 3>& x,   // [B, L, D]
                  const ConstTensorView<float, 3>& dA,  // [Hp, M, 2]
                  const ConstTensorView<float, 3>& C,   // [Hp, M, 2]
                  const ssm::DiagonalSsmOptions& options,
                  TensorView<float, 3> out,              // [B, L, D]
                  TensorView<float, 4>* final_state) {   // [B, D, M, 2] or nullptr
  using cplx = std::complex<Acc>;
  const ssm::DiagonalSsmShape s =
      ssm::detail::check_diagonal_ssm_args("ref::diagonal_ssm", x, dA, C, options, &out, final_state);
  const Index B = s.batch, L = s.length, D = s.channels, Hp = s.rows, M = s.modes, per_row = D / Hp;
  // K[h, l] = 2·Re(sum_m C[h, m]·dA[h, m]^l), l < L.
  std::vector<Acc> kernel(static_cast<std::size_t>(Hp * L));
  for (Index h = 0; h < Hp; ++h)
    for (Index m = 0; m < M; ++m) {
      const cplx a = detail::complex_at<Acc>(dA, h, m), c = detail::complex_at<Acc>(C, h, m);
      cplx power(1);
      for (Index l = 0; l < L; ++l, power *= a) kernel[static_cast<std::size_t>(h * L + l)] += Acc(2) * (c * power).real();
    }
  std::vector<float> final_values(static_cast<std::size_t>(B * D * M * 2));
  for (Index b = 0; b < B; ++b)
    for (Index d = 0; d < D; ++d) {
      const Index h = d / per_row;
      const Acc skip = options.D ? Acc((*options.D)(h)) : Acc(0);
      for (Index t = 0; t < L; ++t) {
        Acc acc = skip * Acc(x(b, t, d));
        for (Index j = 0; j <= t; ++j) acc += kernel[static_cast<std::size_t>(h * L + j)] * Acc(x(b, t - j, d));
        if (options.initial_state)
          for (Index m = 0; m < M; ++m)
            acc += Acc(2) * (detail::complex_at<Acc>(C, h, m) * std::pow(detail::complex_at<Acc>(dA, h, m), t + 1) *
                             detail::state_at<Acc>(*options.initial_state, b, d, m))
                                .real();
        out(b, t, d) = static_cast<float>(acc);
      }
      for (Index m = 0; m < M; ++m) {  // read before final_state is written: it may be initial_state
        const cplx a = detail::complex_at<Acc>(dA, h, m);
        cplx state = options.initial_state ? std::pow(a, L) * detail::state_at<Acc>(*options.initial_state, b, d, m)
                                           : cplx(0);
        cplx power(1);
        for (Index t = L - 1; t >= 0; --t, power *= a) state += power * Acc(x(b, t, d));
        final_values[static_cast<std::size_t>(((b * D + d) * M + m) * 2)] = static_cast<float>(state.real());
        final_values[static_cast<std::size_t>(((b * D + d) * M + m) * 2 + 1)] = static_cast<float>(state.imag());
      }
    }
  if (final_state) std::copy(final_values.begin(), final_values.end(), final_state->data());
}

// Convenience overload: allocates out [B, L, D] and final_state [B, D, M, 2].
template <class Acc = double>
ssm::DiagonalSsmResult diagonal_ssm(const ConstTensorView<float, 3>& x, const ConstTensorView<float, 3>& dA,
                                    const ConstTensorView<float, 3>& C, const ssm::DiagonalSsmOptions& options = {}) {
  ssm::detail::check_diagonal_ssm_args("ref::diagonal_ssm", x, dA, C, options, nullptr, nullptr);
  ssm::DiagonalSsmResult r{Tensor<float, 3>(x.dimension(0), x.dimension(1), x.dimension(2)),
                           Tensor<float, 4>(x.dimension(0), x.dimension(2), dA.dimension(1), 2)};
  TensorView<float, 4> last(r.final_state.data(), r.final_state.dimensions());
  ref::diagonal_ssm<Acc>(x, dA, C, options, TensorView<float, 3>(r.out.data(), r.out.dimensions()), &last);
  return r;
}

// One step: state [B, D, M, 2] = dA·state + x (in place); out [B, D] = 2·Re(sum_m C·state) + Dskip·x.
template <class Acc = double>
void diagonal_ssm_step(const ConstTensorView<float, 2>& x,   // [B, D]
                       TensorView<float, 4> state,            // [B, D, M, 2]
                       const ConstTensorView<float, 3>& dA,  // [Hp, M, 2]
                       const ConstTensorView<float, 3>& C,   // [Hp, M, 2]
                       const ssm::DiagonalSsmOptions& options,
                       TensorView<float, 2> out) {            // [B, D]
  const ssm::DiagonalSsmShape s =
      ssm::detail::check_diagonal_ssm_step_args("ref::diagonal_ssm_step", x, state, dA, C, options, &out);
  const Index per_row = s.channels / s.rows;
  for (Index b = 0; b < s.batch; ++b)
    for (Index d = 0; d < s.channels; ++d) {
      const Index h = d / per_row;
      Acc acc = options.D ? Acc((*options.D)(h)) * Acc(x(b, d)) : Acc(0);
      for (Index m = 0; m < s.modes; ++m) {
        const std::complex<Acc> next =
            detail::complex_at<Acc>(dA, h, m) * detail::state_at<Acc>(state, b, d, m) + Acc(x(b, d));
        acc += Acc(2) * (detail::complex_at<Acc>(C, h, m) * next).real();
        state(b, d, m, 0) = static_cast<float>(next.real());
        state(b, d, m, 1) = static_cast<float>(next.imag());
      }
      out(b, d) = static_cast<float>(acc);
    }
}

}  // namespace tokenmix::ref
