#pragma once
// The snippets' own helpers (not part of what docs/operators.md shows): random inputs standing for a
// model's activations or a checkpoint's tensors. Included by each snippet and, once, by the runner
// (run_snippets.cpp) before the snippets' namespaces.

#include <cstdint>

#include "tokenmix/tokenmix.hpp"

// t filled uniformly in [lo, hi) from `seed`.
template <class T>
void fill(T& t, float lo, float hi, std::uint64_t seed) {
  tokenmix::SplitMix64 g(seed);
  g.fill_uniform(t.data(), t.size(), lo, hi);
}

// A tensor of the given extents, uniform in [lo, hi) (a new seed per call).
template <class... I>
tokenmix::Tensor<float, int(sizeof...(I))> rnd(float lo, float hi, I... dims) {
  static std::uint64_t seed = 1;
  tokenmix::Tensor<float, int(sizeof...(I))> t(static_cast<tokenmix::Index>(dims)...);
  tokenmix::SplitMix64 g(seed++);
  g.fill_uniform(t.data(), t.size(), lo, hi);
  return t;
}
