// Benchmarks of the linear-attention family (linear/lightning_attention.hpp, linear/simple_gla.hpp,
// linear/linear_attention.hpp): Lightning Attention prefill in its chunked (Lightning Attention-2)
// and recurrent forms, the block size of the chunked form, the decode step, causal / non-causal
// linear attention, the double oracle (reference/linear_attention.hpp) on a small shape, and the
// dense causal softmax engine (attention/attention.hpp) at the same tokens. All at B 1, H 8,
// K = V = 64 (dense: P 64), fp32, 1 thread; q, k, v normal with standard deviation 1/8 (outputs and
// states stay O(1)); Lightning Attention with TNL's slopes of layer 0 of 24 (tnl_slopes(8, 0, 24):
// λ_h = exp(-2^(-(h+1))·(1 + 1e-5)), from 0.607 to 0.996) and scale 1 (TransNormerLLM's default).
//
//   BM_LightningAttention_Dense/L:<L>/H:8/K:64/V:64       attention::attention, causal softmax, P 64,
//        L 1024, 2048, 4096, 8192 (the denominators of vs_dense)
//   BM_LightningAttention_Reference/L:256/H:8/K:64/V:64   ref::lightning_attention (the double oracle,
//        quadratic form)
//   BM_LightningAttention_Simd/L:<L>/H:8/K:64/V:64        lightning_attention, algorithm auto_select
//        (the chunked form from 32 tokens on), L 1024, 2048, 4096, 8192, 16384, 65536, 256
//   BM_LightningAttention_Chunked/L:4096/H:8/K:64/V:64/block:<n>  algorithm chunked, block_size
//        32 (the default, kLinearDefaultChunk), 64, 128, 256
//   BM_LightningAttention_ChunkMatmuls/L:4096/H:8/K:64/V:64  only the intra / inter block products of
//        the chunked form (chunk 32), the kernel's micro-kernel on its operand layouts: fma_bound is
//        the products' own efficiency; fma_bound_paired the same against the FMA peak probe run
//        alternately with the products (bench::paired_fma_fraction): robust to the VM's drift
//   BM_LightningAttention_Recurrent/L:<L>/H:8/K:64/V:64   algorithm recurrent, L 1024, 4096, 16384
//   BM_LightningAttention_Decode/H:8/K:64/V:64            lightning_attention_step on a cold state
//        [1, 8, 64, 64] (2048 copies, 256 MiB, rotated: every step reads a state from memory, as one
//        layer's step of a deep model does)
//   BM_LightningAttention_DecodeHot/H:8/K:64/V:64         the same on one state (L2-resident: 128 KiB)
//   BM_LinearAttention_Simd/causal:<0|1>/L:4096/H:8/K:64/V:64      linear_attention, identity feature
//        map, no normaliser (causal: simple_gla without decay; non-causal: S = KᵀV, O = QS)
//   BM_LinearAttention_Normalized/causal:1/L:4096/H:8/K:64/V:64    elu+1 feature map, normalize
//
// Prefill cases pass a preallocated (touched) out and final_state; linear_attention (and the oracle)
// have only the allocating overload: their out, final state and φ(q), φ(k) copies (8 MiB each at
// L 4096) are allocated in the timed call, after one untimed call.
// Memory: freed memory stays in the process (glibc: mallopt M_MMAP_MAX 0 and M_TRIM_THRESHOLD
// INT_MAX before main, as bench/blocks/mamba_torch.py's --malloc reuse; what a caching allocator
// does), so those allocations reuse pages instead of faulting them in anew. With glibc's defaults,
// whether a call faults depends on the heap's history (dynamic mmap / trim thresholds): measured
// BM_LinearAttention_Normalized at 115 ms per call when run alone against 40 ms after the other
// LinearAttention cases (~75 ms of first-touch page faults, ~12 us per 4 KiB page in this VM).
//
// Counters (every time is the CPU time of the benchmark's thread, the CPU column, which Google
// Benchmark's rates use; the ratios and per-token counters use the same clock, through
// ThreadCpuTimer: on this shared 2-vCPU VM the wall time also counts other processes):
//   ns_per_token, tokens_per_s   B·L tokens (decode: 1 token per step); plain numbers (the console
//                                shows "ns_per_token=1.79k" for 1790 ns)
//   GFLOP/s, fma_bound           chunked forms (Simd at L >= 32, Chunked): the useful flops of the
//        chunk products, per chunk of C tokens (the last one may be partial) and head, an FMA
//        counting 2:  QKᵀ  2·K·C(C+1)/2 (lower triangle with the diagonal)
//                     AV   2·V·C(C+1)/2 (the decay-masked scores times V, lower triangle)
//                     Q·S  2·C·K·V      (inter-chunk: the state entering the chunk; counted for the
//                                        first chunk too)
//                     S    2·C·K·V      (state update Kᵀ·(decayed V))
//        (no decay exps, masks, scaling or transposes). fma_bound = those flops at bench/limits'
//        FMA peak / time: a lower bound of the products' efficiency (the time includes the rest).
//        Recurrent: 4·K·V flops per (token, head) (state update k⊗v and q·S, FMAs; the decay
//        multiply not counted), the same fma_bound definition. Dense: 4·P per kept causal (i, j)
//        pair (QKᵀ and PV), as attention_bench. LinearAttention causal: the chunked count (block 64;
//        Normalized: the same, the normaliser's pass and the feature map not counted); non-causal:
//        4·K·V per (token, head) (S = KᵀV and O = QS). Decode: 4·H·K·V per step, and GB/s of the
//        state bytes below.
//   per_token_vs_L1024   (Simd) time per token at L / time per token at L 1024: 1.0 when the time per
//                        token is flat in L, as it should be for a linear-time operator. Measured by
//                        alternation (support/paired.hpp): 9 rounds of calls at L then at L 1024 (>= 20
//                        ms of each), the median of the rounds' ratios; the two cases' own times,
//                        minutes apart, drift by up to ±15% on this VM
//   vs_dense             (Simd) this time / BM_LightningAttention_Dense's at the same L (< 1: lightning
//                        faster; the issue asks for < 1 from L 2048 on)
//   vs_reference         (Simd L 256) this time / the Reference case's
//   vs_default_block     (Chunked) this time / the Chunked case with the default block (32)
//   vs_chunked           (Recurrent) this time / the Simd (chunked) case at the same L
//   bw_bound, ns_per_step (Decode) bw_bound = the state bytes read and written, 2·H·K·V·4 = 256 KiB,
//        at bench/limits' triad bandwidth (the probe with reads and writes, STREAM's count) / time.
//        The q, k, v, out and slopes bytes (~6 KiB) are not counted. It can exceed 1 (up to ~4/3): the
//        step updates its state in place (each line read once, written back once), while triad's
//        12 bytes per element leave out the write-allocate read of a[] that it also pays. DecodeHot's
//        value (state in L2) is not a memory bound at all: > 1 there just says "faster than DRAM".
// The ratios need their denominators to have run first in the same process: the families are
// registered Dense, Reference, Simd, Chunked, Recurrent, so a --benchmark_filter must keep them.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include <time.h>  // clock_gettime(CLOCK_THREAD_CPUTIME_ID): the thread CPU clock Google Benchmark uses
#if defined(__GLIBC__)
#include <malloc.h>  // mallopt
#endif

