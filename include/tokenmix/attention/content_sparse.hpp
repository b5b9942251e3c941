#pragma once
// Content-dependent sparse attention on the block-sparse engine (spec sparse_attention.md §4-§9):
// each method turns its selection rule into a layout (BlockLayout::from_token_lists or from_rules)
// per batch element, then runs attention::block_sparse_attention on it, so every pattern has the
// engine's speed and its cost follows the number of kept blocks.
//
//   dynamic_mask_attention   DMA: value-derived key bias, per-query top-w keys, bias added to logits
//   hax_attention            HAX: sign-bit LSH buckets (recent matches) ∪ prefix top-k of learned scores
//                            (hax_buckets, hax_layout: the selection alone)
//   block_topk_attention     block top-k by mean-pooled scores, sink and local blocks forced
//                            (the DHSA / NSA-selection / SALE family, top-k form)
//   selective_attention      SSA: per-query temperature (and optional per-key value temperature)
// with the helpers that compute their inputs (dma_key_bias, hax_buckets, ssa_query_temperature).
// Oracles: reference/content_sparse.hpp (each builds its dense mask / bias from the definition and
// runs the dense masked softmax).

#include <algorithm>
#include <cmath>
#include <queue>
#include <utility>
#include <vector>

#include "tokenmix/attention/attention.hpp"
#include "tokenmix/attention/content_sparse_types.hpp"

namespace tokenmix::attention {

namespace detail {

// Calls run(b, q_b, k_b, v_b, out_b, lse_b) with batch element b's views ([1, ...] each).
template <class Run>
void for_each_batch(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                    const ConstTensorView<float, 4>& v, AttentionResult& r, Run&& run) {
  const Index B = q.dimension(0);
  for (Index b = 0; b < B; ++b) {
    auto one = [b](const auto& t) {
      return ConstTensorView<float, 4>(t.data() + b * (t.size() / t.dimension(0)), 1, t.dimension(1), t.dimension(2),
                                       t.dimension(3));
    };
    TensorView<float, 4> out(r.out.data() + b * (r.out.size() / B), 1, r.out.dimension(1), r.out.dimension(2),
                             r.out.dimension(3));
    TensorView<float, 3> lse(r.lse.data() + b * (r.lse.size() / B), 1, r.lse.dimension(1), r.lse.dimension(2));
    run(b, one(q), one(k), one(v), out, lse);
  }
}

inline AttentionResult new_result(const AttentionShape& s) {
  return AttentionResult{Tensor<float, 4>(s.batch, s.q_len, s.heads, s.v_dim), Tensor<float, 3>(s.batch, s.heads, s.q_len)};
}

// Prefix top-k: as i grows, the k keys j <= i with the largest score (ties: the later key wins).
// push(j) then keys() lists them; O(log k) per push.
class PrefixTopK {
 public:
  explicit PrefixTopK(Index k) : k_(k) {}
  void push(float score, Index j) {
    heap_.push({score, j});
    if (static_cast<Index>(heap_.size()) > k_) heap_.pop();
  }
  std::vector<Index> keys() const {
    auto copy = heap_;
    std::vector<Index> out;
    out.reserve(copy.size());
    for (; !copy.empty(); copy.pop()) out.push_back(copy.top().second);
    return out;
  }

