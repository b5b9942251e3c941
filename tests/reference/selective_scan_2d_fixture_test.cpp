// The 2-D scan oracles (reference/selective_scan_2d.hpp, reference/spatial_state_fusion.hpp) and the
// fast ops (ssm/selective_scan_2d.hpp, ssm/spatial_state_fusion.hpp) against numbers produced by an
// independent PyTorch transcription of each paper's released code (tests/data/make_scan_2d_fixture.py:
// VMamba CrossScan/CrossMerge, EfficientVMamba EfficientScan/EfficientMerge, PlainMamba's zigzag
// orders with direction-aware B, GroupMamba's CrossScan_1..4, MSVMamba's multiscale_4scan_12, Vim's
// bimamba v1 / v2, Spatial-Mamba's StateFusion). The argument mapping of every case is documented in
// the script; the inputs are the float32 values the float64 reference used.
//
// Set TOKENMIX_FIXTURE_REPORT=1 to print the measured worst errors of every comparison.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "support/compare.hpp"
#include "support/fixture.hpp"
#include "tokenmix/io/npy.hpp"
#include "tokenmix/reference/selective_scan.hpp"
#include "tokenmix/reference/selective_scan_2d.hpp"
#include "tokenmix/reference/spatial_state_fusion.hpp"
#include "tokenmix/ssm/selective_scan.hpp"
#include "tokenmix/ssm/selective_scan_2d.hpp"
#include "tokenmix/ssm/spatial_state_fusion.hpp"

namespace tokenmix {
namespace {

const testing::Tolerance kOracle = testing::tolerance::oracle_vs_fixture;
const testing::Tolerance kFast = testing::tolerance::selective_scan_2d;

bool has(const std::string& name, const std::string& file) { return testing::fixture_has("scan_2d", name, file); }

template <int R>
Tensor<float, R> load(const std::string& name, const std::string& file) {
  return testing::load_fixture<R>("scan_2d", name, file);
}


// One 2-D scan case over an image: u, delta, z, out [B, H, W, *]; B, C [B, H, W, G, N]; A [Dp, N].
struct ImageCase {
  std::string name;
  Tensor<float, 4> u, delta, out;
  Tensor<float, 2> A;
  Tensor<float, 5> B, C;
  Tensor<float, 1> D, bias;
  std::optional<Tensor<float, 4>> z;
  std::optional<Tensor<float, 2>> theta;