#include "support/chunk_products.hpp"
#include "support/counters.hpp"
#include "support/limits.hpp"
#include "support/main.hpp"
#include "support/paired.hpp"
#include "tokenmix/attention/attention.hpp"
#include "tokenmix/linear/lightning_attention.hpp"
#include "tokenmix/linear/linear_attention.hpp"
#include "tokenmix/linear/simple_gla.hpp"
#include "tokenmix/reference/linear_attention.hpp"

namespace {

using namespace tokenmix;

constexpr Index kH = 8, kK = 64, kV = 64;
constexpr Index kLayer = 0, kLayers = 24;  // tnl_slopes(H, layer, num_layers)
constexpr Index kScalingBase = 1024;       // per_token_vs_L1024's length
constexpr float kInputStd = 0.125f;

// Freed memory stays in the process (see the header): set before main(), for every case.
#if defined(__GLIBC__)
[[maybe_unused]] const bool kKeepFreedMemory = mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1;
#endif

// q, k [1, L, H, K], v and out [1, L, H, V], final state [1, H, K, V]; normal inputs, outputs touched.
struct Inputs {
  Tensor<float, 4> q, k, v, out, state;
  Inputs(Index L, Index H, Index K, Index V)
      : q(1, L, H, K), k(1, L, H, K), v(1, L, H, V), out(1, L, H, V), state(1, H, K, V) {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.f, kInputStd);
    for (auto* t : {&q, &k, &v})
      for (Index i = 0; i < t->size(); ++i) t->data()[i] = normal(rng);
    // First-touch page faults of out (128 MiB at L 65536) would otherwise land in the first iterations.
    out.setZero(), state.setZero();
  }
  ConstTensorView<float, 4> cq() const { return ConstTensorView<float, 4>(q.data(), q.dimensions()); }
  ConstTensorView<float, 4> ck() const { return ConstTensorView<float, 4>(k.data(), k.dimensions()); }
  ConstTensorView<float, 4> cv() const { return ConstTensorView<float, 4>(v.data(), v.dimensions()); }
  TensorView<float, 4> out_view() { return TensorView<float, 4>(out.data(), out.dimensions()); }
  TensorView<float, 4> state_view() { return TensorView<float, 4>(state.data(), state.dimensions()); }
};

