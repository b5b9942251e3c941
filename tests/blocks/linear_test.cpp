// blocks::linear (every representative arch; packed GEMM, unpacked GEMM, GEMV for M <= 4) against
// ref::linear (double), thread-count invariance, misaligned views, and every bad-input rule.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "support/archs.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "tokenmix/blocks/linear.hpp"
#include "tokenmix/reference/linear.hpp"

namespace tokenmix {
namespace {

using testing::Rng;

// x ~ N(0, 1), W and b ~ U(-1/sqrt(K), 1/sqrt(K)) as nn.Linear's init: outputs O(1).
struct LinearInputs {
  Tensor<float, 2> x, w;
  Tensor<float, 1> b;
  LinearInputs(Index M, Index K, Index N, std::uint64_t seed) {
    Rng rng(seed);
    const float s = 1.0f / std::sqrt(float(K));
    x = testing::random_normal<2>({M, K}, 0.f, 1.f, rng);
    w = testing::random_uniform<2>({N, K}, -s, s, rng);
    b = testing::random_uniform<1>({N}, -s, s, rng);
  }
  std::optional<ConstTensorView<float, 1>> bias(bool on) const {
    if (!on) return std::nullopt;
    return ConstTensorView<float, 1>(b);
  }
};

std::string describe(const char* arch, Index M, Index K, Index N, bool bias, std::uint64_t seed) {
  std::ostringstream os;
  os << arch << " M=" << M << " K=" << K << " N=" << N << " bias=" << bias << " seed=" << seed;
  return os.str();
}

// Packed, unpacked (GEMV or packing on the fly) and both on a 3-thread pool, against the oracle.
template <class Arch>
::testing::AssertionResult matches_oracle(Index M, Index K, Index N, bool bias, std::uint64_t seed) {
  static ThreadPool pool(3);
  const LinearInputs in(M, K, N, seed);
  const std::string where = describe(Arch::name(), M, K, N, bias, seed);
  const auto expected = ref::linear<double>(in.x, in.w, in.bias(bias));
  const auto packed = blocks::PackedLinear::pack<Arch>(in.w);
  const auto a = blocks::linear<Arch>(in.x, packed, in.bias(bias));
  auto ok = testing::all_close(a, expected, testing::tolerance::linear, where + " packed");
  if (!ok) return ok;
  const auto u = blocks::linear<Arch>(in.x, in.w, in.bias(bias));
  ok = testing::all_close(u, expected, testing::tolerance::linear, where + " unpacked");
  if (!ok) return ok;
  ok = testing::bitwise_equal(blocks::linear<Arch>(in.x, packed, in.bias(bias), pool.device()), a,
                              where + " packed, 3 threads vs 1");
  if (!ok) return ok;
  return testing::bitwise_equal(blocks::linear<Arch>(in.x, in.w, in.bias(bias), pool.device()), u,
                                where + " unpacked, 3 threads vs 1");
}

template <class Arch>
class LinearArchTest : public ::testing::Test {};
TYPED_TEST_SUITE(LinearArchTest, testing::RepresentativeArchs, testing::ArchNames);

// M, N, K around the vector width W, the tile (MR rows, NR columns) and the K block, plus a prime.
TYPED_TEST(LinearArchTest, MatchesOracleAroundTileSizes) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  using Kernel = blocks::detail::LinearKernel<TypeParam>;
  const Index W = Kernel::W, MR = Kernel::MR, NR = Kernel::NR;
  std::uint64_t seed = 1;
  const std::vector<Index> ms = {1, 2, 3, 4, 5, MR - 1, MR, MR + 1, 2 * MR + 3, 97};
  const std::vector<Index> ns = {1, 2, W - 1, W, W + 1, NR - 1, NR, NR + 1, 97};
  const std::vector<Index> ks = {1, 2, W - 1, W, W + 1, 97};
  for (Index M : ms)
    for (Index N : ns)
      for (Index K : ks) {
        if (M <= 0 || N <= 0 || K <= 0) continue;
        const bool bias = (seed % 2) == 0;
        ASSERT_TRUE(matches_oracle<TypeParam>(M, K, N, bias, seed++));
      }
}

// K larger than the K block (KC) and M larger than the row block (MC): partial blocks in every loop.
TYPED_TEST(LinearArchTest, MatchesOracleAcrossCacheBlocks) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  using Kernel = blocks::detail::LinearKernel<TypeParam>;
  const Index KC = Kernel::KC, MC = Kernel::MC, NR = Kernel::NR;
  EXPECT_TRUE(matches_oracle<TypeParam>(MC + 3, KC + 5, 2 * NR + 3, true, 11));
  EXPECT_TRUE(matches_oracle<TypeParam>(7, 2 * KC + 1, 3 * NR, false, 12));
  EXPECT_TRUE(matches_oracle<TypeParam>(1, 2 * KC + 1, 3 * NR + 5, true, 13));
  EXPECT_TRUE(matches_oracle<TypeParam>(4, 1536, 37, true, 14));  // GEMV with long rows
}

