#!/usr/bin/env python3
"""Lightning / linear attention in PyTorch on this machine's CPU, at bench/linear/linear_attention_bench.cpp's shapes.

Times the formulations a researcher writes in plain PyTorch (fp32, batch 1, H 8 heads, K = V = 64; q, k, v
normal with standard deviation 1/8, as the C++ bench), one output line per case, named like the C++
benchmark's case plus the formulation in brackets. Lightning Attention (TransNormerLLM / Lightning
Attention-2): o_t = sum_{s <= t} lambda_h^(t - s) (q_t . k_s) v_s, lambda_h = exp(-slope_h), scale 1, with
TNL's slopes of layer 0 of 24 (tnl_slopes(8, 0, 24): the ALiBi slopes 2^(-(h+1)) times 1 + 1e-5).

  BM_LightningAttention_Simd/L:<L>/H:8/K:64/V:64  L in 256, 1024, 2048, 4096, 8192, 16384, 65536
    [chunked:64], [chunked:256]  the Lightning Attention-2 block form (OpenNLPLab's lightning_attn2 kernel
        written with torch matmuls), per block of b tokens and all heads at once:
            o   = ((Q_i K_i^T) * D) V_i + (Q_i * lambda^(l+1)) KV          D[l, s] = lambda^(l - s), s <= l
            KV  = lambda^b KV + (K_i * lambda^(b-1-s))^T V_i
        (KV: the state after the previous block's last token; the decay factors are built once outside the
        timed region, the last partial block's on the fly). Block 64 is the C++ default (and lightning_attn2's
        BLOCK); 256 is the size at which the torch loop's per-block overhead stops mattering.
    [quadratic]  OpenNLPLab's torch reference (lightning_attn/ops/torch/linear_attention.py, linear_attn):
        ((Q K^T) * M) V with the [H, L, L] decay mask M[h, t, s] = lambda_h^(t - s) (0 for s > t) built once
        outside the timed region; only where the [H, L, L] fp32 mask fits --dense-max-gib (L <= 4096 at the
        default 1 GiB: the mask, Q K^T and the product are three such tensors).
  BM_LightningAttention_Chunked/L:4096/H:8/K:64/V:64/block:{32,64,128,256}  [chunked:<block>]
  BM_LightningAttention_Recurrent/L:<L>/H:8/K:64/V:64  [recurrent]  the token loop (per token:
        KV = lambda KV + k^T v, o = q KV), only for L <= --recurrent-max-len (default 4096: ~40 us per token).
  BM_LightningAttention_Dense/L:<L>/H:8/K:64/V:64  [softmax]  causal softmax attention, P 64, as
        attention_torch.py's masked formulation (softmax((q k^T / 8).masked_fill(mask, -inf)) v), where the
        [H, L, L] scores fit --dense-max-gib.
  BM_LightningAttention_Decode/H:8/K:64/V:64  [step]  one token: KV = lambda KV + k^T v, o = q KV on a state
        [1, 8, 64, 64] (hot: the same state every step; ns per step, Python overhead included).
  BM_LinearAttention_Simd/causal:0/L:4096/H:8/K:64/V:64  [matmul]  o = scale Q (K^T V), scale 1/sqrt(K)
  BM_LinearAttention_Simd/causal:1/L:4096/H:8/K:64/V:64  [chunked:64]  the block form without decay, times scale
  BM_LinearAttention_Normalized/causal:1/L:4096/H:8/K:64/V:64  [chunked:64]  phi = elu + 1 on q and k (timed),
        the block form on [V | 1] (the last column accumulates the normaliser), o = scale num / (scale den + eps)

Layout: q, k, v are contiguous [B, H, L, K] (OpenNLPLab's layout, what the matmuls want). Our operators take
[B, L, H, K]; the transposes between the two are NOT timed.
Rates: ns/token = time / L; GFLOP/s (chunked forms only) counts what the C++ bench counts: per block of c
tokens and head, 2 K c(c+1)/2 (Q K^T) + 2 V c(c+1)/2 (the masked scores times V) + 2 c K V (Q KV) + 2 c K V
(the state update). Times are the median of >= 3 timed runs after one warm-up run (more runs, up to
--max-runs, while the case has run for less than --min-time).

Threads: torch.set_num_threads(--threads) (default 1, like the C++ bench); OpenBLAS sizes its pool when it is
loaded, so the script re-executes itself with OPENBLAS_NUM_THREADS=--threads (and OMP_WAIT_POLICY=passive)
set before torch is imported, as attention_torch.py does; --malloc thp (default) also sets
GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (see attention_torch.py: first-touch 4 KiB page faults in this VM would
otherwise dominate the quadratic form's [H, L, L] tensors).
Run with Debian's python3-torch (and OpenBLAS: apt-get install -y libopenblas0-pthread):
    /usr/bin/python3 bench/linear/linear_torch.py [--threads 1] [--malloc thp|default] [--filter STR]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from torch_blas import (add_common_args, anon_huge_pages, print_setup, reexec_with_blas_env,  # noqa: E402
                        time_case)  # (bench/support/torch_blas.py)

H, K, V = 8, 64, 64
INPUT_STD = 0.125
LAYER, NUM_LAYERS = 0, 24
SIMD_LENGTHS = (256, 1024, 2048, 4096, 8192, 16384, 65536)
SIMD_BLOCKS = (64, 256)
CHUNKED_BLOCKS = (32, 64, 128, 256)
RECURRENT_LENGTHS = (1024, 4096, 16384)
DENSE_LENGTHS = (1024, 2048, 4096, 8192)
LINEAR_L = 4096


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])

    def own_args(p):
        p.add_argument('--dense-max-gib', type=float, default=1.0,
                       help='run the [H, L, L] formulations (quadratic, softmax) when one such fp32 tensor fits '
                            'this (default 1 GiB)')
        p.add_argument('--recurrent-max-len', type=int, default=4096,
                       help='run the token loop up to this L (default 4096)')

    return add_common_args(p, own_args, filter_arg=True).parse_args()


if __name__ == '__main__':
    # Before torch is imported: OpenBLAS reads OPENBLAS_NUM_THREADS when it is loaded.
    a = parse_args()
    reexec_with_blas_env(a, __file__)

import math  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Slopes (linear/lightning_attention.hpp: alibi_slopes, tnl_slopes; OpenNLPLab's _build_slope_tensor)

def alibi_slopes(n):
    def power_of_2(m):
        start = 2 ** (-(2 ** -(math.log2(m) - 3)))
        return [start * start ** i for i in range(m)]
    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][:n - closest]


def tnl_slopes(n, layer, num_layers):
    factor = 1 - layer / (num_layers - 1) + 1e-5 if num_layers > 1 else 1 + 1e-5
    return torch.tensor([s * factor for s in alibi_slopes(n)], dtype=torch.float32)


# ---------------------------------------------------------------------------------------------
# Formulations ([B, H, L, K] fp32; slopes [H]; lambda_h = exp(-slopes[h]))

class BlockDecays:
    """The decay factors of one block size (built outside the timed region; cached per partial size)."""

    def __init__(self, slopes, block):
        self.slopes, self.block, self.cache = slopes.view(1, -1, 1, 1), block, {}
        self.get(block)

    def get(self, n):
        if n not in self.cache:
            i = torch.arange(n, dtype=torch.float32)
            above = i[None, :] > i[:, None]
            diag = torch.exp((-self.slopes * (i[:, None] - i[None, :])).masked_fill(above, float('-inf')))  # 0 above
            q_decay = torch.exp(-self.slopes * (i + 1).view(1, 1, n, 1))          # lambda^(l+1)
            k_decay = torch.exp(-self.slopes * (n - 1 - i).view(1, 1, n, 1))      # lambda^(n-1-s)
            block_decay = torch.exp(-self.slopes * n)                             # lambda^n
            self.cache[n] = (diag, q_decay, k_decay, block_decay)
        return self.cache[n]


def lightning_chunked(q, k, v, decays):
    """Lightning Attention-2's block form. Returns out [B, H, L, V] and the final state [B, H, K, V]."""
    B, Hh, L, Kd = q.shape
    block = decays.block
    out = torch.empty(B, Hh, L, v.shape[-1])
    kv = torch.zeros(B, Hh, Kd, v.shape[-1])
    for t0 in range(0, L, block):
        t1 = min(t0 + block, L)
        diag, q_decay, k_decay, block_decay = decays.get(t1 - t0)
        qi, ki, vi = q[:, :, t0:t1], k[:, :, t0:t1], v[:, :, t0:t1]
        o = torch.matmul(torch.matmul(qi, ki.transpose(-1, -2)) * diag, vi)
        o += torch.matmul(qi * q_decay, kv)
        out[:, :, t0:t1] = o
        kv = block_decay * kv + torch.matmul((ki * k_decay).transpose(-1, -2), vi)
    return out, kv


