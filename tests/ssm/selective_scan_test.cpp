// ssm::selective_scan (every compiled arch) against ref::selective_scan (double), plus properties
// (state carry, causality, thread-count invariance, L = 0, NaN propagation) and every bad-input rule.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "support/archs.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "tokenmix/reference/selective_scan.hpp"
#include "tokenmix/ssm/selective_scan.hpp"

namespace tokenmix {
namespace {

using testing::Rng;
using testing::tolerance::selective_scan;

enum class Form { grouped, single, time_invariant };  // B/C as [B, L, G, N], [B, L, N] or [D, N]

// One test case: extents, options and seed. Inputs are drawn in Mamba's ranges.
struct ScanCase {
  Index batch = 1, length = 1, channels = 1, state = 1, groups = 1;
  Form B_form = Form::grouped, C_form = Form::grouped;
  bool skip = false, gate = false, bias = false, softplus = false, initial = false;
  std::uint64_t seed = 0;

  std::string describe() const {
    std::ostringstream os;
    auto form = [](Form f) { return f == Form::grouped ? "grouped" : f == Form::single ? "single" : "time_invariant"; };
    os << "B=" << batch << " L=" << length << " D=" << channels << " N=" << state << " G=" << groups
       << " B_form=" << form(B_form) << " C_form=" << form(C_form) << " D_skip=" << skip << " z=" << gate
       << " delta_bias=" << bias << " softplus=" << softplus << " initial_state=" << initial << " seed=" << seed;
    return os.str();
  }
};

struct ScanInputs {
  Tensor<float, 3> u, delta, z, h0;  // [B, L, D] x3, [B, D, N]
  Tensor<float, 2> A;                // [D, N]
  Tensor<float, 4> B4, C4;           // [B, L, G, N]
  Tensor<float, 3> B3, C3;           // [B, L, N]
  Tensor<float, 2> B2, C2;           // [D, N]
  Tensor<float, 1> D, bias;          // [D]
  ScanCase c;

