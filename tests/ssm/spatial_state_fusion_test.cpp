// ssm::spatial_state_fusion (Spatial-Mamba's SASF) against its oracle (the training formula with
// explicit replicate padding): state sizes around the vector width, dilations larger than the
// image, the skip on / off; the identity kernel reduces to the plain C readout; threads; bad inputs.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/reference/spatial_state_fusion.hpp"
#include "tokenmix/ssm/spatial_state_fusion.hpp"

namespace tokenmix {
namespace {

using testing::Rng;

struct FusionInputs {
  Tensor<float, 5> h;
  Tensor<float, 4> kernels, C, u;
  Tensor<float, 1> alpha, D;
  FusionInputs(Index Bt, Index H, Index W, Index Dc, Index N, Index k, std::uint64_t seed) {
    Rng rng(seed);
    h = testing::random_normal<5>({Bt, H, W, Dc, N}, 0.f, 1.f, rng);
    kernels = testing::random_uniform<4>({k, Dc, 3, 3}, -0.5f, 1.f, rng);
    C = testing::random_normal<4>({Bt, H, W, N}, 0.f, 1.f, rng);
    u = testing::random_normal<4>({Bt, H, W, Dc}, 0.f, 1.f, rng);
    alpha = testing::random_uniform<1>({k}, 0.5f, 1.5f, rng);
    D = testing::random_normal<1>({Dc}, 0.f, 1.f, rng);
  }
  ssm::SpatialStateFusionOptions options(std::vector<Index> dilations, bool skip) const {
    ssm::SpatialStateFusionOptions o;
    o.dilations = std::move(dilations);
    if (skip) o.D = ConstTensorView<float, 1>(D), o.u = ConstTensorView<float, 4>(u);
    return o;
  }
};

TEST(SpatialStateFusion, MatchesTheTrainingFormula) {
  struct Case {
    Index Bt, H, W, Dc, N;
    std::vector<Index> dilations;
  };
  const std::vector<Case> cases = {{1, 7, 9, 19, 1, {1, 3, 5}},  {2, 5, 4, 16, 4, {1, 3, 5}}, {1, 3, 2, 8, 16, {1, 3, 5}},
                                   {1, 6, 6, 33, 3, {2}},         {1, 1, 1, 5, 1, {1, 3, 5}},  {1, 12, 10, 24, 2, {4, 1}}};
  for (const Case& k : cases)
    for (const bool skip : {false, true}) {
      const FusionInputs in(k.Bt, k.H, k.W, k.Dc, k.N, static_cast<Index>(k.dilations.size()), 1);
      const auto o = in.options(k.dilations, skip);
      const std::string what = "H=" + std::to_string(k.H) + " W=" + std::to_string(k.W) + " D=" + std::to_string(k.Dc) +
                               " N=" + std::to_string(k.N) + (skip ? " skip" : "");
      EXPECT_TRUE(testing::all_close(ssm::spatial_state_fusion(in.h, in.kernels, in.alpha, in.C, o),
                                     ref::spatial_state_fusion(in.h, in.kernels, in.alpha, in.C, o),
                                     testing::tolerance::spatial_state_fusion, what));
    }
}

// One kernel that is the identity (centre tap 1) with α = 1: y = Σ_n C·h + D·u, the scan's readout.
TEST(SpatialStateFusion, IdentityKernelIsThePlainReadout) {
  FusionInputs in(2, 4, 5, 10, 3, 1, 2);
  in.kernels.setZero();
  for (Index d = 0; d < 10; ++d) in.kernels(0, d, 1, 1) = 1.0f;
  in.alpha.setConstant(1.0f);
  const Tensor<float, 4> y = ssm::spatial_state_fusion(in.h, in.kernels, in.alpha, in.C, in.options({7}, true));
  for (Index b = 0; b < 2; ++b)
    for (Index i = 0; i < 4; ++i)
      for (Index j = 0; j < 5; ++j)
        for (Index d = 0; d < 10; ++d) {
          double e = double(in.D(d)) * in.u(b, i, j, d);
          for (Index n = 0; n < 3; ++n) e += double(in.C(b, i, j, n)) * in.h(b, i, j, d, n);
          ASSERT_NEAR(y(b, i, j, d), e, 1e-5) << b << i << j << d;
        }
}

TEST(SpatialStateFusion, BitwiseIdenticalForAnyThreadCount) {
  const FusionInputs in(2, 9, 7, 40, 4, 3, 3);
  auto o = in.options({1, 3, 5}, true);
  const Tensor<float, 4> one = ssm::spatial_state_fusion(in.h, in.kernels, in.alpha, in.C, o);
  ThreadPool pool(2);
  o.device = pool.device();
  EXPECT_TRUE(testing::bitwise_equal(ssm::spatial_state_fusion(in.h, in.kernels, in.alpha, in.C, o), one));
}

TEST(SpatialStateFusion, RejectsBadInputs) {
  const FusionInputs in(1, 4, 5, 8, 2, 3, 4);
  const char* op = "spatial_state_fusion";
  auto both = [&](const ssm::SpatialStateFusionOptions& o, const Tensor<float, 4>& kernels, const Tensor<float, 4>& C,
                  const std::string& fragment) {
    EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::spatial_state_fusion(in.h, kernels, in.alpha, C, o); }, op,
                                                 fragment));
    EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::spatial_state_fusion(in.h, kernels, in.alpha, C, o); },
                                                 std::string("ref::") + op, fragment));
  };
  both(in.options({1, 3}, false), in.kernels, in.C, "kernels has shape [3, 8, 3, 3], expected [k=2, D=8, 3=3, 3=3]");
  both(in.options({1, 0, 5}, false), in.kernels, in.C, "dilations must be >= 1, got 0");
  both(in.options({}, false), in.kernels, in.C, "no dilations");
  both(in.options({1, 3, 5}, false), in.kernels, Tensor<float, 4>(1, 4, 5, 3), "C has shape [1, 4, 5, 3], expected [B=1, H=4, W=5, N=2]");
  auto half = in.options({1, 3, 5}, false);
  half.D = ConstTensorView<float, 1>(in.D);
  both(half, in.kernels, in.C, "the D skip needs both D and u");
  Tensor<float, 4> out(1, 4, 5, 7);
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { ssm::spatial_state_fusion(in.h, in.kernels, in.alpha, in.C, in.options({1, 3, 5}, false),
                                      TensorView<float, 4>(out.data(), out.dimensions())); },
      op, "out has shape [1, 4, 5, 7], expected [B=1, H=4, W=5, D=8]"));
}

}  // namespace
}  // namespace tokenmix
