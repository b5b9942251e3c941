// ssm::local_bidirectional_scan (LBMamba, every representative arch) against
// ref::local_bidirectional_scan (double, from the definition), the oracle against the spec's
// decomposition into selective scans, and properties (M = 1 is the forward scan, window-local
// causality, state carry at window boundaries, thread-count invariance, L = 0, NaN propagation)
// and every bad-input rule.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "support/archs.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "support/scan_case.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/reference/local_bidirectional_scan.hpp"
#include "tokenmix/reference/selective_scan.hpp"
#include "tokenmix/ssm/local_bidirectional_scan.hpp"

namespace tokenmix {
namespace {

using testing::Rng;
using testing::MisalignedInputs;
using testing::ScanCase;
using testing::ScanInputs;
using testing::mamba_case;
using testing::random_case;
using testing::slice_tokens;

// Tolerances: tests/support/tolerance.hpp (local_bidirectional_scan, local_bidirectional_decomposition).
inline constexpr testing::Tolerance kLocalBidirectionalScan = testing::tolerance::local_bidirectional_scan;
inline constexpr testing::Tolerance kLocalBidirectionalDecomposition = testing::tolerance::local_bidirectional_decomposition;

template <class Arch>
::testing::AssertionResult matches_oracle(const ScanCase& c) {
  const ScanInputs in(c);
  const auto expected = ref::local_bidirectional_scan<double>(in.u, in.delta, in.A, in.B(), in.C(), in.options(), c.window);
  const auto actual = ssm::local_bidirectional_scan<Arch>(in.u, in.delta, in.A, in.B(), in.C(), in.options(), c.window);
  const std::string where = std::string(Arch::name()) + " " + c.describe();
  auto out_ok = testing::all_close(actual.out, expected.out, kLocalBidirectionalScan, where + " out");
  if (!out_ok) return out_ok;
  auto state_ok = testing::all_close(actual.last_state, expected.last_state, kLocalBidirectionalScan, where + " last_state");
  if (!state_ok) return state_ok;
  // The forward state is the plain scan's, lane for lane the same arithmetic: bitwise.
  const auto forward = ssm::selective_scan<Arch>(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  return testing::bitwise_equal(actual.last_state, forward.last_state, where + " last_state vs selective_scan");
}

template <class Arch>
class LocalBidirectionalScanArchTest : public ::testing::Test {};
TYPED_TEST_SUITE(LocalBidirectionalScanArchTest, testing::RepresentativeArchs, testing::ArchNames);

// Channel counts around the vector width, the N of the brief, windows that do and do not divide L,
// L < M, M = 1, every option on and off.
TYPED_TEST(LocalBidirectionalScanArchTest, MatchesOracleAroundVectorWidth) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  std::uint64_t seed = 100;
  for (Index channels : testing::channels_around(simd::lanes<TypeParam>))
    for (Index state : {1, 3, 4, 5, 8, 16, 32})
      for (Index window : {1, 2, 3, 8, 16, 40})
        for (int options = 0; options < 32; options += 7) {  // 5 of the 32 on/off combinations
          ScanCase c;
          c.batch = 2, c.length = 19, c.channels = channels, c.state = state, c.window = window;
          c.groups = channels % 2 == 0 ? 2 : 1;
          c.set_options(options), c.seed = seed++;
          EXPECT_TRUE(matches_oracle<TypeParam>(c));
        }
}

// Every specialised N and the generic path, all options on, L crossing the kernel's 64-token chunks,
// windows that divide 64, do not, and exceed it or L.
TYPED_TEST(LocalBidirectionalScanArchTest, MatchesOracleForEveryStateSpecialisationAndWindow) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  std::uint64_t seed = 7;
  for (Index state : {1, 2, 4, 5, 8, 16, 32, 33})
    for (Index window : {2, 4, 5, 8, 16, 64, 65, 100, 200}) {
      ScanCase c;
      c.batch = 2, c.length = 131, c.channels = 40, c.state = state, c.groups = 2, c.window = window;
      c.skip = c.gate = c.bias = c.softplus = c.initial = true;
      c.seed = seed++;
      EXPECT_TRUE(matches_oracle<TypeParam>(c));
    }
}

TYPED_TEST(LocalBidirectionalScanArchTest, MatchesOracleForEveryOperandForm) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  for (ScanCase c : testing::operand_form_cases(23, {3, 16}, 300)) {
    c.window = 4;
    EXPECT_TRUE(matches_oracle<TypeParam>(c));
  }
}

