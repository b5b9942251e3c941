#pragma once
// The split neighborhood-attention operators (NATTEN <= 0.17's na{1,2,3}d_qk / na{1,2,3}d_av, in
// the heads-last layout of NATTEN >= 0.20), which A2SSM needs to aggregate hidden states with
// attention maps:
//
//   logits = neighborhood_qk<R>(q, k, params, rpb)   q [B, X.., H, P], k [B, X.., Hkv, P]
//            -> [B, X.., H, S], S = ∏ K_a window slots; slot (n_0, .., n_{R-1}) = Σ_a n_a·∏_{b>a} K_b,
//               n_a the a-th axis key in ascending position; logit = scale·<q, k> + rpb (optional);
//               slots past a causal axis' window hold -inf (as NATTEN's legacy ops)
//   out = neighborhood_av<R>(weights, v, params)     weights [B, X.., H, S], v [B, X.., Hkv, Pv]
//            -> [B, X.., H, Pv] = Σ_slots weight·v_key (slots past a causal window are skipped)
//
// softmax(qk) then av equals the fused neighborhood attention (tested against the oracle). The
// window rule and validation: attention/neighborhood_types.hpp. Each query token's slots are listed
// once for all heads; qk runs W slots at a time (one partial-sum vector per slot, reduced together by
// simd::lane_sums), av keeps up to 4 vectors of output channels in registers across the slots
// (several partial sums of each when they are 1 or 2).
// Threads over (batch, query token); bitwise identical results for any thread count.

#include <array>
#include <limits>
#include <optional>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "tokenmix/attention/neighborhood_types.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/simd/arch.hpp"
#include "tokenmix/simd/transpose.hpp"