 private:
  using Entry = std::pair<float, Index>;  // (score, j): the smallest score, then the earlier key, on top
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap_;
  Index k_;
};

}  // namespace detail

// ---- Dynamic Mask Attention (arXiv 2508.02124; flash-dmattn / flash_sparse_attn) -------------------

// The value-derived key bias of DMA's current code (log space): dt[b, j, hk] = Σ_c W_dt[hk, c]·
// v[b, j, c] over the Hkv·Pv values of key j (concatenated over kv heads), bias[b, hk, j] =
// A[hk]·softplus(dt). (The paper's and the old code's zoh = exp(bias) is the same after the log.)
inline Tensor<float, 3> dma_key_bias(const ConstTensorView<float, 4>& v,    // [B, Lk, Hkv, Pv]
                                     const ConstTensorView<float, 2>& W_dt, // [Hkv, Hkv·Pv]
                                     const ConstTensorView<float, 1>& A) {  // [Hkv]
  const Index B = v.dimension(0), Lk = v.dimension(1), Hkv = v.dimension(2), Pv = v.dimension(3);
  tokenmix::detail::check_shape("dma_key_bias", "W_dt", W_dt, NamedShape<2>{{"Hkv", "Hkv·Pv"}, {{Hkv, Hkv * Pv}}});
  tokenmix::detail::check_shape("dma_key_bias", "A", A, NamedShape<1>{{"Hkv"}, {{Hkv}}});
  Tensor<float, 3> bias(B, Hkv, Lk);
  for (Index b = 0; b < B; ++b)
    for (Index j = 0; j < Lk; ++j) {
      const float* row = v.data() + (b * Lk + j) * Hkv * Pv;
      for (Index h = 0; h < Hkv; ++h) {
        double dt = 0;
        for (Index c = 0; c < Hkv * Pv; ++c) dt += double(W_dt(h, c)) * double(row[c]);
        const double sp = dt > 20 ? dt : std::log1p(std::exp(dt));
        bias(b, h, j) = static_cast<float>(double(A(h)) * sp);
      }
    }
  return bias;
}

// DMA attention: softmax(scale·q·kᵀ + bias_j) over the selected keys. Selection (documented
// choice among the spec's two causal variants: the old benchmark's, the oracle's): when causal,
// query i attends to the `window` keys j <= i with the largest bias (every j <= i while i + 1 <=
// window; ties: the later key); when not causal, every query attends to the `window` keys with the
// largest bias over all of Lk (every key when Lk <= window, as create_mask applies the mask only
// when Lk > window). key_bias [B, Hkv, Lk] (e.g. dma_key_bias); options.key_bias must be unset.
// `block`: the layout's block size.
template <class Arch = simd::default_arch>
AttentionResult dynamic_mask_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                                       const ConstTensorView<float, 4>& v, const ConstTensorView<float, 3>& key_bias,
                                       Index window, AttentionOptions options = {}, Index block = 64) {
  constexpr const char* op = "dynamic_mask_attention";
  TOKENMIX_CHECK(!options.key_bias, op, ": pass the bias as key_bias, not in options");
  TOKENMIX_CHECK(window >= 1, op, ": window must be >= 1 key, got ", window);
  TOKENMIX_CHECK(block >= 1, op, ": block must be positive, got ", block);
  options.key_bias.emplace(key_bias);
  const detail::AttentionShape s = detail::check_attention_args(op, q, k, v, options);
  TOKENMIX_CHECK(key_bias.dimension(1) == s.kv_heads, op, ": key_bias has shape ", shape_of(key_bias),
                 ", expected [B=", s.batch, ", Hkv=", s.kv_heads, ", Lk=", s.k_len, "] (one bias per kv head)");
  AttentionResult r = detail::new_result(s);
  const Index group = s.heads / s.kv_heads, q_end = s.q_offset + s.q_len;
  detail::for_each_batch(q, k, v, r, [&](Index b, auto qb, auto kb, auto vb, auto out, auto lse) {
    const float* bias = key_bias.data() + b * s.kv_heads * s.k_len;  // [Hkv, Lk]
    // Keys per query, computed in query order (from_token_lists asks for h = 0.., i ascending).
    detail::PrefixTopK top(window);
    Index last_h = -1, next_i = 0;
    std::vector<Index> all;  // the non-causal selection of the current head
    const BlockLayout layout = BlockLayout::from_token_lists(
        op, q_end, s.k_len, block, block, s.heads, [&](Index h, Index i) -> std::vector<Index> {
          const float* bh = bias + (h / group) * s.k_len;
          if (h != last_h) {
            last_h = h, next_i = 0, top = detail::PrefixTopK(window);
            if (!options.causal) {
              detail::PrefixTopK every(window);
              for (Index j = 0; j < s.k_len; ++j) every.push(bh[j], j);
              all = every.keys();
            }
          }
          if (!options.causal) return i >= s.q_offset ? all : std::vector<Index>{};
          for (; next_i <= i; ++next_i)
            if (next_i < s.k_len) top.push(bh[next_i], next_i);
          return i >= s.q_offset ? top.keys() : std::vector<Index>{};
        });
    AttentionOptions o = options;
    o.key_bias.emplace(key_bias.data() + b * s.kv_heads * s.k_len, 1, s.kv_heads, s.k_len);
    if (options.row_scale) o.row_scale.emplace(options.row_scale->data() + b * s.heads * s.q_len, 1, s.heads, s.q_len);
    block_sparse_attention<Arch>(qb, kb, vb, layout, o, out, &lse);
  });
  return r;
}

