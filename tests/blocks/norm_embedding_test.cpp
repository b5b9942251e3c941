// blocks::rms_norm (every representative arch) against ref::rms_norm (double), in place, threads,
// bad inputs; blocks::layer_norm likewise against ref::layer_norm; blocks::embedding against direct indexing, including out-of-range ids.

#include <gtest/gtest.h>

#include <cmath>
#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "support/archs.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "tokenmix/blocks/embedding.hpp"
#include "tokenmix/blocks/layer_norm.hpp"
#include "tokenmix/blocks/rms_norm.hpp"
#include "tokenmix/reference/layer_norm.hpp"
#include "tokenmix/reference/rms_norm.hpp"

namespace tokenmix {
namespace {

using testing::Rng;

template <class Arch>
class RmsNormArchTest : public ::testing::Test {};
TYPED_TEST_SUITE(RmsNormArchTest, testing::RepresentativeArchs, testing::ArchNames);

TYPED_TEST(RmsNormArchTest, MatchesOracle) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  const Index W = static_cast<Index>(simd::lanes<TypeParam>);
  std::uint64_t seed = 1;
  for (Index D : {Index(1), W - 1, W, W + 1, 3 * W + 2, 4 * W, 4 * W + 1, Index(97), Index(768)})
    for (Index M : {1, 3, 8}) {
      if (D <= 0) continue;
      Rng rng(seed);
      const auto x = testing::random_normal<2>({M, D}, 0.5f, 2.f, rng);
      const auto w = testing::random_uniform<1>({D}, 0.5f, 1.5f, rng);
      for (double eps : {1e-5, 1e-6}) {
        const std::string where = std::string(TypeParam::name()) + " M=" + std::to_string(M) +
                                  " D=" + std::to_string(D) + " seed=" + std::to_string(seed);
        const auto expected = ref::rms_norm<double>(x, w, eps);
        EXPECT_TRUE(testing::all_close(blocks::rms_norm<TypeParam>(x, w, eps), expected, testing::tolerance::rms_norm,
                                       where));
      }
      ++seed;
    }
}

TYPED_TEST(RmsNormArchTest, InPlaceMisalignedAndThreads) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  Rng rng(7);
  const Index M = 13, D = 45;
  const auto x = testing::random_normal<2>({M, D}, 0.f, 1.f, rng);
  const auto w = testing::random_uniform<1>({D}, 0.5f, 1.5f, rng);
  const auto one = blocks::rms_norm<TypeParam>(x, w, 1e-5);
  std::vector<float> buf(M * D + 1);
  std::copy(x.data(), x.data() + M * D, buf.data() + 1);
  TensorView<float, 2> inplace(buf.data() + 1, M, D);
  blocks::rms_norm<TypeParam>(as_const(inplace), w, 1e-5, inplace);
  EXPECT_TRUE(testing::bitwise_equal(inplace, one, "in place, misaligned"));
  ThreadPool pool(3);
  EXPECT_TRUE(testing::bitwise_equal(blocks::rms_norm<TypeParam>(x, w, 1e-5, pool.device()), one, "3 threads"));
}

TEST(RmsNorm, ZeroRowsAndNaN) {
  Tensor<float, 2> x(3, 5);
  x.setZero();
  x(1, 2) = std::numeric_limits<float>::quiet_NaN();
  Tensor<float, 1> w(5);
  w.setConstant(2.f);
  const auto out = blocks::rms_norm(x, w, 1e-5);
  for (Index d = 0; d < 5; ++d) {
    EXPECT_EQ(out(0, d), 0.f);  // all-zero row: 0 * rsqrt(eps)
    EXPECT_TRUE(std::isnan(out(1, d)));
    EXPECT_EQ(out(2, d), 0.f);
  }
  EXPECT_EQ(blocks::rms_norm(ConstTensorView<float, 2>(x.data(), 0, 5), w).dimension(0), 0);
}

