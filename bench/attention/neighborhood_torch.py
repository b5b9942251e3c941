#!/usr/bin/env python3
"""Neighborhood attention in PyTorch on this machine's CPU, at bench/attention/neighborhood_bench.cpp's shapes.

Times the formulation a researcher writes in plain PyTorch when NATTEN's kernels are not at hand (fp32,
batch 1, H 4 heads, head size P = Pv 32, scale 1/sqrt(P), non-causal, stride 1, no rpb), one output line
per case, named like the C++ benchmark's case:
  BM_NeighborhoodAttention1d_Fused/L:{4096,65536}/K:{7,65}/dil:1/H:4/P:32
  BM_NeighborhoodAttention2d_Fused/X:56/Y:56/K:7/dil:1/H:4/P:32
  BM_NeighborhoodAttention3d_Fused/X:8/Y:28/Z:28/K:7/dil:1/H:4/P:32          kernel 3x7x7 (as the C++ case)
        gather: per axis, the [L_a, K_a] table of each query coordinate's key coordinates by NATTEN's rule
        (attention/neighborhood_types.hpp: dilation groups g = i mod d; centre clamp(i div d, K div 2,
        L_g - 1 - (K div 2 + K mod 2 - 1)); keys (centre - K div 2 + n) * d + g, n < K: always K keys, the
        window shifted inward at the borders), combined into one [T, S] table of flat key tokens
        (T = prod X_a tokens, S = prod K_a slots, built once outside the timed region); then per chunk of
        queries: k_win = k.index_select(tokens) -> [H, Tc, S, P] (likewise v),
        logits = einsum('htp,htsp->hts', q, k_win) * scale, softmax(-1), einsum('hts,htsp->htp', ., v_win).
        Chunks hold at most --chunk-mib MiB of gathered k (or v) window each: the whole gather of 1-D
        L 65536 K 65 would be 2.2 GiB per tensor.
  ... [masked dense]  the dense formulation with the neighbourhood as a [T, T] bool mask (True = masked out,
        scattered from the same table outside the timed region, as attention_torch.py's masks):
        softmax((q @ k^T * scale).masked_fill(mask, -inf)) @ v; only where the [H, T, T] fp32 scores fit
        --dense-max-gib (not 1-D L 65536: 64 GiB).

Layout: q, k, v are contiguous [H, T, P] (B = 1, the tokens flattened row-major like the C++ layout);
our operator takes [B, X.., H, P]: the transposes between the two are NOT timed.
Rates: GFLOP/s counts only the useful products, as the C++ counter: 2 * (P + Pv) flops per (query, head,
window key), S window keys per query (the masked dense formulation computes all T keys: the rate does not
credit the masked work); ns/token = time / T. Times are the median of >= 3 timed runs after one warm-up
run (more runs, up to --max-runs, while the case has run for less than --min-time).

Threads: torch.set_num_threads(--threads) (default 1, like the C++ bench); OpenBLAS sizes its pool when
it is loaded, so the script re-executes itself with OPENBLAS_NUM_THREADS=--threads (and
OMP_WAIT_POLICY=passive) set before torch is imported, as attention_torch.py does; --malloc thp (default)
also sets GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (see attention_torch.py: first-touch 4 KiB page faults in
this VM would otherwise dominate the large gathers).
Run with Debian's python3-torch (and OpenBLAS: apt-get install -y libopenblas0-pthread):
    /usr/bin/python3 bench/attention/neighborhood_torch.py [--threads 1] [--malloc thp|default]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from torch_blas import (add_common_args, anon_huge_pages, print_setup, reexec_with_blas_env,  # noqa: E402
                        time_case)  # (bench/support/torch_blas.py)

H, P = 4, 32
DEPTH_KERNEL = 3  # the 3-D case's kernel on its first (depth) axis: 3 x K x K, as neighborhood_bench.cpp
# (name, extents, K, dilation)
CASES = (
    ('BM_NeighborhoodAttention1d_Fused/L:4096/K:7/dil:1/H:4/P:32', (4096,), 7, 1),
    ('BM_NeighborhoodAttention1d_Fused/L:65536/K:7/dil:1/H:4/P:32', (65536,), 7, 1),
    ('BM_NeighborhoodAttention1d_Fused/L:4096/K:65/dil:1/H:4/P:32', (4096,), 65, 1),
    ('BM_NeighborhoodAttention1d_Fused/L:65536/K:65/dil:1/H:4/P:32', (65536,), 65, 1),
    ('BM_NeighborhoodAttention2d_Fused/X:56/Y:56/K:7/dil:1/H:4/P:32', (56, 56), 7, 1),
    ('BM_NeighborhoodAttention3d_Fused/X:8/Y:28/Z:28/K:7/dil:1/H:4/P:32', (8, 28, 28), 7, 1),
)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])

    def own_args(p):
        p.add_argument('--chunk-mib', type=float, default=32,
                       help='largest gathered k (or v) window per chunk of queries, MiB (default 32)')
        p.add_argument('--dense-max-gib', type=float, default=1.0,
                       help='run the masked dense formulation when its [H, T, T] scores fit this (default 1 GiB)')

    return add_common_args(p, own_args, filter_arg=True).parse_args()


if __name__ == '__main__':
    # Before torch is imported: OpenBLAS reads OPENBLAS_NUM_THREADS when it is loaded.
    a = parse_args()
    reexec_with_blas_env(a, __file__)

import itertools  # noqa: E402
import math  # noqa: E402

import torch  # noqa: E402


# ---------------------------------------------------------------------------------------------
# The window rule (NATTEN >= 0.20, attention/neighborhood_types.hpp)

def axis_window(i, L, K, d, s=1, causal=False):
    """neighborhood_axis_window of neighborhood_types.hpp, one query: the list of its key coordinates."""
    g, ii = i % d, i // d
    Lg = (L - g + d - 1) // d
    if causal:
        leader = min((ii // s) * s + s - 1, Lg - 1)
        lo, hi = max(leader - K + 1, 0), ii
    else:
        left, right = K // 2, K // 2 + K % 2 - 1
        leader = min((ii // s) * s + s // 2, Lg - 1)
        c = min(max(leader, left), Lg - 1 - right)
        lo, hi = c - left, c + right
    return [n * d + g for n in range(lo, hi + 1)]


def axis_index(L, K, d):
    """[L, K] int64: the key coordinates of every query coordinate along one axis (non-causal, stride 1)."""
    i = torch.arange(L)
    g, ii = i % d, i // d
    Lg = (L - g + d - 1) // d
    left, right = K // 2, K // 2 + K % 2 - 1
    c = torch.minimum(torch.clamp(ii, min=left), Lg - 1 - right)
    return (c - left)[:, None] * d + g[:, None] + torch.arange(K)[None, :] * d


def neighborhood_index(extent, kernel, dilation):
    """[T, S] int64: the flat key tokens of every query token (row-major tokens, slot order of the C++ ops:
    slot = sum_a n_a * prod_{b > a} K_b)."""
    R = len(extent)
    idx = torch.zeros([1] * (2 * R), dtype=torch.int64)
    for a in range(R):
        stride = math.prod(extent[a + 1:])
        t = axis_index(extent[a], kernel[a], dilation[a]) * stride               # [X_a, K_a]
        shape = [1] * (2 * R)
        shape[a], shape[R + a] = extent[a], kernel[a]
        idx = idx + t.view(shape)                                                 # [X.., K..]
    return idx.reshape(math.prod(extent), math.prod(kernel))


# ---------------------------------------------------------------------------------------------
# Formulations ([H, T, P] fp32)

def na_gather(q, k, v, idx, chunk):
    """Neighborhood attention by gathering each chunk of queries' key and value windows."""
    Hh, T, Pq = q.shape
    S, Pv = idx.shape[1], v.shape[-1]
    scale = 1.0 / math.sqrt(Pq)
    out = torch.empty(Hh, T, Pv)
    for t0 in range(0, T, chunk):
        t1 = min(t0 + chunk, T)
        flat = idx[t0:t1].reshape(-1)
        k_win = k.index_select(1, flat).view(Hh, t1 - t0, S, Pq)
        v_win = v.index_select(1, flat).view(Hh, t1 - t0, S, Pv)
        logits = torch.einsum('htp,htsp->hts', q[:, t0:t1], k_win) * scale
        out[:, t0:t1] = torch.einsum('hts,htsp->htp', torch.softmax(logits, dim=-1), v_win)
    return out


