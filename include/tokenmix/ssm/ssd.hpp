#pragma once
// ssm::ssd: the Mamba-2 SSD operator (mamba_ssm's mamba_chunk_scan_combined without the model
// block), and ssm::ssd_state_update: its decode step (mamba_ssm's selective_state_update with heads).
//
//   auto r = tokenmix::ssm::ssd(x, dt, A, B, C, options);   // r.out [B, L, H, P], r.final_state [B, H, P, N]
//   Tensor<float, 3> y = tokenmix::ssm::ssd_state_update(state, x1, dt1, A, B1, C1, options);  // state in place
//
// Equations and citations: reference/ssd.hpp (the oracle, same signatures in tokenmix::ref).
// Shapes and options (D per head or per channel, z gate, dt_bias, dt_softplus, dt_min / dt_max,
// initial_state, seq_idx, algorithm, chunk_size, device): ssm/ssd_types.hpp.
// Kernels and their numerics: ssm/ssd_kernel.hpp.
//
// Forms: SsdAlgorithm::recurrent runs the sequential recurrence (vectorized over N); chunked runs
// SSD (matrix multiplies per chunk of chunk_size tokens); auto_select picks by the rule below. The
// two forms agree within rounding (tests: tolerance ssd_chunked); recurrent prefill and token-by-token
// ssd_state_update agree bitwise (same kernel).
// scan(x1 ‖ x2) == scan(x2, initial_state = scan(x1).final_state) within rounding for either form
// (bitwise for the recurrent form).
// L = 0 is valid: empty output, final_state = initial_state (or zeros).
// NaN or inf in the inputs propagates to the outputs and states of the (b, h) it touches, from its
// token on, within its packed sequence. One exception: in the chunked form, a NaN / inf in x, B or C
// of a token can also reach the outputs of a later packed sequence in the same chunk (a 0 weight
// times a NaN operand in the chunk's matrix product); dt's does not.
//
// Auto rule: chunked from kSsdAutoMinLength = 32 tokens on when the head dim P fills at least one
// vector, else recurrent. Measured on the project's machine (AMD EPYC Zen 5, AVX-512, 1 thread, CPU
// time, ns per token-channel, recurrent vs chunked with Q = 64 / 32):
//   H=32 P=64 N=128: L=16 6.0 vs 7.3 (Q=16) | L=24 6.2 vs 6.1 / 5.9 | L=32 6.0 vs 5.5 (Q=32) |
//                    L=48 5.7 vs 5.0 | L=128 6.0 vs 4.6 | L=2048 7.2 vs 5.0 / 4.9
//   L=512 H=32 P=64 N=16 / 32 / 64: 2.4 vs 2.1 / 1.9 | 3.1 vs 2.5 / 2.4 | 4.2 vs 3.3 / 3.3
//   L=512 N=128 P=32 (H=64): 7.6 vs 5.3 | P=16 (H=128): 7.7 vs 7.4
// The chunked form does 2N + Q/2 multiply-adds per (token, channel), all in a register-blocked
// micro-kernel, against the recurrence's 3N vector operations plus a reduction over N.
// Speed (bench/ssm/ssd_bench.cpp, same machine, 1 thread, CPU time, medians of 3): B=1 H=32 P=64
// N=128 with D, z, dt_bias + softplus: auto 4.8 / 4.9 / 5.3 ns per token-channel at L = 512 / 2048
// / 8192 (recurrent 6.9 / 7.3 / 9.1); the chunked form's matrix products alone run at 175-195
// GFLOP/s, 74-89% of the measured FMA peak (fma_gflops 220-235).
// Chunk size (kSsdDefaultChunk = 64): Q = 32..64 are within 3% of each other at L = 2048 (4.9-5.0),
// 64 is best at L = 128..256; 128 and 256 are 4% and 25% slower.

#include <vector>

#include "tokenmix/core/threading.hpp"
#include "tokenmix/ssm/ssd_kernel.hpp"
#include "tokenmix/ssm/ssd_types.hpp"

