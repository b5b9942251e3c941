// blocks::depthwise_conv2d (every representative arch) against its oracle (double): channels around
// the vector width, K 1 / 3 / 5 / 7, images smaller than the kernel, with and without bias and
// SiLU; thread-count invariance, NaN reach and every bad-input rule.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "support/archs.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "tokenmix/blocks/depthwise_conv2d.hpp"
#include "tokenmix/reference/depthwise_conv2d.hpp"

namespace tokenmix {
namespace depthwise_conv2d_test {

using testing::Rng;
using testing::tolerance::depthwise_conv2d;

struct ConvCase {
  Index batch = 2, height = 1, width = 1, channels = 1, K = 3;
  bool bias = false, silu = false;
  std::uint64_t seed = 0;
  std::string describe() const {
    std::ostringstream os;
    os << "B=" << batch << " H=" << height << " W=" << width << " C=" << channels << " K=" << K << " bias=" << bias
       << " silu=" << silu << " seed=" << seed;
    return os.str();
  }
};

struct ConvInputs {
  Tensor<float, 4> x;
  Tensor<float, 3> w;
  Tensor<float, 1> b;
  ConvCase c;
  explicit ConvInputs(const ConvCase& cc) : c(cc) {
    Rng rng(c.seed);
    x = testing::random_normal<4>({c.batch, c.height, c.width, c.channels}, 0.f, 1.f, rng);
    const float bound = 1.0f / static_cast<float>(c.K);  // ~ PyTorch's init for fan-in K²
    w = testing::random_uniform<3>({c.channels, c.K, c.K}, -bound, bound, rng);
    b = testing::random_uniform<1>({c.channels}, -0.5f, 0.5f, rng);
  }
  blocks::DepthwiseConv2dOptions options(const Eigen::ThreadPoolDevice* device = nullptr) const {
    blocks::DepthwiseConv2dOptions o;
    if (c.bias) o.bias = b;
    o.activation_silu = c.silu, o.device = device;
    return o;
  }
};

template <class Arch>
::testing::AssertionResult matches_oracle(const ConvCase& c) {
  const ConvInputs in(c);
  return testing::all_close(blocks::depthwise_conv2d<Arch>(in.x, in.w, in.options()),
                            ref::depthwise_conv2d<double>(in.x, in.w, in.options()), depthwise_conv2d,
                            std::string(Arch::name()) + " " + c.describe());
}

template <class Arch>
class DepthwiseConv2dArchTest : public ::testing::Test {};
TYPED_TEST_SUITE(DepthwiseConv2dArchTest, testing::RepresentativeArchs, testing::ArchNames);

TYPED_TEST(DepthwiseConv2dArchTest, MatchesOracleAroundVectorWidthAndKernelSizes) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  const Index W = static_cast<Index>(simd::lanes<TypeParam>);
  std::uint64_t seed = 100;
  for (Index channels : {Index(1), W - 1, W, W + 1, 2 * W + 3})
    for (Index K : {1, 3, 5, 7})
      for (const auto& [height, width] : {std::pair<Index, Index>{1, 1}, {3, 2}, {6, 11}, {9, 14}})
        for (int options = 0; options < 4; ++options) {
          ConvCase c;
          c.height = height, c.width = width, c.channels = channels, c.K = K;
          c.bias = options & 1, c.silu = options & 2, c.seed = seed++;
          EXPECT_TRUE(matches_oracle<TypeParam>(c));
        }
}

TEST(DepthwiseConv2dTest, MatchesOracleOnA2MambaShapes) {
  for (Index K : {3, 5}) {
    ConvCase c;
    c.batch = 1, c.height = 28, c.width = 28, c.channels = 64, c.K = K, c.bias = true, c.silu = K == 5, c.seed = 7;
    EXPECT_TRUE(matches_oracle<simd::default_arch>(c));
  }
}

TEST(DepthwiseConv2dTest, ThreadCountDoesNotChangeResults) {
  ConvCase c;
  c.batch = 2, c.height = 13, c.width = 17, c.channels = 40, c.K = 5, c.bias = c.silu = true, c.seed = 8;
  const ConvInputs in(c);
  const Tensor<float, 4> single = blocks::depthwise_conv2d(in.x, in.w, in.options());
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    EXPECT_TRUE(testing::bitwise_equal(blocks::depthwise_conv2d(in.x, in.w, in.options(pool.device())), single,
                                       std::to_string(threads) + " threads"));
  }
}

