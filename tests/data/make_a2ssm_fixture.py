#!/usr/bin/env python3
"""Fixtures for a tokenmix test of A2Mamba's A2SSM (the attention-augmented SSM inside MASS, stages 1-3):
one A2SSM forward computed in PyTorch (float64, from float32 parameters and inputs) by our own
transcription of the PUBLIC reference code named below. Nothing is imported from that project (it needs
its CUDA scan extension and natten); each formula is re-written here. Every case is computed by two
independent formulations that must agree to 1e-12 (relative to the output's largest entry) before
anything is written. Spec: /work/shared/spec/a2mamba.md sections 1a, 1b, 2.

SOURCES TRANSCRIBED
  LMMMEng/A2Mamba @a9ea14c, models/a2mamba.py (the search index holds no copy under that repository name;
  the text read is a stored copy of the same file, found by its contents: same imports, same classes)
    A2SSM.__init__        parameter names / shapes: conv2d (depthwise, d_conv 5, padding 2, bias),
                          x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds, state_fusion
                          (Conv2d(num_heads, num_heads, 1), bias); d_inner = C (expand 1), R = ceil(C/16)
    A2SSM.dt_init / A_log_init / D_init   initialisation (used here as the starting point of the draws)
    A2SSM.forward         u = SiLU(conv2d(x)); forward_ssm(u); view back to [B, C, H, W]
    A2SSM.forward_ssm     x_proj / dt_projs matmuls on [B, C, L]; split [R, N, N]; A = -exp(A_logs);
                          scan returning all states [B, C, N, L] -> '(d s)' channels; rearrange
                          'b (m n d) (h w) -> m b n h w d' (m = 2 groups, n = nh/2 heads); na2d_av of group
                          0 with attn1 (no dilation argument: 1) and of group 1 with attn2 (dilation dil);
                          cat over heads; 'b n h w d -> b n d (h w)'; state_fusion (1x1 conv, heads as
                          channels); flatten(1, 2); readout state * Cs + xs * Ds (fp32, autocast off)
                                                                      -> forward_released (formulation A)
    SelectiveScanStateFn  B [B, N, L] -> [B, 1, N, L]; selective_scan_cuda_oflex_rh.fwd(u, delta, A, B,
                          D=None, delta_bias, delta_softplus=True); returns every h_l (spec section 1b)
    Attention.forward     dil = (min(int(H/K), K), min(int(W/K), K)); attn = softmax(na2d_qk(...)) over the
                          last axis, layout [B, nh/2, H, W, K*K]; passes (attn1, attn2, K, dil) to A2SSM
  SHI-Labs/NATTEN 0.17, csrc/include/natten/cpu/naive/natten_cpu_commons.h get_window_start (the
  piecewise clamped-window start, re-written in natten_window_start below) and
  pointwise_neighborhood_2d.hpp (neighbour slot ki*K + kj, out = sum_k attn[k] * v[nbr k])
  Formulation B (forward_loops) is written from the spec equations alone: plain scalar loops, the
  sub-grid window rule of spec section 1a, head groups read from the heads-last stored maps.

CASES (tests/data/a2ssm/<case>/)
  n1_small        B 2, C 16, nh 4 (dh 4), N 1, H 9, W 11, K 3, dil (3, 3): the released N = 1; rows: 3
                  sub-grids of 3 (K*dil = H, every window spans the whole column), columns: sub-grids of
                  4, 4, 3 (11 mod 3 != 0: unequal dilation groups)
  n1_rect         B 1, C 8, nh 2 (dh 4), N 1, H 7, W 12, K 3, dil (2, 3) = MASS's rule for 7 x 12;
                  rows: sub-grids 4, 3 (unequal), columns: 4, 4, 4
  n2_generalised  B 2, C 8, nh 2 (dh 4), N 2, H 8, W 9, K 3, dil (2, 3) (= MASS's rule; K*dil = W);
                  the released readout cannot run for N > 1 (see below), so y is the natural
                  generalisation; config.json "generalised": true
  R = ceil(C/16) = 1 in every case (as released for C <= 16).

PARAMETERS (A2SSM state-dict names with '.' -> '_'; released shapes; float32). In a full A2Mamba
checkpoint they sit under layers.<2*stage>.blocks.<i>.token_mixer.ssm.<name> (stages 0-2 only).
  conv2d_weight        [C, 1, 5, 5]   depthwise kernel, conv2d_weight[c, 0, a, b] is tap (a, b) of channel c
                                      (cross-correlation, as torch's conv2d); drawn 0.25 * randn
  conv2d_bias          [C]            0.2 * randn
  x_proj_weight        [R + 2N, C]    rows [0, R) -> dt_r, [R, R+N) -> Bm, [R+N, R+2N) -> Cm; no bias;
                                      randn * (1.5, 3.0, 2.5 for the dt / B / C rows) / sqrt(C)
  dt_projs_weight      [C, R]         U(-R^-0.5, R^-0.5) as released
  dt_projs_bias        [C]            drawn as released: inv_softplus(dt), dt = exp(U(log 1e-3, log 0.1))
  A_logs               [C, N]         log(1..N) + 0.1 * randn (perturbed init)
  Ds                   [C]            1 + 0.3 * randn
  state_fusion_weight  [nh, nh, 1, 1] state_fusion_weight[o, i, 0, 0] mixes input head i into output head o;
                                      identity + U(-nh^-0.5, nh^-0.5)
  state_fusion_bias    [nh]           U(-nh^-0.5, nh^-0.5)

INPUTS / OUTPUTS (float32; the released code's layouts are given on the right)
  x_ms    [B, H, W, C]             x_ms_released[b, c, i, j]          = x_ms[b, i, j, c]
  attn1   [B, H, W, nh/2, K*K]     attn1_natten[b, h, i, j, k]         = attn1[b, i, j, h, k]   (heads [0, nh/2))
  attn2   [B, H, W, nh/2, K*K]     attn2_natten[b, h, i, j, k]         = attn2[b, i, j, h, k]   (heads [nh/2, nh),
                                   local head h is global head nh/2 + h); k = ki*K + kj; each (b,i,j,h) row
                                   is a softmax of random logits (sums to 1 up to float32 rounding)
  y       [B, H, W, C]             y_released[b, c, i, j]             = y[b, i, j, c]
  debug intermediates (formulation A; checked against formulation B too):
  u       [B, H, W, C]             SiLU(conv) output
  states  [B, H, W, C*N]           scan output h, channel c*N + n  (released: [B, C, N, L])
  fused   [B, H, W, C*N]           after aggregation + state_fusion, channel c*N + n
  config.json: B, C, nh, dh, N, R, H, W, L, K, dil [dil_h, dil_w], dil_is_mass_rule, generalised,
  subgrid_lengths_h / _w, agreement_rel (y) and agreement_rel_intermediates, sensitivity_rel (how far y
  moves, relative to max|y|, when one branch is switched off: group-2 dilation -> 1, state_fusion ->
  identity, A -> 0, Ds -> 0, dt_projs_weight -> 0, uniform maps, and for N > 1 the last state; each
  must exceed 1e-2), rms_state_term / rms_skip_term, layouts.
  Use the stored maps as they are (float32 rows sum to 1 only to ~1e-7; do not renormalise).

FORMULAS (per image b; token l = i*W + j, row-major; c in [0, C); n in [0, N))
  1. u[c,i,j] = SiLU(conv2d_bias[c] + sum_{a,b in 0..4} conv2d_weight[c,0,a,b] * x[c, i+a-2, j+b-2])
     (zero padding outside the image), SiLU(t) = t / (1 + exp(-t)).
  2. z[r,l] = sum_c x_proj_weight[r,c] * u[c,l];  dt_r = z[0:R], Bm = z[R:R+N], Cm = z[R+N:R+2N].
  3. delta[c,l] = softplus(sum_r dt_projs_weight[c,r] * dt_r[r,l] + dt_projs_bias[c]),
     softplus(t) = log(1 + exp(t)), = t when t > 20 (the kernel's threshold).
  4. A[c,n] = -exp(A_logs[c,n]);  h[c,n,-1] = 0;
     h[c,n,l] = exp(delta[c,l]*A[c,n]) * h[c,n,l-1] + delta[c,l] * Bm[n,l] * u[c,l]   (l = 0 .. L-1,
     one pass over the raster, no reset at row ends). S[e,l] = h[c,n,l] with e = c*N + n.
  5. heads: nh heads, dh = C/nh; state channel e = c*N + n belongs to head g = c // dh (= e // (dh*N)),
     at position p = e mod (dh*N) = (c mod dh)*N + n inside the head. Heads [0, nh/2) form group 1
     (map attn1, dilation (1, 1)), heads [nh/2, nh) group 2 (map attn2, dilation dil), local head
     index g mod (nh/2).
  6. NATTEN window (per axis, length n, kernel K, dilation d, query index i):
       ph = i mod d, ip = i div d, lp = ceil((n - ph)/d), s = clamp(ip - K//2, 0, lp - K),
       start(i) = s*d + ph; the neighbours are start(i) + k*d, k = 0..K-1 (always K of them; needs lp >= K).
     Aggregation: Gt[e,i,j] = sum_{ki,kj} attn[i,j,g_local,ki*K+kj] * S[e, start_h(i)+ki*d_h, start_w(j)+kj*d_w]
     with the group's map and dilation.
  7. state_fusion over the head axis, same weights for every in-head position p and token:
       F[o*dh*N + p, l] = sum_{g'} state_fusion_weight[o,g',0,0] * Gt[g'*dh*N + p, l] + state_fusion_bias[o].
  8. readout: y[c,l] = sum_n F[c*N+n, l] * Cm[n,l] + Ds[c] * u[c,l]
     (N = 1: y[c,l] = F[c,l]*Cm[0,l] + Ds[c]*u[c,l], exactly the released code.)

RELEASED CODE vs SPEC
  - Matches spec section 2 for N = 1. For N > 1 the released readout does not compute anything: it
    multiplies [B, C*N, L] by Cs [B, N, L] (a broadcast error unless N = 1) and then adds xs*Ds of shape
    [B, C, L]; formulation A checks that the released broadcast really raises, then uses step 8.
  - Group 1 always uses dilation 1 (window_dilation is ignored for the states; 1 in every variant).
  - dil is computed by MASS as int(H/K), int(W/K) clamped to K; A2SSM receives it as given.

Run with Debian's python3-torch (CPU):  /usr/bin/python3 tests/data/make_a2ssm_fixture.py
"""
import json
import math
import os
import shutil

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "a2ssm")
torch.set_default_dtype(torch.float64)