TYPED_TEST(LocalBidirectionalScanArchTest, MatchesOracleOnRandomSweep) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  Rng rng(2025);
  for (int i = 0; i < 60; ++i) EXPECT_TRUE(matches_oracle<TypeParam>(random_case(rng, 5000 + std::uint64_t(i))));
}

// M = 1: hR_t = b_t, so the scan is the forward selective scan: bitwise for the fast op, within
// rounding for the oracle (which computes hL + b - b).
TYPED_TEST(LocalBidirectionalScanArchTest, WindowOneIsTheForwardScan) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  ScanCase c;
  c.batch = 2, c.length = 70, c.channels = 37, c.state = 16, c.window = 1;
  c.skip = c.gate = c.bias = c.softplus = c.initial = true, c.seed = 77;
  const ScanInputs in(c);
  const auto lb = ssm::local_bidirectional_scan<TypeParam>(in.u, in.delta, in.A, in.B(), in.C(), in.options(), 1);
  const auto fwd = ssm::selective_scan<TypeParam>(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  EXPECT_TRUE(testing::bitwise_equal(lb.out, fwd.out, "M = 1 out"));
  EXPECT_TRUE(testing::bitwise_equal(lb.last_state, fwd.last_state, "M = 1 last_state"));
  const auto lb_ref = ref::local_bidirectional_scan<double>(in.u, in.delta, in.A, in.B(), in.C(), in.options(), 1);
  const auto fwd_ref = ref::selective_scan<double>(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  EXPECT_TRUE(testing::all_close(lb_ref.out, fwd_ref.out, kLocalBidirectionalDecomposition, "oracle M = 1 out"));
  EXPECT_TRUE(testing::bitwise_equal(lb_ref.last_state, fwd_ref.last_state, "oracle M = 1 last_state"));
}

// Views whose data pointers are not vector-aligned (offset by one float in a larger buffer).
TYPED_TEST(LocalBidirectionalScanArchTest, AcceptsMisalignedViews) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  ScanCase c;
  c.batch = 2, c.length = 29, c.channels = 35, c.state = 16, c.window = 8;
  c.skip = c.gate = c.bias = c.softplus = true, c.seed = 9;
  const ScanInputs in(c);
  const MisalignedInputs mis(in);
  ssm::local_bidirectional_scan<TypeParam>(mis.u, mis.delta, in.A, in.B(), in.C(), mis.options, c.window, mis.out, nullptr);
  const auto expected = ref::local_bidirectional_scan<double>(in.u, in.delta, in.A, in.B(), in.C(), in.options(), c.window);
  EXPECT_TRUE(testing::all_close(mis.out, expected.out, kLocalBidirectionalScan, c.describe()));
}

