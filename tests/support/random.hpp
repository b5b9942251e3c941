#pragma once
// Seeded random inputs for tests. Every test that draws random data names its seed, and failures
// print it (compare.hpp), so any failure can be replayed exactly.

#include <cstdint>
#include <random>

#include "tokenmix/core/tensor.hpp"

namespace tokenmix::testing {

using Rng = std::mt19937_64;

// Uniform values in [lo, hi).
template <int R>
Tensor<float, R> random_uniform(const std::array<Index, R>& dims, float lo, float hi, Rng& rng) {
  Tensor<float, R> t(dims);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (Index i = 0; i < t.size(); ++i) t.data()[i] = dist(rng);
  return t;
}

// Normal values N(mean, stddev^2).
template <int R>
Tensor<float, R> random_normal(const std::array<Index, R>& dims, float mean, float stddev, Rng& rng) {
  Tensor<float, R> t(dims);
  std::normal_distribution<float> dist(mean, stddev);
  for (Index i = 0; i < t.size(); ++i) t.data()[i] = dist(rng);
  return t;
}

inline Index random_index(Index lo, Index hi, Rng& rng) {  // inclusive range
  return std::uniform_int_distribution<Index>(lo, hi)(rng);
}

}  // namespace tokenmix::testing
