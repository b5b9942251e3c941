# docs/operators.md: tokenmix.causal_conv1d / tokenmix.causal_conv1d_update.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
Bt, L, D, K = 2, 64, 32, 4
# snippet-begin
x = rng.standard_normal((Bt, L, D), dtype=np.float32)          # [B, L, D]
weight = 0.3 * rng.standard_normal((D, K), dtype=np.float32)   # conv1d weight [D, 1, K] squeezed
bias = np.zeros(D, np.float32)

out, state = tokenmix.causal_conv1d(x, weight, bias=bias, activation_silu=True)  # state [B, D, K-1]
x_t = rng.standard_normal((Bt, D), dtype=np.float32)
y_t, state = tokenmix.causal_conv1d_update(x_t, state, weight, bias=bias, activation_silu=True)
# mamba_ssm / HF conv_state [B, D, K] -> ours: conv_state[..., 1:]
# snippet-end
assert out.shape == (Bt, L, D) and y_t.shape == (Bt, D) and state.shape == (Bt, D, K - 1)
