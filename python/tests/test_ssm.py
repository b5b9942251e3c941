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
