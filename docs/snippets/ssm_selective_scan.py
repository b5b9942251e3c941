# docs/operators.md: tokenmix.selective_scan (the lines between the snippet markers are shown there).
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
Bt, L, D, N = 2, 64, 32, 16
# snippet-begin
u, delta, z = (rng.standard_normal((Bt, L, D), dtype=np.float32) for _ in range(3))  # [B, L, D]
A = -np.exp(rng.standard_normal((D, N), dtype=np.float32))                          # [D, N]
B, C = (rng.standard_normal((Bt, L, 1, N), dtype=np.float32) for _ in range(2))      # [B, L, G, N]
skip, dt_bias = np.ones(D, np.float32), np.full(D, -1.0, np.float32)

out, last = tokenmix.selective_scan(u, delta, A, B, C, D=skip, z=z, delta_bias=dt_bias,
                                    delta_softplus=True, threads=2)   # out [B, L, D], last [B, D, N]
out2, last2 = tokenmix.selective_scan(u, delta, A, B, C, D=skip, z=z, delta_bias=dt_bias,
                                      delta_softplus=True, initial_state=last)  # continue
# snippet-end
assert out.shape == (Bt, L, D) and last2.shape == (Bt, D, N)
