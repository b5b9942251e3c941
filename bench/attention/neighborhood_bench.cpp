// Benchmarks of neighborhood attention (NA, NATTEN semantics, heads-last layout): the fused operator
// (attention/neighborhood_attention.hpp) in 1-D, 2-D and 3-D, the split path neighborhood_qk ->
// softmax -> neighborhood_av (attention/neighborhood_split.hpp, what A2SSM runs), the double oracle
// (reference/neighborhood_attention.hpp) on small shapes, and the dense softmax engine
// (attention/attention.hpp) on the same tokens. All at B 1, H 4, P = Pv 32, fp32, 1 thread (but FusedPool),
// non-causal, stride 1, no rpb (but FusedRpb); q, k, v standard normal.
//
//   BM_NeighborhoodAttention1d_Dense/L:4096/H:4/P:32                  dense, L 4096 and 16384
//   BM_NeighborhoodAttention2d_Dense/X:56/Y:56/H:4/P:32               dense on the 3136 tokens flattened
//   BM_NeighborhoodAttention1d_Reference/L:512/K:7/dil:1/H:4/P:32     the oracle
//   BM_NeighborhoodAttention2d_Reference/X:14/Y:14/K:7/dil:1/H:4/P:32 the oracle
//   BM_NeighborhoodAttention1d_Fused/L:<L>/K:<K>/dil:<d>/H:4/P:32     (L, K, d) in (4096, 7, 1),
//        (16384, 7, 1), (65536, 7, 1), (4096, 65, 1), (65536, 65, 1), (4096, 7, 4), (65536, 7, 4),
//        (4096, 65, 4), (65536, 65, 4) and (512, 7, 1) (the oracle's shape); dilation 4 takes position
//        order at K 7 and dilation groups at K 65 (see na_make_plan)
//   BM_NeighborhoodAttention2d_Fused/X:<X>/Y:<Y>/K:<K>/dil:<d>/H:4/P:32 X = Y in {56, 28}, K in
//        {7, 11, 13} per axis, d in {1, 2, 4} (combinations with K·d > X skipped), and 14×14 K 7 d 1
//        (the oracle's shape)
//   BM_NeighborhoodAttention3d_Fused/X:8/Y:28/Z:28/K:7/dil:1/H:4/P:32 kernel 3×7×7: K is the kernel
//        of the Y and Z axes, the X (depth) axis has kernel 3 (kDepthKernel)
//   BM_NeighborhoodAttention2d_FusedRpb/X:<X>/Y:<X>/K:7/dil:1/H:4/P:32 X in {56, 28}: the fused op with
//        rpb [H, 13, 13] (NAT's layers)
//   BM_NeighborhoodAttention{1,2,3}d_FusedPool/<shape>/threads:<n>    the fused op on a ThreadPool of n
//        = 1, 2, 4, 8, 16 threads (skipped above the machine's hardware threads), by the wall clock,
//        at 1-D L 65536 K 7, 2-D 56×56 K 7, 3-D 8×28×28 K 3×7×7
//   BM_NeighborhoodAttention2d_Split/X:56/Y:56/K:7/dil:1/H:4/P:32     neighborhood_qk (allocates the
//        [B, X, Y, H, K²] logits), simd::softmax_inplace over each row of K² logits (as hybrid::Mass),
//        neighborhood_av (allocates out)
//
// Counters: GFLOP/s of the useful products only: 2·(P + Pv) flops per (query, head, valid window
// key) (QKᵀ and PV; the window keys are ∏ K_a per query for non-causal NA, counted per axis for causal
// axes); dense: the same per (query, head, key), L² pairs. fma_bound = those flops at bench/limits'
// FMA peak / time; fma_bound_paired (Fused) the same with the FMA peak probe run alternately with the
// op (bench::paired_fma_fraction, 9 rounds, the median ratio), not once at start-up: robust to the
// VM's drift (the probe alone reads 200-276 GFLOP/s over a minute on the Zen 5 VM). tokens_per_s =
// B·∏ X_a tokens per second, ns_per_token = ns per token (plain numbers: the console shows
// "ns_per_token=1.79k" for 1790 ns).
//   vs_dense (Fused)      = this time / BM_NeighborhoodAttention{1,2}d_Dense's at the same tokens, H, P
//                           (1d L 4096, 16384; 2d 56×56): NA should win (< 1) once the window is under
//                           an eighth of the tokens (the K² < L/8 in 2-D)
//   vs_reference (Fused)  = this time / the Reference case of the same shape (1d L 512, 2d 14×14)
//   vs_fused (Split, FusedRpb) = this time / the Fused case of the same shape
//   speedup, efficiency (FusedPool) = wall time at threads 1 / this wall time, and that / threads
//   per_token_vs_L4096 (1d Fused, L > 4096) = time per token at L / time per token at L 4096 (same K,
//                           dilation): 1.0 when the time is linear in L (the bound is 1.2).
//                           Measured by alternation (support/paired.hpp): 9 rounds of calls at L then
//                           at L 4096, the median of the rounds' ratios, robust to the VM's drift
//   per_token_vs_L4096_huge_pages (same cases) = per_token_vs_L4096 with the tensors of both sizes in
//                           memory advised for transparent huge pages (support/huge_pages.hpp; the
//                           others are Eigen-like 64-byte-aligned allocations: 4 KiB pages under THP
//                           "madvise"; these are 2 MiB aligned, so also spaced otherwise)
//   per_token_vs_L4096_spaced (same cases) = per_token_vs_L4096 with each size's q, k, v and out in
//                           one allocation, 64 KiB apart past their sizes (4 KiB pages): without the
//                           collisions that separately allocated 32 MiB tensors suffer (see Pages)
//   stream_limit_vs_L4096 (same cases) = the same ratio for limits.hpp's streaming-with-compute probe
//                           (stream_compute_kernel: the same q, k, v and out rows, in-register work
//                           per token sized to the op's time at L 4096): what this machine's memory
//                           costs a one-pass kernel that reads each row once, in order, at the op's
//                           compute density; per_token_vs_L4096 can only approach it
// Every time is the CPU time of the benchmark's thread (the CPU column, which Google Benchmark's rates
// use), the ratios and per-token counters included: on this shared 2-vCPU VM the wall time (the Time
// column) also counts the time other processes hold the core (seen at 2× the CPU time).
// The ratios need the case they divide by to have run first in the same process: the families are
// registered Dense, Reference, Fused, FusedRpb, Split, so a --benchmark_filter must keep the
// denominators too.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <tuple>

