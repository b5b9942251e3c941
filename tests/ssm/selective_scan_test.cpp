// ssm::selective_scan (every compiled arch) against ref::selective_scan (double), plus properties
// (state carry, causality, thread-count invariance, L = 0, NaN propagation) and every bad-input rule.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "support/archs.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "support/scan_case.hpp"
#include "tokenmix/reference/selective_scan.hpp"
#include "tokenmix/ssm/selective_scan.hpp"

namespace tokenmix {
namespace {

using testing::MisalignedInputs;
using testing::Rng;
using testing::ScanCase;
using testing::ScanInputs;
using testing::mamba_case;
using testing::slice_tokens;
using testing::tolerance::selective_scan;

template <class Arch>
::testing::AssertionResult matches_oracle(const ScanCase& c) {
  const ScanInputs in(c);
  const auto expected = ref::selective_scan<double>(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  const auto actual = ssm::selective_scan<Arch>(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  const std::string where = std::string(Arch::name()) + " " + c.describe();
  auto out_ok = testing::all_close(actual.out, expected.out, selective_scan, where + " out");
  if (!out_ok) return out_ok;
  return testing::all_close(actual.last_state, expected.last_state, selective_scan, where + " last_state");
}

template <class Arch>
class SelectiveScanArchTest : public ::testing::Test {};
TYPED_TEST_SUITE(SelectiveScanArchTest, testing::RepresentativeArchs, testing::ArchNames);

// Channel counts around the vector width, every N the issue names, every option on and off.
TYPED_TEST(SelectiveScanArchTest, MatchesOracleAroundVectorWidth) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  std::uint64_t seed = 100;
  for (Index channels : testing::channels_around(simd::lanes<TypeParam>))
    for (Index state : {1, 4, 7, 16, 64})
      for (Index groups : {1, 2}) {
        if (channels % groups) continue;
        for (int options = 0; options < 32; options += 3) {  // 11 of the 32 on/off combinations
          ScanCase c;
          c.batch = 2, c.length = 9, c.channels = channels, c.state = state, c.groups = groups;
          c.set_options(options), c.seed = seed++;
          EXPECT_TRUE(matches_oracle<TypeParam>(c));
        }
      }
}

// Every specialised N (4, 8, 16, 32) and the generic path, with all options on, odd long L.
TYPED_TEST(SelectiveScanArchTest, MatchesOracleForEveryStateSpecialisation) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  for (Index state : {2, 4, 8, 16, 32, 33}) {
    ScanCase c;
    c.batch = 2, c.length = 101, c.channels = 40, c.state = state, c.groups = 2;
    c.skip = c.gate = c.bias = c.softplus = c.initial = true;
    c.seed = 7 + static_cast<std::uint64_t>(state);
    EXPECT_TRUE(matches_oracle<TypeParam>(c));
  }
}

TYPED_TEST(SelectiveScanArchTest, MatchesOracleForEveryOperandForm) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  for (const ScanCase& c : testing::operand_form_cases(17, {3, 16}, 300)) EXPECT_TRUE(matches_oracle<TypeParam>(c));
}

// A seeded random sweep of shapes and options.
TYPED_TEST(SelectiveScanArchTest, MatchesOracleOnRandomSweep) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  Rng rng(2024);
  for (int i = 0; i < 60; ++i) {
    const ScanCase c = testing::random_case(rng, 5000 + std::uint64_t(i), /*max_length=*/70, /*draw_window=*/false);
    EXPECT_TRUE(matches_oracle<TypeParam>(c));
  }
}

// Views whose data pointers are not vector-aligned (offset by one float in a larger buffer).
TYPED_TEST(SelectiveScanArchTest, AcceptsMisalignedViews) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  ScanCase c;
  c.batch = 2, c.length = 13, c.channels = 35, c.state = 16, c.skip = c.gate = c.bias = c.softplus = true, c.seed = 9;
  const ScanInputs in(c);
  const MisalignedInputs mis(in);
  ssm::selective_scan<TypeParam>(mis.u, mis.delta, in.A, in.B(), in.C(), mis.options, mis.out, nullptr);
  const auto expected = ref::selective_scan<double>(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  EXPECT_TRUE(testing::all_close(mis.out, expected.out, selective_scan, c.describe()));
}