TEST(RmsNorm, RejectsBadInputs) {
  Tensor<float, 2> x(3, 5), wrong(3, 4), empty(3, 0);
  Tensor<float, 1> w(5), w4(4);
  x.setConstant(1.f), w.setConstant(1.f);
  testing::expect_error([&] { blocks::rms_norm(x, w4); }, "rms_norm: weight has shape [4], expected [D=5]");
  testing::expect_error([&] { blocks::rms_norm(empty, w); }, "rms_norm: x has shape [3, 0], expected [M, D] with D > 0");
  testing::expect_error([&] { blocks::rms_norm(x, w, std::nan("")); }, "rms_norm: eps must be finite");
  testing::expect_error([&] { blocks::rms_norm(x, w, -1.0); }, "rms_norm: eps must be >= 0");
  testing::expect_error([&] { blocks::rms_norm(x, w, 1e-5, TensorView<float, 2>(wrong.data(), 3, 4)); },
               "rms_norm: out has shape [3, 4], expected [M=3, D=5] like x");
  testing::expect_error([&] { blocks::rms_norm(x, w, 1e-5, TensorView<float, 2>(x.data() + 1, 2, 5)); }, "rms_norm: out has shape");
  Tensor<float, 2> big(4, 5);
  testing::expect_error([&] { blocks::rms_norm(ConstTensorView<float, 2>(big.data(), 3, 5), w, 1e-5,
                                      TensorView<float, 2>(big.data() + 1, 3, 5)); },
               "out must be x itself");
  testing::expect_error([&] { ref::rms_norm(x, w4); }, "ref::rms_norm: weight has shape [4], expected [D=5]");
}

// Mamba-2's gated RMSNorm: whole-row (transformers) and grouped (mamba_ssm) normalisation, in place.
TYPED_TEST(RmsNormArchTest, GatedMatchesOracle) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  Rng rng(31);
  for (const auto& [M, D, group] : std::vector<std::array<Index, 3>>{{3, 64, 64}, {5, 48, 24}, {2, 37, 37}, {4, 96, 12}}) {
    const Tensor<float, 2> x = testing::random_normal<2>({M, D}, 0.f, 1.f, rng);
    const Tensor<float, 2> z = testing::random_normal<2>({M, D}, 0.f, 2.f, rng);
    const Tensor<float, 1> w = testing::random_uniform<1>({D}, 0.5f, 1.5f, rng);
    Tensor<float, 2> out(M, D);
    blocks::gated_rms_norm<TypeParam>(x, z, w, 1e-5, group, TensorView<float, 2>(out.data(), out.dimensions()));
    const Tensor<float, 2> expected = ref::gated_rms_norm(x, z, w, 1e-5, group);
    EXPECT_TRUE(testing::all_close(out, expected, testing::tolerance::gated_rms_norm,
                                   "D=" + std::to_string(D) + " group=" + std::to_string(group)));
    Tensor<float, 2> in_place = x;
    blocks::gated_rms_norm<TypeParam>(in_place, z, w, 1e-5, group, TensorView<float, 2>(in_place.data(), in_place.dimensions()));
    EXPECT_TRUE(testing::bitwise_equal(in_place, out));
  }
}

TEST(GatedRmsNorm, RejectsBadInputs) {
  Tensor<float, 2> x(3, 6), z(3, 5), z6(3, 6), out(3, 6);
  Tensor<float, 1> w(6);
  x.setConstant(1.f), z6.setConstant(1.f), w.setConstant(1.f);
  const TensorView<float, 2> ov(out.data(), out.dimensions());
  testing::expect_error([&] { blocks::gated_rms_norm(x, z, w, 1e-5, 6, ov); },
                        "gated_rms_norm: gate has shape [3, 5], expected [M=3, D=6] like x");
  testing::expect_error([&] { blocks::gated_rms_norm(x, z6, w, 1e-5, 4, ov); },
                        "gated_rms_norm: group_size 4 must be positive and divide D=6");
  testing::expect_error([&] { blocks::gated_rms_norm(x, z6, w, 1e-5, 6, TensorView<float, 2>(z6.data(), z6.dimensions())); },
                        "gated_rms_norm: out must not overlap gate");
  testing::expect_error([&] { ref::gated_rms_norm(x, z6, w, 1e-5, 0); },
                        "ref::gated_rms_norm: group_size 0 must be positive and divide D=6");
}

