// ssm::diagonal_ssm and ssm::diagonal_ssm_step (every representative arch) against their oracles
// (the convolution with the materialised kernel, in double), plus properties (state carry across
// split sequences, in-place state, step == sequence bitwise, thread-count invariance, L = 0, NaN
// reach), ssm::s4d_discretize against the closed forms, and every bad-input rule.

#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <limits>
#include <sstream>
#include <string>

#include "support/archs.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "support/sequence.hpp"
#include "tokenmix/reference/diagonal_ssm.hpp"
#include "tokenmix/ssm/diagonal_ssm.hpp"

namespace tokenmix {
namespace diagonal_ssm_test {

using testing::Rng;
using testing::slice_tokens;
using testing::token;
using testing::tolerance::diagonal_ssm;

struct SsmCase {
  Index batch = 1, length = 1, channels = 1, rows = 1, modes = 1;
  bool skip = false, initial = false;
  std::uint64_t seed = 0;
  std::string describe() const {
    std::ostringstream os;
    os << "B=" << batch << " L=" << length << " D=" << channels << " Hp=" << rows << " M=" << modes
       << " skip=" << skip << " initial_state=" << initial << " seed=" << seed;
    return os.str();
  }
};

// dA inside the unit disc with radii up to 0.999 (slow decays: long memory, as S4D's small dt) and
// any phase; C, x, the skip and the initial state ~ N(0, 1).
struct SsmInputs {
  Tensor<float, 3> x, dA, C;  // [B, L, D], [Hp, M, 2] x 2
  Tensor<float, 1> skip;      // [Hp]
  Tensor<float, 4> h0;        // [B, D, M, 2]
  SsmCase c;
  explicit SsmInputs(const SsmCase& cc) : c(cc) {
    Rng rng(c.seed);
    x = testing::random_normal<3>({c.batch, c.length, c.channels}, 0.f, 1.f, rng);
    dA = Tensor<float, 3>(c.rows, c.modes, 2);
    std::uniform_real_distribution<double> radius(0.3, 0.999), phase(-3.14159, 3.14159);
    for (Index h = 0; h < c.rows; ++h)
      for (Index m = 0; m < c.modes; ++m) {
        const std::complex<double> a = std::polar(radius(rng), phase(rng));
        dA(h, m, 0) = static_cast<float>(a.real()), dA(h, m, 1) = static_cast<float>(a.imag());
      }
    C = testing::random_normal<3>({c.rows, c.modes, 2}, 0.f, 0.3f, rng);
    skip = testing::random_normal<1>({c.rows}, 0.f, 1.f, rng);
    h0 = testing::random_normal<4>({c.batch, c.channels, c.modes, 2}, 0.f, 1.f, rng);
  }
  ssm::DiagonalSsmOptions options(const Eigen::ThreadPoolDevice* device = nullptr) const {
    ssm::DiagonalSsmOptions o;
    if (c.skip) o.D = skip;
    if (c.initial) o.initial_state = h0;
    o.device = device;
    return o;
  }
};

template <class Arch>
::testing::AssertionResult matches_oracle(const SsmCase& c) {
  const SsmInputs in(c);
  const auto expected = ref::diagonal_ssm<double>(in.x, in.dA, in.C, in.options());
  const auto actual = ssm::diagonal_ssm<Arch>(in.x, in.dA, in.C, in.options());
  const std::string where = std::string(Arch::name()) + " " + c.describe();
  auto ok = testing::all_close(actual.out, expected.out, diagonal_ssm, where + " out");
  if (!ok) return ok;
  return testing::all_close(actual.final_state, expected.final_state, diagonal_ssm, where + " final_state");
}

// Token-by-token diagonal_ssm_step == diagonal_ssm bitwise, and == the oracle's step.
template <class Arch>
::testing::AssertionResult steps_match_sequence(const SsmCase& c) {
  const SsmInputs in(c);
  const auto sequence = ssm::diagonal_ssm<Arch>(in.x, in.dA, in.C, in.options());
  Tensor<float, 4> state = in.h0, ref_state = in.h0;
  if (!c.initial) state.setZero(), ref_state.setZero();
  auto o = in.options();
  o.initial_state.reset();
  const std::string where = std::string(Arch::name()) + " " + c.describe();
  Tensor<float, 2> y(c.batch, c.channels), y_ref(c.batch, c.channels);
  for (Index t = 0; t < c.length; ++t) {
    const Tensor<float, 2> xt = token(in.x, t);
    ssm::diagonal_ssm_step<Arch>(xt, TensorView<float, 4>(state.data(), state.dimensions()), in.dA, in.C, o,
                                 TensorView<float, 2>(y.data(), y.dimensions()));
    ref::diagonal_ssm_step<double>(xt, TensorView<float, 4>(ref_state.data(), ref_state.dimensions()), in.dA, in.C,
                                   o, TensorView<float, 2>(y_ref.data(), y_ref.dimensions()));
    auto ok = testing::bitwise_equal(y, token(sequence.out, t), where + " step " + std::to_string(t));
    if (!ok) return ok;
    ok = testing::all_close(y, y_ref, diagonal_ssm, where + " step vs oracle step " + std::to_string(t));
    if (!ok) return ok;
  }
  return testing::bitwise_equal(state, sequence.final_state, where + " state after the steps");
}

template <class Arch>
class DiagonalSsmArchTest : public ::testing::Test {};
TYPED_TEST_SUITE(DiagonalSsmArchTest, testing::RepresentativeArchs, testing::ArchNames);

// Channels around the vector width; modes around the register group (the kernel keeps G modes in
// registers and runs the rest one by one); lengths across the 64-token chunk; every option.
TYPED_TEST(DiagonalSsmArchTest, MatchesOracleAroundVectorWidth) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  const Index W = static_cast<Index>(simd::lanes<TypeParam>);
  const Index G = ssm::detail::DiagonalSsmKernel<TypeParam>::G;
  std::uint64_t seed = 100;
  for (Index channels : {Index(1), W - 1, W, W + 1, 3 * W + 2})
    for (Index modes : {Index(1), G, 2 * G + 3})
      for (Index length : {1, 9, 70})
        for (int options = 0; options < 4; ++options) {
          SsmCase c;
          c.batch = 2, c.length = length, c.channels = channels, c.modes = modes;
          c.rows = channels % 2 == 0 ? channels / 2 : channels;  // two channels per row, or one
          c.skip = options & 1, c.initial = options & 2, c.seed = seed++;
          EXPECT_TRUE(matches_oracle<TypeParam>(c));
        }
}

TYPED_TEST(DiagonalSsmArchTest, StepsMatchSequenceBitwise) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  const Index W = static_cast<Index>(simd::lanes<TypeParam>);
  std::uint64_t seed = 700;
  for (Index channels : {Index(1), W + 1})
    for (int options = 0; options < 4; ++options) {
      SsmCase c;
      c.batch = 2, c.length = 5, c.channels = channels, c.rows = 1, c.modes = 11;
      c.skip = options & 1, c.initial = options & 2, c.seed = seed++;
      EXPECT_TRUE(steps_match_sequence<TypeParam>(c));
    }
}

