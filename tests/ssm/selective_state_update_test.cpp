// ssm::selective_state_update (every representative arch) against ref::selective_state_update
// (double), step-by-step decode == ssm::selective_scan (bitwise), thread-count invariance and every
// bad-input rule.

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <type_traits>

#include "support/archs.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "support/scan_case.hpp"
#include "tokenmix/reference/selective_state_update.hpp"
#include "tokenmix/ssm/selective_scan.hpp"
#include "tokenmix/ssm/selective_state_update.hpp"

namespace tokenmix {
namespace {

using testing::Form;
using testing::Rng;
using testing::ScanCase;
using testing::ScanInputs;
using testing::tolerance::selective_state_update;

// A decode case is a ScanCase (tests/support/scan_case.hpp) whose B/C are grouped [B, L, G, N] or
// time-invariant [D, N] and whose steps start from h0 (initial = true). Its inputs are the scan's
// over `length` tokens, without the single form this test has no use for (so each seed draws the
// data it always drew).
ScanInputs step_inputs(const ScanCase& c) { return ScanInputs(c, /*draw_single_form=*/false); }

// The sweeps' option bits: 1 D, 2 z, 4 dt_bias, 8 softplus, 16 B and 32 C time-invariant.
void set_step_options(ScanCase& c, int mask) {
  c.set_options(mask & 15), c.initial = true;  // every decode starts from h0
  c.B_form = mask & 16 ? Form::time_invariant : Form::grouped;
  c.C_form = mask & 32 ? Form::time_invariant : Form::grouped;
}

// Token i: [B, D] rows of [B, L, D] inputs and [B, G, N] operands of [B, L, G, N] ones.
Tensor<float, 2> token(const Tensor<float, 3>& t, Index i) {
  Tensor<float, 2> r(t.dimension(0), t.dimension(2));
  for (Index b = 0; b < t.dimension(0); ++b)
    for (Index d = 0; d < t.dimension(2); ++d) r(b, d) = t(b, i, d);
  return r;
}
Tensor<float, 3> token(const Tensor<float, 4>& t, Index i) {
  Tensor<float, 3> r(t.dimension(0), t.dimension(2), t.dimension(3));
  for (Index b = 0; b < t.dimension(0); ++b)
    for (Index g = 0; g < t.dimension(2); ++g)
      for (Index n = 0; n < t.dimension(3); ++n) r(b, g, n) = t(b, i, g, n);
  return r;
}

ssm::SelectiveStateUpdateOptions step_options(const ScanInputs& in, const Tensor<float, 2>& zt,
                                              const Eigen::ThreadPoolDevice* dev = nullptr) {
  ssm::SelectiveStateUpdateOptions o;
  if (in.c.skip) o.D = in.D;
  if (in.c.gate) o.z = zt;
  if (in.c.bias) o.dt_bias = in.bias;
  o.dt_softplus = in.c.softplus, o.device = dev;
  return o;
}

// Runs one step (fast with Arch, or the oracle) on token t, updating `state`.
template <class Arch, bool Oracle = false>
Tensor<float, 2> step(const ScanInputs& in, Index t, Tensor<float, 3>& state, const Eigen::ThreadPoolDevice* dev = nullptr) {
  const Tensor<float, 2> xt = token(in.u, t), dtt = token(in.delta, t), zt = token(in.z, t);
  const Tensor<float, 3> Bt = token(in.B4, t), Ct = token(in.C4, t);
  const ssm::StepOperand B = in.c.B_form == Form::time_invariant ? ssm::StepOperand(in.B2) : ssm::StepOperand(Bt);
  const ssm::StepOperand C = in.c.C_form == Form::time_invariant ? ssm::StepOperand(in.C2) : ssm::StepOperand(Ct);
  if constexpr (Oracle) return ref::selective_state_update<double>(state, xt, dtt, in.A, B, C, step_options(in, zt));
  else return ssm::selective_state_update<Arch>(state, xt, dtt, in.A, B, C, step_options(in, zt, dev));
}

template <class Arch>
::testing::AssertionResult matches_oracle(const ScanCase& c) {
  const ScanInputs in = step_inputs(c);
  Tensor<float, 3> fast_state = in.h0, ref_state = in.h0;
  const std::string where = std::string(Arch::name()) + " " + c.describe();
  for (Index t = 0; t < c.length; ++t) {  // from the same float state each step
    const Tensor<float, 2> y = step<Arch>(in, t, fast_state);
    const Tensor<float, 2> y_ref = step<Arch, true>(in, t, ref_state);
    auto ok = testing::all_close(y, y_ref, selective_state_update, where + " out t=" + std::to_string(t));
    if (!ok) return ok;
    ok = testing::all_close(fast_state, ref_state, selective_state_update, where + " state t=" + std::to_string(t));
    if (!ok) return ok;
    ref_state = fast_state;
  }
  return ::testing::AssertionSuccess();
}

// Token-by-token decode from initial_state == ssm::selective_scan over the L tokens: bitwise where
// fmadd is one FMA instruction (the step then performs the scan's operations in the scan's order,
// see ssm/selective_state_update_kernel.hpp); elsewhere (SSE2, AVX without FMA: x*y+z, which the
// compiler may or may not contract differently in the two kernels) within the fast scan's tolerance.
template <class Arch>
::testing::AssertionResult decode_matches_scan(const ScanCase& c) {
  const ScanInputs in = step_inputs(c);
  const auto scan = ssm::selective_scan<Arch>(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  Tensor<float, 3> state = in.h0, out(c.batch, c.length, c.channels);
  for (Index t = 0; t < c.length; ++t) {
    const Tensor<float, 2> y = step<Arch>(in, t, state);
    for (Index b = 0; b < c.batch; ++b)
      for (Index d = 0; d < c.channels; ++d) out(b, t, d) = y(b, d);
  }
  const std::string where = std::string(Arch::name()) + " " + c.describe();
  constexpr bool exact = simd::is_avx512<Arch> || std::is_same_v<Arch, xsimd::fma3<xsimd::avx2>>;
  if constexpr (exact) {
    auto ok = testing::bitwise_equal(out, scan.out, where + " decode out vs scan");
    if (!ok) return ok;
    return testing::bitwise_equal(state, scan.last_state, where + " decode state vs scan last_state");
  } else {
    auto ok = testing::all_close(out, scan.out, testing::tolerance::selective_scan, where + " decode out vs scan");
    if (!ok) return ok;
    return testing::all_close(state, scan.last_state, testing::tolerance::selective_scan, where + " decode state");
  }
}

template <class Arch>
class SelectiveStateUpdateArchTest : public ::testing::Test {};
TYPED_TEST_SUITE(SelectiveStateUpdateArchTest, testing::RepresentativeArchs, testing::ArchNames);

TYPED_TEST(SelectiveStateUpdateArchTest, MatchesOracleAroundVectorWidth) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  std::uint64_t seed = 100;
  for (Index channels : testing::channels_around(simd::lanes<TypeParam>))
    for (Index state : {1, 4, 7, 16, 64})
      for (Index groups : {1, 2}) {
        if (channels % groups) continue;
        for (int options = 0; options < 64; options += 5) {
          ScanCase c;
          c.batch = 2, c.length = 3, c.channels = channels, c.state = state, c.groups = groups;
          set_step_options(c, options), c.seed = seed++;
          EXPECT_TRUE(matches_oracle<TypeParam>(c));
        }
      }
}

TYPED_TEST(SelectiveStateUpdateArchTest, MatchesOracleOnRandomSweep) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  Rng rng(2026);
  for (int i = 0; i < 60; ++i) {
    ScanCase c;
    c.batch = testing::random_index(1, 3, rng);
    c.groups = testing::random_index(1, 4, rng);
    c.channels = c.groups * testing::random_index(1, 24, rng);
    c.state = testing::random_index(1, 40, rng);
    c.length = 2;
    c.B_form = testing::random_index(0, 1, rng) ? Form::time_invariant : Form::grouped;
    c.C_form = testing::random_index(0, 1, rng) ? Form::time_invariant : Form::grouped;
    c.skip = testing::random_index(0, 1, rng), c.gate = testing::random_index(0, 1, rng);
    c.softplus = testing::random_index(0, 1, rng), c.bias = testing::random_index(0, 1, rng);
    c.initial = true, c.seed = 7000 + static_cast<std::uint64_t>(i);
    EXPECT_TRUE(matches_oracle<TypeParam>(c));
  }
}

TYPED_TEST(SelectiveStateUpdateArchTest, DecodeMatchesSelectiveScan) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  const Index W = static_cast<Index>(simd::lanes<TypeParam>);
  std::uint64_t seed = 900;
  for (Index channels : {Index(2), W + 2, 3 * W + 2})
    for (Index state : {4, 16, 7})
      for (int options = 0; options < 64; options += 7) {
        ScanCase c;
        c.batch = 2, c.length = 13, c.channels = channels, c.state = state, c.groups = channels % 2 ? 1 : 2;
        set_step_options(c, options), c.seed = seed++;
        EXPECT_TRUE(decode_matches_scan<TypeParam>(c));
      }
}

