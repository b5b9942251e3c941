#pragma once
// This machine's limits, measured once per process, for the "fraction of the machine's limit"
// counters of every benchmark (DESIGN §7).
//
// All numbers are for ONE thread, with the SIMD arch the benchmarks are compiled for
// (simd::default_arch, i.e. the -m flags of the TU: AVX-512 with -march=native on a Zen 4/5):
//
//   fma_gflops           peak vector FMA throughput, GFLOP/s (an FMA is 2 flops per lane): 16
//                        (AVX-512; 12 on 16-register archs) independent accumulator chains of
//                        simd::fmadd kept in registers, enough to cover FMA latency x throughput.
//                        On archs without FMA it is the mul+add throughput.
//   exp2_ns_per_element  simd::exp2 / simd::exp throughput, ns per float, over an L1-resident
//   exp_ns_per_element   buffer (4096 floats in [-20, 0], the decay range of the scan), load and
//                        store included.
//   read_gbps            streaming read of a 256 MiB buffer (vector sum, 8 accumulators), GB/s
//                        (1 GB = 1e9 bytes).
//   read2_gbps           the same read split over two threads (each streams half): the bandwidth
//                        bound of 2-thread benchmarks. (On this 2-vCPU VM it is close to read_gbps:
//                        one thread already saturates what the VM gets.)
//   triad_gbps           STREAM triad a[i] = b[i] + s*c[i] over three ~85 MiB arrays, GB/s counted
//                        as STREAM does: 12 bytes per element (two reads, one write; the
//                        write-allocate read of a[] is real traffic but not counted).
//
// Each probe takes ~0.1-0.3 s and keeps the best of several repetitions (the least disturbed).
// Beside them, stream_compute_kernel (below) is a probe that benchmarks run on their own buffers
// (neighborhood_bench's stream_limit_vs_L4096): how much the memory system slows a one-pass kernel
// at a given compute density once its rows come from DRAM.
//
// How to use them: a bound is the time the kernel could not beat on this machine given the one
// resource that limits it, and the benchmark reports bound / measured (1.0 = at the limit), see
// bench/support/counters.hpp:
//   exp-bound (selective scan: one exp per (b, l, d, n)):
//       bound_seconds = E * exp_ns_per_element * 1e-9            (E exps; exp2_ns_per_element for exp2)
//   FLOP-bound (attention tiles, GEMM-like work):
//       bound_seconds = F / (fma_gflops * 1e9)                   (F flops, an FMA counting 2)
//   bandwidth-bound (decode steps, elementwise ops over tensors larger than the caches):
//       bound_seconds = bytes_read / (read_gbps * 1e9), or (reads + writes) / (triad_gbps * 1e9)
// Multi-threaded benchmarks compare against threads * these numbers only for the compute bounds;
// memory bandwidth does not scale linearly with threads.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "tokenmix/simd/arch.hpp"
#include "tokenmix/simd/exp.hpp"

