#!/usr/bin/env python3
"""Fixtures for tests/reference/selective_scan_fixture_test.cpp.

Computes the Mamba-1 selective scan with a PyTorch formulation of mamba_ssm's `selective_scan_ref`
(state-spaces/mamba, mamba_ssm/ops/selective_scan_interface.py; re-written here from its semantics,
in mamba_ssm's own [B, D, L] layout, with torch's softplus), in float64, and stores the inputs
(transposed to tokenmix's token-major layout) and the outputs as float32 .npy files under
tests/data/selective_scan/<case>/.

Run with Debian's python3-torch:  /usr/bin/python3 tests/data/make_selective_scan_fixture.py
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """mamba_ssm semantics. u, delta, z: [b, d, l]; A: [d, n]; B, C: [d, n] (time-invariant),
    [b, n, l] or [b, g, n, l] (selective); D, delta_bias: [d]. Returns out [b, d, l], last_state [b, d, n]."""
    if delta_bias is not None:
        delta = delta + delta_bias[..., None]
    if delta_softplus:
        delta = F.softplus(delta)  # beta=1, threshold=20
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    is_variable_B, is_variable_C = B.dim() >= 3, C.dim() >= 3
    if B.dim() == 4:  # grouped: repeat each group over dim // g contiguous channels
        B = B.repeat_interleave(dim // B.shape[1], dim=1)
    if C.dim() == 4:
        C = C.repeat_interleave(dim // C.shape[1], dim=1)
    x = A.new_zeros((batch, dim, dstate))
    ys = []
    deltaA = torch.exp(torch.einsum('bdl,dn->bdln', delta, A))
    if not is_variable_B:
        deltaB_u = torch.einsum('bdl,dn,bdl->bdln', delta, B, u)
    elif B.dim() == 3:
        deltaB_u = torch.einsum('bdl,bnl,bdl->bdln', delta, B, u)
    else:
        deltaB_u = torch.einsum('bdl,bdnl,bdl->bdln', delta, B, u)
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        if not is_variable_C:
            y = torch.einsum('bdn,dn->bd', x, C)
        elif C.dim() == 3:
            y = torch.einsum('bdn,bn->bd', x, C[:, :, i])
        else:
            y = torch.einsum('bdn,bdn->bd', x, C[:, :, :, i])
        ys.append(y)
    y = torch.stack(ys, dim=2)  # [b, d, l]
    out = y if D is None else y + u * D[:, None]
    if z is not None:
        out = out * F.silu(z)
    return out, x


def save(case, **arrays):
    folder = os.path.join(HERE, 'selective_scan', case)
    os.makedirs(folder, exist_ok=True)
    for name, a in arrays.items():
        np.save(os.path.join(folder, name + '.npy'), np.ascontiguousarray(a.detach().numpy().astype(np.float32)))


def make_case(case, seed, batch, length, dim, dstate, groups, *, B_form, C_form, use_D, use_z, use_bias, softplus):
    g = torch.Generator().manual_seed(seed)
    randn = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    # Inputs are rounded to float32 first so the C++ oracle sees exactly the same values.
    f32 = lambda t: t.float().double()
    u = f32(randn(batch, dim, length))
    if softplus:
        delta = f32(randn(batch, dim, length) * 0.5)
    else:
        delta = f32(torch.rand(batch, dim, length, generator=g, dtype=torch.float64) * 0.2 + 0.001)
    A_log = torch.log(torch.arange(1, dstate + 1, dtype=torch.float64)).repeat(dim, 1) + 0.1 * randn(dim, dstate)
    A = f32(-torch.exp(A_log))
    operands = {}
    for name, form in (('B', B_form), ('C', C_form)):
        if form == 'time_invariant':
            operands[name] = f32(randn(dim, dstate))
        elif form == 'single':
            operands[name] = f32(randn(batch, dstate, length))
        else:
            operands[name] = f32(randn(batch, groups, dstate, length))
    D = f32(torch.rand(dim, generator=g, dtype=torch.float64) + 0.5) if use_D else None
    z = f32(randn(batch, dim, length)) if use_z else None
    bias = f32(torch.rand(dim, generator=g, dtype=torch.float64) * -4.0 - 1.0) if use_bias else None
    out, last = selective_scan_ref(u, delta, A, operands['B'], operands['C'], D, z, bias, softplus)

    tokens = lambda t: t.permute(0, 2, 1)  # [b, d, l] -> [b, l, d]
    def operand_tokens(t):  # mamba_ssm layout -> tokenmix layout
        if t.dim() == 2:
            return t                    # [d, n]
        if t.dim() == 3:
            return t.permute(0, 2, 1)   # [b, n, l] -> [b, l, n]
        return t.permute(0, 3, 1, 2)    # [b, g, n, l] -> [b, l, g, n]
    arrays = dict(u=tokens(u), delta=tokens(delta), A=A, B=operand_tokens(operands['B']),
                  C=operand_tokens(operands['C']), out=tokens(out), last_state=last)
    if D is not None:
        arrays['D'] = D
    if z is not None:
        arrays['z'] = tokens(z)
    if bias is not None:
        arrays['delta_bias'] = bias
    save(case, **arrays)


if __name__ == '__main__':
    # Mamba-1 block configuration: single B/C group, D skip, z gate, dt bias + softplus.
    make_case('mamba_block', 1, batch=2, length=19, dim=12, dstate=16, groups=1, B_form='single',
              C_form='single', use_D=True, use_z=True, use_bias=True, softplus=True)
    # Grouped B/C (G = 3 over D = 9), odd N, no gate.
    make_case('grouped', 2, batch=1, length=23, dim=9, dstate=7, groups=3, B_form='grouped',
              C_form='grouped', use_D=True, use_z=False, use_bias=True, softplus=True)
    # Time-invariant B, selective C, raw positive delta without softplus or bias (S4-like).
    make_case('time_invariant_B', 3, batch=2, length=11, dim=5, dstate=4, groups=1, B_form='time_invariant',
              C_form='single', use_D=False, use_z=True, use_bias=False, softplus=False)
    # Both time-invariant.
    make_case('time_invariant_BC', 4, batch=1, length=8, dim=3, dstate=2, groups=1, B_form='time_invariant',
              C_form='time_invariant', use_D=True, use_z=False, use_bias=False, softplus=False)
    print('fixtures written to', os.path.join(HERE, 'selective_scan'))
