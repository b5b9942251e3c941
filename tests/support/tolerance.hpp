#pragma once
// Every tolerance of the test suite, in one place (DESIGN §6). An element passes when
//   |actual - expected| <= atol + rtol * |expected|,
// and the whole tensor must also satisfy sum((a - e)^2) / sum(e^2) <= max_nmse.
// Never loosen a bound without a comment saying why.

namespace tokenmix::testing {

struct Tolerance {
  double atol;
  double rtol;
  double max_nmse;
};

namespace tolerance {

// Fast selective scan (fp32, vector exp2 of dt*A*log2(e), FMA) vs the oracle accumulating in double.
// The error grows with the number of recurrence steps that feed one output; measured worst cases on
// the random sweep are ~2e-6 absolute on O(1) outputs (mamba_scan.md quotes ~1e-6 for a
// reassociated fp32 scan). The bound leaves 5x headroom.
inline constexpr Tolerance selective_scan{1e-5, 1e-4, 1e-10};

// The double oracle vs the PyTorch fixture (computed by torch in float64): both exact to ~1e-15;
// the fixture is stored as float32, which rounds to 6e-8 relative.
inline constexpr Tolerance oracle_vs_fixture{1e-6, 1e-6, 1e-12};

}  // namespace tolerance
}  // namespace tokenmix::testing

namespace tokenmix::testing::tolerance {

// Fast causal conv1d / its step (fp32 FMA chain over K <= 7 taps, simd::silu) vs the oracle in
// double: K roundings of O(1) products (atol: cancellation can make the sum ~0) plus silu's exp and
// divide (a few ulp, rtol): ~K * 6e-8 * sum|w·x| ~ 1e-7 absolute expected; the bounds leave >10x
// headroom (the sweep over K <= 7, D <= 90, every arch passes).
inline constexpr Tolerance causal_conv1d{2e-6, 1e-5, 1e-11};

// One fast selective_state_update step vs the oracle in double (state starts from the same floats):
// the same per-element arithmetic as the fast selective scan (vector exp2 of dt*A*log2(e), softplus,
// an FMA sum over N <= 64 of O(1) terms), so the scan's bound applies.
inline constexpr Tolerance selective_state_update{1e-5, 1e-4, 1e-10};

}  // namespace tokenmix::testing::tolerance

namespace tokenmix::testing::tolerance {

// blocks::linear (fp32 FMA accumulation over K, in K order) vs the oracle accumulating in double.
// GEMM error grows with K: ~sqrt(K)·eps·|x|·|w| for random signs (K·eps worst case). With x ~ N(0, 1)
// and W ~ U(±1/sqrt(K)) (nn.Linear init, outputs O(1)), the measured worst is 3e-6 absolute at
// K = 1536..2048 (the GEMV path, 16-lane partial sums, 4e-7). The bound leaves ~5x headroom for the
// K <= 2049 of the tests; larger K or larger inputs need a bound scaled with sqrt(K)·|x|·|w|.
inline constexpr Tolerance linear{1.5e-5, 1e-5, 1e-11};

// blocks::rms_norm (fp32 sum of squares with 4 vector accumulators, fp32 rsqrt) vs the double
// oracle: measured worst 2.4e-7 relative (a few ulp), D <= 4096; ~40x headroom on rtol.
inline constexpr Tolerance rms_norm{1e-6, 1e-5, 1e-12};
}  // namespace tokenmix::testing::tolerance

namespace tokenmix::testing::tolerance {

// blocks::MambaMixer (packed fp32 GEMMs, fast conv and scan) vs ref::mamba_mixer in double, and the
// decode steps vs the prefill, at the tests' sizes (d_model <= 40, I <= 96; outputs ~0.05 with
// nn.Linear-scaled weights): every case passes at {1e-7, 1e-5}; the bound leaves 5x headroom.
// Model-sized mixers (K = 1536) need the sqrt(K) scaling of tolerance::linear.
inline constexpr Tolerance mamba_mixer{5e-7, 5e-5, 1e-11};
}  // namespace tokenmix::testing::tolerance