  explicit ImageCase(const std::string& n) : name(n) {
    u = load<4>(n, "u"), delta = load<4>(n, "delta"), out = load<4>(n, "out");
    A = load<2>(n, "A"), B = load<5>(n, "B"), C = load<5>(n, "C");
    D = load<1>(n, "D"), bias = load<1>(n, "delta_bias");
    if (has(n, "z")) z = load<4>(n, "z");
    if (has(n, "B_offset")) theta = load<2>(n, "B_offset");
  }
  ssm::SelectiveScan2dOptions options(bool permute_params = true) const {
    ssm::SelectiveScan2dOptions o;
    o.D = ConstTensorView<float, 1>(D);
    o.delta_bias = ConstTensorView<float, 1>(bias);
    o.delta_softplus = true;
    if (z) o.z = ConstTensorView<float, 4>(*z);
    if (theta) o.B_offset = ConstTensorView<float, 2>(*theta);
    o.permute_params = permute_params;
    return o;
  }
};

// ---- VMamba SS2D: CrossScan -> 4 grouped S6 -> CrossMerge ------------------------------------------

class VMambaFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(VMambaFixture, CrossScanMatchesReleasedCode) {
  const ImageCase c(GetParam());
  const auto o = c.options();
  EXPECT_TRUE(testing::check_fixture(ref::cross_scan_2d(c.u, c.delta, c.A, c.B, c.C, o), c.out, kOracle, c.name + " ref"));
  EXPECT_TRUE(testing::check_fixture(ssm::cross_scan_2d(c.u, c.delta, c.A, c.B, c.C, o), c.out, kFast, c.name + " fast"));
}

INSTANTIATE_TEST_SUITE_P(Cases, VMambaFixture, ::testing::Values("vmamba_cross", "vmamba_cross_column"));

// The fixture pins which parameter block goes with which order: CM and rev CM swapped must not match.
TEST(VMambaFixtureDiscriminates, DirectionToParameterBlock) {
  const ImageCase c("vmamba_cross");
  const Index H = c.u.dimension(1), W = c.u.dimension(2), D = c.u.dimension(3);
  using ssm::ScanOrder;
  const std::vector<ScanOrder> orders = {ScanOrder::row_major, ScanOrder::col_major_reversed,
                                         ScanOrder::row_major_reversed, ScanOrder::col_major};
  const auto swapped = ssm::grouped_directions(orders, H, W, D);
  EXPECT_FALSE(testing::all_close(ssm::selective_scan_2d(c.u, c.delta, c.A, c.B, c.C, swapped, c.options(), D), c.out,
                                  kFast, c.name));
}

// ---- EfficientVMamba ES2D (odd sizes: the released zero padding) ------------------------------------
// delta channel block k and B/C group k are NaN outside sub-grid k: the ops must not read them.

class EfficientVMambaFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(EfficientVMambaFixture, AtrousScanMatchesReleasedCode) {
  const ImageCase c(GetParam());
  const auto o = c.options();
  EXPECT_TRUE(testing::check_fixture(ref::atrous_scan_2d(c.u, c.delta, c.A, c.B, c.C, o), c.out, kOracle, c.name + " ref"));
  EXPECT_TRUE(testing::check_fixture(ssm::atrous_scan_2d(c.u, c.delta, c.A, c.B, c.C, o), c.out, kFast, c.name + " fast"));
}

INSTANTIATE_TEST_SUITE_P(Cases, EfficientVMambaFixture,
                         ::testing::Values("efficientvmamba_odd", "efficientvmamba_even"));

// The released padding steps are real scan steps (u = B = C = 0 but delta = softplus(delta_bias), which
// decays the state): skipping them must not match the odd-size fixture.
TEST(EfficientVMambaFixtureDiscriminates, PaddingStepsDecayTheState) {
  const ImageCase c("efficientvmamba_odd");
  const Index H = c.u.dimension(1), W = c.u.dimension(2), D = c.u.dimension(3);
  std::vector<ssm::ScanDirection> dirs = ssm::atrous_directions(H, W, D), skipping = dirs;
  Index padding_steps = 0;
  for (auto& d : skipping) {
    auto p = std::make_shared<ssm::ScanPath>(*d.path);
    p->index.erase(std::remove(p->index.begin(), p->index.end(), Index{-1}), p->index.end());
    padding_steps += d.path->length() - p->length();
    ssm::detail::label_moves(*p);
    d.path = p;
  }
  ASSERT_GT(padding_steps, 0);
  const auto o = c.options();
  EXPECT_TRUE(testing::all_close(ssm::selective_scan_2d(c.u, c.delta, c.A, c.B, c.C, dirs, o, D), c.out, kFast,
                                 c.name + " engine"));
  EXPECT_FALSE(testing::all_close(ssm::selective_scan_2d(c.u, c.delta, c.A, c.B, c.C, skipping, o, D), c.out, kFast,
                                  c.name + " padding skipped"));
}

// ---- PlainMamba: zigzag orders, shared parameters, Θ offsets, the released permute quirk -----------

struct PlainMambaCase {
  const char* name;
  bool permute_params;
};

class PlainMambaFixture : public ::testing::TestWithParam<PlainMambaCase> {};

TEST_P(PlainMambaFixture, SnakeScanMatchesReleasedCode) {
  const ImageCase c(GetParam().name);
  ASSERT_TRUE(c.z && c.theta);
  const auto o = c.options(GetParam().permute_params);
  EXPECT_TRUE(testing::check_fixture(ref::snake_scan_2d(c.u, c.delta, c.A, c.B, c.C, o), c.out, kOracle, c.name + " ref"));
  EXPECT_TRUE(testing::check_fixture(ssm::snake_scan_2d(c.u, c.delta, c.A, c.B, c.C, o), c.out, kFast, c.name + " fast"));
}

// The fixture must tell the two readings apart (else the released-quirk cases would prove nothing).
TEST_P(PlainMambaFixture, PermuteParamsMatters) {
  const ImageCase c(GetParam().name);
  const auto other = c.options(!GetParam().permute_params);
  EXPECT_FALSE(testing::all_close(ref::snake_scan_2d(c.u, c.delta, c.A, c.B, c.C, other), c.out, kFast, c.name));
}

INSTANTIATE_TEST_SUITE_P(Cases, PlainMambaFixture,
                         ::testing::Values(PlainMambaCase{"plainmamba_released", false},
                                           PlainMambaCase{"plainmamba_released_odd", false},
                                           PlainMambaCase{"plainmamba_permuted", true}));

// ---- GroupMamba: 4 channel groups, one direction each ----------------------------------------------

class GroupMambaFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(GroupMambaFixture, GroupScanMatchesReleasedCode) {
  const ImageCase c(GetParam());
  const auto o = c.options();
  EXPECT_TRUE(testing::check_fixture(ref::group_scan_2d(c.u, c.delta, c.A, c.B, c.C, o), c.out, kOracle, c.name + " ref"));
  EXPECT_TRUE(testing::check_fixture(ssm::group_scan_2d(c.u, c.delta, c.A, c.B, c.C, o), c.out, kFast, c.name + " fast"));
}

INSTANTIATE_TEST_SUITE_P(Cases, GroupMambaFixture, ::testing::Values("groupmamba", "groupmamba_n3"));

// ---- MSVMamba multiscale_4scan_12 (out_norm = identity in the fixture) -----------------------------

class MSVMambaFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(MSVMambaFixture, MultiscaleScanMatchesReleasedCode) {
  const std::string n = GetParam();
  const Tensor<float, 4> u_full = load<4>(n, "u_full"), delta_full = load<4>(n, "delta_full");
  const Tensor<float, 4> u_low = load<4>(n, "u_low"), delta_low = load<4>(n, "delta_low"), out = load<4>(n, "out");
  const Tensor<float, 5> B_full = load<5>(n, "B_full"), C_full = load<5>(n, "C_full");
  const Tensor<float, 5> B_low = load<5>(n, "B_low"), C_low = load<5>(n, "C_low");
  const Tensor<float, 2> A = load<2>(n, "A");
  const Tensor<float, 1> D = load<1>(n, "D"), bias = load<1>(n, "delta_bias");
  ssm::SelectiveScan2dOptions o;
  o.D = ConstTensorView<float, 1>(D);
  o.delta_bias = ConstTensorView<float, 1>(bias);
  o.delta_softplus = true;
  EXPECT_TRUE(testing::check_fixture(ref::multiscale_scan_2d(u_full, delta_full, B_full, C_full, u_low, delta_low, B_low, C_low, A, o),
                    out, kOracle, n + " ref"));
  EXPECT_TRUE(testing::check_fixture(ssm::multiscale_scan_2d(u_full, delta_full, B_full, C_full, u_low, delta_low, B_low, C_low, A, o),
                    out, kFast, n + " fast"));
}

INSTANTIATE_TEST_SUITE_P(Cases, MSVMambaFixture, ::testing::Values("msvmamba_odd", "msvmamba_even"));

// The low-resolution branch is ONE scan over [rev RM, CM, rev CM] (no state reset between the parts):
// three separate scans of the parts must not match.
TEST(MSVMambaFixtureDiscriminates, JoinedScanCarriesTheState) {
  const std::string n = "msvmamba_odd";
  const Tensor<float, 4> u_full = load<4>(n, "u_full"), delta_full = load<4>(n, "delta_full");
  const Tensor<float, 4> u_low = load<4>(n, "u_low"), delta_low = load<4>(n, "delta_low"), out = load<4>(n, "out");
  const Tensor<float, 5> B_full = load<5>(n, "B_full"), C_full = load<5>(n, "C_full");
  const Tensor<float, 5> B_low = load<5>(n, "B_low"), C_low = load<5>(n, "C_low");
  const Tensor<float, 2> A = load<2>(n, "A");
  const Tensor<float, 1> D = load<1>(n, "D"), bias = load<1>(n, "delta_bias");
  ssm::SelectiveScan2dOptions o;
  o.D = ConstTensorView<float, 1>(D);
  o.delta_bias = ConstTensorView<float, 1>(bias);
  o.delta_softplus = true;
  const Index H = u_full.dimension(1), W = u_full.dimension(2), Dm = u_full.dimension(3);
  const Index h = u_low.dimension(1), w = u_low.dimension(2);
  using ssm::ScanOrder;
  std::vector<ssm::ScanDirection> parts;
  for (const ScanOrder order : {ScanOrder::row_major_reversed, ScanOrder::col_major, ScanOrder::col_major_reversed})
    parts.push_back(ssm::ScanDirection{ssm::scan_path(order, h, w), Dm, 0, 0, 0, 0, 0});
  Tensor<float, 4> y = ssm::selective_scan_2d(u_full, delta_full, A, B_full, C_full,
                                              ssm::multiscale_full_directions(H, W, Dm), o, Dm);
  const Tensor<float, 4> y_low = ssm::selective_scan_2d(u_low, delta_low, A, B_low, C_low, parts, o, Dm);
  ssm::bilinear_resize_add(y_low, TensorView<float, 4>(y.data(), y.dimensions()));
  EXPECT_FALSE(testing::all_close(y, out, kFast, n + " reset between parts"));
}

// ---- Vim bimamba v1 / v2 ---------------------------------------------------------------------------

struct VimCase {
  const char* name;
  ssm::VimVariant variant;
};

class VimFixture : public ::testing::TestWithParam<VimCase> {};

TEST_P(VimFixture, BidirectionalScanMatchesReleasedCode) {
  const std::string n = GetParam().name;
  const Tensor<float, 3> u = load<3>(n, "u"), delta = load<3>(n, "delta"), z = load<3>(n, "z"), out = load<3>(n, "out");
  const Tensor<float, 4> B = load<4>(n, "B"), C = load<4>(n, "C");
  const Tensor<float, 2> A = load<2>(n, "A");
  const Tensor<float, 1> D = load<1>(n, "D"), bias = load<1>(n, "delta_bias");
  ssm::SelectiveScan2dOptions o;
  o.D = ConstTensorView<float, 1>(D);
  o.delta_bias = ConstTensorView<float, 1>(bias);
  o.delta_softplus = true;
  const std::optional<ConstTensorView<float, 3>> zv = ConstTensorView<float, 3>(z);
  const auto v = GetParam().variant;
  EXPECT_TRUE(testing::check_fixture(ref::bidirectional_scan(u, delta, A, B, C, v, zv, o), out, kOracle, n + " ref"));
  EXPECT_TRUE(testing::check_fixture(ssm::bidirectional_scan(u, delta, A, B, C, v, zv, o), out, kFast, n + " fast"));
}

INSTANTIATE_TEST_SUITE_P(Cases, VimFixture,
                         ::testing::Values(VimCase{"vim_v2", ssm::VimVariant::v2},
                                           VimCase{"vim_v1", ssm::VimVariant::v1}));

// ---- Spatial-Mamba: all states of a C-less, D-less scan, then the structure-aware fusion ------------

struct SpatialCase {
  std::string name;
  Tensor<float, 4> u, delta_img, C, out;
  Tensor<float, 3> B;       // [B, L, N]
  Tensor<float, 5> states;  // [B, H, W, D, N]
  Tensor<float, 4> kernels;
  Tensor<float, 2> A;
  Tensor<float, 1> D, bias, alpha;
  Index Bt, H, W, Dm, N;

