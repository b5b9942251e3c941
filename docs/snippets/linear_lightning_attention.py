# docs/operators.md: tokenmix.lightning_attention (+ _step).
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
Bt, L, H, K, V = 1, 128, 8, 32, 32
# snippet-begin
q, k = (rng.standard_normal((Bt, L, H, K), dtype=np.float32) for _ in range(2))
v = rng.standard_normal((Bt, L, H, V), dtype=np.float32)
slopes = tokenmix.tnl_slopes(H, 0, 24)            # TNL checkpoints; fla: fla_lightning_slopes(H, layer, n)
out, state = tokenmix.lightning_attention(q, k, v, slopes=slopes)          # scale 1, block 32
o1, state = tokenmix.lightning_attention_step(state, q[:, -1], k[:, -1], v[:, -1], slopes=slopes)
# snippet-end
assert out.shape == (Bt, L, H, V) and o1.shape == (Bt, H, V)
