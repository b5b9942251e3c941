#!/usr/bin/env python3
"""Fixtures for the SeqBoat layer (one SeqBoatUnit forward, inference mode: every dropout off), computed
in PyTorch/NumPy (float64, from float32 parameters and inputs) by our own transcription of the PUBLIC
reference code named below. Nothing is imported from that project (it needs fairseq and einops); each
formula is re-written here in our own words. Every case is computed by two independent formulations
that must agree to 1e-12 (relative to the output's largest entry) before anything is written.

SOURCES TRANSCRIBED (renll/SeqBoat; the spec /work/shared/spec/seqboat_h3.md §1 names @5a34aed)
  fairseq/modules/seqboat_unit.py   SeqBoatUnit.__init__ (attribute / state-dict names, local mode:
                                    chunk_size > 0 -> window_size = chunk_size, density_threshold = 1),
                                    SeqBoatUnit.forward (no incremental state), element_attention,
                                    local_attention                        -> released_forward & helpers
  fairseq/modules/seqboat_utils.py  compress_seq, extract, look_around, look_around_2d, pad_to_multiple,
                                    FastRelativePositionalBias.forward (the tile trick, with the
                                    seq_len > max_positions edge extension), LatentConfigurator.forward
                                    (learned_temp: softmax((u + [act_bias, 0]) / exp(temp))),
                                    precompute_freqs_cis, apply_rotary_emb, TOKEN_SELF_ATTN_VALUE = -5e4
  fairseq/modules/exponential_moving_average.py   MultiHeadEMA._calc_coeffs, _compute_kernel,
                                    forward (rfft/irfft convolution, bidirectional kernel layout)
  standalone_seqboat.py             SeqBoatLayer (same algorithm, used to cross-read the above;
                                    relu2 = square(relu(.)))
  fairseq/modules/sequence_norm.py  is NOT in the stored copy of renll/SeqBoat; SeqBoat's fairseq is a
                                    fork of facebookresearch/mega, whose sequence_norm.py /
                                    scale_norm.py / root_mean_square_norm.py are transcribed here
                                    (SeqBoatUnit builds SequenceNorm(norm_type, D, affine=True) with the
                                    SequenceNorm default eps = 1e-5, passed on to every norm type).

SEMANTICS CHOSEN (spec ambiguity A1): ALWAYS COMPRESS. The released code compresses only when the
batch-max activated count m_max < L (density_threshold = 1 in local mode); with one fully activated
row it does not compress any row and then measures the window in original positions. In the cases
"causal_softmax_simple", "bidir_relu2_simple", "causal_softmax_rotary" no row is fully activated, so
the released batch rule compresses and the fixture IS what the released code computes. In "all_active"
every token of every row is activated; the released code then does NOT compress, and we check that its
uncompressed path equals the always-compress result (compression is then the identity) to 1e-12 too.
Batch rows never interact: the released code pads the compressed rows to the batch max m with masked
keys placed after the real ones, which cannot change a real query's result (checked: formulation B
runs each row alone).

PARAMETERS (file = state-dict name with '.' -> '_', released shapes; all float32;
D = embed_dim, Z = zdim, E = hdim, N = ndim, M = max_positions, D' = 2D if bidirectional else D)
  norm_norm_weight        [D]         layernorm gain        | rmsnorm gain
  norm_norm_bias          [D]         layernorm only
  norm_norm_scalar        [1]         scalenorm only (the single gain)
  move_delta              [D', N, 1]  EMA
  move_alpha              [D', N, 1]
  move_beta               [D', N, 1]
  move_gamma              [D', N]
  move_omega              [D]
  q_router_temp           [1]         log temperature (init log(init_temp_scale * sqrt(D)))
  hx_proj_weight          [2 + D, D]  rows 0,1 = router logits, rows 2.. = hx      (y = x W^T + b)
  hx_proj_bias            [2 + D]
  mx_proj_weight          [Z + 2E, D] rows 0..Z-1 -> z, Z..Z+E-1 -> r, Z+E.. -> v
  mx_proj_bias            [Z + 2E]
  gamma                   [2, Z]      row 0 -> query, row 1 -> key
  beta                    [2, Z]
  h_proj_weight           [D, E]
  h_proj_bias             [D]
  rel_pos_bias_rel_pos_bias [2M - 1]  'simple' position kind only (absent for 'rotary')
(Inside the fairseq encoder/decoder layers the unit is `slag_layer.`, so checkpoint keys read
 e.g. `...layers.0.slag_layer.move.delta`. standalone_seqboat.py names the EMA `ssm.` instead of `move.`.)

FORWARD (one sequence x [L, D]; t, j = 0-based positions; silu(a) = a * sigmoid(a))
  1. xn = Norm(x) if prenorm else x, Norm applied per token over the D channels:
       layernorm: (x - mean) / sqrt(var + 1e-5) * w + b      (biased variance, mean over D)
       rmsnorm:   x * w / sqrt(mean(x^2) + 1e-5)
       scalenorm: x * s / sqrt(mean(x^2) + 1e-5)
  2. EMA (MultiHeadEMA, truncation None -> kernel length L): for row d of [D', N],
       p = sigmoid(delta), a = sigmoid(alpha), q = 1 - p*a, scale = 1/sqrt(N),
       K[d, l] = sum_n p[d,n] * beta[d,n] * gamma[d,n] * scale * q[d,n]^l    (l = 0..L-1)
     causal:  y[t,d] = sum_{j=0..t} K[d,j] xn[t-j,d] + omega[d] xn[t,d]
     bidirectional (K1 = rows 0..D-1, K2 = rows D..2D-1):
              y[t,d] = sum_{j=0..t} K1[d,j] xn[t-j,d] + sum_{j=0..L-1-t} K2[d,j] xn[t+j,d] + omega[d] xn[t,d]
              (lag 0 counted twice: K1[d,0] + K2[d,0])
     Recurrence form: s_n[t] = q_n s_n[t-1] + xn[t] (s_n[-1] = 0), y = sum_n p beta gamma scale s_n + ...;
     the backward part the same run from t = L-1 down to 0 with the K2 rows.
  3. mx = silu(y);  hu = mx hx_proj_weight^T + hx_proj_bias;  u = hu[:, 0:2], hx = hu[:, 2:]
  4. router: tau = exp(q_router_temp), P = softmax(([u0 + act_bias, u1]) / tau) over the 2 entries,
       act[t] = P[t,1] > P[t,0] (strict; a tie -> not activated), g[t] = P[t,1] if act[t] else 0
       (act_bias is a forward() argument, default 0; never passed by the released layers)
  5. compress: idx = increasing list of activated t, m = len(idx); P_i = idx[i] (original position)
  6. GAU on the m compressed tokens: (z | r | v) = silu(mx[idx[i]] mx_proj_weight^T + mx_proj_bias),
       Q_i = z * gamma[0] + beta[0],  K_i = z * gamma[1] + beta[1]   (single head, width Z)
     rotary only: rotate Q_i and K_i at ORIGINAL position P_i: for k = 0..Z/2-1,
       theta_k = 10000^(-2k/Z), ang = P_i * theta_k, (a, b) = (X[2k], X[2k+1]) ->
       (a cos ang - b sin ang, a sin ang + b cos ang)   (adjacent pairs, 0-based positions)
     allowed keys J(i): causal i-W <= j <= i; bidirectional |i-j| <= W   (compressed indices)
     score s_ij = c * <Q_i, K_j> + bias_ij,  j in J(i)
       softmax: c = Z^-0.5,  a_ij = softmax over J(i) of s_ij   (released: masked logits = -5e4,
                which underflow to exactly 0 after exp)
       relu2:   c = 1/W (causal) or 1/(2W) (bidirectional), a_ij = max(s_ij, 0)^2, no normaliser
                (released: masked scores set to 0 -> a = 0)
       simple:  bias_ij = b[clamp(P_j - P_i, -(M-1), M-1) + M - 1], b = rel_pos_bias_rel_pos_bias
                (ORIGINAL positions; the clamp is live when L > M)
       rotary:  bias_ij = 0
     O_i = sum_{j in J(i)} a_ij V_j;   Hc_i = (r_i * O_i) h_proj_weight^T + h_proj_bias
  7. extract: h[t] = g[t] * Hc_{rank(t)} for activated t, else 0
  8. out = silu(x + hx + h)   (x = the un-normalised input);  out = Norm(out) if not prenorm

PARAMETER VALUES: not the released init (truncated N(0, 0.02) linears, zero biases, GAU gamma ~ 0.02,
beta = 0), which would leave the GAU branch invisible; instead linears N(0, 1/fan_in) (h_proj 3x that),
biases N(0, 0.1), GAU |gamma| ~ 1.5 with q/k signs mostly shared, beta N(0, 0.3), rel-pos table N(0, 0.5),
norm gains 1 + N(0, 0.2), EMA as released (beta = alternating +-1 + noise, gamma/omega N(0, 1)) but
delta, alpha clamped to [-0.8, 0.8] so every decay q lies in (0.5, 0.95), temp = log(0.3 sqrt(D)) +
N(0, 0.1). hx_proj_bias[1] is then set so the router activates about half (or all) of the tokens.

Differences from the released computation (all below float32 resolution): the released code runs the
EMA FFT in float32 (k.float(), x.float()), the router softmax in float32, and RoPE in float32 (freqs
from float32 arange/pow, apply_rotary_emb casts q to float); here everything is float64.

CASES (tests/data/seqboat/<case>/; x, out [B, L, D] batch-first; config.json holds the sizes, flags,
eps values, act_bias, the per-row activated counts and masks)
  causal_softmax_simple  B 2, L 19, D 12, Z 8, E 16, N 3, W 3, M 32, causal, softmax, simple,
                         prenorm layernorm, act_bias 0.25 (added to logit 0)
  bidir_relu2_simple     B 2, L 21, D 10, Z 6, E 12, N 4, W 2, M 4 (< L: the bias clamp is live),
                         bidirectional EMA + attention, relu2, simple, postnorm layernorm
  causal_softmax_rotary  B 2, L 17, D 8, Z 8, E 8, N 2, W 4, causal, softmax, rotary, prenorm rmsnorm
  all_active             B 2, L 13, D 8, Z 4, E 8, N 2, W 2, M 32, causal, softmax, simple, postnorm
                         scalenorm, act_bias -1; every token activated (also checked against the
                         released uncompressed path = dense GAU with the window over all tokens)
  In the first three about half the tokens are activated (each row between L/4 and 3L/4, the router
  logit margin |l1 - l0| / tau >= 1e-3 everywhere so float32 and float64 make the same decisions), and
  at least one row has its first token not activated. config.json "activated" holds one '0'/'1' string
  per row.

Run with Debian's python3-torch:  /usr/bin/python3 tests/data/make_seqboat_fixture.py
"""
import json
import math
import os
import shutil

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seqboat")
NORM_EPS = 1e-5          # SequenceNorm default eps, forwarded to layernorm / rmsnorm / scalenorm
MASK_VALUE = -5e4        # TOKEN_SELF_ATTN_VALUE (softmax masking)
ROPE_THETA = 10000.0