// ---- HAX (arXiv 2507.00449): LSH buckets ∪ key selection ----------------------------------------

// Sign-bit LSH buckets of x [B, L, d] (HAX's sign_bin_lsh): x is centred over the sequence and
// L2-normalised, then bucket = Σ_b [(x̂·R)_b > 0]·2^b with R [d, n_bits] (HAX draws a fresh
// Gaussian R every forward: pass it). Returns [B, L] buckets.
inline std::vector<std::vector<std::uint64_t>> hax_buckets(const ConstTensorView<float, 3>& x,
                                                           const ConstTensorView<float, 2>& R) {
  const Index B = x.dimension(0), L = x.dimension(1), d = x.dimension(2), bits = R.dimension(1);
  TOKENMIX_CHECK(R.dimension(0) == d && bits >= 1 && bits < 64, "hax_buckets: R has shape ", shape_of(R),
                 ", expected [d=", d, ", n_bits] with 1 <= n_bits < 64");
  std::vector<std::vector<std::uint64_t>> out(static_cast<std::size_t>(B), std::vector<std::uint64_t>(L));
  std::vector<double> mean(static_cast<std::size_t>(d)), y(static_cast<std::size_t>(d));
  for (Index b = 0; b < B; ++b) {
    std::fill(mean.begin(), mean.end(), 0.0);
    for (Index t = 0; t < L; ++t)
      for (Index c = 0; c < d; ++c) mean[static_cast<std::size_t>(c)] += x(b, t, c);
    for (double& m : mean) m /= double(std::max<Index>(L, 1));
    for (Index t = 0; t < L; ++t) {
      double norm = 0;
      for (Index c = 0; c < d; ++c) {
        y[static_cast<std::size_t>(c)] = x(b, t, c) - mean[static_cast<std::size_t>(c)];
        norm += y[static_cast<std::size_t>(c)] * y[static_cast<std::size_t>(c)];
      }
      norm = std::sqrt(norm);
      std::uint64_t bucket = 0;
      for (Index k = 0; k < bits; ++k) {
        double proj = 0;
        for (Index c = 0; c < d; ++c) proj += y[static_cast<std::size_t>(c)] * R(c, k);
        if (norm > 0 && proj / norm > 0) bucket |= std::uint64_t(1) << k;
      }
      out[static_cast<std::size_t>(b)][static_cast<std::size_t>(t)] = bucket;
    }
  }
  return out;
}

