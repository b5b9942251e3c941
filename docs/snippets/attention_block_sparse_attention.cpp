// docs/operators.md: attention::block_sparse_attention and the layout generators.
#include "tokenmix/tokenmix.hpp"
#include "snippet_support.hpp"  // fill(t, lo, hi, seed), rnd(lo, hi, dims...)

using namespace tokenmix;

int main() {
  const Index Bt = 1, L = 256, H = 4, P = 32;
  // snippet-begin
  Tensor<float, 4> q(Bt, L, H, P), k(Bt, L, H, P), v(Bt, L, H, P);
  fill(q, -1, 1, 1), fill(k, -1, 1, 2), fill(v, -1, 1, 3);

  using namespace tokenmix::attention;
  BlockLayout window = sliding_window_layout(L, /*block=*/32, /*window=*/64, /*sinks=*/4);  // StreamingLLM
  BlockLayout power = power_layout(L, /*block=*/32, /*window_blocks=*/2);                  // PowerAttention
  BlockLayout both = layout_union(window, power);
  AttentionResult r = block_sparse_attention(q, k, v, both);  // the layout states causality itself
  const double kept = both.block_density();                   // cost follows the kept blocks
  // snippet-end
  return r.out.dimension(1) == L && kept > 0 ? 0 : 1;
}