namespace tokenmix::bench {

struct MachineLimits {
  double fma_gflops;           // single-thread vector FMA peak, GFLOP/s
  double exp2_ns_per_element;  // single-thread simd::exp2 throughput, ns per float (L1-resident)
  double exp_ns_per_element;   // single-thread simd::exp throughput, ns per float (L1-resident)
  double read_gbps;            // single-thread streaming read, GB/s (256 MiB buffer)
  double read2_gbps;           // the same read on two threads, GB/s
  double triad_gbps;           // single-thread STREAM triad, GB/s (12 bytes per element)
};

inline const MachineLimits& machine_limits();

namespace detail {

#if defined(__GNUC__) || defined(__clang__)
#define TOKENMIX_BENCH_NOINLINE __attribute__((noinline))
// Makes the compiler assume `p`'s memory was read and written: keeps repeated passes over the
// same buffer from being merged or hoisted.
#define TOKENMIX_BENCH_CLOBBER(p) asm volatile("" : : "r"(p) : "memory")
#else
#define TOKENMIX_BENCH_NOINLINE
#define TOKENMIX_BENCH_CLOBBER(p) ((void)(p))
#endif

template <class T>
using aligned_vector = std::vector<T, xsimd::aligned_allocator<T, 64>>;

// Where results go so that the probes are not optimized away.
inline volatile float sink = 0.0f;
// Runtime constants the compiler cannot see through.
inline volatile float fma_multiplier = 0.999f;
inline volatile float fma_addend = 1e-3f;

// Independent FMA chains per arch: enough to cover latency (4 cycles) x throughput (2 per cycle) on
// Zen 4/5 and recent Intel twice over, without spilling (32 vector registers with AVX-512, 16 else).
template <class Arch>
constexpr int fma_chains = simd::is_avx512<Arch> ? 16 : 12;

// `iterations` rounds of fma_chains<Arch> independent acc = acc * m + a; returns a reduction of the
// accumulators. Flops = iterations * fma_chains * lanes * 2.
template <class Arch = simd::default_arch>
TOKENMIX_BENCH_NOINLINE float fma_peak_kernel(std::int64_t iterations) {
  using V = simd::vfloat<Arch>;
  constexpr int C = fma_chains<Arch>;
  const V m(fma_multiplier), a(fma_addend);
  V acc[C];
  for (int c = 0; c < C; ++c) acc[c] = V(1.0f + 0.01f * static_cast<float>(c));
  for (std::int64_t it = 0; it < iterations; ++it) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 16
#endif
    for (int c = 0; c < C; ++c) acc[c] = simd::fmadd<Arch>(acc[c], m, a);
  }
  V s = acc[0];
  for (int c = 1; c < C; ++c) s = s + acc[c];
  return simd::reduce_add<Arch>(s);
}

template <class Arch = simd::default_arch>
constexpr double fma_flops_per_iteration = 2.0 * fma_chains<Arch> * static_cast<double>(simd::lanes<Arch>);

// out = exp(in) (or exp2), n a multiple of the lane count, `passes` times.
template <bool Exp2, class Arch = simd::default_arch>
TOKENMIX_BENCH_NOINLINE void exp_kernel(const float* in, float* out, std::size_t n, std::int64_t passes) {
  constexpr std::size_t W = simd::lanes<Arch>;
  for (std::int64_t p = 0; p < passes; ++p) {
    for (std::size_t i = 0; i < n; i += W) {
      const auto x = simd::load<Arch>(in + i);
      simd::store<Arch>(out + i, Exp2 ? simd::exp2<Arch>(x) : simd::exp<Arch>(x));
    }
    TOKENMIX_BENCH_CLOBBER(out);
  }
}

// The L1-resident input of the exp probes: 4096 floats spread over [-20, 0].
inline aligned_vector<float> exp_probe_input() {
  aligned_vector<float> in(4096);
  for (std::size_t i = 0; i < in.size(); ++i)
    in[i] = -20.0f * static_cast<float>((i * 2654435761u) % 4096u) / 4095.0f;
  return in;
}

// Sum of p[0, n) with 8 vector accumulators (n a multiple of 8 * lanes).
template <class Arch = simd::default_arch>
TOKENMIX_BENCH_NOINLINE float read_kernel(const float* p, std::size_t n) {
  using V = simd::vfloat<Arch>;
  constexpr std::size_t W = simd::lanes<Arch>;
  V a0(0.0f), a1(0.0f), a2(0.0f), a3(0.0f), a4(0.0f), a5(0.0f), a6(0.0f), a7(0.0f);
  for (std::size_t i = 0; i < n; i += 8 * W) {
    a0 = a0 + simd::load<Arch>(p + i);
    a1 = a1 + simd::load<Arch>(p + i + W);
    a2 = a2 + simd::load<Arch>(p + i + 2 * W);
    a3 = a3 + simd::load<Arch>(p + i + 3 * W);
    a4 = a4 + simd::load<Arch>(p + i + 4 * W);
    a5 = a5 + simd::load<Arch>(p + i + 5 * W);
    a6 = a6 + simd::load<Arch>(p + i + 6 * W);
    a7 = a7 + simd::load<Arch>(p + i + 7 * W);
  }
  return simd::reduce_add<Arch>(((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)));
}

// a[i] = b[i] + s * c[i], n a multiple of lanes.
template <class Arch = simd::default_arch>
TOKENMIX_BENCH_NOINLINE void triad_kernel(float* a, const float* b, const float* c, float s, std::size_t n) {
  using V = simd::vfloat<Arch>;
  constexpr std::size_t W = simd::lanes<Arch>;
  const V vs(s);
  for (std::size_t i = 0; i < n; i += W)
    simd::store<Arch>(a + i, simd::fmadd<Arch>(vs, simd::load<Arch>(c + i), simd::load<Arch>(b + i)));
  TOKENMIX_BENCH_CLOBBER(a);
}

// The streaming-with-compute probe: the fastest a one-pass kernel over token rows can be at a given
// amount of in-register work per token, i.e. the machine's limit for "time linear in tokens" once
// the rows no longer fit the caches. Token t: loads row t of a, b and c (row_floats floats each,
// consecutive rows, a multiple of the lane count), software-prefetches their rows `ahead` tokens on
// (0: none; the hardware prefetchers alone), mixes the loads into fma_chains<Arch> accumulators, runs
// `rounds` rounds of one FMA per accumulator, and stores row t of out from the accumulators. No
// cache traffic beyond the four streams: what the probe loses at a size against a smaller one is
// what the memory system costs there.
template <class Arch = simd::default_arch>
TOKENMIX_BENCH_NOINLINE void stream_compute_kernel(const float* a, const float* b, const float* c, float* out,
                                                   std::size_t tokens, std::size_t row_floats, std::int64_t rounds,
                                                   std::size_t ahead) {
  using V = simd::vfloat<Arch>;
  constexpr int C = fma_chains<Arch>;
  constexpr std::size_t W = simd::lanes<Arch>;
  const V m(fma_multiplier), add(fma_addend);
  V acc[C];
  for (int i = 0; i < C; ++i) acc[i] = V(0.0f);
  for (std::size_t t = 0; t < tokens; ++t) {
    const std::size_t row = t * row_floats;
    if (ahead > 0 && t + ahead < tokens)
      for (std::size_t f = 0; f < row_floats; f += 64 / sizeof(float)) {
        __builtin_prefetch(a + row + ahead * row_floats + f);
        __builtin_prefetch(b + row + ahead * row_floats + f);
        __builtin_prefetch(c + row + ahead * row_floats + f);
      }
    for (std::size_t x = 0; x < row_floats / W; ++x) {
      const V in = simd::load<Arch>(a + row + x * W) + simd::load<Arch>(b + row + x * W) + simd::load<Arch>(c + row + x * W);
      acc[x % C] = simd::fmadd<Arch>(acc[x % C], m, in);
    }
    for (std::int64_t r = 0; r < rounds; ++r) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 16
#endif
      for (int i = 0; i < C; ++i) acc[i] = simd::fmadd<Arch>(acc[i], m, add);
    }
    for (std::size_t x = 0; x < row_floats / W; ++x) simd::store<Arch>(out + row + x * W, acc[x % C]);
  }
  TOKENMIX_BENCH_CLOBBER(out);
}