// scan(x1 ‖ x2) == scan(x2, initial_state = scan(x1).last_state), for a split inside and at the ends.
TEST(SelectiveScanTest, StateCarriesAcrossSplitSequences) {
  const Index L = 41;
  const ScanInputs in(mamba_case(L, 11));
  const auto whole = ssm::selective_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  for (Index split : {Index(0), Index(1), Index(17), L}) {
    auto run = [&](Index from, Index to, const std::optional<Tensor<float, 3>>& h0) {
      const ScanInputs part = in.tokens(from, to);
      auto o = part.options();
      if (h0) o.initial_state.emplace(*h0);
      return ssm::selective_scan(part.u, part.delta, part.A, part.B(), part.C(), o);
    };
    const auto first = run(0, split, std::nullopt);
    const auto second = run(split, L, first.last_state);
    const std::string where = "split at " + std::to_string(split);
    EXPECT_TRUE(testing::all_close(second.last_state, whole.last_state, selective_scan, where + " last_state"));
    EXPECT_TRUE(testing::bitwise_equal(second.out, slice_tokens(whole.out, split, L), where + " out after the split"));
  }
}

// Changing tokens after t leaves every output up to t bitwise unchanged.
TEST(SelectiveScanTest, IsCausal) {
  const Index L = 30, t = 12;
  ScanInputs in(mamba_case(L, 12));
  const auto before = ssm::selective_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  in.perturb_from(t + 1);
  const auto after = ssm::selective_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  EXPECT_TRUE(testing::bitwise_equal(slice_tokens(after.out, 0, t + 1), slice_tokens(before.out, 0, t + 1), "outputs up to t"));
  EXPECT_FALSE(testing::bitwise_equal(slice_tokens(after.out, t + 1, t + 2), slice_tokens(before.out, t + 1, t + 2),
                                      "output at t + 1 must see the change"));
}

TEST(SelectiveScanTest, ResultsAreBitwiseIdenticalForAnyThreadCount) {
  ScanCase c = mamba_case(25, 13);
  c.channels = 4 * 37, c.groups = 2, c.initial = true;
  const ScanInputs in(c);
  const auto single = ssm::selective_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  for (int threads : {2, 3, 5}) {
    ThreadPool pool(threads);
    const auto multi = ssm::selective_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options(pool.device()));
    EXPECT_TRUE(testing::bitwise_equal(multi.out, single.out, std::to_string(threads) + " threads out"));
    EXPECT_TRUE(testing::bitwise_equal(multi.last_state, single.last_state, std::to_string(threads) + " threads state"));
  }
}

// The kernel's interleaved form (selective_scan_2d runs pairs of directions so): problems run chunk
// by chunk in turn give each problem's results bitwise, whatever their lengths (1 to 3 chunks of
// 64 tokens), batches, options, tile counts (D = 2100 at N = 16: two tiles of at most 128 blocks)
// and threads.
TEST(SelectiveScanTest, InterleavedProblemsMatchEachRunAlone) {
  std::vector<ScanCase> cases = {mamba_case(150, 41), mamba_case(70, 42), mamba_case(9, 43), mamba_case(130, 44)};
  cases[0].initial = true;
  cases[1].batch = 1, cases[1].channels = 2100;
  cases[2].state = 1, cases[2].channels = 5;
  cases[3].state = 4, cases[3].groups = 3, cases[3].channels = 3 * 24, cases[3].gate = false;
  std::vector<ScanInputs> inputs;
  for (const ScanCase& c : cases) inputs.emplace_back(c);
  using Result = ssm::SelectiveScanResult;
  auto problem = [](const ScanInputs& in, Result& r) {
    const auto o = in.options();
    TensorView<float, 3> out(r.out.data(), r.out.dimensions()), last(r.last_state.data(), r.last_state.dimensions());
    const auto s = ssm::detail::check_selective_scan_args("test", in.u, in.delta, in.A, in.B(), in.C(), o, &out, &last);
    return ssm::detail::make_scan_problem(s, in.u, in.delta, in.A, in.B(), in.C(), o, out, &last);
  };
  auto fresh = [](const ScanInputs& in) {
    return Result{Tensor<float, 3>(in.u.dimensions()), Tensor<float, 3>(in.c.batch, in.c.channels, in.c.state)};
  };
  std::vector<Result> alone;
  for (const ScanInputs& in : inputs) {
    alone.push_back(fresh(in));
    ssm::detail::run_scan_kernel<simd::default_arch, ssm::detail::ScanMode::forward>(problem(in, alone.back()),
                                                                                    nullptr);
  }
  for (int threads : {1, 2, 3})
    for (const auto& [first, count] : std::vector<std::pair<int, int>>{{0, 2}, {1, 2}, {0, 4}, {2, 2}}) {
      ThreadPool pool(threads);
      std::vector<Result> together;
      std::vector<ssm::detail::SelectiveScanProblem> problems;
      for (int k = 0; k < count; ++k) together.push_back(fresh(inputs[first + k]));
      for (int k = 0; k < count; ++k) problems.push_back(problem(inputs[first + k], together[k]));
      ssm::detail::run_scan_kernel<simd::default_arch, ssm::detail::ScanMode::forward>(problems.data(), count,
                                                                                      pool.device());
      for (int k = 0; k < count; ++k) {
        const std::string where = std::to_string(threads) + " threads, problem " + std::to_string(first + k) +
                                  " of " + std::to_string(count) + " from " + std::to_string(first);
        EXPECT_TRUE(testing::bitwise_equal(together[k].out, alone[first + k].out, where + " out"));
        EXPECT_TRUE(testing::bitwise_equal(together[k].last_state, alone[first + k].last_state, where + " state"));
      }
    }
}

