// Benchmarks of hybrid::A2ssm (hybrid/a2ssm.hpp) and of the operators it is composed of, at
// A2Mamba-Nano's stage shapes: stage 1 56x56, C 32, K 11, dilation 5 (= min(56 / 11, 11)); stage 3
// 14x14, C 128, K 7, dilation 2; N 1 (as released), heads C / 16; batch 1, 1 thread.
//
//   BM_A2SSM/H:<H>/W:<W>/C:<C>                the op (tracked: H 56, W 56, C 32)
//   BM_A2SSM_Part_Conv/...                    blocks::depthwise_conv2d 5x5 + SiLU
//   BM_A2SSM_Part_Projections/...             blocks::linear x_proj (C -> R + 2N) and dt_proj (R -> C)
//   BM_A2SSM_Part_ScanStates/...              ssm::selective_scan_states (every hidden state)
//   BM_A2SSM_Part_Aggregation/...             attention::neighborhood_av of both head groups
//
// Counters (CPU time): tokens_per_s, ns_per_token (H·W tokens); vs_components (BM_A2SSM) the op's
// time / the sum of the four parts' (the issue: <= 1.3; the state fusion, readout and the copies
// between the ops' layouts are in the op's time only). The parts run first (registration order).

#include <benchmark/benchmark.h>

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <tuple>

#include "support/counters.hpp"
#include "support/main.hpp"
#include "tokenmix/hybrid/a2ssm.hpp"

