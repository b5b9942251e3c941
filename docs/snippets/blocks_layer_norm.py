# docs/operators.md: tokenmix.layer_norm.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
# snippet-begin
x = rng.standard_normal((1, 8, 8, 32), dtype=np.float32)        # channels-last map
weight, bias = np.ones(32, np.float32), np.zeros(32, np.float32)
y = tokenmix.layer_norm(x.reshape(-1, 32), weight, bias, 1e-6).reshape(x.shape)   # LayerNorm2d
# snippet-end
assert y.shape == x.shape
