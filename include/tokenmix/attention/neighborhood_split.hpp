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
//   weights = neighborhood_attention_weights<R>(q, k, params, rpb)
//            -> [B, X.., H, S] = softmax over each row of neighborhood_qk's logits (slots past a
//               causal window 0): the attention maps MASS hands to A2SSM, without the logits pass
//
// softmax(qk) then av equals the fused neighborhood attention (tested against the oracle). The
// window rule and validation: attention/neighborhood_types.hpp. All three run the fused operator's
// kernel (attention/neighborhood_kernel.hpp: queries in the lanes, transposed key-row slabs kept per
// item) in its logits / probabilities / weighted_sum modes, so they share its tiling, border handling
// and threading: bitwise identical results for any thread count.

#include <array>
#include <cmath>
#include <optional>

#include "tokenmix/attention/neighborhood_kernel.hpp"
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

// Runs the kernel over every work item in the given output mode.
template <int R, class Arch>
void run_neighborhood_kernel(const NeighborhoodKernel<R, Arch>& kernel, const Eigen::ThreadPoolDevice* device) {
  tokenmix::detail::parallel_for(device, na_items(kernel.plan), [&](Index first, Index last) { kernel.run(first, last); });
}

template <int R, class T>
void check_same_grid(const char* op, const char* name, const T& t, const ConstTensorView<float, R + 3>& q) {
  for (int a = 0; a <= R; ++a)
    TOKENMIX_CHECK(t.dimension(a) == q.dimension(a), op, ": ", name, " has shape ", shape_of(t),
                   ", expected the batch and spatial extents of q ", shape_of(q));
}

}  // namespace detail

namespace detail {

// neighborhood_qk and neighborhood_attention_weights: validation, then the kernel in `mode`.
template <int R, class Arch>
void run_neighborhood_qk(const char* op, NaOutput mode, const ConstTensorView<float, R + 3>& q,
                         const ConstTensorView<float, R + 3>& k, const NeighborhoodParams<R>& params,
                         const std::optional<ConstTensorView<float, R + 1>>& rpb, TensorView<float, R + 3> out,
                         const Eigen::ThreadPoolDevice* device) {
  const Index B = q.dimension(0), H = q.dimension(R + 1), P = q.dimension(R + 2), Hkv = k.dimension(R + 1);
  check_same_grid<R>(op, "k", k, q);
  TOKENMIX_CHECK(H >= 1 && P >= 1 && Hkv >= 1 && H % Hkv == 0 && k.dimension(R + 2) == P, op, ": q has shape ",
                 shape_of(q), " and k ", shape_of(k), ", expected k [..., Hkv, P=", P,
                 "] with H a multiple of Hkv (H, P >= 1)");
  const NeighborhoodGrid<R> grid(q, params);
  check_neighborhood_params<R>(op, params, grid.extent);
  if (rpb) check_neighborhood_rpb<R>(op, *rpb, params, H);
  check_out_shape<R>(op, out, q, grid.slots);  // [B, X.., H, S]
  TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out.data(), out.size(), q.data(), q.size()) &&
                     !tokenmix::detail::ranges_overlap(out.data(), out.size(), k.data(), k.size()),
                 op, ": out must not overlap q or k");
  if (params.scale)
    TOKENMIX_CHECK(std::isfinite(*params.scale), op, ": scale is ", *params.scale, ", expected a finite number");
  if (B == 0) return;
  const float scale = params.scale ? *params.scale : 1.0f / std::sqrt(static_cast<float>(P));
  const Index threads = device ? device->numThreads() : 1;
  NaPlan<R> plan = na_make_plan<R, Arch>(B, H, Hkv, P, /*Pv=*/0, grid.extent, params, scale, threads);
  if (mode == NaOutput::logits) plan.q_scale = scale;  // natural units (the softmax works in log2 units)
  NeighborhoodKernel<R, Arch> kernel{plan, q.data(), k.data(), nullptr, rpb ? rpb->data() : nullptr, nullptr, nullptr};
  kernel.mode = mode, kernel.logits = out.data();
  run_neighborhood_kernel(kernel, device);
}

template <int R>
Index window_slots(const NeighborhoodParams<R>& params) {
  Index slots = 1;
  for (int a = 0; a < R; ++a) slots *= std::max<Index>(params.kernel_size[std::size_t(a)], 0);
  return slots;
}

}  // namespace detail

