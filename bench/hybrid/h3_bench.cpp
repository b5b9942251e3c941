// Benchmarks of hybrid::H3Layer (hybrid/h3.hpp) and of each operator it is composed of, at the same
// shapes, so that the composition's overhead is one ratio; plus the decode step and the oracle.
// H3 as released: head_dim 1, d_state 64 (32 complex modes), batch 1, 1 thread, D 256.
//
//   BM_H3_Part_Projections/L:<L>/D:256   the four blocks::linear calls ([L, D] x [D, D]ᵀ, packed)
//   BM_H3_Part_ShiftConv/L:<L>/D:256     ssm::causal_conv1d with K = 64 (the shift SSM)
//   BM_H3_Part_DiagonalSsm/L:<L>/D:256   ssm::diagonal_ssm, M = 32, D skip (the diagonal SSM)
//   BM_H3/L:<L>/D:256                    H3Layer::forward (tracked: L 8192); L 2048, 8192, 16384
//   BM_H3_Step/D:256                     H3Layer::step, one token (decode), state carried
//   BM_H3_Reference/L:256/D:64           ref::h3 (double, direct O(L²) convolutions) and BM_H3 on the
//                                        same shape for vs_reference
//
// Counters (CPU time of the benchmark's thread, through ThreadCpuTimer for the ratios):
//   tokens_per_s, ns_per_token   L tokens per call (step: 1)
//   GFLOP/s                      projections 4·2·D² per token; shift conv 2·64·D; diagonal SSM 11·M·D
//                                (complex multiply-add with a real input: 8 flops for the state, 4 for
//                                y = 2·Re(C·S) accumulated, minus the shared add); H3 their sum
//   vs_components  (BM_H3) time / the sum of the three parts' times at the same L (the issue's
//                  "composition adds little": <= 1.3); the two elementwise passes (k' = shift + D·k
//                  with kv = k'·v, and o = q·y) are in the H3 time only
//   vs_reference   (BM_H3 at L 256, D 64) time / ref::h3's
// The parts must run before BM_H3 in the same process for vs_components (registration order does it;
// a --benchmark_filter must keep them).

#include <benchmark/benchmark.h>

#include <cmath>
#include <map>
#include <string>
#include <random>
#include <utility>

#include "support/counters.hpp"
#include "support/main.hpp"
#include "tokenmix/hybrid/h3.hpp"
#include "tokenmix/reference/h3.hpp"

namespace {

using namespace tokenmix;
using bench::ThreadCpuTimer;

constexpr Index kState = 64, kModes = kState / 2, kShiftTaps = kState;

hybrid::H3Weights make_weights(Index D) {
  const hybrid::H3Config c{D, kState, 1};
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  const float bound = 1.0f / std::sqrt(static_cast<float>(D));
  auto fill = [&](auto& t, auto draw) {
    for (Index i = 0; i < t.size(); ++i) t.data()[i] = draw();
  };
  hybrid::H3Weights w;
  for (auto* m : {&w.q_proj_weight, &w.k_proj_weight, &w.v_proj_weight, &w.output_linear_weight}) {
    *m = Tensor<float, 2>(D, D);
    fill(*m, [&] { return bound * (2 * unit(rng) - 1); });
  }
  for (auto* b : {&w.q_proj_bias, &w.k_proj_bias, &w.v_proj_bias, &w.output_linear_bias, &w.ssm_k_D}) {
    *b = Tensor<float, 1>(D);
    fill(*b, [&] { return bound * normal(rng); });
  }
  w.ssm_k_kernel_B = Tensor<float, 2>(D, kState);
  w.ssm_k_kernel_B.setZero();
  for (Index d = 0; d < D; ++d) w.ssm_k_kernel_B(d, 0) = 1.0f;  // H3's init: e_1
  w.ssm_k_kernel_C = Tensor<float, 2>(D, kState);
  fill(w.ssm_k_kernel_C, [&] { return 0.125f * (2 * unit(rng) - 1); });
  const Index Hh = c.heads();
  w.kernel_log_dt = Tensor<float, 1>(Hh);
  fill(w.kernel_log_dt, [&] { return std::log(1e-3f) + unit(rng) * (std::log(1e-1f) - std::log(1e-3f)); });
  w.kernel_inv_A_real = Tensor<float, 2>(Hh, kModes);
  w.kernel_inv_A_real.setConstant(std::log(0.5f));
  w.kernel_A_imag = Tensor<float, 2>(Hh, kModes);
  for (Index h = 0; h < Hh; ++h)
    for (Index m = 0; m < kModes; ++m) w.kernel_A_imag(h, m) = 3.14159265f * static_cast<float>(m);
  w.kernel_B = Tensor<float, 3>(Hh, kModes, 2);
  for (Index h = 0; h < Hh; ++h)
    for (Index m = 0; m < kModes; ++m) w.kernel_B(h, m, 0) = 1.0f, w.kernel_B(h, m, 1) = 0.0f;
  w.kernel_C = Tensor<float, 3>(Hh, kModes, 2);
  fill(w.kernel_C, [&] { return 0.7f * normal(rng); });
  w.D = Tensor<float, 1>(Hh);
  fill(w.D, [&] { return normal(rng); });
  return w;
}

Tensor<float, 3> make_input(Index L, Index D) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.f, 1.f);
  Tensor<float, 3> u(1, L, D);
  for (Index i = 0; i < u.size(); ++i) u.data()[i] = normal(rng);
  return u;
}