def silu_t(a):
    return a * torch.sigmoid(a)


def dbl(p, name):
    return p[name].double()


# =====================================================================================================
# Formulation A: the released forward pass (time-major inside, batched, padded to the batch max m)
# =====================================================================================================

def released_norm(x, p, kind):
    """SequenceNorm on [L, B, D] (normalises the last axis)."""
    if kind == "layernorm":
        return F.layer_norm(x, (x.shape[-1],), dbl(p, "norm_norm_weight"), dbl(p, "norm_norm_bias"), NORM_EPS)
    mean_square = torch.mean(torch.square(x), dim=-1, keepdim=True)
    if kind == "rmsnorm":
        x = x * dbl(p, "norm_norm_weight")
    elif kind == "scalenorm":
        x = dbl(p, "norm_norm_scalar") * x
    else:
        raise ValueError(kind)
    return x * torch.rsqrt(mean_square + NORM_EPS)


def released_ema(x, p, bidirectional):
    """MultiHeadEMA.forward, no padding mask, no incremental state, truncation None. x: [L, B, D]."""
    L, B, D = x.shape
    N = p["move_gamma"].shape[1]
    pp = torch.sigmoid(dbl(p, "move_delta"))                 # D' x N x 1
    q = 1.0 - pp * torch.sigmoid(dbl(p, "move_alpha"))
    T = L                                                      # kernel length (no truncation)
    powers = torch.exp(torch.arange(T).double().view(1, 1, T) * torch.log(q))
    kern = torch.einsum("dnl,dn->dl", (pp * dbl(p, "move_beta")) * powers, dbl(p, "move_gamma") * math.sqrt(1.0 / N))
    skip = x * dbl(p, "move_omega")
    xs = x.permute(1, 2, 0)                                    # B x D x L
    n_fft, start = L, 0
    if bidirectional:
        k_fwd, k_bwd = torch.split(kern, [D, D], dim=0)
        # one two-sided kernel of length 2T-1: backward lags (flipped) on the left, forward on the right
        kern = F.pad(k_fwd, (T - 1, 0)) + F.pad(k_bwd.flip(-1), (0, T - 1))
        xs = F.pad(xs, (T - 1, 0))
        n_fft = L + T - 1
        start = 2 * T - 2
    spec = torch.fft.rfft(xs, n=2 * n_fft) * torch.fft.rfft(kern, n=2 * n_fft)
    y = torch.fft.irfft(spec, n=2 * n_fft)[..., start:start + L]
    return y.permute(2, 0, 1) + skip


