#pragma once
// One randomised linear-attention test case (extents, decay kind, initial state, seed), its inputs
// and the helpers the linear-family tests share (tests/linear/simple_gla_test.cpp,
// lightning_attention_test.cpp, linear_attention_test.cpp): token slices, one token of a
// [B, L, H, X] tensor as the [B, H, X] input of a decode step, the comparison of a LinearResult
// with the oracle's, and LINEAR_TEST_REPORT=1 (prints the worst errors of every comparison: how
// tolerance::linear_attention was measured).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "support/compare.hpp"
#include "support/random.hpp"
#include "support/tolerance.hpp"
#include "tokenmix/linear/linear_attention_types.hpp"

namespace tokenmix::testing {

enum class Decay { none, per_token, per_head };  // SimpleGlaOptions: no decay, g [B, L, H], g_gamma [H]

inline const char* decay_name(Decay d) {
  return d == Decay::none ? "none" : d == Decay::per_token ? "g" : "g_gamma";
}

struct LinearCase {
  Index batch = 1, length = 1, heads = 1, key_dim = 1, value_dim = 1, chunk = 0;
  Decay decay = Decay::none;
  float g_lo = -3.f, g_hi = 0.f;  // range of the log decays g / g_gamma
  bool initial = false;
  std::uint64_t seed = 0;

  std::string describe() const {
    std::ostringstream os;
    os << "B=" << batch << " L=" << length << " H=" << heads << " K=" << key_dim << " V=" << value_dim
       << " chunk=" << chunk << " decay=" << decay_name(decay) << " in [" << g_lo << ", " << g_hi << "]"
       << " initial_state=" << initial << " seed=" << seed;
    return os.str();
  }
};

// q, k, v ~ N(0, 1) (so scale·q·k ~ N(0, 1) with the default scale), log decays ~ U(g_lo, g_hi),
// initial state ~ N(0, 1), initial normaliser ~ U(0.5, 2) (a sum of positive features).
struct LinearInputs {
  Tensor<float, 4> q, k, v, h0;  // [B, L, H, K] x2, [B, L, H, V], [B, H, K, V]
  Tensor<float, 3> g, z0;        // [B, L, H], [B, H, K]
  Tensor<float, 1> g_gamma;      // [H]
  LinearCase c;

  explicit LinearInputs(const LinearCase& lc) : c(lc) {
    Rng rng(c.seed);
    const Index Bt = c.batch, L = c.length, H = c.heads, K = c.key_dim, V = c.value_dim;
    q = random_normal<4>({Bt, L, H, K}, 0.f, 1.f, rng);
    k = random_normal<4>({Bt, L, H, K}, 0.f, 1.f, rng);
    v = random_normal<4>({Bt, L, H, V}, 0.f, 1.f, rng);
    g = random_uniform<3>({Bt, L, H}, c.g_lo, c.g_hi, rng);
    g_gamma = random_uniform<1>({H}, c.g_lo, c.g_hi, rng);
    h0 = random_normal<4>({Bt, H, K, V}, 0.f, 1.f, rng);
    z0 = random_uniform<3>({Bt, H, K}, 0.5f, 2.f, rng);
  }

