# docs/operators.md: tokenmix.selective_scan_states.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
Bt, L, D, N = 1, 16, 8, 4
# snippet-begin
u, delta = (rng.standard_normal((Bt, L, D), dtype=np.float32) for _ in range(2))
A = -np.exp(rng.standard_normal((D, N), dtype=np.float32))
B = rng.standard_normal((Bt, L, N), dtype=np.float32)       # [B, L, N]: one group
C = np.ones((D, N), np.float32)                              # time-invariant [D, N]

out, states, last = tokenmix.selective_scan_states(u, delta, A, B, C, delta_softplus=True)
# states [B, L, D, N]: h_t after every token; states[:, -1] == last
# snippet-end
assert states.shape == (Bt, L, D, N) and np.array_equal(states[:, -1], last)
