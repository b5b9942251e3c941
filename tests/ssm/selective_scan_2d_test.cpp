// The 2-D scan family: every composite equals its oracle (written from the paper with explicit index
// formulas), the engine's bad-input rules, and thread invariance. The paths themselves:
// tests/ssm/scan_path_test.cpp.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/archs.hpp"
#include "support/random.hpp"
#include "tokenmix/core/cache.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/reference/selective_scan_2d.hpp"
#include "tokenmix/ssm/selective_scan_2d.hpp"

namespace tokenmix {
namespace {

using ssm::ScanOrder;
using testing::Rng;

// Inputs of a 2-D scan: P parameter blocks of D channels, G groups of B/C.
struct Inputs2d {
  Tensor<float, 4> u, delta, z;
  Tensor<float, 2> A, theta;
  Tensor<float, 5> B, C;
  Tensor<float, 1> D, bias;
  Inputs2d(Index Bt, Index H, Index W, Index Du, Index Dd, Index Dp, Index G, Index N, Index Do, std::uint64_t seed) {
    Rng rng(seed);
    u = testing::random_normal<4>({Bt, H, W, Du}, 0.f, 1.f, rng);
    delta = testing::random_uniform<4>({Bt, H, W, Dd}, -3.f, 1.f, rng);
    z = testing::random_normal<4>({Bt, H, W, Do}, 0.f, 1.f, rng);
    A = testing::random_uniform<2>({Dp, N}, -2.f, -0.1f, rng);
    B = testing::random_normal<5>({Bt, H, W, G, N}, 0.f, 1.f, rng);
    C = testing::random_normal<5>({Bt, H, W, G, N}, 0.f, 1.f, rng);
    D = testing::random_normal<1>({Dp}, 0.f, 1.f, rng);
    bias = testing::random_uniform<1>({Dp}, -2.f, 0.5f, rng);
    theta = testing::random_normal<2>({5, N}, 0.f, 0.3f, rng);
  }
  ssm::SelectiveScan2dOptions options(bool gate = true) const {
    ssm::SelectiveScan2dOptions o;
    o.D = ConstTensorView<float, 1>(D);
    o.delta_bias = ConstTensorView<float, 1>(bias);
    o.delta_softplus = true;
    if (gate) o.z = ConstTensorView<float, 4>(z);
    return o;
  }
};

const testing::Tolerance kTol = testing::tolerance::selective_scan_2d;

struct Grid {
  Index Bt, H, W, D, N;
};
// Directions over <= 64 channels read B and C in place (D = 72 gathers them); {1, 3, 5, 8, 33}: N above
// the widest vector, with padding cells (odd sides) reading the kernel's row of zeros for B and C;
// 17 x 15: paths over several of the kernel's 64-token chunks, whose rows it looks up once per chunk
// (atrous: chunks with and without padding cells).
const std::vector<Grid> kGrids = {{1, 5, 7, 19, 4}, {2, 4, 4, 16, 16}, {1, 1, 9, 5, 1},   {1, 6, 3, 33, 3},
                                  {1, 3, 5, 8, 33}, {1, 3, 5, 72, 2},  {2, 17, 15, 20, 1}};

std::string name(const Grid& g) {
  return "B=" + std::to_string(g.Bt) + " H=" + std::to_string(g.H) + " W=" + std::to_string(g.W) + " D=" +
         std::to_string(g.D) + " N=" + std::to_string(g.N);
}

TEST(CrossScan2d, MatchesVMambaOracle) {
  for (const Grid& g : kGrids) {
    const Inputs2d in(g.Bt, g.H, g.W, g.D, 4 * g.D, 4 * g.D, 4, g.N, g.D, 1);
    for (const bool gate : {false, true}) {
      const auto o = in.options(gate);
      EXPECT_TRUE(testing::all_close(ssm::cross_scan_2d(in.u, in.delta, in.A, in.B, in.C, o),
                                     ref::cross_scan_2d(in.u, in.delta, in.A, in.B, in.C, o), kTol, name(g)));
    }
  }
}

TEST(AtrousScan2d, MatchesEfficientVMambaOracleEvenAndOdd) {
  for (const Grid& g : kGrids) {
    const Inputs2d in(g.Bt, g.H, g.W, g.D, 4 * g.D, 4 * g.D, 4, g.N, g.D, 2);
    const auto o = in.options();
    EXPECT_TRUE(testing::all_close(ssm::atrous_scan_2d(in.u, in.delta, in.A, in.B, in.C, o),
                                   ref::atrous_scan_2d(in.u, in.delta, in.A, in.B, in.C, o), kTol, name(g)));
  }
}

TEST(SnakeScan2d, MatchesPlainMambaOracleWithAndWithoutTheReleasedQuirk) {
  for (const Grid& g : kGrids) {
    const Inputs2d in(g.Bt, g.H, g.W, g.D, g.D, g.D, 1, g.N, g.D, 3);
    for (const bool permute : {true, false})
      for (const bool offsets : {false, true}) {
        auto o = in.options();
        o.permute_params = permute;
        if (offsets) o.B_offset = ConstTensorView<float, 2>(in.theta);
        const std::string what = name(g) + (permute ? " permute_params" : " released (u only)") + (offsets ? " Θ" : "");
        EXPECT_TRUE(testing::all_close(ssm::snake_scan_2d(in.u, in.delta, in.A, in.B, in.C, o),
                                       ref::snake_scan_2d(in.u, in.delta, in.A, in.B, in.C, o), kTol, what));
      }
  }
  // The quirk matters: reordering only u is a different function when H, W > 1.
  const Inputs2d in(1, 4, 5, 8, 8, 8, 1, 4, 8, 4);
  auto o = in.options();
  const Tensor<float, 4> paper = ssm::snake_scan_2d(in.u, in.delta, in.A, in.B, in.C, o);
  o.permute_params = false;
  EXPECT_FALSE(testing::all_close(ssm::snake_scan_2d(in.u, in.delta, in.A, in.B, in.C, o), paper, kTol, "quirk"));
}

TEST(GroupScan2d, MatchesGroupMambaOracle) {
  for (const Grid& g : {Grid{1, 5, 7, 20, 1}, Grid{2, 4, 6, 64, 16}, Grid{2, 17, 15, 20, 1}}) {
    const Inputs2d in(g.Bt, g.H, g.W, g.D, g.D, g.D, 4, g.N, g.D, 5);
    const auto o = in.options();
    EXPECT_TRUE(testing::all_close(ssm::group_scan_2d(in.u, in.delta, in.A, in.B, in.C, o),
                                   ref::group_scan_2d(in.u, in.delta, in.A, in.B, in.C, o), kTol, name(g)));
  }
}

// The engine on every representative arch (the other tests run the native one): B and C read in place
// (directions over <= 64 channels) and gathered (D = 72, Θ offsets), padding cells with N above every
// vector width, partial channel blocks.
template <class Arch>
class Scan2dArchTest : public ::testing::Test {};
TYPED_TEST_SUITE(Scan2dArchTest, testing::RepresentativeArchs, testing::ArchNames);

TYPED_TEST(Scan2dArchTest, LayoutsMatchTheirOracles) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  using Arch = TypeParam;
  for (const Grid& g : {Grid{1, 3, 5, 8, 33}, Grid{1, 5, 4, 72, 3}, Grid{2, 4, 3, 20, 1}, Grid{2, 17, 15, 20, 1}}) {
    const std::string where = std::string(Arch::name()) + " " + name(g);
    const Inputs2d atrous(g.Bt, g.H, g.W, g.D, 4 * g.D, 4 * g.D, 4, g.N, g.D, 11);
    const auto o = atrous.options();
    EXPECT_TRUE(testing::all_close(ssm::atrous_scan_2d<Arch>(atrous.u, atrous.delta, atrous.A, atrous.B, atrous.C, o),
                                   ref::atrous_scan_2d(atrous.u, atrous.delta, atrous.A, atrous.B, atrous.C, o), kTol,
                                   where + " atrous"));
    const Inputs2d group(g.Bt, g.H, g.W, g.D, g.D, g.D, 4, g.N, g.D, 12);
    const auto og = group.options();
    EXPECT_TRUE(testing::all_close(ssm::group_scan_2d<Arch>(group.u, group.delta, group.A, group.B, group.C, og),
                                   ref::group_scan_2d(group.u, group.delta, group.A, group.B, group.C, og), kTol,
                                   where + " group"));
    const Inputs2d snake(g.Bt, g.H, g.W, g.D, g.D, g.D, 1, g.N, g.D, 13);
    auto with_theta = snake.options();
    with_theta.B_offset = ConstTensorView<float, 2>(snake.theta);
    EXPECT_TRUE(testing::all_close(ssm::snake_scan_2d<Arch>(snake.u, snake.delta, snake.A, snake.B, snake.C, with_theta),
                                   ref::snake_scan_2d(snake.u, snake.delta, snake.A, snake.B, snake.C, with_theta), kTol,
                                   where + " snake with Θ"));
    // MSVMamba: the upsample added by the kernel as it writes out (resample), in vectors of Arch.
    const Inputs2d full(g.Bt, g.H, g.W, g.D, g.D, 2 * g.D, 1, g.N, g.D, 14);
    const Inputs2d low(g.Bt, (g.H + 1) / 2, (g.W + 1) / 2, g.D, g.D, 2 * g.D, 1, g.N, g.D, 15);
    const auto om = full.options();
    EXPECT_TRUE(testing::all_close(ssm::multiscale_scan_2d<Arch>(full.u, full.delta, full.B, full.C, low.u, low.delta,
                                                                 low.B, low.C, full.A, om),
                                   ref::multiscale_scan_2d(full.u, full.delta, full.B, full.C, low.u, low.delta, low.B,
                                                           low.C, full.A, om),
                                   kTol, where + " multiscale"));
  }
}

TEST(BidirectionalScan, MatchesVimOracleV1AndV2) {
  for (const auto& [Bt, L, D, N] : std::vector<std::array<Index, 4>>{{1, 13, 19, 16}, {2, 40, 8, 4}, {1, 1, 3, 2}}) {
    Rng rng(6);
    for (const ssm::VimVariant v : {ssm::VimVariant::v1, ssm::VimVariant::v2}) {
      const bool v2 = v == ssm::VimVariant::v2;
      const Index Dc = v2 ? 2 * D : D, G = v2 ? 2 : 1;
      const Tensor<float, 3> u = testing::random_normal<3>({Bt, L, Dc}, 0.f, 1.f, rng);
      const Tensor<float, 3> dt = testing::random_uniform<3>({Bt, L, Dc}, -3.f, 1.f, rng);
      const Tensor<float, 3> z = testing::random_normal<3>({Bt, L, D}, 0.f, 1.f, rng);
      const Tensor<float, 2> A = testing::random_uniform<2>({2 * D, N}, -2.f, -0.1f, rng);
      const Tensor<float, 4> B = testing::random_normal<4>({Bt, L, G, N}, 0.f, 1.f, rng);
      const Tensor<float, 4> C = testing::random_normal<4>({Bt, L, G, N}, 0.f, 1.f, rng);
      const Tensor<float, 1> Dv = testing::random_normal<1>({Dc}, 0.f, 1.f, rng);
      const Tensor<float, 1> bias = testing::random_uniform<1>({Dc}, -2.f, 0.5f, rng);
      ssm::SelectiveScan2dOptions o;
      o.D = ConstTensorView<float, 1>(Dv);
      o.delta_bias = ConstTensorView<float, 1>(bias);
      o.delta_softplus = true;
      const std::optional<ConstTensorView<float, 3>> zv = ConstTensorView<float, 3>(z);
      EXPECT_TRUE(testing::all_close(ssm::bidirectional_scan(u, dt, A, B, C, v, zv, o),
                                     ref::bidirectional_scan(u, dt, A, B, C, v, zv, o), kTol,
                                     std::string(v2 ? "v2" : "v1") + " L=" + std::to_string(L)));
    }
  }
}

TEST(MultiscaleScan2d, MatchesMSVMambaOracle) {
  // D = 19: a whole vector and a partial one per cell; 17 x 15: several chunks of the kernel at both
  // resolutions (the upsample is added by the full-resolution scan chunk after chunk).
  for (const auto& [H, W, D, N] :
       std::vector<std::array<Index, 4>>{{7, 9, 12, 1}, {8, 8, 16, 4}, {5, 6, 19, 2}, {17, 15, 40, 1}}) {
    const Index h = (H + 1) / 2, w = (W + 1) / 2;
    const Inputs2d full(2, H, W, D, D, 2 * D, 1, N, D, 7), low(2, h, w, D, D, 2 * D, 1, N, D, 8);
    const auto o = full.options();  // A, D, delta_bias [2D] and z [B, H, W, D] from the full-resolution set
    EXPECT_TRUE(testing::all_close(
        ssm::multiscale_scan_2d(full.u, full.delta, full.B, full.C, low.u, low.delta, low.B, low.C, full.A, o),
        ref::multiscale_scan_2d(full.u, full.delta, full.B, full.C, low.u, low.delta, low.B, low.C, full.A, o), kTol,
        "H=" + std::to_string(H) + " W=" + std::to_string(W)));
  }
  // The resize alone against PyTorch's formula (align_corners = False), up and down.
  Rng rng(9);
  const Tensor<float, 4> x = testing::random_normal<4>({1, 3, 5, 2}, 0.f, 1.f, rng);
  for (const auto& [H, W] : std::vector<std::pair<Index, Index>>{{6, 10}, {5, 9}, {2, 3}, {3, 5}})
    EXPECT_TRUE(testing::all_close(ssm::bilinear_resize(x, H, W), ref::bilinear_resize(x, H, W),
                                   testing::tolerance::rms_norm, "resize"));
}

// Bad arguments of either branch throw before out is written.
TEST(MultiscaleScan2d, RejectsBadArgumentsBeforeWritingOut) {
  const Inputs2d full(1, 6, 6, 8, 8, 16, 1, 4, 8, 3), low(1, 3, 3, 8, 8, 16, 1, 4, 8, 4);
  const auto o = full.options(false);
  Tensor<float, 4> out(1, 6, 6, 8);
  out.setConstant(7.0f);
  const TensorView<float, 4> view(out.data(), out.dimensions());
  const Tensor<float, 5> bad_B(1, 6, 6, 1, 3), bad_low_B(1, 3, 3, 1, 5);
  auto unchanged = [&] { return std::all_of(out.data(), out.data() + out.size(), [](float x) { return x == 7.0f; }); };
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { ssm::multiscale_scan_2d(full.u, full.delta, bad_B, full.C, low.u, low.delta, low.B, low.C, full.A, o, view); },
      "multiscale_scan_2d", "B has shape [1, 6, 6, 1, 3], expected [B=1, H=6, W=6, G=1, N=4]"));
  EXPECT_TRUE(unchanged());
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { ssm::multiscale_scan_2d(full.u, full.delta, full.B, full.C, low.u, low.delta, bad_low_B, low.C, full.A, o, view); },
      "selective_scan_2d", "B has shape [1, 3, 3, 1, 5], expected [B=1, H=3, W=3, G=1, N=4]"));
  EXPECT_TRUE(unchanged());
}

