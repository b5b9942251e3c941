// linear::simple_gla (chunked and recurrent forms) and linear::simple_gla_step against ref::simple_gla
// (double, the quadratic form: no recurrence, no chunks), plus properties: chunked == recurrent ==
// token-by-token step, chunk sizes that do not divide L, L < chunk, L = 0 and 1, decays near 0 and
// near 1 over long sequences (no overflow, no NaN), state carry across calls (prefill + prefill,
// prefill + steps), per-token g and per-head g_gamma, causality, thread-count invariance, in-place
// state, the default scale, and every bad-input rule of simple_gla / simple_gla_step and the shared
// checks of linear_attention_types.hpp (op and oracle).

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "support/archs.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/linear_case.hpp"
#include "support/random.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/linear/lightning_attention.hpp"
#include "tokenmix/linear/simple_gla.hpp"
#include "tokenmix/reference/linear_attention.hpp"

namespace tokenmix {
namespace simple_gla_cases {  // named: the family's files share one translation unit (tests/CMakeLists.txt)
namespace {

using linear::LinearAlgorithm;
using testing::Decay;
using testing::LinearCase;
using testing::LinearInputs;
using testing::Rng;

// Tolerances: tests/support/tolerance.hpp (linear_attention, linear_attention_long).
constexpr testing::Tolerance kTol = testing::tolerance::linear_attention;
constexpr testing::Tolerance kLongTol = testing::tolerance::linear_attention_long;

constexpr LinearAlgorithm kForms[] = {LinearAlgorithm::recurrent, LinearAlgorithm::chunked};

const char* form_name(LinearAlgorithm a) {
  return a == LinearAlgorithm::recurrent ? "recurrent" : a == LinearAlgorithm::chunked ? "chunked" : "auto";
}

// Feeds tokens [from, to) through simple_gla_step<Arch> (state in place) and returns their outputs
// [B, to - from, H, V].
template <class Arch = simd::default_arch>
Tensor<float, 4> run_steps(const LinearInputs& in, Tensor<float, 4>& state, Index from, Index to,
                           std::optional<float> scale = std::nullopt) {
  Tensor<float, 4> out(in.c.batch, to - from, in.c.heads, in.c.value_dim);
  for (Index t = from; t < to; ++t) {
    const Tensor<float, 3> q1 = testing::token_of(in.q, t), k1 = testing::token_of(in.k, t),
                           v1 = testing::token_of(in.v, t);
    const Tensor<float, 2> g1 = testing::token_of(in.g, t);
    linear::LinearStepOptions o;
    o.scale = scale;
    if (in.c.decay == Decay::per_token) o.g.emplace(g1.data(), g1.dimensions());
    if (in.c.decay == Decay::per_head) o.g_gamma.emplace(in.g_gamma.data(), in.g_gamma.dimensions());
    const Tensor<float, 3> y =
        linear::simple_gla_step<Arch>(TensorView<float, 4>(state.data(), state.dimensions()), q1, k1, v1, o);
    testing::set_token(out, t - from, y);
  }
  return out;
}

template <class Arch = simd::default_arch>
::testing::AssertionResult forms_match_oracle(const LinearCase& c) {
  const LinearInputs in(c);
  const auto expected = ref::simple_gla<double>(in.q, in.k, in.v, in.gla_options());
  for (LinearAlgorithm a : kForms) {
    const auto actual = linear::simple_gla<Arch>(in.q, in.k, in.v, in.gla_options(a));
    auto r = testing::results_close(actual, expected, std::string(form_name(a)) + " " + Arch::name() + " " +
                                                          c.describe());
    if (!r) return r;
  }
  return ::testing::AssertionSuccess();
}

// ---- per arch ----

template <class Arch>
class SimpleGlaArchTest : public ::testing::Test {};
TYPED_TEST_SUITE(SimpleGlaArchTest, testing::RepresentativeArchs, testing::ArchNames);

// One moderate case per decay kind and V below / above a vector: both forms and the step.
TYPED_TEST(SimpleGlaArchTest, FormsAndStepMatchOracle) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  std::uint64_t seed = 10;
  for (Decay decay : {Decay::none, Decay::per_token, Decay::per_head})
    for (Index V : {Index(7), Index(20)}) {
      LinearCase c;
      c.batch = 2, c.length = 45, c.heads = 3, c.key_dim = 17, c.value_dim = V, c.chunk = 16;
      c.decay = decay, c.initial = true, c.seed = seed++;
      EXPECT_TRUE(forms_match_oracle<TypeParam>(c));
      const LinearInputs in(c);
      const auto expected = ref::simple_gla<double>(in.q, in.k, in.v, in.gla_options());
      Tensor<float, 4> state = in.h0;
      const Tensor<float, 4> steps = run_steps<TypeParam>(in, state, 0, c.length);
      testing::linear_report("step out", steps, expected.out);
      EXPECT_TRUE(testing::all_close(steps, expected.out, kTol, "step out " + c.describe()));
      EXPECT_TRUE(testing::all_close(state, expected.final_state, kTol, "step state " + c.describe()));
    }
}

// ---- default arch ----

// K and V around the vector width (V < lanes runs the recurrent kernel under auto_select, V >= lanes
// the chunked one), every decay kind, with and without an initial state; chunk 16 does not divide L.
TEST(SimpleGlaTest, MatchesOracleAroundVectorWidth) {
  std::uint64_t seed = 100;
  int variant = 0;
  for (Index K : {5, 16, 17, 64, 129})  // 129: more state vectors than registers (the kernel's in-memory rows)
    for (Index V : {1, 7, 16, 33, 64}) {
      LinearCase c;
      c.batch = 2, c.length = 37, c.heads = 2, c.key_dim = K, c.value_dim = V, c.chunk = 16;
      c.decay = static_cast<Decay>(variant % 3), c.initial = (variant / 3) % 2 == 0, c.seed = seed++;
      ++variant;
      EXPECT_TRUE(forms_match_oracle(c));
    }
}

// V wider than the step kernel's register block (8 vectors): the step's passes over V, and both forms.
TEST(SimpleGlaTest, WideValuesMatchOracle) {
  for (Index V : {150, 300}) {
    LinearCase c;
    c.batch = 1, c.length = 6, c.heads = 2, c.key_dim = 3, c.value_dim = V, c.chunk = 4;
    c.decay = Decay::per_token, c.initial = true, c.seed = 150 + static_cast<std::uint64_t>(V);
    EXPECT_TRUE(forms_match_oracle(c));
    const LinearInputs in(c);
    const auto expected = ref::simple_gla<double>(in.q, in.k, in.v, in.gla_options());
    Tensor<float, 4> state = in.h0;
    const Tensor<float, 4> steps = run_steps(in, state, 0, c.length);
    EXPECT_TRUE(testing::all_close(steps, expected.out, kTol, "wide steps out " + c.describe()));
    EXPECT_TRUE(testing::all_close(state, expected.final_state, kTol, "wide steps state " + c.describe()));
  }
}

// Lengths 1, 2, < chunk, == chunk, chunk ± 1, several chunks; chunk sizes that do / do not divide
// L, chunk 1, larger than L, the default (0).
TEST(SimpleGlaTest, MatchesOracleForChunkSizesAndShortSequences) {
  std::uint64_t seed = 200;
  for (Index L : {1, 2, 5, 63, 64, 65, 130})
    for (Index chunk : {0, 1, 3, 16, 64, 100}) {
      LinearCase c;
      c.batch = 1, c.length = L, c.heads = 2, c.key_dim = 8, c.value_dim = 16, c.chunk = chunk;
      c.decay = Decay::per_token, c.initial = true, c.seed = seed++;
      EXPECT_TRUE(forms_match_oracle(c));
    }
}

TEST(SimpleGlaTest, MatchesOracleOnRandomSweep) {
  Rng rng(2026);
  for (int i = 0; i < 30; ++i) {
    LinearCase c;
    c.batch = testing::random_index(1, 2, rng);
    c.length = testing::random_index(0, 90, rng);
    c.heads = testing::random_index(1, 3, rng);
    c.key_dim = testing::random_index(1, 40, rng);
    c.value_dim = testing::random_index(1, 40, rng);
    c.chunk = testing::random_index(0, 40, rng);
    c.decay = static_cast<Decay>(testing::random_index(0, 2, rng));
    c.initial = testing::random_index(0, 1, rng);
    c.seed = 3000 + static_cast<std::uint64_t>(i);
    EXPECT_TRUE(forms_match_oracle(c));
  }
}

// The two forms agree with each other, not only each with the oracle.
TEST(SimpleGlaTest, ChunkedEqualsRecurrent) {
  for (Decay decay : {Decay::per_token, Decay::per_head}) {
    LinearCase c;
    c.batch = 2, c.length = 100, c.heads = 2, c.key_dim = 32, c.value_dim = 32, c.chunk = 24;
    c.decay = decay, c.initial = true, c.seed = 300;
    const LinearInputs in(c);
    const auto rec = linear::simple_gla(in.q, in.k, in.v, in.gla_options(LinearAlgorithm::recurrent));
    const auto chk = linear::simple_gla(in.q, in.k, in.v, in.gla_options(LinearAlgorithm::chunked));
    EXPECT_TRUE(testing::results_close(chk, rec, "chunked_vs_recurrent " + c.describe()));
  }
}

// auto_select runs the chunked form from kLinearAutoMinLength tokens on when V fills a vector.
TEST(SimpleGlaTest, AutoSelectPicksTheDocumentedForm) {
  const Index W = static_cast<Index>(simd::lanes<simd::default_arch>);
  for (Index L : {linear::kLinearAutoMinLength - 1, linear::kLinearAutoMinLength})
    for (Index V : {W - 1, W}) {
      if (V < 1) continue;
      LinearCase c;
      c.batch = 1, c.length = L, c.heads = 2, c.key_dim = 9, c.value_dim = V, c.decay = Decay::per_token;
      c.seed = 310;
      const LinearInputs in(c);
      const bool chunked = L >= linear::kLinearAutoMinLength && V >= W;
      const auto a = linear::simple_gla(in.q, in.k, in.v, in.gla_options());
      const auto e = linear::simple_gla(in.q, in.k, in.v,
                                        in.gla_options(chunked ? LinearAlgorithm::chunked : LinearAlgorithm::recurrent));
      EXPECT_TRUE(testing::results_bitwise_equal(a, e, "auto L=" + std::to_string(L) + " V=" + std::to_string(V)));
    }
}

// L = 0: no outputs; the final state is the initial state (or zeros), in every form.
TEST(SimpleGlaTest, EmptySequencePassesTheStateThrough) {
  for (bool initial : {false, true}) {
    LinearCase c;
    c.batch = 2, c.length = 0, c.heads = 3, c.key_dim = 4, c.value_dim = 20, c.decay = Decay::per_token;
    c.initial = initial, c.seed = 320;
    const LinearInputs in(c);
    Tensor<float, 4> zeros(in.h0.dimensions());
    zeros.setZero();
    const Tensor<float, 4>& want = initial ? in.h0 : zeros;
    for (LinearAlgorithm a : {LinearAlgorithm::auto_select, LinearAlgorithm::recurrent, LinearAlgorithm::chunked}) {
      const auto r = linear::simple_gla(in.q, in.k, in.v, in.gla_options(a));
      EXPECT_EQ(r.out.size(), 0);
      EXPECT_TRUE(testing::bitwise_equal(r.final_state, want, std::string(form_name(a)) + " final_state"));
    }
    const auto oracle = ref::simple_gla<double>(in.q, in.k, in.v, in.gla_options());
    EXPECT_TRUE(testing::bitwise_equal(oracle.final_state, want, "oracle final_state"));
  }
}

// L = 0 through the view-based call with an initial state and no final_state (nullptr): nothing to
// write. It crashed (see the report: run_simple_gla copied the initial state into the empty final
// buffer), hence the child process; the parent only checks that the call returns.
TEST(SimpleGlaTest, EmptySequenceWithoutFinalStateDoesNothing) {
  Tensor<float, 4> q(1, 0, 2, 4), k(1, 0, 2, 4), v(1, 0, 2, 8), out(1, 0, 2, 8), h0(1, 2, 4, 8);
  h0.setConstant(1.f);
  const TensorView<float, 4> ov(out.data(), out.dimensions());
  linear::LightningOptions lo;
  lo.initial_state.emplace(h0.data(), h0.dimensions());
  EXPECT_NO_THROW(linear::lightning_attention(q, k, v, lo, ov, nullptr));
  linear::SimpleGlaOptions so;
  so.initial_state.emplace(h0.data(), h0.dimensions());
  EXPECT_NO_THROW(linear::simple_gla(q, k, v, so, ov, nullptr));
}

// Decay near 0 (g = -30: exp(g) ~ 1e-13, exp(64·g) underflows) and near 1 (g = -1e-6) over 2000
// tokens: finite, and equal to the oracle. A λ^(-t) rescaling would overflow at t ~ 3 for g = -30.
TEST(SimpleGlaTest, ExtremeDecaysOverLongSequences) {
  LinearCase c;
  c.batch = 1, c.length = 2000, c.heads = 2, c.key_dim = 16, c.value_dim = 16, c.chunk = 64, c.initial = true;
  c.seed = 330;
  for (Decay decay : {Decay::per_head, Decay::per_token}) {
    c.decay = decay;
    LinearInputs in(c);
    in.g_gamma(0) = -30.f, in.g_gamma(1) = -1e-6f;
    for (Index t = 0; t < c.length; ++t) in.g(0, t, 0) = -30.f, in.g(0, t, 1) = -1e-6f;
    const auto expected = ref::simple_gla<double>(in.q, in.k, in.v, in.gla_options());
    for (LinearAlgorithm a : kForms) {
      const auto r = linear::simple_gla(in.q, in.k, in.v, in.gla_options(a));
      EXPECT_TRUE(testing::all_finite(r.out) && testing::all_finite(r.final_state)) << form_name(a);
      EXPECT_TRUE(testing::results_close(r, expected, std::string(form_name(a)) + "_long " + c.describe(), kLongTol));
    }
    Tensor<float, 4> state = in.h0;
    const Tensor<float, 4> steps = run_steps(in, state, 0, c.length);
    EXPECT_TRUE(testing::all_finite(steps) && testing::all_finite(state));
    testing::linear_report("step_long out", steps, expected.out, kLongTol);
    testing::linear_report("step_long state", state, expected.final_state, kLongTol);
    EXPECT_TRUE(testing::all_close(steps, expected.out, kLongTol, "long steps out"));
    EXPECT_TRUE(testing::all_close(state, expected.final_state, kLongTol, "long steps state"));
  }
  // Every token of head 0 forgets its past: o_t = scale·(q_t·k_t) v_t up to e^-30 relative.
  c.decay = Decay::per_head;
  LinearInputs in(c);
  in.g_gamma.setConstant(-30.f);
  const auto r = linear::simple_gla(in.q, in.k, in.v, in.gla_options(LinearAlgorithm::chunked));
  for (Index t = 0; t < c.length; t += 97) {
    double qk = 0;
    for (Index i = 0; i < c.key_dim; ++i) qk += double(in.q(0, t, 0, i)) * double(in.k(0, t, 0, i));
    for (Index j = 0; j < c.value_dim; ++j) {
      const double want = 0.25 * qk * in.v(0, t, 0, j);  // scale 1/sqrt(16)
      EXPECT_TRUE(testing::within(r.out(0, t, 0, j), want, kTol)) << "t=" << t << " j=" << j;
    }
  }
}

// simple_gla(x1 ‖ x2) == simple_gla(x2, initial_state = simple_gla(x1).final_state) for splits at
// both ends, inside a chunk and at a chunk edge: bitwise for the recurrent form (the same per-token
// arithmetic), within tolerance for the chunked one (its chunks shift with the split).
TEST(SimpleGlaTest, StateCarriesAcrossCalls) {
  LinearCase c;
  c.batch = 2, c.length = 41, c.heads = 2, c.key_dim = 12, c.value_dim = 24, c.chunk = 8;
  c.decay = Decay::per_token, c.initial = true, c.seed = 340;
  const LinearInputs in(c);
  for (LinearAlgorithm a : kForms) {
    const auto whole = linear::simple_gla(in.q, in.k, in.v, in.gla_options(a));
    for (Index split : {Index(0), Index(1), Index(13), Index(16), c.length}) {
      auto run = [&](Index from, Index to, const Tensor<float, 4>& h0) {
        const Tensor<float, 4> q = testing::linear_tokens<4>(in.q, from, to), k = testing::linear_tokens<4>(in.k, from, to),
                               v = testing::linear_tokens<4>(in.v, from, to);
        const Tensor<float, 3> g = testing::linear_tokens<3>(in.g, from, to);
        auto o = in.gla_options(a);
        o.g.emplace(g.data(), g.dimensions());
        o.initial_state.emplace(h0.data(), h0.dimensions());
        return linear::simple_gla(q, k, v, o);
      };
      const auto first = run(0, split, in.h0);
      const auto second = run(split, c.length, first.final_state);
      const std::string where = std::string(form_name(a)) + " split at " + std::to_string(split);
      const Tensor<float, 4> head = testing::linear_tokens<4>(whole.out, 0, split);
      const Tensor<float, 4> tail = testing::linear_tokens<4>(whole.out, split, c.length);
      if (a == LinearAlgorithm::recurrent) {
        EXPECT_TRUE(testing::bitwise_equal(first.out, head, where + " first out"));
        EXPECT_TRUE(testing::bitwise_equal(second.out, tail, where + " second out"));
        EXPECT_TRUE(testing::bitwise_equal(second.final_state, whole.final_state, where + " state"));
      } else {
        EXPECT_TRUE(testing::all_close(first.out, head, kTol, where + " first out"));
        EXPECT_TRUE(testing::all_close(second.out, tail, kTol, where + " second out"));
        EXPECT_TRUE(testing::all_close(second.final_state, whole.final_state, kTol, where + " state"));
      }
    }
  }
}

// Prefill of the first tokens, then decode steps from the returned state == one prefill.
TEST(SimpleGlaTest, PrefillThenStepsEqualsOnePrefill) {
  for (Decay decay : {Decay::none, Decay::per_token, Decay::per_head}) {
    LinearCase c;
    c.batch = 2, c.length = 50, c.heads = 3, c.key_dim = 20, c.value_dim = 33, c.chunk = 16;
    c.decay = decay, c.initial = true, c.seed = 350;
    const LinearInputs in(c);
    const Index split = 37;
    const auto expected = ref::simple_gla<double>(in.q, in.k, in.v, in.gla_options());
    for (LinearAlgorithm a : kForms) {
      auto o = in.gla_options(a);
      const Tensor<float, 4> q = testing::linear_tokens<4>(in.q, 0, split), k = testing::linear_tokens<4>(in.k, 0, split),
                             v = testing::linear_tokens<4>(in.v, 0, split);
      const Tensor<float, 3> g = testing::linear_tokens<3>(in.g, 0, split);
      if (decay == Decay::per_token) o.g.emplace(g.data(), g.dimensions());
      const auto prefill = linear::simple_gla(q, k, v, o);
      Tensor<float, 4> state = prefill.final_state;
      const Tensor<float, 4> steps = run_steps(in, state, split, c.length);
      const std::string where = std::string(form_name(a)) + " prefill + steps, decay " + testing::decay_name(decay);
      EXPECT_TRUE(testing::all_close(steps, testing::linear_tokens<4>(expected.out, split, c.length), kTol, where + " out"));
      EXPECT_TRUE(testing::all_close(state, expected.final_state, kTol, where + " state"));
    }
  }
}

// Changing tokens after t (even to NaN) leaves every output up to t bitwise unchanged, both forms.
TEST(SimpleGlaTest, IsCausal) {
  LinearCase c;
  c.batch = 1, c.length = 40, c.heads = 2, c.key_dim = 16, c.value_dim = 32, c.chunk = 16;
  c.decay = Decay::per_token, c.seed = 360;
  const Index t = 20;  // inside the second chunk
  const LinearInputs in(c);
  LinearInputs changed = in;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (Index s = t + 1; s < c.length; ++s)
    for (Index h = 0; h < c.heads; ++h) {
      changed.g(0, s, h) = s == t + 1 ? nan : -changed.g(0, s, h);
      for (Index i = 0; i < c.key_dim; ++i) changed.k(0, s, h, i) = s == t + 2 ? nan : changed.q(0, s, h, i);
      for (Index j = 0; j < c.value_dim; ++j) changed.v(0, s, h, j) = nan;
    }
  for (LinearAlgorithm a : kForms) {
    const auto before = linear::simple_gla(in.q, in.k, in.v, in.gla_options(a));
    const auto after = linear::simple_gla(changed.q, changed.k, changed.v, changed.gla_options(a));
    EXPECT_TRUE(testing::bitwise_equal(testing::linear_tokens<4>(after.out, 0, t + 1),
                                       testing::linear_tokens<4>(before.out, 0, t + 1),
                                       std::string(form_name(a)) + " outputs up to t"));
  }
}

// NaN in one value reaches that value channel of every later output and of the state, nothing else.
TEST(SimpleGlaTest, NanInValuesPropagatesForward) {
  LinearCase c;
  c.batch = 1, c.length = 40, c.heads = 2, c.key_dim = 8, c.value_dim = 16, c.chunk = 16;
  c.decay = Decay::per_token, c.seed = 365;
  LinearInputs in(c);
  in.v(0, 5, 1, 3) = std::numeric_limits<float>::quiet_NaN();
  for (LinearAlgorithm a : kForms) {
    const auto r = linear::simple_gla(in.q, in.k, in.v, in.gla_options(a));
    for (Index t = 0; t < c.length; ++t)
      for (Index h = 0; h < c.heads; ++h)
        for (Index j = 0; j < c.value_dim; ++j)
          ASSERT_EQ(std::isnan(r.out(0, t, h, j)), h == 1 && j == 3 && t >= 5)
              << form_name(a) << " t=" << t << " h=" << h << " j=" << j;
    EXPECT_TRUE(std::isnan(r.final_state(0, 1, 0, 3)));
    EXPECT_FALSE(std::isnan(r.final_state(0, 1, 0, 2)));
  }
}

TEST(SimpleGlaTest, ResultsAreBitwiseIdenticalForAnyThreadCount) {
  for (Decay decay : {Decay::per_token, Decay::per_head}) {
    LinearCase c;
    c.batch = 2, c.length = 70, c.heads = 3, c.key_dim = 17, c.value_dim = 33, c.chunk = 16;
    c.decay = decay, c.initial = true, c.seed = 370;
    const LinearInputs in(c);
    ThreadPool pool(2);
    for (LinearAlgorithm a : kForms) {
      const auto one = linear::simple_gla(in.q, in.k, in.v, in.gla_options(a));
      const auto two = linear::simple_gla(in.q, in.k, in.v, in.gla_options(a, pool.device()));
      EXPECT_TRUE(testing::results_bitwise_equal(two, one, std::string(form_name(a)) + " 2 threads"));
    }
  }
}

// final_state may be the very buffer of initial_state (in-place carry between calls).
TEST(SimpleGlaTest, FinalStateMayAliasInitialState) {
  LinearCase c;
  c.batch = 2, c.length = 19, c.heads = 2, c.key_dim = 6, c.value_dim = 18, c.chunk = 8;
  c.decay = Decay::per_token, c.initial = true, c.seed = 380;
  const LinearInputs in(c);
  for (LinearAlgorithm a : kForms) {
    const auto expected = linear::simple_gla(in.q, in.k, in.v, in.gla_options(a));
    Tensor<float, 4> state = in.h0, out(c.batch, c.length, c.heads, c.value_dim);
    auto o = in.gla_options(a);
    o.initial_state.emplace(state.data(), state.dimensions());
    TensorView<float, 4> sv(state.data(), state.dimensions()), ov(out.data(), out.dimensions());
    linear::simple_gla(in.q, in.k, in.v, o, ov, &sv);
    EXPECT_TRUE(testing::bitwise_equal(out, expected.out, std::string(form_name(a)) + " out"));
    EXPECT_TRUE(testing::bitwise_equal(state, expected.final_state, std::string(form_name(a)) + " state in place"));
  }
}

// scale defaults to 1/sqrt(K) (fla) in the op, the step and the oracle; an explicit scale is used as is.
TEST(SimpleGlaTest, ScaleDefaultsToInverseSqrtK) {
  LinearCase c;
  c.batch = 1, c.length = 9, c.heads = 2, c.key_dim = 25, c.value_dim = 8, c.decay = Decay::per_head, c.seed = 390;
  const LinearInputs in(c);
  auto o = in.gla_options();
  const auto by_default = linear::simple_gla(in.q, in.k, in.v, o);
  o.scale = 0.2f;  // 1/sqrt(25)
  EXPECT_TRUE(testing::results_bitwise_equal(linear::simple_gla(in.q, in.k, in.v, o), by_default, "scale 0.2"));
  EXPECT_TRUE(testing::results_close(by_default, ref::simple_gla<double>(in.q, in.k, in.v, o), "default vs oracle 0.2"));
  o.scale.reset();
  EXPECT_TRUE(testing::results_close(by_default, ref::simple_gla<double>(in.q, in.k, in.v, o), "default vs oracle default"));
  o.scale = 3.0f;
  EXPECT_TRUE(testing::results_close(linear::simple_gla(in.q, in.k, in.v, o), ref::simple_gla<double>(in.q, in.k, in.v, o),
                                     "scale 3"));
  Tensor<float, 4> s1(in.h0.dimensions()), s2(in.h0.dimensions());
  s1.setZero(), s2.setZero();
  const Tensor<float, 4> by_default_steps = run_steps(in, s1, 0, c.length);
  const Tensor<float, 4> explicit_steps = run_steps(in, s2, 0, c.length, 0.2f);
  EXPECT_TRUE(testing::bitwise_equal(by_default_steps, explicit_steps, "step default scale"));
}

// A hand-computed case (K = V = 1, one head): o_t = scale·Σ_s exp(Σ_{u=s+1..t} g_u) q_t k_s v_s.
TEST(SimpleGlaTest, OracleMatchesHandComputedValues) {
  Tensor<float, 4> q(1, 3, 1, 1), k(1, 3, 1, 1), v(1, 3, 1, 1), h0(1, 1, 1, 1);
  Tensor<float, 3> g(1, 3, 1);
  q.setValues({{{{1.f}}, {{2.f}}, {{-1.f}}}});
  k.setValues({{{{0.5f}}, {{1.f}}, {{2.f}}}});
  v.setValues({{{{2.f}}, {{-1.f}}, {{3.f}}}});
  g.setValues({{{std::log(0.5f)}, {std::log(0.25f)}, {std::log(0.5f)}}});
  h0.setValues({{{{4.f}}}});
  linear::SimpleGlaOptions o;
  o.g.emplace(g.data(), g.dimensions());
  o.initial_state.emplace(h0.data(), h0.dimensions());
  o.scale = 1.f;
  // S_0 = 0.5·4 + 0.5·2 = 3, o_0 = 3; S_1 = 0.25·3 + 1·(-1) = -0.25, o_1 = -0.5;
  // S_2 = 0.5·(-0.25) + 2·3 = 5.875, o_2 = -5.875.
  const auto r = ref::simple_gla<double>(q, k, v, o);
  EXPECT_DOUBLE_EQ(r.out(0, 0, 0, 0), 3.0);
  EXPECT_DOUBLE_EQ(r.out(0, 1, 0, 0), -0.5);
  EXPECT_DOUBLE_EQ(r.out(0, 2, 0, 0), -5.875);
  EXPECT_DOUBLE_EQ(r.final_state(0, 0, 0, 0), 5.875);
  for (LinearAlgorithm a : kForms) {
    o.algorithm = a;
    EXPECT_TRUE(testing::results_close(linear::simple_gla(q, k, v, o), r, std::string(form_name(a)) + " hand"));
  }
}

// ---- bad input: every rule throws tokenmix::Error naming the op, the argument and the shape ----

TEST(SimpleGlaTest, RejectsBadInputWithClearErrors) {
  const Index Bt = 2, L = 6, H = 3, K = 4, V = 5;
  LinearCase c;
  c.batch = Bt, c.length = L, c.heads = H, c.key_dim = K, c.value_dim = V, c.seed = 400;
  const LinearInputs in(c);
  using Opt = linear::SimpleGlaOptions;
  auto expect_both = [&](const Tensor<float, 4>& q, const Tensor<float, 4>& k, const Tensor<float, 4>& v, const Opt& o,
                         const std::string& fragment) {
    EXPECT_TRUE(testing::throws_error_mentioning([&] { linear::simple_gla(q, k, v, o); }, "simple_gla", fragment));
    EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::simple_gla<double>(q, k, v, o); }, "ref::simple_gla", fragment));
  };
  const Opt none;
  expect_both(Tensor<float, 4>(Bt, L, 0, K), Tensor<float, 4>(Bt, L, 0, K), Tensor<float, 4>(Bt, L, 0, V), none,
              "expected H, K and V >= 1");
  expect_both(Tensor<float, 4>(Bt, L, H, 0), Tensor<float, 4>(Bt, L, H, 0), in.v, none, "expected H, K and V >= 1");
  expect_both(in.q, in.k, Tensor<float, 4>(Bt, L, H, 0), none, "expected H, K and V >= 1");
  expect_both(in.q, Tensor<float, 4>(Bt, L, H, K + 1), in.v, none,
              "k has shape [2, 6, 3, 5], expected [B=2, L=6, H=3, K=4] like q");
  expect_both(in.q, Tensor<float, 4>(Bt, L + 1, H, K), in.v, none,
              "k has shape [2, 7, 3, 4], expected [B=2, L=6, H=3, K=4] like q");
  expect_both(in.q, in.k, Tensor<float, 4>(Bt, L - 1, H, V), none,
              "v has shape [2, 5, 3, 5], expected [B=2, L=6, H=3, V=5] (the batch, length and heads of q)");
  expect_both(in.q, in.k, Tensor<float, 4>(Bt + 1, L, H, V), none,
              "v has shape [3, 6, 3, 5], expected [B=2, L=6, H=3, V=5] (the batch, length and heads of q)");

  const Tensor<float, 3> bad_g(Bt, L, H + 1);
  const Tensor<float, 1> bad_gamma(H + 1);
  const Tensor<float, 4> bad_state(Bt, H, K, V + 1);
  Opt o;
  o.g.emplace(in.g.data(), in.g.dimensions()), o.g_gamma.emplace(in.g_gamma.data(), in.g_gamma.dimensions());
  expect_both(in.q, in.k, in.v, o, "pass g (per token) or g_gamma (per head), not both");
  o = none, o.g.emplace(bad_g.data(), bad_g.dimensions());
  expect_both(in.q, in.k, in.v, o, "g has shape [2, 6, 4], expected [B=2, L=6, H=3]");
  o = none, o.g_gamma.emplace(bad_gamma.data(), bad_gamma.dimensions());
  expect_both(in.q, in.k, in.v, o, "g_gamma has shape [4], expected [H=3]");
  o = none, o.initial_state.emplace(bad_state.data(), bad_state.dimensions());
  expect_both(in.q, in.k, in.v, o, "initial_state has shape [2, 3, 4, 6], expected [B=2, H=3, K=4, V=5]");
  o = none, o.chunk_size = -1;
  expect_both(in.q, in.k, in.v, o, "chunk_size is -1, expected >= 0 (0: the default)");
  o = none, o.scale = std::numeric_limits<float>::quiet_NaN();
  expect_both(in.q, in.k, in.v, o, "scale is nan, expected a finite number");
  o = none, o.scale = std::numeric_limits<float>::infinity();
  expect_both(in.q, in.k, in.v, o, "scale is inf, expected a finite number");

  // View-based call: output shapes and outputs overlapping inputs.
  Tensor<float, 4> out(Bt, L, H, V), bad_out(Bt, L, H, V + 1), last(Bt, H, K, V), bad_last(Bt, H, K + 1, V);
  TensorView<float, 4> out_v(out.data(), out.dimensions()), bad_out_v(bad_out.data(), bad_out.dimensions());
  TensorView<float, 4> last_v(last.data(), last.dimensions()), bad_last_v(bad_last.data(), bad_last.dimensions());
  auto view_call = [&](const Tensor<float, 4>& q, const Tensor<float, 4>& k, const Tensor<float, 4>& v,
                       TensorView<float, 4> ov, TensorView<float, 4>* sv, const std::string& fragment) {
    EXPECT_TRUE(testing::throws_error_mentioning([&] { linear::simple_gla(q, k, v, none, ov, sv); }, "simple_gla",
                                                 fragment));
  };
  view_call(in.q, in.k, in.v, bad_out_v, &last_v, "out has shape [2, 6, 3, 6], expected [B=2, L=6, H=3, V=5]");
  view_call(in.q, in.k, in.v, out_v, &bad_last_v, "final_state has shape [2, 3, 5, 5], expected [B=2, H=3, K=4, V=5]");
  // out over q, k or v (views into one buffer: q [0, 144), k [200, 344), v [400, 580); out is 180 floats).
  std::vector<float> buf(600, 0.25f);
  const Eigen::array<Index, 4> qk_dims{Bt, L, H, K}, v_dims{Bt, L, H, V};
  const ConstTensorView<float, 4> qv(buf.data(), qk_dims), kv(buf.data() + 200, qk_dims), vv(buf.data() + 400, v_dims);
  for (Index at : {20, 150, 420}) {
    EXPECT_TRUE(testing::throws_error_mentioning(
        [&] { linear::simple_gla(qv, kv, vv, none, TensorView<float, 4>(buf.data() + at, v_dims), &last_v); },
        "simple_gla", "out must not overlap the inputs"))
        << "out at " << at;
  }
}

