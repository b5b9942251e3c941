#pragma once
// attention::attention / attention::block_sparse_attention: the softmax attention engine.
//
//   auto r = tokenmix::attention::attention(q, k, v, options);            // r.out [B, Lq, H, Pv], r.lse [B, H, Lq]
//   auto s = tokenmix::attention::block_sparse_attention(q, k, v, layout, options);
//
// out[b, r, h] = Σ_j softmax_j(s_ij)·v[b, j, h / (H / Hkv)] over the allowed keys j of query
// i = q_offset + r (arguments, positions, logit transforms and the empty-row rule:
// attention_types.hpp; layouts and their generators: block_layout.hpp; the kernel:
// attention_kernel.hpp; the oracle: reference/attention.hpp). Dense attention is the engine with
// every key block (up to the diagonal when causal); a layout lists the blocks to compute, so the
// cost follows its density. Decode against a KV cache is a call with Lq = 1 (q_offset defaults to
// Lk - 1: the new token sees the whole cache).

#include <vector>

#include <xsimd/xsimd.hpp>

#include "tokenmix/attention/attention_kernel.hpp"
#include "tokenmix/attention/attention_types.hpp"
#include "tokenmix/attention/block_layout.hpp"
#include "tokenmix/core/threading.hpp"

namespace tokenmix::attention {

// Query and key tile of dense attention: 64 × 64 keeps Qt, S and Ot (16 KiB each at P = 64) and
// the key block's K and V rows within L1 + L2 on this machine.
inline constexpr Index kDenseBlock = 64;

namespace detail {

inline void check_layout_fits(const char* op, const BlockLayout& L, const AttentionShape& s) {
  TOKENMIX_CHECK(L.q_block > 0 && L.k_block > 0 && !L.row_start.empty(), op, ": the layout is empty (build it with a generator)");
  TOKENMIX_CHECK(L.q_length >= s.q_offset + s.q_len && L.k_length >= s.k_len, op, ": the layout covers ",
                 L.q_length, " query and ", L.k_length, " key positions, the call needs queries [", s.q_offset, ", ",
                 s.q_offset + s.q_len, ") and ", s.k_len, " keys");
  TOKENMIX_CHECK(L.heads == 1 || L.heads == s.heads, op, ": the layout has ", L.heads, " head patterns, expected 1 or H=",
                 s.heads);
}

template <class Arch>
void run_attention(const AttentionShape& s, const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                   const ConstTensorView<float, 4>& v, const AttentionOptions& o, const BlockLayout* layout,
                   TensorView<float, 4>& out, TensorView<float, 3>* lse) {
  using Kernel = AttentionKernel<Arch>;
  AttentionProblem p{s.batch, s.q_len, s.k_len, s.heads, s.kv_heads, s.dim, s.v_dim,
                           q.data(), k.data(), v.data(), s.scale, o.causal, s.q_offset, o.softcap,
                           o.key_bias ? o.key_bias->data() : nullptr,
                           o.row_scale ? o.row_scale->data() : nullptr, s.bias_heads, layout,
                           layout ? layout->q_block : kDenseBlock, layout ? layout->k_block : kDenseBlock,
                           out.data(), lse ? lse->data() : nullptr};
  if (s.q_len == 1 && (!layout || layout->heads == 1)) {
    // Decode: heads walk the keys together (sequential reads of K and V); as many head chunks per
    // batch element as it takes to give every thread an item.
    const Index threads = o.device ? o.device->numThreads() : 1;
    const Index chunks = std::min(s.heads, std::max<Index>(1, (threads + s.batch - 1) / s.batch));
    p.decode_heads = (s.heads + chunks - 1) / chunks;
  }
  tokenmix::detail::parallel_for(o.device, Kernel::num_items(p), [&](Index first, Index last) {
    std::vector<float, xsimd::aligned_allocator<float, 64>> scratch(static_cast<std::size_t>(Kernel::scratch_floats(p)));
    Kernel::run_items(p, first, last, scratch.data());
  });
}

inline void check_no_alias(const char* op, const TensorView<float, 4>& out, const ConstTensorView<float, 4>& q,
                           const ConstTensorView<float, 4>& k, const ConstTensorView<float, 4>& v) {
  for (const auto* in : {&q, &k, &v})
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out.data(), out.size(), in->data(), in->size()), op,
                   ": out must not overlap q, k or v");
}

}  // namespace detail

// View-based cores: write out [B, Lq, H, Pv] and, if not null, lse [B, H, Lq].
template <class Arch = simd::default_arch>
void attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
               const ConstTensorView<float, 4>& v, const AttentionOptions& options, TensorView<float, 4> out,
               TensorView<float, 3>* lse) {
  constexpr const char* op = "attention";
  const detail::AttentionShape s = detail::check_attention_args(op, q, k, v, options);
  detail::check_attention_outputs(op, s, out, lse);
  detail::check_no_alias(op, out, q, k, v);
  detail::run_attention<Arch>(s, q, k, v, options, nullptr, out, lse);
}

template <class Arch = simd::default_arch>
void block_sparse_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                            const ConstTensorView<float, 4>& v, const BlockLayout& layout,
                            const AttentionOptions& options, TensorView<float, 4> out, TensorView<float, 3>* lse) {
  constexpr const char* op = "block_sparse_attention";
  const detail::AttentionShape s = detail::check_attention_args(op, q, k, v, options);
  detail::check_attention_outputs(op, s, out, lse);
  detail::check_no_alias(op, out, q, k, v);
  detail::check_layout_fits(op, layout, s);
  detail::run_attention<Arch>(s, q, k, v, options, &layout, out, lse);
}

// Convenience overloads: allocate and return out and lse.
template <class Arch = simd::default_arch>
AttentionResult attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                          const ConstTensorView<float, 4>& v, const AttentionOptions& options = {}) {
  detail::check_attention_args("attention", q, k, v, options);
  AttentionResult r{Tensor<float, 4>(q.dimension(0), q.dimension(1), q.dimension(2), v.dimension(3)),
                    Tensor<float, 3>(q.dimension(0), q.dimension(2), q.dimension(1))};
  TensorView<float, 3> lse(r.lse.data(), r.lse.dimensions());
  attention<Arch>(q, k, v, options, TensorView<float, 4>(r.out.data(), r.out.dimensions()), &lse);
  return r;
}

template <class Arch = simd::default_arch>
AttentionResult block_sparse_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                                       const ConstTensorView<float, 4>& v, const BlockLayout& layout,
                                       const AttentionOptions& options = {}) {
  detail::check_attention_args("block_sparse_attention", q, k, v, options);
  AttentionResult r{Tensor<float, 4>(q.dimension(0), q.dimension(1), q.dimension(2), v.dimension(3)),
                    Tensor<float, 3>(q.dimension(0), q.dimension(2), q.dimension(1))};
  TensorView<float, 3> lse(r.lse.data(), r.lse.dimensions());
  block_sparse_attention<Arch>(q, k, v, layout, options, TensorView<float, 4>(r.out.data(), r.out.dimensions()), &lse);
  return r;
}

}  // namespace tokenmix::attention