// One row-major direction over the whole image is the plain 1-D scan of the flattened image.
TEST(SelectiveScan2d, OneRowMajorDirectionIsThePlainScan) {
  const Inputs2d in(2, 6, 7, 24, 24, 24, 1, 16, 24, 10);
  auto o = in.options(false);
  const Tensor<float, 4> got = ssm::selective_scan_2d(
      in.u, in.delta, in.A, in.B, in.C, {ssm::ScanDirection{ssm::scan_path(ScanOrder::row_major, 6, 7), 24}}, o, 24);
  ssm::SelectiveScanOptions so;
  so.D = ConstTensorView<float, 1>(in.D);
  so.delta_bias = ConstTensorView<float, 1>(in.bias);
  so.delta_softplus = true;
  const auto flat = [](const Tensor<float, 4>& t) {
    return ConstTensorView<float, 3>(t.data(), t.dimension(0), t.dimension(1) * t.dimension(2), t.dimension(3));
  };
  const ssm::SelectiveScanResult plain = ssm::selective_scan(
      flat(in.u), flat(in.delta), in.A, ConstTensorView<float, 4>(in.B.data(), 2, 42, 1, 16),
      ConstTensorView<float, 4>(in.C.data(), 2, 42, 1, 16), so);
  EXPECT_TRUE(testing::bitwise_equal(Tensor<float, 3>(flat(got)), plain.out));
}