namespace tokenmix::attention {

namespace detail {

// An uninitialised tensor with t's extents but the last, which is `last`.
template <int N, class T>
Tensor<float, N> like_with_last(const T& t, Index last) {
  std::array<Index, N> dims;
  for (int a = 0; a < N - 1; ++a) dims[std::size_t(a)] = t.dimension(a);
  dims[std::size_t(N - 1)] = last;
  return Tensor<float, N>(dims);
}

// out must have t's batch, spatial and head extents and `last` as its last extent.
template <int R, class T>
void check_out_shape(const char* op, const TensorView<float, R + 3>& out, const T& t, Index last) {
  bool same = out.dimension(R + 2) == last;
  for (int a = 0; a <= R + 1; ++a) same = same && out.dimension(a) == t.dimension(a);
  std::array<Index, R + 3> want;
  for (int a = 0; a <= R + 1; ++a) want[std::size_t(a)] = t.dimension(a);
  want[std::size_t(R + 2)] = last;
  TOKENMIX_CHECK(same, op, ": out has shape ", shape_of(out), ", expected ", Shape<R + 3>{want});
}

// The valid window slots of one query token, collected once and reused by every head: the slot
// index (position in the logits row), the key token and the rpb offset.
struct SlotList {
  std::vector<Index> slot, key, rpb;
  Index count = 0;
  explicit SlotList(Index capacity)
      : slot(std::size_t(capacity)), key(std::size_t(capacity)), rpb(std::size_t(capacity)) {}
  template <int R>
  void collect(const NeighborhoodGrid<R>& grid, Index t, const NeighborhoodParams<R>& params) {
    count = 0;
    grid.for_each_line(t, params, [&](Index s, Index k, Index r, Index n, Index step) {
      for (Index i = 0; i < n; ++i, ++count)
        slot[std::size_t(count)] = s + i, key[std::size_t(count)] = k + i * step, rpb[std::size_t(count)] = r + i;
    });
  }
};

// acc[s] = the W-lane partial sums of <q, k of key s> for s < n (zero for s >= n): q [NP·W] in
// registers, key s at k0 + keys[s]·key_stride.
template <class Arch, int NP>
TOKENMIX_ALWAYS_INLINE void dot_block(const float* q, const float* k0, const Index* keys, Index key_stride, Index n,
                                      simd::vfloat<Arch>* acc) noexcept {
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  simd::vfloat<Arch> qv[NP];
  for (int u = 0; u < NP; ++u) qv[u] = simd::load<Arch>(q + u * W);
  for (Index s = 0; s < n; ++s) {
    const float* k = k0 + keys[s] * key_stride;
    simd::vfloat<Arch> a = qv[0] * simd::load<Arch>(k);
    for (int u = 1; u < NP; ++u) a = simd::fmadd<Arch>(qv[u], simd::load<Arch>(k + u * W), a);
    acc[s] = a;
  }
  for (Index s = n; s < W; ++s) acc[s] = simd::vfloat<Arch>(0.0f);
}

// acc[p·NV + u] += w[i]·v[i·step + u·W .. + W) for i < n, u < NV (full vectors), p = i mod U: U
// partial sums per output vector (U·NV <= 4), so that consecutive slots' FMAs do not wait on each
// other. With one chain per vector, NV = 1 or 2 (A2SSM's dh·N = 16 states per head, P = 32) waited
// on the FMA latency at every slot.
template <class Arch, int NV, int U>
TOKENMIX_ALWAYS_INLINE void accumulate_run(const float* w, const float* v, Index n, Index step,
                                           simd::vfloat<Arch>* acc) noexcept {
  static_assert(NV * U <= 4, "acc holds 4 vectors");
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  Index i = 0;
  for (; i + U <= n; i += U, v += U * step)
    for (int p = 0; p < U; ++p) {
      const simd::vfloat<Arch> wi(w[i + p]);
      for (int u = 0; u < NV; ++u)
        acc[p * NV + u] = simd::fmadd<Arch>(wi, simd::load<Arch>(v + p * step + u * W), acc[p * NV + u]);
    }
  for (int p = 0; i < n; ++i, ++p, v += step) {  // the rest, one partial sum each
    const simd::vfloat<Arch> wi(w[i]);
    for (int u = 0; u < NV; ++u) acc[p * NV + u] = simd::fmadd<Arch>(wi, simd::load<Arch>(v + u * W), acc[p * NV + u]);
  }
}

// The partial sums per output vector that accumulate_run keeps for nv vectors.
constexpr Index av_partials(Index nv) { return nv == 1 ? 4 : nv == 2 ? 2 : 1; }

template <int R, class T>
void check_same_grid(const char* op, const char* name, const T& t, const ConstTensorView<float, R + 3>& q) {
  for (int a = 0; a <= R; ++a)
    TOKENMIX_CHECK(t.dimension(a) == q.dimension(a), op, ": ", name, " has shape ", shape_of(t),
                   ", expected the batch and spatial extents of q ", shape_of(q));
}

}  // namespace detail

// View-based core: logits [B, X.., H, S] written into `out` (no allocation; buffers reused by the
// hybrid blocks). The allocating overload below is the NATTEN-style call.
template <int R, class Arch = simd::default_arch>
void neighborhood_qk(const ConstTensorView<float, R + 3>& q, const ConstTensorView<float, R + 3>& k,
                     const NeighborhoodParams<R>& params, const std::optional<ConstTensorView<float, R + 1>>& rpb,
                     TensorView<float, R + 3> logits, const Eigen::ThreadPoolDevice* device = nullptr) {
  constexpr const char* op = "neighborhood_qk";
  const Index B = q.dimension(0), H = q.dimension(R + 1), P = q.dimension(R + 2), Hkv = k.dimension(R + 1);
  detail::check_same_grid<R>(op, "k", k, q);
  TOKENMIX_CHECK(Hkv >= 1 && H % Hkv == 0 && k.dimension(R + 2) == P, op, ": q has shape ", shape_of(q), " and k ",
                 shape_of(k), ", expected k [..., Hkv, P=", P, "] with H a multiple of Hkv");
  const detail::NeighborhoodGrid<R> grid(q, params);
  detail::check_neighborhood_params<R>(op, params, grid.extent);
  if (rpb) detail::check_neighborhood_rpb<R>(op, *rpb, params, H);
  detail::check_out_shape<R>(op, logits, q, grid.slots);  // [B, X.., H, S]
  const float scale = params.scale ? *params.scale : 1.0f / std::sqrt(static_cast<float>(P));
  const Index rpb_table = rpb ? rpb->size() / H : 0;
  using V = simd::vfloat<Arch>;
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  tokenmix::detail::parallel_for(device, B * grid.tokens, [&](Index first, Index last) {
    alignas(64) float pad[2 * W], sums[W];
    detail::SlotList slots(grid.slots);
    for (Index bt = first; bt < last; ++bt) {
      const Index b = bt / grid.tokens, t = bt % grid.tokens;
      float* row = logits.data() + bt * H * grid.slots;  // [H, S]
      slots.collect(grid, t, params);
      // Every slot valid (no causal cut): slot i is entry i (slots come in ascending order), so the
      // logits go out as vectors; otherwise per slot, over a row of -inf.
      const bool every_slot = slots.count == grid.slots;
      if (!every_slot) std::fill(row, row + H * grid.slots, -std::numeric_limits<float>::infinity());
      for (Index h = 0; h < H; ++h) {
        const float* qh = q.data() + (bt * H + h) * P;
        const float* k0 = k.data() + (b * grid.tokens * Hkv + h / (H / Hkv)) * P;  // key token j: k0 + j·Hkv·P
        // W slots at a time: one partial-sum vector per slot, then their lane sums in one vector
        // (a transposing reduction instead of one horizontal sum per slot).
        for (Index i0 = 0; i0 < slots.count; i0 += W) {
          const Index n = std::min(W, slots.count - i0);
          V acc[W];
          const Index* keys = slots.key.data() + i0;
          const Index key_stride = Hkv * P;
          if (P % W == 0 && P <= 4 * W) {  // full vectors: q held in registers
            switch (P / W) {
              case 1: detail::dot_block<Arch, 1>(qh, k0, keys, key_stride, n, acc); break;
              case 2: detail::dot_block<Arch, 2>(qh, k0, keys, key_stride, n, acc); break;
              case 3: detail::dot_block<Arch, 3>(qh, k0, keys, key_stride, n, acc); break;
              default: detail::dot_block<Arch, 4>(qh, k0, keys, key_stride, n, acc); break;
            }
          } else {
            for (Index s = 0; s < W; ++s) acc[s] = V(0.0f);
            for (Index s = 0; s < n; ++s) {
              const float* kj = k0 + keys[s] * key_stride;
              for (Index d = 0; d < P; d += W) {
                const Index m = std::min(W, P - d);
                acc[s] = simd::fmadd<Arch>(simd::load_upto<Arch>(qh + d, m, pad), simd::load_upto<Arch>(kj + d, m, pad + W), acc[s]);
              }
            }
          }
          const V logit = V(scale) * simd::lane_sums<Arch>(acc);
          const Index* slot = slots.slot.data() + i0;
          const Index* rpb_at = slots.rpb.data() + i0;
          float* dst = row + h * grid.slots;
          const float* table = rpb ? rpb->data() + h * rpb_table : nullptr;
          if (every_slot) {
            V bias(0.0f);
            if (table) {
              alignas(64) float b[W] = {};
              for (Index s = 0; s < n; ++s) b[s] = table[rpb_at[s]];
              bias = simd::load<Arch>(b);
            }
            simd::store_upto<Arch>(dst + i0, logit + bias, n, pad);
            continue;
          }
          simd::store<Arch>(sums, logit);
          for (Index s = 0; s < n; ++s) dst[slot[s]] = sums[s] + (table ? table[rpb_at[s]] : 0.0f);
        }
      }
    }
  });
}

template <int R, class Arch = simd::default_arch>
Tensor<float, R + 3> neighborhood_qk(const ConstTensorView<float, R + 3>& q, const ConstTensorView<float, R + 3>& k,
                                     const NeighborhoodParams<R>& params,
                                     const std::optional<ConstTensorView<float, R + 1>>& rpb = std::nullopt,
                                     const Eigen::ThreadPoolDevice* device = nullptr) {
  Index slots = 1;
  for (int a = 0; a < R; ++a) slots *= std::max<Index>(params.kernel_size[std::size_t(a)], 0);
  Tensor<float, R + 3> logits = detail::like_with_last<R + 3>(q, slots);
  neighborhood_qk<R, Arch>(q, k, params, rpb, TensorView<float, R + 3>(logits.data(), logits.dimensions()), device);
  return logits;
}

// View-based core: out [B, X.., H, Pv] (no allocation).
template <int R, class Arch = simd::default_arch>
void neighborhood_av(const ConstTensorView<float, R + 3>& weights, const ConstTensorView<float, R + 3>& v,
                     const NeighborhoodParams<R>& params, TensorView<float, R + 3> out,
                     const Eigen::ThreadPoolDevice* device = nullptr) {
  constexpr const char* op = "neighborhood_av";
  const Index B = weights.dimension(0), H = weights.dimension(R + 1), Hkv = v.dimension(R + 1), Pv = v.dimension(R + 2);
  detail::check_same_grid<R>(op, "v", v, weights);
  const detail::NeighborhoodGrid<R> grid(weights, params);
  detail::check_neighborhood_params<R>(op, params, grid.extent);
  TOKENMIX_CHECK(weights.dimension(R + 2) == grid.slots, op, ": weights has shape ", shape_of(weights),
                 ", expected [B, X.., H, S=", grid.slots, "] (one weight per window slot)");
  TOKENMIX_CHECK(Hkv >= 1 && H % Hkv == 0 && Pv >= 1, op, ": weights has ", H, " heads and v ", shape_of(v),
                 ", expected v [..., Hkv, Pv] with H a multiple of Hkv");
  detail::check_out_shape<R>(op, out, weights, Pv);  // [B, X.., H, Pv]
  TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out.data(), out.size(), v.data(), v.size()) &&
                     !tokenmix::detail::ranges_overlap(out.data(), out.size(), weights.data(), weights.size()),
                 op, ": out must not overlap weights or v");
  using V = simd::vfloat<Arch>;
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  constexpr Index NV = 4;  // output vectors kept in registers across the slots
  tokenmix::detail::parallel_for(device, B * grid.tokens, [&](Index first, Index last) {
    alignas(64) float pad[2 * W];
    for (Index bt = first; bt < last; ++bt) {
      const Index b = bt / grid.tokens, t = bt % grid.tokens;
      for (Index h = 0; h < H; ++h) {
        const float* wh = weights.data() + (bt * H + h) * grid.slots;
        const float* v0 = v.data() + (b * grid.tokens * Hkv + h / (H / Hkv)) * Pv;  // key token j: v0 + j·Hkv·Pv
        float* oh = out.data() + (bt * H + h) * Pv;
        // NV·W output channels at a time, accumulated in registers over every slot, walking the
        // window's runs along the last axis with pointer steps.
        for (Index d0 = 0; d0 < Pv; d0 += NV * W) {
          const Index nv = std::min(NV, (Pv - d0 + W - 1) / W), tail = Pv - d0 - (nv - 1) * W;
          V acc[NV] = {V(0.0f), V(0.0f), V(0.0f), V(0.0f)};
          grid.for_each_line(t, params, [&](Index slot, Index key, Index, Index n, Index key_step) {
            const float* w = wh + slot;
            const float* vj = v0 + key * Hkv * Pv + d0;
            const Index step = key_step * Hkv * Pv;
            if (tail == W) {  // full vectors: the count is a compile-time constant (registers, no loop)
              switch (nv) {
                case 1: return detail::accumulate_run<Arch, 1, detail::av_partials(1)>(w, vj, n, step, acc);
                case 2: return detail::accumulate_run<Arch, 2, detail::av_partials(2)>(w, vj, n, step, acc);
                case 3: return detail::accumulate_run<Arch, 3, detail::av_partials(3)>(w, vj, n, step, acc);
                default: return detail::accumulate_run<Arch, 4, detail::av_partials(4)>(w, vj, n, step, acc);
              }
            }
            for (Index i = 0; i < n; ++i, vj += step) {
              const V wi(w[i]);
              for (Index u = 0; u + 1 < nv; ++u) acc[u] = simd::fmadd<Arch>(wi, simd::load<Arch>(vj + u * W), acc[u]);
              acc[nv - 1] = simd::fmadd<Arch>(wi, simd::load_upto<Arch>(vj + (nv - 1) * W, tail, pad), acc[nv - 1]);
            }
          });
          if (tail == W)  // the partial sums of accumulate_run, in a fixed order
            for (Index p = 1; p < detail::av_partials(nv); ++p)
              for (Index u = 0; u < nv; ++u) acc[u] += acc[p * nv + u];
          for (Index u = 0; u + 1 < nv; ++u) simd::store<Arch>(oh + d0 + u * W, acc[u]);
          simd::store_upto<Arch>(oh + d0 + (nv - 1) * W, acc[nv - 1], tail, pad);
        }
      }
    }
  });
}

template <int R, class Arch = simd::default_arch>
Tensor<float, R + 3> neighborhood_av(const ConstTensorView<float, R + 3>& weights, const ConstTensorView<float, R + 3>& v,
                                     const NeighborhoodParams<R>& params,
                                     const Eigen::ThreadPoolDevice* device = nullptr) {
  Tensor<float, R + 3> out = detail::like_with_last<R + 3>(weights, std::max<Index>(v.dimension(R + 2), 0));
  neighborhood_av<R, Arch>(weights, v, params, TensorView<float, R + 3>(out.data(), out.dimensions()), device);
  return out;
}

}  // namespace tokenmix::attention
