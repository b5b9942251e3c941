#pragma once
// allclose + NMSE comparison for gtest. On failure the message gives the first mismatching
// multi-index, both values, the shape, the worst error and a caller context (op, options, seed):
//   EXPECT_TRUE(all_close(actual, expected, tolerance::selective_scan, "seed=7 N=16"));

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>  // std::memcmp for bitwise_equal
#include <sstream>
#include <string>

#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"
#include "support/tolerance.hpp"

namespace tokenmix::testing {

template <std::size_t R>
std::string concat_index(const std::array<Index, R>& idx) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < R; ++i) os << (i ? ", " : "") << idx[i];
  os << ']';
  return os.str();
}

template <int R>
std::string format_multi_index(Index flat, const Shape<R>& shape) {
  std::array<Index, R> idx{};
  for (int i = R - 1; i >= 0; --i) {
    const Index extent = shape[i];
    idx[static_cast<std::size_t>(i)] = extent ? flat % extent : 0;
    flat = extent ? flat / extent : 0;
  }
  return concat_index(idx);
}

template <class TA, class TE>
::testing::AssertionResult all_close(const TA& actual, const TE& expected, const Tolerance& tol,
                                     const std::string& context) {
  constexpr int R = TA::NumIndices;
  static_assert(TE::NumIndices == R, "all_close: rank mismatch");
  const Shape<R> shape = shape_of(actual);
  if (shape != shape_of(expected))
    return ::testing::AssertionFailure() << context << ": shape " << shape << " != expected "
                                         << shape_of(expected);
  const Index n = shape.numel();
  Index first_bad = -1, bad_count = 0, worst = -1;
  double worst_excess = 0, err2 = 0, ref2 = 0;
  for (Index i = 0; i < n; ++i) {
    const double a = actual.data()[i], e = expected.data()[i];
    const double diff = std::fabs(a - e);
    const double allowed = tol.atol + tol.rtol * std::fabs(e);
    const bool same_nonfinite = !std::isfinite(e) && (a == e || (std::isnan(a) && std::isnan(e)));
    if (!same_nonfinite && !(diff <= allowed)) {
      if (first_bad < 0) first_bad = i;
      ++bad_count;
      if (!(diff / allowed <= worst_excess)) worst_excess = diff / allowed, worst = i;
    }
    if (std::isfinite(e)) err2 += (a - e) * (a - e), ref2 += e * e;
  }
  const double nmse = ref2 > 0 ? err2 / ref2 : err2;
  if (first_bad < 0 && nmse <= tol.max_nmse) return ::testing::AssertionSuccess();
  auto fail = ::testing::AssertionFailure();
  fail << context << ": shape " << shape << ", atol " << tol.atol << ", rtol " << tol.rtol << ", nmse "
       << nmse << " (max " << tol.max_nmse << ")";
  if (first_bad >= 0) {
    fail << "\n  " << bad_count << " of " << n << " elements differ; first at "
         << format_multi_index(first_bad, shape) << ": actual " << actual.data()[first_bad]
         << ", expected " << expected.data()[first_bad] << "\n  worst at "
         << format_multi_index(worst, shape) << ": actual " << actual.data()[worst] << ", expected "
         << expected.data()[worst];
  }
  return fail;
}

// Bitwise equality (thread-count invariance, causality of recurrent kernels).
template <class TA, class TE>
::testing::AssertionResult bitwise_equal(const TA& actual, const TE& expected, const std::string& context = "bitwise_equal") {
  constexpr int R = TA::NumIndices;
  const Shape<R> shape = shape_of(actual);
  if (shape != shape_of(expected))
    return ::testing::AssertionFailure() << context << ": shape " << shape << " != " << shape_of(expected);
  for (Index i = 0; i < shape.numel(); ++i) {
    const float a = actual.data()[i], e = expected.data()[i];
    if (std::memcmp(&a, &e, sizeof(float)) != 0)
      return ::testing::AssertionFailure() << context << ": shape " << shape << ", first difference at "
                                           << format_multi_index(i, shape) << ": " << a << " vs " << e;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace tokenmix::testing