// Parameter rows shared by groups of channels (H3: one row per head of head_dim² channels), with
// group boundaries inside a vector.
TEST(DiagonalSsmTest, MatchesOracleOnRandomSweep) {
  Rng rng(2026);
  for (int i = 0; i < 40; ++i) {
    SsmCase c;
    c.batch = testing::random_index(1, 3, rng);
    c.length = testing::random_index(0, 140, rng);
    c.rows = testing::random_index(1, 9, rng);
    c.channels = c.rows * testing::random_index(1, 9, rng);
    c.modes = testing::random_index(1, 35, rng);
    c.skip = testing::random_index(0, 1, rng), c.initial = testing::random_index(0, 1, rng);
    c.seed = 6000 + static_cast<std::uint64_t>(i);
    EXPECT_TRUE(matches_oracle<simd::default_arch>(c));
  }
}

SsmCase h3_case(Index length, std::uint64_t seed) {
  SsmCase c;
  c.batch = 2, c.length = length, c.channels = 36, c.rows = 4, c.modes = 12, c.skip = c.initial = true, c.seed = seed;
  return c;
}

// ssm(x1 ‖ x2) == ssm(x2, initial_state = ssm(x1).final_state), bitwise.
TEST(DiagonalSsmTest, StateCarriesAcrossSplitSequences) {
  const Index L = 150;
  const SsmInputs in(h3_case(L, 11));
  const auto whole = ssm::diagonal_ssm(in.x, in.dA, in.C, in.options());
  for (Index split : {Index(0), Index(1), Index(63), Index(64), Index(100), L}) {
    const std::string where = "split at " + std::to_string(split);
    const auto first = ssm::diagonal_ssm(slice_tokens(in.x, 0, split), in.dA, in.C, in.options());
    auto o = in.options();
    o.initial_state.emplace(first.final_state);
    const auto second = ssm::diagonal_ssm(slice_tokens(in.x, split, L), in.dA, in.C, o);
    EXPECT_TRUE(testing::bitwise_equal(second.final_state, whole.final_state, where + " final_state"));
    EXPECT_TRUE(testing::bitwise_equal(slice_tokens(whole.out, 0, split), first.out, where + " out before"));
    EXPECT_TRUE(testing::bitwise_equal(slice_tokens(whole.out, split, L), second.out, where + " out after"));
  }
}

