// Benchmarks of the attention engine (attention/attention.hpp): dense (causal and not), each
// block-sparse layout generator at ~10% density, the decode path against a long KV cache, and the
// oracle on a small shape, all at H 8, P 64, 1 thread.
//
//   BM_Attention_Dense/causal:0/L:4096/H:8/P:64                        dense, L 1024..8192
//   BM_Attention_BlockSparse_<Pattern>/L:8192/H:8/P:64/block:64/density_pct:10
//        Pattern in SlidingWindow, Sinks, S2, Power, Dilated, TopK (block top-k by pooled scores of
//        the random q, k); the layout is built outside the loop
//   BM_Attention_Decode/Lk:32768/H:8/P:64                              one query against Lk keys
//   BM_Attention_Reference/causal:0/L:256/H:8/P:64                     the double oracle
//
// Counters: GFLOP/s of the useful products (2·P flops per kept (i, j) pair, QKᵀ and PV:
// 4·P·pairs), fma_bound = those flops at bench/limits' FMA peak / time; density = kept pairs /
// all causal (or all) pairs (the layouts are sized to keep density_pct % of the causal block
// pairs); vs_dense_causal = this time / BM_Attention_Dense/causal:1 at the same L, H, P (run first);
// decode: bw_bound = the K and V bytes at the read bandwidth / time.

#include <benchmark/benchmark.h>

#include <functional>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "support/counters.hpp"
#include "support/limits.hpp"
#include "support/main.hpp"
#include "tokenmix/attention/attention.hpp"
#include "tokenmix/attention/content_sparse.hpp"
#include "tokenmix/reference/attention.hpp"

namespace {

using namespace tokenmix;

struct Qkv {
  Tensor<float, 4> q, k, v, out;
  Tensor<float, 3> lse;
  Qkv(Index Lq, Index Lk, Index H, Index P) : q(1, Lq, H, P), k(1, Lk, H, P), v(1, Lk, H, P), out(1, Lq, H, P), lse(1, H, Lq) {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.f, 1.f);
    for (auto* t : {&q, &k, &v})
      for (Index i = 0; i < t->size(); ++i) t->data()[i] = normal(rng);
  }
  TensorView<float, 4> out_view() { return TensorView<float, 4>(out.data(), out.dimensions()); }
};

// Counts the (i, j) pairs the layout keeps for heads 0..H-1 (or the dense / causal count).
double kept_pairs(const attention::BlockLayout* layout, Index L, Index H, bool causal) {
  if (!layout) return double(H) * (causal ? double(L) * double(L + 1) / 2 : double(L) * double(L));
  double pairs = 0;
  for (Index h = 0; h < H; ++h) {
    const Index r0 = layout->row(h, 0);
    for (Index qb = 0; qb < layout->q_blocks(); ++qb)
      for (Index e = layout->row_start[std::size_t(r0 + qb)]; e < layout->row_start[std::size_t(r0 + qb + 1)]; ++e) {
        const std::int64_t m = layout->mask_of[std::size_t(e)];
        const Index kb = layout->key_block[std::size_t(e)];
        if (m < 0) {
          pairs += double(std::min(layout->q_block, L - qb * layout->q_block)) *
                   double(std::min(layout->k_block, L - kb * layout->k_block));
          continue;
        }
        for (Index j = 0; j < layout->k_block; ++j)
          for (Index i = 0; i < layout->q_block; ++i) pairs += layout->mask_bit(m, j, i);
      }
  }
  return pairs;
}

// Seconds per iteration of dense causal attention, keyed by (L, H, P), filled by BM_Attention_Dense.
std::map<std::tuple<Index, Index, Index>, double>& dense_causal_seconds() {
  static std::map<std::tuple<Index, Index, Index>, double> seconds;
  return seconds;
}

void set_attention_counters(benchmark::State& state, double pairs, Index P, double all_pairs) {
  const double flops = 4.0 * double(P) * pairs;
  bench::set_rates(state, pairs, flops, 0);
  bench::set_bound_fraction(state, "fma_bound", flops / (bench::machine_limits().fma_gflops * 1e9));
  state.counters["density"] = pairs / all_pairs;
}

void BM_Attention_Dense(benchmark::State& state) {
  const bool causal = state.range(0) != 0;
  const Index L = state.range(1), H = state.range(2), P = state.range(3);
  Qkv in(L, L, H, P);
  attention::AttentionOptions o;
  o.causal = causal;
  const bench::WallTimer timer;
  for (auto _ : state) {
    attention::attention(in.q, in.k, in.v, o, in.out_view(), nullptr);
    benchmark::DoNotOptimize(in.out.data());
  }
  if (causal) dense_causal_seconds()[{L, H, P}] = timer.seconds() / double(state.iterations());
  set_attention_counters(state, kept_pairs(nullptr, L, H, causal), P, kept_pairs(nullptr, L, H, causal));
}

