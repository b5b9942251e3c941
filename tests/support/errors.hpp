#pragma once
// Assertions for the bad-input rules (DESIGN §4): the call must throw tokenmix::Error whose message
// names the op and contains the expected fragment (argument, expected and actual shape).
//   EXPECT_TRUE(throws_error_mentioning([&] { op(...); }, "selective_scan", "delta has shape [2, 6, 38]"));
//   expect_error([&] { op(...); }, "weight has shape");

#include <gtest/gtest.h>

#include <exception>
#include <functional>
#include <string>

#include "tokenmix/config.hpp"

namespace tokenmix::testing {

// `op` may be empty; otherwise the message must contain "<op>:" (also "ref::<op>:" for oracles).
inline ::testing::AssertionResult throws_error_mentioning(const std::function<void()>& call, const std::string& op,
                                                         const std::string& fragment) {
  try {
    call();
  } catch (const Error& e) {
    const std::string what = e.what();
    if ((op.empty() || what.find(op + ":") != std::string::npos) && what.find(fragment) != std::string::npos)
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "message \"" << what << "\" lacks \"" << op << ": ... " << fragment << "\"";
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-tokenmix exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw (expected \"" << fragment << "\")";
}

inline void expect_error(const std::function<void()>& call, const std::string& fragment) {
  EXPECT_TRUE(throws_error_mentioning(call, "", fragment));
}

}  // namespace tokenmix::testing