TEST(DiagonalSsmTest, FinalStateMayAliasInitialState) {
  const SsmInputs in(h3_case(20, 12));
  const auto expected = ssm::diagonal_ssm(in.x, in.dA, in.C, in.options());
  Tensor<float, 4> state = in.h0;
  auto o = in.options();
  o.initial_state.emplace(state);
  Tensor<float, 3> out(2, 20, 36);
  TensorView<float, 4> state_v(state.data(), state.dimensions());
  ssm::diagonal_ssm(in.x, in.dA, in.C, o, TensorView<float, 3>(out.data(), out.dimensions()), &state_v);
  EXPECT_TRUE(testing::bitwise_equal(out, expected.out, "out"));
  EXPECT_TRUE(testing::bitwise_equal(state, expected.final_state, "state in place"));
}

TEST(DiagonalSsmTest, ThreadCountDoesNotChangeResults) {
  const SsmInputs in(h3_case(33, 13));
  const auto single = ssm::diagonal_ssm(in.x, in.dA, in.C, in.options());
  for (int threads : {2, 3, 5}) {
    ThreadPool pool(threads);
    const auto multi = ssm::diagonal_ssm(in.x, in.dA, in.C, in.options(pool.device()));
    EXPECT_TRUE(testing::bitwise_equal(multi.out, single.out, std::to_string(threads) + " threads out"));
    EXPECT_TRUE(testing::bitwise_equal(multi.final_state, single.final_state, std::to_string(threads) + " threads state"));
  }
}

TEST(DiagonalSsmTest, EmptySequenceReturnsInitialState) {
  SsmCase c = h3_case(0, 14);
  const SsmInputs in(c);
  const auto r = ssm::diagonal_ssm(in.x, in.dA, in.C, in.options());
  EXPECT_EQ(r.out.size(), 0);
  EXPECT_TRUE(testing::bitwise_equal(r.final_state, in.h0, "final_state == initial_state"));
  const auto oracle = ref::diagonal_ssm<double>(in.x, in.dA, in.C, in.options());
  EXPECT_TRUE(testing::bitwise_equal(oracle.final_state, in.h0, "oracle final_state == initial_state"));
  c.initial = false;
  const SsmInputs fresh(c);
  const auto zero = ssm::diagonal_ssm(fresh.x, fresh.dA, fresh.C, fresh.options());
  for (Index i = 0; i < zero.final_state.size(); ++i) ASSERT_EQ(zero.final_state.data()[i], 0.f);
}

