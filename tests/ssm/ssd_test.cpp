// ssm::ssd (chunked and recurrent forms, every representative arch) and ssm::ssd_state_update against
// ref::ssd / ref::ssd_state_update (double), plus properties (chunked == recurrent, token-by-token
// decode == recurrent prefill bitwise, state carry across split calls, packed sequences == separate
// calls, thread-count invariance, L = 0, in-place state) and every bad-input rule (op and oracle).

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "support/archs.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/random.hpp"
#include "tokenmix/reference/ssd.hpp"
#include "tokenmix/ssm/ssd.hpp"

namespace tokenmix {
namespace {

using testing::Rng;

// Tolerances: tests/support/tolerance.hpp (ssd_recurrent, ssd_chunked, ssd_state).
constexpr testing::Tolerance kSsdRecurrentTol = testing::tolerance::ssd_recurrent;
constexpr testing::Tolerance kSsdChunkedTol = testing::tolerance::ssd_chunked;
constexpr testing::Tolerance kSsdStateTol = testing::tolerance::ssd_state;

enum class Skip { none, per_head, per_channel };

struct SsdCase {
  Index batch = 1, length = 1, heads = 1, head_dim = 1, state = 1, groups = 1, chunk = 0;
  Skip skip = Skip::none;
  bool gate = false, bias = false, softplus = false, clamp = false, initial = false;
  int sequences = 0;  // 0: no seq_idx; k > 0: seq_idx with boundaries at boundaries[] (or random)
  std::vector<Index> boundaries;
  std::uint64_t seed = 0;

  std::string describe() const {
    std::ostringstream os;
    os << "B=" << batch << " L=" << length << " H=" << heads << " P=" << head_dim << " N=" << state << " G=" << groups
       << " chunk=" << chunk << " D=" << (skip == Skip::none ? "none" : skip == Skip::per_head ? "[H]" : "[H*P]")
       << " z=" << gate << " dt_bias=" << bias << " softplus=" << softplus << " clamp=" << clamp
       << " initial_state=" << initial << " seq_idx boundaries={";
    for (Index b : boundaries) os << b << ",";
    os << "} seed=" << seed;
    return os.str();
  }
};

// Inputs in Mamba-2's ranges (A = -U(1, 16), dt ~ 0.001..0.2 after softplus / bias).
struct SsdInputs {
  Tensor<float, 4> x, z, B, C, h0;  // [B, L, H, P] x2, [B, L, G, N] x2, [B, H, P, N]
  Tensor<float, 3> dt;              // [B, L, H]
  Tensor<float, 1> A, D, bias;      // [H], [H] or [H*P], [H]
  Tensor<std::int32_t, 2> seq;      // [B, L]
  SsdCase c;