// View-based core: logits [B, X.., H, S] written into `out` (no allocation; buffers reused by the
// hybrid blocks). The allocating overload below is the NATTEN-style call.
template <int R, class Arch = simd::default_arch>
void neighborhood_qk(const ConstTensorView<float, R + 3>& q, const ConstTensorView<float, R + 3>& k,
                     const NeighborhoodParams<R>& params, const std::optional<ConstTensorView<float, R + 1>>& rpb,
                     TensorView<float, R + 3> logits, const Eigen::ThreadPoolDevice* device = nullptr) {
  detail::run_neighborhood_qk<R, Arch>("neighborhood_qk", detail::NaOutput::logits, q, k, params, rpb, logits, device);
}

template <int R, class Arch = simd::default_arch>
Tensor<float, R + 3> neighborhood_qk(const ConstTensorView<float, R + 3>& q, const ConstTensorView<float, R + 3>& k,
                                     const NeighborhoodParams<R>& params,
                                     const std::optional<ConstTensorView<float, R + 1>>& rpb = std::nullopt,
                                     const Eigen::ThreadPoolDevice* device = nullptr) {
  Tensor<float, R + 3> logits = detail::like_with_last<R + 3>(q, detail::window_slots(params));
  neighborhood_qk<R, Arch>(q, k, params, rpb, TensorView<float, R + 3>(logits.data(), logits.dimensions()), device);
  return logits;
}

// View-based core: weights [B, X.., H, S] = softmax of each row of neighborhood_qk's logits, computed
// in the kernel (no logits pass over memory); slots past a causal window 0.
template <int R, class Arch = simd::default_arch>
void neighborhood_attention_weights(const ConstTensorView<float, R + 3>& q, const ConstTensorView<float, R + 3>& k,
                                    const NeighborhoodParams<R>& params,
                                    const std::optional<ConstTensorView<float, R + 1>>& rpb,
                                    TensorView<float, R + 3> weights, const Eigen::ThreadPoolDevice* device = nullptr) {
  detail::run_neighborhood_qk<R, Arch>("neighborhood_attention_weights", detail::NaOutput::probabilities, q, k, params,
                                       rpb, weights, device);
}

template <int R, class Arch = simd::default_arch>
Tensor<float, R + 3> neighborhood_attention_weights(const ConstTensorView<float, R + 3>& q,
                                                    const ConstTensorView<float, R + 3>& k,
                                                    const NeighborhoodParams<R>& params,
                                                    const std::optional<ConstTensorView<float, R + 1>>& rpb = std::nullopt,
                                                    const Eigen::ThreadPoolDevice* device = nullptr) {
  Tensor<float, R + 3> weights = detail::like_with_last<R + 3>(q, detail::window_slots(params));
  neighborhood_attention_weights<R, Arch>(q, k, params, rpb,
                                          TensorView<float, R + 3>(weights.data(), weights.dimensions()), device);
  return weights;
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
  TOKENMIX_CHECK(H >= 1 && Hkv >= 1 && H % Hkv == 0 && Pv >= 1, op, ": weights has ", H, " heads and v ",
                 shape_of(v), ", expected v [..., Hkv, Pv] with H a multiple of Hkv (H, Pv >= 1)");
  detail::check_out_shape<R>(op, out, weights, Pv);  // [B, X.., H, Pv]
  TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out.data(), out.size(), v.data(), v.size()) &&
                     !tokenmix::detail::ranges_overlap(out.data(), out.size(), weights.data(), weights.size()),
                 op, ": out must not overlap weights or v");
  if (B == 0) return;
  const Index threads = device ? device->numThreads() : 1;
  const detail::NaPlan<R> plan =
      detail::na_make_plan<R, Arch>(B, H, Hkv, /*P=*/0, Pv, grid.extent, params, /*scale=*/1.0f, threads);
  detail::NeighborhoodKernel<R, Arch> kernel{plan, nullptr, nullptr, v.data(), nullptr, out.data(), nullptr};
  kernel.mode = detail::NaOutput::weighted_sum, kernel.weights = weights.data();
  detail::run_neighborhood_kernel(kernel, device);
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