// TNL's slopes and the LightningOptions that point at them.
struct Lightning {
  std::vector<float> slopes;
  linear::LightningOptions options;
  Lightning(Index H, linear::LinearAlgorithm algorithm, Index block = 0)
      : slopes(linear::tnl_slopes(H, kLayer, kLayers)) {
    options.slopes.emplace(slopes.data(), H);
    options.algorithm = algorithm;
    options.block_size = block;
  }
};

using bench::ThreadCpuTimer;

using Key = std::tuple<Index, Index, Index, Index>;  // (L, H, K, V)

// CPU seconds per iteration of the denominators, filled by the cases that run first.
std::map<Key, double>& dense_seconds() {
  static std::map<Key, double> s;
  return s;
}
std::map<Key, double>& reference_seconds() {
  static std::map<Key, double> s;
  return s;
}
std::map<Key, double>& simd_seconds() {
  static std::map<Key, double> s;
  return s;
}
std::map<Key, double>& chunked_default_seconds() {  // Chunked with the default block
  static std::map<Key, double> s;
  return s;
}

void set_ratio(benchmark::State& state, const char* name, double seconds, const std::map<Key, double>& table,
               const Key& key, double scale = 1.0) {
  const auto it = table.find(key);
  if (it != table.end()) state.counters[name] = seconds / (scale * it->second);
}

// Flops of the chunked form's products for the whole call (see the header).
double chunked_flops(Index L, Index H, Index K, Index V, Index chunk) {
  double flops = 0;
  for (Index t0 = 0; t0 < L; t0 += chunk) {
    const double c = double(std::min(chunk, L - t0)), tri = c * (c + 1) / 2;
    flops += 2 * tri * double(K) + 2 * tri * double(V) + 2 * c * double(K * V) + 2 * c * double(K * V);
  }
  return flops * double(H);
}

// tokens_per_s and ns_per_token from `seconds` (CPU seconds per iteration); GFLOP/s and fma_bound
// when flops > 0.
void set_token_counters(benchmark::State& state, double seconds, double tokens, double flops) {
  state.counters["tokens_per_s"] = tokens / seconds;
  state.counters["ns_per_token"] = seconds * 1e9 / tokens;
  if (flops > 0) {
    bench::set_rates(state, 0, flops, 0);
    bench::set_bound_fraction(state, "fma_bound", flops / (bench::machine_limits().fma_gflops * 1e9));
  }
}

// One lightning_attention prefill call per iteration; returns CPU seconds per iteration.
double run_lightning(benchmark::State& state, Inputs& in, const linear::LightningOptions& options) {
  TensorView<float, 4> final_state = in.state_view();
  const ThreadCpuTimer timer;
  for (auto _ : state) {
    linear::lightning_attention(in.cq(), in.ck(), in.cv(), options, in.out_view(), &final_state);
    benchmark::DoNotOptimize(in.out.data());
    benchmark::DoNotOptimize(in.state.data());
    benchmark::ClobberMemory();
  }
  return timer.seconds() / double(state.iterations());
}

void BM_Dense(benchmark::State& state) {
  const Index L = state.range(0), H = state.range(1), P = state.range(2);
  Inputs in(L, H, P, P);
  attention::AttentionOptions o;
  o.causal = true;
  const ThreadCpuTimer timer;
  for (auto _ : state) {
    attention::attention(in.cq(), in.ck(), in.cv(), o, in.out_view(), nullptr);
    benchmark::DoNotOptimize(in.out.data());
    benchmark::ClobberMemory();
  }
  const double seconds = timer.seconds() / double(state.iterations());
  dense_seconds()[{L, H, P, P}] = seconds;
  set_token_counters(state, seconds, double(L), 4.0 * double(P) * double(H) * double(L) * double(L + 1) / 2);
}

