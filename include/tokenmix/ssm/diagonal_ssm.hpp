#pragma once
// ssm::diagonal_ssm: the diagonal, linear time-invariant state-space model of S4D (the "diagonal
// SSM" inside H3 and S4D layers), run as its recurrence over the complex modes, vectorized over
// channels; ssm::diagonal_ssm_step, its one-token decode step; ssm::s4d_discretize, the bilinear /
// zero-order-hold discretisation of (A, B, C, dt) into the (dA, C) the op takes.
//
//   auto [dA, C] = tokenmix::ssm::s4d_discretize(A, B, C_cont, dt);          // bilinear, as H3
//   auto r = tokenmix::ssm::diagonal_ssm(x, dA, C, {.D = skip});             // r.out [B, L, D]
//   tokenmix::ssm::diagonal_ssm_step(x_t, state, dA, C, {.D = skip}, y_t);   // state [B, D, M, 2]
//
// Equations and citations: reference/diagonal_ssm.hpp (the oracle: the convolution with the kernel
// K = 2·Re(C·dA^l)). Shapes, the complex (re, im) layout and the folded input matrix:
// ssm/diagonal_ssm_types.hpp. H3 / S4D compute the same map as an FFT convolution (O(L log L) per
// channel, the whole sequence at once); the recurrence costs O(L·M) per channel, streams, and
// continues from a state: diagonal_ssm(x1 ‖ x2) == diagonal_ssm(x2, initial_state =
// diagonal_ssm(x1).final_state) bitwise (the chunking of tokens never changes a lane's arithmetic).
// L = 0 is valid: empty out, final_state = initial_state (or zeros). NaN or inf in x propagates to
// every later output of its channel (through the state); nothing else.

#include <cmath>
#include <complex>
#include <vector>

#include "tokenmix/core/threading.hpp"
#include "tokenmix/ssm/diagonal_ssm_kernel.hpp"
#include "tokenmix/ssm/diagonal_ssm_types.hpp"