double projection_flops(Index L, Index D) { return 4.0 * 2.0 * double(L) * double(D * D); }
double shift_flops(Index L, Index D) { return 2.0 * double(kShiftTaps) * double(L * D); }
double diagonal_flops(Index L, Index D) { return 11.0 * double(kModes) * double(L * D); }

using Key = std::pair<Index, Index>;  // (L, D)
// Each part's latest time per shape (Google Benchmark may run a case's function several times).
std::map<Key, std::map<std::string, double>>& part_seconds() {
  static std::map<Key, std::map<std::string, double>> s;
  return s;
}
// bench::time_tokens plus GFLOP/s for `flops` per call (none when 0).
template <class Call>
double measure(benchmark::State& state, Index tokens, double flops, Call&& call) {
  const double seconds = bench::time_tokens(state, double(tokens), call);
  if (flops > 0) state.counters["GFLOP/s"] = flops / seconds * 1e-9;
  return seconds;
}

std::map<Key, double>& reference_seconds() {
  static std::map<Key, double> s;
  return s;
}

// Runs `call` in the benchmark loop; returns CPU seconds per iteration and sets the token counters.

void BM_H3_Part_Projections(benchmark::State& state) {
  const Index L = state.range(0), D = state.range(1);
  const Tensor<float, 3> u = make_input(L, D);
  const hybrid::H3Weights w = make_weights(D);
  const blocks::PackedLinear q(w.q_proj_weight), k(w.k_proj_weight), v(w.v_proj_weight), o(w.output_linear_weight);
  Tensor<float, 2> out(L, D);
  out.setZero();  // first-touch page faults outside the timed loop
  const ConstTensorView<float, 2> x(u.data(), L, D);
  const double s = measure(state, L, projection_flops(L, D), [&] {
    for (const blocks::PackedLinear* p : {&q, &k, &v, &o})
      blocks::linear(x, *p, ConstTensorView<float, 1>(w.q_proj_bias.data(), D),
                     TensorView<float, 2>(out.data(), out.dimensions()));
    benchmark::DoNotOptimize(out.data());
  });
  part_seconds()[{L, D}]["projections"] = s;
}

void BM_H3_Part_ShiftConv(benchmark::State& state) {
  const Index L = state.range(0), D = state.range(1);
  const Tensor<float, 3> u = make_input(L, D);
  Tensor<float, 2> weight(D, kShiftTaps);
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> unit(-0.125f, 0.125f);
  for (Index i = 0; i < weight.size(); ++i) weight.data()[i] = unit(rng);
  Tensor<float, 3> out(1, L, D);
  out.setZero();
  const double s = measure(state, L, shift_flops(L, D), [&] {
    ssm::causal_conv1d(u, weight, {}, TensorView<float, 3>(out.data(), out.dimensions()), nullptr);
    benchmark::DoNotOptimize(out.data());
  });
  part_seconds()[{L, D}]["shift_conv"] = s;
}