void BM_Reference(benchmark::State& state) {
  const Index L = state.range(0), H = state.range(1), K = state.range(2), V = state.range(3);
  Inputs in(L, H, K, V);
  const Lightning lightning(H, linear::LinearAlgorithm::auto_select);
  // One untimed call (allocating: see BM_LinearAttention).
  benchmark::DoNotOptimize(ref::lightning_attention(in.cq(), in.ck(), in.cv(), lightning.options).out.data());
  const ThreadCpuTimer timer;
  for (auto _ : state) {
    linear::LinearResult r = ref::lightning_attention(in.cq(), in.ck(), in.cv(), lightning.options);
    benchmark::DoNotOptimize(r.out.data());
    benchmark::ClobberMemory();
  }
  const double seconds = timer.seconds() / double(state.iterations());
  reference_seconds()[{L, H, K, V}] = seconds;
  set_token_counters(state, seconds, double(L), 0);
}

void BM_Simd(benchmark::State& state) {
  const Index L = state.range(0), H = state.range(1), K = state.range(2), V = state.range(3);
  Inputs in(L, H, K, V);
  const Lightning lightning(H, linear::LinearAlgorithm::auto_select);
  const double seconds = run_lightning(state, in, lightning.options);
  const Key key{L, H, K, V};
  simd_seconds()[key] = seconds;
  const bool chunked = L >= linear::kLinearAutoMinLength && V >= Index(simd::lanes<simd::default_arch>);
  const double flops = chunked ? chunked_flops(L, H, K, V, std::min(linear::kLinearDefaultChunk, L))
                                : 4.0 * double(L * H * K * V);
  set_token_counters(state, seconds, double(L), flops);
  if (L != kScalingBase) {  // per_token_vs_L1024: calls at L and at L 1024 alternately
    Inputs base(kScalingBase, H, K, V);
    TensorView<float, 4> final_state = in.state_view(), base_state = base.state_view();
    const bench::PairedRatio r = bench::paired_ratio(
        9, [&] { linear::lightning_attention(in.cq(), in.ck(), in.cv(), lightning.options, in.out_view(), &final_state); },
        [&] {
          linear::lightning_attention(base.cq(), base.ck(), base.cv(), lightning.options, base.out_view(), &base_state);
        });
    state.counters["per_token_vs_L1024"] = r.ratio * double(kScalingBase) / double(L);
  }
  set_ratio(state, "vs_dense", seconds, dense_seconds(), key);
  set_ratio(state, "vs_reference", seconds, reference_seconds(), key);
}

void BM_Chunked(benchmark::State& state) {
  const Index L = state.range(0), H = state.range(1), K = state.range(2), V = state.range(3), block = state.range(4);
  Inputs in(L, H, K, V);
  const Lightning lightning(H, linear::LinearAlgorithm::chunked, block);
  const double seconds = run_lightning(state, in, lightning.options);
  const Key key{L, H, K, V};
  if (block == linear::kLinearDefaultChunk) chunked_default_seconds()[key] = seconds;
  set_token_counters(state, seconds, double(L), chunked_flops(L, H, K, V, std::min(block, L)));
  set_ratio(state, "vs_default_block", seconds, chunked_default_seconds(), key);
}