// The memory probes' buffer: 256 MiB (64 Mi floats), pages touched.
constexpr std::size_t kMemoryProbeFloats = std::size_t{64} << 20;

// Triad arrays carved out of one buffer of `total` floats: three equal parts, 4 KiB aligned.
struct TriadArrays {
  float *a, *b, *c;
  std::size_t n;
};
inline TriadArrays triad_arrays(float* buffer, std::size_t total) {
  const std::size_t n = total / 3 / 1024 * 1024;
  return {buffer, buffer + n, buffer + 2 * n, n};
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Best (smallest) time per unit of work of `run(units)`: calibrates `units` so that one repetition
// takes ~target_s, then keeps the best of `reps` repetitions.
template <class Run>
double best_seconds_per_unit(Run&& run, std::int64_t initial_units, double target_s, int reps) {
  std::int64_t units = std::max<std::int64_t>(1, initial_units);
  for (;;) {  // calibrate (also warms up caches, page tables and clocks)
    const auto t0 = std::chrono::steady_clock::now();
    run(units);
    const double t = seconds_since(t0);
    if (t >= target_s / 8 || units >= (std::int64_t{1} << 40)) {
      units = std::max<std::int64_t>(1, static_cast<std::int64_t>(static_cast<double>(units) * target_s / std::max(t, 1e-9)));
      break;
    }
    units *= 8;
  }
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run(units);
    best = std::min(best, seconds_since(t0) / static_cast<double>(units));
  }
  return best;
}

