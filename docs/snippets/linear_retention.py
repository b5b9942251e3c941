# docs/operators.md: tokenmix.retention.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
Bt, L, H, K, V = 1, 128, 4, 32, 64
# snippet-begin
q, k = (rng.standard_normal((Bt, L, H, K), dtype=np.float32) for _ in range(2))
v = rng.standard_normal((Bt, L, H, V), dtype=np.float32)
out, state = tokenmix.retention(q, k, v)                  # g_gamma = retention_log_decay(H)
out2, state2 = tokenmix.retention(q, k, v, initial_state=state)
# snippet-end
assert out.shape == (Bt, L, H, V) and state2.shape == (Bt, H, K, V)
