#pragma once
// Seeded random inputs for tests. Every test that draws random data names its seed, and failures
// print it (compare.hpp), so any failure can be replayed exactly.

#include <cstdint>
#include <random>

#include "tokenmix/core/tensor.hpp"

namespace tokenmix::testing {

using Rng = std::mt19937_64;

// A tensor of independent draws from `dist`.
template <int R, class Distribution>
Tensor<float, R> random_tensor(const std::array<Index, R>& dims, Distribution dist, Rng& rng) {
  Tensor<float, R> t(dims);
  for (Index i = 0; i < t.size(); ++i) t.data()[i] = dist(rng);
  return t;
}

// Uniform values in [lo, hi).
template <int R>
Tensor<float, R> random_uniform(const std::array<Index, R>& dims, float lo, float hi, Rng& rng) {
  return random_tensor<R>(dims, std::uniform_real_distribution<float>(lo, hi), rng);
}

// Normal values N(mean, stddev^2).
template <int R>
Tensor<float, R> random_normal(const std::array<Index, R>& dims, float mean, float stddev, Rng& rng) {
  return random_tensor<R>(dims, std::normal_distribution<float>(mean, stddev), rng);
}

inline Index random_index(Index lo, Index hi, Rng& rng) {  // inclusive range
  return std::uniform_int_distribution<Index>(lo, hi)(rng);
}

// Draws from one generator, for the random-case generators of the tests: pick(lo, hi) an Index in
// [lo, hi], chance(p) true with probability p, uniform() in [0, 1).
struct RandomDraws {
  Rng& rng;
  Index pick(Index lo, Index hi) { return random_index(lo, hi, rng); }
  double uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); }
  bool chance(double p) { return uniform() < p; }
};

}  // namespace tokenmix::testing