  explicit ScanInputs(const ScanCase& sc) : c(sc) {
    Rng rng(c.seed);
    const Index Bt = c.batch, L = c.length, Dm = c.channels, N = c.state, G = c.groups;
    u = testing::random_normal<3>({Bt, L, Dm}, 0.f, 1.f, rng);
    // Without softplus delta is used as dt directly and must be positive; with it, it is a raw
    // projection around zero (plus a bias making softplus(.) ~ 0.001..0.1 as at Mamba's init).
    delta = c.softplus ? testing::random_normal<3>({Bt, L, Dm}, 0.f, 1.f, rng)
                       : testing::random_uniform<3>({Bt, L, Dm}, 0.001f, 0.2f, rng);
    A = Tensor<float, 2>(Dm, N);
    std::uniform_real_distribution<float> jitter(-0.2f, 0.2f);
    for (Index d = 0; d < Dm; ++d)
      for (Index n = 0; n < N; ++n) A(d, n) = -std::exp(std::log(float(n + 1)) + jitter(rng));  // S4D-real init
    B4 = testing::random_normal<4>({Bt, L, G, N}, 0.f, 1.f, rng);
    C4 = testing::random_normal<4>({Bt, L, G, N}, 0.f, 1.f, rng);
    B3 = testing::random_normal<3>({Bt, L, N}, 0.f, 1.f, rng);
    C3 = testing::random_normal<3>({Bt, L, N}, 0.f, 1.f, rng);
    B2 = testing::random_normal<2>({Dm, N}, 0.f, 1.f, rng);
    C2 = testing::random_normal<2>({Dm, N}, 0.f, 1.f, rng);
    D = testing::random_uniform<1>({Dm}, 0.5f, 1.5f, rng);
    // With softplus: softplus(bias) in [0.001, 0.1] as Mamba's dt init; without: a small positive shift.
    bias = c.softplus ? testing::random_uniform<1>({Dm}, -6.9f, -2.2f, rng) : testing::random_uniform<1>({Dm}, 0.f, 0.05f, rng);
    z = testing::random_normal<3>({Bt, L, Dm}, 0.f, 1.f, rng);
    h0 = testing::random_normal<3>({Bt, Dm, N}, 0.f, 1.f, rng);
  }
  ssm::ScanOperand operand(Form f, const Tensor<float, 4>& t4, const Tensor<float, 3>& t3,
                           const Tensor<float, 2>& t2) const {
    return f == Form::grouped ? ssm::ScanOperand(t4) : f == Form::single ? ssm::ScanOperand(t3) : ssm::ScanOperand(t2);
  }
  ssm::ScanOperand B() const { return operand(c.B_form, B4, B3, B2); }
  ssm::ScanOperand C() const { return operand(c.C_form, C4, C3, C2); }
  ssm::SelectiveScanOptions options(const Eigen::ThreadPoolDevice* device = nullptr) const {
    ssm::SelectiveScanOptions o;
    if (c.skip) o.D = D;
    if (c.gate) o.z = z;
    if (c.bias) o.delta_bias = bias;
    o.delta_softplus = c.softplus;
    if (c.initial) o.initial_state = h0;
    o.device = device;
    return o;
  }
};

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
  const Index W = static_cast<Index>(simd::lanes<TypeParam>);
  std::uint64_t seed = 100;
  for (Index channels : {Index(1), W - 1, W, W + 1, 3 * W + 2})
    for (Index state : {1, 4, 7, 16, 64})
      for (Index groups : {1, 2}) {
        if (channels == 0 || channels % groups) continue;
        for (int options = 0; options < 32; options += 3) {  // 11 of the 32 on/off combinations
          ScanCase c;
          c.batch = 2, c.length = 9, c.channels = channels, c.state = state, c.groups = groups;
          c.skip = options & 1, c.gate = options & 2, c.bias = options & 4, c.softplus = options & 8;
          c.initial = options & 16, c.seed = seed++;
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
  std::uint64_t seed = 300;
  for (Form bf : {Form::grouped, Form::single, Form::time_invariant})
    for (Form cf : {Form::grouped, Form::single, Form::time_invariant})
      for (Index state : {3, 16}) {
        ScanCase c;
        c.batch = 2, c.length = 17, c.channels = 21, c.state = state;
        c.groups = (bf == Form::grouped || cf == Form::grouped) && !(bf == Form::single || cf == Form::single) ? 3 : 1;
        c.B_form = bf, c.C_form = cf;
        c.skip = c.gate = c.initial = true;
        c.seed = seed++;
        EXPECT_TRUE(matches_oracle<TypeParam>(c));
      }
}

// A seeded random sweep of shapes and options.
TYPED_TEST(SelectiveScanArchTest, MatchesOracleOnRandomSweep) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  Rng rng(2024);
  for (int i = 0; i < 60; ++i) {
    ScanCase c;
    c.batch = testing::random_index(1, 3, rng);
    c.length = testing::random_index(0, 70, rng);
    c.groups = testing::random_index(1, 4, rng);
    c.channels = c.groups * testing::random_index(1, 24, rng);
    c.state = testing::random_index(1, 40, rng);
    c.B_form = static_cast<Form>(testing::random_index(0, 2, rng));
    c.C_form = static_cast<Form>(testing::random_index(0, 2, rng));
    if (c.B_form == Form::single || c.C_form == Form::single) c.groups = 1;
    c.skip = testing::random_index(0, 1, rng), c.gate = testing::random_index(0, 1, rng);
    c.softplus = testing::random_index(0, 1, rng), c.bias = testing::random_index(0, 1, rng);
    c.initial = testing::random_index(0, 1, rng);
    c.seed = 5000 + static_cast<std::uint64_t>(i);
    EXPECT_TRUE(matches_oracle<TypeParam>(c));
  }
}

// Views whose data pointers are not vector-aligned (offset by one float in a larger buffer).
TYPED_TEST(SelectiveScanArchTest, AcceptsMisalignedViews) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  ScanCase c;
  c.batch = 2, c.length = 13, c.channels = 35, c.state = 16, c.skip = c.gate = c.bias = c.softplus = true, c.seed = 9;
  const ScanInputs in(c);
  auto shifted = [](const Tensor<float, 3>& t, std::vector<float>& storage) {
    storage.assign(static_cast<std::size_t>(t.size() + 1), 0.f);
    std::copy(t.data(), t.data() + t.size(), storage.data() + 1);
    return ConstTensorView<float, 3>(storage.data() + 1, t.dimensions());
  };
  std::vector<float> su, sd, sz, so(static_cast<std::size_t>(in.u.size() + 1));
  auto options = in.options();
  options.z.emplace(shifted(in.z, sz));
  TensorView<float, 3> out(so.data() + 1, in.u.dimensions());
  ssm::selective_scan<TypeParam>(shifted(in.u, su), shifted(in.delta, sd), in.A, in.B(), in.C(), options, out, nullptr);
  const auto expected = ref::selective_scan<double>(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  EXPECT_TRUE(testing::all_close(out, expected.out, selective_scan, c.describe()));
}

class SelectiveScanTest : public ::testing::Test {
 protected:
  static ScanCase mamba_case(Index length, std::uint64_t seed) {
    ScanCase c;
    c.batch = 2, c.length = length, c.channels = 37, c.state = 16, c.groups = 1;
    c.skip = c.gate = c.bias = c.softplus = true, c.seed = seed;
    return c;
  }
};

// scan(x1 ‖ x2) == scan(x2, initial_state = scan(x1).last_state), for a split inside and at the ends.
TEST_F(SelectiveScanTest, StateCarriesAcrossSplitSequences) {
  const Index L = 41;
  const ScanInputs in(mamba_case(L, 11));
  const auto whole = ssm::selective_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  for (Index split : {Index(0), Index(1), Index(17), L}) {
    // Token slices [from, to) of a [B, L, ...] tensor, as owning tensors.
    auto slice3 = [&](const Tensor<float, 3>& t, Index from, Index to) {
      Eigen::array<Index, 3> off{0, from, 0}, ext{t.dimension(0), to - from, t.dimension(2)};
      return Tensor<float, 3>(t.slice(off, ext));
    };
    auto slice4 = [&](const Tensor<float, 4>& t, Index from, Index to) {
      Eigen::array<Index, 4> off{0, from, 0, 0}, ext{t.dimension(0), to - from, t.dimension(2), t.dimension(3)};
      return Tensor<float, 4>(t.slice(off, ext));
    };
    auto run = [&](Index from, Index to, const std::optional<Tensor<float, 3>>& h0) {
      const Tensor<float, 3> u = slice3(in.u, from, to), delta = slice3(in.delta, from, to), z = slice3(in.z, from, to);
      const Tensor<float, 4> B = slice4(in.B4, from, to), C = slice4(in.C4, from, to);
      auto o = in.options();
      o.z.emplace(z);
      if (h0) o.initial_state.emplace(*h0);
      return ssm::selective_scan(u, delta, in.A, B, C, o);
    };
    const auto first = run(0, split, std::nullopt);
    const auto second = run(split, L, first.last_state);
    const std::string where = "split at " + std::to_string(split);
    EXPECT_TRUE(testing::all_close(second.last_state, whole.last_state, selective_scan, where + " last_state"));
    const Tensor<float, 3> whole_tail = slice3(whole.out, split, L);
    EXPECT_TRUE(testing::bitwise_equal(second.out, whole_tail, where + " out after the split"));
  }
}

// Changing tokens after t leaves every output up to t bitwise unchanged.
TEST_F(SelectiveScanTest, IsCausal) {
  const Index L = 30, t = 12;
  ScanInputs in(mamba_case(L, 12));
  const auto before = ssm::selective_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  for (Index b = 0; b < in.c.batch; ++b)
    for (Index s = t + 1; s < L; ++s) {
      for (Index d = 0; d < in.c.channels; ++d) in.u(b, s, d) += 1.f, in.delta(b, s, d) -= 0.5f, in.z(b, s, d) *= -1.f;
      for (Index n = 0; n < in.c.state; ++n) in.B4(b, s, 0, n) += 2.f, in.C4(b, s, 0, n) -= 1.f;
    }
  const auto after = ssm::selective_scan(in.u, in.delta, in.A, in.B(), in.C(), in.options());
  Eigen::array<Index, 3> off{0, 0, 0}, ext{in.c.batch, t + 1, in.c.channels};
  const Tensor<float, 3> prefix_before = before.out.slice(off, ext), prefix_after = after.out.slice(off, ext);
  EXPECT_TRUE(testing::bitwise_equal(prefix_after, prefix_before, "outputs up to t"));
  Eigen::array<Index, 3> off_t{0, t + 1, 0}, ext_t{in.c.batch, 1, in.c.channels};
  const Tensor<float, 3> next_before = before.out.slice(off_t, ext_t), next_after = after.out.slice(off_t, ext_t);
  EXPECT_FALSE(testing::bitwise_equal(next_after, next_before, "output at t + 1 must see the change"));
}

TEST_F(SelectiveScanTest, ResultsAreBitwiseIdenticalForAnyThreadCount) {
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

TEST_F(SelectiveScanTest, EmptySequenceReturnsInitialState) {
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
TEST_F(SelectiveScanTest, SoftplusThresholdMatchesOracle) {
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
TEST_F(SelectiveScanTest, NanPropagatesOnlyToTheChannelItTouches) {
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

TEST_F(SelectiveScanTest, RejectsBadInputWithClearErrors) {
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
