# docs/operators.md: tokenmix.block_sparse_attention and the layouts.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
Bt, L, H, P = 1, 256, 4, 32
# snippet-begin
q, k, v = (rng.standard_normal((Bt, L, H, P), dtype=np.float32) for _ in range(3))
window = tokenmix.sliding_window_layout(L, 32, 64, sinks=4)          # length, block, window
power = tokenmix.power_layout(L, 32, 2)                              # length, block, window_blocks
layout = tokenmix.layout_union(window, power)
out, lse = tokenmix.block_sparse_attention(q, k, v, layout)         # causality is in the layout
print(layout.block_density(), layout.to_mask().shape)                # [heads, q_length, k_length]
# snippet-end
assert out.shape == (Bt, L, H, P)