TYPED_TEST(LinearArchTest, RandomSweep) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  Rng rng(2024);
  for (int i = 0; i < 30; ++i) {
    const Index M = testing::random_index(1, 70, rng), K = testing::random_index(1, 300, rng),
                N = testing::random_index(1, 150, rng);
    const bool bias = testing::random_index(0, 1, rng) == 1;
    ASSERT_TRUE(matches_oracle<TypeParam>(M, K, N, bias, 500 + std::uint64_t(i)));
  }
}

// Views whose data pointers are not vector-aligned (offset by one float in a larger buffer).
TYPED_TEST(LinearArchTest, AcceptsMisalignedViews) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  for (Index M : {1, 3, 13}) {
    const Index K = 37, N = 45;
    const LinearInputs in(M, K, N, 77);
    std::vector<float> xb(M * K + 1), wb(N * K + 1), bb(N + 1), ob(M * N + 1, -1.f);
    std::copy(in.x.data(), in.x.data() + M * K, xb.data() + 1);
    std::copy(in.w.data(), in.w.data() + N * K, wb.data() + 1);
    std::copy(in.b.data(), in.b.data() + N, bb.data() + 1);
    const ConstTensorView<float, 2> x(xb.data() + 1, M, K), w(wb.data() + 1, N, K);
    const ConstTensorView<float, 1> b(bb.data() + 1, N);
    TensorView<float, 2> out(ob.data() + 1, M, N);
    const auto expected = ref::linear<double>(in.x, in.w, in.bias(true));
    blocks::linear<TypeParam>(x, w, b, out);
    EXPECT_TRUE(testing::all_close(out, expected, testing::tolerance::linear, "misaligned unpacked"));
    blocks::linear<TypeParam>(x, blocks::PackedLinear::pack<TypeParam>(w), b, out);
    EXPECT_TRUE(testing::all_close(out, expected, testing::tolerance::linear, "misaligned packed"));
    EXPECT_EQ(ob[0], -1.f) << "wrote before out";
  }
}

// Threads 1, 2, 3: bitwise identical, on shapes with several panels, blocks and partial tiles.
TYPED_TEST(LinearArchTest, ThreadCountInvariance) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  ThreadPool pool2(2), pool3(3);
  for (Index M : {1, 4, 29, 300}) {
    const LinearInputs in(M, 203, 211, 9);
    const auto packed = blocks::PackedLinear::pack<TypeParam>(in.w);
    const auto one = blocks::linear<TypeParam>(in.x, packed, in.bias(true));
    const auto one_u = blocks::linear<TypeParam>(in.x, in.w, in.bias(true));
    for (const ThreadPool* pool : {&pool2, &pool3}) {
      const std::string where = "M=" + std::to_string(M) + " threads=" + std::to_string(pool->num_threads());
      EXPECT_TRUE(testing::bitwise_equal(blocks::linear<TypeParam>(in.x, packed, in.bias(true), pool->device()), one,
                                         where + " packed"));
      EXPECT_TRUE(testing::bitwise_equal(blocks::linear<TypeParam>(in.x, in.w, in.bias(true), pool->device()), one_u,
                                         where + " unpacked"));
      const auto packed_on_pool = blocks::PackedLinear::pack<TypeParam>(in.w, pool->device());
      EXPECT_TRUE(testing::bitwise_equal(blocks::linear<TypeParam>(in.x, packed_on_pool, in.bias(true)), one,
                                         where + " packed on a pool"));
    }
  }
}