// The spec's identity (§13 item 1), built from the selective-scan oracle, against the LB oracle
// (which follows the definition): y = S6_fwd(D=0) + flip(segmented S6 on flip, D=0)
// - Δ·u·<C, B> + D·u, gate after. The segmented scan restarts from 0 at every window start of the
// original order (on the flipped sequence the first segment has length L mod M).
TEST(LocalBidirectionalScanTest, OracleSatisfiesTheSpecDecomposition) {
  std::uint64_t seed = 40;
  for (Index length : {1, 7, 24, 37})
    for (Index window : {1, 3, 4, 8, 50}) {
      ScanCase c = mamba_case(length, seed++, window);
      c.groups = 1, c.initial = true, c.state = 5;
      const ScanInputs in(c);
      const Index Bt = c.batch, L = c.length, Dm = c.channels, N = c.state;
      const auto expected = ref::local_bidirectional_scan<double>(in.u, in.delta, in.A, in.B4, in.C4, in.options(), window);

      ssm::SelectiveScanOptions plain;  // D = 0, no gate; same delta transform
      plain.delta_bias = in.bias, plain.delta_softplus = true;
      ssm::SelectiveScanOptions fwd_options = plain;
      fwd_options.initial_state = in.h0;
      const auto fwd = ref::selective_scan<double>(in.u, in.delta, in.A, in.B4, in.C4, fwd_options);
      Tensor<float, 3> bwd(Bt, L, Dm);  // flip(segmented S6 on flip)
      for (Index start = 0; start < L; start += window) {
        const Index end = std::min(L, start + window);
        const auto seg = ref::selective_scan<double>(
            slice_tokens(in.u, start, end, true), slice_tokens(in.delta, start, end, true), in.A,
            slice_tokens(in.B4, start, end, true), slice_tokens(in.C4, start, end, true), plain);
        for (Index b = 0; b < Bt; ++b)
          for (Index i = 0; i < end - start; ++i)
            for (Index d = 0; d < Dm; ++d) bwd(b, end - 1 - i, d) = seg.out(b, i, d);
      }
      Tensor<float, 3> composed(Bt, L, Dm);
      for (Index b = 0; b < Bt; ++b)
        for (Index t = 0; t < L; ++t)
          for (Index d = 0; d < Dm; ++d) {
            double dt = double(in.delta(b, t, d)) + double(in.bias(d));
            dt = dt > 20 ? dt : std::log1p(std::exp(dt));
            double cb = 0;
            for (Index n = 0; n < N; ++n) cb += double(in.C4(b, t, 0, n)) * double(in.B4(b, t, 0, n));
            const double x = in.u(b, t, d), zv = in.z(b, t, d);
            const double y = double(fwd.out(b, t, d)) + double(bwd(b, t, d)) - dt * x * cb + double(in.D(d)) * x;
            composed(b, t, d) = static_cast<float>(y * zv / (1 + std::exp(-zv)));
          }
      const std::string where = c.describe();
      EXPECT_TRUE(testing::all_close(expected.out, composed, kLocalBidirectionalDecomposition, where + " decomposition"));
      EXPECT_TRUE(testing::bitwise_equal(expected.last_state, fwd.last_state, where + " last_state = forward state"));
      // And the fast op against the same composition.
      const auto fast = ssm::local_bidirectional_scan(in.u, in.delta, in.A, in.B4, in.C4, in.options(), window);
      EXPECT_TRUE(testing::all_close(fast.out, composed, kLocalBidirectionalScan, where + " fast vs decomposition"));
    }
}

TEST(LocalBidirectionalScanTest, ResultsAreBitwiseIdenticalForAnyThreadCount) {
  for (Index window : {4, 8, 5}) {
    ScanCase c = mamba_case(150, 13, window);
    c.channels = 4 * 37, c.groups = 2, c.initial = true;
    const ScanInputs in(c);
    const auto single = ssm::local_bidirectional_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options(), window);
    for (int threads : {2, 3, 5}) {
      ThreadPool pool(threads);
      const auto multi =
          ssm::local_bidirectional_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options(pool.device()), window);
      const std::string where = std::to_string(threads) + " threads M=" + std::to_string(window);
      EXPECT_TRUE(testing::bitwise_equal(multi.out, single.out, where + " out"));
      EXPECT_TRUE(testing::bitwise_equal(multi.last_state, single.last_state, where + " state"));
    }
  }
}

// Output t depends on tokens up to the end of t's window and on nothing after it (bitwise).
TEST(LocalBidirectionalScanTest, IsCausalUpToTheWindowEnd) {
  const Index L = 40, M = 8, next_window = 24;  // windows [16, 24) and [24, 32)
  ScanInputs in(mamba_case(L, 12, M));
  const auto before = ssm::local_bidirectional_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options(), M);
  in.perturb_from(next_window);
  const auto after = ssm::local_bidirectional_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options(), M);
  EXPECT_TRUE(testing::bitwise_equal(slice_tokens(after.out, 0, next_window), slice_tokens(before.out, 0, next_window),
                                     "outputs before the changed window"));
  // A change inside a window reaches its earlier tokens: change token 21 only, output 16 moves.
  ScanInputs in2(mamba_case(L, 12, M));
  for (Index b = 0; b < in2.c.batch; ++b)
    for (Index d = 0; d < in2.c.channels; ++d) in2.u(b, 21, d) += 1.f;
  const auto inside = ssm::local_bidirectional_scan(in2.u, in2.delta, in2.A, in2.B(), in2.C(), in2.options(), M);
  for (Index d = 0; d < in.c.channels; ++d) EXPECT_NE(inside.out(0, 16, d), before.out(0, 16, d)) << "d=" << d;
  for (Index d = 0; d < in.c.channels; ++d) EXPECT_EQ(inside.out(0, 15, d), before.out(0, 15, d)) << "d=" << d;
}

