# docs/operators.md: tokenmix.dynamic_mask_attention, hax_attention, block_topk_attention, selective_attention.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
Bt, L, H, P = 1, 256, 2, 32
# snippet-begin
q, k, v = (rng.standard_normal((Bt, L, H, P), dtype=np.float32) for _ in range(3))
bias = tokenmix.dma_key_bias(v, 0.1 * rng.standard_normal((H, H * P), dtype=np.float32), -np.ones(H, np.float32))
dma, _ = tokenmix.dynamic_mask_attention(q, k, v, bias, 64, causal=True)        # top-64 keys per query
q2, k2 = (rng.standard_normal((Bt, L, 1, 16), dtype=np.float32) for _ in range(2))
R, scores = rng.standard_normal((16, 6), dtype=np.float32), rng.standard_normal((Bt, L), dtype=np.float32)
hax, _ = tokenmix.hax_attention(q2, k2, v[:, :, :1], R, scores, 64)            # LSH buckets + key selection
topk, _ = tokenmix.block_topk_attention(q, k, v, block=32, top_k=2)            # + sink and local blocks
tau = tokenmix.ssa_query_temperature(rng.standard_normal((Bt, H, L), dtype=np.float32), np.zeros(H, np.float32))
ssa, _ = tokenmix.selective_attention(q, k, v, tau, causal=True)
# snippet-end
assert dma.shape == hax.shape[:2] + (H, P) and ssa.shape == topk.shape