namespace tokenmix::testing::tolerance {

// The 2-D scan family (gather → fast selective_scan → scatter-add of up to 4 directions, then the
// gate) vs its oracles (ref::selective_scan in double per direction): each direction carries the
// scan's error, and a cell sums up to 4 (a joined MSVMamba path: 3, then a bilinear blend). Measured
// worst over the test's cases: 2.7e-6 absolute on O(1) outputs (1.1e-6 on a 0.0056 output after
// cancellation in the sum); twice the scan's bound leaves ~7x headroom.
inline constexpr Tolerance selective_scan_2d{2e-5, 2e-4, 1e-10};
}  // namespace tokenmix::testing::tolerance

namespace tokenmix::testing::tolerance {

// ssm::spatial_state_fusion (fp32 FMA chain over 9·k ≤ 27 taps, then an N-term readout) vs its
// double oracle, O(1) inputs: a few dozen roundings of O(1) terms, ~1e-6 expected; ~10x headroom.
inline constexpr Tolerance spatial_state_fusion{1e-5, 1e-5, 1e-11};
}  // namespace tokenmix::testing::tolerance

namespace tokenmix::testing::tolerance {

// blocks::gated_rms_norm (fp32 silu, a float sum of squares over the group, fp32 rsqrt) vs the double
// oracle: silu's few ulp plus the rms_norm bound; outputs O(1).
inline constexpr Tolerance gated_rms_norm{1e-6, 2e-5, 1e-12};
}  // namespace tokenmix::testing::tolerance

namespace tokenmix::testing::tolerance {

// Mamba-2 SSD (ssm::ssd, ssd_state_update) vs ref::ssd in double.
// Outputs are sums over N <= 128 state
// entries of O(1) products, so |out| reaches ~10-80 and the errors scale with it. Measured with
// SSD_TEST_REPORT=1 over every comparison with the oracle in this file (all representative archs:
// sse2, avx, fma3<avx2>, avx512bw), as the worst absolute error where |ref| < 1, the worst relative
// error where |ref| >= 1, and the worst NMSE; each bound leaves >= 5x headroom.
// Recurrent form (and the step) vs the double oracle: fp32 FMA recurrence, vector exp of dt·A,
// softplus, a sum over N of lane-wise partial sums: measured 6.1e-6 abs, 2.6e-6 rel, NMSE 5.9e-14.
inline constexpr Tolerance ssd_recurrent{3e-5, 2e-5, 1e-12};
// Chunked form vs the double oracle: reassociated sums (C·S_in over N, M·X over the chunk, chunk
// states), decays exp(Acum[l] - Acum[s]) from double cumulative sums rounded once to float:
// measured 3.0e-6 abs, 2.6e-6 rel, NMSE 6.1e-14. Also used for chunked vs recurrent and for split /
// packed-sequence properties, whose errors are at most the sum of two forms' (measured within it).
inline constexpr Tolerance ssd_chunked{3e-5, 2e-5, 1e-12};
// Final states (O(1) entries, no sum over N), both forms: measured 8.9e-7 abs, 9.1e-7 rel, NMSE 2.9e-13.
inline constexpr Tolerance ssd_state{5e-6, 5e-6, 3e-12};
}  // namespace tokenmix::testing::tolerance

namespace tokenmix::testing::tolerance {

// blocks::Mamba2Mixer vs ref::mamba2_mixer in double at the tests' sizes (d_model <= 32, N <= 16):
// the projections (tolerance::linear), the SSD (tolerance::ssd_chunked) and the gated norm, whose
// rsqrt scales the scan's error up where a group's RMS is small. Measured worst over the test's
// cases: 4.8e-7 absolute on O(1) outputs, 1e-5 relative on a 0.03 output; ~5x headroom.
inline constexpr Tolerance mamba2_mixer{3e-6, 5e-5, 1e-11};
}  // namespace tokenmix::testing::tolerance