#include <time.h>  // clock_gettime(CLOCK_THREAD_CPUTIME_ID): the thread CPU clock Google Benchmark uses

#include "support/counters.hpp"
#include "support/huge_pages.hpp"
#include "support/limits.hpp"
#include "support/main.hpp"
#include "support/paired.hpp"
#include "tokenmix/attention/attention.hpp"
#include "tokenmix/attention/neighborhood_attention.hpp"
#include "tokenmix/attention/neighborhood_split.hpp"
#include "tokenmix/attention/neighborhood_types.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/simd/activations.hpp"
#include "tokenmix/reference/neighborhood_attention.hpp"

namespace {

using namespace tokenmix;

constexpr Index kDepthKernel = 3;  // kernel of the first (depth) axis of the 3-D case: 3×K×K
constexpr Index kScalingBase = 4096;  // per_token_vs_L4096's length (1-D)

// Standard normal q, k, v [1, X.., H, P] and an output of the same shape; Pages::huge puts each in
// memory advised for transparent huge pages (support/huge_pages.hpp), Pages::standard in the
// 64-byte-aligned allocations Eigen tensors get (4 KiB pages where THP is "madvise", as here), and
// Pages::spaced all four in one such allocation, kSpacedGap floats apart past their sizes. Separately
// allocated 32 MiB tensors (1-D L 65536) land 32 MiB + 4 KiB apart (the allocator's mappings and
// their headers), and at that spacing q's and v's lines (64 MiB + 8 KiB apart) share an L1 set and
// the way predictor's tag (bits 12-27 XORed in pairs) for half the lines, so that the two cannot stay
// in L1 together, which the kernel had them do. An alternating driver, L 65536 per token of L
// 4096, all on 4 KiB pages, with the value rows prefetched with the others: 1.50x at 32 MiB + 4 KiB,
// 1.12-1.22 at + 8 KiB, 1.04-1.08 at + 12 KiB, 1.29-1.41 at + 16 KiB, 1.04-1.09 at + 64 KiB;
// 1.48-1.60 with only q and v at their 64 MiB + 8 KiB, 1.07-1.22 with any other pair at its distance.
// The kernel now prefetches the value rows later (neighborhood_kernel.hpp, value_ahead): 1.16-1.19
// with only q and v at their distance. Spaced shows the op's scaling at another spacing.
enum class Pages { standard, huge, spaced };
constexpr Index kSpacedGap = 16384;  // 64 KiB

template <int N>
struct Inputs {
  std::array<bench::FloatBuffer, 4> storage;  // spaced: the one allocation in storage[0]
  TensorView<float, N> q, k, v, out;
  explicit Inputs(const std::array<Index, N>& dims, Pages pages = Pages::standard)
      : storage(buffers(dims, pages)),
        q(tensor_at(0, dims, pages), dims), k(tensor_at(1, dims, pages), dims), v(tensor_at(2, dims, pages), dims),
        out(tensor_at(3, dims, pages), dims) {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.f, 1.f);
    for (auto* t : {&q, &k, &v})
      for (Index i = 0; i < t->size(); ++i) t->data()[i] = normal(rng);
    std::fill_n(out.data(), out.size(), 0.0f);
  }
  static std::size_t floats(const std::array<Index, N>& dims) {
    std::size_t n = 1;
    for (const Index d : dims) n *= std::size_t(d);
    return n;
  }
  static std::array<bench::FloatBuffer, 4> buffers(const std::array<Index, N>& dims, Pages pages) {
    const std::size_t n = floats(dims);
    if (pages == Pages::spaced) return {bench::aligned_floats(4 * (n + std::size_t(kSpacedGap))), nullptr, nullptr, nullptr};
    const auto one = [&] { return pages == Pages::huge ? bench::huge_page_floats(n) : bench::aligned_floats(n); };
    return {one(), one(), one(), one()};
  }
  float* tensor_at(int i, const std::array<Index, N>& dims, Pages pages) const {
    if (pages != Pages::spaced) return storage[std::size_t(i)].get();
    return storage[0].get() + std::size_t(i) * (floats(dims) + std::size_t(kSpacedGap));
  }
  ConstTensorView<float, N> cq() const { return ConstTensorView<float, N>(q.data(), q.dimensions()); }
  ConstTensorView<float, N> ck() const { return ConstTensorView<float, N>(k.data(), k.dimensions()); }
  ConstTensorView<float, N> cv() const { return ConstTensorView<float, N>(v.data(), v.dimensions()); }
  TensorView<float, N> out_view() { return TensorView<float, N>(out.data(), out.dimensions()); }
};