// last_state is the forward state: a sequence split at a window boundary continues exactly
// (the second half's windows are the whole sequence's).
TEST(LocalBidirectionalScanTest, StateCarriesAcrossSplitsAtWindowBoundaries) {
  const Index L = 45, M = 8;
  const ScanInputs in(mamba_case(L, 11, M));
  const auto whole = ssm::local_bidirectional_scan(in.u, in.delta, in.A, in.B4, in.C4, in.options(), M);
  for (Index split : {Index(0), Index(8), Index(40)}) {
    auto run = [&](Index from, Index to, const std::optional<Tensor<float, 3>>& h0) {
      const ScanInputs part = in.tokens(from, to);
      auto o = part.options();
      if (h0) o.initial_state.emplace(*h0);
      return ssm::local_bidirectional_scan(part.u, part.delta, part.A, part.B4, part.C4, o, M);
    };
    const auto first = run(0, split, std::nullopt);
    const auto second = run(split, L, first.last_state);
    const std::string where = "split at " + std::to_string(split);
    EXPECT_TRUE(testing::bitwise_equal(second.last_state, whole.last_state, where + " last_state"));
    EXPECT_TRUE(testing::bitwise_equal(second.out, slice_tokens(whole.out, split, L), where + " out after the split"));
    EXPECT_TRUE(testing::bitwise_equal(first.out, slice_tokens(whole.out, 0, split), where + " out before the split"));
  }
}

TEST(LocalBidirectionalScanTest, EmptySequenceReturnsInitialState) {
  ScanCase c = mamba_case(0, 14, 8);
  c.initial = true;
  const ScanInputs in(c);
  const auto r = ssm::local_bidirectional_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options(), 8);
  EXPECT_EQ(r.out.size(), 0);
  EXPECT_TRUE(testing::bitwise_equal(r.last_state, in.h0, "last_state == initial_state"));
  const auto oracle = ref::local_bidirectional_scan<double>(in.u, in.delta, in.A, in.B(), in.C(), in.options(), 8);
  EXPECT_TRUE(testing::bitwise_equal(oracle.last_state, in.h0, "oracle last_state == initial_state"));
}

// NaN in u at (b, t, d) reaches channel d from the start of t's window on, and nothing else.
TEST(LocalBidirectionalScanTest, NanPropagatesOnlyToTheChannelItTouches) {
  const Index M = 4;
  ScanInputs in(mamba_case(13, 16, M));
  const Index b = 1, t = 6, d = 20;
  in.u(b, t, d) = std::numeric_limits<float>::quiet_NaN();
  const auto r = ssm::local_bidirectional_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options(), M);
  for (Index bb = 0; bb < in.c.batch; ++bb)
    for (Index tt = 0; tt < in.c.length; ++tt)
      for (Index dd = 0; dd < in.c.channels; ++dd) {
        const bool touched = bb == b && dd == d && tt >= t / M * M;
        ASSERT_EQ(std::isnan(r.out(bb, tt, dd)), touched) << "at [" << bb << ", " << tt << ", " << dd << "]";
      }
}

// ---- bad input ------------------------------------------------------------------------------------

