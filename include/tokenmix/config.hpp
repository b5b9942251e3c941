#pragma once
// Error policy hooks (DESIGN §4).
//
//   TOKENMIX_CHECK(cond, parts...)  validates arguments at public entry points. On failure it throws
//                                   tokenmix::Error whose message is the concatenation of `parts`
//                                   (they are streamed with operator<<). Under
//                                   TOKENMIX_NO_EXCEPTIONS it prints the message and aborts.
//   TOKENMIX_ASSERT(cond)           internal invariant; compiled out under NDEBUG.
//
// Messages name the op, the argument, the expected and the actual value, e.g.
//   "selective_scan: delta has shape [2, 64, 96], expected [B=2, L=64, D=128] like u".

#include <cassert>    // assert for TOKENMIX_ASSERT
#include <cstdio>     // std::fputs for the no-exceptions path
#include <cstdlib>    // std::abort
#include <sstream>    // message formatting
#include <stdexcept>  // std::invalid_argument
#include <string>

namespace tokenmix {

// Every argument error the library raises. Derived from std::invalid_argument so generic handlers work.
class Error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

namespace detail {

template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

[[noreturn]] inline void raise(const std::string& message) {
#ifdef TOKENMIX_NO_EXCEPTIONS
  std::fputs(("tokenmix error: " + message + "\n").c_str(), stderr);
  std::abort();
#else
  throw Error(message);
#endif
}

}  // namespace detail
}  // namespace tokenmix

#define TOKENMIX_CHECK(cond, ...)                                         \
  do {                                                                    \
    if (!(cond)) ::tokenmix::detail::raise(::tokenmix::detail::concat(__VA_ARGS__)); \
  } while (false)

#define TOKENMIX_ASSERT(cond) assert(cond)

#if defined(__GNUC__) || defined(__clang__)
#define TOKENMIX_RESTRICT __restrict__
#define TOKENMIX_ALWAYS_INLINE inline __attribute__((always_inline))
#define TOKENMIX_ALWAYS_INLINE_LAMBDA __attribute__((always_inline))
#else
#define TOKENMIX_ALWAYS_INLINE_LAMBDA
#define TOKENMIX_RESTRICT
#define TOKENMIX_ALWAYS_INLINE inline
#endif
