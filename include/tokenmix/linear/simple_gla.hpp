#pragma once
// linear::simple_gla: simple gated linear attention (fla's chunk_simple_gla / fused_recurrent_simple_gla),
// the kernel every causal form of the family runs on (lightning_attention, retention,
// linear_attention), and linear::simple_gla_step, its one-token decode step.
//
//   linear::SimpleGlaOptions o;  o.g_gamma.emplace(log_decay.data(), H);      // or o.g [B, L, H]
//   auto r = tokenmix::linear::simple_gla(q, k, v, o);                          // r.out, r.final_state
//   linear::LinearStepOptions so;  so.g_gamma = o.g_gamma;
//   Tensor<float, 3> y = tokenmix::linear::simple_gla_step(state, q1, k1, v1, so);  // state in place
//
// Equations, shapes and options: linear/linear_attention_types.hpp; oracle: reference/linear_attention.hpp.
//
// Forms. The recurrence and the chunked form are those of Mamba-2's SSD (ssm/ssd_kernel.hpp), which is
// the same operator: SSD's x, B, C, dt·A are v, k, q, g (the state there is [V, K]: it is transposed
// at the call's boundary, the only copy). Chunked form, per chunk of Q tokens and head, with
// G[l] = Σ_{t0 <= u <= l} g_u:
//   intra:  O = ((Q Kᵀ) ⊙ D) V,  D[l][s] = exp(G[l] - G[s]) for s <= l, else 0
//   inter:  O += diag(exp(G[l])) Q S_in
//   state:  S_out = exp(G[last])·S_in + Σ_s exp(G[last] - G[s]) k_sᵀ v_s
// Every exponent is a difference G[l] - G[s] <= 0 with s <= l (or G[l] alone) when g <= 0: no λ^(-t)
// factor is ever formed, so decays near 0 cannot overflow. The products run in SSD's register-blocked
// micro-kernel. The scale multiplies the outputs at the end (the operator is linear in q).
// auto_select: chunked from kLinearAutoMinLength tokens on when V fills a vector (SSD's rule).
// Chunk size kLinearDefaultChunk = 32 (Lightning Attention-2 uses 64 on GPUs): on this project's
// machine (bench/linear/linear_attention_bench.cpp, BM_LightningAttention_Chunked/L:4096/H:8/K:64/V:64)
// block 32 / 64 / 128 / 256 took 7.6 / 8.8 / 13.8 / 14.9 ms: the intra-chunk products grow with the
// block while the state products do not shrink below 2·K·V per token.
//
// The decode step is its own kernel: the state [K, V] row by row (V contiguous), per row
// s = exp(g)·s + k_r·v and o += q_r·s, vectorised over V; the state is read and written once.

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/linear/linear_attention_types.hpp"
#include "tokenmix/simd/arch.hpp"
#include "tokenmix/simd/exp.hpp"
#include "tokenmix/ssm/ssd.hpp"

