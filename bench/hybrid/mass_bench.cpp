// Benchmarks of hybrid::Mass (hybrid/mass.hpp), A2Mamba's MASS token mixer, and of the operators
// it is composed of, at A2Mamba-Nano's stage shapes (weights: blocks::a2mamba_random_checkpoint):
// stage 1 56x56, C 32, 2 heads, K 11, adaptive dilation 5; stage 3 14x14, C 128, 4 heads, K 7,
// dilation 2; batch 1, 1 thread.
//
//   BM_MASS/H:<H>/W:<W>/C:<C>                  the op (tracked: H 56, W 56, C 32)
//   BM_MASS_Part_Linear/...                    blocks::linear: gate (BN folded) C -> C, qkv C -> 3C, proj C -> C
//   BM_MASS_Part_DepthwiseConv/...             blocks::depthwise_conv2d 5x5 (LePE)
//   BM_MASS_Part_AttentionWeights/...          attention::neighborhood_attention_weights of both branches
//                                              (+ rpb): qk and the softmax of each K² row in one kernel
//   BM_MASS_Part_NeighborhoodAV/...            attention::neighborhood_av of both branches
//   BM_MASS_Part_A2SSM/...                     hybrid::A2ssm (benchmarked by itself in a2ssm_bench)
//   BM_MASS_Part_LayerNorm/...                 blocks::layer_norm, twice
//
// Counters (CPU time): tokens_per_s, ns_per_token (H·W tokens); vs_components (BM_MASS) the op's
// time / the sum of the parts' (the issue: <= 1.3; RoPE2D, the cascade, the gating and the copies
// between layouts are in the op's time only). The parts run first (registration order).

#include <benchmark/benchmark.h>

#include <map>
#include <string>
#include <tuple>

#include "support/counters.hpp"
#include "support/main.hpp"
#include "tokenmix/blocks/a2mamba_types.hpp"
#include "tokenmix/hybrid/mass.hpp"