// One NA case from the benchmark arguments: R extents, then K, dil, H, P.
template <int R>
struct Case {
  std::array<Index, R> extent{};
  Index K, dil, H, P, tokens = 1;
  attention::NeighborhoodParams<R> params;

  explicit Case(const benchmark::State& state)
      : K(state.range(R)), dil(state.range(R + 1)), H(state.range(R + 2)), P(state.range(R + 3)) {
    for (int a = 0; a < R; ++a) extent[std::size_t(a)] = state.range(a), tokens *= extent[std::size_t(a)];
    params = attention::NeighborhoodParams<R>::uniform(K, dil);
    if (R == 3) params.kernel_size[0] = kDepthKernel;
  }
  std::array<Index, R + 3> dims() const {
    std::array<Index, R + 3> d{};
    d[0] = 1;
    for (int a = 0; a < R; ++a) d[std::size_t(a + 1)] = extent[std::size_t(a)];
    d[std::size_t(R + 1)] = H, d[std::size_t(R + 2)] = P;
    return d;
  }
  // Valid (query, key) pairs of one head: the neighbourhood is the product of the per-axis windows, so
  // Σ_tokens ∏_a count_a = ∏_a Σ_{x_a} count_a(x_a) (exactly ∏ K_a per query unless an axis is causal).
  double pairs() const {
    double total = 1;
    for (int a = 0; a < R; ++a) {
      const std::size_t s = std::size_t(a);
      double axis = 0;
      for (Index i = 0; i < extent[s]; ++i)
        axis += double(attention::neighborhood_axis_window(i, extent[s], params.kernel_size[s], params.dilation[s],
                                                           params.stride[s], params.causal[s])
                           .count);
      total *= axis;
    }
    return total;
  }
  std::tuple<int, std::array<Index, 3>, Index, Index, Index, Index> key() const {
    std::array<Index, 3> e{};
    for (int a = 0; a < R; ++a) e[std::size_t(a)] = extent[std::size_t(a)];
    return {R, e, K, dil, H, P};
  }
};