  explicit SsdInputs(const SsdCase& sc) : c(sc) {
    Rng rng(c.seed);
    const Index Bt = c.batch, L = c.length, H = c.heads, P = c.head_dim, N = c.state, G = c.groups;
    x = testing::random_normal<4>({Bt, L, H, P}, 0.f, 1.f, rng);
    dt = c.softplus ? testing::random_normal<3>({Bt, L, H}, 0.f, 1.f, rng)
                    : testing::random_uniform<3>({Bt, L, H}, 0.001f, 0.2f, rng);
    A = testing::random_uniform<1>({H}, -16.f, -1.f, rng);
    B = testing::random_normal<4>({Bt, L, G, N}, 0.f, 1.f, rng);
    C = testing::random_normal<4>({Bt, L, G, N}, 0.f, 1.f, rng);
    D = testing::random_uniform<1>({c.skip == Skip::per_channel ? H * P : H}, 0.5f, 1.5f, rng);
    bias = c.softplus ? testing::random_uniform<1>({H}, -6.9f, -2.2f, rng) : testing::random_uniform<1>({H}, 0.f, 0.05f, rng);
    z = testing::random_normal<4>({Bt, L, H, P}, 0.f, 1.f, rng);
    h0 = testing::random_normal<4>({Bt, H, P, N}, 0.f, 1.f, rng);
    seq = Tensor<std::int32_t, 2>(Bt, L);
    for (Index b = 0; b < Bt; ++b) {
      std::int32_t id = 3 * static_cast<std::int32_t>(b);  // ids need not start at 0 nor be consecutive
      for (Index t = 0; t < L; ++t) {
        for (Index bd : c.boundaries)
          if (bd == t && t > 0) id += 1 + static_cast<std::int32_t>(t % 2);
        seq(b, t) = id;
      }
    }
  }
  ssm::SsdOptions options(ssm::SsdAlgorithm algorithm = ssm::SsdAlgorithm::auto_select,
                          const Eigen::ThreadPoolDevice* device = nullptr) const {
    ssm::SsdOptions o;
    if (c.skip != Skip::none) o.D = D;
    if (c.gate) o.z = z;
    if (c.bias) o.dt_bias = bias;
    o.dt_softplus = c.softplus;
    if (c.clamp) o.dt_min = 0.01f, o.dt_max = 0.05f;
    if (c.initial) o.initial_state = h0;
    if (c.sequences > 0) o.seq_idx = seq;
    o.algorithm = algorithm;
    o.chunk_size = c.chunk;
    o.device = device;
    return o;
  }
};

// SSD_TEST_REPORT=1 prints the worst absolute error and NMSE of every comparison (how the
// tolerances above were measured).
void report(const char* what, const float* a, const float* e, Index n) {
  static const bool on = std::getenv("SSD_TEST_REPORT") != nullptr;
  if (!on) return;
  double worst_small = 0, worst_rel = 0, err2 = 0, ref2 = 0, mag = 0;  // |e| < 1: absolute; else relative
  for (Index i = 0; i < n; ++i) {
    const double d = std::fabs(double(a[i]) - double(e[i])), m = std::fabs(double(e[i]));
    if (m < 1) worst_small = std::max(worst_small, d);
    else worst_rel = std::max(worst_rel, d / m);
    err2 += d * d, ref2 += m * m, mag = std::max(mag, m);
  }
  std::printf("SSD_TEST_REPORT %s worst_abs(|ref|<1) %.3g worst_rel(|ref|>=1) %.3g nmse %.3g max_ref %.3g\n", what,
              worst_small, worst_rel, ref2 > 0 ? err2 / ref2 : err2, mag);
}

template <class Arch>
::testing::AssertionResult matches_oracle(const SsdCase& c, ssm::SsdAlgorithm algorithm) {
  const SsdInputs in(c);
  const auto expected = ref::ssd<double>(in.x, in.dt, in.A, in.B, in.C, in.options());
  const auto actual = ssm::ssd<Arch>(in.x, in.dt, in.A, in.B, in.C, in.options(algorithm));
  const bool chunked = algorithm == ssm::SsdAlgorithm::chunked;
  const std::string where =
      std::string(Arch::name()) + (chunked ? " chunked " : " recurrent ") + c.describe();
  report(chunked ? "chunked_out" : "recurrent_out", actual.out.data(), expected.out.data(), expected.out.size());
  report("final_state", actual.final_state.data(), expected.final_state.data(), expected.final_state.size());
  auto out_ok = testing::all_close(actual.out, expected.out, chunked ? kSsdChunkedTol : kSsdRecurrentTol, where + " out");
  if (!out_ok) return out_ok;
  return testing::all_close(actual.final_state, expected.final_state, kSsdStateTol, where + " final_state");
}

template <class Arch>
::testing::AssertionResult both_forms_match_oracle(const SsdCase& c) {
  auto r = matches_oracle<Arch>(c, ssm::SsdAlgorithm::recurrent);
  if (!r) return r;
  return matches_oracle<Arch>(c, ssm::SsdAlgorithm::chunked);
}

template <class Arch>
class SsdArchTest : public ::testing::Test {};
TYPED_TEST_SUITE(SsdArchTest, testing::RepresentativeArchs, testing::ArchNames);

// Head dims and state sizes around the vector width, G = 1 and G > 1, every option on and off.
TYPED_TEST(SsdArchTest, MatchesOracleAroundVectorWidth) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  const Index W = static_cast<Index>(simd::lanes<TypeParam>);
  std::uint64_t seed = 100;
  int options = 0;
  for (Index head_dim : {Index(1), W - 1, W, W + 1, 3 * W + 2})
    for (Index state : {Index(1), W - 1, W + 1, 2 * W, Index(33)})
      for (Index groups : {1, 2}) {
        if (head_dim == 0 || state == 0) continue;
        SsdCase c;
        c.batch = 2, c.length = 23, c.heads = 4, c.head_dim = head_dim, c.state = state, c.groups = groups;
        c.chunk = 6;  // does not divide L
        options = (options + 7) % 64;
        c.skip = static_cast<Skip>(options % 3), c.gate = options & 2, c.bias = options & 4, c.softplus = options & 8;
        c.clamp = options & 16, c.initial = options & 32;
        c.seed = seed++;
        EXPECT_TRUE(both_forms_match_oracle<TypeParam>(c));
      }
}

// Odd lengths, chunk sizes that do / do not divide L, L < chunk, chunk 1, the default chunk.
TYPED_TEST(SsdArchTest, MatchesOracleForChunkSizes) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  std::uint64_t seed = 200;
  for (Index length : {1, 7, 64, 97})
    for (Index chunk : {0, 1, 5, 16, 64, 200}) {
      SsdCase c;
      c.batch = 1, c.length = length, c.heads = 6, c.head_dim = 20, c.state = 24, c.groups = 3, c.chunk = chunk;
      c.skip = Skip::per_head, c.gate = c.bias = c.softplus = c.initial = true;
      c.seed = seed++;
      EXPECT_TRUE(matches_oracle<TypeParam>(c, ssm::SsdAlgorithm::chunked));
    }
}

// Packed sequences: boundaries inside a chunk, at a chunk edge, at t = 1, adjacent boundaries, and a
// boundary on the very last token.
TYPED_TEST(SsdArchTest, MatchesOracleWithPackedSequences) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  std::uint64_t seed = 300;
  const std::vector<std::vector<Index>> layouts = {
      {13}, {16}, {8, 24}, {1, 2, 3}, {13, 16, 17, 39}, {5, 6, 31, 32, 33}, {}};
  for (const auto& boundaries : layouts)
    for (bool initial : {false, true}) {
      SsdCase c;
      c.batch = 2, c.length = 40, c.heads = 4, c.head_dim = 18, c.state = 20, c.groups = 2, c.chunk = 8;
      c.skip = Skip::per_channel, c.gate = c.bias = c.softplus = true, c.initial = initial;
      c.sequences = 1, c.boundaries = boundaries, c.seed = seed++;
      EXPECT_TRUE(both_forms_match_oracle<TypeParam>(c));
    }
}