TEST(LocalBidirectionalScanTest, RejectsBadInputWithClearErrors) {
  const ScanInputs in(mamba_case(6, 17, 4));
  const Index Bt = 2, L = 6, D = 37, N = 16;
  const auto o = in.options();
  const char* op = "local_bidirectional_scan";
  for (Index bad_window : {Index(0), Index(-3)}) {
    const std::string expected = "window M must be >= 1 (tokens per local window), got " + std::to_string(bad_window);
    EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::local_bidirectional_scan(in.u, in.delta, in.A, in.B(), in.C(), o, bad_window); }, op, expected));
    EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::local_bidirectional_scan<double>(in.u, in.delta, in.A, in.B(), in.C(), o, bad_window); }, "ref::local_bidirectional_scan", expected));
    Tensor<float, 3> out(Bt, L, D);
    TensorView<float, 3> out_view(out.data(), out.dimensions());
    EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::local_bidirectional_scan(in.u, in.delta, in.A, in.B(), in.C(), o, bad_window, out_view, nullptr); }, op, expected));
    EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::local_bidirectional_scan<double>(in.u, in.delta, in.A, in.B(), in.C(), o, bad_window, out_view, nullptr); }, "ref::local_bidirectional_scan", expected));
  }
  // The selective scan's rules, with this op's name.
  const Tensor<float, 3> wrong3(Bt, L, D + 1);
  auto both = [&](auto&& call_fast, auto&& call_ref, const std::string& fragment) {
    EXPECT_TRUE(testing::throws_error_mentioning(call_fast, op, fragment));
    EXPECT_TRUE(testing::throws_error_mentioning(call_ref, "ref::local_bidirectional_scan", fragment));
  };
  both([&] { ssm::local_bidirectional_scan(in.u, wrong3, in.A, in.B(), in.C(), o, 4); },
       [&] { ref::local_bidirectional_scan<double>(in.u, wrong3, in.A, in.B(), in.C(), o, 4); },
       "delta has shape [2, 6, 38], expected [B=2, L=6, D=37]");
  both([&] { ssm::local_bidirectional_scan(in.u, in.delta, Tensor<float, 2>(D, 0), in.B(), in.C(), o, 4); },
       [&] { ref::local_bidirectional_scan<double>(in.u, in.delta, Tensor<float, 2>(D, 0), in.B(), in.C(), o, 4); },
       "N > 0");
  both([&] { ssm::local_bidirectional_scan(in.u, in.delta, in.A, Tensor<float, 4>(Bt, L, 2, N), Tensor<float, 4>(Bt, L, 2, N), o, 4); },
       [&] { ref::local_bidirectional_scan<double>(in.u, in.delta, in.A, Tensor<float, 4>(Bt, L, 2, N), Tensor<float, 4>(Bt, L, 2, N), o, 4); },
       "G=2 groups, which does not divide D=37");
  auto with = [&](auto setter) { auto copy = o; setter(copy); return copy; };
  const Tensor<float, 3> wrong_state(Bt, D, N + 1);
  const auto bad_h0 = with([&](auto& x) { x.initial_state.emplace(wrong_state); });
  both([&] { ssm::local_bidirectional_scan(in.u, in.delta, in.A, in.B(), in.C(), bad_h0, 4); },
       [&] { ref::local_bidirectional_scan<double>(in.u, in.delta, in.A, in.B(), in.C(), bad_h0, 4); },
       "initial_state has shape [2, 37, 17], expected [B=2, D=37, N=16]");
  // View-based: wrong output shapes, output aliasing an input.
  Tensor<float, 3> bad_out(Bt, L + 1, D), out(Bt, L, D), last(Bt, D, N + 2), u_copy = in.u;
  TensorView<float, 3> bad_out_view(bad_out.data(), bad_out.dimensions()), out_view(out.data(), out.dimensions());
  TensorView<float, 3> last_view(last.data(), last.dimensions()), aliasing(u_copy.data(), u_copy.dimensions());
  both([&] { ssm::local_bidirectional_scan(in.u, in.delta, in.A, in.B(), in.C(), o, 4, bad_out_view, nullptr); },
       [&] { ref::local_bidirectional_scan<double>(in.u, in.delta, in.A, in.B(), in.C(), o, 4, bad_out_view, nullptr); },
       "out has shape [2, 7, 37]");
  both([&] { ssm::local_bidirectional_scan(in.u, in.delta, in.A, in.B(), in.C(), o, 4, out_view, &last_view); },
       [&] { ref::local_bidirectional_scan<double>(in.u, in.delta, in.A, in.B(), in.C(), o, 4, out_view, &last_view); },
       "last_state has shape [2, 37, 18]");
  both([&] { ssm::local_bidirectional_scan(u_copy, in.delta, in.A, in.B(), in.C(), o, 4, aliasing, nullptr); },
       [&] { ref::local_bidirectional_scan<double>(u_copy, in.delta, in.A, in.B(), in.C(), o, 4, aliasing, nullptr); },
       "must not overlap");
}

}  // namespace
}  // namespace tokenmix
