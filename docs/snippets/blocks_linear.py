# docs/operators.md: tokenmix.linear.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
# snippet-begin
x = rng.standard_normal((2, 16, 64), dtype=np.float32)
weight = 0.1 * rng.standard_normal((96, 64), dtype=np.float32)     # nn.Linear [out_features, in_features]
bias = np.zeros(96, np.float32)
y = tokenmix.linear(x.reshape(-1, 64), weight, bias, threads=2)    # [B·L, N]
# snippet-end
assert y.shape == (32, 96)
