#!/usr/bin/env python3
"""Fixtures for tests/reference/selective_scan_2d_fixture_test.cpp.

Each case transcribes, in PyTorch and in float64, the data flow of one vision SSM's RELEASED code from
the scan input (the conv + SiLU output) to the merged scan output, using the tensors' own layouts
([B, C, H, W] / [B, D, L]) and the released gather / merge functions re-written here in our own words:

  VMamba          MzeroMiko/VMamba          classification/models/csms6s.py (CrossScan / CrossMerge) and
                                            vmamba.py SS2D.forward_corev2 (einsum x_proj / dt_projs, K=4 groups)
  EfficientVMamba TerryPei/EfficientVMamba  classification/lib/models/mamba/efficient_scan.py (EfficientScan /
                                            EfficientMerge) and efficient_mamba.py cross_selective_scan
  PlainMamba      ChenhongyiYang/PlainMamba mmcls/plain_mamba_dev/models/plain_mamba/plain_mamba_layer.py
                                            (get_permute_order, direction_Bs, PlainMamba2D.forward)
  GroupMamba      Amshaker/GroupMamba       classification/models/groupmamba.py (GroupMambaLayer),
                                            csms6s.py (CrossScan_1..4 / CrossMerge_1..4), ss2d.py (K = 1)
  MSVMamba        YuHengsss/MSVMamba        classification/models/vmamba.py SS2D.forward (multiscale_4scan_12),
                                            forward_core_multiscale, utils.py x_selective_scan (K = 1)
  Vim             hustvl/Vim                mamba-1p1p1/mamba_ssm/modules/mamba_simple.py (bimamba v1 / v2),
                                            ops/selective_scan_interface.py (bimamba_inner_ref,
                                            mamba_inner_fn_no_out_proj)
  Spatial-Mamba   EdwardChasel/Spatial-Mamba StateFusion (replicate pad + dilated dw 3x3, dilations 1/3/5,
                                            alpha) and StructureAwareSSM.ssm (scan without C and D returning
                                            all states, y = h'·C + u·D)

The 1-D scan is mamba_ssm's selective_scan_ref semantics (state-spaces/mamba,
mamba_ssm/ops/selective_scan_interface.py), written as a plain loop below.

Everything around the scan that tokenmix's ops leave to the caller (in_proj, the convolutions that make
u, out_norm LayerNorms, SE, out_proj) is either omitted or, where it produces an input of our ops
(Vim's causal conv1d, MSVMamba's two convs), computed here so the inputs have the released provenance.
Every tensor handed to a scan is rounded to float32 first (the released code runs the scan in fp32), so
the C++ side sees exactly the values the float64 reference used. The per-token inputs that the released
code computes in scan order (dt, B, C from x_proj of the permuted sequence) are mapped back to the image
with index maps obtained by running the released gather functions on a map of cell ids, i.e.
independently of tokenmix's own path formulas.

Outputs: tests/data/scan_2d/<case>/*.npy (float32, channel-last like tokenmix). The argument mapping
of each case to the tokenmix API is written next to its make_* function.

Run with Debian's python3-torch:  /usr/bin/python3 tests/data/make_scan_2d_fixture.py
"""
import math
import os
import shutil

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'scan_2d')
torch.set_default_dtype(torch.float64)


def f32(t):
    """Round to float32 and back: the value a float32 buffer holds."""
    return t.float().double()


class Gen:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def normal(self, *shape, std=1.0):
        return torch.randn(*shape, generator=self.g) * std

    def uniform(self, lo, hi, *shape):
        return torch.rand(*shape, generator=self.g) * (hi - lo) + lo


# ---- mamba_ssm selective_scan_ref semantics ------------------------------------------------------