// Only the block products of the chunked form (SSD's kernel with q, k, v for C, B, x), per chunk of
// Q = kLinearDefaultChunk tokens and head: Q Kᵀ [Q, Q] (lower triangle, K-deep), out = Q·S [Q, V]
// (K-deep) + M·V (causal), S += Kᵀ·V [K, V] (Q-deep); operands in the kernel's layouts and strides
// (q, k, v rows H·K / H·V apart, the transposed keys and the masked scores in scratch), no decays,
// masks, epilogues or transposes: the products' own efficiency, what the 0.6 is about.
void BM_ChunkMatmuls(benchmark::State& state) {
  using Kernel = ssm::detail::SsdChunkedKernel<simd::default_arch>;
  constexpr Index W = Kernel::W;
  const Index L = state.range(0), H = state.range(1), K = state.range(2), V = state.range(3);
  const Index Q = std::min(linear::kLinearDefaultChunk, L), QP = (Q + W - 1) / W * W, VP = (V + W - 1) / W * W;
  const Inputs in(L, H, K, V);
  using AlignedVec = std::vector<float, xsimd::aligned_allocator<float, 64>>;
  AlignedVec S(static_cast<std::size_t>(H * K * VP), 0.01f), KT(static_cast<std::size_t>(K * QP), 0.5f),
      QK(static_cast<std::size_t>(Q * QP)), M(static_cast<std::size_t>(Q * QP), 0.25f),
      Vw(static_cast<std::size_t>(Q * VP), 0.5f), Y(static_cast<std::size_t>(Q * VP));
  auto products = [&] {
    for (Index t0 = 0; t0 < L; t0 += Q) {
      const Index Qc = std::min(Q, L - t0);
      for (Index h = 0; h < H; ++h) {
        const float* Qh = in.q.data() + (t0 * H + h) * K;  // rows H·K apart
        const float* Xh = in.v.data() + (t0 * H + h) * V;  // rows H·V apart
        float* Sh = S.data() + h * K * VP;
        bench::cb_product<Kernel>(Qc, K, QP, Qh, H * K, KT.data(), QK.data());  // Q Kᵀ, lower triangle
        bench::head_products<Kernel>(Qc, K, QP, VP, Qh, H * K, Sh, M.data(), Xh, H * V, KT.data(), Vw.data(), Y.data());
      }
    }
    benchmark::DoNotOptimize(S.data());
    benchmark::DoNotOptimize(Y.data());
    benchmark::ClobberMemory();
  };
  const ThreadCpuTimer timer;
  for (auto _ : state) products();
  const double seconds = timer.seconds() / double(state.iterations());
  const double flops = chunked_flops(L, H, K, V, Q);
  set_token_counters(state, seconds, double(L), flops);
  state.counters["fma_bound_paired"] = bench::paired_fma_fraction(products, flops);
}

void BM_Recurrent(benchmark::State& state) {
  const Index L = state.range(0), H = state.range(1), K = state.range(2), V = state.range(3);
  Inputs in(L, H, K, V);
  const Lightning lightning(H, linear::LinearAlgorithm::recurrent);
  const double seconds = run_lightning(state, in, lightning.options);
  set_token_counters(state, seconds, double(L), 4.0 * double(L * H * K * V));
  set_ratio(state, "vs_chunked", seconds, simd_seconds(), Key{L, H, K, V});
}

// One token: q1, k1 [1, H, K], v1 [1, H, V]; `copies` states [1, H, K, V] (rotated per step).
struct StepInputs {
  Tensor<float, 3> q, k, v;
  std::vector<Tensor<float, 4>> states;
  StepInputs(Index H, Index K, Index V, Index copies) : q(1, H, K), k(1, H, K), v(1, H, V) {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.f, kInputStd);
    for (auto* t : {&q, &k, &v})
      for (Index i = 0; i < t->size(); ++i) t->data()[i] = normal(rng);
    Tensor<float, 4> first(1, H, K, V);
    for (Index i = 0; i < first.size(); ++i) first.data()[i] = normal(rng);
    states.assign(static_cast<std::size_t>(copies), first);  // distinct buffers, the same values
  }
};

// Cold: enough state copies (256 MiB) that every step reads its state from memory: with 64 MiB
// (ssd_bench's choice) part of them still hit this machine's L3 (measured 6.5 us per step against
// 7.1-7.4 us with 256 MiB and 1 GiB).
constexpr double kColdStateBytes = double(Index(256) << 20);