using CaseKey = std::tuple<int, std::array<Index, 3>, Index, Index, Index, Index>;

using bench::ThreadCpuTimer;

// CPU seconds per iteration, filled by the cases that serve as denominators (run first).
std::map<std::tuple<Index, Index, Index>, double>& dense_seconds() {  // (tokens, H, P)
  static std::map<std::tuple<Index, Index, Index>, double> seconds;
  return seconds;
}
std::map<CaseKey, double>& reference_seconds() {
  static std::map<CaseKey, double> seconds;
  return seconds;
}
std::map<CaseKey, double>& fused_seconds() {
  static std::map<CaseKey, double> seconds;
  return seconds;
}
std::map<CaseKey, double>& one_thread_wall_seconds() {  // BM_FusedPool at threads 1
  static std::map<CaseKey, double> seconds;
  return seconds;
}

// The useful flops of `pairs` (query, key) pairs per head: QKᵀ and PV, an FMA counting 2.
double na_flops(double pairs, Index H, Index P, Index Pv) { return 2.0 * double(P + Pv) * pairs * double(H); }

// GFLOP/s and fma_bound for `pairs` (query, key) pairs per head; tokens_per_s and ns_per_token from
// `seconds`, the CPU seconds per iteration.
void set_na_counters(benchmark::State& state, double seconds, double tokens, double pairs, Index H, Index P, Index Pv) {
  const double flops = na_flops(pairs, H, P, Pv);
  bench::set_rates(state, 0, flops, 0);
  bench::set_bound_fraction(state, "fma_bound", flops / (bench::machine_limits().fma_gflops * 1e9));
  state.counters["tokens_per_s"] = tokens / seconds;
  state.counters["ns_per_token"] = seconds * 1e9 / tokens;
}

// Adds counter `name` = seconds / the denominator found under `key` in `table`, if it ran.
template <class Map, class Key>
void set_ratio(benchmark::State& state, const char* name, double seconds, const Map& table, const Key& key) {
  const auto it = table.find(key);
  if (it != table.end()) state.counters[name] = seconds / it->second;
}

// Dense softmax attention over the tokens of extents state.range(0..R-1) flattened (non-causal).
template <int R>
void BM_Dense(benchmark::State& state) {
  Index L = 1;
  for (int a = 0; a < R; ++a) L *= state.range(a);
  const Index H = state.range(R), P = state.range(R + 1);
  Inputs<4> in({1, L, H, P});
  const attention::AttentionOptions o;
  const ThreadCpuTimer timer;
  for (auto _ : state) {
    attention::attention(in.cq(), in.ck(), in.cv(), o, in.out_view(), nullptr);
    benchmark::DoNotOptimize(in.out.data());
  }
  const double seconds = timer.seconds() / double(state.iterations());
  dense_seconds()[{L, H, P}] = seconds;
  set_na_counters(state, seconds, double(L), double(L) * double(L), H, P, P);
}

template <int R>
void BM_Reference(benchmark::State& state) {
  const Case<R> c(state);
  Inputs<R + 3> in(c.dims());
  const ThreadCpuTimer timer;
  for (auto _ : state)
    benchmark::DoNotOptimize(ref::neighborhood_attention<R>(in.cq(), in.ck(), in.cv(), c.params).data());
  const double seconds = timer.seconds() / double(state.iterations());
  reference_seconds()[c.key()] = seconds;
  set_na_counters(state, seconds, double(c.tokens), c.pairs(), c.H, c.P, c.P);
}

template <int R>
void run_fused(const Case<R>& c, Inputs<R + 3>& in, const Eigen::ThreadPoolDevice* device = nullptr) {
  attention::neighborhood_attention<R>(in.cq(), in.ck(), in.cv(), c.params, std::nullopt, in.out_view(), nullptr, device);
  benchmark::DoNotOptimize(in.out.data());
}