namespace {

using namespace tokenmix;

struct Setup {
  Index H, W, C, nh, K;
  std::array<Index, 2> dil;
  hybrid::MassConfig config;
  hybrid::MassWeights w;
  Tensor<float, 4> x;
  explicit Setup(const benchmark::State& state) : H(state.range(0)), W(state.range(1)), C(state.range(2)) {
    const blocks::A2MambaConfig nano = blocks::A2MambaConfig::nano();
    const int stage = C == 32 ? 0 : C == 64 ? 1 : 2;
    config = nano.mixer(stage), nh = config.heads, K = config.kernel_size, dil = hybrid::mass_dilation(H, W, K);
    static const io::SafetensorsFile ckpt = blocks::a2mamba_random_checkpoint(nano, 1);
    w = blocks::A2MambaBlockWeights::load(ckpt, "layers." + std::to_string(2 * stage) + ".blocks.0.", config,
                                          nano.ffn_dim(stage)).token_mixer;
    x = Tensor<float, 4>(1, H, W, C);
    x.setRandom();
    x = x - x.constant(0.5f);
  }
  Index L() const { return H * W; }
};

using Key = std::tuple<Index, Index, Index>;
std::map<Key, std::map<std::string, double>>& part_seconds() {
  static std::map<Key, std::map<std::string, double>> s;
  return s;
}
Key key_of(const benchmark::State& state) { return {state.range(0), state.range(1), state.range(2)}; }
constexpr std::size_t kParts = 6;

template <class Call>
void time_part(benchmark::State& state, const Setup& s, const char* name, Call&& call) {
  part_seconds()[key_of(state)][name] = bench::time_tokens(state, double(s.L()), call);
}

void BM_MASS_Part_Linear(benchmark::State& state) {
  const Setup s(state);
  const Index L = s.L(), C = s.C;
  const blocks::PackedLinear qkv(ConstTensorView<float, 2>(s.w.qkv_weight.data(), 3 * C, C));
  const blocks::PackedLinear gate(ConstTensorView<float, 2>(s.w.gate_0_weight.data(), C, C));
  const blocks::PackedLinear proj(ConstTensorView<float, 2>(s.w.proj_1_weight.data(), C, C));
  Tensor<float, 2> a(L, 3 * C), b(L, C), c(L, C);
  const ConstTensorView<float, 2> x(s.x.data(), L, C);
  time_part(state, s, "linear", [&] {
    blocks::linear(x, qkv, s.w.qkv_bias, TensorView<float, 2>(a.data(), L, 3 * C));
    blocks::linear(x, gate, s.w.gate_0_bias, TensorView<float, 2>(b.data(), L, C));
    blocks::linear(x, proj, s.w.proj_1_bias, TensorView<float, 2>(c.data(), L, C));
    benchmark::DoNotOptimize(c.data());
  });
}

void BM_MASS_Part_DepthwiseConv(benchmark::State& state) {
  const Setup s(state);
  const Tensor<float, 3> k = s.w.lepe_weight.reshape(Eigen::array<Index, 3>{s.C, 5, 5});
  blocks::DepthwiseConv2dOptions o;
  o.bias = s.w.lepe_bias;
  Tensor<float, 4> out(s.x.dimensions());
  time_part(state, s, "depthwise_conv2d", [&] {
    blocks::depthwise_conv2d(s.x, k, o, TensorView<float, 4>(out.data(), out.dimensions()));
    benchmark::DoNotOptimize(out.data());
  });
}

struct Branches {
  Tensor<float, 5> q, k, v;
  attention::NeighborhoodParams<2> p1, p2;
  explicit Branches(const Setup& s) : q(1, s.H, s.W, s.nh / 2, s.C / s.nh), k(q.dimensions()), v(q.dimensions()) {
    q.setRandom(), k.setRandom(), v.setRandom();
    p1 = attention::NeighborhoodParams<2>::uniform(s.K), p2 = p1, p2.dilation = s.dil, p1.scale = p2.scale = 1.0f;
  }
};

void BM_MASS_Part_AttentionWeights(benchmark::State& state) {
  const Setup s(state);
  const Branches br(s);
  const ConstTensorView<float, 3> rpb(s.w.rpb.data(), s.w.rpb.dimensions());
  time_part(state, s, "neighborhood_attention_weights", [&] {
    Tensor<float, 5> a1 = attention::neighborhood_attention_weights<2>(br.q, br.k, br.p1, rpb);
    Tensor<float, 5> a2 = attention::neighborhood_attention_weights<2>(br.q, br.k, br.p2, rpb);
    benchmark::DoNotOptimize(a1.data()), benchmark::DoNotOptimize(a2.data());
  });
}

void BM_MASS_Part_NeighborhoodAV(benchmark::State& state) {
  const Setup s(state);
  const Branches br(s);
  Tensor<float, 5> a(1, s.H, s.W, s.nh / 2, s.K * s.K);
  a.setConstant(1.0f / float(s.K * s.K));
  time_part(state, s, "neighborhood_av", [&] {
    Tensor<float, 5> o1 = attention::neighborhood_av<2>(a, br.v, br.p1);
    Tensor<float, 5> o2 = attention::neighborhood_av<2>(a, br.v, br.p2);
    benchmark::DoNotOptimize(o1.data()), benchmark::DoNotOptimize(o2.data());
  });
}

void BM_MASS_Part_A2SSM(benchmark::State& state) {
  const Setup s(state);
  hybrid::A2ssm op(s.config.ssm_config(), s.w.ssm);
  Tensor<float, 5> a(1, s.H, s.W, s.nh / 2, s.K * s.K);
  a.setConstant(1.0f / float(s.K * s.K));
  Tensor<float, 4> out(s.x.dimensions());
  time_part(state, s, "a2ssm", [&] {
    op.forward(s.x, a, a, s.dil, TensorView<float, 4>(out.data(), out.dimensions()));
    benchmark::DoNotOptimize(out.data());
  });
}

void BM_MASS_Part_LayerNorm(benchmark::State& state) {
  const Setup s(state);
  Tensor<float, 2> out(s.L(), s.C);
  const ConstTensorView<float, 2> x(s.x.data(), s.L(), s.C);
  time_part(state, s, "layer_norm", [&] {
    blocks::layer_norm(x, s.w.norm_weight, s.w.norm_bias, 1e-6, TensorView<float, 2>(out.data(), out.dimensions()));
    blocks::layer_norm(x, s.w.proj_0_weight, s.w.proj_0_bias, 1e-6, TensorView<float, 2>(out.data(), out.dimensions()));
    benchmark::DoNotOptimize(out.data());
  });
}

void BM_MASS(benchmark::State& state) {
  const Setup s(state);
  hybrid::Mass op(s.config, s.w);
  Tensor<float, 4> out(s.x.dimensions());
  const double seconds = bench::time_tokens(state, double(s.L()), [&] {
    op.forward(s.x, TensorView<float, 4>(out.data(), out.dimensions()));
    benchmark::DoNotOptimize(out.data());
  });
  const auto parts = part_seconds().find(key_of(state));
  if (parts != part_seconds().end() && parts->second.size() == kParts) {
    double sum = 0;
    for (const auto& p : parts->second) sum += p.second;
    state.counters["vs_components"] = seconds / sum;
  }
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"H", "W", "C"})->Args({56, 56, 32})->Args({14, 14, 128})->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_MASS_Part_Linear)->Apply(shapes);
BENCHMARK(BM_MASS_Part_DepthwiseConv)->Apply(shapes);
BENCHMARK(BM_MASS_Part_AttentionWeights)->Apply(shapes);
BENCHMARK(BM_MASS_Part_NeighborhoodAV)->Apply(shapes);
BENCHMARK(BM_MASS_Part_A2SSM)->Apply(shapes);
BENCHMARK(BM_MASS_Part_LayerNorm)->Apply(shapes);
BENCHMARK(BM_MASS)->Apply(shapes);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
