#pragma once
// blocks::embedding: nn.Embedding lookup, out[m, :] = table[ids[m], :].
//
//   Tensor<float, 2> h = blocks::embedding(ids, table);   // ids: std::vector<int64_t> (M), table [V, D]
//
// ids are token ids in [0, V); any other id is an Error naming its position, its value and V
// (checked before anything is written). M = 0 is valid. out [M, D] must not overlap table.

#include <cstdint>
#include <cstring>
#include <vector>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::blocks {

namespace detail {

inline void check_embedding_args(const char* op, const std::int64_t* ids, Index count,
                                 const ConstTensorView<float, 2>& table, const TensorView<float, 2>* out) {
  tokenmix::detail::check_numel_fits(op, "table", shape_of(table));
  const Index V = table.dimension(0), D = table.dimension(1);
  TOKENMIX_CHECK(V > 0 && D > 0, op, ": table has shape ", shape_of(table), ", expected [V, D] with V > 0 and D > 0");
  TOKENMIX_CHECK(count >= 0 && (count == 0 || ids != nullptr), op, ": ids must point at ", count, " ids");
  for (Index m = 0; m < count; ++m)
    TOKENMIX_CHECK(ids[m] >= 0 && ids[m] < V, op, ": ids[", m, "] = ", ids[m],
                   " is out of range for a vocabulary of V=", V, " rows (table ", shape_of(table), ")");
  if (out) {
    tokenmix::detail::check_shape(op, "out", *out, NamedShape<2>{{"M", "D"}, {{count, D}}}, " (M = number of ids)");
    const float* o = out->data();
    const Index n = out->size();
    TOKENMIX_CHECK(n == 0 || !(o < table.data() + table.size() && table.data() < o + n), op,
                   ": out must not overlap table");
  }
}

}  // namespace detail

// View-based core: ids [M] (pointer + count), table [V, D], out [M, D].
inline void embedding(const std::int64_t* ids, Index count, const ConstTensorView<float, 2>& table,
                      TensorView<float, 2> out) {
  detail::check_embedding_args("embedding", ids, count, table, &out);
  const Index D = table.dimension(1);
  for (Index m = 0; m < count; ++m)
    std::memcpy(out.data() + m * D, table.data() + ids[m] * D, static_cast<std::size_t>(D) * sizeof(float));
}

inline void embedding(const std::vector<std::int64_t>& ids, const ConstTensorView<float, 2>& table,
                      TensorView<float, 2> out) {
  blocks::embedding(ids.data(), static_cast<Index>(ids.size()), table, out);
}

// Convenience overloads: allocate and return out [M, D].
inline Tensor<float, 2> embedding(const std::int64_t* ids, Index count, const ConstTensorView<float, 2>& table) {
  detail::check_embedding_args("embedding", ids, count, table, nullptr);
  Tensor<float, 2> out(count, table.dimension(1));
  blocks::embedding(ids, count, table, TensorView<float, 2>(out.data(), out.dimensions()));
  return out;
}

inline Tensor<float, 2> embedding(const std::vector<std::int64_t>& ids, const ConstTensorView<float, 2>& table) {
  return blocks::embedding(ids.data(), static_cast<Index>(ids.size()), table);
}

}  // namespace tokenmix::blocks
