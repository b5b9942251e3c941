# docs/operators.md: tokenmix.attention.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
Bt, L, H, Hkv, P = 1, 96, 4, 2, 32
# snippet-begin
q = rng.standard_normal((Bt, L, H, P), dtype=np.float32)        # [B, Lq, H, P]
k, v = (rng.standard_normal((Bt, L, Hkv, P), dtype=np.float32) for _ in range(2))  # GQA
out, lse = tokenmix.attention(q, k, v, causal=True)            # out [B, Lq, H, Pv], lse [B, H, Lq]
step, _ = tokenmix.attention(q[:, -1:], k, v, causal=True)     # decode: q_offset defaults to Lk - 1
# snippet-end
assert out.shape == (Bt, L, H, P) and np.allclose(step[:, 0], out[:, -1], atol=1e-5)