def selective_scan(u, delta, A, B, C=None, D=None, z=None, delta_bias=None, delta_softplus=False):
    """u, delta, z [b, d, l]; A [d, n]; B, C [b, n, l] or [b, g, n, l] (group g serves the d/g
    consecutive channels g·d/g ..); D, delta_bias [d]. Recurrence per channel:
        dt = softplus(delta + delta_bias);  h_t = exp(dt_t A) * h_{t-1} + dt_t B_t u_t  (h_{-1} = 0);
        y_t = <C_t, h_t> + D u_t;  y *= silu(z).
    Returns y [b, d, l], or with C None every state h [b, d, n, l] (Spatial-Mamba's scan)."""
    if delta_bias is not None:
        delta = delta + delta_bias[None, :, None]
    if delta_softplus:
        delta = F.softplus(delta)  # beta 1, threshold 20, like mamba_ssm
    b, d, l = u.shape
    n = A.shape[1]

    def per_channel(M):  # -> [b, d, n, l]
        if M.dim() == 3:
            return M[:, None].expand(b, d, n, l)
        return M.repeat_interleave(d // M.shape[1], dim=1)

    Bc = per_channel(B)
    Cc = per_channel(C) if C is not None else None
    h = torch.zeros(b, d, n)
    ys, hs = [], []
    for t in range(l):
        h = torch.exp(delta[:, :, t, None] * A[None]) * h + (delta[:, :, t] * u[:, :, t])[..., None] * Bc[..., t]
        if Cc is None:
            hs.append(h)
        else:
            ys.append((h * Cc[..., t]).sum(-1))
    if Cc is None:
        return torch.stack(hs, dim=-1)
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + D[None, :, None] * u
    if z is not None:
        y = y * F.silu(z)
    return y


def mamba_params(gen, copies, d, n, rank, dt_min=0.01, dt_max=0.5):
    """Parameters as the released inits make them, per copy (direction / group): x_proj [c, R+2N, d],
    dt_projs weight [c, d, R] and bias [c, d] (softplus(bias) log-uniform in [dt_min, dt_max]),
    A_logs [c·d, n] (S4D-real log(1..n) plus noise), Ds [c·d]."""
    x_proj = gen.normal(copies, rank + 2 * n, d, std=d ** -0.5)
    dt_w = gen.uniform(-rank ** -0.5, rank ** -0.5, copies, d, rank)
    dt = torch.exp(gen.uniform(math.log(dt_min), math.log(dt_max), copies, d))
    dt_b = dt + torch.log(-torch.expm1(-dt))  # inverse softplus
    s4d = torch.log(torch.arange(1, n + 1, dtype=torch.float64)).repeat(copies * d, 1)
    A_logs = s4d + gen.normal(copies * d, n, std=0.1)
    Ds = gen.uniform(0.5, 1.5, copies * d)
    return x_proj, dt_w, dt_b, A_logs, Ds


# ---- layout helpers -------------------------------------------------------------------------------

def index_map(gather, H, W):
    """Runs a released gather function (x [1, 1, H, W] -> sequences [..., L]) on a map of cell ids + 1;
    returns the visited cell of every step (-1 where the gather read zero padding)."""
    ids = (torch.arange(H * W, dtype=torch.float64) + 1).view(1, 1, H, W)
    return [int(v) - 1 for v in gather(ids).reshape(-1).tolist()]


def to_grid(seq, idx, cells, partial=False):
    """seq [b, c, T] in a scan order visiting idx[t] (-1 = padding) -> grid [b, c, cells]. A cell visited
    more than once must carry the same value each time (per-token projections). partial: cells the order
    never visits (EfficientVMamba's other sub-grids) stay NaN, so an op that read them would fail."""
    b, c, _ = seq.shape
    grid = torch.full((b, c, cells), float('nan'))
    for t, p in enumerate(idx):
        if p < 0:
            continue
        if not torch.isnan(grid[:, :, p]).any():
            assert torch.equal(grid[:, :, p], seq[:, :, t]), 'cell revisited with different per-token values'
        grid[:, :, p] = seq[:, :, t]
    assert partial or not torch.isnan(grid).any(), 'a cell was never visited'
    return grid


def last(t, H, W):
    """[b, c, H·W] -> channel-last [b, H, W, c]."""
    return t.reshape(t.shape[0], t.shape[1], H, W).permute(0, 2, 3, 1)


def save(case, **arrays):
    folder = os.path.join(OUT, case)
    os.makedirs(folder, exist_ok=True)
    for name, a in arrays.items():
        arr = np.ascontiguousarray(a.detach().numpy().astype(np.float32))
        assert np.isfinite(arr).all() or name in ('delta', 'B', 'C'), (case, name)
        np.save(os.path.join(folder, name + '.npy'), arr)


# ---- VMamba: CrossScan -> K=4 grouped S6 -> CrossMerge -------------------------------------------

def cross_scan(x):  # [B, C, H, W] -> [B, 4, C, L]: row-major, transposed (column-major), and both flipped
    B, C, H, W = x.shape
    rm = x.reshape(B, C, H * W)
    cm = x.transpose(2, 3).reshape(B, C, H * W)
    return torch.stack([rm, cm, rm.flip(-1), cm.flip(-1)], dim=1)


def cross_merge(ys):  # [B, 4, D, H, W] (sequences viewed as H×W) -> [B, D, L]: plain sum of the 4 mapped back
    B, K, D, H, W = ys.shape
    s = ys.reshape(B, K, D, H * W)
    pair = s[:, 0:2] + s[:, 2:4].flip(-1)                       # undo the flips
    col = pair[:, 1].reshape(B, D, W, H).transpose(2, 3).reshape(B, D, H * W)  # undo the transpose
    return pair[:, 0] + col


def grouped_projection(xs, x_proj, dt_w, n, rank):
    """VMamba's einsums: xs [B, K, D, L] -> dts [B, K, D, L] (no bias), Bs, Cs [B, K, N, L]."""
    x_dbl = torch.einsum('bkdl,kcd->bkcl', xs, x_proj)
    dts, Bs, Cs = torch.split(x_dbl, [rank, n, n], dim=2)
    return torch.einsum('bkrl,kdr->bkdl', dts, dt_w), Bs, Cs


def scan_to_grid(per_dir, idxs, cells, partial=False):
    """[B, K, c, T] in each direction's own order -> [B, K, c, cells]."""
    return torch.stack([to_grid(per_dir[:, k], idxs[k], cells, partial) for k in range(per_dir.shape[1])], dim=1)


# Mapping (ssm::cross_scan_2d / ref::cross_scan_2d): u [B,H,W,D] = x; delta [B,H,W,4D] channel k·D+d =
# dts[k, d] at the cell (un-permuted); A [4D,N] = -exp(A_logs); B, C [B,H,W,4,N] group k = Bs/Cs[k];
# D = Ds [4D]; delta_bias = dt_projs_bias.view(-1) [4D]; delta_softplus; no z (the released block
# applies out_norm before the gate); out [B,H,W,D] = CrossMerge(ys).
def make_vmamba(case, seed, Bt, H, W, D, N, R):
    gen = Gen(seed)
    L = H * W
    x = f32(gen.normal(Bt, D, H, W))
    x_proj, dt_w, dt_b, A_logs, Ds = mamba_params(gen, 4, D, N, R)
    xs = cross_scan(x)
    dts, Bs, Cs = (f32(t) for t in grouped_projection(xs, x_proj, dt_w, N, R))
    As, Ds, bias = f32(-torch.exp(A_logs)), f32(Ds), f32(dt_b.reshape(-1))
    ys = selective_scan(xs.reshape(Bt, 4 * D, L), dts.reshape(Bt, 4 * D, L), As, Bs, Cs, Ds, delta_bias=bias,
                        delta_softplus=True)
    y = cross_merge(ys.reshape(Bt, 4, D, H, W))
    idxs = [index_map(lambda t, k=k: cross_scan(t)[:, k], H, W) for k in range(4)]
    delta_g = scan_to_grid(dts, idxs, L).reshape(Bt, 4 * D, L)
    B_g, C_g = scan_to_grid(Bs, idxs, L), scan_to_grid(Cs, idxs, L)  # [B, 4, N, L]
    save(case, u=last(x.reshape(Bt, D, L), H, W), delta=last(delta_g, H, W), A=As,
         B=B_g.permute(0, 3, 1, 2).reshape(Bt, H, W, 4, N), C=C_g.permute(0, 3, 1, 2).reshape(Bt, H, W, 4, N),
         D=Ds, delta_bias=bias, out=last(y, H, W))


# ---- EfficientVMamba: EfficientScan (stride-2 sub-grids, zero padding) -> S6 -> EfficientMerge -----

def efficient_scan(x, step=2):  # [B, C, H, W] -> [B, 4, C, ceil(H/2)·ceil(W/2)]
    B, C, H, W = x.shape
    x = F.pad(x, (0, (-W) % step, 0, (-H) % step))  # zeros at the right / bottom
    xt = x.transpose(2, 3)
    parts = [x[:, :, ::step, ::step],     # (2a, 2b), row-major
             xt[:, :, ::step, 1::step],   # (2a+1, 2b), read from the transpose: column-major
             x[:, :, ::step, 1::step],    # (2a, 2b+1), row-major
             xt[:, :, 1::step, 1::step]]  # (2a+1, 2b+1), column-major
    return torch.stack([p.reshape(B, C, -1) for p in parts], dim=1)


def efficient_merge(ys, H, W, step=2):  # [B, 4, C, h·w] -> [B, C, H·W]: each padded cell written once, cropped
    B, K, C, _ = ys.shape
    h, w = math.ceil(H / step), math.ceil(W / step)
    y = ys.new_zeros(B, C, h * step, w * step)
    y[:, :, ::step, ::step] = ys[:, 0].reshape(B, C, h, w)
    y[:, :, 1::step, ::step] = ys[:, 1].reshape(B, C, w, h).transpose(2, 3)
    y[:, :, ::step, 1::step] = ys[:, 2].reshape(B, C, h, w)
    y[:, :, 1::step, 1::step] = ys[:, 3].reshape(B, C, w, h).transpose(2, 3)
    return y[:, :, :H, :W].reshape(B, C, H * W)


# Mapping (ssm::atrous_scan_2d): as cross scan. The padding cells are zeros of x before x_proj, so the
# released scan sees u = 0, B = C = 0 and raw dt = 0 there (delta = softplus(delta_bias), which still
# decays the state); tokenmix's inputs cover only the H×W cells. Channel block k of delta and B/C group
# k are only defined at the cells of sub-grid k; they are NaN elsewhere (never read).
def make_atrous(case, seed, Bt, H, W, D, N, R):
    gen = Gen(seed)
    L = H * W
    x = f32(gen.normal(Bt, D, H, W))
    x_proj, dt_w, dt_b, A_logs, Ds = mamba_params(gen, 4, D, N, R)
    xs = efficient_scan(x)
    T = xs.shape[-1]
    dts, Bs, Cs = (f32(t) for t in grouped_projection(xs, x_proj, dt_w, N, R))
    As, Ds, bias = f32(-torch.exp(A_logs)), f32(Ds), f32(dt_b.reshape(-1))
    ys = selective_scan(xs.reshape(Bt, 4 * D, T), dts.reshape(Bt, 4 * D, T), As, Bs, Cs, Ds, delta_bias=bias,
                        delta_softplus=True)
    y = efficient_merge(ys.reshape(Bt, 4, D, T), H, W)
    idxs = [index_map(lambda t, k=k: efficient_scan(t)[:, k], H, W) for k in range(4)]
    for k in range(4):  # the padding steps really are zero inputs
        pad = [t for t, p in enumerate(idxs[k]) if p < 0]
        if pad:
            assert all(float(v.abs().max()) == 0.0 for v in (dts[:, k, :, pad], Bs[:, k, :, pad], xs[:, k, :, pad]))
    # Direction k visits a quarter of the cells: its delta channels and B/C group elsewhere stay NaN.
    delta_g = scan_to_grid(dts, idxs, L, partial=True).reshape(Bt, 4 * D, L)
    B_g, C_g = scan_to_grid(Bs, idxs, L, partial=True), scan_to_grid(Cs, idxs, L, partial=True)
    save(case, u=last(x.reshape(Bt, D, L), H, W), delta=last(delta_g, H, W), A=As,
         B=B_g.permute(0, 3, 1, 2).reshape(Bt, H, W, 4, N), C=C_g.permute(0, 3, 1, 2).reshape(Bt, H, W, 4, N),
         D=Ds, delta_bias=bias, out=last(y, H, W))


# ---- PlainMamba: 4 continuous zigzag orders, shared parameters, direction-aware B -------------------

RIGHT, LEFT, UP, DOWN = 1, 2, 3, 4  # PlainMamba's labels; 0 = start
STEP = {RIGHT: (0, 1), LEFT: (0, -1), UP: (-1, 0), DOWN: (1, 0)}
BACK = {RIGHT: LEFT, LEFT: RIGHT, UP: DOWN, DOWN: UP}


def zigzag(H, W, i, j, heading, line_step):
    """get_permute_order's walker: from (i, j) move along the line (heading) while the next cell is on
    the grid, else step to the next line (line_step) and turn around; stop when leaving the grid.
    Returns (cells, labels) where labels[t] is the move that reached step t (labels[0] = 0)."""
    cells, labels = [], [0]
    while 0 <= i < H and 0 <= j < W:
        cells.append(i * W + j)
        di, dj = STEP[heading]
        if 0 <= i + di < H and 0 <= j + dj < W:
            i, j = i + di, j + dj
            labels.append(heading)
        else:
            di, dj = STEP[line_step]
            i, j = i + di, j + dj
            labels.append(line_step)
            heading = BACK[heading]
    return cells, labels[:len(cells)]


def plainmamba_orders(H, W):
    """o1 row snake from the top-left; o2 from the bottom row, at the corner where o1 ends (bottom-right
    if H is odd, bottom-left if even), moving up; o3 column snake from the top-left; o4 from the right
    column, at the corner where o3 ends, moving left. Returns (orders, inverses, labels)."""
    o1 = zigzag(H, W, 0, 0, RIGHT, DOWN)
    o2 = zigzag(H, W, H - 1, W - 1, LEFT, UP) if H % 2 == 1 else zigzag(H, W, H - 1, 0, RIGHT, UP)
    o3 = zigzag(H, W, 0, 0, DOWN, RIGHT)
    o4 = zigzag(H, W, H - 1, W - 1, UP, LEFT) if W % 2 == 1 else zigzag(H, W, 0, W - 1, DOWN, LEFT)
    orders, inverses, labels = [], [], []
    for cells, lab in (o1, o2, o3, o4):
        assert sorted(cells) == list(range(H * W))
        inv = [0] * (H * W)
        for t, p in enumerate(cells):
            inv[p] = t
        orders.append(cells), inverses.append(inv), labels.append(lab)
    return orders, inverses, labels


# Mapping (ssm::snake_scan_2d): u [B,H,W,E] = x_conv; delta [B,H,W,E] = dt_proj(x_proj(x_conv)) INCLUDING
# dt_proj's bias (the released forward applies nn.Linear, bias and all), delta_bias = dt_proj.bias
# (added a second time inside selective_scan_fn: the released double bias), delta_softplus; A [E,N];
# B, C [B,H,W,1,N]; D [E]; B_offset = direction_Bs [5,N]; z [B,H,W,E]; permute_params = false for the
# released code (only u is reordered: dt / B / C of raster token t at step t, Θ by step), true for the
# paper's intent (u, dt, B, C all reordered). out = Σ_k y_k ⊙ silu(z).
def make_plainmamba(case, seed, Bt, H, W, E, N, R, permute_params):
    gen = Gen(seed)
    L = H * W
    x_conv = f32(gen.normal(Bt, L, E))
    z = f32(gen.normal(Bt, L, E))
    x_proj = gen.normal(R + 2 * N, E, std=E ** -0.5)
    _, dt_w, dt_b, A_log, Dp = mamba_params(gen, 1, E, N, R)
    dt_w, dt_b = dt_w[0], f32(dt_b[0])
    theta = f32(gen.normal(5, N, std=0.3))  # direction_Bs (trunc_normal std 0.02 at init; larger here)
    x_dbl = x_conv @ x_proj.t()
    dt, Bm, Cm = torch.split(x_dbl, [R, N, N], dim=-1)
    dt = dt @ dt_w.t() + dt_b  # self.dt_proj(dt): the Linear adds its bias
    dt, Bm, Cm = (f32(t.permute(0, 2, 1)) for t in (dt, Bm, Cm))  # [B, *, L]
    A, Dp = f32(-torch.exp(A_log)), f32(Dp)
    orders, inverses, labels = plainmamba_orders(H, W)
    ys = []
    for o, inv, lab in zip(orders, inverses, labels):
        dB = theta[lab].t()[None].expand(Bt, N, L)  # Θ[dir[t]] at step t
        u_seq = x_conv[:, o, :].permute(0, 2, 1)
        if permute_params:
            dt_seq, B_seq, C_seq = dt[:, :, o], Bm[:, :, o], Cm[:, :, o]
        else:
            dt_seq, B_seq, C_seq = dt, Bm, Cm
        y = selective_scan(u_seq, dt_seq, A, f32(B_seq + dB), C_seq, Dp, delta_bias=dt_b, delta_softplus=True)
        ys.append(y.permute(0, 2, 1)[:, inv, :])
    out = sum(ys) * F.silu(z)
    grid = lambda t: t.reshape(Bt, H, W, -1)  # [B, L, c] token-major -> [B, H, W, c]
    save(case, u=grid(x_conv), delta=grid(dt.permute(0, 2, 1)), A=A,
         B=grid(Bm.permute(0, 2, 1)).reshape(Bt, H, W, 1, N), C=grid(Cm.permute(0, 2, 1)).reshape(Bt, H, W, 1, N),
         D=Dp, delta_bias=dt_b, B_offset=theta, z=grid(z), out=grid(out))


# ---- GroupMamba: 4 channel groups, each its own K=1 SS2D in one direction ------------------------

def group_scan(k, x):  # CrossScan_{k+1}: [B, C, H, W] -> [B, 1, C, L]
    B, C, H, W = x.shape
    seq = [x.reshape(B, C, H * W), x.transpose(2, 3).reshape(B, C, H * W)][k % 2]
    return (seq.flip(-1) if k >= 2 else seq)[:, None]


def group_merge(k, ys):  # CrossMerge_{k+1}: [B, 1, D, H, W] -> [B, D, L], released operation order
    B, _, D, H, W = ys.shape
    s = ys.reshape(B, D, H * W)
    if k == 0:
        return s
    if k == 1:
        return s.reshape(B, D, W, H).transpose(2, 3).reshape(B, D, H * W)
    if k == 2:
        return s.flip(-1)
    return s.reshape(B, D, W, H).transpose(2, 3).reshape(B, D, H * W).flip(-1)  # transpose, then flip


# Mapping (ssm::group_scan_2d): u [B,H,W,4·Dg] = concat of the groups' scan inputs; delta [B,H,W,4·Dg]
# block k = group k's dt (un-permuted); A [4·Dg,N], D, delta_bias [4·Dg] block k = group k's; B, C
# [B,H,W,4,N] group k. out = concat of the groups' merged outputs (skip_scale, the channel modulation,
# the LayerNorms and proj are the caller's).
def make_groupmamba(case, seed, Bt, H, W, Dg, N, R):
    gen = Gen(seed)
    L = H * W
    x = f32(gen.normal(Bt, 4 * Dg, H, W))
    outs, deltas, Bgs, Cgs, As, Dss, biases = [], [], [], [], [], [], []
    for k in range(4):
        x_proj, dt_w, dt_b, A_logs, Ds = mamba_params(gen, 1, Dg, N, R)
        xk = x[:, k * Dg:(k + 1) * Dg]
        xs = group_scan(k, xk)
        dts, Bs, Cs = (f32(t) for t in grouped_projection(xs, x_proj, dt_w, N, R))
        A, Ds, bias = f32(-torch.exp(A_logs)), f32(Ds), f32(dt_b.reshape(-1))
        ys = selective_scan(xs[:, 0], dts[:, 0], A, Bs, Cs, Ds, delta_bias=bias, delta_softplus=True)
        outs.append(group_merge(k, ys.reshape(Bt, 1, Dg, H, W)))
        idx = index_map(lambda t, k=k: group_scan(k, t)[:, 0], H, W)
        deltas.append(to_grid(dts[:, 0], idx, L))
        Bgs.append(to_grid(Bs[:, 0], idx, L)), Cgs.append(to_grid(Cs[:, 0], idx, L))
        As.append(A), Dss.append(Ds), biases.append(bias)
    bc = lambda ms: torch.stack(ms, dim=1).permute(0, 3, 1, 2).reshape(Bt, H, W, 4, N)
    save(case, u=last(x.reshape(Bt, 4 * Dg, L), H, W), delta=last(torch.cat(deltas, 1), H, W), A=torch.cat(As),
         B=bc(Bgs), C=bc(Cgs), D=torch.cat(Dss), delta_bias=torch.cat(biases), out=last(torch.cat(outs, 1), H, W))


# ---- MSVMamba multiscale_4scan_12 ------------------------------------------------------------------

def ms_joined(xl):  # [B, D, h, w] -> [B, D, 3·h·w]: [rev RM, CM, rev CM] concatenated, one sequence
    rm = xl.flatten(2)
    cm = xl.transpose(2, 3).flatten(2)
    return torch.cat([rm.flip(-1), cm, cm.flip(-1)], dim=2)


# Mapping (ssm::multiscale_scan_2d): u_full [B,H,W,D] = SiLU(dw3x3(x)); u_low [B,h,w,D] =
# SiLU(dw7x7 stride 2 pad 3 (x)), h = ceil(H/2); delta_full / B_full / C_full from parameter group 1
# (the full-resolution branch, xs list index 1), delta_low / B_low / C_low from group 0 at the low cells;
# A [2D,N] = -exp(A_logs) (rows [0,D) group 0 = low, [D,2D) group 1 = full); D = Ds, delta_bias =
# dt_projs_bias.view(-1) [2D]; no z (SE sits between the merge and the gate). out = y_full +
# bilinear_up(Σ thirds). The released out_norm (a LayerNorm per branch, applied to every token of each
# branch's sequence, i.e. to each third of the joined scan BEFORE the three are summed) is set to the
# identity here: tokenmix's op has no place for it.
def make_msvmamba(case, seed, Bt, H, W, D, N, R):
    gen = Gen(seed)
    x = f32(gen.normal(Bt, D, H, W))  # in_proj's x half
    w3, b3 = gen.normal(D, 1, 3, 3, std=1 / 3), gen.normal(D, std=0.1)
    w7, b7 = gen.normal(D, 1, 7, 7, std=1 / 7), gen.normal(D, std=0.1)
    xf = f32(F.silu(F.conv2d(x, w3, b3, padding=1, groups=D)))
    xl = f32(F.silu(F.conv2d(x, w7, b7, stride=2, padding=3, groups=D)))
    h, w = xl.shape[2:]
    assert (h, w) == (math.ceil(H / 2), math.ceil(W / 2))
    x_proj, dt_w, dt_b, A_logs, Ds = mamba_params(gen, 2, D, N, R)
    As, Dsf, bias = f32(-torch.exp(A_logs)), f32(Ds), f32(dt_b.reshape(-1))
    branches = []
    for i, seq in ((0, ms_joined(xl)), (1, xf.flatten(2))):  # forward_core_multiscale: xs = [x_b1, x]
        xs = seq[:, None]  # K = 1
        dts, Bs, Cs = (f32(t) for t in grouped_projection(xs, x_proj[i:i + 1], dt_w[i:i + 1], N, R))
        rows = slice(i * D, (i + 1) * D)
        ys = selective_scan(xs[:, 0], dts[:, 0], As[rows], Bs, Cs, Dsf[rows], delta_bias=bias[rows],
                            delta_softplus=True)
        branches.append((ys.transpose(1, 2), dts[:, 0], Bs[:, 0], Cs[:, 0]))  # y (B, T, D): out_norm = identity
    y_b1, y_b0 = branches[0][0], branches[1][0]
    n = h * w
    y_hori_r = y_b1[:, :n].flip(-2).reshape(Bt, h, w, D).permute(0, 3, 1, 2)
    y_vert = y_b1[:, n:2 * n].reshape(Bt, w, h, D).transpose(1, 2).permute(0, 3, 1, 2)
    y_vert_r = y_b1[:, 2 * n:].flip(-2).reshape(Bt, w, h, D).transpose(1, 2).permute(0, 3, 1, 2)
    up = F.interpolate(y_hori_r + y_vert + y_vert_r, size=(H, W), mode='bilinear', align_corners=False)
    y = y_b0.reshape(Bt, H, W, D) + up.permute(0, 2, 3, 1)
    idx_low = index_map(ms_joined, h, w)
    idx_full = list(range(H * W))
    _, dl, bl, cl = branches[0]
    _, df, bf, cf = branches[1]
    g_low = lambda t: last(to_grid(t, idx_low, n), h, w)
    g_full = lambda t: last(to_grid(t, idx_full, H * W), H, W)
    save(case, u_full=last(xf.flatten(2), H, W), delta_full=g_full(df), B_full=g_full(bf)[:, :, :, None],
         C_full=g_full(cf)[:, :, :, None], u_low=last(xl.flatten(2), h, w), delta_low=g_low(dl),
         B_low=g_low(bl)[:, :, :, None], C_low=g_low(cl)[:, :, :, None], A=As, D=Dsf, delta_bias=bias, out=y)


# ---- Vim bidirectional (bimamba v1 / v2) --------------------------------------------------------------

def causal_conv_silu(x, w, b):  # x [B, D, L], w [D, 1, K]: Conv1d(padding K-1)[..., :L] then SiLU
    K = w.shape[-1]
    return F.silu(F.conv1d(x, w, b, padding=K - 1, groups=x.shape[1])[..., :x.shape[-1]])


def vim_inner(xz, conv_w, conv_b, x_proj, dt_w, A, D, dt_bias, N, R):
    """mamba_inner_fn_no_out_proj's data flow; returns (y gated [B, D, L], u, dt, B, C in its own order)."""
    x, z = xz.chunk(2, dim=1)
    u = f32(causal_conv_silu(x, conv_w, conv_b))
    x_dbl = torch.einsum('bdl,cd->bcl', u, x_proj)
    dt = f32(torch.einsum('dr,brl->bdl', dt_w, x_dbl[:, :R]))  # dt_proj.weight @ dt_low: no bias here
    Bm, Cm = f32(x_dbl[:, R:R + N]), f32(x_dbl[:, R + N:])
    return selective_scan(u, dt, A, Bm, Cm, D, z=z, delta_bias=dt_bias, delta_softplus=True), u, dt, Bm, Cm


# Mapping (ssm::bidirectional_scan), everything in the original token order, [B, L, *]:
#   v2: u [B,L,2D] = [conv_f(x) ‖ flip(conv_b(flip x))], delta [B,L,2D] likewise (dt_proj weights only),
#       A [2D,N] = [A ‖ A_b], B, C [B,L,2,N] (group 1 = flip of the backward x_proj's B / C),
#       D [2D] = [D ‖ D_b], delta_bias [2D]; z [B,L,D]; out = (y_f + flip(y_b)) / 2 (if_devide_out).
#   v1: u, delta [B,L,D] (one conv, one x_proj), A [2D,N] = [A ‖ A_b], B, C [B,L,1,N], D, delta_bias
#       [D] shared; z; out = y_f + flip(y_b) (no /2).
# The outputs are taken before out_proj.
def make_vim(case, seed, Bt, L, Dm, N, R, K, variant):
    gen = Gen(seed)
    xz = f32(gen.normal(Bt, 2 * Dm, L))
    z = xz[:, Dm:]

    def direction_params():
        conv_w, conv_b = gen.normal(Dm, 1, K, std=K ** -0.5), gen.normal(Dm, std=0.1)
        x_proj, dt_w, dt_b, A_log, Dp = mamba_params(gen, 1, Dm, N, R)
        return conv_w, conv_b, x_proj[0], dt_w[0], f32(dt_b[0]), f32(-torch.exp(A_log)), f32(Dp)

    cw, cb, xp, dtw, dtb, A, Dp = direction_params()
    if variant == 'v2':
        cw_b, cb_b, xp_b, dtw_b, dtb_b, A_b, Dp_b = direction_params()
        y_f, u_f, dt_f, B_f, C_f = vim_inner(xz, cw, cb, xp, dtw, A, Dp, dtb, N, R)
        y_b, u_b, dt_b, B_b, C_b = vim_inner(xz.flip(-1), cw_b, cb_b, xp_b, dtw_b, A_b, Dp_b, dtb_b, N, R)
        out = (y_f + y_b.flip(-1)) / 2
        tok = lambda t: t.permute(0, 2, 1)
        save(case, u=tok(torch.cat([u_f, u_b.flip(-1)], 1)), delta=tok(torch.cat([dt_f, dt_b.flip(-1)], 1)),
             A=torch.cat([A, A_b]), B=torch.stack([tok(B_f), tok(B_b.flip(-1))], 2),
             C=torch.stack([tok(C_f), tok(C_b.flip(-1))], 2), D=torch.cat([Dp, Dp_b]),
             delta_bias=torch.cat([dtb, dtb_b]), z=tok(z), out=tok(out))
    else:
        A_b = f32(-torch.exp(torch.log(torch.arange(1, N + 1, dtype=torch.float64)).repeat(Dm, 1)
                             + gen.normal(Dm, N, std=0.1)))
        # bimamba_inner_ref: one conv / x_proj / dt; the backward scan reads their flips, shares D and bias.
        x = xz[:, :Dm]
        u = f32(causal_conv_silu(x, cw, cb))
        x_dbl = torch.einsum('bdl,cd->bcl', u, xp)
        dt = f32(torch.einsum('dr,brl->bdl', dtw, x_dbl[:, :R]))
        Bm, Cm = f32(x_dbl[:, R:R + N]), f32(x_dbl[:, R + N:])
        y = selective_scan(u, dt, A, Bm, Cm, Dp, z=z, delta_bias=dtb, delta_softplus=True)
        y_b = selective_scan(u.flip(-1), dt.flip(-1), A_b, Bm.flip(-1), Cm.flip(-1), Dp, z=z.flip(-1),
                             delta_bias=dtb, delta_softplus=True)
        out = y + y_b.flip(-1)
        tok = lambda t: t.permute(0, 2, 1)
        save(case, u=tok(u), delta=tok(dt), A=torch.cat([A, A_b]), B=tok(Bm)[:, :, None], C=tok(Cm)[:, :, None],
             D=Dp, delta_bias=dtb, z=tok(z), out=tok(out))


# ---- Spatial-Mamba structure-aware state fusion --------------------------------------------------------

def state_fusion(h, kernels, alpha, dilations=(1, 3, 5)):
    """StateFusion.forward (training path): h [B, C, H, W]; replicate-pad by r, depthwise 3×3 with
    dilation r, weighted by alpha."""
    C = h.shape[1]
    out = 0
    for k, r in enumerate(dilations):
        out = out + alpha[k] * F.conv2d(F.pad(h, (r, r, r, r), mode='replicate'), kernels[k], dilation=r, groups=C)
    return out


# Mapping: ref / ssm::selective_scan_states(u [B,L,D], delta [B,L,D], A [D,N], B [B,L,N], C = any
# (ones [D,N]), {delta_bias, softplus}) -> states [B,L,D,N] == h; ssm::spatial_state_fusion(h viewed
# [B,H,W,D,N], kernels [3,D,3,3] (conv weights [D,1,3,3] squeezed), alpha [3], C [B,H,W,N],
# {dilations {1,3,5}, D, u}) == out [B,H,W,D]. The released model hard-codes N = 1 (h viewed as
# (B, D, H, W)); N > 1 is the spec's generalisation (each state channel fused with its channel's kernel).
def make_spatial(case, seed, Bt, H, W, D, N, R):
    gen = Gen(seed)
    L = H * W
    xs = f32(gen.normal(Bt, D, L))
    x_proj, dt_w, dt_b, A_log, Ds = mamba_params(gen, 1, D, N, R)
    x_dbl = torch.einsum('cd,bdl->bcl', x_proj[0], xs)
    dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=1)
    dts = f32(torch.einsum('dr,brl->bdl', dt_w[0], dts))
    Bs, Cs = f32(Bs), f32(Cs)
    A, Ds, bias = f32(-torch.exp(A_log)), f32(Ds), f32(dt_b[0])
    hs = f32(selective_scan(xs, dts, A, Bs, None, delta_bias=bias, delta_softplus=True))  # [B, D, N, L]
    kernels = f32(gen.normal(3, D, 1, 3, 3, std=0.5))  # released init: ones; random to pin the orientation
    alpha = f32(gen.uniform(0.5, 1.5, 3))
    if N == 1:  # released: rearrange "b d 1 (h w) -> b (d 1) h w"
        fused = state_fusion(hs.reshape(Bt, D, H, W), kernels, alpha).reshape(Bt, D, 1, L)
    else:
        fused = state_fusion(hs.reshape(Bt, D * N, H, W), kernels.repeat_interleave(N, dim=1), alpha)
        fused = fused.reshape(Bt, D, N, L)
    y = (fused * Cs[:, None]).sum(2) + xs * Ds[:, None]  # h'·C + u·D
    save(case, u=last(xs, H, W), delta=last(dts, H, W), A=A, B=Bs.permute(0, 2, 1), C=last(Cs, H, W), D=Ds,
         delta_bias=bias, states=hs.permute(0, 3, 1, 2).reshape(Bt, H, W, D, N), kernels=kernels[:, :, 0],
         alpha=alpha, out=last(y, H, W))


