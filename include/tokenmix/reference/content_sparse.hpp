#pragma once
// Oracles of the content-dependent sparse attentions (attention/content_sparse.hpp): each builds
// its token mask (and bias) straight from the definition, with sorts instead of heaps and no
// layouts, then runs ref::masked_attention (dense softmax in double) per batch element.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "tokenmix/attention/attention_types.hpp"
#include "tokenmix/attention/content_sparse_types.hpp"
#include "tokenmix/reference/attention.hpp"

namespace tokenmix::ref {

namespace detail {

// Runs attend(q_b, k_b, v_b, b) -> AttentionResult per batch element and stacks the results.
template <class Attend>
attention::AttentionResult per_batch(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                                     const ConstTensorView<float, 4>& v, Attend&& attend) {
  const Index B = q.dimension(0), Lq = q.dimension(1), H = q.dimension(2), Pv = v.dimension(3);
  attention::AttentionResult r{Tensor<float, 4>(B, Lq, H, Pv), Tensor<float, 3>(B, H, Lq)};
  for (Index b = 0; b < B; ++b) {
    auto one = [b](const ConstTensorView<float, 4>& t) {
      return ConstTensorView<float, 4>(t.data() + b * (t.size() / t.dimension(0)), 1, t.dimension(1), t.dimension(2),
                                       t.dimension(3));
    };
    const attention::AttentionResult rb = attend(one(q), one(k), one(v), b);
    std::copy(rb.out.data(), rb.out.data() + rb.out.size(), r.out.data() + b * rb.out.size());
    std::copy(rb.lse.data(), rb.lse.data() + rb.lse.size(), r.lse.data() + b * rb.lse.size());
  }
  return r;
}

// The `count` keys of `candidates` with the largest score (ties: the later key), as a set.
inline std::set<Index> top_keys(std::vector<std::pair<double, Index>> candidates, Index count) {
  std::sort(candidates.begin(), candidates.end(), std::greater<std::pair<double, Index>>());
  std::set<Index> out;
  for (Index n = 0; n < count && n < static_cast<Index>(candidates.size()); ++n)
    out.insert(candidates[static_cast<std::size_t>(n)].second);
  return out;
}

}  // namespace detail

// DMA: query i (head h, kv head h / g) attends to the `window` keys j <= i with the largest
// bias[hk, j] (causal), or the `window` largest over all keys (not causal); bias added to the logits.
template <class Acc = double>
attention::AttentionResult dynamic_mask_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                                                  const ConstTensorView<float, 4>& v,
                                                  const ConstTensorView<float, 3>& key_bias, Index window,
                                                  attention::AttentionOptions options = {}) {
  const Index H = q.dimension(2), Hkv = k.dimension(2), Lk = k.dimension(1);
  return detail::per_batch(q, k, v, [&](auto qb, auto kb, auto vb, Index b) {
    const ConstTensorView<float, 3> bias(key_bias.data() + b * Hkv * Lk, 1, Hkv, Lk);
    attention::AttentionOptions o = options;
    o.key_bias.emplace(bias);
    const Index q_off = o.q_offset ? *o.q_offset : Lk - qb.dimension(1);
    std::vector<std::vector<std::set<Index>>> sel(static_cast<std::size_t>(H));
    for (Index h = 0; h < H; ++h)
      for (Index r = 0; r < qb.dimension(1); ++r) {
        const Index i = q_off + r;
        std::vector<std::pair<double, Index>> cand;
        for (Index j = 0; j < Lk && (!options.causal || j <= i); ++j) cand.push_back({bias(0, h / (H / Hkv), j), j});
        sel[static_cast<std::size_t>(h)].push_back(detail::top_keys(cand, window));
      }
    return masked_attention<Acc>(qb, kb, vb, o, [&](Index h, Index i, Index j) {
      return sel[static_cast<std::size_t>(h)][static_cast<std::size_t>(i - q_off)].count(j) > 0;
    });
  });
}