inline MachineLimits measure_machine_limits() {
  using Arch = simd::default_arch;
  MachineLimits m{};

  // FMA peak: ~3 x 50 ms.
  const double s_per_fma_iter = best_seconds_per_unit(
      [](std::int64_t units) { sink = fma_peak_kernel<Arch>(units); }, 1 << 12, 0.05, 3);
  m.fma_gflops = fma_flops_per_iteration<Arch> / s_per_fma_iter * 1e-9;

  // exp / exp2 throughput over 4096 L1-resident floats: ~3 x 40 ms each.
  const auto in = exp_probe_input();
  aligned_vector<float> out(in.size());
  const double n = static_cast<double>(in.size());
  m.exp_ns_per_element = best_seconds_per_unit(
      [&](std::int64_t passes) { exp_kernel<false, Arch>(in.data(), out.data(), in.size(), passes); },
      16, 0.04, 3) / n * 1e9;
  m.exp2_ns_per_element = best_seconds_per_unit(
      [&](std::int64_t passes) { exp_kernel<true, Arch>(in.data(), out.data(), in.size(), passes); },
      16, 0.04, 3) / n * 1e9;
  sink = out[1];

  // Memory: one 256 MiB buffer (zero-filled, so its pages are mapped), best of 6 passes each.
  {
    aligned_vector<float> buffer(kMemoryProbeFloats, 0.0f);
    const double read_bytes = static_cast<double>(buffer.size() * sizeof(float));
    sink = read_kernel<Arch>(buffer.data(), buffer.size());  // warm-up pass (TLB, prefetchers)
    double best = 1e300;
    for (int r = 0; r < 6; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      sink = read_kernel<Arch>(buffer.data(), buffer.size());
      best = std::min(best, seconds_since(t0));
    }
    m.read_gbps = read_bytes / best * 1e-9;

    // Two threads, each streaming one half. The second thread stays alive and spins between
    // repetitions, so a repetition does not include waking it (a halted vCPU can take long to wake).
    best = 1e300;
    const std::size_t half = buffer.size() / 2;
    constexpr int kReps = 8;
    std::atomic<int> go(-1), finished(-1);
    float other = 0.0f;
    std::thread second([&] {
      for (int r = 0; r < kReps; ++r) {
        while (go.load(std::memory_order_acquire) != r) {
        }
        other += read_kernel<Arch>(buffer.data() + half, half);
        finished.store(r, std::memory_order_release);
      }
    });
    for (int r = 0; r < kReps; ++r) {  // repetition 0 warms the second thread's TLB and prefetchers
      const auto t0 = std::chrono::steady_clock::now();
      go.store(r, std::memory_order_release);
      sink = read_kernel<Arch>(buffer.data(), half);
      while (finished.load(std::memory_order_acquire) != r) {
      }
      if (r > 0) best = std::min(best, seconds_since(t0));
    }
    second.join();
    sink = other;
    m.read2_gbps = read_bytes / best * 1e-9;

    const TriadArrays t = triad_arrays(buffer.data(), buffer.size());
    triad_kernel<Arch>(t.a, t.b, t.c, 0.5f, t.n);  // warm-up
    best = 1e300;
    for (int r = 0; r < 6; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      triad_kernel<Arch>(t.a, t.b, t.c, 0.5f, t.n);
      best = std::min(best, seconds_since(t0));
    }
    m.triad_gbps = 3.0 * sizeof(float) * static_cast<double>(t.n) / best * 1e-9;
  }
  return m;
}

}  // namespace detail

// Measured on first use (~1-2 s, most of it paging in the 256 MiB buffer), then cached for the
// process.
inline const MachineLimits& machine_limits() {
  static const MachineLimits limits = detail::measure_machine_limits();
  return limits;
}

}  // namespace tokenmix::bench