def lightning_recurrent(q, k, v, slopes):
    """The token loop: KV = lambda KV + k^T v, o = q KV."""
    B, Hh, L, Kd = q.shape
    lam = torch.exp(-slopes).view(1, Hh, 1, 1)
    out = torch.empty(B, Hh, L, v.shape[-1])
    kv = torch.zeros(B, Hh, Kd, v.shape[-1])
    for t in range(L):
        kv = torch.addcmul(lam * kv, k[:, :, t, :, None], v[:, :, t, None, :])
        out[:, :, t] = torch.matmul(q[:, :, t, None, :], kv).squeeze(-2)
    return out, kv


def decay_mask(slopes, L):
    """OpenNLPLab's get_full_mask, vectorised: [H, L, L], lambda^(t - s) for s <= t, else 0."""
    i = torch.arange(L, dtype=torch.float32)
    above = i[None, :] > i[:, None]
    return torch.exp((-slopes.view(-1, 1, 1) * (i[:, None] - i[None, :])).masked_fill(above, float('-inf')))


def lightning_quadratic(q, k, v, mask):
    """OpenNLPLab's torch reference linear_attn: ((Q K^T) * M) V."""
    return torch.matmul(torch.matmul(q, k.transpose(2, 3)) * mask, v)


def lightning_step(kv, q1, k1, v1, lam):
    """One decode token, q1 / k1 [B, H, 1, K], v1 [B, H, 1, V]; kv updated in place."""
    kv.mul_(lam).add_(torch.matmul(k1.transpose(-1, -2), v1))
    return torch.matmul(q1, kv)