// Outputs that overlap other arguments and are not rejected (see the report): final_state over out
// (written after out, then out is scaled in place: both come back wrong), out over g / g_gamma /
// initial_state. ssm::ssd rejects the first with "final_state must not overlap out".
TEST(SimpleGlaTest, RejectsFinalStateOverlappingOutAndOutOverlappingOptions) {
  const Index Bt = 1, L = 4, H = 2, K = 3, V = 5;
  LinearCase c;
  c.batch = Bt, c.length = L, c.heads = H, c.key_dim = K, c.value_dim = V, c.decay = Decay::per_token, c.seed = 410;
  const LinearInputs in(c);
  Tensor<float, 4> buffer(Bt, L, H, V);  // 40 floats; the state [1, 2, 3, 5] is 30
  TensorView<float, 4> out_v(buffer.data(), buffer.dimensions());
  TensorView<float, 4> state_over_out(buffer.data() + 5, Eigen::array<Index, 4>{Bt, H, K, V});
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { linear::simple_gla(in.q, in.k, in.v, in.gla_options(), out_v, &state_over_out); }, "simple_gla",
      "final_state must not overlap out"));
  Tensor<float, 4> g_buffer(Bt, L, H, V);
  g_buffer.setConstant(-0.5f);
  linear::SimpleGlaOptions o;
  o.g.emplace(g_buffer.data(), Eigen::array<Index, 3>{Bt, L, H});
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { linear::simple_gla(in.q, in.k, in.v, o, TensorView<float, 4>(g_buffer.data(), buffer.dimensions()), nullptr); },
      "simple_gla", "must not overlap"));
}