// HAX's selection for one sequence of L tokens: `q_buckets`, `k_buckets` [L] (hax_buckets),
// `scores` [L] (the key-selection MLP's outputs), budget split k_lsh = budget / 2 (LSH) and
// k_ks = budget - k_lsh (key selection): query i attends to j <= i when bucket(q_i) == bucket(k_j)
// and j is among the k_lsh most recent such keys, or when scores[j] is among the k_ks largest of
// {scores[t] : t <= i}. At most `budget` keys per query.
inline BlockLayout hax_layout(const std::vector<std::uint64_t>& q_buckets, const std::vector<std::uint64_t>& k_buckets,
                              const float* scores, Index budget, Index block = 64) {
  constexpr const char* op = "hax_layout";
  TOKENMIX_CHECK(budget >= 2, op, ": budget must be >= 2 keys (split between LSH and key selection), got ", budget);
  TOKENMIX_CHECK(q_buckets.size() == k_buckets.size(), op, ": ", q_buckets.size(), " query buckets and ",
                 k_buckets.size(), " key buckets, expected one per token each");
  const Index L = static_cast<Index>(k_buckets.size()), k_lsh = budget / 2, k_ks = budget - k_lsh;
  std::vector<std::pair<std::uint64_t, Index>> by_bucket(static_cast<std::size_t>(L));  // keys by (bucket, position)
  for (Index j = 0; j < L; ++j) by_bucket[static_cast<std::size_t>(j)] = {k_buckets[static_cast<std::size_t>(j)], j};
  std::sort(by_bucket.begin(), by_bucket.end());
  detail::PrefixTopK top(k_ks);
  Index next_i = 0;
  // from_token_lists asks for i ascending: the prefix top-k advances with it.
  return BlockLayout::from_token_lists(op, L, L, block, block, 1, [&](Index, Index i) {
    for (; next_i <= i; ++next_i) top.push(scores[next_i], next_i);
    std::vector<Index> keys = top.keys();
    // The k_lsh most recent j <= i in q_i's bucket: the run of that bucket ending at (bucket, i).
    const std::pair<std::uint64_t, Index> key{q_buckets[static_cast<std::size_t>(i)], i};
    auto end = std::upper_bound(by_bucket.begin(), by_bucket.end(), key);
    for (Index n = 0; n < k_lsh && end != by_bucket.begin(); ++n) {
      --end;
      if (end->first != key.first) break;
      keys.push_back(end->second);
    }
    return keys;
  });
}

// HAX attention, causal, one head (q2 [B, L, 1, d], k2 [B, L, 1, d], v [B, L, 1, Dv]; HAX's
// attention is a single head of width d_state over all the SSM input channels), R [d, n_bits],
// scores [B, L]: hax_buckets, then hax_layout per sequence, then the engine.
template <class Arch = simd::default_arch>
AttentionResult hax_attention(const ConstTensorView<float, 4>& q2, const ConstTensorView<float, 4>& k2,
                              const ConstTensorView<float, 4>& v, const ConstTensorView<float, 2>& R,
                              const ConstTensorView<float, 2>& scores, Index budget, AttentionOptions options = {},
                              Index block = 64) {
  constexpr const char* op = "hax_attention";
  options.causal = true;
  const detail::AttentionShape s = detail::check_attention_args(op, q2, k2, v, options);
  TOKENMIX_CHECK(s.heads == 1 && s.kv_heads == 1 && s.q_len == s.k_len && s.q_offset == 0, op, ": q2 has shape ",
                 shape_of(q2), " and k2 ", shape_of(k2), ", expected one head and Lq = Lk (a prefill)");
  TOKENMIX_CHECK(budget >= 2, op, ": budget must be >= 2 keys (split between LSH and key selection), got ", budget);
  tokenmix::detail::check_shape(op, "scores", scores, NamedShape<2>{{"B", "L"}, {{s.batch, s.k_len}}});
  auto seq = [](const ConstTensorView<float, 4>& t) {
    return ConstTensorView<float, 3>(t.data(), t.dimension(0), t.dimension(1), t.dimension(3));
  };
  const auto q_buckets = hax_buckets(seq(q2), R), k_buckets = hax_buckets(seq(k2), R);
  AttentionResult r = detail::new_result(s);
  detail::for_each_batch(q2, k2, v, r, [&](Index b, auto qb, auto kb, auto vb, auto out, auto lse) {
    const BlockLayout layout = hax_layout(q_buckets[static_cast<std::size_t>(b)], k_buckets[static_cast<std::size_t>(b)],
                                          scores.data() + b * s.k_len, budget, block);
    block_sparse_attention<Arch>(qb, kb, vb, layout, options, out, &lse);
  });
  return r;
}

// ---- Block top-k by mean-pooled scores (DHSA / NSA selection / SALE family) ----------------------