namespace tokenmix::linear {

inline constexpr Index kLinearDefaultChunk = 32;
inline constexpr Index kLinearAutoMinLength = ssm::kSsdAutoMinLength;

namespace detail {

// [n, rows, cols] -> [n, cols, rows].
inline void transpose_matrices(const float* src, Index n, Index rows, Index cols, float* dst) {
  for (Index m = 0; m < n; ++m)
    for (Index r = 0; r < rows; ++r)
      for (Index c = 0; c < cols; ++c) dst[(m * cols + c) * rows + r] = src[(m * rows + r) * cols + c];
}

// The validated call as raw pointers (q, k [B, L, H, K], v [B, L, H, V], g [B, L, H] or null,
// g_gamma [H] or null, initial_state [B, H, K, V] or null) -> out [B, L, H, V], final_state
// [B, H, K, V] or null.
struct SimpleGlaCall {
  LinearShape s;
  const float *q, *k, *v, *g, *g_gamma;
  float scale;
  const float* initial_state;
  LinearAlgorithm algorithm;
  Index chunk;
  const Eigen::ThreadPoolDevice* device;
  float* out;
  float* final_state;
};

template <class Arch>
bool simple_gla_uses_chunked(const SimpleGlaCall& c) {
  if (c.algorithm != LinearAlgorithm::auto_select) return c.algorithm == LinearAlgorithm::chunked;
  return c.s.length >= kLinearAutoMinLength && c.s.value_dim >= static_cast<Index>(simd::lanes<Arch>);
}

template <class Arch>
void run_simple_gla(const SimpleGlaCall& c) {
  const LinearShape& s = c.s;
  const Index states = s.batch * s.heads * s.key_dim * s.value_dim;
  std::vector<float> zeros_h(c.g_gamma ? 0 : std::size_t(s.heads), 0.0f);
  std::vector<float> init_vk(c.initial_state ? std::size_t(states) : 0), final_vk(c.final_state ? std::size_t(states) : 0);
  if (c.initial_state) transpose_matrices(c.initial_state, s.batch * s.heads, s.key_dim, s.value_dim, init_vk.data());
  ssm::detail::SsdProblem p{s.batch, s.length, s.heads, s.value_dim, s.key_dim, s.heads,
                            c.v, /*dt=*/nullptr, c.g_gamma ? c.g_gamma : zeros_h.data(), c.k, c.q,
                            /*D=*/nullptr, false, /*z=*/nullptr, /*dt_bias=*/nullptr, false, false, 0.0f, 0.0f,
                            c.initial_state ? init_vk.data() : nullptr, /*seq_idx=*/nullptr, c.out,
                            c.final_state ? final_vk.data() : nullptr};
  p.log_decay = c.g;
  if (s.length > 0 && simple_gla_uses_chunked<Arch>(c)) {
    const Index chunk = c.chunk > 0 ? c.chunk : kLinearDefaultChunk;
    ssm::detail::run_ssd_chunked<Arch>(p, std::max<Index>(1, std::min(chunk, s.length)), c.device);
  } else if (s.length > 0) {
    ssm::detail::run_ssd_recurrent<Arch>(p, c.device);
  } else if (c.initial_state && c.final_state) {  // L = 0: the state passes through
    std::copy(init_vk.begin(), init_vk.end(), final_vk.begin());
  }
  if (c.final_state) transpose_matrices(final_vk.data(), s.batch * s.heads, s.value_dim, s.key_dim, c.final_state);
  if (c.scale != 1.0f) {
    const Index n = s.batch * s.length * s.heads * s.value_dim;
    tokenmix::detail::parallel_for(c.device, (n + 4095) / 4096, [&](Index first, Index last) {
      for (Index i = first * 4096; i < std::min(n, last * 4096); ++i) c.out[i] *= c.scale;
    });
  }
}

inline void check_no_alias(const char* op, const float* out, Index n, std::initializer_list<const float*> ins,
                           std::initializer_list<Index> sizes) {
  auto size = sizes.begin();
  for (const float* in : ins) {
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out, n, in, *size), op, ": out must not overlap the inputs");
    ++size;
  }
}

}  // namespace detail

namespace detail {

// The checks and the run of simple_gla's view-based core, with the op name of the caller in messages.
template <class Arch>
void simple_gla_core(const char* op, const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                     const ConstTensorView<float, 4>& v, const SimpleGlaOptions& options, TensorView<float, 4> out,
                     TensorView<float, 4>* final_state) {
  const LinearShape s = check_linear_qkv(op, q, k, v);
  check_simple_gla_options(op, options, s);
  tokenmix::detail::check_shape(op, "out", out, NamedShape<4>{{"B", "L", "H", "V"}, {{s.batch, s.length, s.heads, s.value_dim}}});
  if (final_state) check_linear_state(op, "final_state", *final_state, s);
  const float* g = options.g ? options.g->data() : nullptr;
  const float* gg = options.g_gamma ? options.g_gamma->data() : nullptr;
  const float* h0 = options.initial_state ? options.initial_state->data() : nullptr;
  const Index ng = options.g ? options.g->size() : 0, ngg = options.g_gamma ? options.g_gamma->size() : 0,
              nh0 = options.initial_state ? options.initial_state->size() : 0;
  check_no_alias(op, out.data(), out.size(), {q.data(), k.data(), v.data(), g, gg, h0}, {q.size(), k.size(), v.size(), ng, ngg, nh0});
  if (final_state) {
    const float* fs = final_state->data();
    const Index n = final_state->size();
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(fs, n, out.data(), out.size()), op, ": final_state must not overlap out");
    TOKENMIX_CHECK(fs == h0 || !tokenmix::detail::ranges_overlap(fs, n, h0, nh0), op,
                   ": final_state must be the very buffer of initial_state or not overlap it");
  }
  run_simple_gla<Arch>(SimpleGlaCall{s, q.data(), k.data(), v.data(), g, gg, check_linear_scale(op, options.scale, s.key_dim),
                                     h0, options.algorithm, options.chunk_size, options.device, out.data(),
                                     final_state ? final_state->data() : nullptr});
}

}  // namespace detail

