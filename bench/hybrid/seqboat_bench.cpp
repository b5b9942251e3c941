// Benchmarks of hybrid::SeqBoatLayer (hybrid/seqboat.hpp) and of the operators it is composed of,
// at the same shapes, plus the streaming step. Causal (language-model form), softmax attention,
// 'simple' bias, prenorm layernorm; D 256, Z 64, E 512, N 16, W 128 (the released LRA configurations
// scaled to D 256: E = 2D, window 128); batch 1, 1 thread.
//
//   BM_SeqBoat/L:<L>/D:256                    L 2048, 8192, 16384; the router bias set so that about
//                                             half the tokens are activated (activated_pct reports it)
//   BM_SeqBoat_Activation/L:8192/D:256/pct:<p>  the router bias set for ~p% activated, p 0, 25, 50, 100
//   BM_SeqBoat_Part_Ema/L:<L>/D:256           ssm::diagonal_ssm with the EMA's N = 16 real modes
//   BM_SeqBoat_Part_HxProj/L:<L>/D:256        blocks::linear D -> 2 + D on every token
//   BM_SeqBoat_Part_Gau/L:<L>/D:256/pct:50    on the activated half: linear D -> Z + 2E, local_attention
//                                             (W 128, P 64, Pv 512), linear E -> D
//   BM_SeqBoat_Step/D:256                     SeqBoatLayer::step (decode), window full
//
// Counters (CPU time of the benchmark's thread):
//   tokens_per_s, ns_per_token        L tokens per call
//   activated_pct                     the share of tokens the router activated
//   per_token_vs_L2048  (BM_SeqBoat)  this ns_per_token / L 2048's: 1.0 = linear in L (the issue: L 16384
//                                     within 1.2x of 8 x L 2048)
//   vs_components       (BM_SeqBoat)  time / the sum of the three parts' times at the same L (the
//                                     norms, router, gather / scatter and elementwise passes are in
//                                     the layer's time only)
// The parts must run before BM_SeqBoat at the same L (registration order does it).

#include <benchmark/benchmark.h>

#include <cmath>
#include <map>
#include <random>
#include <string>

#include "support/counters.hpp"
#include "support/main.hpp"
#include "tokenmix/hybrid/seqboat.hpp"