  explicit SpatialCase(const std::string& n) : name(n) {
    u = load<4>(n, "u"), delta_img = load<4>(n, "delta"), C = load<4>(n, "C"), out = load<4>(n, "out");
    B = load<3>(n, "B"), states = load<5>(n, "states"), kernels = load<4>(n, "kernels"), A = load<2>(n, "A");
    D = load<1>(n, "D"), bias = load<1>(n, "delta_bias"), alpha = load<1>(n, "alpha");
    Bt = u.dimension(0), H = u.dimension(1), W = u.dimension(2), Dm = u.dimension(3), N = A.dimension(1);
  }
  // The image as a sequence [B, L, D] (row-major: Spatial-Mamba's one RM scan).
  ConstTensorView<float, 3> seq(const Tensor<float, 4>& t) const {
    return ConstTensorView<float, 3>(t.data(), Bt, H * W, t.dimension(3));
  }
  ssm::SelectiveScanOptions scan_options() const {  // "without C and D": D left out, C below is ones
    ssm::SelectiveScanOptions o;
    o.delta_bias = ConstTensorView<float, 1>(bias);
    o.delta_softplus = true;
    return o;
  }
  Tensor<float, 2> ones_C() const {
    Tensor<float, 2> c(Dm, N);
    c.setConstant(1.0f);
    return c;
  }
  ssm::SpatialStateFusionOptions fusion_options() const {
    ssm::SpatialStateFusionOptions o;
    o.dilations = {1, 3, 5};
    o.D = ConstTensorView<float, 1>(D);
    o.u = ConstTensorView<float, 4>(u);
    return o;
  }
  ConstTensorView<float, 5> image_states(const Tensor<float, 4>& s) const {  // [B, L, D, N] -> [B, H, W, D, N]
    return ConstTensorView<float, 5>(s.data(), Bt, H, W, Dm, N);
  }
};

class SpatialMambaFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(SpatialMambaFixture, OracleStatesAndFusionMatchReleasedCode) {
  const SpatialCase c(GetParam());
  const Tensor<float, 2> ones = c.ones_C();
  const auto r = ref::selective_scan_states<double>(c.seq(c.u), c.seq(c.delta_img), c.A, c.B, ones, c.scan_options());
  EXPECT_TRUE(testing::check_fixture(c.image_states(r.states), c.states, kOracle, c.name + " ref states"));
  const auto fo = c.fusion_options();
  EXPECT_TRUE(testing::check_fixture(ref::spatial_state_fusion(c.states, c.kernels, c.alpha, c.C, fo), c.out, kOracle,
                    c.name + " ref fusion"));
  EXPECT_TRUE(testing::check_fixture(ref::spatial_state_fusion(c.image_states(r.states), c.kernels, c.alpha, c.C, fo), c.out,
                    kOracle, c.name + " ref states+fusion"));
}

TEST_P(SpatialMambaFixture, FastStatesAndFusionMatchReleasedCode) {
  const SpatialCase c(GetParam());
  const Tensor<float, 2> ones = c.ones_C();
  const auto r = ssm::selective_scan_states(c.seq(c.u), c.seq(c.delta_img), c.A, c.B, ones, c.scan_options());
  EXPECT_TRUE(testing::check_fixture(c.image_states(r.states), c.states, testing::tolerance::selective_scan_states,
                    c.name + " fast states"));
  const auto fo = c.fusion_options();
  EXPECT_TRUE(testing::check_fixture(ssm::spatial_state_fusion(c.states, c.kernels, c.alpha, c.C, fo), c.out,
                    testing::tolerance::spatial_state_fusion, c.name + " fast fusion"));
  EXPECT_TRUE(testing::check_fixture(ssm::spatial_state_fusion(c.image_states(r.states), c.kernels, c.alpha, c.C, fo), c.out,
                    testing::tolerance::spatial_state_fusion, c.name + " fast states+fusion"));
}

INSTANTIATE_TEST_SUITE_P(Cases, SpatialMambaFixture, ::testing::Values("spatialmamba", "spatialmamba_n2"));

}  // namespace
}  // namespace tokenmix
