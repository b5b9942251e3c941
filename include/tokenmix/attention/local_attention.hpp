#pragma once
// attention::local_attention: sliding-window attention over a sequence (causal: keys i-W..i;
// bidirectional: i-W..i+W, cut at the ends), softmax or SeqBoat's relu², an optional relative-position
// bias looked up by token positions (e.g. the original positions of a compressed sequence), any
// number of heads, Pv != P. The local attention of SeqBoat's GAU (hybrid SeqBoat) and of any
// sliding-window layer.
//
//   attention::LocalAttentionOptions o;
//   o.window = 128, o.causal = true;                       // softmax, scale 1/√P
//   Tensor<float, 4> out = attention::local_attention(q, k, v, o);   // q, k [B, L, H, P], v [B, L, H, Pv]
//   // decode: q [B, 1, H, P] against the last keys k, v [B, n, H, .] (the query is token n - 1)
//
// Semantics, shapes and the bias rule: attention/local_attention_types.hpp; oracle:
// reference/local_attention.hpp; kernel: attention/local_attention_kernel.hpp. Cost O(L·W·(P + Pv)):
// linear in L for a fixed window. NaN in q, k or v reaches the outputs whose windows contain it.

#include <vector>

#include "tokenmix/attention/local_attention_kernel.hpp"
#include "tokenmix/attention/local_attention_types.hpp"
#include "tokenmix/core/threading.hpp"

namespace tokenmix::attention {

// View-based core: writes out [B, L, H, Pv]; out must not overlap q, k or v.
template <class Arch = simd::default_arch>
void local_attention(const ConstTensorView<float, 4>& q,  // [B, Lq, H, P] (the last Lq tokens)
                     const ConstTensorView<float, 4>& k,  // [B, L, H, P]
                     const ConstTensorView<float, 4>& v,  // [B, L, H, Pv]
                     const LocalAttentionOptions& options,
                     TensorView<float, 4> out) {          // [B, Lq, H, Pv]
  const detail::LocalAttentionShape s = detail::check_local_attention_args("local_attention", q, k, v, options, &out);
  const detail::LocalAttentionProblem problem{s.batch, s.length, s.q_len, s.heads, s.dim, s.v_dim, s.window, s.max_positions,
                                              options.causal, options.kind == LocalAttentionKind::relu_squared,
                                              s.scale, q.data(), k.data(), v.data(),
                                              options.positions ? options.positions->data() : nullptr,
                                              options.rel_pos_bias ? options.rel_pos_bias->data() : nullptr,
                                              out.data()};
  using Kernel = detail::LocalAttentionKernel<Arch>;
  tokenmix::detail::parallel_for(options.device, Kernel::num_items(problem), [&](Index first, Index last) {
    std::vector<float, xsimd::aligned_allocator<float, 64>> scratch(
        static_cast<std::size_t>(Kernel::scratch_floats(problem)));
    Kernel::run_items(problem, first, last, scratch.data());
  });
}

// Convenience overload: allocates out [B, Lq, H, Pv].
template <class Arch = simd::default_arch>
Tensor<float, 4> local_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                                 const ConstTensorView<float, 4>& v, const LocalAttentionOptions& options) {
  detail::check_local_attention_args("local_attention", q, k, v, options, nullptr);  // before allocating
  Tensor<float, 4> out(q.dimension(0), q.dimension(1), q.dimension(2), v.dimension(3));
  attention::local_attention<Arch>(q, k, v, options, TensorView<float, 4>(out.data(), out.dimensions()));
  return out;
}

}  // namespace tokenmix::attention