// A seeded random sweep of shapes and options.
TYPED_TEST(SsdArchTest, MatchesOracleOnRandomSweep) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  Rng rng(2025);
  for (int i = 0; i < 30; ++i) {
    SsdCase c;
    c.batch = testing::random_index(1, 2, rng);
    c.length = testing::random_index(0, 90, rng);
    c.groups = testing::random_index(1, 3, rng);
    c.heads = c.groups * testing::random_index(1, 3, rng);
    c.head_dim = testing::random_index(1, 40, rng);
    c.state = testing::random_index(1, 40, rng);
    c.chunk = testing::random_index(0, 40, rng);
    c.skip = static_cast<Skip>(testing::random_index(0, 2, rng));
    c.gate = testing::random_index(0, 1, rng), c.bias = testing::random_index(0, 1, rng);
    c.softplus = testing::random_index(0, 1, rng), c.clamp = testing::random_index(0, 1, rng);
    c.initial = testing::random_index(0, 1, rng);
    if (testing::random_index(0, 1, rng) && c.length > 1) {
      c.sequences = 1;
      for (int k = 0; k < 3; ++k) c.boundaries.push_back(testing::random_index(1, c.length - 1, rng));
    }
    c.seed = 7000 + static_cast<std::uint64_t>(i);
    EXPECT_TRUE(both_forms_match_oracle<TypeParam>(c));
  }
}

// Mamba-2's real head shape (P = 64, N = 128) with several chunks.
TYPED_TEST(SsdArchTest, MatchesOracleAtMamba2HeadShape) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  SsdCase c;
  c.batch = 1, c.length = 150, c.heads = 2, c.head_dim = 64, c.state = 128, c.groups = 1;
  c.skip = Skip::per_head, c.gate = c.bias = c.softplus = c.initial = true, c.seed = 11;
  EXPECT_TRUE(both_forms_match_oracle<TypeParam>(c));
}

// Feeding the sequence token by token through ssd_state_update gives bitwise the recurrent form's
// outputs and final state (one kernel), and matches the step oracle.
TYPED_TEST(SsdArchTest, StepByStepDecodeEqualsRecurrentPrefillBitwise) {
  TOKENMIX_SKIP_IF_UNAVAILABLE(TypeParam);
  for (Index state : {Index(16), Index(19)}) {  // in place in the state / through the padded copy
    SsdCase c;
    c.batch = 2, c.length = 9, c.heads = 4, c.head_dim = 21, c.state = state, c.groups = 2;
    c.skip = Skip::per_channel, c.gate = c.bias = c.softplus = c.clamp = c.initial = true, c.seed = 400 + state;
    const SsdInputs in(c);
    const auto prefill = ssm::ssd<TypeParam>(in.x, in.dt, in.A, in.B, in.C, in.options(ssm::SsdAlgorithm::recurrent));
    Tensor<float, 4> st = in.h0, st_ref = in.h0;
    const Index Bt = c.batch, H = c.heads, P = c.head_dim, N = c.state, G = c.groups;
    for (Index t = 0; t < c.length; ++t) {
      Tensor<float, 3> x(Bt, H, P), B(Bt, G, N), C(Bt, G, N);
      Tensor<float, 4> z(Bt, 1, H, P);
      Tensor<float, 2> dt(Bt, H);
      for (Index b = 0; b < Bt; ++b) {
        for (Index h = 0; h < H; ++h) {
          dt(b, h) = in.dt(b, t, h);
          for (Index p = 0; p < P; ++p) x(b, h, p) = in.x(b, t, h, p), z(b, 0, h, p) = in.z(b, t, h, p);
        }
        for (Index g = 0; g < G; ++g)
          for (Index n = 0; n < N; ++n) B(b, g, n) = in.B(b, t, g, n), C(b, g, n) = in.C(b, t, g, n);
      }
      ssm::SsdOptions o = in.options();
      o.initial_state.reset(), o.z.emplace(z);
      const Tensor<float, 3> y = ssm::ssd_state_update<TypeParam>(st, x, dt, in.A, B, C, o);
      const Tensor<float, 3> y_ref = ref::ssd_state_update<double>(st_ref, x, dt, in.A, B, C, o);
      for (Index b = 0; b < Bt; ++b)
        for (Index h = 0; h < H; ++h)
          for (Index p = 0; p < P; ++p) {
            const float want = prefill.out(b, t, h, p);
            ASSERT_EQ(std::memcmp(&y(b, h, p), &want, sizeof(float)), 0)
                << "t=" << t << " [" << b << ", " << h << ", " << p << "]: " << y(b, h, p) << " vs " << want << " "
                << c.describe();
          }
      EXPECT_TRUE(testing::all_close(y, y_ref, kSsdRecurrentTol, "step oracle t=" + std::to_string(t)));
    }
    EXPECT_TRUE(testing::bitwise_equal(st, prefill.final_state, "state after the last step"));
    EXPECT_TRUE(testing::all_close(st_ref, prefill.final_state, kSsdStateTol, "oracle state after the last step"));
  }
}

class SsdTest : public ::testing::Test {
 protected:
  static SsdCase mamba_case(Index length, std::uint64_t seed) {
    SsdCase c;
    c.batch = 2, c.length = length, c.heads = 4, c.head_dim = 32, c.state = 24, c.groups = 2, c.chunk = 8;
    c.skip = Skip::per_head, c.gate = c.bias = c.softplus = true, c.seed = seed;
    return c;
  }
};

// The two forms agree with each other (not only each with the oracle).
TEST_F(SsdTest, ChunkedEqualsRecurrent) {
  SsdCase c = mamba_case(45, 500);
  c.initial = true, c.sequences = 1, c.boundaries = {8, 20};
  const SsdInputs in(c);
  const auto rec = ssm::ssd(in.x, in.dt, in.A, in.B, in.C, in.options(ssm::SsdAlgorithm::recurrent));
  const auto chk = ssm::ssd(in.x, in.dt, in.A, in.B, in.C, in.options(ssm::SsdAlgorithm::chunked));
  EXPECT_TRUE(testing::all_close(chk.out, rec.out, kSsdChunkedTol, "chunked vs recurrent out"));
  EXPECT_TRUE(testing::all_close(chk.final_state, rec.final_state, kSsdStateTol, "chunked vs recurrent state"));
}

