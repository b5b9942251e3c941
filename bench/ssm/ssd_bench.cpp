// Benchmarks of ssm::ssd (Mamba-2 SSD) and ssm::ssd_state_update against the oracle and this
// machine's limits (bench/limits).
//
//   BM_SSD_Auto/B:1/L:2048/H:32/P:64/N:128        the entry point's choice (SsdAlgorithm::auto_select)
//   BM_SSD_Chunked/...                            SsdAlgorithm::chunked, default chunk size
//   BM_SSD_Recurrent/...                          SsdAlgorithm::recurrent
//   BM_SSD_ChunkedMatmuls/...                     only the matrix products of the chunked form, on its
//                                                 operand shapes and strides, through its micro-kernel
//   BM_SSD_Reference/B:1/L:128/...                the oracle (plain loops, float accumulation)
//   BM_SSDStateUpdate_Simd/B:1/H:32/P:64/N:128    one decode step, cold state (rotated copies)
//
// Mamba-2 configuration (mamba2-2.7b's head dim 64, d_state 128; 32 heads = d_ssm 2048), G = 1:
// dt_bias + softplus, D [H], z gate. All on the calling thread.
// items_per_second = B·L (tokens/s). Counters:
//   ns_per_token_channel  measured time / (B·L·H·P)   (JSON: plain number; the console may print
//                         it with a rate suffix)
//   GFLOP/s               5 flops per (t, h, p, n) of the recurrence (dA·s, (dt·x)·B, +, s·C, +)
//                         for every form: the same work unit, so the rates compare directly
//   fma_bound             (chunked forms) the flops of the chunked form's matrix products (C·Bᵀ per
//                         group, C·S_in, the masked M·X, the state update Bᵀ·(w·X)), at this
//                         machine's fma_gflops, over the measured time: for BM_SSD_Chunked a lower
//                         bound of the products' efficiency (the time includes everything else),
//                         for BM_SSD_ChunkedMatmuls the products' own efficiency.
//   fma_bound_paired      (ChunkedMatmuls) the same fraction with the FMA peak probe run alternately
//                         with the products (bench::paired_fma_fraction), not once at start-up: robust
//                         to the drift of this shared VM's speed over a run.
//   bw_bound              (state update) compulsory bytes (state read + written, x, z, out, B, C)
//                         at read_gbps over the measured time.

#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "support/chunk_products.hpp"
#include "support/counters.hpp"
#include "support/limits.hpp"
#include "support/main.hpp"
#include "support/paired.hpp"
#include "tokenmix/reference/ssd.hpp"
#include "tokenmix/ssm/ssd.hpp"

namespace {

using namespace tokenmix;

struct SsdInputs {
  Tensor<float, 4> x, z, B, C;  // [B, L, H, P] x2, [B, L, 1, N] x2
  Tensor<float, 3> dt;          // [B, L, H]
  Tensor<float, 1> A, D, bias;  // [H]

  SsdInputs(Index batch, Index length, Index heads, Index head_dim, Index n_state)
      : x(batch, length, heads, head_dim), z(batch, length, heads, head_dim), B(batch, length, 1, n_state),
        C(batch, length, 1, n_state), dt(batch, length, heads), A(heads), D(heads), bias(heads) {
    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.f, 1.f);
    for (auto* t : {&x, &z, &B, &C})
      for (Index i = 0; i < t->size(); ++i) t->data()[i] = normal(rng);
    for (Index i = 0; i < dt.size(); ++i) dt.data()[i] = normal(rng);
    std::uniform_real_distribution<float> a_init(1.f, 16.f);  // Mamba2's A_init_range
    for (Index h = 0; h < heads; ++h) A(h) = -a_init(rng), D(h) = 1.f, bias(h) = -4.f;  // softplus(-4 + dt) ~ 0.02
  }
  ssm::SsdOptions options(ssm::SsdAlgorithm algorithm) const {
    ssm::SsdOptions o;
    o.D = D, o.z = z, o.dt_bias = bias, o.dt_softplus = true, o.algorithm = algorithm;
    return o;
  }
};

// Flops of the chunked form's matrix products for the whole call (an FMA counts 2).
double chunked_matmul_flops(Index batch, Index length, Index heads, Index P, Index N, Index groups, Index chunk) {
  double flops = 0;
  for (Index t0 = 0; t0 < length; t0 += chunk) {
    const double q = double(std::min(chunk, length - t0));
    const double tri = q * (q + 1) / 2;
    flops += double(groups) * 2 * tri * double(N);                             // C·Bᵀ (lower triangle)
    flops += double(heads) * (2 * q * double(N * P) + 2 * tri * double(P) + 2 * q * double(N * P));  // C·S, M·X, state
  }
  return flops * double(batch);
}