namespace tokenmix::ssm {

// Chunk size when SsdOptions::chunk_size is 0.
inline constexpr Index kSsdDefaultChunk = 64;
// auto_select takes the chunked form from this many tokens on (shorter sequences: recurrent).
inline constexpr Index kSsdAutoMinLength = 32;

namespace detail {

inline SsdProblem ssd_problem(const SsdShape& s, const float* x, const float* dt, const float* A, const float* B,
                              const float* C, const SsdOptions& o, float* out, float* final_state) {
  return SsdProblem{s.batch, s.length, s.heads, s.head_dim, s.state, s.groups, x, dt, A, B, C,
                    o.D ? o.D->data() : nullptr, s.D_per_channel, o.z ? o.z->data() : nullptr,
                    o.dt_bias ? o.dt_bias->data() : nullptr, o.dt_softplus, ssd_dt_clamped(o), o.dt_min, o.dt_max,
                    o.initial_state ? o.initial_state->data() : nullptr,
                    o.seq_idx ? o.seq_idx->data() : nullptr, out, final_state};
}

// The auto rule: chunked from kSsdAutoMinLength tokens on, when the head dim fills whole vectors.
template <class Arch>
bool ssd_auto_uses_chunked(const SsdShape& s) {
  return s.length >= kSsdAutoMinLength && s.head_dim >= static_cast<Index>(simd::lanes<Arch>);
}

template <class Arch>
void run_ssd_recurrent(const SsdProblem& problem, const Eigen::ThreadPoolDevice* device) {
  using Kernel = SsdRecurrentKernel<Arch>;
  tokenmix::detail::parallel_for(device, Kernel::num_items(problem), [&](Index first, Index last) {
    std::vector<float, xsimd::aligned_allocator<float, 64>> scratch(
        static_cast<std::size_t>(Kernel::scratch_floats(problem)));
    Kernel::run_items(problem, first, last, scratch.data());
  });
}

template <class Arch>
void run_ssd_chunked(const SsdProblem& problem, Index chunk, const Eigen::ThreadPoolDevice* device) {
  using Kernel = SsdChunkedKernel<Arch>;
  tokenmix::detail::parallel_for(device, Kernel::num_items(problem), [&](Index first, Index last) {
    std::vector<float, xsimd::aligned_allocator<float, 64>> scratch(
        static_cast<std::size_t>(Kernel::scratch_floats(problem, chunk)));
    Kernel::run_items(problem, chunk, first, last, scratch.data());
  });
}

}  // namespace detail

// View-based core: writes out [B, L, H, P] and, if final_state is not null, final_state [B, H, P, N].
// `out` must not overlap the inputs; final_state may be the very buffer of options.initial_state.
// Arch selects the kernel instantiation (tests run every arch).
template <class Arch = simd::default_arch>
void ssd(const ConstTensorView<float, 4>& x,   // [B, L, H, P]
         const ConstTensorView<float, 3>& dt,  // [B, L, H]
         const ConstTensorView<float, 1>& A,   // [H]
         const ConstTensorView<float, 4>& B,   // [B, L, G, N]
         const ConstTensorView<float, 4>& C,   // [B, L, G, N]
         const SsdOptions& options,
         TensorView<float, 4> out,             // [B, L, H, P]
         TensorView<float, 4>* final_state) {  // [B, H, P, N] or nullptr
  const SsdShape s = detail::check_ssd_args("ssd", x, dt, A, B, C, options, &out, final_state);
  const detail::SsdProblem problem = detail::ssd_problem(s, x.data(), dt.data(), A.data(), B.data(), C.data(), options,
                                                         out.data(), final_state ? final_state->data() : nullptr);
  const bool chunked = options.algorithm == SsdAlgorithm::chunked ||
                       (options.algorithm == SsdAlgorithm::auto_select && detail::ssd_auto_uses_chunked<Arch>(s));
  if (chunked) {
    const Index chunk = options.chunk_size > 0 ? options.chunk_size : kSsdDefaultChunk;
    detail::run_ssd_chunked<Arch>(problem, std::max<Index>(1, std::min(chunk, s.length)), options.device);
  } else {
    detail::run_ssd_recurrent<Arch>(problem, options.device);
  }
}

// Convenience overload: allocates and returns the output and the final state.
template <class Arch = simd::default_arch>
SsdResult ssd(const ConstTensorView<float, 4>& x, const ConstTensorView<float, 3>& dt, const ConstTensorView<float, 1>& A,
              const ConstTensorView<float, 4>& B, const ConstTensorView<float, 4>& C, const SsdOptions& options = {}) {
  return detail::ssd_into_new_result("ssd", x, dt, A, B, C, options,
                                     [&](TensorView<float, 4>& out, TensorView<float, 4>& last) {
                                       ssm::ssd<Arch>(x, dt, A, B, C, options, out, &last);
                                     });
}

// One decode step: updates state [B, H, P, N] in place and writes out [B, H, P]. The options are
// ssd's: D, z ([B, 1, H, P]), dt_bias, dt_softplus, dt_min / dt_max apply; initial_state and seq_idx
// are rejected (the state argument is the state; start a new sequence by zeroing its state);
// algorithm and chunk_size are ignored. The step runs ssd's recurrent kernel on one token, so a
// sequence fed token by token gives bitwise the outputs and final state of
// ssd(...) with options.algorithm = SsdAlgorithm::recurrent.
template <class Arch = simd::default_arch>
void ssd_state_update(TensorView<float, 4> state,           // [B, H, P, N]
                      const ConstTensorView<float, 3>& x,   // [B, H, P]
                      const ConstTensorView<float, 2>& dt,  // [B, H]
                      const ConstTensorView<float, 1>& A,   // [H]
                      const ConstTensorView<float, 3>& B,   // [B, G, N]
                      const ConstTensorView<float, 3>& C,   // [B, G, N]
                      const SsdOptions& options,
                      TensorView<float, 3> out) {           // [B, H, P]
  const SsdShape s = detail::check_ssd_state_update_args("ssd_state_update", state, x, dt, A, B, C, options, &out);
  SsdOptions step = options;
  step.initial_state.emplace(state.data(), state.dimensions());  // read in place (never written through)
  const detail::SsdProblem problem = detail::ssd_problem(s, x.data(), dt.data(), A.data(), B.data(), C.data(), step,
                                                         out.data(), state.data());
  detail::run_ssd_recurrent<Arch>(problem, options.device);
}

// Convenience overload: updates state in place and returns out [B, H, P].
template <class Arch = simd::default_arch>
Tensor<float, 3> ssd_state_update(Tensor<float, 4>& state, const ConstTensorView<float, 3>& x,
                                  const ConstTensorView<float, 2>& dt, const ConstTensorView<float, 1>& A,
                                  const ConstTensorView<float, 3>& B, const ConstTensorView<float, 3>& C,
                                  const SsdOptions& options = {}) {
  TensorView<float, 4> st(state.data(), state.dimensions());
  detail::check_ssd_state_update_args("ssd_state_update", st, x, dt, A, B, C, options, nullptr);
  Tensor<float, 3> out(x.dimension(0), x.dimension(1), x.dimension(2));
  ssm::ssd_state_update<Arch>(st, x, dt, A, B, C, options, TensorView<float, 3>(out.data(), out.dimensions()));
  return out;
}

}  // namespace tokenmix::ssm