// The engine writes the first visit of a cell and adds later ones, or zeroes out first when the
// directions do not write every value exactly once: each case below takes one of those branches
// (`written`: the leading steps of each direction that write out, written_steps; empty = out zeroed),
// with out full of NaN beforehand. Expected: the sum of the directions' scans, each by the oracle.
TEST(SelectiveScan2d, MergeCoversEveryValueWhateverTheDirections) {
  const Index H = 5, W = 6, Dc = 16;
  const Inputs2d in(2, H, W, Dc, Dc, Dc, 1, 4, Dc, 12);
  const auto o = in.options(false);
  auto path = [&](ScanOrder order) { return ssm::scan_path(order, H, W); };
  auto dir = [&](ScanOrder order, Index channels, Index out_channel) {
    return ssm::ScanDirection{path(order), channels, out_channel, out_channel, out_channel, out_channel, 0};
  };
  auto joined = [&](std::vector<ScanOrder> orders) {
    std::vector<std::shared_ptr<const ssm::ScanPath>> parts;
    for (const ScanOrder order : orders) parts.push_back(path(order));
    return ssm::ScanDirection{ssm::joined_scan_path(parts), Dc};
  };
  struct Case {
    const char* what;
    std::vector<ssm::ScanDirection> directions;
    std::vector<Index> written;
  };
  // H = 5 is odd: the sub-grids over odd rows end with a padding step (8 of their 9 steps write).
  const std::vector<Case> cases = {
      {"cross scan: the first writes, the others add",
       {dir(ScanOrder::row_major, Dc, 0), dir(ScanOrder::col_major, Dc, 0), dir(ScanOrder::row_major_reversed, Dc, 0)},
       {30, 0, 0}},
      {"disjoint sub-grids covering the grid (odd sizes: padding)",
       {dir(ScanOrder::atrous0, Dc, 0), dir(ScanOrder::atrous1, Dc, 0), dir(ScanOrder::atrous2, Dc, 0),
        dir(ScanOrder::atrous3, Dc, 0)},
       {9, 8, 9, 8}},
      {"channel groups", {dir(ScanOrder::col_major, 8, 0), dir(ScanOrder::row_snake, 8, 8)}, {30, 30}},
      {"one sub-grid: cells left unvisited", {dir(ScanOrder::atrous1, Dc, 0)}, {}},
      {"channels left unvisited", {dir(ScanOrder::row_major, 8, 4)}, {}},
      {"overlapping channel ranges", {dir(ScanOrder::row_major, 12, 0), dir(ScanOrder::col_major, 12, 4)}, {}},
      {"fresh and visited cells in one direction", {dir(ScanOrder::atrous0, Dc, 0), dir(ScanOrder::row_major, Dc, 0)},
       {}},
      {"a joined path (MSVMamba's): its first pass writes, its revisits add",
       {joined({ScanOrder::row_major, ScanOrder::col_major})},
       {30}},
      {"a joined path over part of the grid, revisiting it, then directions over the rest",
       {joined({ScanOrder::atrous0, ScanOrder::atrous0}), dir(ScanOrder::atrous1, Dc, 0),
        dir(ScanOrder::atrous2, Dc, 0), dir(ScanOrder::atrous3, Dc, 0)},
       {9, 8, 9, 8}},
      {"a joined path visiting fresh cells after visited ones",
       {joined({ScanOrder::atrous0, ScanOrder::atrous0, ScanOrder::atrous1, ScanOrder::atrous2, ScanOrder::atrous3})},
       {}},
  };
  for (const auto& [what, dirs, written] : cases) {
    EXPECT_EQ(ssm::detail::written_steps(dirs, Dc, H * W), written) << what;
    Tensor<float, 4> got(2, H, W, Dc);
    got.setConstant(std::numeric_limits<float>::quiet_NaN());
    ssm::selective_scan_2d(in.u, in.delta, in.A, in.B, in.C, dirs, o, TensorView<float, 4>(got.data(), got.dimensions()));
    Tensor<float, 4> want(2, H, W, Dc);
    want.setZero();
    for (const ssm::ScanDirection& d : dirs) {
      std::vector<int> moves(d.path->moves.begin(), d.path->moves.end());
      ref::detail::scan_and_add<double>(in.u, in.delta, in.A, in.B, in.C, o, d.path->index, d.path->index, moves,
                                        d.channels, d.u_channel, d.delta_channel, d.param_channel, d.out_channel,
                                        d.group, want);
    }
    EXPECT_TRUE(testing::all_close(got, want, kTol, what));
  }
}