TEST(SelectiveScanTest, EmptySequenceReturnsInitialState) {
  ScanCase c = mamba_case(0, 14);
  c.initial = true;
  const ScanInputs in(c);
  const auto r = ssm::selective_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  EXPECT_EQ(r.out.size(), 0);
  EXPECT_TRUE(testing::bitwise_equal(r.last_state, in.h0, "last_state == initial_state"));
  c.initial = false;
  const ScanInputs fresh(c);
  const auto zero = ssm::selective_scan(fresh.u, fresh.delta, fresh.A, fresh.B(), fresh.C(), fresh.options());
  for (Index i = 0; i < zero.last_state.size(); ++i) ASSERT_EQ(zero.last_state.data()[i], 0.f);
  const auto oracle = ref::selective_scan<double>(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  EXPECT_TRUE(testing::bitwise_equal(oracle.last_state, in.h0, "oracle last_state == initial_state"));
}

// softplus follows torch's threshold: above 20 dt is delta + bias itself.
TEST(SelectiveScanTest, SoftplusThresholdMatchesOracle) {
  ScanCase c = mamba_case(5, 15);
  ScanInputs in(c);
  for (Index i = 0; i < in.delta.size(); ++i) in.delta.data()[i] = 19.5f + 0.01f * float(i % 100);  // straddles 20
  in.bias.setZero();
  in.A = in.A * 0.001f;  // keep exp(dt * A) away from 0 so the outputs carry dt
  const auto expected = ref::selective_scan<double>(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  const auto actual = ssm::selective_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  EXPECT_TRUE(testing::all_close(actual.out, expected.out, selective_scan, "delta around 20"));
}

// NaN in u at (b, t, d) reaches the outputs of channel d from t on, and nothing else.
TEST(SelectiveScanTest, NanPropagatesOnlyToTheChannelItTouches) {
  ScanInputs in(mamba_case(9, 16));
  const Index b = 1, t = 4, d = 20;
  in.u(b, t, d) = std::numeric_limits<float>::quiet_NaN();
  const auto r = ssm::selective_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  for (Index bb = 0; bb < in.c.batch; ++bb)
    for (Index tt = 0; tt < in.c.length; ++tt)
      for (Index dd = 0; dd < in.c.channels; ++dd) {
        const bool touched = bb == b && dd == d && tt >= t;
        ASSERT_EQ(std::isnan(r.out(bb, tt, dd)), touched) << "at [" << bb << ", " << tt << ", " << dd << "]";
      }
}

// ---- bad input: every rule throws tokenmix::Error naming the op and the argument ----------------

TEST(SelectiveScanTest, RejectsBadInputWithClearErrors) {
  const ScanInputs in(mamba_case(6, 17));
  const Index Bt = 2, L = 6, D = 37, N = 16;
  auto scan = [&](auto&&... args) { return [&, args...] { ssm::selective_scan(args...); }; };
  const auto o = in.options();
  const Tensor<float, 3> wrong3(Bt, L, D + 1);
  EXPECT_TRUE(testing::throws_error_mentioning(scan(in.u, wrong3, in.A, in.B(), in.C(), o), "selective_scan", "delta has shape [2, 6, 38], expected [B=2, L=6, D=37]"));
  EXPECT_TRUE(testing::throws_error_mentioning(scan(in.u, in.delta, Tensor<float, 2>(D + 1, N), in.B(), in.C(), o), "selective_scan", "A has shape [38, 16]"));
  EXPECT_TRUE(testing::throws_error_mentioning(scan(in.u, in.delta, Tensor<float, 2>(D, 0), in.B(), in.C(), o), "selective_scan", "N > 0"));
  EXPECT_TRUE(testing::throws_error_mentioning(scan(in.u, in.delta, in.A, Tensor<float, 4>(Bt, L, 1, N + 1), in.C(), o), "selective_scan", "B has shape [2, 6, 1, 17]"));
  EXPECT_TRUE(testing::throws_error_mentioning(scan(in.u, in.delta, in.A, in.B(), Tensor<float, 4>(Bt, L + 1, 1, N), o), "selective_scan", "C has shape [2, 7, 1, 16]"));
  EXPECT_TRUE(testing::throws_error_mentioning(scan(in.u, in.delta, in.A, Tensor<float, 4>(Bt, L, 2, N), Tensor<float, 4>(Bt, L, 2, N), o), "selective_scan", "G=2 groups, which does not divide D=37"));
  EXPECT_TRUE(testing::throws_error_mentioning(scan(in.u, in.delta, in.A, Tensor<float, 2>(D, N + 1), in.C(), o), "selective_scan", "B has shape [37, 17]"));
  EXPECT_TRUE(testing::throws_error_mentioning(scan(in.u, in.delta, in.A, Tensor<float, 4>(Bt, L, 0, N), in.C(), o), "selective_scan", "G > 0"));

  const Tensor<float, 3> zero_d(Bt, L, 0);
  EXPECT_TRUE(testing::throws_error_mentioning(scan(zero_d, zero_d, Tensor<float, 2>(0, N), in.B(), in.C(), ssm::SelectiveScanOptions{}), "selective_scan", "channels D must be > 0"));
  const Tensor<float, 3> zero_b(0, L, D);
  EXPECT_TRUE(testing::throws_error_mentioning(scan(zero_b, zero_b, in.A, in.B(), in.C(), o), "selective_scan", "batch B must be > 0"));

  const Tensor<float, 1> wrong1(D - 1);
  auto with = [&](auto setter) { auto copy = o; setter(copy); return copy; };
  EXPECT_TRUE(testing::throws_error_mentioning(scan(in.u, in.delta, in.A, in.B(), in.C(), with([&](auto& x) { x.D.emplace(wrong1); })), "selective_scan", "D has shape [36], expected [D=37]"));
  EXPECT_TRUE(testing::throws_error_mentioning(scan(in.u, in.delta, in.A, in.B(), in.C(), with([&](auto& x) { x.delta_bias.emplace(wrong1); })), "selective_scan", "delta_bias has shape [36]"));
  EXPECT_TRUE(testing::throws_error_mentioning(scan(in.u, in.delta, in.A, in.B(), in.C(), with([&](auto& x) { x.z.emplace(wrong3); })), "selective_scan", "z has shape [2, 6, 38]"));
  const Tensor<float, 3> wrong_state(Bt, D, N + 1);
  EXPECT_TRUE(testing::throws_error_mentioning(scan(in.u, in.delta, in.A, in.B(), in.C(), with([&](auto& x) { x.initial_state.emplace(wrong_state); })), "selective_scan", "initial_state has shape [2, 37, 17], expected [B=2, D=37, N=16]"));

  // View-based call: wrong output shapes and an output aliasing an input.
  Tensor<float, 3> out(Bt, L, D), bad_out(Bt, L + 1, D), last(Bt, D, N + 2), u_copy = in.u;
  TensorView<float, 3> bad_out_view(bad_out.data(), bad_out.dimensions()), last_view(last.data(), last.dimensions());
  TensorView<float, 3> out_view(out.data(), out.dimensions()), aliasing(u_copy.data(), u_copy.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::selective_scan(in.u, in.delta, in.A, in.B(), in.C(), o, bad_out_view, nullptr); }, "selective_scan", "out has shape [2, 7, 37]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::selective_scan(in.u, in.delta, in.A, in.B(), in.C(), o, out_view, &last_view); }, "selective_scan", "last_state has shape [2, 37, 18]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::selective_scan(u_copy, in.delta, in.A, in.B(), in.C(), o, aliasing, nullptr); }, "selective_scan", "must not overlap"));
  // The oracle applies the same rules.
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::selective_scan<double>(in.u, wrong3, in.A, in.B(), in.C(), o); }, "selective_scan", "delta has shape"));
}

}  // namespace
}  // namespace tokenmix