// Mamba's case (tests/support/scan_case.hpp) over 3 tokens with 4 x 37 channels in 2 groups.
ScanCase mamba_case(std::uint64_t seed) {
  ScanCase c = testing::mamba_case(3, seed);
  c.channels = 4 * 37, c.groups = 2, c.initial = true;
  return c;
}

TEST(SelectiveStateUpdateTest, ResultsAreBitwiseIdenticalForAnyThreadCount) {
  const ScanInputs in = step_inputs(mamba_case(13));
  Tensor<float, 3> single_state = in.h0;
  const Tensor<float, 2> single = step<simd::default_arch>(in, 0, single_state);
  for (int threads : {2, 3, 5}) {
    ThreadPool pool(threads);
    Tensor<float, 3> state = in.h0;
    const Tensor<float, 2> multi = step<simd::default_arch>(in, 0, state, pool.device());
    EXPECT_TRUE(testing::bitwise_equal(multi, single, std::to_string(threads) + " threads out"));
    EXPECT_TRUE(testing::bitwise_equal(state, single_state, std::to_string(threads) + " threads state"));
  }
}

// NaN in x at (b, d) reaches out[b, d] and state[b, d, :] only.
TEST(SelectiveStateUpdateTest, NanPropagatesOnlyToTheChannelItTouches) {
  ScanInputs in = step_inputs(mamba_case(16));
  in.u(1, 0, 20) = std::numeric_limits<float>::quiet_NaN();
  Tensor<float, 3> state = in.h0;
  const Tensor<float, 2> y = step<simd::default_arch>(in, 0, state);
  for (Index b = 0; b < 2; ++b)
    for (Index d = 0; d < in.c.channels; ++d) {
      ASSERT_EQ(std::isnan(y(b, d)), b == 1 && d == 20) << b << ", " << d;
      for (Index n = 0; n < 16; ++n) ASSERT_EQ(std::isnan(state(b, d, n)), b == 1 && d == 20) << b << ", " << d;
    }
}