def compress_seq(t, index, count):
    """Scatter rows with rank r >= 1 to slot r of a (count+1)-row buffer, then drop slot 0."""
    shape = t.shape[:-2] + (count + 1,) + t.shape[-1:]
    buf = torch.zeros(shape, dtype=t.dtype)
    buf.scatter_(-2, index, t)
    return buf[..., 1:, :] if count > 0 else 0 * buf


def extract(h, index):
    """Gather back: rank 0 (not activated) reads a prepended zero row."""
    h = F.pad(h, (0, 0, 1, 0))
    return torch.gather(h, -2, index.expand(*index.shape[:-1], h.shape[-1]))


def fast_rel_pos_bias(table, M, n):
    """FastRelativePositionalBias.forward(n): [n, n] matrix with entry (i, j) from table[j - i + M - 1]
    (clamped to the table ends when n > M), built the way the released code builds it."""
    if n <= M:
        lo = M - n
        b = table[lo:lo + 2 * n - 1]
    else:
        extra = n - M
        b = torch.cat([table[:1].expand(extra), table, table[-1:].expand(extra)])
    t = F.pad(b, (0, n))                       # length 3n - 1
    t = torch.tile(t, (n,))[:-n]               # n rows of stride 3n - 2: row i is shifted left by i
    t = t.view(n, 3 * n - 2)
    r = (2 * n - 1) // 2
    return t[:, r:t.shape[1] - r]