void set_ssd_counters(benchmark::State& state, Index batch, Index length, Index heads, Index P, Index N) {
  const double token_channels = double(batch * length * heads * P);
  bench::set_rates(state, double(batch * length), 5.0 * token_channels * double(N), 0);
  state.counters["ns_per_token_channel"] =
      benchmark::Counter(token_channels * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

template <class Run>
void run_ssd_benchmark(benchmark::State& state, Run&& run) {
  const Index batch = state.range(0), length = state.range(1), heads = state.range(2), P = state.range(3),
              N = state.range(4);
  const SsdInputs in(batch, length, heads, P, N);
  Tensor<float, 4> out(batch, length, heads, P), last(batch, heads, P, N);
  TensorView<float, 4> out_view(out.data(), out.dimensions()), last_view(last.data(), last.dimensions());
  // Touch the outputs first: at L = 8192 `out` is 64 MiB, and its first-touch page faults would
  // otherwise land in the first iterations (measured 3x the kernel's time with few iterations).
  out.setZero(), last.setZero();
  for (auto _ : state) {
    run(in, out_view, last_view);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_ssd_counters(state, batch, length, heads, P, N);
}

void BM_SSD_Auto(benchmark::State& state) {
  run_ssd_benchmark(state, [](const SsdInputs& in, TensorView<float, 4>& out, TensorView<float, 4>& last) {
    ssm::ssd(in.x, in.dt, in.A, in.B, in.C, in.options(ssm::SsdAlgorithm::auto_select), out, &last);
  });
}

void BM_SSD_Chunked(benchmark::State& state) {
  run_ssd_benchmark(state, [](const SsdInputs& in, TensorView<float, 4>& out, TensorView<float, 4>& last) {
    ssm::ssd(in.x, in.dt, in.A, in.B, in.C, in.options(ssm::SsdAlgorithm::chunked), out, &last);
  });
  const Index chunk = std::min(ssm::kSsdDefaultChunk, state.range(1));
  const double flops = chunked_matmul_flops(state.range(0), state.range(1), state.range(2), state.range(3),
                                            state.range(4), 1, chunk);
  bench::set_bound_fraction(state, "fma_bound", flops / (bench::machine_limits().fma_gflops * 1e9));
}

void BM_SSD_Recurrent(benchmark::State& state) {
  run_ssd_benchmark(state, [](const SsdInputs& in, TensorView<float, 4>& out, TensorView<float, 4>& last) {
    ssm::ssd(in.x, in.dt, in.A, in.B, in.C, in.options(ssm::SsdAlgorithm::recurrent), out, &last);
  });
}

void BM_SSD_Reference(benchmark::State& state) {
  run_ssd_benchmark(state, [](const SsdInputs& in, TensorView<float, 4>& out, TensorView<float, 4>& last) {
    ref::ssd<float>(in.x, in.dt, in.A, in.B, in.C, in.options(ssm::SsdAlgorithm::auto_select), out, &last);
  });
}

// Only the matrix products of the chunked form, per chunk: CB = C·Bᵀ [Q, Q] (K = N, lower
// triangle), then per head out = C·S [Q, P] (K = N) + M·X (causal, K <= l), and S += Bᵀ·Xw [N, P]
// (K = Q), with the kernel's micro-kernel, operand layouts and strides, but no exps, masks,
// epilogues or transposes (operands hold arbitrary finite values).
void BM_SSD_ChunkedMatmuls(benchmark::State& state) {
  using Kernel = ssm::detail::SsdChunkedKernel<simd::default_arch>;
  constexpr Index W = Kernel::W;
  const Index batch = state.range(0), length = state.range(1), heads = state.range(2), P = state.range(3),
              N = state.range(4);
  const Index Q = std::min(ssm::kSsdDefaultChunk, length), QP = (Q + W - 1) / W * W, PP = (P + W - 1) / W * W;
  const SsdInputs in(batch, length, heads, P, N);
  using AlignedVec = std::vector<float, xsimd::aligned_allocator<float, 64>>;
  AlignedVec S(static_cast<std::size_t>(heads * N * PP), 0.01f), BT(static_cast<std::size_t>(N * QP), 0.5f),
      CB(static_cast<std::size_t>(Q * QP)), M(static_cast<std::size_t>(Q * QP), 0.25f),
      Xw(static_cast<std::size_t>(Q * PP), 0.5f), Y(static_cast<std::size_t>(Q * PP));
  auto products = [&] {
    for (Index b = 0; b < batch; ++b)
      for (Index t0 = 0; t0 < length; t0 += Q) {
        const Index Qc = std::min(Q, length - t0);
        const float* Cc = in.C.data() + (b * length + t0) * N;
        bench::cb_product<Kernel>(Qc, N, QP, Cc, N, BT.data(), CB.data());
        for (Index h = 0; h < heads; ++h) {
          const float* X = in.x.data() + ((b * length + t0) * heads + h) * P;
          bench::head_products<Kernel>(Qc, N, QP, PP, Cc, N, S.data() + h * N * PP, M.data(), X, heads * P, BT.data(),
                                       Xw.data(), Y.data());
        }
      }
    benchmark::DoNotOptimize(S.data());
    benchmark::DoNotOptimize(Y.data());
    benchmark::ClobberMemory();
  };
  for (auto _ : state) products();
  set_ssd_counters(state, batch, length, heads, P, N);
  const double flops = chunked_matmul_flops(batch, length, heads, P, N, 1, Q);
  bench::set_bound_fraction(state, "fma_bound", flops / (bench::machine_limits().fma_gflops * 1e9));
  state.counters["fma_bound_paired"] = bench::paired_fma_fraction(products, flops);
}

void ssd_shapes(benchmark::internal::Benchmark* b, std::initializer_list<long> lengths) {
  b->ArgNames({"B", "L", "H", "P", "N"});
  for (long length : lengths) b->Args({1, length, 32, 64, 128});
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_SSD_Auto)->Apply([](auto* b) { ssd_shapes(b, {512, 2048, 8192}); });
BENCHMARK(BM_SSD_Chunked)->Apply([](auto* b) { ssd_shapes(b, {512, 2048, 8192}); });
BENCHMARK(BM_SSD_Recurrent)->Apply([](auto* b) { ssd_shapes(b, {512, 2048, 8192}); });
BENCHMARK(BM_SSD_ChunkedMatmuls)->Apply([](auto* b) { ssd_shapes(b, {2048}); });
BENCHMARK(BM_SSD_Reference)->Apply([](auto* b) { ssd_shapes(b, {128}); });

// ---- decode step ---------------------------------------------------------------------------

struct StepInputs {
  std::vector<Tensor<float, 4>> states;  // copies of [B, H, P, N]
  Tensor<float, 3> x, B, C;              // [B, H, P], [B, 1, N] x2
  Tensor<float, 4> z;                    // [B, 1, H, P]
  Tensor<float, 2> dt;                   // [B, H]
  Tensor<float, 1> A, D, bias;           // [H]
  StepInputs(Index batch, Index heads, Index P, Index N)
      : x(batch, heads, P), B(batch, 1, N), C(batch, 1, N), z(batch, 1, heads, P), dt(batch, heads), A(heads),
        D(heads), bias(heads) {
    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.f, 1.f);
    for (auto* t : {&x, &B, &C})
      for (Index i = 0; i < t->size(); ++i) t->data()[i] = normal(rng);
    for (Index i = 0; i < z.size(); ++i) z.data()[i] = normal(rng);
    for (Index i = 0; i < dt.size(); ++i) dt.data()[i] = normal(rng);
    for (Index h = 0; h < heads; ++h) A(h) = -float(h % 16 + 1), D(h) = 1.f, bias(h) = -4.f;
    // Enough copies (>= 64 MiB) that every step reads a cold state, as in a real decode.
    const Index bytes = batch * heads * P * N * Index(sizeof(float));
    const Index copies = std::max<Index>(2, (Index(64) << 20) / bytes);
    states.resize(static_cast<std::size_t>(copies));
    for (auto& s : states) {
      s = Tensor<float, 4>(batch, heads, P, N);
      for (Index i = 0; i < s.size(); ++i) s.data()[i] = 0.1f * normal(rng);
    }
  }
};

void BM_SSDStateUpdate_Simd(benchmark::State& state) {
  const Index batch = state.range(0), heads = state.range(1), P = state.range(2), N = state.range(3);
  StepInputs in(batch, heads, P, N);
  Tensor<float, 3> out(batch, heads, P);
  TensorView<float, 3> ov(out.data(), out.dimensions());
  ssm::SsdOptions o;
  o.D = in.D, o.z = in.z, o.dt_bias = in.bias, o.dt_softplus = true;
  std::size_t i = 0;
  for (auto _ : state) {
    auto& s = in.states[i];
    i = i + 1 == in.states.size() ? 0 : i + 1;
    ssm::ssd_state_update(TensorView<float, 4>(s.data(), s.dimensions()), in.x, in.dt, in.A, in.B, in.C, o, ov);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double bhpn = double(batch * heads * P * N), bhp = double(batch * heads * P);
  const double bytes = (2.0 * bhpn + 3.0 * bhp + 2.0 * double(batch * N)) * sizeof(float);
  bench::set_rates(state, double(batch), 5.0 * bhpn, bytes);
  bench::set_bound_fraction(state, "bw_bound", bytes / (bench::machine_limits().read_gbps * 1e9));
}

BENCHMARK(BM_SSDStateUpdate_Simd)->ArgNames({"B", "H", "P", "N"})->Args({1, 32, 64, 128})->Unit(benchmark::kMicrosecond);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
