# docs/operators.md: tokenmix.neighborhood_attention.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
Bt, X, Y, H, P = 1, 16, 16, 2, 32
# snippet-begin
q, k, v = (rng.standard_normal((Bt, X, Y, H, P), dtype=np.float32) for _ in range(3))  # as natten.na2d
out = tokenmix.neighborhood_attention(q, k, v, kernel_size=7, dilation=(1, 2))      # [B, X, Y, H, Pv]
rpb = 0.1 * rng.standard_normal((H, 13, 13), dtype=np.float32)                      # [H, 2K-1, 2K-1]
out, lse = tokenmix.neighborhood_attention(q, k, v, kernel_size=7, rpb=rpb, return_lse=True)
out1d = tokenmix.neighborhood_attention(q[:, 0], k[:, 0], v[:, 0], kernel_size=5, is_causal=True)  # na1d
# snippet-end
assert out.shape == (Bt, X, Y, H, P) and lse.shape == (Bt, X, Y, H)