// NaN in x at (b, t, d) reaches out[b, t.., d] (through the state) and nothing else.
TEST(DiagonalSsmTest, NanPropagatesOnlyAlongItsChannel) {
  SsmInputs in(h3_case(80, 15));
  const Index b = 1, t = 4, d = 20;
  in.x(b, t, d) = std::numeric_limits<float>::quiet_NaN();
  const auto r = ssm::diagonal_ssm(in.x, in.dA, in.C, in.options());
  for (Index bb = 0; bb < 2; ++bb)
    for (Index tt = 0; tt < 80; ++tt)
      for (Index dd = 0; dd < 36; ++dd)
        ASSERT_EQ(std::isnan(r.out(bb, tt, dd)), bb == b && dd == d && tt >= t) << "at [" << bb << ", " << tt << ", " << dd << "]";
}

// The closed forms of SSKernelDiag (bilinear: Padé (1 + z/2) / (1 - z/2); zoh: exp) on H3's init
// (A = -0.5 + iπn), computed here in std::complex<double>; and the discretised system's impulse
// response sampled against the continuous one's for a small dt (both discretisations converge).
TEST(DiagonalSsmTest, S4dDiscretizeMatchesClosedForms) {
  const Index rows = 2, modes = 3;
  Tensor<float, 3> A(rows, modes, 2), B(rows, modes, 2), C(rows, modes, 2);
  Tensor<float, 1> dt(rows);
  for (Index h = 0; h < rows; ++h) {
    dt(h) = h == 0 ? 0.01f : 0.1f;
    for (Index m = 0; m < modes; ++m) {
      A(h, m, 0) = -0.5f, A(h, m, 1) = 3.14159265f * static_cast<float>(m);
      B(h, m, 0) = 1.0f, B(h, m, 1) = 0.0f;
      C(h, m, 0) = 0.3f * static_cast<float>(m + 1), C(h, m, 1) = -0.2f;
    }
  }
  using cplx = std::complex<double>;
  for (auto method : {ssm::S4dDiscretization::bilinear, ssm::S4dDiscretization::zoh}) {
    const auto p = ssm::s4d_discretize(A, B, C, dt, method);
    for (Index h = 0; h < rows; ++h)
      for (Index m = 0; m < modes; ++m) {
        const cplx a(A(h, m, 0), A(h, m, 1)), c(C(h, m, 0), C(h, m, 1)), z = double(dt(h)) * a;
        const cplx da = method == ssm::S4dDiscretization::bilinear ? (1.0 + z / 2.0) / (1.0 - z / 2.0) : std::exp(z);
        const cplx cdb = method == ssm::S4dDiscretization::bilinear ? c * double(dt(h)) / (1.0 - z / 2.0)
                                                                    : c * (std::exp(z) - 1.0) / a;
        EXPECT_NEAR(p.dA(h, m, 0), da.real(), 1e-7);
        EXPECT_NEAR(p.dA(h, m, 1), da.imag(), 1e-7);
        EXPECT_NEAR(p.C(h, m, 0), cdb.real(), 1e-7);
        EXPECT_NEAR(p.C(h, m, 1), cdb.imag(), 1e-7);
        // Impulse response at time l·dt: K[l] / dt -> 2·Re(C·B·exp(A·l·dt)) as dt -> 0, with an
        // O(dt·|A|) error for both rules (|dt·A| <= 0.063 here: a few percent of 2·|C|).
        if (h != 0) continue;
        const Index l = 20;
        const cplx c_db(p.C(h, m, 0), p.C(h, m, 1)), da_f(p.dA(h, m, 0), p.dA(h, m, 1));
        const double sampled = 2.0 * (c_db * std::pow(da_f, double(l))).real();
        const double continuous = 2.0 * (c * std::exp(a * (double(l) * double(dt(h))))).real();
        EXPECT_NEAR(sampled / double(dt(h)), continuous, 0.05 * 2.0 * std::abs(c)) << "m=" << m;
      }
  }
}