TEST(SimpleGlaTest, StepRejectsBadInputWithClearErrors) {
  const Index Bt = 2, H = 3, K = 4, V = 5;
  Rng rng(420);
  Tensor<float, 4> state = testing::random_normal<4>({Bt, H, K, V}, 0.f, 1.f, rng);
  const Tensor<float, 3> q = testing::random_normal<3>({Bt, H, K}, 0.f, 1.f, rng), k = q;
  const Tensor<float, 3> v = testing::random_normal<3>({Bt, H, V}, 0.f, 1.f, rng);
  const Tensor<float, 2> g(Bt, H), bad_g(Bt, H + 1);
  const Tensor<float, 1> gamma(H), bad_gamma(H - 1);
  TensorView<float, 4> sv(state.data(), state.dimensions());
  using Opt = linear::LinearStepOptions;
  auto expect = [&](TensorView<float, 4> st, const Tensor<float, 3>& qq, const Tensor<float, 3>& kk,
                    const Tensor<float, 3>& vv, const Opt& o, const std::string& fragment) {
    EXPECT_TRUE(testing::throws_error_mentioning([&] { linear::simple_gla_step(st, qq, kk, vv, o); }, "simple_gla_step",
                                                 fragment));
  };
  const Opt none;
  expect(sv, Tensor<float, 3>(Bt, H, 0), Tensor<float, 3>(Bt, H, 0), v, none,
         "expected [B, H, K] and [B, H, V] with H, K, V >= 1");
  expect(sv, q, k, Tensor<float, 3>(Bt, H, 0), none, "expected [B, H, K] and [B, H, V] with H, K, V >= 1");
  expect(sv, q, Tensor<float, 3>(Bt, H, K + 1), v, none, "k has shape [2, 3, 5], expected [B=2, H=3, K=4] like q");
  expect(sv, q, k, Tensor<float, 3>(Bt, H + 1, V), none, "v has shape [2, 4, 5], expected [B=2, H=3, V=5]");
  Tensor<float, 4> bad_state(Bt, H, K, V + 1);
  expect(TensorView<float, 4>(bad_state.data(), bad_state.dimensions()), q, k, v, none,
         "state has shape [2, 3, 4, 6], expected [B=2, H=3, K=4, V=5]");
  Opt o;
  o.g.emplace(g.data(), g.dimensions()), o.g_gamma.emplace(gamma.data(), gamma.dimensions());
  expect(sv, q, k, v, o, "pass g (per token) or g_gamma (per head), not both");
  o = none, o.g.emplace(bad_g.data(), bad_g.dimensions());
  expect(sv, q, k, v, o, "g has shape [2, 4], expected [B=2, H=3]");
  o = none, o.g_gamma.emplace(bad_gamma.data(), bad_gamma.dimensions());
  expect(sv, q, k, v, o, "g_gamma has shape [2], expected [H=3]");
  o = none, o.scale = std::numeric_limits<float>::quiet_NaN();
  expect(sv, q, k, v, o, "scale is nan, expected a finite number");
  // View-based: out shape and out overlapping the state or the inputs.
  Tensor<float, 3> bad_out(Bt, H, V + 1), out(Bt, H, V);
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { linear::simple_gla_step(sv, q, k, v, none, TensorView<float, 3>(bad_out.data(), bad_out.dimensions())); },
      "simple_gla_step", "out has shape [2, 3, 6], expected [B=2, H=3, V=5]"));
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { linear::simple_gla_step(sv, q, k, v, none, TensorView<float, 3>(state.data(), out.dimensions())); },
      "simple_gla_step", "out must not overlap the inputs"));
  Tensor<float, 3> v_copy = v;
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { linear::simple_gla_step(sv, q, k, v_copy, none, TensorView<float, 3>(v_copy.data(), out.dimensions())); },
      "simple_gla_step", "out must not overlap the inputs"));
}

// The state updated in place while q / k / v are read: a state over the inputs is not rejected
// (ssm::ssd_state_update rejects it with "state must not overlap the inputs"); see the report.
TEST(SimpleGlaTest, StepRejectsStateOverlappingInputs) {
  const Index Bt = 1, H = 2, K = 4, V = 4;
  Tensor<float, 4> buffer(Bt, H, K, V);
  buffer.setConstant(0.5f);
  const Tensor<float, 3> k(Bt, H, K), v(Bt, H, V);
  const ConstTensorView<float, 3> q_over_state(buffer.data(), Eigen::array<Index, 3>{Bt, H, K});
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { linear::simple_gla_step(TensorView<float, 4>(buffer.data(), buffer.dimensions()), q_over_state, k, v); },
      "simple_gla_step", "state must not overlap the inputs"));
}

}  // namespace
}  // namespace simple_gla_cases
}  // namespace tokenmix
