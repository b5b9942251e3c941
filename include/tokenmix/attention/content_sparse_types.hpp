#pragma once
// Parameters of the content-dependent sparse attentions (attention/content_sparse.hpp), shared
// with their oracles (reference/content_sparse.hpp).

#include "tokenmix/core/tensor.hpp"

namespace tokenmix::attention {

// Block top-k by mean-pooled scores (block_topk_layout / block_topk_attention).
struct BlockTopKParams {
  Index block = 64;        // query and key block size
  Index top_k = 16;        // selected blocks per (head, query block), besides the forced ones
  Index sink_blocks = 1;   // the first blocks, always kept (NSA: 1 initial block)
  Index local_blocks = 2;  // the blocks ending at the query block's diagonal, always kept (NSA: 2)
};

}  // namespace tokenmix::attention