// Rows with a large common offset (the two-pass variance must not cancel), widths around the vector
// width, in place and threads bitwise.
TYPED_TEST(RmsNormArchTest, LayerNormMatchesOracle) {
  Rng rng(21);
  for (const Index D : {1, 5, 16, 33, 192}) {
    Tensor<float, 2> x = testing::random_normal<2>({7, D}, 0.f, 1.f, rng);
    for (Index d = 0; d < D; ++d) x(3, d) += 1000.f;
    const Tensor<float, 1> w = testing::random_normal<1>({D}, 1.f, 0.2f, rng), b = testing::random_normal<1>({D}, 0.f, 0.2f, rng);
    const Tensor<float, 2> expected = ref::layer_norm<double>(x, w, b, 1e-6);
    const Tensor<float, 2> out = blocks::layer_norm<TypeParam>(x, w, b, 1e-6);
    EXPECT_TRUE(testing::all_close(out, expected, testing::tolerance::layer_norm, "D=" + std::to_string(D)));
    Tensor<float, 2> inplace = x;
    blocks::layer_norm<TypeParam>(inplace, w, b, 1e-6, TensorView<float, 2>(inplace.data(), inplace.dimensions()));
    EXPECT_TRUE(testing::bitwise_equal(inplace, out, "in place"));
    ThreadPool pool(3);
    EXPECT_TRUE(testing::bitwise_equal(blocks::layer_norm<TypeParam>(x, w, b, 1e-6, pool.device()), out, "3 threads"));
  }
}

TEST(LayerNorm, RejectsBadInputs) {
  Tensor<float, 2> x(3, 5), wrong(3, 4);
  x.setConstant(1.f);
  Tensor<float, 1> w(5), b(5), w4(4);
  w.setConstant(1.f), b.setZero();
  testing::expect_error([&] { blocks::layer_norm(x, w4, b); }, "layer_norm: weight has shape [4], expected [D=5]");
  testing::expect_error([&] { blocks::layer_norm(x, w, w4); }, "layer_norm: bias has shape [4], expected [D=5]");
  testing::expect_error([&] { blocks::layer_norm(x, w, b, 0.0); }, "layer_norm: eps must be > 0");
  testing::expect_error([&] { blocks::layer_norm(x, w, b, 1e-6, TensorView<float, 2>(wrong.data(), 3, 4)); },
                        "layer_norm: out has shape [3, 4], expected [M=3, D=5] like x");
  testing::expect_error([&] { blocks::layer_norm(x, w, b, 1e-6, TensorView<float, 2>(x.data() + 1, 2, 5)); }, "layer_norm: out has shape");
  testing::expect_error([&] { ref::layer_norm(x, w4, b, 1e-6); }, "ref::layer_norm: weight has shape [4], expected [D=5]");
}

TEST(Embedding, GathersRows) {
  Rng rng(3);
  const auto table = testing::random_normal<2>({11, 6}, 0.f, 1.f, rng);
  const std::vector<std::int64_t> ids = {0, 10, 3, 3, 7};
  const auto out = blocks::embedding(ids, table);
  ASSERT_EQ(out.dimension(0), 5);
  ASSERT_EQ(out.dimension(1), 6);
  for (Index m = 0; m < 5; ++m)
    for (Index d = 0; d < 6; ++d) EXPECT_EQ(out(m, d), table(ids[m], d));
  const auto out2 = blocks::embedding(ids.data() + 1, 2, table);
  EXPECT_EQ(out2(1, 4), table(3, 4));
  EXPECT_EQ(blocks::embedding(std::vector<std::int64_t>{}, table).dimension(0), 0);
}

TEST(Embedding, RejectsBadIds) {
  Tensor<float, 2> table(11, 6), out(2, 6), wrong(2, 5), empty(0, 6);
  table.setZero();
  testing::expect_error([&] { blocks::embedding(std::vector<std::int64_t>{1, 11}, table); },
               "embedding: ids[1] = 11 is out of range for a vocabulary of V=11 rows (table [11, 6])");
  testing::expect_error([&] { blocks::embedding(std::vector<std::int64_t>{-1}, table); }, "embedding: ids[0] = -1 is out of range");
  out.setConstant(5.f);
  testing::expect_error([&] { blocks::embedding(std::vector<std::int64_t>{2, 99}, table, TensorView<float, 2>(out.data(), 2, 6)); },
               "ids[1] = 99");
  EXPECT_EQ(out(0, 0), 5.f) << "nothing is written when an id is bad";
  testing::expect_error([&] { blocks::embedding(std::vector<std::int64_t>{2, 3}, table, TensorView<float, 2>(wrong.data(), 2, 5)); },
               "embedding: out has shape [2, 5], expected [M=2, D=6]");
  testing::expect_error([&] { blocks::embedding(std::vector<std::int64_t>{0}, empty); }, "embedding: table has shape [0, 6]");
  testing::expect_error([&] { blocks::embedding(nullptr, 3, table); }, "embedding: ids must point at 3 ids");
  testing::expect_error([&] { blocks::embedding(std::vector<std::int64_t>{0}, table, TensorView<float, 2>(table.data(), 1, 6)); },
               "out must not overlap table");
}

}  // namespace
}  // namespace tokenmix
