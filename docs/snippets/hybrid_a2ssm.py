# docs/operators.md: tokenmix.A2ssm.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
C, nh, K, N, R, Bt, H, W = 16, 2, 3, 1, 1, 1, 12, 12
r = lambda *s: (0.2 * rng.standard_normal(s)).astype(np.float32)
# snippet-begin
w = {"conv2d.weight": r(C, 1, 5, 5), "conv2d.bias": r(C), "x_proj_weight": r(R + 2 * N, C),
     "dt_projs_weight": r(C, R), "dt_projs_bias": r(C), "A_logs": r(C, N), "Ds": r(C),
     "state_fusion.weight": r(nh, nh, 1, 1), "state_fusion.bias": r(nh)}      # the released A2SSM
a2ssm = tokenmix.A2ssm(w, channels=C, heads=nh, kernel_size=K, d_state=N)   # dt_rank 0: ceil(C/16)
x_ms = rng.standard_normal((Bt, H, W, C), dtype=np.float32)
attn1 = attn2 = np.full((Bt, H, W, nh // 2, K * K), 1 / (K * K), np.float32)  # post-softmax maps
y = a2ssm.forward(x_ms, attn1, attn2, tokenmix.mass_dilation(H, W, K))    # [B, H, W, C]
# snippet-end
assert y.shape == (Bt, H, W, C)
