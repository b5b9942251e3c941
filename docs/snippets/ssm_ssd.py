# docs/operators.md: tokenmix.ssd / tokenmix.ssd_state_update.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
Bt, L, H, P, G, N = 1, 100, 4, 16, 1, 32
# snippet-begin
x = rng.standard_normal((Bt, L, H, P), dtype=np.float32)
dt = rng.standard_normal((Bt, L, H), dtype=np.float32)
A = -np.exp(rng.standard_normal(H, dtype=np.float32))               # [H]
B, C = (rng.standard_normal((Bt, L, G, N), dtype=np.float32) for _ in range(2))

out, state = tokenmix.ssd(x, dt, A, B, C, D=np.ones(H, np.float32), dt_bias=np.zeros(H, np.float32),
                          dt_softplus=True, algorithm="auto", chunk_size=0)  # state [B, H, P, N]
y1, state = tokenmix.ssd_state_update(state, x[:, -1], dt[:, -1], A, B[:, -1], C[:, -1],
                                      dt_bias=np.zeros(H, np.float32), dt_softplus=True)  # one token
# snippet-end
assert out.shape == (Bt, L, H, P) and y1.shape == (Bt, H, P)
