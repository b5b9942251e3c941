#!/usr/bin/env python3
"""Fixtures for tests/hybrid/h3_fixture_test.cpp: the H3 layer computed in PyTorch (float64, from
float32 parameters and inputs) by our own transcription of the PUBLIC reference code named below.
Nothing is imported from that project (it needs its CUDA extensions and einops); each formula is
re-written here. Every case is computed by two independent formulations that must agree to 1e-12
(relative to the output's largest entry) before anything is written.

SOURCES TRANSCRIBED (HazyResearch/H3, src/models/ssm/)
  h3.py                  H3.forward with use_fast_fftconv = False (q/k/v projections as
                         W @ u.T + b in the 'h (b l)' layout; shift SSM on k as an rfft/irfft
                         convolution with fft_size = L_kernel + L, plus ssm_k_D·k; kv outer product
                         'b (h d1) l -> b d1 1 h l' x 'b (h d2) l -> b 1 d2 h l'; diagonal SSM as an
                         rfft convolution (kv_f / fft_size, irfft norm='forward') plus D·kv; Q
                         contraction summed over d1, channels 'b (d h) l'; output_linear)
                                                                      -> h3_forward_fft
                         H3.step (the recurrent form, one token at a time)  -> h3_forward_steps
  ss_kernel_shift.py     SSKernelShift.forward: k = irfft(conj(rfft(B, 2N))·rfft(C, 2N))[:min(N, L)],
                         zero-padded to L; step: state = pad(state, (1, -1)) + B·u, y = C·state
  ss_kernel_diag.py      SSKernelDiag (disc 'bilinear', real_type 'exp'): A = -exp(inv_A_real) +
                         i·A_imag, dt = exp(log_dt), C·B·dt/(1 - dtA/2), dA = (1 + dtA/2)/(1 - dtA/2),
                         kernel = log_vandermonde(C', log dA, L) = 2·Re(sum_n C'_n·exp(l·log dA_n));
                         _setup_step / step: dB = B·dt/(1 - dtA/2), S = dA·S + dB·u, y = 2·Re(C·S)
  ss_kernel.py           SSKernel init: shift mode B = e_1, C kaiming-uniform; diag-lin A_n = -0.5 +
                         iπn, C = randn·B (here perturbed so that no term is trivially 1 or 0)

CASES (tests/data/h3/<case>/; u, out [B, L, D]; weights named as tokenmix::hybrid::H3Weights, i.e.
the state dict names with '.' -> '_', view_as_real tensors [.., 2], the channels axis of C dropped):
  hd1   B 2, L 13, D 8, N 8, head_dim 1 (the released checkpoints' head_dim), L > N
  hd2   B 1, L 11, D 8, N 6, head_dim 2 (the (j, h) output channel order of the PyTorch path)

Run with Debian's python3-torch:  /usr/bin/python3 tests/data/make_h3_fixture.py
"""
import math
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_default_dtype(torch.float64)


def make_params(D, N, hd, gen):
    H, M = D // hd, N // 2
    bound = 1.0 / math.sqrt(D)

    def uniform(*shape, lo=-bound, hi=bound):
        return (torch.rand(*shape, generator=gen) * (hi - lo) + lo).float()

    def normal(*shape, std=1.0):
        return (torch.randn(*shape, generator=gen) * std).float()

    p = {}
    for name in ("q_proj", "k_proj", "v_proj", "output_linear"):
        p[name + "_weight"] = uniform(D, D)
        p[name + "_bias"] = uniform(D)
    shift_B = torch.zeros(D, N)
    shift_B[:, 0] = 1.0
    p["ssm_k_kernel_B"] = (shift_B + normal(D, N, std=0.1).double()).float()  # trainable: not exactly e_1
    p["ssm_k_kernel_C"] = uniform(D, N, lo=-1.0 / math.sqrt(N), hi=1.0 / math.sqrt(N))
    p["ssm_k_D"] = normal(D)
    p["kernel_log_dt"] = uniform(H, lo=math.log(0.01), hi=math.log(0.5))  # larger dt than the init: a short L sees the kernel
    p["kernel_inv_A_real"] = (math.log(0.5) + normal(H, M, std=0.2).double()).float()
    p["kernel_A_imag"] = (math.pi * torch.arange(M).double().expand(H, M) + normal(H, M, std=0.1).double()).float()
    p["kernel_B"] = torch.stack([1.0 + normal(H, M, std=0.1).double(), normal(H, M, std=0.1).double()], -1).float()
    p["kernel_C"] = normal(H, M, 2, std=0.5)
    p["D"] = normal(H)
    return p


def linear(x, w, b):
    return x @ w.double().T + b.double()


def complex_of(t):
    return torch.complex(t[..., 0].double(), t[..., 1].double())


def diag_terms(p):
    dt = torch.exp(p["kernel_log_dt"].double())                          # [H]
    A = torch.complex(-torch.exp(p["kernel_inv_A_real"].double()), p["kernel_A_imag"].double())
    dtA = A * dt[:, None]
    B, C = complex_of(p["kernel_B"]), complex_of(p["kernel_C"])
    dA = (1.0 + dtA / 2) / (1.0 - dtA / 2)
    dB = B * dt[:, None] / (1.0 - dtA / 2)
    return dA, dB, C


