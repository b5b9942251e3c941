// The split neighborhood-attention operators (attention/neighborhood_split.hpp): qk -> softmax -> av
// equals the oracle and the fused operator in 1-D, 2-D and 3-D (GQA, Pv != P, rpb, dilation, causal
// slots at -inf), and their argument errors.

#include <gtest/gtest.h>

#include <cmath>
#include <optional>

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "support/tolerance.hpp"
#include "tokenmix/attention/neighborhood_attention.hpp"
#include "tokenmix/attention/neighborhood_split.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/reference/neighborhood_attention.hpp"

namespace tokenmix {
namespace neighborhood_split_cases {  // named: the family's files share one translation unit (tests/CMakeLists.txt)
namespace {

using testing::Rng;

template <int N>
Tensor<float, N> rn(const std::array<Index, N>& dims, Rng& rng) {
  return testing::random_normal<N>(dims, 0.f, 1.f, rng);
}

// Softmax over the last axis of [.., S] logits (-inf slots get weight 0).
template <int N>
Tensor<float, N> softmax_last(Tensor<float, N> x) {
  const Index S = x.dimension(N - 1), rows = x.size() / S;
  for (Index r = 0; r < rows; ++r) {
    float* row = x.data() + r * S;
    double m = -1e300, sum = 0;
    for (Index s = 0; s < S; ++s) m = std::max(m, double(row[s]));
    for (Index s = 0; s < S; ++s) sum += std::exp(double(row[s]) - m);
    for (Index s = 0; s < S; ++s) row[s] = float(std::exp(double(row[s]) - m) / sum);
  }
  return x;
}

// qk -> softmax -> av equals the oracle in 1-D, 2-D and 3-D (GQA, Pv != P, rpb, dilation, causal).
TEST(NeighborhoodSplit, QkSoftmaxAvEqualsTheOracle) {
  Rng rng(9);
  const testing::Tolerance tol = testing::tolerance::attention;
  {
    const auto q = rn<4>({2, 23, 4, 20}, rng), k = rn<4>({2, 23, 2, 20}, rng);
    const auto v = rn<4>({2, 23, 2, 7}, rng);
    for (const bool causal : {false, true}) {
      attention::NeighborhoodParams<1> p;
      p.kernel_size = {5}, p.dilation = {3}, p.causal = {causal};
      const Tensor<float, 4> logits = attention::neighborhood_qk<1>(q, k, p);
      const Tensor<float, 4> out = attention::neighborhood_av<1>(softmax_last(logits), v, p);
      EXPECT_TRUE(testing::all_close(out, ref::neighborhood_attention<1>(q, k, v, p), tol, causal ? "1-D causal" : "1-D"));
      if (causal) {  // query 1 (group 1, first of its group) sees only itself: slots 1.. are -inf
        for (Index s = 1; s < 5; ++s) EXPECT_TRUE(std::isinf(logits(0, 1, 0, s)) && logits(0, 1, 0, s) < 0);
      }
    }
  }
  {
    const auto q = rn<5>({1, 9, 11, 2, 16}, rng), k = rn<5>({1, 9, 11, 2, 16}, rng);
    const auto v = rn<5>({1, 9, 11, 2, 33}, rng);
    auto p = attention::NeighborhoodParams<2>::uniform(3, 2);
    p.kernel_size = {3, 5};
    const Tensor<float, 3> rpb = testing::random_normal<3>({2, 5, 9}, 0.f, 1.f, rng);  // [H, 2K0 - 1, 2K1 - 1]
    const Tensor<float, 5> logits = attention::neighborhood_qk<2>(q, k, p, ConstTensorView<float, 3>(rpb));
    EXPECT_TRUE(testing::all_close(attention::neighborhood_av<2>(softmax_last(logits), v, p),
                                   ref::neighborhood_attention<2>(q, k, v, p, ConstTensorView<float, 3>(rpb)), tol,
                                   "2-D with rpb"));
  }
  {
    const auto q = rn<6>({1, 4, 6, 7, 2, 8}, rng), k = rn<6>({1, 4, 6, 7, 1, 8}, rng);
    const auto v = rn<6>({1, 4, 6, 7, 1, 8}, rng);
    attention::NeighborhoodParams<3> p;
    p.kernel_size = {3, 3, 5}, p.causal = {true, false, false};
    ThreadPool pool(2);
    const Tensor<float, 6> logits = attention::neighborhood_qk<3>(q, k, p, std::nullopt, pool.device());
    EXPECT_TRUE(testing::all_close(attention::neighborhood_av<3>(softmax_last(logits), v, p, pool.device()),
                                   ref::neighborhood_attention<3>(q, k, v, p), tol, "3-D causal on the first axis"));
  }
}

TEST(NeighborhoodSplit, RejectsBadArguments) {
  Rng rng(10);
  const auto q = rn<5>({1, 6, 7, 2, 4}, rng);
  const auto p = attention::NeighborhoodParams<2>::uniform(3);
  const Tensor<float, 5> bad_weights(1, 6, 7, 2, 8);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::neighborhood_av<2>(bad_weights, q, p); },
                                               "neighborhood_av", "expected [B, X.., H, S=9]"));
  auto big = attention::NeighborhoodParams<2>::uniform(7);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::neighborhood_qk<2>(q, q, big); }, "neighborhood_qk",
                                               "larger than the axis (6)"));
  const auto k3 = rn<5>({1, 6, 7, 3, 4}, rng);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::neighborhood_qk<2>(q, k3, p); }, "neighborhood_qk",
                                               "with H a multiple of Hkv"));
  // neighborhood_attention_weights shares qk's rules, under its own name.
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::neighborhood_attention_weights<2>(q, k3, p); },
                                               "neighborhood_attention_weights", "with H a multiple of Hkv"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::neighborhood_attention_weights<2>(q, q, big); },
                                               "neighborhood_attention_weights", "larger than the axis (6)"));
  // The view-based overloads: out's shape, and no overlap with the inputs.
  Tensor<float, 5> logits(1, 6, 7, 2, 8), out(1, 6, 7, 2, 4);
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::neighborhood_qk<2>(q, q, p, std::nullopt, TensorView<float, 5>(logits.data(), logits.dimensions())); },
      "neighborhood_qk", "out has shape [1, 6, 7, 2, 8], expected [1, 6, 7, 2, 9]"));
  Tensor<float, 5> weights(1, 6, 7, 2, 9), v = q;
  weights.setConstant(1.f / 9);
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::neighborhood_av<2>(weights, v, p, TensorView<float, 5>(logits.data(), logits.dimensions())); },
      "neighborhood_av", "out has shape [1, 6, 7, 2, 8], expected [1, 6, 7, 2, 4]"));
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::neighborhood_av<2>(weights, v, p, TensorView<float, 5>(v.data(), v.dimensions())); },
      "neighborhood_av", "out must not overlap weights or v"));
  // neighborhood_qk: its logits must not overlap q or k, the scale must be finite, heads and width >= 1.
  Tensor<float, 5> big_q(1, 6, 7, 2, 9);
  big_q.setConstant(0.5f);
  const ConstTensorView<float, 5> q_in_logits(big_q.data(), q.dimensions());  // the logits' first floats
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { attention::neighborhood_qk<2>(q_in_logits, q, p, std::nullopt, TensorView<float, 5>(big_q.data(), big_q.dimensions())); },
      "neighborhood_qk", "out must not overlap q or k"));
  auto nan_scale = p;
  nan_scale.scale = std::nanf("");
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::neighborhood_qk<2>(q, q, nan_scale); }, "neighborhood_qk",
                                               "expected a finite number"));
  const Tensor<float, 5> no_width(1, 6, 7, 2, 0);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::neighborhood_qk<2>(no_width, no_width, p); },
                                               "neighborhood_qk", "(H, P >= 1)"));
  const Tensor<float, 5> no_heads(1, 6, 7, 0, 9);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { attention::neighborhood_av<2>(no_heads, v, p); }, "neighborhood_av",
                                               "(H, Pv >= 1)"));
  attention::neighborhood_av<2>(weights, v, p, TensorView<float, 5>(out.data(), out.dimensions()));
  EXPECT_TRUE(testing::bitwise_equal(out, attention::neighborhood_av<2>(weights, v, p), "view == allocating"));
}


// The A2SSM path (qk -> softmax -> av) and the fused kernel agree on a 2-D case with every border
// kind: rpb, dilation not dividing the axis, GQA.
TEST(NeighborhoodSplit, EqualsTheFusedOperator) {
  Rng rng(11);
  const auto q = rn<5>({2, 13, 21, 4, 16}, rng), k = rn<5>({2, 13, 21, 2, 16}, rng), v = rn<5>({2, 13, 21, 2, 24}, rng);
  attention::NeighborhoodParams<2> p;
  p.kernel_size = {5, 7}, p.dilation = {2, 3};
  const Tensor<float, 3> rpb = testing::random_normal<3>({4, 9, 13}, 0.f, 1.f, rng);
  const ConstTensorView<float, 3> rpb_view(rpb);
  const Tensor<float, 5> split = attention::neighborhood_av<2>(softmax_last(attention::neighborhood_qk<2>(q, k, p, rpb_view)), v, p);
  EXPECT_TRUE(testing::all_close(split, attention::neighborhood_attention(q, k, v, p, rpb_view), testing::tolerance::attention,
                                 "split vs fused"));
}

}  // namespace
}  // namespace neighborhood_split_cases
}  // namespace tokenmix