def pad_to_multiple(t, multiple, dim=-1, value=0):
    length = t.shape[dim]
    if length % multiple == 0:
        return t
    extra = (length // multiple + 1) * multiple - length
    pads = (0, 0) * (-1 - dim) + (0, extra)
    return F.pad(t, pads, value=value)


def look_around(t, back, fwd, pad_value):
    """t: [b, windows, ...] -> concatenation along axis 2 of the windows w-back .. w+fwd."""
    nw = t.shape[1]
    pads = (0, 0) * (t.dim() - 2) + (back, fwd)
    padded = F.pad(t, pads, value=pad_value)
    return torch.cat([padded[:, o:o + nw] for o in range(back + fwd + 1)], dim=2)


def look_around_2d(bias, W, back, fwd):
    """bias [b, k, n, n] (n multiple of W) -> [b, k, windows, W, (back+fwd+1) W] with entry
    (w, a, o*W + c) = bias[w*W + a, (w + o - back)*W + c] (0 outside)."""
    b, k, n, _ = bias.shape
    nw = n // W
    blocks = bias.reshape(b, k, nw, W, nw, W).transpose(-3, -2)     # b k wq wk a c
    padded = F.pad(blocks, (0, 0, 0, 0, back, fwd), value=0)
    parts = []
    for o in range(back + fwd + 1):
        dg = torch.diagonal(padded, offset=o, dim1=-4, dim2=-3)      # b k a c wq
        parts.append(dg.transpose(-1, -2).transpose(-3, -2))         # b k wq a c
    return torch.cat(parts, -1)


def local_attention(q, k, v, attn_bias, keep, causal, W, attention):
    """SeqBoatUnit.local_attention. q, k [B, 1, m, Z], v [B, 1, m, E], keep [B, 1, m] (True = real key)."""
    lead = q.shape[:-2]
    q, k, v = (t.reshape(-1, t.shape[-2], t.shape[-1]) for t in (q, k, v))
    m = q.shape[1]
    q, k, v = (pad_to_multiple(t, W, dim=-2) for t in (q, k, v))
    b, n, _ = q.shape
    nw = n // W
    back, fwd = (1, 0) if causal else (1, 1)
    pos = torch.arange(n).view(1, nw, W)
    bq, bk, bv = (t.view(b, nw, W, t.shape[-1]) for t in (q, k, v))
    bk = look_around(bk, back, fwd, -1)
    bv = look_around(bv, back, fwd, -1)
    pos_q = pos.unsqueeze(-1)                                         # 1 w W 1
    pos_k = look_around(pos, back, fwd, -1).unsqueeze(-2)             # 1 w 1 3W
    pad_key = pos_k == -1
    sim = torch.einsum("bwie,bwje->bwij", bq, bk)
    if attn_bias is not None:
        attn_bias = pad_to_multiple(attn_bias, W, dim=-2)
        attn_bias = pad_to_multiple(attn_bias, W, dim=-1)
        ab = look_around_2d(attn_bias, W, back, fwd)
        sim = sim + ab.reshape(-1, *ab.shape[2:])
    fill = MASK_VALUE if attention == "softmax" else 0.0
    if causal:
        sim = sim.masked_fill((pos_q < pos_k) | (pos_q > pos_k + W), fill)
        sim = sim.masked_fill(pad_key, fill)
    else:
        sim = sim.masked_fill((pos_k - W > pos_q) | (pos_q > pos_k + W) | pad_key, fill)
    keep = pad_to_multiple(keep, W, dim=-1, value=False).reshape(-1, nw, W)
    keep = look_around(keep, back, fwd, False).unsqueeze(-2)
    sim = sim.masked_fill(~keep, fill)
    if attention == "softmax":
        attn = torch.softmax(sim, dim=-1)
    else:
        attn = torch.square(torch.relu(sim))
    out = torch.einsum("bwij,bwje->bwie", attn, bv).reshape(b, n, -1)[:, :m]
    return out.reshape(*lead, m, -1)


def rope_freqs(Z, L):
    """precompute_freqs_cis in float64: [L, Z/2] complex, e^{i t theta_k}, theta_k = 1e4^(-2k/Z)."""
    inv = 1.0 / (ROPE_THETA ** (torch.arange(0, Z, 2)[: Z // 2].double() / Z))
    ang = torch.outer(torch.arange(L).double(), inv)
    return torch.polar(torch.ones_like(ang), ang)


def apply_rope(t, freqs):
    tc = torch.view_as_complex(t.reshape(*t.shape[:-1], -1, 2).contiguous())
    return torch.view_as_real(tc * freqs).flatten(-2)


def released_forward(x_bld, p, cfg, force_compress):
    """SeqBoatUnit.forward (local mode, eval) on batch-first x [B, L, D]; returns (out [B, L, D], act)."""
    D, Z, E, W, M = cfg["D"], cfg["Z"], cfg["E"], cfg["W"], cfg["M"]
    causal, attention, position = cfg["causal"], cfg["attention"], cfg["position"]
    x = x_bld.transpose(0, 1)                                         # time-major L x B x D
    L, B, _ = x.shape
    residual = x
    if cfg["prenorm"]:
        x = released_norm(x, p, cfg["norm"])
    mx = silu_t(released_ema(x, p, not causal)).transpose(0, 1)       # B x L x D
    tick = None
    if position == "rotary":
        tick = rope_freqs(Z, L)[None].expand(B, -1, -1).unsqueeze(1)  # B x 1 x L x Z/2
    mx = mx.unsqueeze(1)                                              # B x 1 x L x D (chunk_size < 0)
    hu = mx @ dbl(p, "hx_proj_weight").T + dbl(p, "hx_proj_bias")
    u, hx = torch.split(hu, [2, D], dim=-1)
    if position == "simple":
        tick = torch.arange(1, L + 1)[None, None, :, None].expand(B, 1, -1, -1)
    # LatentConfigurator (learned temperature): tempered softmax, then argmax
    tau = torch.exp(dbl(p, "q_router_temp"))
    if cfg["act_bias"] != 0:
        u = u + torch.tensor([cfg["act_bias"], 0.0])
    probs = torch.softmax(u / tau, dim=-1)
    p_max, choice = probs.max(dim=-1, keepdim=True)
    act = choice == 1                                                 # B x 1 x L x 1
    gate = p_max * act
    m_max = int(act.sum(-2).max())
    compress = force_compress or (m_max / L < 1)                      # density_threshold = 1
    if compress:
        rank = act * torch.cumsum(act.long(), dim=-2)
        mx = compress_seq(mx, rank.expand(-1, -1, -1, D), m_max)
        tick = compress_seq(tick, rank.expand(-1, -1, -1, tick.shape[-1]), m_max)
        keep_c = compress_seq(act, rank, m_max)
        padding_mask = ~keep_c.squeeze(-1)
    else:
        padding_mask = ~act.squeeze(-1)
    if position == "simple":
        tick = tick.squeeze(-1)
    base = silu_t(mx @ dbl(p, "mx_proj_weight").T + dbl(p, "mx_proj_bias"))
    z, r, v = torch.split(base, [Z, E, E], dim=-1)
    zz = z.unsqueeze(-2) * dbl(p, "gamma") + dbl(p, "beta")
    qry, key = torch.unbind(zz, dim=-2)
    # ---- element_attention ----
    if position == "rotary":
        qry, key = apply_rope(qry, tick), apply_rope(key, tick)
        bias = None
    else:
        bias = fast_rel_pos_bias(dbl(p, "rel_pos_bias_rel_pos_bias"), M, L)
        if compress:
            bias = F.pad(bias, (1, 0, 1, 0))
            bias = bias[tick]                                         # B x 1 x m x (L+1)
            bias = torch.gather(bias, -1, tick[:, :, None, :].expand(-1, -1, bias.shape[-2], -1))
        else:
            bias = bias[None, None]
    if attention == "softmax":
        qry = qry * Z ** -0.5
        all_pad = padding_mask.all(dim=-1, keepdim=True)
        padding_mask = padding_mask & ~all_pad
    else:
        qry = qry / (W if causal else 2 * W)
    o = local_attention(qry, key, v, bias, ~padding_mask, causal, W, attention)
    hc = (o * r) @ dbl(p, "h_proj_weight").T + dbl(p, "h_proj_bias")
    if compress:
        hc = extract(hc, rank)
    hc = hc * gate
    hc = hc.reshape(B, -1, D).transpose(0, 1)
    hx = hx.reshape(B, -1, D).transpose(0, 1)
    out = silu_t(hx + hc + residual)
    if not cfg["prenorm"]:
        out = released_norm(out, p, cfg["norm"])
    return out.transpose(0, 1), act.reshape(B, L)


# =====================================================================================================
# Formulation B: direct loops (spec §4 seqboat_ref), NumPy float64, one row at a time
# =====================================================================================================

def npd(p, name):
    return p[name].double().numpy()


def sig(a):
    return 1.0 / (1.0 + math.exp(-a))


def silu(a):
    return a / (1.0 + np.exp(-a))


def direct_norm(x, p, kind):
    L, D = x.shape
    out = np.empty_like(x)
    for t in range(L):
        row = x[t]
        if kind == "layernorm":
            mu = sum(row) / D
            var = sum((c - mu) ** 2 for c in row) / D
            out[t] = (row - mu) / math.sqrt(var + NORM_EPS) * npd(p, "norm_norm_weight") + npd(p, "norm_norm_bias")
        else:
            ms = sum(c * c for c in row) / D
            gain = npd(p, "norm_norm_weight") if kind == "rmsnorm" else npd(p, "norm_norm_scalar")[0]
            out[t] = row * gain / math.sqrt(ms + NORM_EPS)
    return out


def direct_ema(xn, p, bidirectional):
    """EMA as N scalar recurrences per channel (forward, plus backward if bidirectional)."""
    L, D = xn.shape
    delta, alpha, beta = npd(p, "move_delta")[..., 0], npd(p, "move_alpha")[..., 0], npd(p, "move_beta")[..., 0]
    gamma, omega = npd(p, "move_gamma"), npd(p, "move_omega")
    N = gamma.shape[1]
    y = np.zeros((L, D))
    for d in range(D):
        rows = [(d, range(L))] + ([(D + d, range(L - 1, -1, -1))] if bidirectional else [])
        for row, order in rows:
            for n in range(N):
                pr = sig(delta[row, n])
                decay = 1.0 - pr * sig(alpha[row, n])
                coef = pr * beta[row, n] * gamma[row, n] / math.sqrt(N)
                s = 0.0
                for t in order:
                    s = decay * s + xn[t, d]
                    y[t, d] += coef * s
        for t in range(L):
            y[t, d] += omega[d] * xn[t, d]
    return y


def rotate(vec, pos, Z):
    out = vec.copy()
    for kk in range(Z // 2):
        ang = pos * ROPE_THETA ** (-2.0 * kk / Z)
        a, b = vec[2 * kk], vec[2 * kk + 1]
        out[2 * kk] = a * math.cos(ang) - b * math.sin(ang)
        out[2 * kk + 1] = a * math.sin(ang) + b * math.cos(ang)
    return out


def direct_mx(x, p, cfg):
    xn = direct_norm(x, p, cfg["norm"]) if cfg["prenorm"] else x
    return silu(direct_ema(xn, p, not cfg["causal"]))


def direct_forward_row(x, p, cfg):
    """x [L, D] -> (out [L, D], act [L] bool)."""
    L, D = x.shape
    Z, E, W, M = cfg["Z"], cfg["E"], cfg["W"], cfg["M"]
    mx = direct_mx(x, p, cfg)
    hu = mx @ npd(p, "hx_proj_weight").T + npd(p, "hx_proj_bias")
    u, hx = hu[:, :2], hu[:, 2:]
    tau = math.exp(npd(p, "q_router_temp")[0])
    act = np.zeros(L, dtype=bool)
    gate = np.zeros(L)
    for t in range(L):
        l0, l1 = (u[t, 0] + cfg["act_bias"]) / tau, u[t, 1] / tau
        top = max(l0, l1)
        e0, e1 = math.exp(l0 - top), math.exp(l1 - top)
        p1 = e1 / (e0 + e1)
        p0 = e0 / (e0 + e1)
        assert p0 != p1, "router tie"
        act[t] = p1 > p0
        gate[t] = p1 if act[t] else 0.0
    idx = [t for t in range(L) if act[t]]
    m = len(idx)
    Wmx, bmx = npd(p, "mx_proj_weight"), npd(p, "mx_proj_bias")
    g, bt = npd(p, "gamma"), npd(p, "beta")
    Q, K, R, V = [], [], [], []
    for i in range(m):
        zrv = silu(Wmx @ mx[idx[i]] + bmx)
        z, r, v = zrv[:Z], zrv[Z:Z + E], zrv[Z + E:]
        qi, ki = z * g[0] + bt[0], z * g[1] + bt[1]
        if cfg["position"] == "rotary":
            qi, ki = rotate(qi, idx[i], Z), rotate(ki, idx[i], Z)
        Q.append(qi); K.append(ki); R.append(r); V.append(v)
    if cfg["attention"] == "softmax":
        c = Z ** -0.5
    else:
        c = 1.0 / (W if cfg["causal"] else 2 * W)
    table = npd(p, "rel_pos_bias_rel_pos_bias") if cfg["position"] == "simple" else None
    Wh, bh = npd(p, "h_proj_weight"), npd(p, "h_proj_bias")
    h = np.zeros((L, D))
    for i in range(m):
        if cfg["causal"]:
            J = [j for j in range(m) if i - W <= j <= i]
        else:
            J = [j for j in range(m) if abs(i - j) <= W]
        s = []
        for j in J:
            val = c * sum(Q[i][e] * K[j][e] for e in range(Z))
            if table is not None:
                dist = min(max(idx[j] - idx[i], -(M - 1)), M - 1)
                val += table[dist + M - 1]
            s.append(val)
        if cfg["attention"] == "softmax":
            top = max(s)
            w = [math.exp(a - top) for a in s]
            tot = sum(w)
            w = [a / tot for a in w]
        else:
            w = [max(a, 0.0) ** 2 for a in s]
        o = np.zeros(E)
        for wj, j in zip(w, J):
            o += wj * V[j]
        h[idx[i]] = gate[idx[i]] * (Wh @ (R[i] * o) + bh)
    out = silu(x + hx + h)
    if not cfg["prenorm"]:
        out = direct_norm(out, p, cfg["norm"])
    return out, act


# =====================================================================================================
# Parameters, router calibration, cases
# =====================================================================================================

def make_params(cfg, gen):
    D, Z, E, N, M = cfg["D"], cfg["Z"], cfg["E"], cfg["N"], cfg["M"]
    Dk = D if cfg["causal"] else 2 * D

    def normal(*shape, std=1.0, mean=0.0):
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * std + mean

    p = {}
    if cfg["norm"] == "layernorm":
        p["norm_norm_weight"] = normal(D, std=0.2, mean=1.0)
        p["norm_norm_bias"] = normal(D, std=0.2)
    elif cfg["norm"] == "rmsnorm":
        p["norm_norm_weight"] = normal(D, std=0.2, mean=1.0)
    else:
        p["norm_norm_scalar"] = normal(1, std=0.2, mean=1.0)
    # EMA: delta, alpha in [-0.8, 0.8] keep the decay q = 1 - sigmoid(delta) sigmoid(alpha) in ~(0.52, 0.91)
    p["move_delta"] = normal(Dk, N, 1, std=0.4).clamp(-0.8, 0.8)
    p["move_alpha"] = normal(Dk, N, 1, std=0.4).clamp(-0.8, 0.8)
    alternating = torch.tensor([1.0 if n % 2 == 0 else -1.0 for n in range(N)]).view(1, N, 1)
    p["move_beta"] = alternating + normal(Dk, N, 1, std=0.05)
    p["move_gamma"] = normal(Dk, N)
    p["move_omega"] = normal(D)
    p["q_router_temp"] = torch.tensor([math.log(cfg["init_temp_scale"] * math.sqrt(D))]) + normal(1, std=0.1)
    p["hx_proj_weight"] = normal(2 + D, D, std=1.0 / math.sqrt(D))
    p["hx_proj_bias"] = normal(2 + D, std=0.1)
    p["mx_proj_weight"] = normal(Z + 2 * E, D, std=1.0 / math.sqrt(D))
    p["mx_proj_bias"] = normal(Z + 2 * E, std=0.1)
    signs = torch.sign(normal(Z)).expand(2, Z).clone()
    signs[1, 0] = -signs[1, 0]            # q·k mostly positive (relu2 needs positive scores), one mixed sign
    p["gamma"] = normal(2, Z, std=0.3, mean=1.5) * signs
    p["beta"] = normal(2, Z, std=0.3)
    p["h_proj_weight"] = normal(D, E, std=3.0 / math.sqrt(E))      # a strong GAU branch: the test is sensitive
    p["h_proj_bias"] = normal(D, std=0.1)
    if cfg["position"] == "simple":
        p["rel_pos_bias_rel_pos_bias"] = normal(2 * M - 1, std=0.5)
    p = {k: v.float() for k, v in p.items()}
    assert all(bool((v != 0).all()) and bool((v != 1).all()) for v in p.values())
    q = 1 - torch.sigmoid(p["move_delta"].double()) * torch.sigmoid(p["move_alpha"].double())
    assert 0.5 < q.min() and q.max() < 0.95
    return p


def calibrate_router(x, p, cfg, all_active):
    """Set hx_proj_bias[1] (float32) so that about half (or all) tokens are activated with a margin.
    Returns (activation mask [B, L], smallest |logit1 - logit0| / tau), or None when the constraints
    cannot be met with these parameters (the caller then draws new ones)."""
    B, L, D = x.shape
    Wd = (p["hx_proj_weight"][1].double() - p["hx_proj_weight"][0].double()).numpy()
    raw = np.stack([direct_mx(x[b].double().numpy(), p, cfg) @ Wd for b in range(B)])   # (W1 - W0) mx
    # activated  <=>  raw + c > 0  with  c = b1 - b0 - act_bias
    s = np.sort((-raw).ravel())
    if all_active:
        c = s[-1] + 0.5
    else:
        best = None
        for i in range(int(0.35 * s.size), int(0.65 * s.size)):
            cand = 0.5 * (s[i] + s[i + 1])
            a = raw + cand > 0
            cnt = a.sum(1)
            ok = (cnt >= max(1, L // 4)).all() and (cnt <= L - max(1, L // 4)).all() and (~a[:, 0]).any()
            if ok and (best is None or s[i + 1] - s[i] > best[0]):
                best = (s[i + 1] - s[i], cand)
        if best is None:
            return None
        c = best[1]
    b = p["hx_proj_bias"].double().clone()
    b[1] = b[0] + c + cfg["act_bias"]
    p["hx_proj_bias"] = b.float()
    b = p["hx_proj_bias"].double()
    c = (b[1] - b[0]).item() - cfg["act_bias"]
    tau = math.exp(p["q_router_temp"].double().item())
    margin = np.abs(raw + c).min() / tau
    assert margin > 1e-3, f"router margin {margin}"
    return raw + c > 0, margin


def write_case(name, cfg, seed):
    gen = torch.Generator().manual_seed(seed)
    B, L, D = cfg["B"], cfg["L"], cfg["D"]
    while True:
        p = make_params(cfg, gen)
        x = torch.randn(B, L, D, generator=gen, dtype=torch.float64).float()
        cal = calibrate_router(x, p, cfg, cfg["all_active"])
        if cal is not None:
            break
    act_cal, margin = cal
    xd = x.double()
    out_a, act_a = released_forward(xd, p, cfg, force_compress=True)
    rows = [direct_forward_row(xd[b].numpy(), p, cfg) for b in range(B)]
    out_b = np.stack([r[0] for r in rows])
    act_b = np.stack([r[1] for r in rows])
    assert (act_a.numpy() == act_b).all() and (act_b == act_cal).all()
    scale = out_a.abs().max().item()
    rel = np.abs(out_a.numpy() - out_b).max() / scale
    assert rel < 1e-12, f"{name}: released and direct formulations differ by {rel}"
    # the released batch rule (compress only if the batch-max density < 1)
    out_r, _ = released_forward(xd, p, cfg, force_compress=False)
    rel_r = (out_r - out_a).abs().max().item() / scale
    assert rel_r < 1e-12, f"{name}: released batch rule differs from always-compress by {rel_r}"
    counts = act_b.sum(1).tolist()
    if cfg["all_active"]:
        assert all(c == L for c in counts)
    else:
        assert all(1 <= c < L for c in counts) and (~act_b[:, 0]).any()
    clamped = 0
    if cfg["position"] == "simple":
        for b in range(B):
            idx = np.flatnonzero(act_b[b])
            for i in range(len(idx)):
                for j in range(len(idx)):
                    ok = (i - cfg["W"] <= j <= i) if cfg["causal"] else abs(i - j) <= cfg["W"]
                    clamped += ok and abs(int(idx[j]) - int(idx[i])) > cfg["M"] - 1
    assert clamped > 0 or not cfg["expect_clamp"], f"{name}: no window pair reaches the bias clamp"
    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    tensors = dict(p, x=x, out=out_a.float())
    for key, value in tensors.items():
        np.save(os.path.join(d, key + ".npy"), value.float().numpy())
    meta = {k: cfg[k] for k in ("B", "L", "D", "Z", "E", "N", "W", "M", "causal", "attention", "position",
                                "norm", "prenorm", "act_bias", "init_temp_scale")}
    meta.update(bidirectional=not cfg["causal"], norm_eps=NORM_EPS, softmax_mask_value=MASK_VALUE,
                rope_theta=ROPE_THETA, ema_truncation=None, always_compress=True,
                activated_counts=counts, activated=["".join("1" if a else "0" for a in row) for row in act_b],
                first_token_activated=act_b[:, 0].tolist(), clamped_bias_pairs=int(clamped),
                router_min_margin=float(margin), agreement_rel=float(rel))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(meta, f, indent=1)
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{name}: B {B} L {L} D {D} Z {cfg['Z']} E {cfg['E']} N {cfg['N']} W {cfg['W']} M {cfg['M']} "
          f"{'causal' if cfg['causal'] else 'bidir'} {cfg['attention']} {cfg['position']} "
          f"{'pre' if cfg['prenorm'] else 'post'}-{cfg['norm']}; activated {counts}/{L}; "
          f"clamped pairs {clamped}; router margin {margin:.2e}; released vs direct {rel:.2e}, "
          f"batch rule vs always-compress {rel_r:.2e}; {size} bytes")


def case(**kw):
    cfg = dict(B=2, init_temp_scale=0.3, act_bias=0.0, all_active=False, M=32, expect_clamp=False)
    cfg.update(kw)
    return cfg


if __name__ == "__main__":
    write_case("causal_softmax_simple", case(L=19, D=12, Z=8, E=16, N=3, W=3, causal=True, attention="softmax",
                                             position="simple", prenorm=True, norm="layernorm",
                                             act_bias=0.25), seed=11)
    write_case("bidir_relu2_simple", case(L=21, D=10, Z=6, E=12, N=4, W=2, M=4, causal=False,
                                          attention="relu2", position="simple", prenorm=False,
                                          norm="layernorm", expect_clamp=True), seed=12)
    write_case("causal_softmax_rotary", case(L=17, D=8, Z=8, E=8, N=2, W=4, causal=True, attention="softmax",
                                             position="rotary", prenorm=True, norm="rmsnorm"), seed=13)
    write_case("all_active", case(L=13, D=8, Z=4, E=8, N=2, W=2, causal=True, attention="softmax",
                                  position="simple", prenorm=False, norm="scalenorm", act_bias=-1.0,
                                  all_active=True), seed=14)
