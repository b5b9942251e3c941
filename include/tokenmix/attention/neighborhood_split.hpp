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
// window rule and validation: attention/neighborhood_types.hpp. Vectorised over P / Pv per slot;
// threads over (batch, query token).

#include <array>
#include <limits>
#include <optional>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "tokenmix/attention/neighborhood_types.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/simd/arch.hpp"

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

template <int R, class T>
void check_same_grid(const char* op, const char* name, const T& t, const ConstTensorView<float, R + 3>& q) {
  for (int a = 0; a <= R; ++a)
    TOKENMIX_CHECK(t.dimension(a) == q.dimension(a), op, ": ", name, " has shape ", shape_of(t),
                   ", expected the batch and spatial extents of q ", shape_of(q));
}

}  // namespace detail

template <int R, class Arch = simd::default_arch>
Tensor<float, R + 3> neighborhood_qk(const ConstTensorView<float, R + 3>& q, const ConstTensorView<float, R + 3>& k,
                                     const NeighborhoodParams<R>& params,
                                     const std::optional<ConstTensorView<float, R + 1>>& rpb = std::nullopt,
                                     const Eigen::ThreadPoolDevice* device = nullptr) {
  constexpr const char* op = "neighborhood_qk";
  const Index B = q.dimension(0), H = q.dimension(R + 1), P = q.dimension(R + 2), Hkv = k.dimension(R + 1);
  detail::check_same_grid<R>(op, "k", k, q);
  TOKENMIX_CHECK(Hkv >= 1 && H % Hkv == 0 && k.dimension(R + 2) == P, op, ": q has shape ", shape_of(q), " and k ",
                 shape_of(k), ", expected k [..., Hkv, P=", P, "] with H a multiple of Hkv");
  const detail::NeighborhoodGrid<R> grid(q, params);
  detail::check_neighborhood_params<R>(op, params, grid.extent);
  if (rpb) detail::check_neighborhood_rpb<R>(op, *rpb, params, H);
  Tensor<float, R + 3> logits = detail::like_with_last<R + 3>(q, grid.slots);  // [B, X.., H, S]
  const float scale = params.scale ? *params.scale : 1.0f / std::sqrt(static_cast<float>(P));
  const Index rpb_table = rpb ? rpb->size() / H : 0;
  using V = simd::vfloat<Arch>;
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  tokenmix::detail::parallel_for(device, B * grid.tokens, [&](Index first, Index last) {
    alignas(64) float pad[2 * W];
    for (Index bt = first; bt < last; ++bt) {
      const Index b = bt / grid.tokens, t = bt % grid.tokens;
      float* row = logits.data() + bt * H * grid.slots;  // [H, S]
      std::fill(row, row + H * grid.slots, -std::numeric_limits<float>::infinity());
      grid.for_each_slot(t, params, [&](Index slot, Index key, Index rpb_offset) {
        for (Index h = 0; h < H; ++h) {
          const float* qh = q.data() + (bt * H + h) * P;
          const float* kh = k.data() + ((b * grid.tokens + key) * Hkv + h / (H / Hkv)) * P;
          V acc(0.0f);
          for (Index d = 0; d < P; d += W) {
            const Index n = std::min(W, P - d);
            acc = simd::fmadd<Arch>(simd::load_upto<Arch>(qh + d, n, pad), simd::load_upto<Arch>(kh + d, n, pad + W), acc);
          }
          float x = scale * simd::reduce_add<Arch>(acc);
          if (rpb) x += rpb->data()[h * rpb_table + rpb_offset];
          row[h * grid.slots + slot] = x;
        }
      });
    }
  });
  return logits;
}

template <int R, class Arch = simd::default_arch>
Tensor<float, R + 3> neighborhood_av(const ConstTensorView<float, R + 3>& weights, const ConstTensorView<float, R + 3>& v,
                                     const NeighborhoodParams<R>& params,
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
  Tensor<float, R + 3> out = detail::like_with_last<R + 3>(weights, Pv);  // [B, X.., H, Pv]
  using V = simd::vfloat<Arch>;
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  tokenmix::detail::parallel_for(device, B * grid.tokens, [&](Index first, Index last) {
    alignas(64) float pad[2 * W];
    for (Index bt = first; bt < last; ++bt) {
      const Index b = bt / grid.tokens, t = bt % grid.tokens;
      float* o = out.data() + bt * H * Pv;  // [H, Pv]
      std::fill(o, o + H * Pv, 0.0f);
      grid.for_each_slot(t, params, [&](Index slot, Index key, Index) {
        for (Index h = 0; h < H; ++h) {
          const V w(weights.data()[(bt * H + h) * grid.slots + slot]);
          const float* vj = v.data() + ((b * grid.tokens + key) * Hkv + h / (H / Hkv)) * Pv;
          float* oh = o + h * Pv;
          for (Index d = 0; d < Pv; d += W) {
            const Index n = std::min(W, Pv - d);
            simd::store_upto<Arch>(oh + d, simd::fmadd<Arch>(w, simd::load_upto<Arch>(vj + d, n, pad),
                                                             simd::load_upto<Arch>(oh + d, n, pad + W)),
                                   n, pad);
          }
        }
      });
    }
  });
  return out;
}

}  // namespace tokenmix::attention
