# docs/operators.md: tokenmix.simple_gla (+ _step).
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
Bt, L, H, K, V = 1, 128, 4, 32, 32
# snippet-begin
q, k = (rng.standard_normal((Bt, L, H, K), dtype=np.float32) for _ in range(2))
v = rng.standard_normal((Bt, L, H, V), dtype=np.float32)
g = -0.1 * rng.random((Bt, L, H), dtype=np.float32)                   # per-token log decay (fla's g)
out, state = tokenmix.simple_gla(q, k, v, g=g)                        # or g_gamma=[H]; scale 1/sqrt(K)
o1, state = tokenmix.simple_gla_step(state, q[:, -1], k[:, -1], v[:, -1], g=g[:, -1])  # decode
# snippet-end
assert out.shape == (Bt, L, H, V) and o1.shape == (Bt, H, V)