namespace tokenmix::ssm {

// View-based core: writes out [B, L, D] and, if final_state is not null, final_state [B, D, M, 2]
// (which may be the same buffer as options.initial_state). `out` must not overlap x.
template <class Arch = simd::default_arch>
void diagonal_ssm(const ConstTensorView<float, 3>& x,   // [B, L, D]
                  const ConstTensorView<float, 3>& dA,  // [Hp, M, 2]
                  const ConstTensorView<float, 3>& C,   // [Hp, M, 2]
                  const DiagonalSsmOptions& options,
                  TensorView<float, 3> out,              // [B, L, D]
                  TensorView<float, 4>* final_state) {   // [B, D, M, 2] or nullptr
  const DiagonalSsmShape s = detail::check_diagonal_ssm_args("diagonal_ssm", x, dA, C, options, &out, final_state);
  const detail::DiagonalSsmProblem problem{s.batch, s.length, s.channels, s.rows, s.modes,
                                           x.data(), dA.data(), C.data(),
                                           options.D ? options.D->data() : nullptr,
                                           options.initial_state ? options.initial_state->data() : nullptr,
                                           out.data(), final_state ? final_state->data() : nullptr};
  using Kernel = detail::DiagonalSsmKernel<Arch>;
  tokenmix::detail::parallel_for(options.device, Kernel::num_items(problem), [&](Index first, Index last) {
    std::vector<float, xsimd::aligned_allocator<float, 64>> scratch(
        static_cast<std::size_t>(Kernel::scratch_floats(problem)));
    Kernel::run_items(problem, first, last, scratch.data());
  });
}

// Convenience overload: allocates and returns the output and the final state.
template <class Arch = simd::default_arch>
DiagonalSsmResult diagonal_ssm(const ConstTensorView<float, 3>& x, const ConstTensorView<float, 3>& dA,
                               const ConstTensorView<float, 3>& C, const DiagonalSsmOptions& options = {}) {
  detail::check_diagonal_ssm_args("diagonal_ssm", x, dA, C, options, nullptr, nullptr);  // before allocating
  DiagonalSsmResult r{Tensor<float, 3>(x.dimension(0), x.dimension(1), x.dimension(2)),
                      Tensor<float, 4>(x.dimension(0), x.dimension(2), dA.dimension(1), 2)};
  TensorView<float, 4> last(r.final_state.data(), r.final_state.dimensions());
  ssm::diagonal_ssm<Arch>(x, dA, C, options, TensorView<float, 3>(r.out.data(), r.out.dimensions()), &last);
  return r;
}

// One decode step: x [B, D] is the new token; state [B, D, M, 2] becomes dA·state + x in place;
// out [B, D] = 2·Re(sum_m C·state) + Dskip·x. Bitwise equal to the matching token of diagonal_ssm.
// options.initial_state must be empty. `out` must not overlap x or state.
template <class Arch = simd::default_arch>
void diagonal_ssm_step(const ConstTensorView<float, 2>& x,   // [B, D]
                       TensorView<float, 4> state,            // [B, D, M, 2]
                       const ConstTensorView<float, 3>& dA,  // [Hp, M, 2]
                       const ConstTensorView<float, 3>& C,   // [Hp, M, 2]
                       const DiagonalSsmOptions& options,
                       TensorView<float, 2> out) {            // [B, D]
  const DiagonalSsmShape s =
      detail::check_diagonal_ssm_step_args("diagonal_ssm_step", x, state, dA, C, options, &out);
  // The sequence kernel on one token with the state in place: each item reads its channels' state
  // before writing them, and items own disjoint channels.
  const detail::DiagonalSsmProblem problem{s.batch, 1, s.channels, s.rows, s.modes, x.data(), dA.data(), C.data(),
                                           options.D ? options.D->data() : nullptr, state.data(), out.data(),
                                           state.data()};
  using Kernel = detail::DiagonalSsmKernel<Arch>;
  tokenmix::detail::parallel_for(options.device, Kernel::num_items(problem), [&](Index first, Index last) {
    std::vector<float, xsimd::aligned_allocator<float, 64>> scratch(
        static_cast<std::size_t>(Kernel::scratch_floats(problem)));
    Kernel::run_items(problem, first, last, scratch.data());
  });
}

// ---- discretisation ------------------------------------------------------------------------------

enum class S4dDiscretization {
  bilinear,  // dA = (1 + dt·A/2) / (1 - dt·A/2),  C·dB = C·B·dt / (1 - dt·A/2)   (H3's default)
  zoh,       // dA = exp(dt·A),                    C·dB = C·B·(exp(dt·A) - 1) / A   (S4D's default)
};

struct DiagonalSsmParams {
  Tensor<float, 3> dA;  // [Hp, M, 2]
  Tensor<float, 3> C;   // [Hp, M, 2] C·dB: the input matrix folded in
};

// (A, B, C) continuous-time complex [Hp, M, 2] and the step dt [Hp] (> 0) to the op's (dA, C), in
// double: SSKernelDiag's forward (the kernel) and _setup_step (the recurrence) for disc = 'bilinear'
// / 'zoh'. H3 / S4D checkpoints store A as inv_A_real, A_imag (A = -exp(inv_A_real) + i·A_imag for
// real_type 'exp'), B and C as view_as_real tensors (C already conjugated at init: use it as is),
// and log_dt (dt = exp(log_dt)).
inline DiagonalSsmParams s4d_discretize(const ConstTensorView<float, 3>& A,  // [Hp, M, 2]
                                        const ConstTensorView<float, 3>& B,  // [Hp, M, 2]
                                        const ConstTensorView<float, 3>& C,  // [Hp, M, 2]
                                        const ConstTensorView<float, 1>& dt, // [Hp]
                                        S4dDiscretization method = S4dDiscretization::bilinear) {
  using tokenmix::detail::check_shape;
  constexpr const char* op = "s4d_discretize";
  tokenmix::detail::check_numel_fits(op, "A", shape_of(A));
  const Index rows = A.dimension(0), modes = A.dimension(1);
  TOKENMIX_CHECK(rows > 0 && modes > 0 && A.dimension(2) == 2, op, ": A has shape ", shape_of(A),
                 ", expected [Hp, M, 2] (complex as re, im) with Hp > 0 and M > 0");
  const NamedShape<3> like_a{{"Hp", "M", "2"}, {{rows, modes, 2}}};
  check_shape(op, "B", B, like_a, " like A");
  check_shape(op, "C", C, like_a, " like A");
  check_shape(op, "dt", dt, NamedShape<1>{{"Hp"}, {{rows}}});
  DiagonalSsmParams r{Tensor<float, 3>(rows, modes, 2), Tensor<float, 3>(rows, modes, 2)};
  for (Index h = 0; h < rows; ++h) {
    const double step = dt(h);
    TOKENMIX_CHECK(std::isfinite(step) && step > 0, op, ": dt[", h, "] = ", step, ", expected a finite step > 0");
    for (Index m = 0; m < modes; ++m) {
      using cplx = std::complex<double>;
      const cplx a(A(h, m, 0), A(h, m, 1)), b(B(h, m, 0), B(h, m, 1)), c(C(h, m, 0), C(h, m, 1));
      const cplx dta = step * a;
      cplx da, cdb;
      if (method == S4dDiscretization::bilinear) {
        da = (1.0 + dta / 2.0) / (1.0 - dta / 2.0);
        cdb = c * b * step / (1.0 - dta / 2.0);
      } else {
        TOKENMIX_CHECK(a != cplx(0), op, ": A[", h, ", ", m, "] = 0 has no zero-order-hold input matrix");
        da = std::exp(dta);
        cdb = c * b * (da - 1.0) / a;
      }
      r.dA(h, m, 0) = static_cast<float>(da.real()), r.dA(h, m, 1) = static_cast<float>(da.imag());
      r.C(h, m, 0) = static_cast<float>(cdb.real()), r.C(h, m, 1) = static_cast<float>(cdb.imag());
    }
  }
  return r;
}

}  // namespace tokenmix::ssm