// Token slices [from, to) of [B, L, ...] tensors.
template <int R, class T>
Tensor<T, R> slice_tokens(const Tensor<T, R>& t, Index from, Index to) {
  Eigen::array<Index, R> off{}, ext{};
  for (int i = 0; i < R; ++i) ext[i] = t.dimension(i);
  off[1] = from, ext[1] = to - from;
  return Tensor<T, R>(t.slice(off, ext));
}

// ssd(x1 ‖ x2) == ssd(x2, initial_state = ssd(x1).final_state), for splits at the ends, inside a
// chunk and at a chunk edge: bitwise for the recurrent form, within tolerance for the chunked one
// (its chunks shift with the split).
TEST_F(SsdTest, StateCarriesAcrossSplitSequences) {
  const Index L = 41;
  const SsdInputs in(mamba_case(L, 501));
  for (auto algorithm : {ssm::SsdAlgorithm::recurrent, ssm::SsdAlgorithm::chunked}) {
    const bool chunked = algorithm == ssm::SsdAlgorithm::chunked;
    const auto whole = ssm::ssd(in.x, in.dt, in.A, in.B, in.C, in.options(algorithm));
    for (Index split : {Index(0), Index(1), Index(13), Index(16), L}) {
      auto run = [&](Index from, Index to, const std::optional<Tensor<float, 4>>& h0) {
        const Tensor<float, 4> x = slice_tokens<4>(in.x, from, to), z = slice_tokens<4>(in.z, from, to);
        const Tensor<float, 4> B = slice_tokens<4>(in.B, from, to), C = slice_tokens<4>(in.C, from, to);
        const Tensor<float, 3> dt = slice_tokens<3>(in.dt, from, to);
        auto o = in.options(algorithm);
        o.z.emplace(z);
        if (h0) o.initial_state.emplace(*h0);
        return ssm::ssd(x, dt, in.A, B, C, o);
      };
      const auto first = run(0, split, std::nullopt);
      const auto second = run(split, L, first.final_state);
      const std::string where = std::string(chunked ? "chunked" : "recurrent") + " split at " + std::to_string(split);
      const Tensor<float, 4> tail = slice_tokens<4>(whole.out, split, L);
      if (chunked) {
        EXPECT_TRUE(testing::all_close(second.out, tail, kSsdChunkedTol, where + " out"));
        EXPECT_TRUE(testing::all_close(second.final_state, whole.final_state, kSsdStateTol, where + " state"));
      } else {
        EXPECT_TRUE(testing::bitwise_equal(second.out, tail, where + " out"));
        EXPECT_TRUE(testing::bitwise_equal(second.final_state, whole.final_state, where + " state"));
      }
    }
  }
}

// Packed sequences give the outputs of separate calls, one per sequence (the first with the
// initial state, the others from zero), and the final state of the last one.
TEST_F(SsdTest, PackedSequencesEqualSeparateCalls) {
  SsdCase c = mamba_case(37, 502);
  c.batch = 1, c.initial = true, c.sequences = 1, c.boundaries = {5, 8, 16, 30};
  const SsdInputs in(c);
  for (auto algorithm : {ssm::SsdAlgorithm::recurrent, ssm::SsdAlgorithm::chunked}) {
    const auto packed = ssm::ssd(in.x, in.dt, in.A, in.B, in.C, in.options(algorithm));
    std::vector<Index> starts = {0, 5, 8, 16, 30, c.length};
    for (std::size_t k = 0; k + 1 < starts.size(); ++k) {
      const Index from = starts[k], to = starts[k + 1];
      auto o = in.options(algorithm);
      o.seq_idx.reset();
      const Tensor<float, 4> z = slice_tokens<4>(in.z, from, to);
      o.z.emplace(z);
      if (k > 0) o.initial_state.reset();
      const auto part = ssm::ssd(slice_tokens<4>(in.x, from, to), slice_tokens<3>(in.dt, from, to), in.A,
                                 slice_tokens<4>(in.B, from, to), slice_tokens<4>(in.C, from, to), o);
      const std::string where = "sequence " + std::to_string(k);
      EXPECT_TRUE(testing::all_close(slice_tokens<4>(packed.out, from, to), part.out, kSsdChunkedTol, where));
      if (k + 2 == starts.size()) {
        EXPECT_TRUE(testing::all_close(packed.final_state, part.final_state, kSsdStateTol, where + " state"));
      }
    }
  }
}

// A NaN in the previous packed sequence does not reach the next one (the state restarts from zero):
// at a chunk edge whatever input holds it; inside a chunk (boundary 6 of the chunk [0, 8)) dt's, whose
// running sum of dt·A the chunked form restarts at each sequence start (a NaN in it once reached
// every later token of the chunk: found by a random differential run against the oracle). x, B or C
// there may leak, as ssd.hpp states.
TEST_F(SsdTest, NanDoesNotCrossSequenceBoundaries) {
  for (const Index boundary : {Index(8), Index(6)}) {
    SsdCase c = mamba_case(24, 503);
    c.batch = 1, c.sequences = 1, c.boundaries = {boundary};
    SsdInputs in(c);
    in.dt(0, 3, 1) = std::numeric_limits<float>::quiet_NaN();
    if (boundary == 8) in.x(0, 5, 1, 2) = std::numeric_limits<float>::infinity();
    for (auto algorithm : {ssm::SsdAlgorithm::recurrent, ssm::SsdAlgorithm::chunked}) {
      const auto r = ssm::ssd(in.x, in.dt, in.A, in.B, in.C, in.options(algorithm));
      for (Index t = 0; t < c.length; ++t)
        for (Index h = 0; h < c.heads; ++h)
          for (Index p = 0; p < c.head_dim; ++p) {
            const bool touched = h == 1 && t >= 3 && t < boundary;
            if (!touched) {
              ASSERT_TRUE(std::isfinite(r.out(0, t, h, p)))
                  << "boundary " << boundary << " at t=" << t << " h=" << h << " p=" << p;
            }
          }
      EXPECT_TRUE(std::isnan(r.out(0, 4, 1, 0)));
      for (Index q = 0; q < c.head_dim; ++q)
        for (Index n = 0; n < c.state; ++n)
          EXPECT_TRUE(std::isfinite(r.final_state(0, 1, q, n))) << "boundary " << boundary;
    }
  }
}