// View-based core: writes out [B, L, H, V] and, if not null, final_state [B, H, K, V] (which may be the
// very buffer of options.initial_state).
template <class Arch = simd::default_arch>
void simple_gla(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                const ConstTensorView<float, 4>& v, const SimpleGlaOptions& options, TensorView<float, 4> out,
                TensorView<float, 4>* final_state) {
  detail::simple_gla_core<Arch>("simple_gla", q, k, v, options, out, final_state);
}

// Convenience overload: allocates and returns out and the final state.
template <class Arch = simd::default_arch>
LinearResult simple_gla(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                        const ConstTensorView<float, 4>& v, const SimpleGlaOptions& options = {}) {
  return detail::new_linear_result(detail::check_linear_qkv("simple_gla", q, k, v),
                                   [&](TensorView<float, 4> out, TensorView<float, 4>* state) {
                                     simple_gla<Arch>(q, k, v, options, out, state);
                                   });
}

// ---- decode ----

struct LinearStepOptions {
  std::optional<ConstTensorView<float, 2>> g;        // [B, H] this token's log decay; or
  std::optional<ConstTensorView<float, 1>> g_gamma;  // [H] per-head log decay; none: no decay
  std::optional<float> scale;                        // default 1/sqrt(K)
};

namespace detail {

// Per (b, h): S = exp(g)·S + kᵀv; o = scale·q S. state [B, H, K, V] in place.
template <class Arch>
void simple_gla_step_kernel(const LinearShape& s, float* state, const float* q, const float* k, const float* v,
                            const float* g, const float* g_gamma, float scale, float* out,
                            const Eigen::ThreadPoolDevice* device) {
  using V = simd::vfloat<Arch>;
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  constexpr Index kBlock = 8;  // vectors of o kept in registers per pass over the rows
  const Index K = s.key_dim, Vd = s.value_dim;
  tokenmix::detail::parallel_for(device, s.batch * s.heads, [&](Index first, Index last) {
    alignas(64) float pad[2 * W];
    for (Index bh = first; bh < last; ++bh) {
      const float decay = g ? std::exp(g[bh]) : g_gamma ? std::exp(g_gamma[bh % s.heads]) : 1.0f;
      const V dv(decay);
      float* S = state + bh * K * Vd;  // [K, V]
      const float *qr = q + bh * K, *kr = k + bh * K, *vr = v + bh * Vd;
      float* o = out + bh * Vd;
      for (Index c0 = 0; c0 < Vd; c0 += kBlock * W) {
        const Index nv = std::min(kBlock, (Vd - c0 + W - 1) / W);
        V acc[kBlock], vv[kBlock];
        for (Index c = 0; c < nv; ++c) {
          acc[c] = V(0.0f);
          const Index n = std::min(W, Vd - c0 - c * W);
          vv[c] = simd::load_upto<Arch>(vr + c0 + c * W, n, pad);
        }
        for (Index r = 0; r < K; ++r) {
          const V kv(kr[r]), qv(qr[r]);
          float* row = S + r * Vd + c0;
          for (Index c = 0; c < nv; ++c) {
            const Index n = std::min(W, Vd - c0 - c * W);
            const V sv = simd::fmadd<Arch>(dv, simd::load_upto<Arch>(row + c * W, n, pad), kv * vv[c]);
            simd::store_upto<Arch>(row + c * W, sv, n, pad + W);
            acc[c] = simd::fmadd<Arch>(qv, sv, acc[c]);
          }
        }
        for (Index c = 0; c < nv; ++c) {
          const Index n = std::min(W, Vd - c0 - c * W);
          simd::store_upto<Arch>(o + c0 + c * W, acc[c] * V(scale), n, pad);
        }
      }
    }
  });
}

}  // namespace detail