namespace tokenmix::testing::tolerance {

// LBMamba local-bidirectional scan (ssm::local_bidirectional_scan) vs its oracle from the definition.
// Fast LB scan (fp32: the forward scan's arithmetic plus a reverse pass of <= M-1 FMA steps per
// state and a second readout sum) vs the double oracle. Measured on this file's random sweep (200
// cases, N <= 40, L <= 150, M up to L + 5) plus the N x M grid at L = 131, every representative
// arch: worst element at 0.20 of this bound (max abs error 1.5e-5,
// on a large output: the bound is atol + rtol·|r|), worst NMSE 1e-13. So the forward scan's bound {1e-5, 1e-4, 1e-10}
// holds with 5x headroom and is reused unchanged.
inline constexpr Tolerance local_bidirectional_scan{1e-5, 1e-4, 1e-10};
// The oracle (double, from the definition) vs the spec's decomposition built from ref::selective_scan
// (double inside, but each of the two scans and the correction rounded to float before they are
// summed): a few float roundings of O(1..10) values, ~1e-6 absolute; 1e-5 relative leaves headroom.
inline constexpr Tolerance local_bidirectional_decomposition{2e-6, 1e-5, 1e-12};

// All hidden states of the scan (ssm::selective_scan_states) vs the oracle.
// Fast states vs the double oracle's states: the same fp32 recurrence whose readout the scan's
// tolerance bounds, without the readout's sum over N. Measured on 200 random cases + an N grid
// (N <= 40, L <= 150), every representative arch: worst element at 0.04 of this bound (max abs
// error 3.8e-6), worst NMSE 1e-13. The selective scan's bound
// {1e-5, 1e-4, 1e-10} is reused (25x headroom; kept equal so one constant can serve both).
// out and last_state are checked bitwise against the plain fast scan instead.
inline constexpr Tolerance selective_scan_states{1e-5, 1e-4, 1e-10};
}  // namespace tokenmix::testing::tolerance

namespace tokenmix::testing::tolerance {

// Fast attention (fp32 FMA dot products over P <= 64, exp2 with 1.6 ulp, online-softmax rescaling
// across key blocks) vs the oracle in double. Outputs are convex combinations of O(1) values, so
// absolute errors of a few 1e-7 are expected (products of P terms, the exp's relative error times
// the weights); lse is O(log Lk + |s|), compared with the same absolute bound. Measured worst: see
// tests/attention/attention_test.cpp's sweep; the bound leaves >= 5x headroom.
inline constexpr Tolerance attention{1e-5, 1e-5, 1e-11};
}  // namespace tokenmix::testing::tolerance

