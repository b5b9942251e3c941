#!/usr/bin/env python3
"""Fixtures for tests/attention/neighborhood_fixture_test.cpp: neighborhood attention (NA) with NATTEN's
semantics, computed in PyTorch (float64, from float32 inputs) without NATTEN, by two independent
formulations that must agree to 1e-12 before anything is written.

THE RULE (re-written here in our own words from SHI-Labs/NATTEN's public source)
Along one axis of length L with kernel K, dilation d, stride s, is_causal:
  * dilation group of token i: g = i % d, in-group coordinate i' = i // d; group length
    L_g = L // d + 1 - ((g + d - L % d) // d)   (= ceil((L - g) / d); the first L % d groups are one
    longer), from `qkv_fix_dilation` in csrc/include/natten/cuda/reference/mask.hpp and the
    "dilation_group_padding" lines of `get_na_flex_mask` in src/natten/backends/flex.py (>= 0.20).
    A query only sees keys of its own group.
  * non-causal: left = K // 2, right = K // 2 + K % 2 - 1; stride-group leader
    min((i' // s)·s + s // 2, L_g - 1); window centre = clamp(leader, left, L_g - 1 - right); keys are
    the in-group coordinates [centre - left, centre + right] (always K keys, shifted inward at borders).
    mask.hpp `get_win_start<false>` writes the start as
      max(leader - left, 0) + (leader + right >= L_g)·(L_g - right - leader - 1),   end = start + K.
  * causal: leader = min((i' // s)·s + s - 1, L_g - 1); keys [max(leader - K + 1, 0), i']
    (mask.hpp `get_win_start<true>` / `get_win_end<true>`: end = min(i' + 1, L_g); flex.py: kv' <= q' and
    leader - kv' < K).
  * global key = in-group coordinate·d + g; in 2-D / 3-D the neighbourhood is the product (AND) of the
    per-axis windows, with K, d, s, causal per axis. softmax(scale·q·k (+ rpb)) over it, scale defaulting
    to P^-0.5; GQA: query head h reads kv head h // (H / Hkv) (torch's enable_gqa, used by flex.py).
  * relative positional bias (legacy, NATTEN <= 0.17.x; odd K, non-causal, stride 1 only): the table is
    [H, 2K0-1, (2K1-1, (2K2-1))] and slot n of a query's window uses entry pb_start + n per axis, with
    `get_pb_start` from csrc/include/natten/cpu/naive/natten_cpu_commons.h (0.17.x), which equals
    (K - 1) + (j' - i') in group coordinates: border queries use off-centre entries.

FORMULATION A (dense mask, as NATTEN's Flex backend does): the boolean predicate of `get_na_flex_mask`
(single_dim_tiling_mask) over every (query, key) token pair, logits = scale·q·k + rpb[(K-1) + (j'-i')]
per axis, -inf outside the mask, dense softmax / logsumexp.
FORMULATION B (gather, as the legacy split ops na{1,2,3}d_qk / na{1,2,3}d_av do): per axis, the window
start / end of every query from mask.hpp's get_win_start / get_win_end (group coordinates) AND, where
the legacy ops are defined (stride 1, odd K or causal), from natten_cpu_commons.h's get_window_start /
get_window_end on global indices (asserted equal); the keys of slot n are start + n·d; the K0·K1·..
slots in row-major order (slot = n0·K1 + n1, as pointwise_neighborhood_2d.hpp stores attn), -inf in
slots past a causal end; rpb via get_pb_start + n. Keys / values gathered with torch indexing.

OUTPUTS (tests/data/neighborhood/<case>/), heads-last like tokenmix and NATTEN >= 0.20:
  q [B, X.., H, P], k [B, X.., Hkv, P], v [B, X.., Hkv, Pv] (float32 inputs), rpb [H, 2K-1 per axis]
  (when used), out [B, X.., H, Pv], lse [B, X.., H] (natural log), logits [B, X.., H, prod K] (case
  2d_dil_rpb only: NATTEN's legacy qk output = scale·q·k + rpb in slot order), and params.txt:
    rank R / kernel_size K0 .. / dilation d0 .. / stride s0 .. / causal c0 .. (0/1) / scale default|x / rpb 0|1
  which the test turns into attention::NeighborhoodParams<R>{kernel_size, dilation, stride, causal,
  scale} and ref::neighborhood_attention<R>(q, k, v, params, rpb).

CASES (-> tokenmix arguments; all B, H, P listed in CASES below)
  1d_dil          L 13, K 5, d 2 (groups of 7 and 6)                      NeighborhoodParams<1>{{5},{2}}
  1d_causal_dil   L 12, K 4, d 3, causal (K·d = L: each group is 4 long)  {{4},{3},{1},{true}}
  1d_rpb          L 16, K 7, rpb [H, 13]                                  {{7}}, rpb
  2d_dil_rpb      9 x 11, K (3,5), d (2,1), rpb [H, 5, 9]; + logits       {{3,5},{2,1}}, rpb
  2d_fullaxis_causal  7 x 8, K (7,3): axis 0 kernel = the whole axis, causal on axis 1 only
                                                                          {{7,3},{1,1},{1,1},{false,true}}
  2d_gqa          6 x 7, K (3,5), H 4, Hkv 2, P 5, Pv 7, explicit scale 0.3 {{3,5}, .., scale=0.3}
  3d_dil_rpb      4 x 7 x 6, K (3,3,5), d (1,2,1) (axis 1: groups 4, 3), rpb [H, 5, 5, 9]
  3d_causal       3 x 4 x 5, K (2,3,3), causal on every axis
  2d_stride_even  14 x 9, K (4,6), stride (3,2), d (2,1): NATTEN >= 0.20 stride (partial last stride
                  group, leader clamped) with even K (one key fewer on the right); formulation B from
                  mask.hpp only, the legacy ops have neither    {{4,6},{2,1},{3,2}}
  1d_causal_stride  L 11, K 3, stride 2, d 2 (groups 6, 5), causal: the window starts at the stride-group
                  leader's (the group's LAST query) start, max(leader - K + 1, 0), and ends at the query
                  (mask.hpp / flex.py; NATTEN's na_utils.cuh notes its FNA kernel mask supports causal only
                  with stride 1, so this follows the reference and Flex backends)  {{3},{2},{2},{true}}
Shapes chosen so that NATTEN accepts them: K·d <= L on every axis (a 4 x 5 x 6 grid cannot take K 3 with
dilation 2 on a 5-long axis, hence 4 x 7 x 6), and a kernel equal to the whole first axis (7 x 8, K 7).
The legacy helpers of natten_cpu_commons.h are used (and asserted) for odd K only: with even K their
non-causal start is not the >= 0.20 window (e.g. L 10, K 4, i 8 gives keys 5..8, not 6..9), and the
legacy ops only took odd kernels.
rpb values are N(0, 0.5^2) rather than the modules' trunc_normal(std 0.02) so that they matter.

Run with Debian's python3-torch:  /usr/bin/python3 tests/data/make_neighborhood_fixture.py
"""
import itertools
import math
import os
import shutil

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'neighborhood')
torch.set_default_dtype(torch.float64)