// The machine's limit for per_token_vs_L4096: limits.hpp's streaming-with-compute probe over the same
// q, k, v and out token rows, its in-register work per token sized so that at L 4096 it takes
// base_seconds (the op's time there), run at L and at L 4096 alternately; the smallest ratio of the
// times (not per token) over software prefetch distances of 0, 4 and 16 tokens.
template <int N>
double stream_limit_per_token_ratio(Inputs<N>& in, Inputs<N>& base_in, double base_seconds) {
  const std::size_t row = std::size_t(in.q.dimension(N - 2) * in.q.dimension(N - 1));  // H·P floats a token
  if (row % simd::lanes<simd::default_arch> != 0) return std::numeric_limits<double>::quiet_NaN();  // probe's rows
  const auto probe = [row](Inputs<N>& x, std::int64_t rounds, std::size_t ahead) {
    bench::detail::stream_compute_kernel(x.q.data(), x.k.data(), x.v.data(), x.out.data(), std::size_t(x.q.size()) / row,
                                         row, rounds, ahead);
  };
  const auto seconds = [&](std::int64_t rounds) {  // the best of 5 calls at L 4096
    double best = 1e300;
    for (int i = 0; i < 5; ++i) {
      const ThreadCpuTimer timer;
      probe(base_in, rounds, 0);
      best = std::min(best, timer.seconds());
    }
    return best;
  };
  constexpr std::int64_t kSlopeRounds = 64;
  const double t0 = seconds(0), slope = (seconds(kSlopeRounds) - t0) / double(kSlopeRounds);
  const std::int64_t rounds = std::max<std::int64_t>(0, std::llround((base_seconds - t0) / slope));
  double best = 1e300;
  for (const std::size_t ahead : {0, 4, 16})
    best = std::min(best, bench::paired_ratio(9, [&] { probe(in, rounds, ahead); }, [&] { probe(base_in, rounds, ahead); }).ratio);
  return best;
}

template <int R>
void BM_Fused(benchmark::State& state) {
  const Case<R> c(state);
  Inputs<R + 3> in(c.dims());
  const ThreadCpuTimer timer;
  for (auto _ : state) run_fused(c, in);
  const double seconds = timer.seconds() / double(state.iterations());
  if (R == 1 && c.tokens > kScalingBase) {  // per_token_vs_L4096: calls at L and at L 4096 alternately
    Case<R> base = c;
    base.extent[0] = kScalingBase, base.tokens = kScalingBase;
    Inputs<R + 3> base_in(base.dims());
    const bench::PairedRatio r = bench::paired_ratio(9, [&] { run_fused(c, in); }, [&] { run_fused(base, base_in); });
    state.counters["per_token_vs_L4096"] = r.ratio * double(kScalingBase) / double(c.tokens);
    state.counters["stream_limit_vs_L4096"] =
        stream_limit_per_token_ratio(in, base_in, r.denominator_seconds) * double(kScalingBase) / double(c.tokens);
    // The same ratio with both sizes' tensors on transparent huge pages (L's tensors span 32768
    // pages of 4 KiB; L 4096's stay within the TLB's reach).
    Inputs<R + 3> huge_in(c.dims(), Pages::huge), huge_base_in(base.dims(), Pages::huge);
    const bench::PairedRatio huge =
        bench::paired_ratio(9, [&] { run_fused(c, huge_in); }, [&] { run_fused(base, huge_base_in); });
    state.counters["per_token_vs_L4096_huge_pages"] = huge.ratio * double(kScalingBase) / double(c.tokens);
    // And with each size's four tensors in one allocation, 64 KiB apart past their sizes (see Pages).
    Inputs<R + 3> spaced_in(c.dims(), Pages::spaced), spaced_base_in(base.dims(), Pages::spaced);
    const bench::PairedRatio spaced =
        bench::paired_ratio(9, [&] { run_fused(c, spaced_in); }, [&] { run_fused(base, spaced_base_in); });
    state.counters["per_token_vs_L4096_spaced"] = spaced.ratio * double(kScalingBase) / double(c.tokens);
  }
  fused_seconds()[c.key()] = seconds;
  set_ratio(state, "vs_dense", seconds, dense_seconds(), std::make_tuple(c.tokens, c.H, c.P));
  set_ratio(state, "vs_reference", seconds, reference_seconds(), c.key());
  set_na_counters(state, seconds, double(c.tokens), c.pairs(), c.H, c.P, c.P);
  state.counters["fma_bound_paired"] =
      bench::paired_fma_fraction([&] { run_fused(c, in); }, na_flops(c.pairs(), c.H, c.P, c.P));
}