if __name__ == '__main__':
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    make_vmamba('vmamba_cross', 11, Bt=2, H=3, W=5, D=6, N=2, R=2)
    make_vmamba('vmamba_cross_column', 12, Bt=1, H=4, W=1, D=3, N=1, R=1)
    make_atrous('efficientvmamba_odd', 21, Bt=1, H=5, W=7, D=4, N=3, R=2)
    make_atrous('efficientvmamba_even', 22, Bt=2, H=4, W=6, D=3, N=2, R=1)
    make_plainmamba('plainmamba_released', 31, Bt=2, H=3, W=4, E=5, N=3, R=2, permute_params=False)
    make_plainmamba('plainmamba_released_odd', 32, Bt=1, H=5, W=3, E=4, N=2, R=1, permute_params=False)
    make_plainmamba('plainmamba_permuted', 33, Bt=1, H=4, W=5, E=4, N=3, R=2, permute_params=True)
    make_groupmamba('groupmamba', 41, Bt=2, H=3, W=5, Dg=2, N=1, R=1)
    make_groupmamba('groupmamba_n3', 42, Bt=1, H=4, W=3, Dg=3, N=3, R=2)
    make_msvmamba('msvmamba_odd', 51, Bt=1, H=5, W=7, D=4, N=1, R=1)
    make_msvmamba('msvmamba_even', 52, Bt=2, H=4, W=6, D=3, N=2, R=2)
    make_vim('vim_v2', 61, Bt=2, L=7, Dm=4, N=3, R=2, K=4, variant='v2')
    make_vim('vim_v1', 62, Bt=2, L=6, Dm=5, N=2, R=1, K=4, variant='v1')
    make_spatial('spatialmamba', 71, Bt=2, H=4, W=5, D=3, N=1, R=1)
    make_spatial('spatialmamba_n2', 72, Bt=1, H=6, W=7, D=2, N=2, R=1)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print('fixtures written to', OUT, f'({total} bytes)')
