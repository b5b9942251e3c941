#pragma once
// A small, fast, seeded generator for random weights (benchmarks, examples, randomly initialised
// models). Not for tests' inputs (tests/support/random.hpp uses <random> with named seeds).
//
// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit state, passes BigCrush, ~1 ns per draw, the
// same sequence on every platform (unlike std::uniform_real_distribution), so a seed names a model.

#include <cstdint>

#include "tokenmix/core/tensor.hpp"

namespace tokenmix {

class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}

  std::uint64_t next() noexcept {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  // Uniform in [0, 1): the top 24 bits, exactly representable as float.
  float uniform01() noexcept { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
  float uniform(float lo, float hi) noexcept { return lo + (hi - lo) * uniform01(); }

  // Fills dst[0, count) with uniform values in [lo, hi).
  void fill_uniform(float* dst, Index count, float lo, float hi) noexcept {
    for (Index i = 0; i < count; ++i) dst[i] = uniform(lo, hi);
  }

 private:
  std::uint64_t state_;
};

}  // namespace tokenmix
