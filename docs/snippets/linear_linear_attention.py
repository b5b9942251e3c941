# docs/operators.md: tokenmix.linear_attention.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
Bt, L, H, K, V = 1, 128, 4, 32, 32
# snippet-begin
q, k = (rng.standard_normal((Bt, L, H, K), dtype=np.float32) for _ in range(2))
v = rng.standard_normal((Bt, L, H, V), dtype=np.float32)
out, state, z = tokenmix.linear_attention(q, k, v, causal=True, feature_map="elu_plus_one", normalize=True)
# out [B, L, H, V], state [B, H, K, V], z [B, H, K] (None without normalize)
out2, state2, z2 = tokenmix.linear_attention(q, k, v, feature_map="elu_plus_one", normalize=True,
                                             initial_state=state, initial_normalizer=z)
# snippet-end
assert out.shape == (Bt, L, H, V) and z2.shape == (Bt, H, K)
