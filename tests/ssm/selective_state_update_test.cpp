// ssm::selective_state_update (every representative arch) against ref::selective_state_update
// (double), step-by-step decode == ssm::selective_scan (bitwise), thread-count invariance and every
// bad-input rule.

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <type_traits>

#include "support/archs.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "tokenmix/reference/selective_state_update.hpp"
#include "tokenmix/ssm/selective_scan.hpp"
#include "tokenmix/ssm/selective_state_update.hpp"

namespace tokenmix {
namespace {

using testing::Rng;
using testing::tolerance::selective_state_update;

struct StepCase {
  Index batch = 1, channels = 1, state = 1, groups = 1, length = 1;  // length: tokens of the decode tests
  bool B_ti = false, C_ti = false;  // time-invariant [D, N] operands
  bool skip = false, gate = false, bias = false, softplus = false;
  std::uint64_t seed = 0;
  std::string describe() const {
    std::ostringstream os;
    os << "B=" << batch << " D=" << channels << " N=" << state << " G=" << groups << " L=" << length
       << " B_time_invariant=" << B_ti << " C_time_invariant=" << C_ti << " D_skip=" << skip << " z=" << gate
       << " dt_bias=" << bias << " softplus=" << softplus << " seed=" << seed;
    return os.str();
  }
};

// A sequence of `length` tokens in the scan's layout, in Mamba's ranges (as selective_scan_test).
struct StepInputs {
  Tensor<float, 3> x, dt, z, h0;  // [B, L, D] x3, [B, D, N]
  Tensor<float, 2> A, B2, C2;     // [D, N]
  Tensor<float, 4> B4, C4;        // [B, L, G, N]
  Tensor<float, 1> D, bias;       // [D]
  StepCase c;
  explicit StepInputs(const StepCase& sc) : c(sc) {
    Rng rng(c.seed);
    const Index Bt = c.batch, L = c.length, Dm = c.channels, N = c.state, G = c.groups;
    x = testing::random_normal<3>({Bt, L, Dm}, 0.f, 1.f, rng);
    dt = c.softplus ? testing::random_normal<3>({Bt, L, Dm}, 0.f, 1.f, rng)
                    : testing::random_uniform<3>({Bt, L, Dm}, 0.001f, 0.2f, rng);
    A = Tensor<float, 2>(Dm, N);
    std::uniform_real_distribution<float> jitter(-0.2f, 0.2f);
    for (Index d = 0; d < Dm; ++d)
      for (Index n = 0; n < N; ++n) A(d, n) = -std::exp(std::log(float(n + 1)) + jitter(rng));
    B4 = testing::random_normal<4>({Bt, L, G, N}, 0.f, 1.f, rng);
    C4 = testing::random_normal<4>({Bt, L, G, N}, 0.f, 1.f, rng);
    B2 = testing::random_normal<2>({Dm, N}, 0.f, 1.f, rng);
    C2 = testing::random_normal<2>({Dm, N}, 0.f, 1.f, rng);
    D = testing::random_uniform<1>({Dm}, 0.5f, 1.5f, rng);
    bias = c.softplus ? testing::random_uniform<1>({Dm}, -6.9f, -2.2f, rng) : testing::random_uniform<1>({Dm}, 0.f, 0.05f, rng);
    z = testing::random_normal<3>({Bt, L, Dm}, 0.f, 1.f, rng);
    h0 = testing::random_normal<3>({Bt, Dm, N}, 0.f, 1.f, rng);
  }
  // Token t: [B, D] rows and [B, G, N] operands.
  Tensor<float, 2> row(const Tensor<float, 3>& t, Index i) const {
    Tensor<float, 2> r(c.batch, c.channels);
    for (Index b = 0; b < c.batch; ++b)
      for (Index d = 0; d < c.channels; ++d) r(b, d) = t(b, i, d);
    return r;
  }
  Tensor<float, 3> bc(const Tensor<float, 4>& t, Index i) const {
    Tensor<float, 3> r(c.batch, c.groups, c.state);
    for (Index b = 0; b < c.batch; ++b)
      for (Index g = 0; g < c.groups; ++g)
        for (Index n = 0; n < c.state; ++n) r(b, g, n) = t(b, i, g, n);
    return r;
  }
  ssm::SelectiveStateUpdateOptions step_options(const Tensor<float, 2>& zt, const Eigen::ThreadPoolDevice* dev = nullptr) const {
    ssm::SelectiveStateUpdateOptions o;
    if (c.skip) o.D = D;
    if (c.gate) o.z = zt;
    if (c.bias) o.dt_bias = bias;
    o.dt_softplus = c.softplus, o.device = dev;
    return o;
  }
  ssm::SelectiveScanOptions scan_options() const {
    ssm::SelectiveScanOptions o;
    if (c.skip) o.D = D;
    if (c.gate) o.z = z;
    if (c.bias) o.delta_bias = bias;
    o.delta_softplus = c.softplus;
    o.initial_state = h0;
    return o;
  }
};

// Runs one step (fast with Arch, or the oracle) on token t, updating `state`.
template <class Arch, bool Oracle = false>
Tensor<float, 2> step(const StepInputs& in, Index t, Tensor<float, 3>& state, const Eigen::ThreadPoolDevice* dev = nullptr) {
  const Tensor<float, 2> xt = in.row(in.x, t), dtt = in.row(in.dt, t), zt = in.row(in.z, t);
  const Tensor<float, 3> Bt = in.bc(in.B4, t), Ct = in.bc(in.C4, t);
  const ssm::StepOperand B = in.c.B_ti ? ssm::StepOperand(in.B2) : ssm::StepOperand(Bt);
  const ssm::StepOperand C = in.c.C_ti ? ssm::StepOperand(in.C2) : ssm::StepOperand(Ct);
  if constexpr (Oracle) return ref::selective_state_update<double>(state, xt, dtt, in.A, B, C, in.step_options(zt));
  else return ssm::selective_state_update<Arch>(state, xt, dtt, in.A, B, C, in.step_options(zt, dev));
}

template <class Arch>
::testing::AssertionResult matches_oracle(const StepCase& c) {
  const StepInputs in(c);
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
::testing::AssertionResult decode_matches_scan(const StepCase& c) {
  const StepInputs in(c);
  const ssm::ScanOperand B = c.B_ti ? ssm::ScanOperand(in.B2) : ssm::ScanOperand(in.B4);
  const ssm::ScanOperand C = c.C_ti ? ssm::ScanOperand(in.C2) : ssm::ScanOperand(in.C4);
  const auto scan = ssm::selective_scan<Arch>(in.x, in.dt, in.A, B, C, in.scan_options());
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
  const Index W = static_cast<Index>(simd::lanes<TypeParam>);
  std::uint64_t seed = 100;
  for (Index channels : {Index(1), W - 1, W, W + 1, 3 * W + 2})
    for (Index state : {1, 4, 7, 16, 64})
      for (Index groups : {1, 2}) {
        if (channels % groups) continue;
        for (int options = 0; options < 64; options += 5) {
          StepCase c;
          c.batch = 2, c.length = 3, c.channels = channels, c.state = state, c.groups = groups;
          c.skip = options & 1, c.gate = options & 2, c.bias = options & 4, c.softplus = options & 8;
          c.B_ti = options & 16, c.C_ti = options & 32, c.seed = seed++;
          EXPECT_TRUE(matches_oracle<TypeParam>(c));
        }
      }
}

TYPED_TEST(SelectiveStateUpdateArchTest, MatchesOracleOnRandomSweep) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  Rng rng(2026);
  for (int i = 0; i < 60; ++i) {
    StepCase c;
    c.batch = testing::random_index(1, 3, rng);
    c.groups = testing::random_index(1, 4, rng);
    c.channels = c.groups * testing::random_index(1, 24, rng);
    c.state = testing::random_index(1, 40, rng);
    c.length = 2;
    c.B_ti = testing::random_index(0, 1, rng), c.C_ti = testing::random_index(0, 1, rng);
    c.skip = testing::random_index(0, 1, rng), c.gate = testing::random_index(0, 1, rng);
    c.softplus = testing::random_index(0, 1, rng), c.bias = testing::random_index(0, 1, rng);
    c.seed = 7000 + static_cast<std::uint64_t>(i);
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
        StepCase c;
        c.batch = 2, c.length = 13, c.channels = channels, c.state = state, c.groups = channels % 2 ? 1 : 2;
        c.skip = options & 1, c.gate = options & 2, c.bias = options & 4, c.softplus = options & 8;
        c.B_ti = options & 16, c.C_ti = options & 32, c.seed = seed++;
        EXPECT_TRUE(decode_matches_scan<TypeParam>(c));
      }
}

StepCase mamba_case(std::uint64_t seed) {
  StepCase c;
  c.batch = 2, c.channels = 4 * 37, c.state = 16, c.groups = 2, c.length = 3;
  c.skip = c.gate = c.bias = c.softplus = true, c.seed = seed;
  return c;
}

TEST(SelectiveStateUpdateTest, ResultsAreBitwiseIdenticalForAnyThreadCount) {
  const StepInputs in(mamba_case(13));
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
  StepInputs in(mamba_case(16));
  in.x(1, 0, 20) = std::numeric_limits<float>::quiet_NaN();
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
