#pragma once
// Shape helpers shared by every entry point: printing extents and checking them with messages that
// name the op, the argument and the expected shape (DESIGN §4).

#include <array>
#include <cmath>        // std::isfinite
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>

#include "tokenmix/config.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix {

// Extents of a rank-R tensor, printable as "[2, 64, 96]".
template <int R>
struct Shape {
  std::array<Index, R> dims{};
  Index operator[](int i) const { return dims[static_cast<std::size_t>(i)]; }
  Index numel() const {
    Index n = 1;
    for (Index d : dims) n *= d;
    return n;
  }
  friend bool operator==(const Shape& a, const Shape& b) { return a.dims == b.dims; }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) {
    os << '[';
    for (int i = 0; i < R; ++i) os << (i ? ", " : "") << s.dims[static_cast<std::size_t>(i)];
    return os << ']';
  }
};

template <class TensorLike>
auto shape_of(const TensorLike& t) {
  constexpr int R = TensorLike::NumIndices;
  Shape<R> s;
  for (int i = 0; i < R; ++i) s.dims[static_cast<std::size_t>(i)] = t.dimension(i);
  return s;
}

// An expected shape with a name per extent, printed as "[B=2, L=64, D=128]".
template <int R>
struct NamedShape {
  std::array<const char*, R> names;
  Shape<R> shape;
  friend std::ostream& operator<<(std::ostream& os, const NamedShape& s) {
    os << '[';
    for (int i = 0; i < R; ++i)
      os << (i ? ", " : "") << s.names[static_cast<std::size_t>(i)] << '='
         << s.shape.dims[static_cast<std::size_t>(i)];
    return os << ']';
  }
};

namespace detail {

// Throws unless `t` has exactly the extents of `expected`:
//   "<op>: <arg> has shape [..], expected [B=.., L=..]<note>".
template <class TensorLike, int R>
void check_shape(const char* op, const char* arg, const TensorLike& t, const NamedShape<R>& expected,
                 const char* note = "") {
  static_assert(TensorLike::NumIndices == R, "rank mismatch between tensor and expected shape");
  TOKENMIX_CHECK(shape_of(t) == expected.shape, op, ": ", arg, " has shape ", shape_of(t),
                 ", expected ", expected, note);
}

// Rejects shapes whose element count (or byte count) does not fit in Index arithmetic.
template <int R>
void check_numel_fits(const char* op, const char* arg, const Shape<R>& s) {
  Index n = 1;
  for (Index d : s.dims) {
    TOKENMIX_CHECK(d >= 0, op, ": ", arg, " has a negative extent in shape ", s);
    const Index limit = std::numeric_limits<Index>::max() / static_cast<Index>(sizeof(double));
    TOKENMIX_CHECK(d == 0 || n <= limit / d, op, ": ", arg, " shape ", s,
                   " has more elements than fit in memory");
    n *= d;
  }
}

// Whether the float ranges [a, a + na) and [b, b + nb) share memory (outputs must not alias inputs).
inline bool ranges_overlap(const float* a, Index na, const float* b, Index nb) {
  if (na == 0 || nb == 0 || !a || !b) return false;
  return a < b + nb && b < a + na;
}

inline void check_finite(const char* op, const char* arg, double value) {
  TOKENMIX_CHECK(std::isfinite(value), op, ": ", arg, " must be finite, got ", value);
}

}  // namespace detail
}  // namespace tokenmix
