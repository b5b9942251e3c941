// Benchmarks of the 2-D scan family (ssm/selective_scan_2d.hpp) against the plain 1-D selective scan
// on the same number of scanned elements, in the same run.
//
//   BM_SelectiveScan_Simd/B:1/L:3136/D:192/N:16          the 1-D baseline (56·56 tokens, 192 channels)
//   BM_SelectiveScan2d_<Order>/B:1/H:56/W:56/C:192/N:16  each layout over a 56×56×192 image:
//       RowMajor, ColMajor   one direction                        (L·C scanned elements)
//       CrossScan4           VMamba, 4 directions × C channels    (4·L·C)
//       Snake                PlainMamba, 4 snakes, shared params  (4·L·C)
//       Atrous               EfficientVMamba, 4 sub-grids of L/4  (L·C)
//       MultiScale           MSVMamba: RM + joined 3 × L/4        (1.75·L·C, + the upsample)
//       Group                GroupMamba, 4 × C/4 channels         (L·C)
//   also at 14×14×384 and with N = 1 (VMamba v2 / MSVMamba / GroupMamba use d_state 1).
//   BM_BidirectionalScan_Simd/B:1/L:2048/D:384/N:16     Vim v2 (2·L·D elements)
// Options as in the vision blocks: delta_bias + softplus, D skip, no gate (SS2D applies it after its
// out_norm). Counters: ns_per_element = time / scanned elements (token·channel·direction);
// vs_1d = that / the 1-D scan's ns_per_element at the same (L, D, N) (1.0 = the reordering is free;
// the bound is 1.15), measured after the timed loop by alternating the case's call and the
// 1-D scan 9 times in thread CPU time, the median of the ratios (support/paired.hpp): the two
// cases' own times, seconds apart, drift by up to ±15% on this shared VM.

#include <benchmark/benchmark.h>

#include <random>

#include "support/counters.hpp"
#include "support/main.hpp"
#include "support/paired.hpp"
#include "tokenmix/ssm/selective_scan.hpp"
#include "tokenmix/ssm/selective_scan_2d.hpp"