// Kept key blocks per (query head, query block), causal: score(qb, kb) = <mean of the block's
// queries, mean of the key block's keys> (per kv head), over key blocks kb <= qb; the sink and
// local blocks are forced, then the top_k others by score (ties: the later block). Tokens inside
// kept blocks: j <= i. Layout over [0, q_length) queries of q (prefill: Lq = Lk).
inline BlockLayout block_topk_layout(const ConstTensorView<float, 4>& q,  // [1, L, H, P] one batch element
                                     const ConstTensorView<float, 4>& k,  // [1, L, Hkv, P]
                                     const BlockTopKParams& p) {
  constexpr const char* op = "block_topk_layout";
  TOKENMIX_CHECK(p.block >= 1 && p.top_k >= 0 && p.sink_blocks >= 0 && p.local_blocks >= 1, op,
                 ": block must be >= 1, top_k and sink_blocks >= 0, local_blocks >= 1 (the diagonal), got ", p.block,
                 ", ", p.top_k, ", ", p.sink_blocks, ", ", p.local_blocks);
  const Index L = q.dimension(1), H = q.dimension(2), P = q.dimension(3), Hkv = k.dimension(2);
  const Index nb = (L + p.block - 1) / p.block, group = H / Hkv;
  TOKENMIX_CHECK(p.top_k <= nb, op, ": top_k is ", p.top_k, " blocks, but the ", L, " keys make only ", nb,
                 " blocks of ", p.block);
  auto pooled = [&](const ConstTensorView<float, 4>& t, Index heads) {  // [heads, nb, P] block means
    std::vector<double> m(static_cast<std::size_t>(heads * nb * P), 0.0);
    for (Index t0 = 0; t0 < L; ++t0)
      for (Index h = 0; h < heads; ++h)
        for (Index d = 0; d < P; ++d) m[static_cast<std::size_t>((h * nb + t0 / p.block) * P + d)] += t(0, t0, h, d);
    for (Index h = 0; h < heads; ++h)
      for (Index blk = 0; blk < nb; ++blk) {
        const double n = double(std::min(p.block, L - blk * p.block));
        for (Index d = 0; d < P; ++d) m[static_cast<std::size_t>((h * nb + blk) * P + d)] /= n;
      }
    return m;
  };
  const std::vector<double> qm = pooled(q, H), km = pooled(k, Hkv);
  std::vector<std::vector<char>> kept(static_cast<std::size_t>(H * nb), std::vector<char>(static_cast<std::size_t>(nb), 0));
  std::vector<std::pair<double, Index>> cand;
  for (Index h = 0; h < H; ++h)
    for (Index qb = 0; qb < nb; ++qb) {
      std::vector<char>& row = kept[static_cast<std::size_t>(h * nb + qb)];
      cand.clear();
      for (Index kb = 0; kb <= qb; ++kb) {
        if (kb < p.sink_blocks || qb - kb < p.local_blocks) {
          row[static_cast<std::size_t>(kb)] = 1;
          continue;
        }
        double score = 0;
        for (Index d = 0; d < P; ++d)
          score += qm[static_cast<std::size_t>((h * nb + qb) * P + d)] *
                   km[static_cast<std::size_t>(((h / group) * nb + kb) * P + d)];
        cand.push_back({score, kb});
      }
      const std::size_t keep = std::min(cand.size(), static_cast<std::size_t>(p.top_k));
      std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(keep), cand.end(),
                        std::greater<std::pair<double, Index>>());
      for (std::size_t c = 0; c < keep; ++c) row[static_cast<std::size_t>(cand[c].second)] = 1;
    }
  return BlockLayout::from_rules(
      op, L, L, p.block, p.block, H,
      [&](Index h, Index qb, Index kb) {
        if (!kept[static_cast<std::size_t>(h * nb + qb)][static_cast<std::size_t>(kb)]) return BlockKind::none;
        return kb == qb ? BlockKind::masked : BlockKind::full;
      },
      [](Index, Index i, Index j) { return j <= i; });
}

// Block top-k attention, causal prefill: block_topk_layout per batch element, then the engine.
template <class Arch = simd::default_arch>
AttentionResult block_topk_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                                     const ConstTensorView<float, 4>& v, const BlockTopKParams& params,
                                     AttentionOptions options = {}) {
  constexpr const char* op = "block_topk_attention";
  options.causal = true;
  const detail::AttentionShape s = detail::check_attention_args(op, q, k, v, options);
  TOKENMIX_CHECK(s.q_len == s.k_len && s.q_offset == 0, op, ": q has ", s.q_len, " tokens and k ", s.k_len,
                 ", expected a prefill (Lq = Lk)");
  AttentionResult r = detail::new_result(s);
  detail::for_each_batch(q, k, v, r, [&](Index b, auto qb, auto kb, auto vb, auto out, auto lse) {
    AttentionOptions o = options;
    if (options.key_bias)
      o.key_bias.emplace(options.key_bias->data() + b * s.bias_heads * s.k_len, 1, s.bias_heads, s.k_len);
    if (options.row_scale) o.row_scale.emplace(options.row_scale->data() + b * s.heads * s.q_len, 1, s.heads, s.q_len);
    block_sparse_attention<Arch>(qb, kb, vb, block_topk_layout(qb, kb, params), o, out, &lse);
  });
  return r;
}