# ----------------------------------------------------------------------------------------------------
# parameters and inputs (float32)
# ----------------------------------------------------------------------------------------------------
def make_params(C, nh, N, gen):
    R = math.ceil(C / 16)

    def randn(*shape, std=1.0):
        return (torch.randn(*shape, generator=gen) * std).float()

    def uniform(*shape, lo, hi):
        return (torch.rand(*shape, generator=gen) * (hi - lo) + lo).float()

    p = {}
    p["conv2d_weight"] = randn(C, 1, 5, 5, std=0.25)
    p["conv2d_bias"] = randn(C, std=0.2)
    # x_proj rows: dt_r, Bm, Cm, scaled so that delta varies per token and the state branch is visible.
    scale = torch.cat([torch.full((R,), 1.5), torch.full((N,), 3.0), torch.full((N,), 2.5)]) / math.sqrt(C)
    p["x_proj_weight"] = (torch.randn(R + 2 * N, C, generator=gen) * scale[:, None]).float()
    std = R ** -0.5
    p["dt_projs_weight"] = uniform(C, R, lo=-std, hi=std)
    dt = torch.exp(torch.rand(C, generator=gen) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
    p["dt_projs_bias"] = (dt + torch.log(-torch.expm1(-dt))).float()
    p["A_logs"] = (torch.log(torch.arange(1, N + 1).double()).expand(C, N) + 0.1 * torch.randn(C, N, generator=gen)).float()
    p["Ds"] = (1.0 + 0.3 * torch.randn(C, generator=gen)).float()
    bound = 1.0 / math.sqrt(nh)
    p["state_fusion_weight"] = uniform(nh, nh, 1, 1, lo=-bound, hi=bound) + torch.eye(nh).float()[:, :, None, None]
    p["state_fusion_bias"] = uniform(nh, lo=-bound, hi=bound)
    return p


def make_attn(Bsz, H, W, heads, K, gen):
    """Heads-last [B, H, W, heads, K*K]: softmax of random logits, rounded to float32."""
    logits = torch.randn(Bsz, H, W, heads, K * K, generator=gen) * 1.5
    return torch.softmax(logits, dim=-1).float()


# ----------------------------------------------------------------------------------------------------
# formulation A: the released tensor operations (layouts [B, C, H, W] / [B, C, L], NATTEN [B, h, H, W, D])
# ----------------------------------------------------------------------------------------------------
def natten_window_start(i, n, K, d):
    """NATTEN 0.17 naive get_window_start, piecewise form (own words)."""
    half = K // 2
    if d <= 1:
        start = max(i - half, 0)
        if i + half >= n:
            start += n - i - half - 1
        return start
    if i - half * d < 0:
        return i % d
    if i + half * d >= n:
        phase = i % d
        full = (n // d) * d                  # the part of the axis made of whole dilation periods
        rest = n - full                      # the first `rest` phases have one extra element
        if phase < rest:
            return n - rest + phase - 2 * half * d
        return full + phase - K * d
    return i - half * d


def neighbour_table(n, K, d):
    return torch.tensor([[natten_window_start(i, n, K, d) + k * d for k in range(K)] for i in range(n)])


def na2d_av(attn, v, K, dil):
    """attn [B, h, H, W, K*K], v [B, h, H, W, D] -> [B, h, H, W, D] (gather of the clamped windows)."""
    Bsz, h, H, W, D = v.shape
    rows = neighbour_table(H, K, dil[0])                       # [H, K]
    cols = neighbour_table(W, K, dil[1])                       # [W, K]
    g = v[:, :, rows[:, None, :, None], cols[None, :, None, :], :]   # [B, h, H, W, K, K, D]
    g = g.reshape(Bsz, h, H, W, K * K, D)
    return (attn[..., None] * g).sum(-2)


def selective_scan_all_states(u, delta, A, Bm, delta_bias):
    """u, delta [B, C, L]; A [C, N]; Bm [B, N, L] -> h [B, C, N, L] (softplus on, no C / D)."""
    Bsz, C, L = u.shape
    dt = F.softplus(delta + delta_bias[None, :, None])         # threshold 20, like the kernel
    h = torch.zeros(Bsz, C, A.shape[1])
    out = []
    for l in range(L):
        h = torch.exp(dt[:, :, l, None] * A[None]) * h + (dt[:, :, l] * u[:, :, l])[:, :, None] * Bm[:, None, :, l]
        out.append(h)
    return torch.stack(out, -1)


def forward_released(x_nchw, attn1_n, attn2_n, p, nh, K, dil, check_released_readout=True):
    """x [B, C, H, W]; attn*_n in NATTEN layout [B, nh/2, H, W, K*K]. Returns y [B, C, H, W], u, S, F."""
    P = {k: v.double() for k, v in p.items()}
    Bsz, C, H, W = x_nchw.shape
    L = H * W
    N = P["A_logs"].shape[1]
    R = P["dt_projs_weight"].shape[1]
    u = F.silu(F.conv2d(x_nchw, P["conv2d_weight"], P["conv2d_bias"], padding=2, groups=C))
    xs = u.view(Bsz, C, L)
    x_dbl = torch.matmul(P["x_proj_weight"].view(1, -1, C), xs)
    dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=1)
    dts = torch.matmul(P["dt_projs_weight"].view(1, C, -1), dts)
    As = -torch.exp(P["A_logs"])
    state = selective_scan_all_states(xs, dts, As, Bs, P["dt_projs_bias"])   # [B, C, N, L]
    state = state.reshape(Bsz, C * N, L)                                      # 'b d s l -> b (d s) l'
    S = state
    half = attn1_n.shape[1]
    # 'b (m n d) (h w) -> m b n h w d'
    st = state.reshape(Bsz, 2, half, -1, H, W).permute(1, 0, 2, 4, 5, 3)
    s1 = na2d_av(attn1_n, st[0], K, (1, 1))
    s2 = na2d_av(attn2_n, st[1], K, dil)
    state = torch.cat([s1, s2], dim=1)                                        # [B, nh, H, W, dh*N]
    state = state.permute(0, 1, 4, 2, 3).reshape(Bsz, nh, -1, L)              # 'b n h w d -> b n d (h w)'
    state = F.conv2d(state, P["state_fusion_weight"], P["state_fusion_bias"]).flatten(1, 2)   # [B, C*N, L]
    Fused = state
    if N == 1:
        y = state * Cs + xs * P["Ds"].view(-1, 1)
    else:
        if check_released_readout:
            try:
                _ = state * Cs + xs * P["Ds"].view(-1, 1)
                raise AssertionError("the released readout unexpectedly runs for N > 1")
            except RuntimeError:
                pass
        y = (state.view(Bsz, C, N, L) * Cs[:, None]).sum(2) + xs * P["Ds"].view(-1, 1)
    return y.view(Bsz, C, H, W), u, S, Fused


# ----------------------------------------------------------------------------------------------------
# formulation B: plain loops from the spec equations, inputs in the stored (channels-/heads-last) layouts
# ----------------------------------------------------------------------------------------------------
def subgrid_starts(n, K, d):
    st = []
    for i in range(n):
        ph, ip = i % d, i // d
        lp = (n - ph + d - 1) // d
        assert lp >= K, "every dilation sub-grid must hold at least K pixels"
        s = min(max(ip - K // 2, 0), lp - K)
        st.append(s * d + ph)
    return st


def forward_loops(x, a1, a2, p, nh, K, dil):
    """x [B, H, W, C]; a1, a2 [B, H, W, nh/2, K*K] (numpy float64). Returns y, u, S, F as [B, H, W, .]."""
    P = {k: v.double().numpy() for k, v in p.items()}
    Bsz, H, W, C = x.shape
    N = P["A_logs"].shape[1]
    R = P["dt_projs_weight"].shape[1]
    dh, half = C // nh, nh // 2
    y = np.zeros((Bsz, H, W, C))
    U = np.zeros((Bsz, H, W, C))
    S = np.zeros((Bsz, H, W, C * N))
    Fu = np.zeros((Bsz, H, W, C * N))
    tables = {1: (subgrid_starts(H, K, 1), subgrid_starts(W, K, 1)),
              2: (subgrid_starts(H, K, dil[0]), subgrid_starts(W, K, dil[1]))}
    dils = {1: (1, 1), 2: tuple(dil)}
    for b in range(Bsz):
        # 1. depthwise 5x5 conv, zero padding, SiLU
        for i in range(H):
            for j in range(W):
                for c in range(C):
                    acc = P["conv2d_bias"][c]
                    for a in range(5):
                        for e in range(5):
                            r, q = i + a - 2, j + e - 2
                            if 0 <= r < H and 0 <= q < W:
                                acc += P["conv2d_weight"][c, 0, a, e] * x[b, r, q, c]
                    U[b, i, j, c] = acc / (1.0 + math.exp(-acc))
        # 2-4. projections and the scan over the raster
        h = np.zeros((C, N))
        Cm = np.zeros((H, W, N))
        for l in range(H * W):
            i, j = divmod(l, W)
            z = [sum(P["x_proj_weight"][r, c] * U[b, i, j, c] for c in range(C)) for r in range(R + 2 * N)]
            Cm[i, j] = z[R + N:]
            for c in range(C):
                t = sum(P["dt_projs_weight"][c, r] * z[r] for r in range(R)) + P["dt_projs_bias"][c]
                dlt = t if t > 20.0 else math.log1p(math.exp(t))
                for n in range(N):
                    A = -math.exp(P["A_logs"][c, n])
                    h[c, n] = math.exp(dlt * A) * h[c, n] + dlt * z[R + n] * U[b, i, j, c]
                    S[b, i, j, c * N + n] = h[c, n]
        # 5-6. neighbourhood aggregation of the states, per head group
        G = np.zeros((H, W, C * N))
        for e in range(C * N):
            head = e // (dh * N)
            grp = 1 if head < half else 2
            amap, hl = (a1, head) if grp == 1 else (a2, head - half)
            sh, sw = tables[grp]
            dr, dc = dils[grp]
            for i in range(H):
                for j in range(W):
                    acc = 0.0
                    for ki in range(K):
                        for kj in range(K):
                            acc += amap[b, i, j, hl, ki * K + kj] * S[b, sh[i] + ki * dr, sw[j] + kj * dc, e]
                    G[i, j, e] = acc
        # 7. state fusion over heads
        for o in range(nh):
            for pos in range(dh * N):
                for i in range(H):
                    for j in range(W):
                        acc = P["state_fusion_bias"][o]
                        for g in range(nh):
                            acc += P["state_fusion_weight"][o, g, 0, 0] * G[i, j, g * dh * N + pos]
                        Fu[b, i, j, o * dh * N + pos] = acc
        # 8. readout
        for i in range(H):
            for j in range(W):
                for c in range(C):
                    y[b, i, j, c] = sum(Fu[b, i, j, c * N + n] * Cm[i, j, n] for n in range(N)) + P["Ds"][c] * U[b, i, j, c]
    return y, U, S, Fu


# ----------------------------------------------------------------------------------------------------
def rel_diff(a, b):
    return float(np.abs(a - b).max() / np.abs(a).max())


def write_case(name, Bsz, C, nh, N, H, W, K, dil, seed):
    assert C % nh == 0 and nh % 2 == 0
    mass_dil = (min(H // K, K), min(W // K, K))
    for n, dd in ((H, 1), (W, 1), (H, dil[0]), (W, dil[1])):   # NATTEN's piecewise rule == sub-grid clamp
        assert neighbour_table(n, K, dd)[:, 0].tolist() == subgrid_starts(n, K, dd), (n, K, dd)
    gen = torch.Generator().manual_seed(seed)
    p = make_params(C, nh, N, gen)
    x = torch.randn(Bsz, H, W, C, generator=gen).float()                 # stored channels-last
    a1 = make_attn(Bsz, H, W, nh // 2, K, gen)                            # stored heads-last
    a2 = make_attn(Bsz, H, W, nh // 2, K, gen)

    # A: released layouts
    x_nchw = x.double().permute(0, 3, 1, 2).contiguous()
    a1n, a2n = (a.double().permute(0, 3, 1, 2, 4).contiguous() for a in (a1, a2))
    yA, uA, SA, FA = forward_released(x_nchw, a1n, a2n, p, nh, K, dil)
    L = H * W
    yA = yA.permute(0, 2, 3, 1).numpy()
    uA = uA.permute(0, 2, 3, 1).numpy()
    SA = SA.view(Bsz, C * N, H, W).permute(0, 2, 3, 1).numpy()
    FA = FA.reshape(Bsz, C * N, H, W).permute(0, 2, 3, 1).numpy()
    # B: loops on the stored layouts
    yB, uB, SB, FB = forward_loops(x.double().numpy(), a1.double().numpy(), a2.double().numpy(), p, nh, K, dil)
    rel = rel_diff(yA, yB)
    rels = {"u": rel_diff(uA, uB), "states": rel_diff(SA, SB), "fused": rel_diff(FA, FB)}
    assert rel < 1e-12 and max(rels.values()) < 1e-12, f"{name}: formulations differ: y {rel}, {rels}"

    # every branch visible: switching each one off moves y by more than 1% of its largest entry
    def variant(**over):
        q = dict(p)
        q.update({k: v for k, v in over.items() if k != "dil"})
        out = forward_released(x_nchw, a1n, a2n, q, nh, K, over.get("dil", dil), check_released_readout=False)[0]
        return out.permute(0, 2, 3, 1).numpy()

    eye = torch.eye(nh).float()[:, :, None, None]
    uniform_maps = torch.full_like(a1n, 1.0 / (K * K))
    sens = {
        "dilation_1_for_group_2": rel_diff(yA, variant(dil=(1, 1))),
        "no_state_fusion": rel_diff(yA, variant(state_fusion_weight=eye, state_fusion_bias=torch.zeros(nh).float())),
        "no_decay_A_0": rel_diff(yA, variant(A_logs=torch.full_like(p["A_logs"], -60.0))),
        "no_skip_D_0": rel_diff(yA, variant(Ds=torch.zeros_like(p["Ds"]))),
        "constant_delta_bias_only": rel_diff(yA, variant(dt_projs_weight=torch.zeros_like(p["dt_projs_weight"]))),
    }
    with torch.no_grad():
        yU = forward_released(x_nchw, uniform_maps, uniform_maps, p, nh, K, dil, check_released_readout=False)[0]
    sens["uniform_attention_maps"] = rel_diff(yA, yU.permute(0, 2, 3, 1).numpy())
    if N > 1:
        # the last state's contribution: its B row zeroed makes h[., N-1, .] = 0
        q = dict(p)
        xw = p["x_proj_weight"].clone()
        xw[p["dt_projs_weight"].shape[1] + N - 1] = 0.0
        q["x_proj_weight"] = xw
        out = forward_released(x_nchw, a1n, a2n, q, nh, K, dil, check_released_readout=False)[0]
        sens["last_state_off"] = rel_diff(yA, out.permute(0, 2, 3, 1).numpy())
    low = {k: v for k, v in sens.items() if v < 1e-2}
    assert not low, f"{name}: branches with a tiny effect: {low}"
    state_term = np.abs(yA - np.asarray(p["Ds"].double())[None, None, None, :] * uA)
    skip_term = np.abs(np.asarray(p["Ds"].double())[None, None, None, :] * uA)

    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    tensors = dict(p, x_ms=x, attn1=a1, attn2=a2, y=yA, u=uA, states=SA, fused=FA)
    for key, value in tensors.items():
        arr = value.float().numpy() if torch.is_tensor(value) else np.asarray(value, dtype=np.float32)
        np.save(os.path.join(d, key + ".npy"), arr)
    sub = lambda n, dd: [(n - g + dd - 1) // dd for g in range(dd)]
    meta = dict(B=Bsz, C=C, nh=nh, dh=C // nh, N=N, R=p["dt_projs_weight"].shape[1], H=H, W=W, L=L, K=K,
                dil=list(dil), dil_is_mass_rule=tuple(dil) == mass_dil, generalised=N > 1,
                subgrid_lengths_h=sub(H, dil[0]), subgrid_lengths_w=sub(W, dil[1]),
                softplus_threshold=20.0, conv_kernel=5, conv_padding=2,
                agreement_rel=rel, agreement_rel_intermediates=rels, sensitivity_rel=sens,
                rms_state_term=float(np.sqrt((state_term ** 2).mean())),
                rms_skip_term=float(np.sqrt((skip_term ** 2).mean())),
                layouts=dict(x_ms="B,H,W,C", attn1="B,H,W,nh/2,K*K (heads [0,nh/2), dilation 1)",
                             attn2="B,H,W,nh/2,K*K (heads [nh/2,nh), dilation dil)", y="B,H,W,C",
                             u="B,H,W,C", states="B,H,W,C*N (channel c*N+n)", fused="B,H,W,C*N (channel c*N+n)"))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(meta, f, indent=1)
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{name}: B {Bsz} C {C} nh {nh} N {N} R {meta['R']} {H}x{W} K {K} dil {tuple(dil)} "
          f"(MASS rule {mass_dil}); sub-grids h {meta['subgrid_lengths_h']} w {meta['subgrid_lengths_w']}; "
          f"y agree {rel:.2e}, u {rels['u']:.2e}, states {rels['states']:.2e}, fused {rels['fused']:.2e}; "
          f"rms state term {meta['rms_state_term']:.3f} skip term {meta['rms_skip_term']:.3f}; "
          f"sensitivity " + ", ".join(f"{k} {v:.2e}" for k, v in sens.items())
          + f"; {size} bytes")
    return size


if __name__ == "__main__":
    total = 0
    total += write_case("n1_small", 2, 16, 4, 1, 9, 11, 3, (3, 3), seed=11)
    total += write_case("n1_rect", 1, 8, 2, 1, 7, 12, 3, (min(7 // 3, 3), min(12 // 3, 3)), seed=12)
    total += write_case("n2_generalised", 2, 8, 2, 2, 8, 9, 3, (2, 3), seed=13)
    print(f"total {total} bytes")