// A NaN in the initial state reaches its sequence's outputs in both forms even where the decay
// exp(dt·A) underflows to 0 in float (0·NaN is NaN; the chunked form once zeroed such rows as it
// zeroes a new sequence's: found by a random differential run against the oracle).
TEST_F(SsdTest, NanInTheCarriedStateSurvivesAnUnderflowedDecay) {
  const Index L = 2, P = 16;
  Tensor<float, 4> x(1, L, 1, P), B(1, L, 1, 1), C(1, L, 1, 1), h0(1, 1, P, 1);
  x.setConstant(1.f), B.setConstant(1.f), C.setConstant(1.f), h0.setConstant(1.f);
  h0(0, 0, 0, 0) = std::numeric_limits<float>::quiet_NaN();
  Tensor<float, 3> dt(1, L, 1);
  dt.setConstant(200.f);  // exp(200·A), A = -1: 0 in float
  Tensor<float, 1> A(1);
  A(0) = -1.f;
  for (auto algorithm : {ssm::SsdAlgorithm::recurrent, ssm::SsdAlgorithm::chunked}) {
    ssm::SsdOptions o;
    o.initial_state = ConstTensorView<float, 4>(h0);
    o.algorithm = algorithm;
    const auto r = ssm::ssd(x, dt, A, B, C, o);
    for (Index t = 0; t < L; ++t) {
      EXPECT_TRUE(std::isnan(r.out(0, t, 0, 0))) << "t=" << t;
      EXPECT_NEAR(r.out(0, t, 0, 1), 200.0f, 1e-3f) << "t=" << t;  // dt·B·x, the decayed state gone
    }
    EXPECT_TRUE(std::isnan(r.final_state(0, 0, 0, 0)));
  }
}

// Changing tokens after t (even to inf / NaN) leaves every output up to t bitwise unchanged, in
// both forms (t inside a chunk: the chunked form's causal products never read later tokens).
TEST_F(SsdTest, IsCausal) {
  const Index L = 30, t = 12;
  SsdInputs in(mamba_case(L, 511));
  for (auto algorithm : {ssm::SsdAlgorithm::recurrent, ssm::SsdAlgorithm::chunked}) {
    SsdInputs changed = in;
    const auto before = ssm::ssd(in.x, in.dt, in.A, in.B, in.C, in.options(algorithm));
    for (Index b = 0; b < in.c.batch; ++b)
      for (Index s = t + 1; s < L; ++s) {
        for (Index h = 0; h < in.c.heads; ++h) {
          changed.dt(b, s, h) = s == t + 2 ? std::numeric_limits<float>::quiet_NaN() : changed.dt(b, s, h) + 1.f;
          for (Index p = 0; p < in.c.head_dim; ++p)
            changed.x(b, s, h, p) = s == t + 1 ? std::numeric_limits<float>::infinity() : -changed.x(b, s, h, p);
        }
        for (Index n = 0; n < in.c.state; ++n) changed.B(b, s, 0, n) = std::numeric_limits<float>::quiet_NaN();
      }
    const auto after = ssm::ssd(changed.x, changed.dt, changed.A, changed.B, changed.C, changed.options(algorithm));
    EXPECT_TRUE(testing::bitwise_equal(slice_tokens<4>(after.out, 0, t + 1), slice_tokens<4>(before.out, 0, t + 1),
                                       "outputs up to t"));
  }
}

TEST_F(SsdTest, ResultsAreBitwiseIdenticalForAnyThreadCount) {
  SsdCase c = mamba_case(30, 504);
  c.heads = 6, c.groups = 3, c.initial = true, c.sequences = 1, c.boundaries = {11};
  const SsdInputs in(c);
  for (auto algorithm : {ssm::SsdAlgorithm::recurrent, ssm::SsdAlgorithm::chunked}) {
    const auto single = ssm::ssd(in.x, in.dt, in.A, in.B, in.C, in.options(algorithm));
    for (int threads : {2, 3, 5}) {
      ThreadPool pool(threads);
      const auto multi = ssm::ssd(in.x, in.dt, in.A, in.B, in.C, in.options(algorithm, pool.device()));
      const std::string where = std::to_string(threads) + " threads";
      EXPECT_TRUE(testing::bitwise_equal(multi.out, single.out, where + " out"));
      EXPECT_TRUE(testing::bitwise_equal(multi.final_state, single.final_state, where + " state"));
    }
  }
  // The step too.
  Tensor<float, 4> st1 = in.h0, st2 = in.h0;
  const Tensor<float, 3> x = slice_tokens<4>(in.x, 0, 1).reshape(Eigen::array<Index, 3>{2, 6, 32});
  const Tensor<float, 3> B = slice_tokens<4>(in.B, 0, 1).reshape(Eigen::array<Index, 3>{2, 3, 24});
  const Tensor<float, 3> C = slice_tokens<4>(in.C, 0, 1).reshape(Eigen::array<Index, 3>{2, 3, 24});
  const Tensor<float, 2> dt = slice_tokens<3>(in.dt, 0, 1).reshape(Eigen::array<Index, 2>{2, 6});
  ThreadPool pool(3);
  ssm::SsdOptions o;
  const auto y1 = ssm::ssd_state_update(st1, x, dt, in.A, B, C, o);
  o.device = pool.device();
  const auto y2 = ssm::ssd_state_update(st2, x, dt, in.A, B, C, o);
  EXPECT_TRUE(testing::bitwise_equal(y2, y1, "step out"));
  EXPECT_TRUE(testing::bitwise_equal(st2, st1, "step state"));
}