def softmax_causal(q, k, v, mask):
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    return torch.matmul(torch.softmax(scores.masked_fill(mask, float('-inf')), dim=-1), v)


def causal_mask(L):
    return torch.ones(L, L, dtype=torch.bool).triu(1)


def linear_noncausal(q, k, v):
    return torch.matmul(q, torch.matmul(k.transpose(-1, -2), v)) * (1.0 / math.sqrt(q.shape[-1]))


def linear_causal(q, k, v, decays0):
    """Causal linear attention without decay (the block form with lambda = 1), scale 1/sqrt(K)."""
    return lightning_chunked(q, k, v, decays0)[0] * (1.0 / math.sqrt(q.shape[-1]))


def linear_normalized(q, k, v, decays0, eps=1e-10):
    """phi = elu + 1, causal, with the normaliser: the block form on [V | 1]."""
    fq, fk = F.elu(q) + 1, F.elu(k) + 1
    ones = torch.ones(*v.shape[:-1], 1)
    o = lightning_chunked(fq, fk, torch.cat([v, ones], dim=-1), decays0)[0]
    scale = 1.0 / math.sqrt(q.shape[-1])
    return scale * o[..., :-1] / (scale * o[..., -1:] + eps)


def chunked_flops(L, block):
    flops = 0
    for t0 in range(0, L, block):
        c = min(block, L - t0)
        tri = c * (c + 1) / 2
        flops += 2 * tri * K + 2 * tri * V + 4 * c * K * V
    return flops * H


# ---------------------------------------------------------------------------------------------
# Timing and reporting