// ---- bad input -------------------------------------------------------------------------------

TEST(DiagonalSsmTest, RejectsBadInputWithClearErrors) {
  const SsmInputs in(h3_case(6, 17));
  const auto o = in.options();
  const std::string op = "diagonal_ssm";
  auto run = [&](auto&&... args) { return [&, args...] { ssm::diagonal_ssm(args...); }; };
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.x, Tensor<float, 3>(5, 12, 2), in.C, o), op, "dA has shape [5, 12, 2], expected [Hp, M, 2] (complex as re, im) with Hp > 0 dividing D=36"));
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.x, Tensor<float, 3>(4, 12, 1), in.C, o), op, "dA has shape [4, 12, 1]"));
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.x, Tensor<float, 3>(4, 0, 2), Tensor<float, 3>(4, 0, 2), o), op, "with Hp > 0 dividing D=36 and M > 0"));
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.x, in.dA, Tensor<float, 3>(4, 11, 2), o), op, "C has shape [4, 11, 2], expected [Hp=4, M=12, 2=2] like dA"));
  EXPECT_TRUE(testing::throws_error_mentioning(run(Tensor<float, 3>(0, 6, 36), in.dA, in.C, o), op, "x has shape [0, 6, 36], expected [B, L, D] with B > 0 and D > 0"));
  auto with = [&](auto setter) { auto copy = o; setter(copy); return copy; };
  const Tensor<float, 1> wrong_skip(36);
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.x, in.dA, in.C, with([&](auto& x) { x.D.emplace(wrong_skip); })), op, "D has shape [36], expected [Hp=4]"));
  const Tensor<float, 4> wrong_state(2, 36, 12, 1);
  EXPECT_TRUE(testing::throws_error_mentioning(run(in.x, in.dA, in.C, with([&](auto& x) { x.initial_state.emplace(wrong_state); })), op, "initial_state has shape [2, 36, 12, 1], expected [B=2, D=36, M=12, 2=2]"));

  Tensor<float, 3> out(2, 6, 36), bad_out(2, 5, 36), x_copy = in.x;
  Tensor<float, 4> fin(2, 36, 12, 2), bad_fin(2, 36, 11, 2);
  TensorView<float, 3> out_v(out.data(), out.dimensions()), bad_out_v(bad_out.data(), bad_out.dimensions());
  TensorView<float, 4> bad_fin_v(bad_fin.data(), bad_fin.dimensions());
  TensorView<float, 3> alias_x(x_copy.data(), x_copy.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::diagonal_ssm(in.x, in.dA, in.C, o, bad_out_v, nullptr); }, op, "out has shape [2, 5, 36], expected [B=2, L=6, D=36] like x"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::diagonal_ssm(in.x, in.dA, in.C, o, out_v, &bad_fin_v); }, op, "final_state has shape [2, 36, 11, 2]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::diagonal_ssm(x_copy, in.dA, in.C, o, alias_x, nullptr); }, op, "out must not overlap x or initial_state"));
  Tensor<float, 4> big(2, 36, 12, 3);
  auto partial = o;
  partial.initial_state.emplace(big.data(), Eigen::array<Index, 4>{2, 36, 12, 2});
  TensorView<float, 4> shifted(big.data() + 1, fin.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::diagonal_ssm(in.x, in.dA, in.C, partial, out_v, &shifted); }, op, "same buffer as initial_state or not overlap it"));
  Tensor<float, 4> state_buf(2, 36, 12, 2);
  auto overlapping = o;
  overlapping.initial_state.emplace(state_buf.data(), state_buf.dimensions());
  TensorView<float, 3> out_on_state(state_buf.data(), out.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::diagonal_ssm(in.x, in.dA, in.C, overlapping, out_on_state, nullptr); }, op, "out must not overlap x or initial_state"));
  Tensor<float, 3> big_out(2, 7, 36);
  TensorView<float, 3> out_head(big_out.data(), out.dimensions());
  TensorView<float, 4> fin_on_out(big_out.data() + 10, fin.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::diagonal_ssm(in.x, in.dA, in.C, o, out_head, &fin_on_out); }, op, "final_state must not overlap x or out"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::diagonal_ssm<double>(in.x, Tensor<float, 3>(5, 12, 2), in.C, o); }, "ref::diagonal_ssm", "dA has shape"));

  // The step.
  const std::string st = "diagonal_ssm_step";
  auto so = o;
  so.initial_state.reset();
  Tensor<float, 2> xt(2, 36), yt(2, 36), bad_yt(3, 36);
  Tensor<float, 4> state(2, 36, 12, 2), bad_state(2, 36, 12, 1);
  TensorView<float, 4> state_v(state.data(), state.dimensions()), bad_state_v(bad_state.data(), bad_state.dimensions());
  TensorView<float, 2> yt_v(yt.data(), yt.dimensions()), bad_yt_v(bad_yt.data(), bad_yt.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::diagonal_ssm_step(xt, state_v, in.dA, in.C, o, yt_v); }, st, "options.initial_state must be empty"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::diagonal_ssm_step(xt, bad_state_v, in.dA, in.C, so, yt_v); }, st, "state has shape [2, 36, 12, 1], expected [B=2, D=36, M=12, 2=2]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::diagonal_ssm_step(xt, state_v, in.dA, in.C, so, bad_yt_v); }, st, "out has shape [3, 36], expected [B=2, D=36] like x"));
  TensorView<float, 2> y_on_state(state.data(), yt.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::diagonal_ssm_step(xt, state_v, in.dA, in.C, so, y_on_state); }, st, "out must not overlap x or state"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::diagonal_ssm_step(xt, state_v, Tensor<float, 3>(5, 12, 2), in.C, so, yt_v); }, st, "dA has shape [5, 12, 2]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::diagonal_ssm_step<double>(xt, bad_state_v, in.dA, in.C, so, yt_v); }, "ref::diagonal_ssm_step", "state has shape"));

  // The discretisation.
  const std::string disc = "s4d_discretize";
  Tensor<float, 3> A(2, 3, 2), B(2, 3, 2), C(2, 3, 2);
  A.setConstant(-0.5f), B.setConstant(1.f), C.setConstant(1.f);
  Tensor<float, 1> dt(2), bad_dt(3);
  dt.setConstant(0.1f), bad_dt.setConstant(0.1f);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::s4d_discretize(A, B, C, bad_dt); }, disc, "dt has shape [3], expected [Hp=2]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::s4d_discretize(A, Tensor<float, 3>(2, 4, 2), C, dt); }, disc, "B has shape [2, 4, 2], expected [Hp=2, M=3, 2=2] like A"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::s4d_discretize(Tensor<float, 3>(2, 3, 1), B, C, dt); }, disc, "A has shape [2, 3, 1]"));
  Tensor<float, 1> zero_dt = dt;
  zero_dt(1) = 0.f;
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::s4d_discretize(A, B, C, zero_dt); }, disc, "dt[1] = 0, expected a finite step > 0"));
  Tensor<float, 3> zero_a = A;
  zero_a.setZero();
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::s4d_discretize(zero_a, B, C, dt, ssm::S4dDiscretization::zoh); }, disc, "has no zero-order-hold input matrix"));
}

}  // namespace diagonal_ssm_test
}  // namespace tokenmix