TEST_F(SsdTest, EmptySequenceReturnsInitialState) {
  SsdCase c = mamba_case(0, 505);
  c.initial = true;
  const SsdInputs in(c);
  for (auto algorithm : {ssm::SsdAlgorithm::recurrent, ssm::SsdAlgorithm::chunked}) {
    const auto r = ssm::ssd(in.x, in.dt, in.A, in.B, in.C, in.options(algorithm));
    EXPECT_EQ(r.out.size(), 0);
    EXPECT_TRUE(testing::bitwise_equal(r.final_state, in.h0, "final_state == initial_state"));
    auto o = in.options(algorithm);
    o.initial_state.reset();
    const auto zero = ssm::ssd(in.x, in.dt, in.A, in.B, in.C, o);
    for (Index i = 0; i < zero.final_state.size(); ++i) ASSERT_EQ(zero.final_state.data()[i], 0.f);
  }
  const auto oracle = ref::ssd<double>(in.x, in.dt, in.A, in.B, in.C, in.options());
  EXPECT_TRUE(testing::bitwise_equal(oracle.final_state, in.h0, "oracle final_state == initial_state"));
}

// final_state may be the very buffer of initial_state (in-place carry between calls).
TEST_F(SsdTest, FinalStateMayAliasInitialState) {
  SsdCase c = mamba_case(19, 506);
  c.initial = true;
  const SsdInputs in(c);
  for (auto algorithm : {ssm::SsdAlgorithm::recurrent, ssm::SsdAlgorithm::chunked}) {
    const auto expected = ssm::ssd(in.x, in.dt, in.A, in.B, in.C, in.options(algorithm));
    Tensor<float, 4> state = in.h0, out(in.x.dimensions());
    auto o = in.options(algorithm);
    o.initial_state.emplace(state.data(), state.dimensions());
    TensorView<float, 4> sv(state.data(), state.dimensions()), ov(out.data(), out.dimensions());
    ssm::ssd(in.x, in.dt, in.A, in.B, in.C, o, ov, &sv);
    EXPECT_TRUE(testing::bitwise_equal(out, expected.out, "out"));
    EXPECT_TRUE(testing::bitwise_equal(state, expected.final_state, "state in place"));
  }
}

// auto_select gives the result of the form it picks.
TEST_F(SsdTest, AutoSelectRunsOneOfTheForms) {
  for (Index length : {Index(5), ssm::kSsdAutoMinLength + 3}) {
    SsdCase c = mamba_case(length, 507);
    c.chunk = 0;
    const SsdInputs in(c);
    const auto a = ssm::ssd(in.x, in.dt, in.A, in.B, in.C, in.options());
    const auto r = ssm::ssd(in.x, in.dt, in.A, in.B, in.C, in.options(ssm::SsdAlgorithm::recurrent));
    const auto k = ssm::ssd(in.x, in.dt, in.A, in.B, in.C, in.options(ssm::SsdAlgorithm::chunked));
    EXPECT_TRUE(testing::bitwise_equal(a.out, r.out) || testing::bitwise_equal(a.out, k.out)) << "L=" << length;
  }
}

// softplus follows torch's threshold (x > 20 -> x) and the clamp applies after it.
TEST_F(SsdTest, SoftplusThresholdAndClampMatchOracle) {
  SsdCase c = mamba_case(6, 508);
  c.bias = false;
  SsdInputs in(c);
  for (Index i = 0; i < in.dt.size(); ++i) in.dt.data()[i] = 19.5f + 0.01f * float(i % 100);  // straddles 20
  in.A = in.A * 0.001f;  // keep exp(dt·A) away from 0 so the outputs carry dt
  for (bool clamp : {false, true}) {
    auto o = in.options();
    if (clamp) o.dt_min = 19.7f, o.dt_max = 19.9f;
    const auto expected = ref::ssd<double>(in.x, in.dt, in.A, in.B, in.C, o);
    for (auto algorithm : {ssm::SsdAlgorithm::recurrent, ssm::SsdAlgorithm::chunked}) {
      o.algorithm = algorithm;
      const auto actual = ssm::ssd(in.x, in.dt, in.A, in.B, in.C, o);
      // dt ~ 20 scales the outputs ~20x: the bounds scale with them.
      const testing::Tolerance tol{20 * kSsdChunkedTol.atol, kSsdChunkedTol.rtol, kSsdChunkedTol.max_nmse};
      EXPECT_TRUE(testing::all_close(actual.out, expected.out, tol, clamp ? "dt around 20, clamped" : "dt around 20"));
    }
  }
}

// ---- bad input: every rule throws tokenmix::Error naming the op, the argument and the shape ----