// HAX: bucket(x_t) = Σ_b [(x̂_t·R)_b > 0]·2^b with x̂ centred over the sequence and L2-normalised;
// allowed(i, j): j <= i and (j among the budget/2 most recent keys of q_i's bucket, or scores[j]
// among the budget - budget/2 largest of scores[0..i]).
template <class Acc = double>
attention::AttentionResult hax_attention(const ConstTensorView<float, 4>& q2, const ConstTensorView<float, 4>& k2,
                                         const ConstTensorView<float, 4>& v, const ConstTensorView<float, 2>& R,
                                         const ConstTensorView<float, 2>& scores, Index budget,
                                         attention::AttentionOptions options = {}) {
  options.causal = true;
  const Index L = q2.dimension(1), d = q2.dimension(3), bits = R.dimension(1);
  auto buckets = [&](const ConstTensorView<float, 4>& x) {
    std::vector<std::uint64_t> out(static_cast<std::size_t>(L));
    for (Index t = 0; t < L; ++t) {
      std::vector<double> y(static_cast<std::size_t>(d));
      double norm = 0;
      for (Index c = 0; c < d; ++c) {
        double mean = 0;
        for (Index u = 0; u < L; ++u) mean += x(0, u, 0, c);
        y[static_cast<std::size_t>(c)] = x(0, t, 0, c) - mean / double(L);
        norm += y[static_cast<std::size_t>(c)] * y[static_cast<std::size_t>(c)];
      }
      for (Index bit = 0; bit < bits; ++bit) {
        double proj = 0;
        for (Index c = 0; c < d; ++c) proj += y[static_cast<std::size_t>(c)] / std::sqrt(norm) * R(c, bit);
        if (norm > 0 && proj > 0) out[static_cast<std::size_t>(t)] |= std::uint64_t(1) << bit;
      }
    }
    return out;
  };
  const Index k_lsh = budget / 2, k_ks = budget - k_lsh;
  return detail::per_batch(q2, k2, v, [&](auto qb, auto kb, auto vb, Index b) {
    const std::vector<std::uint64_t> qh = buckets(qb), kh = buckets(kb);
    std::vector<std::set<Index>> sel(static_cast<std::size_t>(L));
    for (Index i = 0; i < L; ++i) {
      std::vector<std::pair<double, Index>> cand;
      for (Index j = 0; j <= i; ++j) cand.push_back({scores(b, j), j});
      sel[static_cast<std::size_t>(i)] = detail::top_keys(cand, k_ks);
      Index found = 0;
      for (Index j = i; j >= 0 && found < k_lsh; --j)
        if (kh[static_cast<std::size_t>(j)] == qh[static_cast<std::size_t>(i)]) sel[static_cast<std::size_t>(i)].insert(j), ++found;
    }
    return masked_attention<Acc>(qb, kb, vb, options, [&](Index, Index i, Index j) {
      return sel[static_cast<std::size_t>(i)].count(j) > 0;
    });
  });
}

// Block top-k: per (head h, query block qb), score(kb) = <mean of q over the block, mean of k over
// key block kb>; keep kb < sink_blocks, qb - kb < local_blocks, and the top_k others (kb <= qb; ties:
// the later block); allowed(i, j) = kept(h, i / block, j / block) and j <= i.
template <class Acc = double>
attention::AttentionResult block_topk_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                                                const ConstTensorView<float, 4>& v,
                                                const attention::BlockTopKParams& p,
                                                attention::AttentionOptions options = {}) {
  options.causal = true;
  const Index L = q.dimension(1), H = q.dimension(2), P = q.dimension(3), Hkv = k.dimension(2), B = p.block;
  const Index nb = (L + B - 1) / B;
  return detail::per_batch(q, k, v, [&](auto qb, auto kb, auto vb, Index b) {
    auto mean = [&](const ConstTensorView<float, 4>& t, Index h, Index blk, Index d) {
      double sum = 0;
      const Index first = blk * B, last = std::min(L, first + B);
      for (Index u = first; u < last; ++u) sum += t(0, u, h, d);
      return sum / double(last - first);
    };
    std::vector<std::vector<std::set<Index>>> kept(static_cast<std::size_t>(H), std::vector<std::set<Index>>(nb));
    for (Index h = 0; h < H; ++h)
      for (Index r = 0; r < nb; ++r) {
        std::vector<std::pair<double, Index>> cand;
        for (Index c = 0; c <= r; ++c) {
          if (c < p.sink_blocks || r - c < p.local_blocks) {
            kept[static_cast<std::size_t>(h)][static_cast<std::size_t>(r)].insert(c);
            continue;
          }
          double score = 0;
          for (Index d = 0; d < P; ++d) score += mean(qb, h, r, d) * mean(kb, h / (H / Hkv), c, d);
          cand.push_back({score, c});
        }
        for (const Index c : detail::top_keys(cand, p.top_k)) kept[static_cast<std::size_t>(h)][static_cast<std::size_t>(r)].insert(c);
      }
    attention::AttentionOptions o = options;
    if (options.key_bias) o.key_bias.emplace(options.key_bias->data() + b * options.key_bias->dimension(1) * L, 1, options.key_bias->dimension(1), L);
    if (options.row_scale) o.row_scale.emplace(options.row_scale->data() + b * H * L, 1, H, L);
    return masked_attention<Acc>(qb, kb, vb, o, [&](Index h, Index i, Index j) {
      return kept[static_cast<std::size_t>(h)][static_cast<std::size_t>(i / B)].count(j / B) > 0;
    });
  });
}

// Selective attention: logits of query r scaled by temperature[b, h, r]; values of key j scaled by
// value_temperature[b, j, hk] when given.
template <class Acc = double>
attention::AttentionResult selective_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                                               const ConstTensorView<float, 4>& v,
                                               const ConstTensorView<float, 3>& temperature,
                                               const std::optional<ConstTensorView<float, 3>>& value_temperature = std::nullopt,
                                               attention::AttentionOptions options = {}) {
  options.row_scale.emplace(temperature);
  Tensor<float, 4> values = v;
  if (value_temperature)
    for (Index b = 0; b < v.dimension(0); ++b)
      for (Index j = 0; j < v.dimension(1); ++j)
        for (Index h = 0; h < v.dimension(2); ++h)
          for (Index d = 0; d < v.dimension(3); ++d) values(b, j, h, d) *= (*value_temperature)(b, j, h);
  return masked_attention<Acc>(q, k, values, options);
}

}  // namespace tokenmix::ref