def report(name, seconds, times, tokens, flops=0.0, extra=''):
    rate = f'{flops / seconds / 1e9:7.2f} GFLOP/s' if flops else ' ' * 15
    print(f'{name:78s} {seconds * 1e3:11.3f} ms {seconds / tokens * 1e9:10.1f} ns/token {rate}  '
          f'runs={len(times)} (min {min(times) * 1e3:.3f}, max {max(times) * 1e3:.3f} ms){extra}', flush=True)


def inputs(L, gen):
    return tuple(torch.randn(1, H, L, d, generator=gen) * INPUT_STD for d in (K, K, V))


def check(gen, slopes):
    """The formulations agree on L 300 (partial last blocks): block form (8, 64, 256) == token loop ==
    quadratic form; decode steps == token loop (outputs and state); the linear-attention forms == direct
    quadratic sums."""
    L = 300
    q, k, v = inputs(L, gen)
    want = lightning_quadratic(q, k, v, decay_mask(slopes, L))
    got_r, kv_r = lightning_recurrent(q, k, v, slopes)
    torch.testing.assert_close(got_r, want, rtol=1e-4, atol=1e-5)
    for block in (8, 64, 256):
        got, kv = lightning_chunked(q, k, v, BlockDecays(slopes, block))
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(kv, kv_r, rtol=1e-4, atol=1e-5)
    kv = torch.zeros(1, H, K, V)
    lam = torch.exp(-slopes).view(1, H, 1, 1)
    for t in range(L):
        o = lightning_step(kv, q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1], lam)
        torch.testing.assert_close(o[:, :, 0], want[:, :, t], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(kv, kv_r, rtol=1e-4, atol=1e-5)
    decays0 = BlockDecays(torch.zeros(H), 64)
    scale = 1 / math.sqrt(K)
    no_decay = decay_mask(torch.zeros(H), L)
    torch.testing.assert_close(linear_causal(q, k, v, decays0), lightning_quadratic(q, k, v, no_decay) * scale,
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(linear_noncausal(q, k, v), torch.matmul(torch.matmul(q, k.transpose(-1, -2)), v) * scale,
                               rtol=1e-4, atol=1e-5)
    fq, fk = F.elu(q) + 1, F.elu(k) + 1
    a = torch.matmul(fq, fk.transpose(-1, -2)).tril() * scale
    torch.testing.assert_close(linear_normalized(q, k, v, decays0),
                               torch.matmul(a, v) / (a.sum(-1, keepdim=True) + 1e-10), rtol=1e-4, atol=1e-5)
    print(f'check passed: on L {L}, block form (blocks 8, 64, 256) == token loop == quadratic (outputs and final '
          f'state); decode steps == token loop; linear attention (causal, non-causal, elu+1 normalised) == '
          f'quadratic sums', flush=True)


def main():
    print_setup(a)
    gen = torch.Generator().manual_seed(7)
    slopes = tnl_slopes(H, LAYER, NUM_LAYERS)
    print(f'fp32, B=1, H={H}, K={K}, V={V}, inputs N(0, {INPUT_STD}^2), layout [B, H, L, K] (transposes from '
          f'[B, L, H, K] not timed); Lightning slopes tnl_slopes({H}, {LAYER}, {NUM_LAYERS}) = '
          f'{[round(s, 5) for s in slopes.tolist()]}, scale 1; median of >= 3 runs after a warm-up', flush=True)
    if not a.skip_check:
        check(gen, slopes)
    start = time.perf_counter()
    mt, mr = a.min_time, a.max_runs
    want = lambda name: a.filter in name  # noqa: E731
    decays = {b: BlockDecays(slopes, b) for b in sorted(set(SIMD_BLOCKS + CHUNKED_BLOCKS))}
    fits = lambda L: H * L * L * 4 / 2**30 <= a.dense_max_gib  # noqa: E731

    for L in DENSE_LENGTHS:
        name = f'BM_LightningAttention_Dense/L:{L}/H:{H}/K:{K}/V:{V}'
        if not want(name):
            continue
        if not fits(L):
            print(f'{name + " [softmax]":78s} skipped: [H, L, L] scores {H * L * L * 4 / 2**30:.3g} GiB > '
                  f'--dense-max-gib {a.dense_max_gib:g}', flush=True)
            continue
        q, k, v = inputs(L, gen)
        mask = causal_mask(L)
        t, runs = time_case(lambda: softmax_causal(q, k, v, mask), mt, mr)
        report(name + ' [softmax]', t, runs, L)

    for L in SIMD_LENGTHS:
        name = f'BM_LightningAttention_Simd/L:{L}/H:{H}/K:{K}/V:{V}'
        if not want(name):
            continue
        q, k, v = inputs(L, gen)
        for block in SIMD_BLOCKS:
            t, runs = time_case(lambda: lightning_chunked(q, k, v, decays[block]), mt, mr)
            report(f'{name} [chunked:{block}]', t, runs, L, chunked_flops(L, block))
        if fits(L):
            mask = decay_mask(slopes, L)
            t, runs = time_case(lambda: lightning_quadratic(q, k, v, mask), mt, mr)
            report(name + ' [quadratic]', t, runs, L, extra=f'  mask {H * L * L * 4 / 2**30:.3g} GiB')
            del mask
        else:
            print(f'{name + " [quadratic]":78s} skipped: [H, L, L] mask {H * L * L * 4 / 2**30:.3g} GiB > '
                  f'--dense-max-gib {a.dense_max_gib:g}', flush=True)

    L = 4096
    q, k, v = inputs(L, gen)
    for block in CHUNKED_BLOCKS:
        name = f'BM_LightningAttention_Chunked/L:{L}/H:{H}/K:{K}/V:{V}/block:{block}'
        if want(name):
            t, runs = time_case(lambda: lightning_chunked(q, k, v, decays[block]), mt, mr)
            report(f'{name} [chunked:{block}]', t, runs, L, chunked_flops(L, block))

    for L in RECURRENT_LENGTHS:
        name = f'BM_LightningAttention_Recurrent/L:{L}/H:{H}/K:{K}/V:{V}'
        if not want(name):
            continue
        if L > a.recurrent_max_len:
            print(f'{name + " [recurrent]":78s} skipped: L > --recurrent-max-len {a.recurrent_max_len}', flush=True)
            continue
        q, k, v = inputs(L, gen)
        t, runs = time_case(lambda: lightning_recurrent(q, k, v, slopes), mt, mr)
        report(name + ' [recurrent]', t, runs, L)

    name = f'BM_LightningAttention_Decode/H:{H}/K:{K}/V:{V}'
    if want(name):
        q1, k1, v1 = (x[:, :, :1].contiguous() for x in inputs(1, gen))
        kv = torch.randn(1, H, K, V, generator=gen) * INPUT_STD
        lam = torch.exp(-slopes).view(1, H, 1, 1)
        steps = 1000
        t, runs = time_case(lambda: [lightning_step(kv, q1, k1, v1, lam) for _ in range(steps)], mt, mr)
        report(name + ' [step]', t / steps, [x / steps for x in runs], 1, extra=f'  (ns/token = ns per step; '
               f'{steps} steps per run, hot state)')

    L = LINEAR_L
    q, k, v = inputs(L, gen)
    decays0 = BlockDecays(torch.zeros(H), 64)
    for name, tag, fn in (
            (f'BM_LinearAttention_Simd/causal:0/L:{L}/H:{H}/K:{K}/V:{V}', 'matmul', lambda: linear_noncausal(q, k, v)),
            (f'BM_LinearAttention_Simd/causal:1/L:{L}/H:{H}/K:{K}/V:{V}', 'chunked:64',
             lambda: linear_causal(q, k, v, decays0)),
            (f'BM_LinearAttention_Normalized/causal:1/L:{L}/H:{H}/K:{K}/V:{V}', 'chunked:64',
             lambda: linear_normalized(q, k, v, decays0))):
        if want(name):
            t, runs = time_case(fn, mt, mr)
            report(f'{name} [{tag}]', t, runs, L)

    print(f'total timed-section wall time {time.perf_counter() - start:.1f} s; '
          f'AnonHugePages at the end: {anon_huge_pages()}', flush=True)


if __name__ == '__main__':
    main()
