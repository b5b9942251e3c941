# docs/operators.md: tokenmix.rms_norm / tokenmix.gated_rms_norm.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
# snippet-begin
x, gate = (rng.standard_normal((32, 48), dtype=np.float32) for _ in range(2))   # [M, D]
weight = np.ones(48, np.float32)
y = tokenmix.rms_norm(x, weight, 1e-5)                         # MambaRMSNorm
yg = tokenmix.gated_rms_norm(x, gate, weight, 1e-5, 16)        # group_size 16 (None: whole row)
# snippet-end
assert y.shape == (32, 48) and yg.shape == (32, 48)