TEST(SelectiveScan2d, BitwiseIdenticalForAnyThreadCount) {
  const Inputs2d in(2, 9, 11, 40, 160, 160, 4, 8, 40, 11);
  ThreadPool pool(2);
  auto o = in.options();
  const Tensor<float, 4> one = ssm::cross_scan_2d(in.u, in.delta, in.A, in.B, in.C, o);
  o.device = pool.device();
  EXPECT_TRUE(testing::bitwise_equal(ssm::cross_scan_2d(in.u, in.delta, in.A, in.B, in.C, o), one));
  // MSVMamba: each thread adds the upsample to its own channel blocks, across the batch.
  const Inputs2d full(2, 17, 15, 40, 40, 80, 1, 1, 40, 16), low(2, 9, 8, 40, 40, 80, 1, 1, 40, 17);
  auto om = full.options();
  auto multiscale = [&] {
    return ssm::multiscale_scan_2d(full.u, full.delta, full.B, full.C, low.u, low.delta, low.B, low.C, full.A, om);
  };
  const Tensor<float, 4> serial = multiscale();
  om.device = pool.device();
  EXPECT_TRUE(testing::bitwise_equal(multiscale(), serial));
}

// Consecutive directions that only write run in interleaved pairs where the image (u, delta, out)
// is larger than the L2 (selective_scan_2d.hpp): GroupMamba's groups and EfficientVMamba's
// sub-grids on such an image, against their oracles and bitwise across thread counts; VMamba's
// cross scan, whose directions add, must not pair.
TEST(SelectiveScan2d, InterleavedPairsOnAnImageLargerThanTheL2) {
  const Index D = 64, cell_bytes = 3 * D * static_cast<Index>(sizeof(float));
  const Index H = 2 * (static_cast<Index>(std::sqrt(static_cast<double>(l2_cache_bytes()) / cell_bytes)) / 2 + 1);
  ASSERT_GT(H * H * cell_bytes, static_cast<Index>(l2_cache_bytes()));
  ThreadPool pool(2);
  const Inputs2d group(1, H, H, D, D, D, 4, 1, D, 21);
  auto og = group.options();
  const Tensor<float, 4> g1 = ssm::group_scan_2d(group.u, group.delta, group.A, group.B, group.C, og);
  EXPECT_TRUE(testing::all_close(g1, ref::group_scan_2d(group.u, group.delta, group.A, group.B, group.C, og), kTol,
                                 "group, H = W = " + std::to_string(H)));
  og.device = pool.device();
  EXPECT_TRUE(testing::bitwise_equal(ssm::group_scan_2d(group.u, group.delta, group.A, group.B, group.C, og), g1,
                                     "group, 2 threads"));
  const Inputs2d atrous(1, H, H, D, 4 * D, 4 * D, 4, 2, D, 22);
  auto oa = atrous.options();
  const Tensor<float, 4> a1 = ssm::atrous_scan_2d(atrous.u, atrous.delta, atrous.A, atrous.B, atrous.C, oa);
  EXPECT_TRUE(testing::all_close(a1, ref::atrous_scan_2d(atrous.u, atrous.delta, atrous.A, atrous.B, atrous.C, oa),
                                 kTol, "atrous, H = W = " + std::to_string(H)));
  oa.device = pool.device();
  EXPECT_TRUE(testing::bitwise_equal(ssm::atrous_scan_2d(atrous.u, atrous.delta, atrous.A, atrous.B, atrous.C, oa), a1,
                                     "atrous, 2 threads"));
  // Cross scan's directions after the first add to out: none of them may run interleaved.
  const auto oc = atrous.options();
  EXPECT_TRUE(testing::all_close(ssm::cross_scan_2d(atrous.u, atrous.delta, atrous.A, atrous.B, atrous.C, oc),
                                 ref::cross_scan_2d(atrous.u, atrous.delta, atrous.A, atrous.B, atrous.C, oc), kTol,
                                 "cross, H = W = " + std::to_string(H)));
}

