"""tokenmix's ssm bindings against independent PyTorch formulations written here (float64), and the
mapping of bad input to ValueError."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tokenmix


def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def scan_torch(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, h0=None):
    """The selective scan as mamba_ssm's selective_scan_ref, token-major: u, delta, z [B, L, D];
    A [D, N]; B, C [B, L, N] (one group); returns out [B, L, D], every state [B, L, D, N]."""
    u, delta, A, B, C = map(t64, (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + t64(delta_bias)
    if delta_softplus:
        delta = F.softplus(delta)
    b, L, d = u.shape
    h = torch.zeros(b, d, A.shape[1], dtype=torch.float64) if h0 is None else t64(h0).clone()
    ys, hs = [], []
    for t in range(L):
        h = torch.exp(delta[:, t, :, None] * A) * h + delta[:, t, :, None] * B[:, t, None, :] * u[:, t, :, None]
        hs.append(h)
        ys.append((h * C[:, t, None, :]).sum(-1))
    y = torch.stack(ys, 1)
    if D is not None:
        y = y + u * t64(D)
    if z is not None:
        y = y * F.silu(t64(z))
    return y.numpy(), torch.stack(hs, 1).numpy(), h.numpy()


def case(rng, b=2, L=37, d=20, n=5):
    return dict(
        u=rng.standard_normal((b, L, d), dtype=np.float32),
        delta=rng.standard_normal((b, L, d), dtype=np.float32) * 0.5,
        A=-np.exp(rng.standard_normal((d, n), dtype=np.float32) * 0.5),
        B=rng.standard_normal((b, L, n), dtype=np.float32),
        C=rng.standard_normal((b, L, n), dtype=np.float32),
    )


@pytest.mark.parametrize("threads", [1, 2])
def test_selective_scan_matches_torch(rng, threads):
    a = case(rng)
    d = a["u"].shape[2]
    D = rng.standard_normal(d, dtype=np.float32)
    z = rng.standard_normal(a["u"].shape, dtype=np.float32)
    bias = rng.standard_normal(d, dtype=np.float32) * 0.3
    h0 = rng.standard_normal((2, d, 5), dtype=np.float32)
    out, last = tokenmix.selective_scan(**a, D=D, z=z, delta_bias=bias, delta_softplus=True, initial_state=h0,
                                        threads=threads)
    ref, _, ref_last = scan_torch(**a, D=D, z=z, delta_bias=bias, delta_softplus=True, h0=h0)
    assert out.dtype == np.float32 and out.shape == a["u"].shape and last.shape == (2, d, 5)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(last, ref_last, rtol=1e-4, atol=1e-5)


def test_selective_scan_states_and_converted_inputs(rng):
    a = case(rng, b=1, L=16, d=9, n=3)
    # float64 and Fortran-order inputs are converted.
    a64 = {k: np.asfortranarray(v.astype(np.float64)) for k, v in a.items()}
    out, states, last = tokenmix.selective_scan_states(**a64)
    ref, ref_states, _ = scan_torch(**a)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(states, ref_states, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(states[:, -1], last)


def test_selective_state_update_steps_equal_the_scan(rng):
    a = case(rng, b=2, L=6, d=8, n=4)
    state = np.zeros((2, 8, 4), dtype=np.float32)
    outs = []
    for t in range(6):
        y, state = tokenmix.selective_state_update(state, a["u"][:, t], a["delta"][:, t], a["A"],
                                                   a["B"][:, t, None, :], a["C"][:, t, None, :])
        outs.append(y)
    ref, _, ref_last = scan_torch(**a)
    np.testing.assert_allclose(np.stack(outs, 1), ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state, ref_last, rtol=1e-4, atol=1e-5)


def test_bad_input_raises_value_error(rng):
    a = case(rng)
    with pytest.raises(ValueError, match=r"selective_scan: u has 2 dimensions .*expected 3: \[B, L, D\]"):
        tokenmix.selective_scan(**{**a, "u": a["u"][0]})
    with pytest.raises(ValueError, match=r"selective_scan: A must be a real-valued array \[D, N\]"):
        tokenmix.selective_scan(**{**a, "A": np.array([["x"]])})
    with pytest.raises(ValueError, match=r"selective_scan: delta has shape"):
        tokenmix.selective_scan(**{**a, "delta": a["delta"][:, :5]})
    with pytest.raises(ValueError, match=r"threads must be >= 1"):
        tokenmix.selective_scan(**a, threads=0)
    with pytest.raises(TypeError):
        tokenmix.selective_scan(a["u"], a["delta"], a["A"], a["B"], a["C"], None)  # D is keyword-only


def test_causal_conv1d_and_update_match_torch(rng):
    b, L, d, k = 2, 13, 7, 4
    x = rng.standard_normal((b, L, d), dtype=np.float32)
    w = rng.standard_normal((d, k), dtype=np.float32)
    bias = rng.standard_normal(d, dtype=np.float32)
    h0 = rng.standard_normal((b, d, k - 1), dtype=np.float32)
    out, final = tokenmix.causal_conv1d(x, w, bias=bias, activation_silu=True, initial_state=h0, threads=2)
    xt = torch.cat([t64(h0), t64(x).transpose(1, 2)], 2)  # [B, D, K-1+L]
    ref = F.silu(F.conv1d(xt, t64(w)[:, None, :], t64(bias), groups=d)).transpose(1, 2)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(final, xt[:, :, -(k - 1):].numpy(), rtol=0, atol=0)
    state = h0.copy()
    for t in range(L):
        y, state = tokenmix.causal_conv1d_update(x[:, t], state, w, bias=bias, activation_silu=True)
        np.testing.assert_allclose(y, out[:, t], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(h0, tokenmix.causal_conv1d(x[:, :0], w, initial_state=h0)[1])  # L = 0


def ssd_torch(x, dt, A, B, C, D=None, dt_bias=None, dt_softplus=False, h0=None):
    """Mamba-2's recurrence (ssd_minimal's meaning), float64: h = exp(dt·A)·h + dt·x ⊗ B; y = h·C + D·x."""
    x, dt, A, B, C = map(t64, (x, dt, A, B, C))
    if dt_bias is not None:
        dt = dt + t64(dt_bias)
    if dt_softplus:
        dt = F.softplus(dt)
    b, L, H, P = x.shape
    G, N = B.shape[2], B.shape[3]
    h = torch.zeros(b, H, P, N, dtype=torch.float64) if h0 is None else t64(h0).clone()
    g = torch.arange(H) // (H // G)
    ys = []
    for t in range(L):
        dA = torch.exp(dt[:, t] * A)  # [B, H]
        h = dA[:, :, None, None] * h + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, g][:, :, None, :]
        ys.append((h * C[:, t, g][:, :, None, :]).sum(-1))
    y = torch.stack(ys, 1)
    if D is not None:
        y = y + x * t64(D)[None, None, :, None]
    return y.numpy(), h.numpy()


@pytest.mark.parametrize("algorithm", ["chunked", "recurrent", "auto"])
def test_ssd_and_its_step_match_torch(rng, algorithm):
    b, L, H, P, G, N = 2, 19, 4, 6, 2, 5
    x = rng.standard_normal((b, L, H, P), dtype=np.float32)
    dt = rng.standard_normal((b, L, H), dtype=np.float32)
    A = -np.exp(rng.standard_normal(H, dtype=np.float32))
    B = rng.standard_normal((b, L, G, N), dtype=np.float32)
    C = rng.standard_normal((b, L, G, N), dtype=np.float32)
    D = rng.standard_normal(H, dtype=np.float32)
    bias = rng.standard_normal(H, dtype=np.float32) * 0.3
    h0 = rng.standard_normal((b, H, P, N), dtype=np.float32)
    out, final = tokenmix.ssd(x, dt, A, B, C, D=D, dt_bias=bias, dt_softplus=True, initial_state=h0,
                              algorithm=algorithm, chunk_size=8, threads=2)
    ref, ref_h = ssd_torch(x, dt, A, B, C, D=D, dt_bias=bias, dt_softplus=True, h0=h0)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(final, ref_h, rtol=1e-4, atol=1e-4)
    state = h0
    for t in range(3):
        y, state = tokenmix.ssd_state_update(state, x[:, t], dt[:, t], A, B[:, t], C[:, t], D=D, dt_bias=bias,
                                             dt_softplus=True)
        np.testing.assert_allclose(y, ref[:, t], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="algorithm must be 'auto', 'chunked' or 'recurrent'"):
        tokenmix.ssd(x, dt, A, B, C, algorithm="fast")


def test_diagonal_ssm_matches_its_convolution(rng):
    b, L, d, hp, m = 1, 17, 6, 3, 4
    x = rng.standard_normal((b, L, d), dtype=np.float32)
    Ac = np.stack([-np.exp(rng.standard_normal((hp, m))), rng.standard_normal((hp, m))], -1).astype(np.float32)
    Bc = rng.standard_normal((hp, m, 2), dtype=np.float32)
    Cc = rng.standard_normal((hp, m, 2), dtype=np.float32)
    dt = np.exp(rng.uniform(np.log(1e-2), np.log(1e-1), hp)).astype(np.float32)
    dA, CdB = tokenmix.s4d_discretize(Ac, Bc, Cc, dt, method="bilinear")
    # The bilinear rule and the kernel K[l] = 2 Re(sum_m C dB dA^l), written here in complex float64.
    a = torch.complex(t64(Ac[..., 0]), t64(Ac[..., 1]))
    dtt = t64(dt)[:, None]
    dA_ref = (1 + dtt * a / 2) / (1 - dtt * a / 2)
    CdB_ref = torch.complex(t64(Cc[..., 0]), t64(Cc[..., 1])) * torch.complex(t64(Bc[..., 0]), t64(Bc[..., 1])) * dtt / (1 - dtt * a / 2)
    np.testing.assert_allclose(dA[..., 0] + 1j * dA[..., 1], dA_ref.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(CdB[..., 0] + 1j * CdB[..., 1], CdB_ref.numpy(), rtol=1e-5, atol=1e-6)
    Dskip = rng.standard_normal(hp, dtype=np.float32)
    out, final = tokenmix.diagonal_ssm(x, dA, CdB, D=Dskip)
    kernel = 2 * (CdB_ref[:, :, None] * dA_ref[:, :, None] ** torch.arange(L)).sum(1).real  # [Hp, L]
    rows = np.arange(d) // (d // hp)
    ref = np.zeros((b, L, d))
    for t in range(L):
        for s in range(t + 1):
            ref[:, t] += kernel[rows, t - s].numpy() * x[:, s]
    ref += x * Dskip[rows]
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    assert final.shape == (b, d, m, 2)
    with pytest.raises(ValueError, match="method must be 'bilinear' or 'zoh'"):
        tokenmix.s4d_discretize(Ac, Bc, Cc, dt, method="euler")


def test_local_bidirectional_scan_matches_its_definition(rng):
    a = case(rng, b=1, L=20, d=6, n=3)
    M = 8
    out, _ = tokenmix.local_bidirectional_scan(**a, window=M)
    fwd, _, _ = scan_torch(**a)
    # The reverse pass inside each aligned window of M tokens; h = hL + hR - b_t counts b_t once.
    rev = np.zeros_like(fwd)
    for w0 in range(0, 20, M):
        sl = slice(w0, min(w0 + M, 20))
        part = {k: (v[:, sl][:, ::-1].copy() if k in ("u", "delta", "B", "C") else v) for k, v in a.items()}
        y, _, _ = scan_torch(**part)
        rev[:, sl] = y[:, ::-1]
    bt_c = (a["delta"][..., None] * a["B"][:, :, None, :] * a["u"][..., None] * a["C"][:, :, None, :]).sum(-1)
    np.testing.assert_allclose(out, fwd + rev - bt_c, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="local_bidirectional_scan: window"):
        tokenmix.local_bidirectional_scan(**a, window=0)


def test_cross_scan_2d_is_four_reordered_scans(rng):
    b, H, W, d, n = 1, 5, 7, 4, 3
    u = rng.standard_normal((b, H, W, d), dtype=np.float32)
    delta = rng.standard_normal((b, H, W, 4 * d), dtype=np.float32) * 0.5
    A = -np.exp(rng.standard_normal((4 * d, n), dtype=np.float32) * 0.5)
    B = rng.standard_normal((b, H, W, 4, n), dtype=np.float32)
    C = rng.standard_normal((b, H, W, 4, n), dtype=np.float32)
    out = tokenmix.cross_scan_2d(u, delta, A, B, C, threads=2)
    rm = np.arange(H * W)
    cm = np.arange(H * W).reshape(H, W).T.reshape(-1)
    ref = np.zeros((b, H * W, d))
    for k, order in enumerate([rm, cm, rm[::-1], cm[::-1]]):
        flat = lambda x: x.reshape(b, H * W, *x.shape[3:])[:, order]
        y, _, _ = scan_torch(flat(u), flat(delta)[..., k * d:(k + 1) * d], A[k * d:(k + 1) * d],
                             flat(B)[:, :, k], flat(C)[:, :, k])
        ref[:, order] += y
    np.testing.assert_allclose(out.reshape(b, H * W, d), ref, rtol=1e-4, atol=1e-4)
    # PlainMamba's snake orders share one parameter set.
    assert tokenmix.snake_scan_2d(u, delta[..., :d], A[:d], B[:, :, :, :1], C[:, :, :, :1]).shape == u.shape
    with pytest.raises(ValueError, match="cross_scan_2d: B has 4 dimensions"):
        tokenmix.cross_scan_2d(u, delta, A, B[:, :, :, 0], C)
    with pytest.raises(ValueError, match="variant must be 'v1' or 'v2'"):
        tokenmix.bidirectional_scan(u[0], delta[0], A, B[0], C[0], variant="v3")


def test_diagonal_ssm_step_equals_the_sequence(rng):
    b, L, d, hp, m = 2, 5, 4, 2, 3
    x = rng.standard_normal((b, L, d), dtype=np.float32)
    dA = (rng.standard_normal((hp, m, 2)) * 0.4).astype(np.float32)
    C = rng.standard_normal((hp, m, 2), dtype=np.float32)
    out, final = tokenmix.diagonal_ssm(x, dA, C)
    state = np.zeros((b, d, m, 2), dtype=np.float32)
    for t in range(L):
        y, state = tokenmix.diagonal_ssm_step(x[:, t], state, dA, C)
        np.testing.assert_array_equal(y, out[:, t])
    np.testing.assert_array_equal(state, final)


def test_selective_scan_equals_the_torch_formula_to_1e_5(rng):
    """The issue's promise: Mamba's usual setting (dt = softplus(delta + bias)) on NumPy arrays gives
    the PyTorch formula's numbers to 1e-5 (absolute; outputs O(10))."""
    a = case(rng, b=2, L=64, d=32, n=16)
    out, last = tokenmix.selective_scan(**a, delta_softplus=True)
    ref, _, ref_last = scan_torch(**a, delta_softplus=True)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(last, ref_last, rtol=0, atol=1e-5)