namespace tokenmix::testing::tolerance {

// The linear-attention family (linear::simple_gla, lightning_attention, retention, linear_attention,
// and the decode steps) vs ref:: in double (the quadratic form), measured with LINEAR_TEST_REPORT=1
// over every comparison of tests/linear/ (default arch, AVX-512). Inputs: q, k, v ~ N(0, 1) with
// q·k·scale ~ N(0, 1), L <= 130, K <= 129, V <= 300; outputs are sums over up to L past tokens, so
// |out| reaches ~40 (~280 for positive features without the normaliser) and the errors scale with the
// outputs and with the number of tokens a decay keeps (the recurrent form and the step multiply the
// state by the float λ = exp(g) once per token, so a rounding of λ compounds over the decay horizon;
// the chunked form once per chunk).
//   linear_attention: worst |a - r| 4.2e-5 where |r| < 1 (cancellation in a slope-0.0026 lightning
//   head over 130 tokens, recurrent form and chunk 1), 2.4e-5 relative where |r| >= 1, NMSE 2.9e-12;
//   strong decays (simple_gla's g ~ U(-3, 0)) and no decay (linear_attention) stay below 1.1e-5 /
//   8.2e-6 / 1.7e-13. The worst element is at 0.16 of this bound (6x headroom), the NMSE at 0.15.
inline constexpr Tolerance linear_attention{2e-4, 1e-4, 2e-11};
// 2000 tokens with a decay of 1 - 1e-6 (g = -1e-6, slope 1e-6) and 0 (g = -30, slope 20), outputs
// RMS ~20-35, max ~180: the recurrent form and the step drift by up to 2000 roundings of λ (measured
// 2.8e-3 absolute, 1.0e-3 where |r| < 1, 7.6e-4 relative where |r| >= 1, NMSE 2.5e-10, i.e. ~1e-5 of
// the RMS); the chunked form is 15x more accurate (1.2e-4 / 7.4e-5 / NMSE 7.2e-13). The worst element
// is at 0.19 of this bound, the NMSE at 0.17.
inline constexpr Tolerance linear_attention_long{5e-3, 1e-3, 1.5e-9};
// Two double oracles of one operator (ref::lightning_attention's masked form vs ref::simple_gla with
// g_gamma = -slope), each rounded to float once: at most 1 ulp apart (2^-23 relative); measured
// bitwise equal.
inline constexpr Tolerance linear_attention_oracles{1e-9, 2.4e-7, 1e-13};
// Diagonal (S4D) SSM: fp32 complex recurrence (6 FMA-pipe operations per mode and token) vs the
// convolution with the kernel computed in double. Decays up to 0.999 keep ~1000 tokens of memory,
// so an output sums up to L <= 150 rounded state updates of M <= 35 modes; outputs are O(1)-O(10).
// Measured on the test sweeps: the worst element at 0.13 of this bound, the NMSE (7.5e-12) at 0.075.
inline constexpr Tolerance diagonal_ssm{2e-5, 1e-4, 1e-10};
// H3 layer (four fp32 projections around the shift FIR and the diagonal SSM's fp32 recurrence) vs
// ref::h3 in double and vs the PyTorch fixtures; outputs O(1) (max 3.4). Measured: the worst element
// at 0.19 of this bound (the fixtures at 0.07), the NMSE (3.6e-14) at 0.04.
inline constexpr Tolerance h3{1e-6, 1e-5, 1e-12};

// Local attention (fp32 logits over P <= 40, vector exp, fp32 sums over <= 2W + 1 keys; relu²
// weights unnormalised) vs the oracle in double. Measured on the sweeps: the worst element at 0.27
// of this bound, the NMSE (2.6e-13) at 0.03.
inline constexpr Tolerance local_attention{2e-5, 2e-5, 1e-11};

// SeqBoat layer (fp32 norms, EMA recurrence, three projections, local attention) vs ref::seqboat in
// double and vs the PyTorch fixtures; outputs O(1) (max 8.6). Measured: the worst element at 0.22 of
// this bound (the fixtures at <= 0.12), the NMSE (3.5e-13) at 0.035.
inline constexpr Tolerance seqboat{5e-6, 5e-5, 1e-11};

// Depthwise conv2d (fp32 FMA over K² <= 49 taps of O(1) inputs and |w| <= 1/K) vs the oracle in
// double. Measured: the worst element at 0.19 of this bound, the NMSE (3.6e-14) at 0.04.
inline constexpr Tolerance depthwise_conv2d{1e-6, 5e-6, 1e-12};

// A2SSM (fp32 conv, projections, scan states, neighbourhood aggregation, state fusion) vs ref::a2ssm
// in double and vs the PyTorch fixtures; outputs up to ~17. Measured: the worst element at 0.19 of
// this bound, the NMSE (3.0e-14) at 0.003.
inline constexpr Tolerance a2ssm{5e-6, 5e-5, 1e-11};

}  // namespace tokenmix::testing::tolerance

namespace tokenmix::testing::tolerance {

// hybrid::Mass vs ref::mass in double (and vs the float64 PyTorch fixtures): the fast A2SSM's error
// (a2ssm) plus the neighbourhood softmaxes (simd::exp) and two layer norms that amplify the mixed
// map's absolute error by 1/std of a row. Measured on the oracle sweep and the fixtures: worst
// element 4.7e-6 absolute on O(0.1-1) outputs (0.15 of this bound), NMSE <= 1.4e-13.
inline constexpr Tolerance mass{2e-5, 2e-5, 1e-11};

}  // namespace tokenmix::testing::tolerance

namespace tokenmix::testing::tolerance {

// blocks::A2MambaBlock vs ref::a2mamba_block, and blocks::A2MambaBackbone vs the float64 PyTorch
// model: MASS's error (mass) carried through the residual stream, the FFN (GELU via xsimd's erf) and,
// for the backbone, 5 blocks, 7 folded conv-BN layers and the head. Measured: worst element 8.6e-6
// absolute (backbone stage 3 of the fixture, features up to |10|; 0.17 of this bound), blocks
// <= 2.4e-6; NMSE <= 8.6e-13.
inline constexpr Tolerance a2mamba{5e-5, 5e-5, 1e-11};

}  // namespace tokenmix::testing::tolerance

namespace tokenmix::testing::tolerance {

// blocks::layer_norm (fp32 two-pass mean / variance) vs ref::layer_norm in double: O(1) outputs,
// sums of <= 192 terms, a row offset by 1000 (the shifted sums keep it exact): measured worst
// 4.8e-7 absolute (0.24 of atol), NMSE 1.4e-14.
inline constexpr Tolerance layer_norm{2e-6, 1e-5, 1e-12};

}  // namespace tokenmix::testing::tolerance