def h3_forward_fft(u, p, hd):
    """H3.forward, use_fast_fftconv = False, layout [B, D, L] as the released code."""
    Bsz, L, D = u.shape
    H, N = D // hd, p["ssm_k_kernel_B"].shape[1]
    q, k, v = (linear(u, p[n + "_weight"], p[n + "_bias"]).transpose(1, 2) for n in ("q_proj", "k_proj", "v_proj"))
    # Shift SSM kernel (SSKernelShift.forward), L_kernel = L.
    Bs, Cs = p["ssm_k_kernel_B"].double(), p["ssm_k_kernel_C"].double()
    ks = torch.fft.irfft(torch.fft.rfft(Bs, n=2 * N).conj() * torch.fft.rfft(Cs, n=2 * N), n=2 * N)[..., : min(N, L)]
    if N < L:
        ks = torch.nn.functional.pad(ks, (0, L - N))
    fft_size = L + L
    shift = torch.fft.irfft(torch.fft.rfft(ks, n=fft_size) * torch.fft.rfft(k, n=fft_size), n=fft_size)[..., :L]
    k = shift + p["ssm_k_D"].double()[:, None] * k
    # Diagonal SSM kernel (SSKernelDiag.forward, bilinear): 2·Re(sum_n C'·exp(l·log dA)).
    dA, dB, C = diag_terms(p)
    Cp = C * dB
    vander = torch.exp(torch.log(dA)[..., None] * torch.arange(L).double())  # [H, M, L]
    K = 2 * (Cp[..., None] * vander).sum(-2).real                          # [H, L]
    kv = k.reshape(Bsz, H, hd, L).permute(0, 2, 1, 3)[:, :, None] * v.reshape(Bsz, H, hd, L).permute(0, 2, 1, 3)[:, None]
    kv_f = torch.fft.rfft(kv, n=fft_size) / fft_size                       # [B, d1, d2, H, L]
    y = torch.fft.irfft(kv_f * torch.fft.rfft(K, n=fft_size), n=fft_size, norm="forward")[..., :L]
    y = y + kv * p["D"].double()[:, None]
    qr = q.reshape(Bsz, H, hd, L).permute(0, 2, 1, 3)[:, :, None]          # [B, d1, 1, H, L]
    y = (qr * y).sum(dim=1)                                                 # [B, d2, H, L]
    y = y.reshape(Bsz, hd * H, L).transpose(1, 2)                           # channels (d2, h)
    return linear(y, p["output_linear_weight"], p["output_linear_bias"])


def h3_forward_steps(u, p, hd):
    """H3.step token by token from zero states (the recurrent form)."""
    Bsz, L, D = u.shape
    H, N = D // hd, p["ssm_k_kernel_B"].shape[1]
    Bs, Cs = p["ssm_k_kernel_B"].double(), p["ssm_k_kernel_C"].double()
    dA, dB, C = diag_terms(p)
    shift_state = torch.zeros(Bsz, D, N)
    diag_state = torch.zeros(Bsz, hd, hd, H, N // 2, dtype=torch.complex128)
    outs = []
    for t in range(L):
        ut = u[:, t]
        q, k, v = (linear(ut, p[n + "_weight"], p[n + "_bias"]) for n in ("q_proj", "k_proj", "v_proj"))
        shift_state = torch.nn.functional.pad(shift_state, (1, -1)) + Bs * k[..., None]
        k = (Cs * shift_state).sum(-1) + k * p["ssm_k_D"].double()
        kv = k.reshape(Bsz, H, hd).permute(0, 2, 1)[:, :, None] * v.reshape(Bsz, H, hd).permute(0, 2, 1)[:, None]
        diag_state = dA * diag_state + dB * kv[..., None]
        y = 2 * (C * diag_state).sum(-1).real + kv * p["D"].double()        # [B, d1, d2, H]
        qr = q.reshape(Bsz, H, hd).permute(0, 2, 1)[:, :, None]
        y = (qr * y).sum(dim=1).reshape(Bsz, hd * H)
        outs.append(linear(y, p["output_linear_weight"], p["output_linear_bias"]))
    return torch.stack(outs, 1)


def write_case(name, Bsz, L, D, N, hd, seed):
    gen = torch.Generator().manual_seed(seed)
    p = make_params(D, N, hd, gen)
    u = torch.randn(Bsz, L, D, generator=gen).float()
    out = h3_forward_fft(u.double(), p, hd)
    check = h3_forward_steps(u.double(), p, hd)
    rel = (out - check).abs().max().item() / out.abs().max().item()
    assert rel < 1e-12, f"{name}: FFT and recurrent formulations differ by {rel}"
    d = os.path.join(HERE, "h3", name)
    os.makedirs(d, exist_ok=True)
    tensors = dict(p, u=u, out=out.float())
    for key, value in tensors.items():
        np.save(os.path.join(d, key + ".npy"), value.float().numpy())
    print(f"{name}: B {Bsz} L {L} D {D} N {N} head_dim {hd}; formulations agree to {rel:.2e}")


if __name__ == "__main__":
    write_case("hd1", 2, 13, 8, 8, 1, seed=1)
    write_case("hd2", 1, 11, 8, 6, 2, seed=2)