// ---- Selective Attention (SSA, arXiv 2411.12892) ------------------------------------------------

// SSA's query temperature: τ[b, h, r] = tanh(f[b, h, r]) + 1 + σ(α[h])·log(pos), pos = q_offset + r
// + 1 (1-based position, so log(pos) >= 0; one reimplementation writes log(pos + 1) for 0-based
// positions: the same). f: the per-query linear output (weight-shared in the paper's
// parameter-efficient variant) [B, H, Lq]; alpha [H].
inline Tensor<float, 3> ssa_query_temperature(const ConstTensorView<float, 3>& f, const ConstTensorView<float, 1>& alpha,
                                              Index q_offset = 0) {
  const Index B = f.dimension(0), H = f.dimension(1), Lq = f.dimension(2);
  tokenmix::detail::check_shape("ssa_query_temperature", "alpha", alpha, NamedShape<1>{{"H"}, {{H}}});
  TOKENMIX_CHECK(q_offset >= 0, "ssa_query_temperature: q_offset must be >= 0, got ", q_offset);
  Tensor<float, 3> tau(B, H, Lq);
  for (Index b = 0; b < B; ++b)
    for (Index h = 0; h < H; ++h) {
      const double sig = 1.0 / (1.0 + std::exp(-double(alpha(h))));
      for (Index r = 0; r < Lq; ++r)
        tau(b, h, r) = static_cast<float>(std::tanh(double(f(b, h, r))) + 1.0 + sig * std::log(double(q_offset + r + 1)));
    }
  return tau;
}

// Selective attention: logits scaled per query by `temperature` [B, H, Lq] (options.row_scale),
// values optionally scaled per key by `value_temperature` [B, Lk, Hkv] (the paper's τ_v(x_j),
// suppressing noisy tokens), then dense attention (causal per options).
template <class Arch = simd::default_arch>
AttentionResult selective_attention(const ConstTensorView<float, 4>& q, const ConstTensorView<float, 4>& k,
                                    const ConstTensorView<float, 4>& v, const ConstTensorView<float, 3>& temperature,
                                    const std::optional<ConstTensorView<float, 3>>& value_temperature = std::nullopt,
                                    AttentionOptions options = {}) {
  constexpr const char* op = "selective_attention";
  TOKENMIX_CHECK(!options.row_scale, op, ": pass the temperature as `temperature`, not options.row_scale");
  options.row_scale.emplace(temperature);
  const detail::AttentionShape s = detail::check_attention_args(op, q, k, v, options);
  if (!value_temperature) return attention<Arch>(q, k, v, options);
  // v scaled per key into a new tensor (never through a view of v: assigning to an Eigen TensorMap
  // copies the elements into the viewed memory rather than rebinding the map).
  Tensor<float, 4> scaled_v;
  {
    tokenmix::detail::check_shape(op, "value_temperature", *value_temperature,
                                  NamedShape<3>{{"B", "Lk", "Hkv"}, {{s.batch, s.k_len, s.kv_heads}}});
    scaled_v = Tensor<float, 4>(v.dimensions());
    const Index rows = s.batch * s.k_len * s.kv_heads;
    for (Index row = 0; row < rows; ++row)
      for (Index d = 0; d < s.v_dim; ++d)
        scaled_v.data()[row * s.v_dim + d] = v.data()[row * s.v_dim + d] * value_temperature->data()[row];
  }
  return attention<Arch>(q, k, ConstTensorView<float, 4>(scaled_v.data(), scaled_v.dimensions()), options);
}

}  // namespace tokenmix::attention