def neighborhood_mask(idx):
    """[T, T] bool, True = masked out: key j is not in query t's neighbourhood."""
    T = idx.shape[0]
    return torch.ones(T, T, dtype=torch.bool).scatter_(1, idx, False)


def na_masked_dense(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(q.shape[-1]))
    return torch.softmax(scores.masked_fill(mask, float('-inf')), dim=-1) @ v


def chunk_tokens(S, chunk_mib):
    return max(1, int(chunk_mib * 2**20 // (H * S * P * 4)))


# ---------------------------------------------------------------------------------------------
# Timing and reporting

def report(name, seconds, times, flops, tokens, extra=''):
    print(f'{name:86s} {seconds * 1e3:10.3f} ms {seconds / tokens * 1e9:9.1f} ns/token '
          f'{flops / seconds / 1e9:7.2f} GFLOP/s  runs={len(times)} '
          f'(min {min(times) * 1e3:.3f}, max {max(times) * 1e3:.3f} ms){extra}', flush=True)


def inputs(T, gen):
    return tuple(torch.randn(H, T, P, generator=gen) for _ in range(3))


def check(gen):
    """The vectorised window table follows the scalar rule; the gather formulation (chunked) equals a
    per-query loop over the window keys and the masked dense formulation, in 1-D, 2-D and 3-D."""
    by_hand = (((0, 10, 3, 1), [0, 1, 2]), ((9, 10, 3, 1), [7, 8, 9]), ((5, 10, 4, 1), [3, 4, 5, 6]),
               ((9, 10, 3, 3), [3, 6, 9]), ((7, 10, 3, 3), [1, 4, 7]), ((0, 10, 3, 3), [0, 3, 6]))
    for (i, L, K, d), keys in by_hand:                                  # neighborhood_attention_test.cpp's
        assert axis_window(i, L, K, d) == keys, (i, L, K, d)
    for L in range(1, 24):
        for K in range(1, L + 1):
            for d in range(1, L // K + 1):
                table = axis_index(L, K, d).tolist()
                assert all(table[i] == axis_window(i, L, K, d) for i in range(L)), (L, K, d)
    for extent, kernel, dilation in (((37,), (5,), (3,)), ((12, 9), (4, 3), (2, 3)), ((5, 7, 6), (3, 3, 2), (1, 2, 3))):
        T = math.prod(extent)
        q, k, v = inputs(T, gen)
        idx = neighborhood_index(extent, kernel, dilation)
        got = na_gather(q, k, v, idx, chunk=7)
        want = torch.empty_like(got)
        strides = [math.prod(extent[a + 1:]) for a in range(len(extent))]
        for t in range(T):
            coords = [(t // strides[a]) % extent[a] for a in range(len(extent))]
            per_axis = [axis_window(coords[a], extent[a], kernel[a], dilation[a]) for a in range(len(extent))]
            keys = [sum(c * s for c, s in zip(combo, strides)) for combo in itertools.product(*per_axis)]
            assert keys == idx[t].tolist(), (extent, t)
            w = torch.softmax(q[:, t:t + 1] @ k[:, keys].transpose(-2, -1) / math.sqrt(P), dim=-1)
            want[:, t:t + 1] = w @ v[:, keys]
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(na_masked_dense(q, k, v, neighborhood_mask(idx)), want, rtol=1e-4, atol=1e-5)
    print('check passed: window table == scalar rule (L < 24, all K, d); gather (chunked) == per-query loop '
          '== masked dense on 1-D 37, 2-D 12x9, 3-D 5x7x6 with dilation', flush=True)


def main():
    print_setup(a)
    gen = torch.Generator().manual_seed(7)
    print(f'fp32, B=1, H={H}, P=Pv={P}, non-causal, layout [H, T, P] (transposes from [B, X.., H, P] not timed); '
          f'median of >= 3 runs after a warm-up; GFLOP/s = 2*(P+Pv)*H*T*S / time (S = window keys); '
          f'gather chunks <= {a.chunk_mib:g} MiB', flush=True)
    if not a.skip_check:
        check(gen)
    start = time.perf_counter()
    for name, extent, K, dil in CASES:
        if a.filter not in name:
            continue
        kernel = (DEPTH_KERNEL, K, K) if len(extent) == 3 else (K,) * len(extent)
        T, S = math.prod(extent), math.prod(kernel)
        q, k, v = inputs(T, gen)
        idx = neighborhood_index(extent, kernel, (dil,) * len(extent))
        flops = 2 * (P + P) * H * T * S
        chunk = chunk_tokens(S, a.chunk_mib)
        t, runs = time_case(lambda: na_gather(q, k, v, idx, chunk), a.min_time, a.max_runs)
        report(name + ' [gather]', t, runs, flops, T,
               f'  S={S} chunk={min(chunk, T)} queries ({math.ceil(T / chunk)} chunks)')
        dense_gib = H * T * T * 4 / 2**30
        if dense_gib <= a.dense_max_gib:
            mask = neighborhood_mask(idx)
            t, runs = time_case(lambda: na_masked_dense(q, k, v, mask), a.min_time, a.max_runs)
            report(name + ' [masked dense]', t, runs, flops, T, f'  scores {dense_gib:.3g} GiB')
        else:
            print(f'{name + " [masked dense]":86s} skipped: [H, T, T] scores {dense_gib:.3g} GiB > '
                  f'--dense-max-gib {a.dense_max_gib:g}', flush=True)
    print(f'total timed-section wall time {time.perf_counter() - start:.1f} s; '
          f'AnonHugePages at the end: {anon_huge_pages()}', flush=True)


if __name__ == '__main__':
    main()
