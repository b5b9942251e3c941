// ssm::selective_scan_states (every representative arch) against ref::selective_scan_states
// (double), out and last_state bitwise equal to ssm::selective_scan, states[:, L-1] == last_state,
// Spatial-Mamba's N = 1 identity, thread-count invariance, L = 0 and every bad-input rule.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "support/archs.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "support/scan_case.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/reference/selective_scan.hpp"
#include "tokenmix/ssm/selective_scan.hpp"

namespace tokenmix {
namespace {

using testing::Rng;
using testing::ScanCase;
using testing::ScanInputs;
using testing::mamba_case;
using testing::random_case;

// Tolerance: tests/support/tolerance.hpp (selective_scan_states).
inline constexpr testing::Tolerance kSelectiveScanStates = testing::tolerance::selective_scan_states;

template <class Arch>
::testing::AssertionResult matches_oracle(const ScanCase& c) {
  const ScanInputs in(c);
  const auto expected = ref::selective_scan_states<double>(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  const auto actual = ssm::selective_scan_states<Arch>(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  const auto plain = ssm::selective_scan<Arch>(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  const std::string where = std::string(Arch::name()) + " " + c.describe();
  auto ok = testing::all_close(actual.states, expected.states, kSelectiveScanStates, where + " states");
  if (!ok) return ok;
  ok = testing::bitwise_equal(actual.out, plain.out, where + " out vs selective_scan");
  if (!ok) return ok;
  ok = testing::bitwise_equal(actual.last_state, plain.last_state, where + " last_state vs selective_scan");
  if (!ok || c.length == 0) return ok;
  // states[:, L - 1] == last_state, bitwise.
  const Tensor<float, 3> final_states = actual.states.chip(c.length - 1, 1);
  return testing::bitwise_equal(final_states, actual.last_state, where + " states[:, L-1] vs last_state");
}

template <class Arch>
class SelectiveScanStatesArchTest : public ::testing::Test {};
TYPED_TEST_SUITE(SelectiveScanStatesArchTest, testing::RepresentativeArchs, testing::ArchNames);

TYPED_TEST(SelectiveScanStatesArchTest, MatchesOracleAroundVectorWidth) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  std::uint64_t seed = 100;
  for (Index channels : testing::channels_around(simd::lanes<TypeParam>))
    for (Index state : {1, 3, 4, 5, 8, 16, 32, 33})
      for (int options = 0; options < 32; options += 5) {
        ScanCase c;
        c.batch = 2, c.length = 9, c.channels = channels, c.state = state;
        c.groups = channels % 2 == 0 ? 2 : 1;
        c.set_options(options), c.seed = seed++;
        EXPECT_TRUE(matches_oracle<TypeParam>(c));
      }
}

TYPED_TEST(SelectiveScanStatesArchTest, MatchesOracleOverLongSequencesAndEveryOperandForm) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  for (ScanCase c : testing::operand_form_cases(101, {1, 16}, 300)) {
    c.softplus = c.bias = true;
    EXPECT_TRUE(matches_oracle<TypeParam>(c));
  }
}

TYPED_TEST(SelectiveScanStatesArchTest, MatchesOracleOnRandomSweep) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  Rng rng(2026);
  for (int i = 0; i < 40; ++i) EXPECT_TRUE(matches_oracle<TypeParam>(random_case(rng, 7000 + std::uint64_t(i))));
}

// Spatial-Mamba's use (spec §8): for N = 1 the states are S6(u, Δ, A, B, C ≡ 1, D = 0, no gate),
// bitwise (y = 1·h exactly).
TYPED_TEST(SelectiveScanStatesArchTest, StatesOfOneStateAreTheScanWithUnitC) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  ScanCase c;
  c.batch = 2, c.length = 70, c.channels = 35, c.state = 1, c.bias = c.softplus = c.initial = true, c.seed = 3;
  const ScanInputs in(c);
  Tensor<float, 2> ones(c.channels, 1);
  ones.setConstant(1.f);
  const auto r = ssm::selective_scan_states<TypeParam>(in.u, in.delta, in.A, in.B(), ones, in.options());
  const auto s6 = ssm::selective_scan<TypeParam>(in.u, in.delta, in.A, in.B(), ones, in.options());
  const Tensor<float, 3> states = r.states.chip(0, 3);
  EXPECT_TRUE(testing::bitwise_equal(states, s6.out, "states vs S6 with C = 1"));
}

// Views whose data pointers are not vector-aligned.
TYPED_TEST(SelectiveScanStatesArchTest, AcceptsMisalignedViews) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  ScanCase c;
  c.batch = 2, c.length = 13, c.channels = 35, c.state = 16, c.skip = c.gate = c.bias = c.softplus = true, c.seed = 9;
  const ScanInputs in(c);
  std::vector<float> so(static_cast<std::size_t>(in.u.size() + 1)), ss(static_cast<std::size_t>(in.u.size() * 16 + 1));
  TensorView<float, 3> out(so.data() + 1, in.u.dimensions());
  TensorView<float, 4> states(ss.data() + 1, c.batch, c.length, c.channels, c.state);
  ssm::selective_scan_states<TypeParam>(in.u, in.delta, in.A, in.B(), in.C(), in.options(), out, states, nullptr);
  const auto expected = ref::selective_scan_states<double>(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  EXPECT_TRUE(testing::all_close(states, expected.states, kSelectiveScanStates, c.describe()));
}

TEST(SelectiveScanStatesTest, ResultsAreBitwiseIdenticalForAnyThreadCount) {
  ScanCase c = mamba_case(75, 13);
  c.channels = 4 * 37, c.groups = 2, c.initial = true;
  const ScanInputs in(c);
  const auto single = ssm::selective_scan_states(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  for (int threads : {2, 3, 5}) {
    ThreadPool pool(threads);
    const auto multi = ssm::selective_scan_states(in.u, in.delta, in.A, in.B(), in.C(), in.options(pool.device()));
    const std::string where = std::to_string(threads) + " threads";
    EXPECT_TRUE(testing::bitwise_equal(multi.out, single.out, where + " out"));
    EXPECT_TRUE(testing::bitwise_equal(multi.states, single.states, where + " states"));
    EXPECT_TRUE(testing::bitwise_equal(multi.last_state, single.last_state, where + " last_state"));
  }
}

TEST(SelectiveScanStatesTest, EmptySequenceReturnsInitialState) {
  ScanCase c = mamba_case(0, 14);
  c.initial = true;
  const ScanInputs in(c);
  const auto r = ssm::selective_scan_states(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  EXPECT_EQ(r.out.size(), 0);
  EXPECT_EQ(r.states.size(), 0);
  EXPECT_TRUE(testing::bitwise_equal(r.last_state, in.h0, "last_state == initial_state"));
  const auto oracle = ref::selective_scan_states<double>(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  EXPECT_TRUE(testing::bitwise_equal(oracle.last_state, in.h0, "oracle last_state == initial_state"));
}

// ---- bad input ------------------------------------------------------------------------------------

TEST(SelectiveScanStatesTest, RejectsBadInputWithClearErrors) {
  ScanCase c = mamba_case(6, 17);
  c.initial = true;
  const ScanInputs in(c);
  const Index Bt = 2, L = 6, D = 37, N = 16;
  const auto o = in.options();
  const char* op = "selective_scan_states";
  Tensor<float, 3> out(Bt, L, D), last(Bt, D, N);
  Tensor<float, 4> states(Bt, L, D, N), bad_states(Bt, L, D, N + 1);
  TensorView<float, 3> out_view(out.data(), out.dimensions()), last_view(last.data(), last.dimensions());
  TensorView<float, 4> states_view(states.data(), states.dimensions());
  TensorView<float, 4> bad_states_view(bad_states.data(), bad_states.dimensions());
  auto both = [&](auto&& call_fast, auto&& call_ref, const std::string& fragment) {
    EXPECT_TRUE(testing::throws_error_mentioning(call_fast, op, fragment));
    EXPECT_TRUE(testing::throws_error_mentioning(call_ref, "ref::selective_scan_states", fragment));
  };
  both([&] { ssm::selective_scan_states(in.u, in.delta, in.A, in.B(), in.C(), o, out_view, bad_states_view, nullptr); },
       [&] { ref::selective_scan_states<double>(in.u, in.delta, in.A, in.B(), in.C(), o, out_view, bad_states_view, nullptr); },
       "states has shape [2, 6, 37, 17], expected [B=2, L=6, D=37, N=16]");
  // states overlapping an input, out, last_state or the initial state.
  std::vector<float> big(static_cast<std::size_t>(states.size() + out.size()));
  TensorView<float, 4> over_out_states(big.data(), states.dimensions());
  TensorView<float, 3> over_out(big.data() + states.size() - 1, out.dimensions());
  both([&] { ssm::selective_scan_states(in.u, in.delta, in.A, in.B(), in.C(), o, over_out, over_out_states, nullptr); },
       [&] { ref::selective_scan_states<double>(in.u, in.delta, in.A, in.B(), in.C(), o, over_out, over_out_states, nullptr); },
       "states must not overlap out or last_state");
  TensorView<float, 3> over_last(big.data() + 5, last.dimensions());
  both([&] { ssm::selective_scan_states(in.u, in.delta, in.A, in.B(), in.C(), o, out_view, over_out_states, &over_last); },
       [&] { ref::selective_scan_states<double>(in.u, in.delta, in.A, in.B(), in.C(), o, out_view, over_out_states, &over_last); },
       "states must not overlap out or last_state");
  auto o_h0 = o;
  o_h0.initial_state.emplace(big.data() + 7, Bt, D, N);
  both([&] { ssm::selective_scan_states(in.u, in.delta, in.A, in.B(), in.C(), o_h0, out_view, over_out_states, nullptr); },
       [&] { ref::selective_scan_states<double>(in.u, in.delta, in.A, in.B(), in.C(), o_h0, out_view, over_out_states, nullptr); },
       "states must not overlap the inputs");
  ConstTensorView<float, 3> u_in_states(big.data() + 11, Bt, L, D);
  both([&] { ssm::selective_scan_states(u_in_states, in.delta, in.A, in.B(), in.C(), o, out_view, over_out_states, nullptr); },
       [&] { ref::selective_scan_states<double>(u_in_states, in.delta, in.A, in.B(), in.C(), o, out_view, over_out_states, nullptr); },
       "states must not overlap the inputs");
  ConstTensorView<float, 4> B_in_states(big.data() + 3, Bt, L, 1, N);
  both([&] { ssm::selective_scan_states(in.u, in.delta, in.A, B_in_states, in.C(), o, out_view, over_out_states, nullptr); },
       [&] { ref::selective_scan_states<double>(in.u, in.delta, in.A, B_in_states, in.C(), o, out_view, over_out_states, nullptr); },
       "states must not overlap the inputs");
  // The selective scan's own rules, under this op's name.
  const Tensor<float, 3> wrong3(Bt, L, D + 1);
  both([&] { ssm::selective_scan_states(in.u, wrong3, in.A, in.B(), in.C(), o); },
       [&] { ref::selective_scan_states<double>(in.u, wrong3, in.A, in.B(), in.C(), o); },
       "delta has shape [2, 6, 38], expected [B=2, L=6, D=37]");
  Tensor<float, 3> bad_out(Bt, L + 1, D);
  TensorView<float, 3> bad_out_view(bad_out.data(), bad_out.dimensions());
  both([&] { ssm::selective_scan_states(in.u, in.delta, in.A, in.B(), in.C(), o, bad_out_view, states_view, nullptr); },
       [&] { ref::selective_scan_states<double>(in.u, in.delta, in.A, in.B(), in.C(), o, bad_out_view, states_view, nullptr); },
       "out has shape [2, 7, 37]");
  // The valid call works and leaves no error.
  ssm::selective_scan_states(in.u, in.delta, in.A, in.B(), in.C(), o, out_view, states_view, &last_view);
}

}  // namespace
}  // namespace tokenmix