  linear::SimpleGlaOptions gla_options(linear::LinearAlgorithm algorithm = linear::LinearAlgorithm::auto_select,
                                       const Eigen::ThreadPoolDevice* device = nullptr) const {
    linear::SimpleGlaOptions o;
    if (c.decay == Decay::per_token) o.g.emplace(g.data(), g.dimensions());
    if (c.decay == Decay::per_head) o.g_gamma.emplace(g_gamma.data(), g_gamma.dimensions());
    if (c.initial) o.initial_state.emplace(h0.data(), h0.dimensions());
    o.algorithm = algorithm;
    o.chunk_size = c.chunk;
    o.device = device;
    return o;
  }
};

// Tokens [from, to) of a [B, L, ...] tensor (rank 3 or 4).
template <int R>
Tensor<float, R> linear_tokens(const Tensor<float, R>& t, Index from, Index to) {
  static_assert(R == 3 || R == 4, "linear_tokens: [B, L, H] or [B, L, H, X]");
  auto dims = t.dimensions();
  dims[1] = to - from;
  Tensor<float, R> s(dims);
  Index inner = 1;
  for (int r = 2; r < R; ++r) inner *= t.dimension(r);
  for (Index b = 0; b < t.dimension(0); ++b)
    std::copy_n(t.data() + (b * t.dimension(1) + from) * inner, (to - from) * inner,
                s.data() + b * (to - from) * inner);
  return s;
}

// Token t of [B, L, H, X] as [B, H, X] (the input of a decode step).
inline Tensor<float, 3> token_of(const Tensor<float, 4>& x, Index t) {
  Tensor<float, 3> y(x.dimension(0), x.dimension(2), x.dimension(3));
  const Index inner = x.dimension(2) * x.dimension(3);
  for (Index b = 0; b < x.dimension(0); ++b)
    std::copy_n(x.data() + (b * x.dimension(1) + t) * inner, inner, y.data() + b * inner);
  return y;
}

// Token t of [B, L, H] as [B, H].
inline Tensor<float, 2> token_of(const Tensor<float, 3>& x, Index t) {
  Tensor<float, 2> y(x.dimension(0), x.dimension(2));
  for (Index b = 0; b < x.dimension(0); ++b)
    std::copy_n(x.data() + (b * x.dimension(1) + t) * x.dimension(2), x.dimension(2), y.data() + b * x.dimension(2));
  return y;
}

// Writes a step's out [B, H, V] as token t of [B, L, H, V].
inline void set_token(Tensor<float, 4>& x, Index t, const Tensor<float, 3>& y) {
  const Index inner = x.dimension(2) * x.dimension(3);
  for (Index b = 0; b < x.dimension(0); ++b)
    std::copy_n(y.data() + b * inner, inner, x.data() + (b * x.dimension(1) + t) * inner);
}

// LINEAR_TEST_REPORT=1: the worst absolute error where |ref| < 1, the worst relative error where
// |ref| >= 1, the largest error in units of the tolerance (of_tol: 1 is the bound) and the NMSE of one
// comparison, with the largest and the RMS reference value.
template <class TA, class TE>
void linear_report(const std::string& what, const TA& a, const TE& e, const Tolerance& tol = tolerance::linear_attention) {
  static const bool on = std::getenv("LINEAR_TEST_REPORT") != nullptr;
  if (!on || e.size() == 0) return;
  double worst_abs = 0, worst_small = 0, worst_rel = 0, worst_units = 0, err2 = 0, ref2 = 0, mag = 0;
  for (Index i = 0; i < e.size(); ++i) {
    const double d = std::fabs(double(a.data()[i]) - double(e.data()[i])), m = std::fabs(double(e.data()[i]));
    worst_abs = std::max(worst_abs, d);
    if (m < 1) worst_small = std::max(worst_small, d);
    else worst_rel = std::max(worst_rel, d / m);
    worst_units = std::max(worst_units, d / (tol.atol + tol.rtol * m));
    err2 += d * d, ref2 += m * m, mag = std::max(mag, m);
  }
  std::printf("LINEAR_TEST_REPORT %-24s abs %.3g abs(|ref|<1) %.3g rel(|ref|>=1) %.3g of_tol %.3g nmse %.3g "
              "max_ref %.3g rms_ref %.3g\n",
              what.c_str(), worst_abs, worst_small, worst_rel, worst_units, ref2 > 0 ? err2 / ref2 : err2, mag,
              std::sqrt(ref2 / double(e.size())));
}

// out, final_state (and final_normalizer) of a fast op against the oracle's (or another form's).
inline ::testing::AssertionResult results_close(const linear::LinearResult& actual, const linear::LinearResult& expected,
                                                const std::string& where,
                                                const Tolerance& tol = tolerance::linear_attention) {
  linear_report(where.substr(0, where.find(' ')) + " out", actual.out, expected.out, tol);
  linear_report(where.substr(0, where.find(' ')) + " state", actual.final_state, expected.final_state, tol);
  linear_report(where.substr(0, where.find(' ')) + " normalizer", actual.final_normalizer, expected.final_normalizer, tol);
  auto r = all_close(actual.out, expected.out, tol, where + " out");
  if (!r) return r;
  r = all_close(actual.final_state, expected.final_state, tol, where + " final_state");
  if (!r) return r;
  return all_close(actual.final_normalizer, expected.final_normalizer, tol, where + " final_normalizer");
}

inline ::testing::AssertionResult results_bitwise_equal(const linear::LinearResult& a, const linear::LinearResult& b,
                                                        const std::string& where) {
  auto r = bitwise_equal(a.out, b.out, where + " out");
  if (!r) return r;
  r = bitwise_equal(a.final_state, b.final_state, where + " final_state");
  if (!r) return r;
  return bitwise_equal(a.final_normalizer, b.final_normalizer, where + " final_normalizer");
}

// One value against an expected one under a tolerance's elementwise rule.
inline ::testing::AssertionResult within(double actual, double expected, const Tolerance& tol) {
  if (std::fabs(actual - expected) <= tol.atol + tol.rtol * std::fabs(expected)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << actual << " vs expected " << expected << " (atol " << tol.atol << ", rtol "
                                       << tol.rtol << ")";
}

inline bool all_finite(const Tensor<float, 4>& t) {
  for (Index i = 0; i < t.size(); ++i)
    if (!std::isfinite(t.data()[i])) return false;
  return true;
}

}  // namespace tokenmix::testing