namespace {

using namespace tokenmix;

void fill(float* p, Index n, float lo, float hi, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(lo, hi);
  for (Index i = 0; i < n; ++i) p[i] = d(rng);
}

// Image inputs: u [1, H, W, C], delta [1, H, W, Pd·C], P parameter blocks of C channels (A, D,
// delta_bias), G B/C groups.
struct Image {
  Tensor<float, 4> u, delta;
  Tensor<float, 2> A;
  Tensor<float, 5> B, C;
  Tensor<float, 1> D, bias;
  Image(Index H, Index W, Index Cc, Index P, Index Pd, Index G, Index N)
      : u(1, H, W, Cc), delta(1, H, W, Pd * Cc), A(P * Cc, N), B(1, H, W, G, N), C(1, H, W, G, N), D(P * Cc),
        bias(P * Cc) {
    std::mt19937 rng(3);
    fill(u.data(), u.size(), -1.f, 1.f, rng);
    fill(delta.data(), delta.size(), -3.f, 0.f, rng);
    fill(B.data(), B.size(), -1.f, 1.f, rng);
    fill(C.data(), C.size(), -1.f, 1.f, rng);
    fill(D.data(), D.size(), 0.5f, 1.5f, rng);
    bias.setConstant(-2.f);
    for (Index d = 0; d < P * Cc; ++d)
      for (Index n = 0; n < N; ++n) A(d, n) = -float(n + 1);
  }
  ssm::SelectiveScan2dOptions options() const {
    ssm::SelectiveScan2dOptions o;
    o.D = ConstTensorView<float, 1>(D);
    o.delta_bias = ConstTensorView<float, 1>(bias);
    o.delta_softplus = true;
    return o;
  }
};

// ns_per_element and items_per_second from the loop's time.
void report(benchmark::State& state, const bench::ThreadCpuTimer& timer, double elements) {
  state.counters["ns_per_element"] = timer.seconds() / double(state.iterations()) / elements * 1e9;
  state.SetItemsProcessed(static_cast<int64_t>(elements * double(state.iterations())));
}

// The 1-D baseline: selective_scan over [1, L, D] with the image cases' options.
struct Baseline1d {
  Index L, D, N;
  Image img;
  ssm::SelectiveScanOptions o;
  Tensor<float, 3> out;
  Baseline1d(Index L_, Index D_, Index N_) : L(L_), D(D_), N(N_), img(1, L_, D_, 1, 1, 1, N_), out(1, L_, D_) {
    o.D = ConstTensorView<float, 1>(img.D);
    o.delta_bias = ConstTensorView<float, 1>(img.bias);
    o.delta_softplus = true;
  }
  double elements() const { return double(L * D); }
  void run() {
    const auto flat3 = [&](const Tensor<float, 4>& t) { return ConstTensorView<float, 3>(t.data(), 1, L, t.dimension(3)); };
    ssm::selective_scan(flat3(img.u), flat3(img.delta), img.A, ConstTensorView<float, 3>(img.B.data(), 1, L, N),
                        ConstTensorView<float, 3>(img.C.data(), 1, L, N), o,
                        TensorView<float, 3>(out.data(), out.dimensions()), nullptr);
    benchmark::DoNotOptimize(out.data());
  }
};

// vs_1d: `call` (elements scanned) against the 1-D scan of L tokens x D channels, by alternation.
template <class Call>
void set_vs_1d(benchmark::State& state, Call&& call, double elements, Index L, Index D, Index N) {
  Baseline1d base(L, D, N);
  const double ratio = bench::paired_ratio(9, call, [&] { base.run(); }).ratio;
  state.counters["vs_1d"] = ratio * base.elements() / elements;
}

void BM_SelectiveScan_Simd(benchmark::State& state) {
  Baseline1d base(state.range(1), state.range(2), state.range(3));
  const bench::ThreadCpuTimer timer;
  for (auto _ : state) base.run();
  report(state, timer, base.elements());
}

enum class Layout { RowMajor, ColMajor, CrossScan4, Snake, Atrous, MultiScale, Group };

template <Layout layout>
void BM_SelectiveScan2d(benchmark::State& state) {
  const Index H = state.range(1), W = state.range(2), Cc = state.range(3), N = state.range(4);
  const bool grouped = layout == Layout::CrossScan4 || layout == Layout::Atrous;  // delta per direction
  const Index P = grouped ? 4 : layout == Layout::MultiScale ? 2 : 1;
  const Index G = grouped || layout == Layout::Group ? 4 : 1;
  const Image img(H, W, Cc, P, grouped ? 4 : 1, G, N);
  const Image low((H + 1) / 2, (W + 1) / 2, Cc, P, 1, G, N);  // MSVMamba's half-resolution input
  const auto o = img.options();
  double elements = double(H * W * Cc);
  if (layout == Layout::CrossScan4 || layout == Layout::Snake) elements *= 4;
  if (layout == Layout::MultiScale) elements += 3.0 * double(low.u.dimension(1) * low.u.dimension(2) * Cc);
  Tensor<float, 4> y(1, H, W, Cc);  // written in place, as the 1-D baseline writes its out
  const TensorView<float, 4> out(y.data(), y.dimensions());
  auto run = [&] {
    switch (layout) {
      case Layout::RowMajor:
      case Layout::ColMajor: {
        const auto order = layout == Layout::RowMajor ? ssm::ScanOrder::row_major : ssm::ScanOrder::col_major;
        ssm::selective_scan_2d(img.u, img.delta, img.A, img.B, img.C,
                               {ssm::ScanDirection{ssm::scan_path(order, H, W), Cc}}, o, out);
        break;
      }
      case Layout::CrossScan4: ssm::cross_scan_2d(img.u, img.delta, img.A, img.B, img.C, o, out); break;
      case Layout::Snake: ssm::snake_scan_2d(img.u, img.delta, img.A, img.B, img.C, o, out); break;
      case Layout::Atrous: ssm::atrous_scan_2d(img.u, img.delta, img.A, img.B, img.C, o, out); break;
      case Layout::Group: ssm::group_scan_2d(img.u, img.delta, img.A, img.B, img.C, o, out); break;
      case Layout::MultiScale:
        ssm::multiscale_scan_2d(img.u, img.delta, img.B, img.C, low.u, low.delta, low.B, low.C, img.A, o, out);
        break;
    }
    benchmark::DoNotOptimize(y.data());
  };
  const bench::ThreadCpuTimer timer;
  for (auto _ : state) run();
  report(state, timer, elements);
  set_vs_1d(state, run, elements, H * W, Cc, N);
}

// Vim's bidirectional scan (v2: separate parameters per direction) over a sequence, against the
// 1-D baseline on the same 2·L·D elements.
void BM_BidirectionalScan_Simd(benchmark::State& state) {
  const Index L = state.range(1), Dc = state.range(2), N = state.range(3);
  const Image img(1, L, 2 * Dc, 1, 1, 2, N);  // u, delta [1, 1, L, 2D]; A [2D, N]; B, C [1, 1, L, 2, N]
  const auto seq3 = [&](const Tensor<float, 4>& t) { return ConstTensorView<float, 3>(t.data(), 1, L, t.dimension(3)); };
  const auto seq4 = [&](const Tensor<float, 5>& t) { return ConstTensorView<float, 4>(t.data(), 1, L, 2, N); };
  ssm::SelectiveScan2dOptions o = img.options();
  auto run = [&] {
    Tensor<float, 3> y = ssm::bidirectional_scan(seq3(img.u), seq3(img.delta), img.A, seq4(img.B), seq4(img.C),
                                                 ssm::VimVariant::v2, std::nullopt, o);
    benchmark::DoNotOptimize(y.data());
  };
  const bench::ThreadCpuTimer timer;
  for (auto _ : state) run();
  report(state, timer, 2.0 * double(L * Dc));
  set_vs_1d(state, run, 2.0 * double(L * Dc), L, Dc, N);
}

void image_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"B", "H", "W", "C", "N"});
  for (const long n : {16, 1}) {
    b->Args({1, 56, 56, 192, n});
    b->Args({1, 14, 14, 384, n});
  }
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_SelectiveScan_Simd)
    ->ArgNames({"B", "L", "D", "N"})
    ->Args({1, 3136, 192, 16})
    ->Args({1, 196, 384, 16})
    ->Args({1, 3136, 192, 1})
    ->Args({1, 196, 384, 1})
    ->Args({1, 2048, 384, 16})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BidirectionalScan_Simd)->ArgNames({"B", "L", "D", "N"})->Args({1, 2048, 384, 16})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SelectiveScan2d<Layout::RowMajor>)->Name("BM_SelectiveScan2d_RowMajor")->Apply(image_shapes);
BENCHMARK(BM_SelectiveScan2d<Layout::ColMajor>)->Name("BM_SelectiveScan2d_ColMajor")->Apply(image_shapes);
BENCHMARK(BM_SelectiveScan2d<Layout::CrossScan4>)->Name("BM_SelectiveScan2d_CrossScan4")->Apply(image_shapes);
BENCHMARK(BM_SelectiveScan2d<Layout::Snake>)->Name("BM_SelectiveScan2d_Snake")->Apply(image_shapes);
BENCHMARK(BM_SelectiveScan2d<Layout::Atrous>)->Name("BM_SelectiveScan2d_Atrous")->Apply(image_shapes);
BENCHMARK(BM_SelectiveScan2d<Layout::MultiScale>)->Name("BM_SelectiveScan2d_MultiScale")->Apply(image_shapes);
BENCHMARK(BM_SelectiveScan2d<Layout::Group>)->Name("BM_SelectiveScan2d_Group")->Apply(image_shapes);

}  // namespace

TOKENMIX_BENCHMARK_MAIN();
