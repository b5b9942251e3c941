# docs/operators.md: tokenmix.neighborhood_qk / tokenmix.neighborhood_av.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
Bt, X, Y, H, P, K = 1, 14, 14, 2, 16, 7
# snippet-begin
q, k, v = (rng.standard_normal((Bt, X, Y, H, P), dtype=np.float32) for _ in range(3))
rpb = 0.1 * rng.standard_normal((H, 2 * K - 1, 2 * K - 1), dtype=np.float32)
logits = tokenmix.neighborhood_qk(q, k, kernel_size=K, dilation=2, rpb=rpb)   # [B, X, Y, H, K*K]
w = np.exp(logits - logits.max(-1, keepdims=True))
w /= w.sum(-1, keepdims=True)                                                # softmax over the slots
out = tokenmix.neighborhood_av(w, v, kernel_size=K, dilation=2)             # [B, X, Y, H, Pv]
# snippet-end
assert out.shape == (Bt, X, Y, H, P)
