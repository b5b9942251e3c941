# docs/operators.md: tokenmix.Mass.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
C, nh, K, Bt, H, W = 16, 2, 3, 1, 24, 24
r = lambda *s: (0.2 * rng.standard_normal(s)).astype(np.float32)
# snippet-begin
w = {"qkv.weight": r(3 * C, C, 1, 1), "qkv.bias": r(3 * C), "gate.0.weight": r(C, C, 1, 1), "gate.0.bias": r(C),
     "gate.1.weight": r(C), "gate.1.bias": r(C), "gate.1.running_mean": r(C),
     "gate.1.running_var": np.ones(C, np.float32), "lepe.weight": r(C, 1, 5, 5), "lepe.bias": r(C),
     "norm.weight": r(C), "norm.bias": r(C), "proj.0.weight": r(C), "proj.0.bias": r(C),
     "proj.1.weight": r(C, C, 1, 1), "proj.1.bias": r(C), "rpb.0": r(nh // 2, 2 * K - 1, 2 * K - 1)}
w |= {"ssm." + k: v for k, v in {"conv2d.weight": r(C, 1, 5, 5), "conv2d.bias": r(C), "x_proj_weight": r(3, C),
      "dt_projs_weight": r(C, 1), "dt_projs_bias": r(C), "A_logs": r(C, 1), "Ds": r(C),
      "state_fusion.weight": r(nh, nh, 1, 1), "state_fusion.bias": r(nh)}.items()}
mass = tokenmix.Mass(w, channels=C, heads=nh, kernel_size=K)     # stages 1-3; global_mode=True for stage 4
y = mass.forward(rng.standard_normal((Bt, H, W, C), dtype=np.float32))   # [B, H, W, C]
print(mass.attn1.shape)                                          # [B, H, W, nh/2, K*K]
# snippet-end
assert y.shape == (Bt, H, W, C)
