# docs/operators.md: tokenmix.H3Layer.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
D, N, Hh, M, Bt, L = 64, 16, 64, 8, 2, 40
r = lambda *s: (0.1 * rng.standard_normal(s)).astype(np.float32)
# snippet-begin
w = {f"{p}.weight": r(D, D) for p in ("q_proj", "k_proj", "v_proj", "output_linear")}  # H3's state dict
w |= {f"{p}.bias": r(D) for p in ("q_proj", "k_proj", "v_proj", "output_linear")}
w |= {"ssm_k_kernel.kernel.B": r(D, N), "ssm_k_kernel.kernel.C": r(1, D, N), "ssm_k_D": r(D), "D": r(Hh),
      "kernel.kernel.log_dt": r(Hh) - 3, "kernel.kernel.inv_A_real": r(Hh, M), "kernel.kernel.A_imag": r(Hh, M),
      "kernel.kernel.B": r(Hh, M, 2), "kernel.kernel.C": r(1, Hh, M, 2)}
h3 = tokenmix.H3Layer(w, d_model=D, d_state=N, head_dim=1)
u = rng.standard_normal((Bt, L, D), dtype=np.float32)
y = h3.forward(u)                                                  # [B, L, D] from zero state
y, state = h3.forward(u, state=h3.initial_state(Bt))               # {'shift_state', 'diagonal_state'}
y_t, state = h3.step(u[:, -1], state)                              # decode one token
# snippet-end
assert y.shape == (Bt, L, D) and y_t.shape == (Bt, D)
