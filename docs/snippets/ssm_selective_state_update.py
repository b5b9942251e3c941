# docs/operators.md: tokenmix.selective_state_update.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
Bt, D, N = 2, 32, 16
# snippet-begin
state = np.zeros((Bt, D, N), np.float32)                     # e.g. selective_scan's last_state
x, dt, z = (rng.standard_normal((Bt, D), dtype=np.float32) for _ in range(3))
A = -np.exp(rng.standard_normal((D, N), dtype=np.float32))
B, C = (rng.standard_normal((Bt, 1, N), dtype=np.float32) for _ in range(2))   # [B, G, N]

y, state = tokenmix.selective_state_update(state, x, dt, A, B, C, D=np.ones(D, np.float32), z=z,
                                           dt_bias=np.zeros(D, np.float32), dt_softplus=True)
# y [B, D]; the new state is returned (the argument is not modified)
# snippet-end
assert y.shape == (Bt, D) and state.shape == (Bt, D, N)