// NaN at (b, i, j, c) reaches out[b, i ± K/2, j ± K/2, c] only.
TEST(DepthwiseConv2dTest, NanReachesOnlyItsNeighbourhood) {
  ConvCase c;
  c.batch = 2, c.height = 9, c.width = 10, c.channels = 20, c.K = 3, c.bias = true, c.seed = 9;
  ConvInputs in(c);
  in.x(1, 4, 6, 11) = std::numeric_limits<float>::quiet_NaN();
  const Tensor<float, 4> y = blocks::depthwise_conv2d(in.x, in.w, in.options());
  for (Index b = 0; b < 2; ++b)
    for (Index i = 0; i < 9; ++i)
      for (Index j = 0; j < 10; ++j)
        for (Index ch = 0; ch < 20; ++ch)
          ASSERT_EQ(std::isnan(y(b, i, j, ch)), b == 1 && ch == 11 && std::abs(i - 4) <= 1 && std::abs(j - 6) <= 1)
              << "at [" << b << ", " << i << ", " << j << ", " << ch << "]";
}

TEST(DepthwiseConv2dTest, RejectsBadInputWithClearErrors) {
  ConvCase c;
  c.height = 5, c.width = 6, c.channels = 8, c.K = 3, c.seed = 10;
  const ConvInputs in(c);
  const std::string op = "depthwise_conv2d";
  auto run = [&](auto&&... args) { return [&, args...] { blocks::depthwise_conv2d(args...); }; };
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.x, Tensor<float, 3>(8, 4, 4), blocks::DepthwiseConv2dOptions{}), op, "weight has shape [8, 4, 4], expected [C=8, K, K] with an odd kernel size K"));
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.x, Tensor<float, 3>(7, 3, 3), blocks::DepthwiseConv2dOptions{}), op, "weight has shape [7, 3, 3]"));
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.x, Tensor<float, 3>(8, 3, 5), blocks::DepthwiseConv2dOptions{}), op, "weight has shape [8, 3, 5]"));
  EXPECT_TRUE(testing::throws_error_mentioning(run(Tensor<float, 4>(0, 5, 6, 8), in.w, blocks::DepthwiseConv2dOptions{}), op, "x has shape [0, 5, 6, 8], expected [B, H, W, C] with B, C > 0"));
  blocks::DepthwiseConv2dOptions bad_bias;
  const Tensor<float, 1> short_bias(7);
  bad_bias.bias = short_bias;
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.x, in.w, bad_bias), op, "bias has shape [7], expected [C=8]"));
  Tensor<float, 4> out(2, 5, 5, 8), x_copy = in.x;
  EXPECT_TRUE(testing::throws_error_mentioning([&] { blocks::depthwise_conv2d(in.x, in.w, {}, TensorView<float, 4>(out.data(), out.dimensions())); }, op, "out has shape [2, 5, 5, 8], expected [B=2, H=5, W=6, C=8] like x"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { blocks::depthwise_conv2d(x_copy, in.w, {}, TensorView<float, 4>(x_copy.data(), x_copy.dimensions())); }, op, "out must not overlap x"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::depthwise_conv2d<double>(in.x, Tensor<float, 3>(8, 2, 2)); }, "ref::depthwise_conv2d", "weight has shape [8, 2, 2]"));
}

}  // namespace depthwise_conv2d_test
}  // namespace tokenmix