// NaN in x reaches its row of out, NaN in W its column; nothing else.
TEST(Linear, NaNPropagatesToTheOutputsItTouches) {
  LinearInputs in(9, 20, 35, 5);
  in.x(2, 3) = std::numeric_limits<float>::quiet_NaN();
  in.w(7, 11) = std::numeric_limits<float>::quiet_NaN();
  for (Index M : {Index(9), Index(3)}) {
    const ConstTensorView<float, 2> x(in.x.data(), M, 20);
    for (int packed = 0; packed < 2; ++packed) {
      const auto out = packed ? blocks::linear(x, blocks::PackedLinear(in.w), in.bias(true))
                              : blocks::linear(x, in.w, in.bias(true));
      for (Index m = 0; m < M; ++m)
        for (Index n = 0; n < 35; ++n)
          EXPECT_EQ(std::isnan(out(m, n)), m == 2 || n == 7) << "M=" << M << " packed=" << packed << " at " << m << ", " << n;
    }
  }
}

TEST(Linear, EmptyBatchIsValid) {
  const LinearInputs in(1, 8, 5, 1);
  const ConstTensorView<float, 2> x(in.x.data(), 0, 8);
  EXPECT_EQ(blocks::linear(x, in.w).dimension(0), 0);
  EXPECT_EQ(blocks::linear(x, blocks::PackedLinear(in.w)).dimension(0), 0);
}

TEST(Linear, RejectsBadInputs) {
  const LinearInputs in(6, 8, 5, 1);
  Tensor<float, 2> out(6, 5), wrong_out(6, 4), bad_w(5, 7), empty_w(0, 8);
  Tensor<float, 1> bad_b(4);
  TensorView<float, 2> o(out.data(), 6, 5);
  testing::expect_error([&] { blocks::linear(in.x, bad_w); }, "linear: x has shape [6, 8], expected [M, K=7]");
  testing::expect_error([&] { blocks::linear(in.x, blocks::PackedLinear(bad_w)); }, "linear: x has shape [6, 8], expected [M, K=7]");
  testing::expect_error([&] { blocks::linear(in.x, empty_w); }, "linear: weight has shape [0, 8]");
  testing::expect_error([&] { blocks::PackedLinear p(empty_w); }, "PackedLinear: weight has shape [0, 8]");
  testing::expect_error([&] { blocks::linear(in.x, in.w, ConstTensorView<float, 1>(bad_b)); }, "linear: bias has shape [4], expected [N=5]");
  testing::expect_error([&] { blocks::linear(in.x, in.w, std::nullopt, TensorView<float, 2>(wrong_out.data(), 6, 4)); },
               "linear: out has shape [6, 4], expected [M=6, N=5]");
  testing::expect_error([&] { blocks::linear(in.x, blocks::PackedLinear(), std::nullopt); }, "PackedLinear weight is empty");
  // out overlapping x.
  Tensor<float, 2> xo(6, 8);
  testing::expect_error([&] { blocks::linear(xo, Tensor<float, 2>(8, 8).setZero(), std::nullopt, TensorView<float, 2>(xo.data(), 6, 8)); },
               "out must not overlap");
#if XSIMD_WITH_SSE2 && XSIMD_WITH_AVX512BW
  // A weight packed for another arch's panel width.
  testing::expect_error([&] { blocks::linear<xsimd::sse2>(in.x, blocks::PackedLinear::pack<xsimd::avx512bw>(in.w), std::nullopt, o); },
               "was packed for panels of");
#endif
  testing::expect_error([&] { ref::linear(in.x, bad_w); }, "ref::linear: x has shape [6, 8], expected [M, K=7]");
  (void)o;
}

}  // namespace
}  // namespace tokenmix