template <bool Cold>
void BM_Decode(benchmark::State& state) {
  const Index H = state.range(0), K = state.range(1), V = state.range(2);
  const double state_bytes = double(H * K * V) * sizeof(float);
  const Index copies = Cold ? std::max<Index>(2, Index(kColdStateBytes / state_bytes)) : 1;
  StepInputs in(H, K, V, copies);
  const std::vector<float> slopes = linear::tnl_slopes(H, kLayer, kLayers);
  linear::LightningStepOptions o;
  o.slopes.emplace(slopes.data(), H);
  const ConstTensorView<float, 3> q(in.q.data(), in.q.dimensions()), k(in.k.data(), in.k.dimensions()),
      v(in.v.data(), in.v.dimensions());
  std::size_t i = 0;
  const ThreadCpuTimer timer;
  for (auto _ : state) {
    auto& s = in.states[i];
    i = i + 1 == in.states.size() ? 0 : i + 1;
    Tensor<float, 3> out = linear::lightning_attention_step(TensorView<float, 4>(s.data(), s.dimensions()), q, k, v, o);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double seconds = timer.seconds() / double(state.iterations());
  const double bytes = 2.0 * state_bytes;  // state read + written
  bench::set_rates(state, 0, 4.0 * double(H * K * V), bytes);
  bench::set_bound_fraction(state, "bw_bound", bytes / (bench::machine_limits().triad_gbps * 1e9));
  state.counters["ns_per_step"] = seconds * 1e9;
  state.counters["tokens_per_s"] = 1.0 / seconds;
}

// linear_attention, identity map without normaliser, or (Normalize) elu+1 with the normaliser.
template <bool Normalize>
void BM_LinearAttention(benchmark::State& state) {
  const bool causal = state.range(0) != 0;
  const Index L = state.range(1), H = state.range(2), K = state.range(3), V = state.range(4);
  Inputs in(L, H, K, V);
  linear::LinearAttentionOptions o;
  o.causal = causal;
  if (Normalize) o.feature_map = linear::FeatureMap::elu_plus_one, o.normalize = true;
  // One untimed call: it grows the heap (first-touch page faults, ~12 us per 4 KiB page in this VM);
  // the timed calls reuse that memory (kKeepFreedMemory). Without it a 1-iteration run
  // (--benchmark_min_time=0.05) counts the faults.
  benchmark::DoNotOptimize(linear::linear_attention(in.cq(), in.ck(), in.cv(), o).out.data());
  const ThreadCpuTimer timer;
  for (auto _ : state) {
    linear::LinearResult r = linear::linear_attention(in.cq(), in.ck(), in.cv(), o);
    benchmark::DoNotOptimize(r.out.data());
    benchmark::ClobberMemory();
  }
  const double seconds = timer.seconds() / double(state.iterations());
  // Flops: causal as the chunked form (no decay); non-causal 2·K·V per token and head for S = KᵀV
  // and as many for O = QS.
  const double flops = causal ? chunked_flops(L, H, K, V, std::min(linear::kLinearDefaultChunk, L))
                               : 4.0 * double(L * H * K * V);
  set_token_counters(state, seconds, double(L), flops);
}

void prefill_shapes(benchmark::internal::Benchmark* b, std::initializer_list<Index> lengths) {
  b->ArgNames({"L", "H", "K", "V"});
  for (const Index L : lengths) b->Args({L, kH, kK, kV});
  b->Unit(benchmark::kMillisecond);
}

// Denominators first: Dense, Reference, then Simd (L 1024 first: vs_chunked of Recurrent), Chunked
// (block 64 first: vs_default_block), Recurrent (vs_chunked).
BENCHMARK(BM_Dense)
    ->Name("BM_LightningAttention_Dense")
    ->ArgNames({"L", "H", "K", "V"})
    ->Args({1024, kH, kK, kV})
    ->Args({2048, kH, kK, kV})
    ->Args({4096, kH, kK, kV})
    ->Args({8192, kH, kK, kV})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Reference)->Name("BM_LightningAttention_Reference")->Apply([](auto* b) { prefill_shapes(b, {256}); });
BENCHMARK(BM_Simd)->Name("BM_LightningAttention_Simd")->Apply([](auto* b) {
  prefill_shapes(b, {1024, 2048, 4096, 8192, 16384, 65536, 256});
});
BENCHMARK(BM_Chunked)
    ->Name("BM_LightningAttention_Chunked")
    ->ArgNames({"L", "H", "K", "V", "block"})
    ->Args({4096, kH, kK, kV, 64})
    ->Args({4096, kH, kK, kV, 32})
    ->Args({4096, kH, kK, kV, 128})
    ->Args({4096, kH, kK, kV, 256})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ChunkMatmuls)->Name("BM_LightningAttention_ChunkMatmuls")->Apply([](auto* b) { prefill_shapes(b, {4096}); });
BENCHMARK(BM_Recurrent)->Name("BM_LightningAttention_Recurrent")->Apply([](auto* b) {
  prefill_shapes(b, {1024, 4096, 16384});
});
BENCHMARK(BM_Decode<true>)
    ->Name("BM_LightningAttention_Decode")
    ->ArgNames({"H", "K", "V"})
    ->Args({kH, kK, kV})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Decode<false>)
    ->Name("BM_LightningAttention_DecodeHot")
    ->ArgNames({"H", "K", "V"})
    ->Args({kH, kK, kV})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LinearAttention<false>)
    ->Name("BM_LinearAttention_Simd")
    ->ArgNames({"causal", "L", "H", "K", "V"})
    ->Args({0, 4096, kH, kK, kV})
    ->Args({1, 4096, kH, kK, kV})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LinearAttention<true>)
    ->Name("BM_LinearAttention_Normalized")
    ->ArgNames({"causal", "L", "H", "K", "V"})
    ->Args({1, 4096, kH, kK, kV})
    ->Unit(benchmark::kMillisecond);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