// The fused operator with NATTEN's relative positional bias (NAT / DiNAT layers): rpb [H, 2K-1, ..]
// standard normal.
template <int R>
void BM_FusedRpb(benchmark::State& state) {
  const Case<R> c(state);
  Inputs<R + 3> in(c.dims());
  std::array<Index, R + 1> rpb_dims{};
  rpb_dims[0] = c.H;
  for (int a = 0; a < R; ++a) rpb_dims[std::size_t(a + 1)] = 2 * c.params.kernel_size[std::size_t(a)] - 1;
  Tensor<float, R + 1> table(rpb_dims);
  std::mt19937 rng(8);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (Index i = 0; i < table.size(); ++i) table.data()[i] = normal(rng);
  const ConstTensorView<float, R + 1> rpb(table.data(), table.dimensions());
  const ThreadCpuTimer timer;
  for (auto _ : state) {
    attention::neighborhood_attention<R>(in.cq(), in.ck(), in.cv(), c.params, rpb, in.out_view(), nullptr);
    benchmark::DoNotOptimize(in.out.data());
  }
  const double seconds = timer.seconds() / double(state.iterations());
  set_ratio(state, "vs_fused", seconds, fused_seconds(), c.key());
  set_na_counters(state, seconds, double(c.tokens), c.pairs(), c.H, c.P, c.P);
}

// The fused operator on a tokenmix::ThreadPool of `threads` threads, timed by the wall clock (the
// caller's thread waits for the others). Cases with more threads than this machine runs at once
// are skipped.
template <int R>
void BM_FusedPool(benchmark::State& state) {
  const Case<R> c(state);
  const int threads = int(state.range(R + 4));
  if (threads > int(std::thread::hardware_concurrency())) {
    state.SkipWithError("more threads than this machine has");
    return;
  }
  Inputs<R + 3> in(c.dims());
  const ThreadPool pool(threads);
  run_fused(c, in, pool.device());  // first touch, thread start-up
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) run_fused(c, in, pool.device());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / double(state.iterations());
  if (threads == 1) one_thread_wall_seconds()[c.key()] = seconds;
  if (const auto it = one_thread_wall_seconds().find(c.key()); it != one_thread_wall_seconds().end()) {
    state.counters["speedup"] = it->second / seconds;
    state.counters["efficiency"] = it->second / seconds / threads;
  }
  set_na_counters(state, seconds, double(c.tokens), c.pairs(), c.H, c.P, c.P);
}

template <int R>
void BM_Split(benchmark::State& state) {
  const Case<R> c(state);
  Inputs<R + 3> in(c.dims());
  const ThreadCpuTimer timer;
  for (auto _ : state) {
    Tensor<float, R + 3> logits = attention::neighborhood_qk<R>(in.cq(), in.ck(), c.params);
    const Index S = logits.dimension(R + 2);  // each row of S logits, as hybrid::Mass does
    for (Index r = 0; r < logits.size() / S; ++r) simd::softmax_inplace(logits.data() + r * S, S);
    const ConstTensorView<float, R + 3> weights(logits.data(), logits.dimensions());
    benchmark::DoNotOptimize(attention::neighborhood_av<R>(weights, in.cv(), c.params).data());
  }
  const double seconds = timer.seconds() / double(state.iterations());
  set_ratio(state, "vs_fused", seconds, fused_seconds(), c.key());
  set_na_counters(state, seconds, double(c.tokens), c.pairs(), c.H, c.P, c.P);
}

constexpr Index kH = 4, kP = 32;

