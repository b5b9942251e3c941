# docs/operators.md: tokenmix.depthwise_conv2d.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
# snippet-begin
x = rng.standard_normal((1, 20, 20, 32), dtype=np.float32)         # [B, H, W, C]
weight = 0.2 * rng.standard_normal((32, 5, 5), dtype=np.float32)   # Conv2d weight [C, 1, K, K] squeezed
y = tokenmix.depthwise_conv2d(x, weight, bias=np.zeros(32, np.float32), activation_silu=True)
# snippet-end
assert y.shape == x.shape
