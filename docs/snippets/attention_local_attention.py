# docs/operators.md: tokenmix.local_attention.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
Bt, L, H, P, Pv, M = 1, 200, 2, 32, 64, 256
# snippet-begin
q, k = (rng.standard_normal((Bt, L, H, P), dtype=np.float32) for _ in range(2))
v = rng.standard_normal((Bt, L, H, Pv), dtype=np.float32)
bias = 0.1 * rng.standard_normal((H, 2 * M - 1), dtype=np.float32)        # rel_pos_bias [H, 2M-1]
positions = (np.arange(L) + np.arange(L) // 4)[None].astype(np.int64)     # [B, L], non-decreasing
out = tokenmix.local_attention(q, k, v, window=32, causal=True, kind="softmax",
                               positions=positions, rel_pos_bias=bias)    # [B, L, H, Pv]
# snippet-end
assert out.shape == (Bt, L, H, Pv)
