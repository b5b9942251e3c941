#pragma once
// Reading the fixtures in tests/data/<family>/<case>/ (.npy files written by the tests/data/make_*.py
// scripts) and comparing against them, with an optional report of the measured errors:
//   TOKENMIX_FIXTURE_REPORT=1 prints, per comparison, the worst absolute error, the largest reference
//   magnitude and the worst fraction of the tolerance used (|a - e| / (atol + rtol·|e|)).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "support/compare.hpp"
#include "support/tolerance.hpp"
#include "tokenmix/io/npy.hpp"

namespace tokenmix::testing {

inline std::string fixture_dir(const std::string& family, const std::string& name) {
  return std::string(TOKENMIX_TEST_DATA_DIR) + "/" + family + "/" + name + "/";
}

inline bool fixture_has(const std::string& family, const std::string& name, const std::string& file) {
  return std::ifstream(fixture_dir(family, name) + file + ".npy").good();
}

template <int R>
Tensor<float, R> load_fixture(const std::string& family, const std::string& name, const std::string& file) {
  return io::read_npy_float<R>(fixture_dir(family, name) + file + ".npy");
}

template <class TA, class TE>
::testing::AssertionResult check_fixture(const TA& actual, const TE& expected, const Tolerance& tol,
                                         const std::string& what) {
  const char* env = std::getenv("TOKENMIX_FIXTURE_REPORT");
  if (env && std::string(env) == "1" && actual.size() == expected.size()) {
    double worst_abs = 0, worst_frac = 0, max_ref = 0;
    for (Index i = 0; i < expected.size(); ++i) {
      const double a = actual.data()[i], e = expected.data()[i], d = std::fabs(a - e);
      worst_abs = std::max(worst_abs, d);
      worst_frac = std::max(worst_frac, d / (tol.atol + tol.rtol * std::fabs(e)));
      max_ref = std::max(max_ref, std::fabs(e));
    }
    std::printf("[fixture] %-58s max|err| %.3g  (max|ref| %.3g)  worst %.3f of tolerance\n", what.c_str(), worst_abs,
                max_ref, worst_frac);
  }
  return all_close(actual, expected, tol, what);
}

}  // namespace tokenmix::testing
