# docs/operators.md: tokenmix.SeqBoatLayer.
import numpy as np
import tokenmix

rng = np.random.default_rng(0)
D, Z, E, N, W, M, Bt, L = 32, 16, 64, 4, 8, 128, 1, 60
r = lambda *s: (0.2 * rng.standard_normal(s)).astype(np.float32)
# snippet-begin
w = {"norm.norm.weight": np.ones(D, np.float32), "norm.norm.bias": r(D), "q_router_temp": r(1),
     "move.delta": r(D, N, 1), "move.alpha": r(D, N, 1), "move.beta": r(D, N, 1), "move.gamma": r(D, N),
     "move.omega": r(D), "hx_proj.weight": r(2 + D, D), "hx_proj.bias": r(2 + D),
     "mx_proj.weight": r(Z + 2 * E, D), "mx_proj.bias": r(Z + 2 * E), "gamma": r(2, Z), "beta": r(2, Z),
     "h_proj.weight": r(D, E), "h_proj.bias": r(D), "rel_pos_bias.rel_pos_bias": r(2 * M - 1)}
layer = tokenmix.SeqBoatLayer(w, d_model=D, zdim=Z, hdim=E, ndim=N, window=W, max_positions=M)
x = rng.standard_normal((Bt, L, D), dtype=np.float32)
y = layer.forward(x)                                             # [B, L, D]; layer.activated per row
y, state = layer.forward(x, state=layer.initial_state(Bt))      # streaming (causal layers)
y_t, state = layer.step(x[:, -1], state)
# snippet-end
assert y.shape == (Bt, L, D) and y_t.shape == (Bt, D)