# ---- per-axis window, new rule (csrc/include/natten/cuda/reference/mask.hpp) -----------------------

def qkv_fix_dilation(L, d, g):
    """Length of dilation group g (mask.hpp qkv_fix_dilation)."""
    padding = 1 - ((g + (d - (L % d))) // d)
    return L // d + padding


def win_start(i, left, right, s, Lg, causal):
    """mask.hpp get_win_start<IsCausal>, in group coordinates."""
    if causal:
        leader = min((i // s) * s + s - 1, Lg - 1)
        return max(leader - left - right, 0)
    leader = min((i // s) * s + s // 2, Lg - 1)
    return max(leader - left, 0) + (1 if leader + right >= Lg else 0) * (Lg - right - leader - 1)


def win_end(i, start, K, Lg, causal):
    """mask.hpp get_win_end<IsCausal>, exclusive."""
    return min(i + 1, Lg) if causal else start + K


# ---- per-axis window, legacy rule (csrc/include/natten/cpu/naive/natten_cpu_commons.h, 0.17.x) -----

def legacy_window_start(index, length, K, ns, d, causal):
    di = index % d
    ip = index // d
    lp = (length + d - 1) // d
    num_padded = lp * d - length
    lp -= 1 if di >= d - num_padded else 0
    if not causal:
        start = max(ip - ns, 0) + (1 if ip + ns >= lp else 0) * (lp - ip - ns - 1)
    else:
        start = max(ip - K + 1, 0)
    return start * d + di


def legacy_window_end(index, start, length, K, ns, d, causal):
    return min(length, start + K * d) if not causal else min(length, index + d)


def legacy_pb_start(index, length, K, ns, d):
    if d <= 1:
        return (ns + (1 if index < ns else 0) * (ns - index)
                + (1 if index + ns >= length else 0) * (length - index - 1 - ns))
    if index - ns * d < 0:
        return K - 1 - index // d
    if index + ns * d >= length:
        return (length - index - 1) // d
    return ns


def axis_windows(L, K, d, s, causal):
    """-> keys [L, K] (global index of slot n, 0 where invalid), valid [L, K], pb [L] (rpb index of slot 0,
    legacy get_pb_start; None where the legacy op is not defined)."""
    left, right = K // 2, K // 2 + K % 2 - 1
    keys = torch.zeros(L, K, dtype=torch.long)
    valid = torch.zeros(L, K, dtype=torch.bool)
    legacy = s == 1 and (K % 2 == 1 or causal)
    pb = torch.zeros(L, dtype=torch.long) if legacy and not causal else None
    for i in range(L):
        g, ii = i % d, i // d
        Lg = qkv_fix_dilation(L, d, g)
        assert Lg == math.ceil((L - g) / d)
        st = win_start(ii, left, right, s, Lg, causal)
        en = win_end(ii, st, K, Lg, causal)
        for n in range(K):
            if st + n < en:
                keys[i, n], valid[i, n] = (st + n) * d + g, True
        if legacy:
            ls = legacy_window_start(i, L, K, K // 2, d, causal)
            le = legacy_window_end(i, ls, L, K, K // 2, d, causal)
            lk = [ls + n * d for n in range(K) if ls + n * d < le]
            assert lk == keys[i][valid[i]].tolist(), ('legacy window differs', L, K, d, causal, i)
            if pb is not None:
                pb[i] = legacy_pb_start(i, L, K, K // 2, d)
                assert pb[i] == (K - 1) + (st - ii), ('pb_start differs from (K-1)+(j\'-i\')', L, K, d, i)
    return keys, valid, pb


# ---- formulation A: dense mask (src/natten/backends/flex.py get_na_flex_mask) ----------------------

def flex_mask(shape, K, d, s, causal):
    """Boolean [T, T] (query token, key token), plus per-axis in-group offsets (kv' - q') [R, T, T]."""
    T = math.prod(shape)
    crd = torch.stack(torch.meshgrid(*[torch.arange(n) for n in shape], indexing='ij'), 0).reshape(len(shape), T)
    mask = torch.ones(T, T, dtype=torch.bool)
    rel = []
    for a in range(len(shape)):
        q = crd[a][:, None].expand(T, T)
        kv = crd[a][None, :].expand(T, T)
        qd, kvd = q // d[a], kv // d[a]
        qg, kvg = q % d[a], kv % d[a]
        pad = 1 - ((qg + (d[a] - (shape[a] % d[a]))) // d[a])
        Lc = shape[a] // d[a] + pad
        if causal[a]:
            leader = torch.minimum((qd // s[a]) * s[a] + s[a] - 1, Lc - 1)
            m = (qd - kvd >= 0) & (leader - kvd < K[a]) & (qg == kvg)
        else:
            wl, wr = K[a] // 2, K[a] // 2 + (K[a] % 2 - 1)
            leader = torch.minimum((qd // s[a]) * s[a] + s[a] // 2, Lc - 1)
            # flex.py: leader.clamp(left, L_g - 1 - right) = min(max(leader, left), L_g - 1 - right)
            centre = torch.minimum(torch.maximum(leader, torch.full_like(leader, wl)), Lc - 1 - wr)
            w0, w1 = centre - kvd, kvd - centre
            m = (((0 <= w0) & (w0 <= wl)) | ((0 <= w1) & (w1 <= wr))) & (qg == kvg)
        mask &= m
        rel.append(kvd - qd)
    return mask, torch.stack(rel, 0)


def dense_na(q, k, v, shape, K, d, s, causal, scale, rpb):
    """q [B, T, H, P], k [B, T, Hkv, P], v [B, T, Hkv, Pv] -> out [B, T, H, Pv], lse [B, T, H]."""
    H, Hkv = q.shape[2], k.shape[2]
    mask, rel = flex_mask(shape, K, d, s, causal)
    if not any(causal):  # non-causal: always exactly prod(K) keys, never padded
        assert (mask.sum(1) == math.prod(K)).all()
    kr = k.repeat_interleave(H // Hkv, dim=2)  # torch enable_gqa: kv head h // (H / Hkv)
    vr = v.repeat_interleave(H // Hkv, dim=2)
    logits = scale * torch.einsum('bthp,bjhp->bhtj', q, kr)
    if rpb is not None:
        idx = [(K[a] - 1) + rel[a] for a in range(len(shape))]
        idx = [torch.where(mask, i, torch.zeros_like(i)) for i in idx]  # outside the mask: any entry
        bias = rpb[(slice(None),) + tuple(idx)]  # [H, T, T]
        logits = logits + bias[None]
    logits = logits.masked_fill(~mask[None, None], -math.inf)
    lse = torch.logsumexp(logits, dim=-1)  # [B, H, T]
    out = torch.einsum('bhtj,bjhp->bthp', torch.softmax(logits, dim=-1), vr)
    return out, lse.permute(0, 2, 1)


# ---- formulation B: gather over window slots (legacy na*d_qk / na*d_av) -----------------------------

def gather_na(q, k, v, shape, K, d, s, causal, scale, rpb):
    """Returns out, lse and the legacy qk logits [B, T, H, S] (slot order n0·K1·.. + n1·.. + ..)."""
    R = len(shape)
    H, Hkv = q.shape[2], k.shape[2]
    win = [axis_windows(shape[a], K[a], d[a], s[a], causal[a]) for a in range(R)]
    T, S = math.prod(shape), math.prod(K)
    key_tok = torch.zeros(T, S, dtype=torch.long)
    valid = torch.zeros(T, S, dtype=torch.bool)
    bias_idx = torch.zeros(R, T, S, dtype=torch.long)
    for t, x in enumerate(itertools.product(*[range(n) for n in shape])):
        for slot, n in enumerate(itertools.product(*[range(kk) for kk in K])):
            ok, tok = True, 0
            for a in range(R):
                keys, val, pb = win[a]
                ok = ok and bool(val[x[a], n[a]])
                tok = tok * shape[a] + int(keys[x[a], n[a]])
                if rpb is not None:
                    bias_idx[a, t, slot] = int(pb[x[a]]) + n[a]
            key_tok[t, slot], valid[t, slot] = tok, ok
    hk = torch.arange(H) // (H // Hkv)
    kg = k[:, key_tok][:, :, :, hk]  # [B, T, S, H, P]
    vg = v[:, key_tok][:, :, :, hk]  # [B, T, S, H, Pv]
    logits = scale * torch.einsum('bthp,btshp->bths', q, kg)
    if rpb is not None:
        logits = logits + rpb[(slice(None),) + tuple(bias_idx)].permute(1, 0, 2)[None]
    logits = logits.masked_fill(~valid[None, :, None, :], -math.inf)
    lse = torch.logsumexp(logits, dim=-1)
    out = torch.einsum('bths,btshp->bthp', torch.softmax(logits, dim=-1), vg)
    return out, lse, logits


# ---- cases ------------------------------------------------------------------------------------------

CASES = [
    # name, shape, K, d, s, causal, B, H, Hkv, P, Pv, scale (None = P^-0.5), rpb, save logits
    ('1d_dil', (13,), (5,), (2,), (1,), (False,), 2, 2, 2, 16, 16, None, False, False),
    ('1d_causal_dil', (12,), (4,), (3,), (1,), (True,), 2, 2, 2, 17, 17, None, False, False),
    ('1d_rpb', (16,), (7,), (1,), (1,), (False,), 1, 3, 3, 16, 16, None, True, False),
    ('2d_dil_rpb', (9, 11), (3, 5), (2, 1), (1, 1), (False, False), 1, 2, 2, 16, 16, None, True, True),
    ('2d_fullaxis_causal', (7, 8), (7, 3), (1, 1), (1, 1), (False, True), 1, 2, 2, 16, 16, None, False, False),
    ('2d_gqa', (6, 7), (3, 5), (1, 1), (1, 1), (False, False), 2, 4, 2, 5, 7, 0.3, False, False),
    ('3d_dil_rpb', (4, 7, 6), (3, 3, 5), (1, 2, 1), (1, 1, 1), (False,) * 3, 1, 2, 2, 8, 8, None, True, False),
    ('3d_causal', (3, 4, 5), (2, 3, 3), (1, 1, 1), (1, 1, 1), (True,) * 3, 1, 2, 2, 16, 16, None, False, False),
    ('1d_causal_stride', (11,), (3,), (2,), (2,), (True,), 1, 2, 2, 16, 16, None, False, False),
    ('2d_stride_even', (14, 9), (4, 6), (2, 1), (3, 2), (False, False), 1, 2, 2, 8, 8, None, False, False),
]


def f32(t):
    return t.float().double()


def save(folder, name, t):
    np.save(os.path.join(folder, name + '.npy'), np.ascontiguousarray(t.detach().numpy().astype(np.float32)))


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    g = torch.Generator().manual_seed(20240611)
    for (name, shape, K, d, s, causal, B, H, Hkv, P, Pv, scale, use_rpb, save_logits) in CASES:
        R = len(shape)
        for a in range(R):
            assert 1 <= s[a] <= K[a] and K[a] * d[a] <= shape[a], (name, a)
        T = math.prod(shape)
        q = f32(torch.randn(B, T, H, P, generator=g))
        k = f32(torch.randn(B, T, Hkv, P, generator=g))
        v = f32(torch.randn(B, T, Hkv, Pv, generator=g))
        rpb = f32(0.5 * torch.randn((H,) + tuple(2 * kk - 1 for kk in K), generator=g)) if use_rpb else None
        sc = scale if scale is not None else P ** -0.5
        sc_used = float(np.float32(sc))  # tokenmix stores the explicit scale as a float
        out_a, lse_a = dense_na(q, k, v, shape, K, d, s, causal, sc_used, rpb)
        out_b, lse_b, logits = gather_na(q, k, v, shape, K, d, s, causal, sc_used, rpb)
        err = max((out_a - out_b).abs().max().item(), (lse_a - lse_b).abs().max().item())
        assert err < 1e-12, (name, err)
        folder = os.path.join(OUT, name)
        os.makedirs(folder)
        sp = tuple(shape)
        save(folder, 'q', q.reshape((B,) + sp + (H, P)))
        save(folder, 'k', k.reshape((B,) + sp + (Hkv, P)))
        save(folder, 'v', v.reshape((B,) + sp + (Hkv, Pv)))
        if rpb is not None:
            save(folder, 'rpb', rpb)
        save(folder, 'out', out_a.reshape((B,) + sp + (H, Pv)))
        save(folder, 'lse', lse_a.reshape((B,) + sp + (H,)))
        if save_logits:
            save(folder, 'logits', logits.reshape((B,) + sp + (H, math.prod(K))))
        with open(os.path.join(folder, 'params.txt'), 'w') as f:
            f.write(f'rank {R}\n')
            f.write('kernel_size ' + ' '.join(map(str, K)) + '\n')
            f.write('dilation ' + ' '.join(map(str, d)) + '\n')
            f.write('stride ' + ' '.join(map(str, s)) + '\n')
            f.write('causal ' + ' '.join(str(int(c)) for c in causal) + '\n')
            f.write('scale ' + ('default' if scale is None else repr(scale)) + '\n')
            f.write(f'rpb {int(use_rpb)}\n')
        print(f'{name:20s} shape {sp} K {K} d {d} s {s} causal {causal} B {B} H {H}/{Hkv} P {P}/{Pv} '
              f'A-vs-B {err:.1e}')
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print(f'total {total} bytes')


if __name__ == '__main__':
    main()