// One decode step: q1, k1 [B, H, K], v1 [B, H, V]; updates state [B, H, K, V] in place and writes out
// [B, H, V]. Feeding a sequence token by token gives the outputs and final state of simple_gla
// (recurrent form: the same state arithmetic; outputs within rounding).
namespace detail {
template <class Arch>
void simple_gla_step_core(const char* op, TensorView<float, 4> state, const ConstTensorView<float, 3>& q1, const ConstTensorView<float, 3>& k1,
                     const ConstTensorView<float, 3>& v1, const LinearStepOptions& options, TensorView<float, 3> out) {
  using tokenmix::detail::check_shape;
  const LinearShape s{q1.dimension(0), 1, q1.dimension(1), q1.dimension(2), v1.dimension(2)};
  TOKENMIX_CHECK(s.heads >= 1 && s.key_dim >= 1 && s.value_dim >= 1, op, ": q has shape ", shape_of(q1), " and v ",
                 shape_of(v1), ", expected [B, H, K] and [B, H, V] with H, K, V >= 1");
  check_shape(op, "k", k1, NamedShape<3>{{"B", "H", "K"}, {{s.batch, s.heads, s.key_dim}}}, " like q");
  check_shape(op, "v", v1, NamedShape<3>{{"B", "H", "V"}, {{s.batch, s.heads, s.value_dim}}});
  check_shape(op, "state", state, NamedShape<4>{{"B", "H", "K", "V"}, {{s.batch, s.heads, s.key_dim, s.value_dim}}});
  check_shape(op, "out", out, NamedShape<3>{{"B", "H", "V"}, {{s.batch, s.heads, s.value_dim}}});
  TOKENMIX_CHECK(!(options.g && options.g_gamma), op, ": pass g (per token) or g_gamma (per head), not both");
  if (options.g) check_shape(op, "g", *options.g, NamedShape<2>{{"B", "H"}, {{s.batch, s.heads}}});
  if (options.g_gamma) check_shape(op, "g_gamma", *options.g_gamma, NamedShape<1>{{"H"}, {{s.heads}}});
  const float* g = options.g ? options.g->data() : nullptr;
  const float* gg = options.g_gamma ? options.g_gamma->data() : nullptr;
  const Index ng = options.g ? options.g->size() : 0, ngg = options.g_gamma ? options.g_gamma->size() : 0;
  check_no_alias(op, out.data(), out.size(), {state.data(), q1.data(), k1.data(), v1.data(), g, gg},
                         {state.size(), q1.size(), k1.size(), v1.size(), ng, ngg});
  for (auto [in, n] : {std::pair<const float*, Index>{q1.data(), q1.size()}, {k1.data(), k1.size()}, {v1.data(), v1.size()}, {g, ng}, {gg, ngg}})
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(state.data(), state.size(), in, n), op, ": state must not overlap the inputs");
  simple_gla_step_kernel<Arch>(s, state.data(), q1.data(), k1.data(), v1.data(), g, gg,
                                       check_linear_scale(op, options.scale, s.key_dim), out.data(), nullptr);
}
}  // namespace detail

template <class Arch = simd::default_arch>
void simple_gla_step(TensorView<float, 4> state, const ConstTensorView<float, 3>& q1, const ConstTensorView<float, 3>& k1,
                     const ConstTensorView<float, 3>& v1, const LinearStepOptions& options, TensorView<float, 3> out) {
  detail::simple_gla_step_core<Arch>("simple_gla_step", state, q1, k1, v1, options, out);
}

template <class Arch = simd::default_arch>
Tensor<float, 3> simple_gla_step(TensorView<float, 4> state, const ConstTensorView<float, 3>& q1,
                                 const ConstTensorView<float, 3>& k1, const ConstTensorView<float, 3>& v1,
                                 const LinearStepOptions& options = {}) {
  Tensor<float, 3> out(q1.dimension(0), q1.dimension(1), v1.dimension(2));
  simple_gla_step<Arch>(state, q1, k1, v1, options, TensorView<float, 3>(out.data(), out.dimensions()));
  return out;
}

}  // namespace tokenmix::linear
