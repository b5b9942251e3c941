# docs/operators.md: tokenmix.diagonal_ssm / tokenmix.s4d_discretize.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
Bt, L, D, Hp, M = 1, 128, 16, 16, 8
# snippet-begin
A = np.stack([-np.exp(rng.standard_normal((Hp, M))), rng.standard_normal((Hp, M))], -1).astype(np.float32)
Bc, Cc = (rng.standard_normal((Hp, M, 2), dtype=np.float32) for _ in range(2))   # complex as (re, im)
dt = np.full(Hp, 0.01, np.float32)
dA, C = tokenmix.s4d_discretize(A, Bc, Cc, dt, method="bilinear")   # H3's; "zoh" as S4D

x = rng.standard_normal((Bt, L, D), dtype=np.float32)
out, state = tokenmix.diagonal_ssm(x, dA, C, D=np.ones(Hp, np.float32))          # state [B, D, M, 2]
out2, state2 = tokenmix.diagonal_ssm(x, dA, C, D=np.ones(Hp, np.float32), initial_state=state)
# snippet-end
assert out.shape == (Bt, L, D) and state2.shape == (Bt, D, M, 2)