namespace {

using namespace tokenmix;

struct Shape {
  Index H, W, C, K, dil;
  hybrid::A2ssmConfig config() const {
    hybrid::A2ssmConfig c;
    c.channels = C, c.heads = C / 16, c.d_state = 1, c.kernel_size = K;
    return c;
  }
};

Shape shape_of_state(const benchmark::State& state) {
  const Index H = state.range(0), W = state.range(1), C = state.range(2);
  return H == 56 ? Shape{H, W, C, 11, 5} : Shape{H, W, C, 7, 2};
}

struct Inputs {
  hybrid::A2ssmWeights w;
  Tensor<float, 4> x;
  Tensor<float, 5> a1, a2;
  explicit Inputs(const Shape& s) : x(1, s.H, s.W, s.C), a1(1, s.H, s.W, s.C / 32, s.K * s.K), a2(a1.dimensions()) {
    const hybrid::A2ssmConfig c = s.config();
    const Index C = s.C, R = c.rank(), nh = c.heads;
    std::mt19937 rng(23);
    std::normal_distribution<float> normal(0.f, 1.f);
    auto fill = [&](auto& t, float sd, float mean = 0.f) {
      for (Index i = 0; i < t.size(); ++i) t.data()[i] = mean + sd * normal(rng);
    };
    w.conv2d_weight = Tensor<float, 4>(C, 1, 5, 5), w.conv2d_bias = Tensor<float, 1>(C);
    w.x_proj_weight = Tensor<float, 2>(R + 2, C), w.dt_projs_weight = Tensor<float, 2>(C, R);
    w.dt_projs_bias = Tensor<float, 1>(C), w.A_logs = Tensor<float, 2>(C, 1), w.Ds = Tensor<float, 1>(C);
    w.state_fusion_weight = Tensor<float, 4>(nh, nh, 1, 1), w.state_fusion_bias = Tensor<float, 1>(nh);
    fill(w.conv2d_weight, 0.2f), fill(w.conv2d_bias, 0.1f), fill(w.x_proj_weight, 1.f / std::sqrt(float(C)));
    fill(w.dt_projs_weight, 0.5f), fill(w.dt_projs_bias, 0.5f, -3.f), fill(w.A_logs, 0.1f), fill(w.Ds, 0.2f, 1.f);
    fill(w.state_fusion_weight, 0.3f), fill(w.state_fusion_bias, 0.1f), fill(x, 1.f);
    for (auto* m : {&a1, &a2}) {
      fill(*m, 1.f);
      const Index S = s.K * s.K;
      for (Index r = 0; r < m->size() / S; ++r) {
        float* row = m->data() + r * S;
        float sum = 0;
        for (Index k = 0; k < S; ++k) sum += (row[k] = std::exp(row[k]));
        for (Index k = 0; k < S; ++k) row[k] /= sum;
      }
    }
  }
};

using Key = std::tuple<Index, Index, Index>;
std::map<Key, std::map<std::string, double>>& part_seconds() {
  static std::map<Key, std::map<std::string, double>> s;
  return s;
}
Key key_of(const benchmark::State& state) { return {state.range(0), state.range(1), state.range(2)}; }

void BM_A2SSM_Part_Conv(benchmark::State& state) {
  const Shape s = shape_of_state(state);
  const Inputs in(s);
  const Tensor<float, 3> wt = in.w.conv2d_weight.reshape(Eigen::array<Index, 3>{s.C, 5, 5});
  blocks::DepthwiseConv2dOptions o;
  o.bias = in.w.conv2d_bias, o.activation_silu = true;
  Tensor<float, 4> u(1, s.H, s.W, s.C);
  u.setZero();
  part_seconds()[key_of(state)]["conv"] = bench::time_tokens(state, double(s.H * s.W), [&] {
    blocks::depthwise_conv2d(in.x, wt, o, TensorView<float, 4>(u.data(), u.dimensions()));
    benchmark::DoNotOptimize(u.data());
  });
}

void BM_A2SSM_Part_Projections(benchmark::State& state) {
  const Shape s = shape_of_state(state);
  const Inputs in(s);
  const Index L = s.H * s.W, R = s.config().rank();
  const blocks::PackedLinear x_proj(in.w.x_proj_weight), dt_proj(in.w.dt_projs_weight);
  Tensor<float, 2> z(L, R + 2), dt_r(L, R), delta(L, s.C);
  z.setZero(), dt_r.setConstant(0.1f), delta.setZero();
  part_seconds()[key_of(state)]["projections"] = bench::time_tokens(state, double(L), [&] {
    blocks::linear(ConstTensorView<float, 2>(in.x.data(), L, s.C), x_proj, std::nullopt,
                   TensorView<float, 2>(z.data(), z.dimensions()));
    blocks::linear(ConstTensorView<float, 2>(dt_r.data(), L, R), dt_proj, std::nullopt,
                   TensorView<float, 2>(delta.data(), delta.dimensions()));
    benchmark::DoNotOptimize(delta.data());
  });
}

void BM_A2SSM_Part_ScanStates(benchmark::State& state) {
  const Shape s = shape_of_state(state);
  const Inputs in(s);
  const Index L = s.H * s.W, C = s.C;
  Tensor<float, 3> delta(1, L, C), bm(1, L, 1), out(1, L, C);
  Tensor<float, 2> A(C, 1);
  Tensor<float, 4> states(1, L, C, 1);
  delta.setConstant(-2.f), bm.setConstant(0.5f), A.setConstant(-1.f), out.setZero(), states.setZero();
  ssm::SelectiveScanOptions o;
  o.delta_bias = in.w.dt_projs_bias, o.delta_softplus = true;
  const ConstTensorView<float, 3> u(in.x.data(), 1, L, C);
  part_seconds()[key_of(state)]["scan"] = bench::time_tokens(state, double(L), [&] {
    ssm::selective_scan_states(u, delta, A, bm, bm, o, TensorView<float, 3>(out.data(), out.dimensions()),
                               TensorView<float, 4>(states.data(), states.dimensions()), nullptr);
    benchmark::DoNotOptimize(states.data());
  });
}

void BM_A2SSM_Part_Aggregation(benchmark::State& state) {
  const Shape s = shape_of_state(state);
  const Inputs in(s);
  const Index nh = s.C / 16;
  Tensor<float, 5> values(1, s.H, s.W, nh / 2, 16);
  values.setConstant(0.3f);
  auto p1 = attention::NeighborhoodParams<2>::uniform(s.K), p2 = attention::NeighborhoodParams<2>::uniform(s.K, s.dil);
  part_seconds()[key_of(state)]["aggregation"] = bench::time_tokens(state, double(s.H * s.W), [&] {
    Tensor<float, 5> g1 = attention::neighborhood_av<2>(in.a1, values, p1);
    Tensor<float, 5> g2 = attention::neighborhood_av<2>(in.a2, values, p2);
    benchmark::DoNotOptimize(g1.data());
    benchmark::DoNotOptimize(g2.data());
  });
}

void BM_A2SSM(benchmark::State& state) {
  const Shape s = shape_of_state(state);
  const Inputs in(s);
  hybrid::A2ssm op(s.config(), in.w);
  Tensor<float, 4> out(1, s.H, s.W, s.C);
  out.setZero();
  const double seconds = bench::time_tokens(state, double(s.H * s.W), [&] {
    op.forward(in.x, in.a1, in.a2, {s.dil, s.dil}, TensorView<float, 4>(out.data(), out.dimensions()));
    benchmark::DoNotOptimize(out.data());
  });
  const auto parts = part_seconds().find(key_of(state));
  if (parts != part_seconds().end() && parts->second.size() == 4) {
    double sum = 0;
    for (const auto& p : parts->second) sum += p.second;
    state.counters["vs_components"] = seconds / sum;
  }
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"H", "W", "C"})->Args({56, 56, 32})->Args({14, 14, 128})->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_A2SSM_Part_Conv)->Apply(shapes);
BENCHMARK(BM_A2SSM_Part_Projections)->Apply(shapes);
BENCHMARK(BM_A2SSM_Part_ScanStates)->Apply(shapes);
BENCHMARK(BM_A2SSM_Part_Aggregation)->Apply(shapes);
BENCHMARK(BM_A2SSM)->Apply(shapes);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
