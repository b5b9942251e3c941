#pragma once
// Token slices of token-major [B, L, D] tensors, for the streaming properties of causal operators
// (split == whole, step == sequence).
//   token(t, i)                 token i as [B, D]
//   slice_tokens(t, from, to)   tokens [from, to) as [B, to - from, D]

#include "tokenmix/core/tensor.hpp"

namespace tokenmix::testing {

inline Tensor<float, 2> token(const Tensor<float, 3>& t, Index i) {
  Tensor<float, 2> r(t.dimension(0), t.dimension(2));
  for (Index b = 0; b < t.dimension(0); ++b)
    for (Index d = 0; d < t.dimension(2); ++d) r(b, d) = t(b, i, d);
  return r;
}

inline Tensor<float, 3> slice_tokens(const Tensor<float, 3>& t, Index from, Index to) {
  const Eigen::array<Index, 3> offsets{0, from, 0}, extents{t.dimension(0), to - from, t.dimension(2)};
  return Tensor<float, 3>(t.slice(offsets, extents));
}

}  // namespace tokenmix::testing
