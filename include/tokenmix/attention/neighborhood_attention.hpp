#pragma once
// Fused neighborhood attention in R = 1, 2, 3 spatial dimensions, with NATTEN's semantics (>= 0.20
// window rule; <= 0.17's relative positional bias): each query attends to the K_0 × .. × K_{R-1}
// keys of its window (per axis: dilation groups by residue, windows shifted inward at the borders,
// never padded; causal windows end at the query), softmax in fp32, no materialised weights.
//
//   out = neighborhood_attention(q, k, v, params, rpb, &lse, device)
//     q [B, X.., H, P], k [B, X.., Hkv, P], v [B, X.., Hkv, Pv]   (heads-last, as NATTEN >= 0.20;
//       H a multiple of Hkv: GQA / MQA; Pv may differ from P)
//     params: NeighborhoodParams<R> (kernel_size, dilation, stride, causal per axis; scale,
//       default 1/sqrt(P)); kernel_size·dilation must fit each axis
//     rpb [H, 2K_0 - 1, .., 2K_{R-1} - 1] (optional; not with causal axes): added to the logits,
//       indexed as NATTEN's legacy na*d_qk ops (off-centre entries at the borders); entries of -inf
//       mask their slots, and a query whose every slot is masked gets NaN out and lse (a softmax
//       over no finite logit, as in NATTEN and PyTorch; the oracle agrees)
//     out [B, X.., H, Pv], lse [B, X.., H] (natural log of the softmax denominator, optional)
//
// NATTEN correspondence: natten.na1d / na2d / na3d(q, k, v, kernel_size, stride, dilation, is_causal,
// scale) with the same layout; NATTEN's `additional_keys` (cross-attention extras) are not supported.
// Equivalent to softmax(neighborhood_qk(..)) → neighborhood_av(..) (attention/neighborhood_split.hpp)
// and to ref::neighborhood_attention (the oracle); the kernel is described in neighborhood_kernel.hpp.

#include <array>
#include <optional>

#include "tokenmix/attention/neighborhood_kernel.hpp"
#include "tokenmix/attention/neighborhood_types.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/simd/arch.hpp"

namespace tokenmix::attention {

// View core: writes out [B, X.., H, Pv] and, if not null, lse [B, X.., H]. out must not overlap the
// inputs.
template <int R, class Arch = simd::default_arch>
void neighborhood_attention(const ConstTensorView<float, R + 3>& q, const ConstTensorView<float, R + 3>& k,
                            const ConstTensorView<float, R + 3>& v, const NeighborhoodParams<R>& params,
                            const std::optional<ConstTensorView<float, R + 1>>& rpb, TensorView<float, R + 3> out,
                            TensorView<float, R + 2>* lse, const Eigen::ThreadPoolDevice* device = nullptr) {
  static_assert(R >= 1 && R <= 3, "neighborhood_attention: R must be 1, 2 or 3");
  constexpr const char* op = "neighborhood_attention";
  const std::array<Index, R> extent = detail::check_neighborhood_qkv<R>(op, q, k, v);
  detail::check_neighborhood_params<R>(op, params, extent);
  const Index B = q.dimension(0), H = q.dimension(R + 1), P = q.dimension(R + 2);
  const Index Hkv = k.dimension(R + 1), Pv = v.dimension(R + 2);
  if (rpb) detail::check_neighborhood_rpb<R>(op, *rpb, params, H);
  bool out_ok = out.dimension(R + 1) == H && out.dimension(R + 2) == Pv;
  for (int a = 0; a <= R; ++a) out_ok = out_ok && out.dimension(a) == q.dimension(a);
  TOKENMIX_CHECK(out_ok, op, ": out has shape ", shape_of(out), ", expected [B, X.., H, Pv] = the extents of q ",
                 shape_of(q), " with Pv = ", Pv);
  if (lse) {
    bool lse_ok = true;
    for (int a = 0; a < R + 2; ++a) lse_ok = lse_ok && lse->dimension(a) == q.dimension(a);
    TOKENMIX_CHECK(lse_ok, op, ": lse has shape ", shape_of(*lse), ", expected [B, X.., H] from q ", shape_of(q));
  }
  for (const auto* in : {&q, &k, &v})
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out.data(), out.size(), in->data(), in->size()), op,
                   ": out must not overlap q, k or v");
  if (params.scale)
    TOKENMIX_CHECK(std::isfinite(*params.scale), op, ": scale is ", *params.scale, ", expected a finite number");
  if (B == 0) return;
  const float scale = params.scale ? *params.scale : 1.0f / std::sqrt(static_cast<float>(P));
  const Index threads = device ? device->numThreads() : 1;
  const detail::NaPlan<R> plan = detail::na_make_plan<R, Arch>(B, H, Hkv, P, Pv, extent, params, scale, threads);
  const detail::NeighborhoodKernel<R, Arch> kernel{plan,       q.data(), k.data(), v.data(),
                                                   rpb ? rpb->data() : nullptr, out.data(),
                                                   lse ? lse->data() : nullptr};
  tokenmix::detail::parallel_for(device, detail::na_items(plan), [&](Index first, Index last) { kernel.run(first, last); });
}

// Allocating overload: returns out; fills *lse when given.
template <int R, class Arch = simd::default_arch>
Tensor<float, R + 3> neighborhood_attention(const ConstTensorView<float, R + 3>& q, const ConstTensorView<float, R + 3>& k,
                                            const ConstTensorView<float, R + 3>& v, const NeighborhoodParams<R>& params,
                                            const std::optional<ConstTensorView<float, R + 1>>& rpb = std::nullopt,
                                            Tensor<float, R + 2>* lse = nullptr,
                                            const Eigen::ThreadPoolDevice* device = nullptr) {
  detail::check_neighborhood_qkv<R>("neighborhood_attention", q, k, v);
  std::array<Index, R + 3> dims;
  for (int a = 0; a < R + 3; ++a) dims[std::size_t(a)] = q.dimension(a);
  dims[std::size_t(R + 2)] = v.dimension(R + 2);
  Tensor<float, R + 3> out(dims);
  std::optional<TensorView<float, R + 2>> lse_view;
  if (lse) {
    std::array<Index, R + 2> ldims;
    for (int a = 0; a < R + 2; ++a) ldims[std::size_t(a)] = q.dimension(a);
    *lse = Tensor<float, R + 2>(ldims);
    lse_view.emplace(lse->data(), lse->dimensions());
  }
  neighborhood_attention<R, Arch>(q, k, v, params, rpb, TensorView<float, R + 3>(out.data(), out.dimensions()),
                                  lse_view ? &*lse_view : nullptr, device);
  return out;
}

}  // namespace tokenmix::attention