void BM_H3_Part_DiagonalSsm(benchmark::State& state) {
  const Index L = state.range(0), D = state.range(1);
  const Tensor<float, 3> x = make_input(L, D);
  const hybrid::H3Weights w = make_weights(D);
  Tensor<float, 3> A(D, kModes, 2);
  Tensor<float, 1> dt(D);
  for (Index h = 0; h < D; ++h) {
    dt(h) = std::exp(w.kernel_log_dt(h));
    for (Index m = 0; m < kModes; ++m) A(h, m, 0) = -0.5f, A(h, m, 1) = w.kernel_A_imag(h, m);
  }
  const ssm::DiagonalSsmParams p = ssm::s4d_discretize(A, w.kernel_B, w.kernel_C, dt);
  ssm::DiagonalSsmOptions o;
  o.D = w.D;
  Tensor<float, 3> out(1, L, D);
  out.setZero();
  const double s = measure(state, L, diagonal_flops(L, D), [&] {
    ssm::diagonal_ssm(x, p.dA, p.C, o, TensorView<float, 3>(out.data(), out.dimensions()), nullptr);
    benchmark::DoNotOptimize(out.data());
  });
  part_seconds()[{L, D}]["diagonal_ssm"] = s;
}

void BM_H3(benchmark::State& state) {
  const Index L = state.range(0), D = state.range(1);
  const Tensor<float, 3> u = make_input(L, D);
  hybrid::H3Layer layer({D, kState, 1}, make_weights(D));
  Tensor<float, 3> out(1, L, D);
  layer.forward(u, TensorView<float, 3>(out.data(), out.dimensions()));  // sizes the workspace
  const double s = measure(state, L, projection_flops(L, D) + shift_flops(L, D) + diagonal_flops(L, D), [&] {
    layer.forward(u, TensorView<float, 3>(out.data(), out.dimensions()));
    benchmark::DoNotOptimize(out.data());
  });
  const auto parts = part_seconds().find({L, D});
  if (parts != part_seconds().end() && parts->second.size() == 3) {
    double sum = 0;
    for (const auto& part : parts->second) sum += part.second;
    state.counters["vs_components"] = s / sum;
  }
  const auto ref = reference_seconds().find({L, D});
  if (ref != reference_seconds().end()) state.counters["vs_reference"] = s / ref->second;
}

void BM_H3_Step(benchmark::State& state) {
  const Index D = state.range(0);
  hybrid::H3Layer layer({D, kState, 1}, make_weights(D));
  hybrid::H3State h3_state = hybrid::make_h3_state(layer.config(), 1);
  const Tensor<float, 3> u = make_input(1, D);
  const ConstTensorView<float, 2> ut(u.data(), 1, D);
  Tensor<float, 2> out(1, D);
  measure(state, 1, projection_flops(1, D) + shift_flops(1, D) + diagonal_flops(1, D), [&] {
    layer.step(ut, h3_state, TensorView<float, 2>(out.data(), out.dimensions()));
    benchmark::DoNotOptimize(out.data());
  });
}

void BM_H3_Reference(benchmark::State& state) {
  const Index L = state.range(0), D = state.range(1);
  const Tensor<float, 3> u = make_input(L, D);
  const hybrid::H3Weights w = make_weights(D);
  const hybrid::H3Config c{D, kState, 1};
  reference_seconds()[{L, D}] = measure(state, L, 0.0, [&] {
    Tensor<float, 3> out = ref::h3<double>(c, w, u);
    benchmark::DoNotOptimize(out.data());
  });
}

void long_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"L", "D"})->Unit(benchmark::kMillisecond);
  for (Index L : {2048, 8192, 16384}) b->Args({L, 256});
}

BENCHMARK(BM_H3_Reference)->ArgNames({"L", "D"})->Args({256, 64})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_H3_Part_Projections)->Apply(long_shapes);
BENCHMARK(BM_H3_Part_ShiftConv)->Apply(long_shapes);
BENCHMARK(BM_H3_Part_DiagonalSsm)->Apply(long_shapes);
BENCHMARK(BM_H3)->ArgNames({"L", "D"})->Args({256, 64})->Unit(benchmark::kMillisecond)->Apply(long_shapes);
BENCHMARK(BM_H3_Step)->ArgNames({"D"})->Arg(256)->Unit(benchmark::kMicrosecond);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