TEST_F(SsdTest, RejectsBadInputWithClearErrors) {
  const SsdInputs in(mamba_case(6, 509));
  const Index Bt = 2, L = 6, H = 4, P = 32, N = 24, G = 2;
  const auto o = in.options();
  // Each rule against the op (views and convenience overload) and the oracle.
  auto expect_both = [&](auto call_op, auto call_ref, const std::string& fragment) {
    EXPECT_TRUE(testing::throws_error_mentioning(call_op, "ssd", fragment)) << fragment;
    EXPECT_TRUE(testing::throws_error_mentioning(call_ref, "ref::ssd", fragment)) << fragment;
  };
  auto check = [&](const Tensor<float, 4>& x, const Tensor<float, 3>& dt, const Tensor<float, 1>& A,
                   const Tensor<float, 4>& B, const Tensor<float, 4>& C, const ssm::SsdOptions& opt,
                   const std::string& fragment) {
    expect_both([&] { ssm::ssd(x, dt, A, B, C, opt); }, [&] { ref::ssd<double>(x, dt, A, B, C, opt); }, fragment);
  };
  auto with = [&](auto setter) { auto copy = o; setter(copy); return copy; };

  check(in.x, Tensor<float, 3>(Bt, L, H + 1), in.A, in.B, in.C, o, "dt has shape [2, 6, 5], expected [B=2, L=6, H=4] like x");
  check(in.x, in.dt, Tensor<float, 1>(H + 1), in.B, in.C, o, "A has shape [5], expected [H=4]");
  check(in.x, in.dt, in.A, Tensor<float, 4>(Bt, L + 1, G, N), in.C, o, "B has shape [2, 7, 2, 24], expected [B=2, L=6, G, N]");
  check(in.x, in.dt, in.A, Tensor<float, 4>(Bt, L, 0, N), in.C, o, "G > 0");
  check(in.x, in.dt, in.A, in.B, Tensor<float, 4>(Bt, L, G, N + 1), o, "C has shape [2, 6, 2, 25], expected [B=2, L=6, G=2, N=24] like B");
  check(in.x, in.dt, in.A, Tensor<float, 4>(Bt, L, 3, N), Tensor<float, 4>(Bt, L, 3, N), o, "G=3 groups, which does not divide H=4");
  check(Tensor<float, 4>(0, L, H, P), Tensor<float, 3>(0, L, H), in.A, Tensor<float, 4>(0, L, G, N), Tensor<float, 4>(0, L, G, N), o, "batch B must be > 0");
  check(Tensor<float, 4>(Bt, L, H, 0), in.dt, in.A, in.B, in.C, ssm::SsdOptions{}, "head dim P must be > 0");
  check(in.x, in.dt, in.A, in.B, in.C, with([](auto& x) { x.D.emplace(Tensor<float, 1>(5)); }), "D has shape [5], expected [H=4] or [H*P=128]");
  const Tensor<float, 1> bad_bias(H - 1);
  check(in.x, in.dt, in.A, in.B, in.C, with([&](auto& x) { x.dt_bias.emplace(bad_bias); }), "dt_bias has shape [3], expected [H=4]");
  const Tensor<float, 4> bad_z(Bt, L, H, P + 1);
  check(in.x, in.dt, in.A, in.B, in.C, with([&](auto& x) { x.z.emplace(bad_z); }), "z has shape [2, 6, 4, 33], expected [B=2, L=6, H=4, P=32] like x");
  const Tensor<float, 4> bad_state(Bt, H, P, N + 1);
  check(in.x, in.dt, in.A, in.B, in.C, with([&](auto& x) { x.initial_state.emplace(bad_state); }), "initial_state has shape [2, 4, 32, 25], expected [B=2, H=4, P=32, N=24]");
  check(in.x, in.dt, in.A, in.B, in.C, with([](auto& x) { x.dt_min = 1.f, x.dt_max = 0.5f; }), "dt_min <= dt_max");
  check(in.x, in.dt, in.A, in.B, in.C, with([](auto& x) { x.dt_min = std::nanf(""); }), "dt_min <= dt_max");
  check(in.x, in.dt, in.A, in.B, in.C, with([](auto& x) { x.chunk_size = -1; }), "chunk_size must be >= 0");
  Tensor<std::int32_t, 2> bad_seq(Bt, L), short_seq(Bt, L - 1);
  bad_seq.setZero();
  bad_seq(1, 4) = 2;  // 0 0 0 0 2 0: decreases at t = 5
  check(in.x, in.dt, in.A, in.B, in.C, with([&](auto& x) { x.seq_idx.emplace(bad_seq); }), "seq_idx must be non-decreasing along L, but seq_idx[1, 5] = 0 < seq_idx[1, 4] = 2");
  check(in.x, in.dt, in.A, in.B, in.C, with([&](auto& x) { x.seq_idx.emplace(short_seq); }), "seq_idx has shape [2, 5], expected [B=2, L=6]");

  // View-based call: wrong output shapes and outputs aliasing inputs.
  Tensor<float, 4> out(Bt, L, H, P), bad_out(Bt, L, H, P + 1), last(Bt, H, P, N), bad_last(Bt, H, P, N + 2), x_copy = in.x;
  TensorView<float, 4> out_v(out.data(), out.dimensions()), bad_out_v(bad_out.data(), bad_out.dimensions());
  TensorView<float, 4> last_v(last.data(), last.dimensions()), bad_last_v(bad_last.data(), bad_last.dimensions());
  TensorView<float, 4> alias_x(x_copy.data(), x_copy.dimensions());
  TensorView<float, 4> alias_out_state(out.data(), last.dimensions());  // final_state over out's buffer
  auto view_both = [&](TensorView<float, 4> ov, TensorView<float, 4>* sv, const Tensor<float, 4>& x,
                       const ssm::SsdOptions& opt, const std::string& fragment) {
    expect_both([&] { ssm::ssd(x, in.dt, in.A, in.B, in.C, opt, ov, sv); },
                [&] { ref::ssd<double>(x, in.dt, in.A, in.B, in.C, opt, ov, sv); }, fragment);
  };
  view_both(bad_out_v, &last_v, in.x, o, "out has shape [2, 6, 4, 33], expected [B=2, L=6, H=4, P=32] like x");
  view_both(out_v, &bad_last_v, in.x, o, "final_state has shape [2, 4, 32, 26], expected [B=2, H=4, P=32, N=24]");
  view_both(alias_x, &last_v, x_copy, o, "out must not overlap the inputs");
  view_both(out_v, &alias_out_state, in.x, o, "final_state must not overlap out");
  std::vector<float> big(static_cast<std::size_t>(in.h0.size() + 8));
  TensorView<float, 4> st_a(big.data(), in.h0.dimensions()), st_b(big.data() + 4, in.h0.dimensions());
  view_both(out_v, &st_b, in.x, with([&](auto& x) { x.initial_state.emplace(st_a.data(), st_a.dimensions()); }),
            "final_state must be the very buffer of initial_state or not overlap it");
}