TEST(SelectiveScan2d, RejectsBadArguments) {
  const Inputs2d in(1, 4, 5, 8, 16, 16, 2, 4, 8, 12);
  const auto rm = ssm::scan_path(ScanOrder::row_major, 4, 5);
  auto run = [&](const std::vector<ssm::ScanDirection>& dirs, const ssm::SelectiveScan2dOptions& o = {}, Index Do = 8) {
    return [&, dirs, o, Do] { ssm::selective_scan_2d(in.u, in.delta, in.A, in.B, in.C, dirs, o, Do); };
  };
  const char* op = "selective_scan_2d";
  EXPECT_TRUE(testing::throws_error_mentioning(run({}), op, "no scan directions"));
  EXPECT_TRUE(testing::throws_error_mentioning(run({ssm::ScanDirection{nullptr, 8}}), op, "direction 0 has no path"));
  EXPECT_TRUE(testing::throws_error_mentioning(run({ssm::ScanDirection{ssm::scan_path(ScanOrder::row_major, 5, 4), 8}}), op,
                                               "direction 0's path is over a 5x4 grid, but u is 4x5"));
  EXPECT_TRUE(testing::throws_error_mentioning(run({ssm::ScanDirection{rm, 8, 1}}), op,
                                               "direction 0 reads u channels [1, 9), outside the 8 channels there"));
  EXPECT_TRUE(testing::throws_error_mentioning(run({ssm::ScanDirection{rm, 8, 0, 9}}), op,
                                               "reads delta channels [9, 17), outside the 16 channels there"));
  EXPECT_TRUE(testing::throws_error_mentioning(run({ssm::ScanDirection{rm, 8, 0, 0, 0, 0, 2}}), op,
                                               "reads B/C group 2, but there are G=2"));
  EXPECT_TRUE(testing::throws_error_mentioning(run({ssm::ScanDirection{rm, 0}}), op, "scans 0 channels, expected > 0"));
  ssm::SelectiveScan2dOptions quirk;
  quirk.permute_params = false;
  EXPECT_TRUE(testing::throws_error_mentioning(run({ssm::ScanDirection{ssm::scan_path(ScanOrder::atrous0, 4, 5), 8}}, quirk),
                                               op, "permute_params = false reads delta, B and C in raster order"));
  ssm::SelectiveScan2dOptions bad_z;
  const Tensor<float, 4> z(1, 4, 5, 7);
  bad_z.z = ConstTensorView<float, 4>(z);
  EXPECT_TRUE(testing::throws_error_mentioning(run({ssm::ScanDirection{rm, 8}}, bad_z), op,
                                               "z has shape [1, 4, 5, 7], expected [B=1, H=4, W=5, Do=8]"));
  const Tensor<float, 5> bad_B(1, 4, 5, 2, 3);
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { ssm::cross_scan_2d(in.u, in.delta, in.A, bad_B, in.C); }, op,
      "B has shape [1, 4, 5, 2, 3], expected [B=1, H=4, W=5, G=2, N=4]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::cross_scan_2d(in.u, in.delta, in.A, bad_B, in.C); },
                                               "ref::cross_scan_2d", "B has shape [1, 4, 5, 2, 3]"));
  const Tensor<float, 4> u6 = in.u.slice(std::array<Index, 4>{0, 0, 0, 0}, std::array<Index, 4>{1, 4, 5, 6});
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::group_scan_2d(u6, in.delta, in.A, in.B, in.C); },
                                               "group_scan_2d", "with D divisible by 4"));
}

}  // namespace
}  // namespace tokenmix