TEST(SelectiveStateUpdateTest, RejectsBadInputWithClearErrors) {
  const Index Bt = 2, D = 6, N = 4;
  const std::string op = "selective_state_update";
  Tensor<float, 3> state(Bt, D, N), Bg(Bt, 1, N), Cg(Bt, 1, N);
  Tensor<float, 2> x(Bt, D), dt(Bt, D), A(D, N), out(Bt, D);
  for (auto* t : {&state, &Bg, &Cg}) t->setZero();
  for (auto* t : {&x, &dt, &A}) t->setZero();
  TensorView<float, 3> sv(state.data(), state.dimensions());
  TensorView<float, 2> ov(out.data(), out.dimensions());
  const ssm::SelectiveStateUpdateOptions o;
  auto call = [&](TensorView<float, 3> s, const Tensor<float, 2>& xx, const Tensor<float, 2>& dd, const Tensor<float, 2>& AA,
                  const ssm::StepOperand& B, const ssm::StepOperand& C, const ssm::SelectiveStateUpdateOptions& opt,
                  TensorView<float, 2> y) { return [=] { ssm::selective_state_update(s, xx, dd, AA, B, C, opt, y); }; };
  EXPECT_TRUE(testing::throws_error_mentioning(call(sv, x, Tensor<float, 2>(Bt, D + 1), A, Bg, Cg, o, ov), op, "dt has shape [2, 7], expected [B=2, D=6] like x"));
  EXPECT_TRUE(testing::throws_error_mentioning(call(sv, x, dt, Tensor<float, 2>(D + 1, N), Bg, Cg, o, ov), op, "A has shape [7, 4]"));
  EXPECT_TRUE(testing::throws_error_mentioning(call(sv, x, dt, Tensor<float, 2>(D, 0), Bg, Cg, o, ov), op, "N > 0"));
  Tensor<float, 3> bad_state(Bt, D, N + 1);
  EXPECT_TRUE(testing::throws_error_mentioning(call(TensorView<float, 3>(bad_state.data(), bad_state.dimensions()), x, dt, A, Bg, Cg, o, ov), op, "state has shape [2, 6, 5], expected [B=2, D=6, N=4]"));
  EXPECT_TRUE(testing::throws_error_mentioning(call(sv, x, dt, A, Tensor<float, 3>(Bt, 1, N + 1), Cg, o, ov), op, "B has shape [2, 1, 5]"));
  EXPECT_TRUE(testing::throws_error_mentioning(call(sv, x, dt, A, Bg, Tensor<float, 3>(Bt + 1, 1, N), o, ov), op, "C has shape [3, 1, 4]"));
  EXPECT_TRUE(testing::throws_error_mentioning(call(sv, x, dt, A, Tensor<float, 3>(Bt, 4, N), Tensor<float, 3>(Bt, 4, N), o, ov), op, "G=4 groups, which does not divide D=6"));
  EXPECT_TRUE(testing::throws_error_mentioning(call(sv, x, dt, A, Tensor<float, 3>(Bt, 2, N), Tensor<float, 3>(Bt, 3, N), o, ov), op, "B has G=2 groups but C has G=3"));
  EXPECT_TRUE(testing::throws_error_mentioning(call(sv, x, dt, A, Tensor<float, 2>(D, N + 1), Cg, o, ov), op, "B has shape [6, 5], expected [D=6, N=4] (time-invariant)"));
  EXPECT_TRUE(testing::throws_error_mentioning(call(sv, x, dt, A, Tensor<float, 3>(Bt, 0, N), Cg, o, ov), op, "G > 0"));
  EXPECT_TRUE(testing::throws_error_mentioning(call(sv, Tensor<float, 2>(0, D), dt, A, Bg, Cg, o, ov), op, "batch B must be > 0"));
  EXPECT_TRUE(testing::throws_error_mentioning(call(sv, Tensor<float, 2>(Bt, 0), dt, A, Bg, Cg, o, ov), op, "channels D must be > 0"));
  const Tensor<float, 1> wrong1(D - 1);
  const Tensor<float, 2> wrong_z(Bt, D - 1);
  auto with = [&](auto setter) { auto copy = o; setter(copy); return copy; };
  EXPECT_TRUE(testing::throws_error_mentioning(call(sv, x, dt, A, Bg, Cg, with([&](auto& p) { p.D.emplace(wrong1); }), ov), op, "D has shape [5], expected [D=6]"));
  EXPECT_TRUE(testing::throws_error_mentioning(call(sv, x, dt, A, Bg, Cg, with([&](auto& p) { p.dt_bias.emplace(wrong1); }), ov), op, "dt_bias has shape [5]"));
  EXPECT_TRUE(testing::throws_error_mentioning(call(sv, x, dt, A, Bg, Cg, with([&](auto& p) { p.z.emplace(wrong_z); }), ov), op, "z has shape [2, 5]"));
  Tensor<float, 2> bad_out(Bt, D + 1);
  EXPECT_TRUE(testing::throws_error_mentioning(call(sv, x, dt, A, Bg, Cg, o, TensorView<float, 2>(bad_out.data(), bad_out.dimensions())), op, "out has shape [2, 7], expected [B=2, D=6]"));
  EXPECT_TRUE(testing::throws_error_mentioning(call(sv, x, dt, A, Bg, Cg, o, TensorView<float, 2>(state.data(), out.dimensions())), op, "out must not overlap state"));
  Tensor<float, 2> x_in_state(Bt, D);
  const ConstTensorView<float, 2> x_alias(state.data(), x_in_state.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::selective_state_update(sv, x_alias, dt, A, Bg, Cg, o, ov); }, op, "state must not overlap the inputs"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::selective_state_update<double>(state, x, Tensor<float, 2>(Bt, D + 1), A, Bg, Cg, o); }, "ref::selective_state_update", "dt has shape"));
}

}  // namespace
}  // namespace tokenmix