// The layout of `pattern` with its size parameter (window, local blocks, ...) the smallest that keeps
// at least `density` of the causal block pairs: the same density for every pattern, so their times
// compare (and compare with dense causal attention at that fraction).
attention::BlockLayout make_layout(const std::string& pattern, const Qkv& in, Index block, double density) {
  const Index L = in.q.dimension(1), H = in.q.dimension(2);
  auto build = [&](Index x) {
    if (pattern == "TopK") {  // block top-k by pooled scores: x - 2 selected + 1 sink + 1 local
      const ConstTensorView<float, 4> q(in.q.data(), in.q.dimensions()), k(in.k.data(), in.k.dimensions());
      return attention::block_topk_layout(q, k, {block, x - 2, 1, 1});
    }
    if (pattern == "SlidingWindow") return attention::sliding_window_layout(L, block, x * block);
    if (pattern == "Sinks") return attention::sliding_window_layout(L, block, x * block - block, block);  // 1 sink block
    if (pattern == "S2") {  // local blocks + a vertical stride rotated across heads (S2-Attention)
      attention::LocalStrideParams p;
      p.block = block, p.heads = H, p.kv_heads = H, p.local_blocks = x, p.vert_stride = 16;
      return attention::local_stride_layout(L, p);
    }
    if (pattern == "Power") return attention::power_layout(L, block, x, 1);
    // Dilated: LongNet pairs (segment, dilation) in blocks, (x, 1), (2x, 2), (4x, 4), ...
    std::vector<attention::DilatedSegment> pairs;
    for (Index seg = x, dil = 1; seg <= 2 * (L / block); seg *= 2, dil *= 2) pairs.push_back({seg, dil});
    return attention::dilated_layout(L, block, pairs);
  };
  const double blocks = double(L / block), causal_blocks = blocks * (blocks + 1) / 2;
  for (Index x = 2;; ++x) {  // 2: Sinks needs a window of x - 1 >= 1 blocks
    attention::BlockLayout layout = build(x);
    if (double(layout.entries()) / (double(layout.heads) * causal_blocks) >= density || x >= L / block) return layout;
  }
}

template <const char* Pattern>
void BM_Attention_BlockSparse(benchmark::State& state) {
  const Index L = state.range(0), H = state.range(1), P = state.range(2), block = state.range(3);
  Qkv in(L, L, H, P);
  const attention::BlockLayout layout = make_layout(Pattern, in, block, double(state.range(4)) / 100.0);
  attention::AttentionOptions o;
  const bench::WallTimer timer;
  for (auto _ : state) {
    attention::block_sparse_attention(in.q, in.k, in.v, layout, o, in.out_view(), nullptr);
    benchmark::DoNotOptimize(in.out.data());
  }
  const auto dense = dense_causal_seconds().find({L, H, P});
  if (dense != dense_causal_seconds().end())
    state.counters["vs_dense_causal"] = timer.seconds() / double(state.iterations()) / dense->second;
  set_attention_counters(state, kept_pairs(&layout, L, H, true), P, kept_pairs(nullptr, L, H, true));
}

void BM_Attention_Decode(benchmark::State& state) {
  const Index Lk = state.range(0), H = state.range(1), P = state.range(2);
  Qkv in(1, Lk, H, P);
  attention::AttentionOptions o;
  o.causal = true;
  for (auto _ : state) {
    attention::attention(in.q, in.k, in.v, o, in.out_view(), nullptr);
    benchmark::DoNotOptimize(in.out.data());
  }
  const double bytes = 2.0 * double(Lk) * double(H) * double(P) * sizeof(float);
  bench::set_rates(state, double(Lk) * double(H), 4.0 * double(P) * double(Lk) * double(H), bytes);
  bench::set_bound_fraction(state, "bw_bound", bytes / (bench::machine_limits().read_gbps * 1e9));
}

void BM_Attention_Reference(benchmark::State& state) {
  const bool causal = state.range(0) != 0;
  const Index L = state.range(1), H = state.range(2), P = state.range(3);
  Qkv in(L, L, H, P);
  attention::AttentionOptions o;
  o.causal = causal;
  for (auto _ : state) benchmark::DoNotOptimize(ref::attention(in.q, in.k, in.v, o).out.data());
  set_attention_counters(state, kept_pairs(nullptr, L, H, causal), P, kept_pairs(nullptr, L, H, causal));
}

constexpr char kSlidingWindow[] = "SlidingWindow", kSinks[] = "Sinks", kS2[] = "S2", kPower[] = "Power",
               kDilated[] = "Dilated", kTopK[] = "TopK";

void sparse_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"L", "H", "P", "block", "density_pct"});
  for (const Index L : {8192, 32768}) b->Args({L, 8, 64, 64, 10});
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_Attention_Dense)
    ->ArgNames({"causal", "L", "H", "P"})
    ->ArgsProduct({{0, 1}, {1024, 2048, 4096, 8192}, {8}, {64}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Attention_BlockSparse<kSlidingWindow>)->Name("BM_Attention_BlockSparse_SlidingWindow")->Apply(sparse_shapes);
BENCHMARK(BM_Attention_BlockSparse<kSinks>)->Name("BM_Attention_BlockSparse_Sinks")->Apply(sparse_shapes);
BENCHMARK(BM_Attention_BlockSparse<kS2>)->Name("BM_Attention_BlockSparse_S2")->Apply(sparse_shapes);
BENCHMARK(BM_Attention_BlockSparse<kPower>)->Name("BM_Attention_BlockSparse_Power")->Apply(sparse_shapes);
BENCHMARK(BM_Attention_BlockSparse<kDilated>)->Name("BM_Attention_BlockSparse_Dilated")->Apply(sparse_shapes);
BENCHMARK(BM_Attention_BlockSparse<kTopK>)->Name("BM_Attention_BlockSparse_TopK")->Apply(sparse_shapes);
BENCHMARK(BM_Attention_Decode)
    ->ArgNames({"Lk", "H", "P"})
    ->ArgsProduct({{4096, 16384, 32768, 65536}, {8}, {64}})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Attention_Reference)->ArgNames({"causal", "L", "H", "P"})->Args({0, 256, 8, 64})->Unit(benchmark::kMillisecond);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
