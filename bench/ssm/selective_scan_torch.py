#!/usr/bin/env python3
"""The selective scan in PyTorch on this machine, for the README's comparison table.

Times two PyTorch formulations of the Mamba-1 scan on the benchmark's shape (B=1, L=2048, D=1536,
N=16, float32, delta_softplus + delta_bias + D + z, the Mamba block configuration):
  ref       mamba_ssm's selective_scan_ref formulation (deltaA / deltaB_u materialised as
            [B, D, L, N], then a Python loop over L), also transformers' MambaMixer.slow_forward;
  fused     the same recurrence with deltaA and deltaB_u precomputed by broadcasting and a loop
            body of two ops (addcmul, then the C readout as a multiply-sum).
Prints ns per token-channel for 1 and 2 threads. Run with Debian's python3-torch:
    /usr/bin/python3 bench/ssm/selective_scan_torch.py [--length L]
"""
import argparse
import time

import torch
import torch.nn.functional as F


def scan_ref(u, delta, A, B, C, D, z, delta_bias):
    # u, delta, z: [b, d, l]; A: [d, n]; B, C: [b, n, l]; D, delta_bias: [d]
    delta = F.softplus(delta + delta_bias[..., None])
    deltaA = torch.exp(torch.einsum('bdl,dn->bdln', delta, A))
    deltaB_u = torch.einsum('bdl,bnl,bdl->bdln', delta, B, u)
    x = u.new_zeros((u.shape[0], u.shape[1], A.shape[1]))
    ys = []
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        ys.append(torch.einsum('bdn,bn->bd', x, C[:, :, i]))
    y = torch.stack(ys, dim=2)
    return (y + u * D[:, None]) * F.silu(z)


def scan_fused_loop(u, delta, A, B, C, D, z, delta_bias):
    delta = F.softplus(delta + delta_bias[..., None])
    deltaA = torch.exp(delta.unsqueeze(-1) * A[:, None, :])                    # [b, d, l, n]
    deltaB_u = (delta * u).unsqueeze(-1) * B.transpose(1, 2).unsqueeze(1)      # [b, d, l, n]
    Ct = C.transpose(1, 2).unsqueeze(1)                                        # [b, 1, l, n]
    x = u.new_zeros((u.shape[0], u.shape[1], A.shape[1]))
    y = u.new_empty(u.shape)
    for i in range(u.shape[2]):
        x = torch.addcmul(deltaB_u[:, :, i], deltaA[:, :, i], x)
        y[:, :, i] = (x * Ct[:, :, i]).sum(-1)
    return (y + u * D[:, None]) * F.silu(z)


def best_time(fn, args, repeats):
    fn(*args)
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--length', type=int, default=2048)
    parser.add_argument('--channels', type=int, default=1536)
    parser.add_argument('--state', type=int, default=16)
    parser.add_argument('--repeats', type=int, default=3)
    a = parser.parse_args()
    torch.manual_seed(0)
    b, l, d, n = 1, a.length, a.channels, a.state
    u, delta, z = (torch.randn(b, d, l) for _ in range(3))
    B, C = torch.randn(b, n, l), torch.randn(b, n, l)
    A = -torch.arange(1, n + 1, dtype=torch.float32).repeat(d, 1)
    D, delta_bias = torch.ones(d), torch.full((d,), -4.0)
    args = (u, delta, A, B, C, D, z, delta_bias)
    torch.testing.assert_close(scan_ref(*args), scan_fused_loop(*args), rtol=1e-4, atol=1e-4)
    print(f'torch {torch.__version__}, B={b} L={l} D={d} N={n}, float32')
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, fn in (('ref (selective_scan_ref)', scan_ref), ('fused', scan_fused_loop)):
            t = best_time(fn, args, a.repeats)
            print(f'{name:26s} threads={threads}: {t * 1e3:8.1f} ms  {t * 1e9 / (b * l * d):7.2f} ns/token-channel')


if __name__ == '__main__':
    main()