void fused_1d_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"L", "K", "dil", "H", "P"});
  static const Index shapes[][3] = {{4096, 7, 1},  {16384, 7, 1}, {65536, 7, 1},  {4096, 65, 1}, {65536, 65, 1},
                                    {4096, 7, 4},  {65536, 7, 4}, {4096, 65, 4},  {65536, 65, 4}, {512, 7, 1}};  // (L, K, dil)
  for (const auto& s : shapes) b->Args({s[0], s[1], s[2], kH, kP});
  b->Unit(benchmark::kMillisecond);
}

void fused_2d_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"X", "Y", "K", "dil", "H", "P"});
  for (const Index X : {56, 28})
    for (const Index K : {7, 11, 13})
      for (const Index d : {1, 2, 4})
        if (K * d <= X) b->Args({X, X, K, d, kH, kP});
  b->Args({14, 14, 7, 1, kH, kP});
  b->Unit(benchmark::kMillisecond);
}

// Denominators first (Dense, Reference), then Fused, then FusedRpb and Split (see the header).
BENCHMARK(BM_Dense<1>)
    ->Name("BM_NeighborhoodAttention1d_Dense")
    ->ArgNames({"L", "H", "P"})
    ->Args({4096, kH, kP})
    ->Args({16384, kH, kP})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Dense<2>)
    ->Name("BM_NeighborhoodAttention2d_Dense")
    ->ArgNames({"X", "Y", "H", "P"})
    ->Args({56, 56, kH, kP})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Reference<1>)
    ->Name("BM_NeighborhoodAttention1d_Reference")
    ->ArgNames({"L", "K", "dil", "H", "P"})
    ->Args({512, 7, 1, kH, kP})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Reference<2>)
    ->Name("BM_NeighborhoodAttention2d_Reference")
    ->ArgNames({"X", "Y", "K", "dil", "H", "P"})
    ->Args({14, 14, 7, 1, kH, kP})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Fused<1>)->Name("BM_NeighborhoodAttention1d_Fused")->Apply(fused_1d_shapes);
BENCHMARK(BM_Fused<2>)->Name("BM_NeighborhoodAttention2d_Fused")->Apply(fused_2d_shapes);
BENCHMARK(BM_Fused<3>)
    ->Name("BM_NeighborhoodAttention3d_Fused")
    ->ArgNames({"X", "Y", "Z", "K", "dil", "H", "P"})
    ->Args({8, 28, 28, 7, 1, kH, kP})
    ->Unit(benchmark::kMillisecond);
// Threads 1, 2, 4, 8, 16 of the fused op at the tracked shapes (1-D at L 65536).
void pool_threads(benchmark::internal::Benchmark* b, std::vector<Index> shape) {
  shape.push_back(0);
  for (const Index threads : {1, 2, 4, 8, 16}) {
    shape.back() = threads;
    b->Args(shape);
  }
  b->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_FusedPool<1>)
    ->Name("BM_NeighborhoodAttention1d_FusedPool")
    ->ArgNames({"L", "K", "dil", "H", "P", "threads"})
    ->Apply([](benchmark::internal::Benchmark* b) { pool_threads(b, {65536, 7, 1, kH, kP}); });
BENCHMARK(BM_FusedPool<2>)
    ->Name("BM_NeighborhoodAttention2d_FusedPool")
    ->ArgNames({"X", "Y", "K", "dil", "H", "P", "threads"})
    ->Apply([](benchmark::internal::Benchmark* b) { pool_threads(b, {56, 56, 7, 1, kH, kP}); });
BENCHMARK(BM_FusedPool<3>)
    ->Name("BM_NeighborhoodAttention3d_FusedPool")
    ->ArgNames({"X", "Y", "Z", "K", "dil", "H", "P", "threads"})
    ->Apply([](benchmark::internal::Benchmark* b) { pool_threads(b, {8, 28, 28, 7, 1, kH, kP}); });
BENCHMARK(BM_FusedRpb<2>)
    ->Name("BM_NeighborhoodAttention2d_FusedRpb")
    ->ArgNames({"X", "Y", "K", "dil", "H", "P"})
    ->Args({56, 56, 7, 1, kH, kP})
    ->Args({28, 28, 7, 1, kH, kP})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Split<2>)
    ->Name("BM_NeighborhoodAttention2d_Split")
    ->ArgNames({"X", "Y", "K", "dil", "H", "P"})
    ->Args({56, 56, 7, 1, kH, kP})
    ->Unit(benchmark::kMillisecond);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
