#!/usr/bin/env python3
"""Attention in PyTorch on this machine's CPU, at bench/attention/attention_bench.cpp's shapes.

Times the formulation a researcher writes in plain PyTorch (fp32, batch 1, H 8 heads, head size P 64,
scale 1/sqrt(P)), one output line per case, named like the C++ benchmark's case:
  BM_Attention_Dense/causal:{0,1}/L:{1024,2048,4096,8192}/H:8/P:64
        scores = q @ k^T * scale; causal: scores.masked_fill(mask, -inf) with the [L, L] upper-triangle
        bool mask built once outside the timed region; softmax(-1); @ v.
  ... [sdpa]  the same through torch.nn.functional.scaled_dot_product_attention(is_causal=...) when
        it exists (PyTorch >= 2.0; 1.13 has none: detected, skipped with a printed note).
  BM_Attention_BlockSparse_SlidingWindow/L:8192/H:8/P:64/block:64/density_pct:10
        PyTorch has no block-sparse CPU kernel, so what users run is the dense formulation with a
        token mask: the same sliding-window mask as the C++ bench's layout (j <= i and i - j < window),
        built once outside the timed region, applied with masked_fill(-inf). The window is chosen as
        attention_bench.cpp's make_layout chooses it: window = x * block with the smallest x whose
        block layout keeps >= 10% of the causal block pairs (x = 6, window 384 at L 8192, i.e. about
        0.1 * (L + 1) / 2 tokens); the token density (kept pairs / causal pairs) is printed. L 32768 is
        skipped: one [L, L] fp32 score matrix is 4 GiB per head (32 GiB for 8 heads, a few alive at
        once), more than this machine has.
  BM_Attention_Decode/Lk:{4096,16384,32768,65536}/H:8/P:64
        one query against Lk cached keys: softmax(q @ K^T * scale) @ V, q [1, H, 1, P].

Layouts: q, k, v are contiguous [B, H, L, P] (the layout PyTorch's matmuls want). Our engine takes
[B, L, H, P]; the transposes between the two are NOT timed (they would add a copy of q, k, v and out).
Memory: the dense formulation materialises [B, H, L, L] fp32 scores: 2 GiB at L 8192 with 8 heads,
and scale / masked_fill / softmax each allocate another, so a causal L 8192 case peaks at ~4-6 GiB.

Rates: GFLOP/s counts 4 * P flops per kept (i, j) pair (QK^T and PV, like the C++ bench's counter):
dense non-causal L^2 pairs per head, causal L (L + 1) / 2 (PyTorch still computes all L^2: the
masked half is wasted work that the rate does not credit), sliding window the pairs the window keeps,
decode Lk per head (also GB/s of the K and V bytes read). Times are the median of >= 3 timed runs
after one warm-up run (more runs, up to --max-runs, while the case has run for less than --min-time).

Threads: torch.set_num_threads(--threads) (default 1, like the C++ bench); OpenBLAS sizes its pool
when it is loaded, so the script re-executes itself with OPENBLAS_NUM_THREADS=--threads (and
OMP_WAIT_POLICY=passive) set before torch is imported, as bench/blocks/mamba_torch.py does.
Memory: every op of the dense formulation allocates a fresh GiB-sized tensor, and in this Firecracker
VM a 4 KiB first-touch page fault costs ~12 us (~1.5 s to fault in 512 MiB, against ~0.05 s with 2 MiB
pages), which would swamp the arithmetic. --malloc thp (default) re-executes with
GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (glibc >= 2.35: malloc madvise()s its memory MADV_HUGEPAGE, so
the kernel's transparent huge pages, here in "madvise" mode, back it: what a THP=always distribution
does by default); the AnonHugePages the process ends with are printed. --malloc default measures glibc
as it comes (4 KiB pages, each score tensor a fresh mmap faulted in anew on every call). (mamba_torch's
mallopt "reuse" does not help here: torch's 64-byte-aligned posix_memalign requests do not fit the
same-size holes the freed score tensors leave, so the heap just grows.)
Run with Debian's python3-torch (and OpenBLAS: apt-get install -y libopenblas0-pthread):
    /usr/bin/python3 bench/attention/attention_torch.py [--threads 1] [--malloc thp|default]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from torch_blas import (add_common_args, anon_huge_pages, print_setup, reexec_with_blas_env,  # noqa: E402
                        time_case)  # (bench/support/torch_blas.py)

H, P, BLOCK, DENSITY_PCT = 8, 64, 64, 10
DENSE_LENGTHS = (1024, 2048, 4096, 8192)
SPARSE_LENGTHS = (8192, 32768)
DECODE_LENGTHS = (4096, 16384, 32768, 65536)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    return add_common_args(p).parse_args()


if __name__ == '__main__':
    # Before torch is imported: OpenBLAS reads OPENBLAS_NUM_THREADS when it is loaded.
    a = parse_args()
    reexec_with_blas_env(a, __file__)

import math  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SDPA = getattr(F, 'scaled_dot_product_attention', None)


# ---------------------------------------------------------------------------------------------
# Formulations ([B, H, L, P] fp32; mask: bool, True = masked out, broadcast over B and H)

def attention_matmul(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = scores.masked_fill(mask, float('-inf'))
    return torch.softmax(scores, dim=-1) @ v


def attention_sdpa(q, k, v, mask=None, causal=False):
    # SDPA's boolean attn_mask is True where attention is allowed: the complement of ours.
    return SDPA(q, k, v, attn_mask=None if mask is None else ~mask, is_causal=causal)


def causal_mask(L):
    return torch.ones(L, L, dtype=torch.bool).triu(1)


def sliding_window_mask(L, window):
    i = torch.arange(L)[:, None]
    j = torch.arange(L)[None, :]
    return ~((j <= i) & (i - j < window))


def sliding_window_window(L, block, density):
    """attention_bench.cpp's make_layout for SlidingWindow: window = x * block, the smallest x >= 2
    whose sliding_window_layout keeps >= density of the causal block pairs (or x = L / block).
    sliding_window_layout keeps block (qb, kb) iff kb <= qb and qb * block - (kb * block + block - 1)
    < window, i.e. qb - kb <= x: min(qb + 1, x + 1) blocks in block row qb."""
    nb = L // block
    causal_blocks = nb * (nb + 1) / 2
    x = 2
    while True:
        entries = sum(min(qb + 1, x + 1) for qb in range(nb))
        if entries / causal_blocks >= density or x >= nb:
            return x * block, entries / causal_blocks
        x += 1


def sliding_window_pairs(L, window):
    # kept (i, j) pairs of one head: j <= i, i - j < window
    return sum(min(i + 1, window) for i in range(L))


# ---------------------------------------------------------------------------------------------
# Timing and reporting

def report(name, seconds, times, flops, extra=''):
    print(f'{name:72s} {seconds * 1e3:11.3f} ms {flops / seconds / 1e9:8.2f} GFLOP/s  runs={len(times)} '
          f'(min {min(times) * 1e3:.3f}, max {max(times) * 1e3:.3f} ms){extra}', flush=True)


def inputs(Lq, Lk, gen):
    q = torch.randn(1, H, Lq, P, generator=gen)
    k = torch.randn(1, H, Lk, P, generator=gen)
    v = torch.randn(1, H, Lk, P, generator=gen)
    return q, k, v


def check(gen):
    """The formulations agree on a small shape: masked dense vs a per-query loop over the kept keys."""
    L, window = 300, 37
    q, k, v = inputs(L, L, gen)
    for mask, keep in ((None, lambda i: slice(0, L)), (causal_mask(L), lambda i: slice(0, i + 1)),
                       (sliding_window_mask(L, window), lambda i: slice(max(0, i - window + 1), i + 1))):
        got = attention_matmul(q, k, v, mask)
        want = torch.empty_like(got)
        for i in range(L):
            s = keep(i)
            w = torch.softmax(q[:, :, i:i + 1] @ k[:, :, s].transpose(-2, -1) / math.sqrt(P), dim=-1)
            want[:, :, i:i + 1] = w @ v[:, :, s]
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        if SDPA is not None:
            torch.testing.assert_close(attention_sdpa(q, k, v, mask), want, rtol=1e-4, atol=1e-5)
    if SDPA is not None:
        torch.testing.assert_close(attention_sdpa(q, k, v, causal=True),
                                   attention_matmul(q, k, v, causal_mask(L)), rtol=1e-4, atol=1e-5)
    print('check passed: masked dense (none / causal / sliding window) == per-query loop on L 300', flush=True)


def main():
    print_setup(a)
    gen = torch.Generator().manual_seed(7)
    print(f'fp32, B=1, H={H}, P={P}, layout [B, H, L, P] (transposes from [B, L, H, P] not timed); '
          f'median of >= 3 runs after a warm-up; GFLOP/s = 4*P*kept_pairs / time', flush=True)
    if SDPA is None:
        print(f'note: torch.nn.functional.scaled_dot_product_attention does not exist in torch '
              f'{torch.__version__} (added in 2.0): [sdpa] cases skipped', flush=True)
    if not a.skip_check:
        check(gen)
    start = time.perf_counter()
    mt, mr = a.min_time, a.max_runs

    # Dense
    for causal in (0, 1):
        for L in DENSE_LENGTHS:
            name = f'BM_Attention_Dense/causal:{causal}/L:{L}/H:{H}/P:{P}'
            q, k, v = inputs(L, L, gen)
            mask = causal_mask(L) if causal else None
            pairs = H * (L * (L + 1) / 2 if causal else L * L)
            t, runs = time_case(lambda: attention_matmul(q, k, v, mask), mt, mr)
            report(name, t, runs, 4 * P * pairs, f'  scores {H * L * L * 4 / 2**30:.3g} GiB')
            if SDPA is not None:
                t, runs = time_case(lambda: attention_sdpa(q, k, v, causal=bool(causal)), mt, mr)
                report(name + ' [sdpa]', t, runs, 4 * P * pairs)

    # Block-sparse (sliding window) as the masked dense formulation
    for L in SPARSE_LENGTHS:
        name = f'BM_Attention_BlockSparse_SlidingWindow/L:{L}/H:{H}/P:{P}/block:{BLOCK}/density_pct:{DENSITY_PCT}'
        window, block_density = sliding_window_window(L, BLOCK, DENSITY_PCT / 100)
        kept = sliding_window_pairs(L, window)
        density = kept / (L * (L + 1) / 2)
        if L > 8192:
            print(f'{name:72s} skipped: the masked dense formulation needs a [{L}, {L}] fp32 score '
                  f'matrix, {L * L * 4 / 2**30:.0f} GiB per head ({H * L * L * 4 / 2**30:.0f} GiB for '
                  f'{H} heads), beyond this machine\'s memory', flush=True)
            continue
        q, k, v = inputs(L, L, gen)
        mask = sliding_window_mask(L, window)
        t, runs = time_case(lambda: attention_matmul(q, k, v, mask), mt, mr)
        report(name, t, runs, 4 * P * H * kept,
               f'  window={window} density={density:.4f} (block density {block_density:.4f})')
        if SDPA is not None:
            t, runs = time_case(lambda: attention_sdpa(q, k, v, mask), mt, mr)
            report(name + ' [sdpa]', t, runs, 4 * P * H * kept)

    # Decode
    for Lk in DECODE_LENGTHS:
        name = f'BM_Attention_Decode/Lk:{Lk}/H:{H}/P:{P}'
        q, k, v = inputs(1, Lk, gen)
        kv_bytes = 2 * Lk * H * P * 4
        t, runs = time_case(lambda: attention_matmul(q, k, v), mt, mr)
        report(name, t, runs, 4 * P * H * Lk, f'  K+V {kv_bytes / t / 1e9:.2f} GB/s')
        if SDPA is not None:
            t, runs = time_case(lambda: attention_sdpa(q, k, v), mt, mr)
            report(name + ' [sdpa]', t, runs, 4 * P * H * Lk, f'  K+V {kv_bytes / t / 1e9:.2f} GB/s')
    print(f'total timed-section wall time {time.perf_counter() - start:.1f} s; '
          f'AnonHugePages at the end: {anon_huge_pages()}', flush=True)


if __name__ == '__main__':
    main()