TEST_F(SsdTest, StateUpdateRejectsBadInputWithClearErrors) {
  const Index Bt = 2, H = 4, P = 8, N = 6, G = 2;
  Rng rng(510);
  Tensor<float, 4> state = testing::random_normal<4>({Bt, H, P, N}, 0.f, 1.f, rng);
  const Tensor<float, 3> x = testing::random_normal<3>({Bt, H, P}, 0.f, 1.f, rng);
  const Tensor<float, 2> dt = testing::random_uniform<2>({Bt, H}, 0.01f, 0.1f, rng);
  const Tensor<float, 1> A = testing::random_uniform<1>({H}, -4.f, -1.f, rng);
  const Tensor<float, 3> B = testing::random_normal<3>({Bt, G, N}, 0.f, 1.f, rng), C = B;
  auto expect_both = [&](const ssm::SsdOptions& o, const Tensor<float, 3>& xx, const Tensor<float, 2>& dd,
                         const Tensor<float, 1>& AA, const Tensor<float, 3>& BB, const Tensor<float, 3>& CC,
                         const std::string& fragment) {
    EXPECT_TRUE(testing::throws_error_mentioning([&] { ssm::ssd_state_update(state, xx, dd, AA, BB, CC, o); },
                                                 "ssd_state_update", fragment));
    EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::ssd_state_update<double>(state, xx, dd, AA, BB, CC, o); },
                                                 "ref::ssd_state_update", fragment));
  };
  const ssm::SsdOptions none;
  expect_both(none, x, Tensor<float, 2>(Bt, H + 1), A, B, C, "dt has shape [2, 5], expected [B=2, H=4] like x");
  expect_both(none, x, dt, Tensor<float, 1>(H - 1), B, C, "A has shape [3], expected [H=4]");
  expect_both(none, x, dt, A, Tensor<float, 3>(Bt, 3, N), Tensor<float, 3>(Bt, 3, N), "G=3 groups, which does not divide H=4");
  expect_both(none, x, dt, A, B, Tensor<float, 3>(Bt, G, N + 1), "C has shape [2, 2, 7], expected [B=2, G=2, N=6] like B");
  expect_both(none, x, dt, A, Tensor<float, 3>(Bt, G, N + 1), Tensor<float, 3>(Bt, G, N + 1), "state has shape [2, 4, 8, 6], expected [B=2, H=4, P=8, N=7]");
  ssm::SsdOptions o;
  const Tensor<float, 4> z3(Bt, 2, H, P);
  o.z.emplace(z3);
  expect_both(o, x, dt, A, B, C, "z has shape [2, 2, 4, 8], expected [B=2, L=1, H=4, P=8] (one token)");
  o = none;
  o.initial_state.emplace(state.data(), state.dimensions());
  expect_both(o, x, dt, A, B, C, "initial_state is not an option of the step");
  o = none;
  const Tensor<std::int32_t, 2> seq(Bt, 1);
  o.seq_idx.emplace(seq);
  expect_both(o, x, dt, A, B, C, "seq_idx is not an option of the step");
  o = none;
  const Tensor<float, 1> D(H + 2);
  o.D.emplace(D);
  expect_both(o, x, dt, A, B, C, "D has shape [6], expected [H=4] or [H*P=32]");
  // View-based: out shape and aliasing.
  Tensor<float, 3> out(Bt, H, P + 1), out_ok(Bt, H, P);
  TensorView<float, 4> sv(state.data(), state.dimensions());
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { ssm::ssd_state_update(sv, x, dt, A, B, C, none, TensorView<float, 3>(out.data(), out.dimensions())); },
      "ssd_state_update", "out has shape [2, 4, 9], expected [B=2, H=4, P=8] like x"));
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] { ssm::ssd_state_update(sv, x, dt, A, B, C, none, TensorView<float, 3>(state.data(), out_ok.dimensions())); },
      "ssd_state_update", "out must not overlap state"));
  EXPECT_TRUE(testing::throws_error_mentioning(
      [&] {
        Tensor<float, 4> s4(Bt, H, P, N);
        const ConstTensorView<float, 3> xv(s4.data(), Eigen::array<Index, 3>{Bt, H, P});
        ssm::ssd_state_update(TensorView<float, 4>(s4.data(), s4.dimensions()), xv, dt, A, B, C, none,
                              TensorView<float, 3>(out_ok.data(), out_ok.dimensions()));
      },
      "ssd_state_update", "state must not overlap the inputs"));
}

}  // namespace
}  // namespace tokenmix