namespace {

using namespace tokenmix;
using bench::ThreadCpuTimer;

constexpr Index kD = 256, kZ = 64, kE = 512, kN = 16, kW = 128;

hybrid::SeqBoatConfig make_config() {
  hybrid::SeqBoatConfig c;
  c.d_model = kD, c.zdim = kZ, c.hdim = kE, c.ndim = kN, c.window = kW, c.max_positions = 1024;
  return c;
}

// Weights at the scales of tests/hybrid/seqboat_test.cpp; router_bias shifts router logit 1.
hybrid::SeqBoatWeights make_weights(float router_bias) {
  const hybrid::SeqBoatConfig c = make_config();
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> unit(-0.8f, 0.8f);
  auto fill = [&](auto& t, float mean, float sd) {
    for (Index i = 0; i < t.size(); ++i) t.data()[i] = mean + sd * normal(rng);
  };
  const float sd = 1.0f / std::sqrt(float(kD)), se = 1.0f / std::sqrt(float(kE));
  hybrid::SeqBoatWeights w;
  w.norm_weight = Tensor<float, 1>(kD), w.norm_bias = Tensor<float, 1>(kD);
  fill(w.norm_weight, 1.f, 0.2f), fill(w.norm_bias, 0.f, 0.1f);
  for (auto* t : {&w.move_delta, &w.move_alpha, &w.move_beta}) *t = Tensor<float, 3>(kD, kN, 1);
  for (Index i = 0; i < w.move_delta.size(); ++i) w.move_delta.data()[i] = unit(rng), w.move_alpha.data()[i] = unit(rng);
  fill(w.move_beta, 0.f, 0.02f);
  for (Index d = 0; d < kD; ++d)
    for (Index n = 0; n < kN; ++n) w.move_beta(d, n, 0) += n % 2 == 0 ? 1.f : -1.f;
  w.move_gamma = Tensor<float, 2>(kD, kN), w.move_omega = Tensor<float, 1>(kD);
  fill(w.move_gamma, 0.f, 1.f), fill(w.move_omega, 0.f, 1.f);
  w.q_router_temp = Tensor<float, 1>(1);
  w.q_router_temp(0) = std::log(0.3f * std::sqrt(float(kD)));
  w.hx_proj_weight = Tensor<float, 2>(2 + kD, kD), w.hx_proj_bias = Tensor<float, 1>(2 + kD);
  fill(w.hx_proj_weight, 0.f, sd), fill(w.hx_proj_bias, 0.f, 0.1f);
  w.hx_proj_bias(1) += router_bias;
  w.mx_proj_weight = Tensor<float, 2>(kZ + 2 * kE, kD), w.mx_proj_bias = Tensor<float, 1>(kZ + 2 * kE);
  fill(w.mx_proj_weight, 0.f, sd), fill(w.mx_proj_bias, 0.f, 0.1f);
  w.gamma = Tensor<float, 2>(2, kZ), w.beta = Tensor<float, 2>(2, kZ);
  fill(w.gamma, 1.5f, 0.3f), fill(w.beta, 0.f, 0.3f);
  w.h_proj_weight = Tensor<float, 2>(kD, kE), w.h_proj_bias = Tensor<float, 1>(kD);
  fill(w.h_proj_weight, 0.f, 3.f * se), fill(w.h_proj_bias, 0.f, 0.1f);
  w.rel_pos_bias = Tensor<float, 1>(c.bias_entries());
  fill(w.rel_pos_bias, 0.f, 0.5f);
  return w;
}

Tensor<float, 3> make_input(Index L) {
  std::mt19937 rng(19);
  std::normal_distribution<float> normal(0.f, 1.f);
  Tensor<float, 3> x(1, L, kD);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
  return x;
}

// The router bias for about `pct` % activated tokens (found once per pct on a 2048-token input).
float router_bias_for(int pct) {
  static std::map<int, float> cache;
  if (const auto it = cache.find(pct); it != cache.end()) return it->second;
  if (pct <= 0 || pct >= 100) return cache[pct] = pct <= 0 ? -1e3f : 1e3f;
  const Tensor<float, 3> x = make_input(2048);
  float lo = -20.f, hi = 20.f;
  for (int it = 0; it < 30; ++it) {
    const float mid = 0.5f * (lo + hi);
    hybrid::SeqBoatLayer layer(make_config(), make_weights(mid));
    layer.forward(x);
    (layer.activated()[0] * 100 < pct * 2048 ? lo : hi) = mid;
  }
  return cache[pct] = 0.5f * (lo + hi);
}


std::map<Index, std::map<std::string, double>>& part_seconds() {  // per L, each part's latest time
  static std::map<Index, std::map<std::string, double>> s;
  return s;
}
std::map<Index, double>& layer_seconds() {
  static std::map<Index, double> s;
  return s;
}

void BM_SeqBoat_Part_Ema(benchmark::State& state) {
  const Index L = state.range(0);
  const Tensor<float, 3> x = make_input(L);
  Tensor<float, 3> dA(kD, kN, 2), C(kD, kN, 2), y(1, L, kD);
  dA.setZero(), C.setZero(), y.setZero();
  for (Index d = 0; d < kD; ++d)
    for (Index n = 0; n < kN; ++n) dA(d, n, 0) = 0.9f, C(d, n, 0) = 0.1f;
  part_seconds()[L]["ema"] = bench::time_tokens(state, double(L), [&] {
    ssm::diagonal_ssm(x, dA, C, {}, TensorView<float, 3>(y.data(), y.dimensions()), nullptr);
    benchmark::DoNotOptimize(y.data());
  });
}

void BM_SeqBoat_Part_HxProj(benchmark::State& state) {
  const Index L = state.range(0);
  const Tensor<float, 3> x = make_input(L);
  const hybrid::SeqBoatWeights w = make_weights(0.f);
  const blocks::PackedLinear hx(w.hx_proj_weight);
  Tensor<float, 2> out(L, 2 + kD);
  out.setZero();
  part_seconds()[L]["hx_proj"] = bench::time_tokens(state, double(L), [&] {
    blocks::linear(ConstTensorView<float, 2>(x.data(), L, kD), hx, ConstTensorView<float, 1>(w.hx_proj_bias.data(), 2 + kD),
                   TensorView<float, 2>(out.data(), out.dimensions()));
    benchmark::DoNotOptimize(out.data());
  });
}

// The GAU's operators on m = L/2 tokens (the activated half).
void BM_SeqBoat_Part_Gau(benchmark::State& state) {
  const Index L = state.range(0), m = L * state.range(1) / 100;
  const Tensor<float, 3> x = make_input(m);
  const hybrid::SeqBoatWeights w = make_weights(0.f);
  const blocks::PackedLinear mx(w.mx_proj_weight), h(w.h_proj_weight);
  Tensor<float, 2> base(m, kZ + 2 * kE), hout(m, kD);
  Tensor<float, 4> q(1, m, 1, kZ), k(1, m, 1, kZ), v(1, m, 1, kE), o(1, m, 1, kE);
  base.setZero(), hout.setZero(), o.setZero();
  for (auto* t : {&q, &k, &v})
    for (Index i = 0; i < t->size(); ++i) t->data()[i] = 0.01f * float(i % 97);
  Tensor<Index, 2> positions(1, m);
  for (Index i = 0; i < m; ++i) positions(0, i) = 2 * i;
  Tensor<float, 2> table(1, w.rel_pos_bias.size());
  for (Index i = 0; i < table.size(); ++i) table.data()[i] = w.rel_pos_bias(i);
  attention::LocalAttentionOptions a;
  a.window = kW, a.positions = positions, a.rel_pos_bias = table;
  part_seconds()[L]["gau"] = bench::time_tokens(state, double(L), [&] {
    blocks::linear(ConstTensorView<float, 2>(x.data(), m, kD), mx, ConstTensorView<float, 1>(w.mx_proj_bias.data(), kZ + 2 * kE),
                   TensorView<float, 2>(base.data(), base.dimensions()));
    attention::local_attention(q, k, v, a, TensorView<float, 4>(o.data(), o.dimensions()));
    blocks::linear(ConstTensorView<float, 2>(o.data(), m, kE), h, ConstTensorView<float, 1>(w.h_proj_bias.data(), kD),
                   TensorView<float, 2>(hout.data(), hout.dimensions()));
    benchmark::DoNotOptimize(hout.data());
  });
}

void run_layer(benchmark::State& state, Index L, int pct) {
  const Tensor<float, 3> x = make_input(L);
  hybrid::SeqBoatLayer layer(make_config(), make_weights(router_bias_for(pct)));
  Tensor<float, 3> out(1, L, kD);
  layer.forward(x, TensorView<float, 3>(out.data(), out.dimensions()));  // sizes the buffers
  const double s = bench::time_tokens(state, double(L), [&] {
    layer.forward(x, TensorView<float, 3>(out.data(), out.dimensions()));
    benchmark::DoNotOptimize(out.data());
  });
  state.counters["activated_pct"] = 100.0 * double(layer.activated()[0]) / double(L);
  if (state.range(1) != kD || pct != 50) return;
  layer_seconds()[L] = s;
  const auto base = layer_seconds().find(2048);
  if (L > 2048 && base != layer_seconds().end())
    state.counters["per_token_vs_L2048"] = s / double(L) / (base->second / 2048.0);
  const auto parts = part_seconds().find(L);
  if (parts != part_seconds().end() && parts->second.size() == 3) {
    double sum = 0;
    for (const auto& p : parts->second) sum += p.second;
    state.counters["vs_components"] = s / sum;
  }
}

void BM_SeqBoat(benchmark::State& state) { run_layer(state, state.range(0), 50); }
void BM_SeqBoat_Activation(benchmark::State& state) { run_layer(state, state.range(0), static_cast<int>(state.range(2))); }

void BM_SeqBoat_Step(benchmark::State& state) {
  hybrid::SeqBoatLayer layer(make_config(), make_weights(router_bias_for(50)));
  hybrid::SeqBoatState s = hybrid::make_seqboat_state(layer.config(), 1);
  const Tensor<float, 3> prompt = make_input(2 * kW + 17);
  layer.forward(prompt, &s);  // fill the window
  const Tensor<float, 3> x = make_input(1);
  Tensor<float, 2> out(1, kD);
  bench::time_tokens(state, 1.0, [&] {
    layer.step(ConstTensorView<float, 2>(x.data(), 1, kD), s, TensorView<float, 2>(out.data(), out.dimensions()));
    benchmark::DoNotOptimize(out.data());
  });
}

void lengths(benchmark::internal::Benchmark* b) {
  b->ArgNames({"L", "D"})->Unit(benchmark::kMillisecond);
  for (Index L : {2048, 8192, 16384}) b->Args({L, kD});
}

BENCHMARK(BM_SeqBoat_Part_Ema)->Apply(lengths);
BENCHMARK(BM_SeqBoat_Part_HxProj)->Apply(lengths);
BENCHMARK(BM_SeqBoat_Part_Gau)->ArgNames({"L", "pct"})->Args({2048, 50})->Args({8192, 50})->Args({16384, 50})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SeqBoat)->Apply(lengths);
BENCHMARK(BM_SeqBoat_Activation)
    ->ArgNames({"L", "D", "pct"})
    ->Args({8192, kD, 0})
    ->Args({8192, kD, 25})
    ->Args({8192, kD, 100})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SeqBoat_Step)->ArgNames({"D"})->Arg(kD)->Unit(benchmark::kMicrosecond);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
