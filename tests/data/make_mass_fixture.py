#!/usr/bin/env python3
"""Fixtures for a tokenmix test of A2Mamba's MASS token mixer (class `Attention`: two-scale neighbourhood
attention with cascaded values, RoPE, tied rpb, A2SSM in stages 1-3 or global attention with a bicubically
resized bias in stage 4, LePE, BN/SiLU gate, LN + 1x1 projection): one MASS forward computed in PyTorch
(float64, from float32 parameters and inputs) by our own transcription of the PUBLIC reference code named
below. Nothing is imported from that project (it needs its CUDA scan extension and natten); each formula is
re-written here. The A2SSM part is the already verified make_a2ssm_fixture.py (imported as a module, both
of its formulations). Every case is computed by two independent formulations that must agree to 1e-12
(relative to the output's largest entry) before anything is written.
Spec: /work/shared/spec/a2mamba.md sections 1a, 2, 3.

SOURCES TRANSCRIBED
  LMMMEng/A2Mamba @a9ea14c, models/a2mamba.py (read from a stored copy of the same file)
    rotate_every_two / theta_shift   x*cos + rot(x)*sin, rot pairs (x[2p], x[2p+1]) -> (-x[2p+1], x[2p])
    RoPE.__init__ / forward          angle = 1/10000**linspace(0, 1, dh//4), each repeated twice (dh/2
                                     values); sin = cat([sin(i*angle) over rows, sin(j*angle) over columns])
                                     -> [H, W, dh]; same for cos. Released: float32 buffer; here float64.
    LayerNorm2d                      nn.LayerNorm over channels, eps 1e-6 (permute to channels-last and back)
    Attention.__init__               qkv Conv2d(C, 3C, 1); gate = Sequential(Conv2d(C, C, 1), BatchNorm2d(C),
                                     SiLU); lepe Conv2d(C, C, 5, padding 2, groups C); norm LayerNorm2d;
                                     proj = Sequential(LayerNorm2d, Conv2d(C, C, 1)); ssm = A2SSM(C, num_heads)
                                     unless global_mode; rpb = ParameterList([P(nh/2, 2K-1, 2K-1)] * 2
                                     (+ [P(1, nh, L0, L0)] in global mode, L0 = image_size[0]*image_size[1]))
                                     -> rpb.0 and rpb.1 are ONE tensor (tied)
    Attention.forward                dilation = [int(H/K), int(W/K)], each min(., K); gate = gate(x);
                                     qkv = qkv(x); lepe = lepe(qkv[:, -C:]); q, k, v = rearrange(qkv,
                                     'b (m n c) h w -> m b n h w c', m=3, n=nh); q = theta_shift(q)*dh**-0.5;
                                     k = theta_shift(k); chunk heads in 2; attn1 = softmax(na2d_qk(q1, k1, K,
                                     dilation 1, rpb.0)); v1 = na2d_av(attn1, v1); attn2 = softmax(na2d_qk(q2,
                                     k2, K, dilation, rpb.1)); v2 = na2d_av(attn2, v1 + v2, dilation) (cascade);
                                     x = 'b n h w c -> b (n c) h w' of cat([v1, v2]); then ssm(x, [attn1, attn2,
                                     K, dilation]) or, in global mode, q k^T (+ rpb.2, F.interpolate(...,
                                     size=(L, L), mode='bicubic', align_corners=False) when [L0, L0] != [L, L]),
                                     softmax, einsum('b n l m, b n m c -> b n c l').reshape(B, C, H, W) with
                                     v = x split 'b (n c) h w -> b n (h w) c'; x = norm(x) + lepe;
                                     x = x * gate (fp32); x = proj(x)                 -> mass_released (A)
  SHI-Labs/NATTEN 0.17, csrc/include/natten/cpu/naive/natten_cpu_commons.h get_window_start /
  get_pb_start (piecewise forms, re-written in natten_window_start / natten_pb_start below) and
  pointwise_neighborhood_2d.hpp (logit = q.k + rpb[h, pi+ki, pj+kj], NO scale inside the op; neighbour
  slot ki*K + kj; av: out = sum_k attn[k] * v[nbr k]).
  torch.nn.functional.interpolate (bicubic, align_corners False) for the resized global bias (the public
  implementation the released code calls); checked against our own cubic-convolution loops
  (cubic_resize_loops: A = -0.75, src = (dst + 0.5)*in/out - 0.5 unclamped, taps floor-1 .. floor+2
  clamped to [0, in-1]); the agreement is in config.json ("bicubic_loops_vs_torch").
  Formulation B (mass_loops) is written from the spec equations alone: scalar loops on the stored
  channels-last tensors, the sub-grid window rule of spec section 1a (start, pb = s - ip + K - 1), explicit
  pair rotations for RoPE, make_a2ssm_fixture.forward_loops for A2SSM, cubic_resize_loops for the bias.

CASES (tests/data/mass/<case>/)
  local_small     B 2, C 16, nh 4 (dh 4), 9 x 11, K 3 -> dil (3, 3): rows 3 sub-grids of 3, columns 4, 4, 3
                  (unequal column sub-grids); A2SSM with R = 1
  local_rect      B 1, C 16, nh 2 (dh 8), 7 x 12, K 3 -> dil (2, 3): rows 4, 3; columns 4, 4, 4; two RoPE
                  frequencies per axis (1 and 1e-4)
  global_native   B 1, C 16, nh 4 (dh 4), 5 x 5, K 3 -> dil (1, 1), global mode, image_size (5, 5):
                  rpb.2 [1, 4, 25, 25] added as it is
  global_resized  B 1, C 16, nh 2 (dh 8), 6 x 5, K 3 -> dil (2, 1), global mode, image_size (4, 4):
                  rpb.2 [1, 2, 16, 16] bicubically resized to [1, 2, 30, 30] (the L0 x L0 table is resized
                  as an IMAGE, not per spatial axis)

PARAMETERS (MASS state-dict names relative to `token_mixer.` with '.' -> '_'; released shapes; float32).
In a full checkpoint: layers.<2*stage>.blocks.<j>.token_mixer.<name>.
  qkv_weight [3C, C, 1, 1], qkv_bias [3C]   output channel o = m*C + n*dh + e: m = 0 q / 1 k / 2 v,
                                            head n, in-head e; randn/sqrt(C), 0.1 randn
  gate_0_weight [C, C, 1, 1], gate_0_bias [C]                       randn/sqrt(C), 0.1 randn
  gate_1_weight, gate_1_bias, gate_1_running_mean, gate_1_running_var [C]   BatchNorm2d, EVAL mode, eps 1e-5;
                                            1 + 0.2 randn, 0.2 randn, 0.2 randn, U(0.5, 2)
  lepe_weight [C, 1, 5, 5], lepe_bias [C]   depthwise, cross-correlation, zero padding 2; 0.2 randn, 0.1 randn
  norm_weight, norm_bias [C]                LayerNorm (eps 1e-6) after the mixing; 1 + 0.2 randn, 0.1 randn
  proj_0_weight, proj_0_bias [C]            LayerNorm (eps 1e-6) before the projection; 1 + 0.2 randn, 0.1 randn
  proj_1_weight [C, C, 1, 1], proj_1_bias [C]   randn/sqrt(C), 0.1 randn
  rpb_0 [nh/2, 2K-1, 2K-1]                  0.5 randn; rpb.1 is the SAME tensor (stored once here; both keys
                                            exist in a checkpoint with identical values)
  rpb_2 [1, nh, L0, L0]  (global cases)     0.5 randn; L0 = image_size[0]*image_size[1]; token l = i*W0 + j
  ssm_*  (local cases)                      the A2SSM parameters, names and draws of make_a2ssm_fixture.py
                                            (ssm_conv2d_weight [C,1,5,5], ssm_conv2d_bias, ssm_x_proj_weight
                                            [R+2, C], ssm_dt_projs_weight [C, R], ssm_dt_projs_bias, ssm_A_logs
                                            [C, 1], ssm_Ds, ssm_state_fusion_weight [nh, nh, 1, 1],
                                            ssm_state_fusion_bias [nh]), N = d_state = 1, R = ceil(C/16)
  rope_angle [2*(dh//4)]                    the stage's RoPE buffer as the released float32 code computes it
                                            (layers.<2*stage>.rope.angle); y uses float64 angles (config.json
                                            "rope_angle_f32_vs_f64" = the largest difference)

INPUTS / OUTPUTS (float32; the released code's layouts are given on the right)
  x      [B, H, W, C]             x_released[b, c, i, j] = x[b, i, j, c]  (the block's norm1 output; N(0, 1))
  y      [B, H, W, C]             y_released[b, c, i, j] = y[b, i, j, c]
  debug intermediates (formulation A; all checked against formulation B too):
  attn1  [B, H, W, nh/2, K*K]     attn1_natten[b, h, i, j, k] = attn1[b, i, j, h, k]   post-softmax, heads
                                  [0, nh/2), dilation 1, k = ki*K + kj
  attn2  [B, H, W, nh/2, K*K]     same for heads [nh/2, nh), dilation dil
  x_ms   [B, H, W, C]             cat([o1, o2], heads) -> channel n*dh + e   (released 'b (n c) h w')
  mixed  [B, H, W, C]             A2SSM output (local) or global-attention output (global), before `norm`
  rpb_g  [1, nh, L, L]  (global)  the bias added to the global logits (rpb.2 itself, or its bicubic resize)
  config.json: B, C, nh, dh, K, H, W, L, dil, global_mode, image_size (global), R (local), eps values,
  rope_angle (float64), subgrid lengths, agreement_rel (y, A vs B) and agreement_rel_intermediates,
  bicubic_loops_vs_torch, sensitivity_rel (how far y moves, relative to max|y|, when one branch is switched
  off; each must exceed 1e-2), layouts.

FORMULAS (per image; token (i, j), l = i*W + j; LN over channels with biased variance)
  1. dil = (min(H div K, K), min(W div K, K)).
  2. gate = SiLU((W_g x + b_g - rm) / sqrt(rv + 1e-5) * bn_w + bn_b);  qkv = W_qkv x + b_qkv  (per token).
     q[n, e] = qkv[n*dh + e], k[n, e] = qkv[C + n*dh + e], v[n, e] = qkv[2C + n*dh + e].
     lepe[c] = lepe_bias[c] + sum_{a,b<5} lepe_weight[c,0,a,b] * v_flat[c] at (i+a-2, j+b-2) (zero padded),
     v_flat[c] = qkv[2C + c].
  3. RoPE: f[t] = 10000^(-t/(dh/4 - 1)) (t < dh/4; f = [1] when dh/4 = 1). Pair p (channels 2p, 2p+1) of every
     head, p < dh/2: theta = i * f[p] for p < dh/4, j * f[p - dh/4] otherwise;
     (x0, x1) -> (x0 cos theta - x1 sin theta, x1 cos theta + x0 sin theta). q is then multiplied by dh^-0.5.
  4. group 1 (heads h < nh/2, dilation (1, 1)), group 2 (heads nh/2 + h, dilation dil), local head h, both
     with the same bias table rpb_0[h]. Per axis (length n, dilation d, query i): ph = i mod d, ip = i div d,
     lp = ceil((n - ph)/d), s = clamp(ip - K//2, 0, lp - K), start = s*d + ph, pb = s - ip + K - 1.
     logit[ki*K + kj] = <q[h](i,j), k[h](start_h + ki*d_h, start_w + kj*d_w)> + rpb_0[h, pb_h + ki, pb_w + kj];
     a = softmax(logits).  o1 = sum_k a1[k] v[h](nbr k);  o2 = sum_k a2[k] (o1[h] + v[nh/2 + h])(nbr k).
     x_ms[n*dh + e] = o1[n, e] (n < nh/2), o2[n - nh/2, e] (n >= nh/2).
  5. local:  mixed = A2SSM(x_ms, a1, a2, K, dil)  (make_a2ssm_fixture.py formulas, N = 1).
     global: rpb_g = rpb_2 if L0 == L else bicubic(rpb_2[0, n] as an L0 x L0 image -> L x L);
     logit[n, l, m] = <q[n](l), k[n](m)> + rpb_g[0, n, l, m] (q RoPE'd and scaled as in 3, ALL heads);
     mixed[n*dh + e](l) = sum_m softmax_m(logit[n, l, .]) x_ms[n*dh + e](m)   (values = x_ms, not v).
  6. t = LN(mixed; norm_w, norm_b) + lepe;  t = t * gate;  y = W_p1 LN(t; proj_0_w, proj_0_b) + b_p1.

RELEASED CODE vs SPEC
  - Matches spec section 3. rpb.0 / rpb.1 are tied (one Parameter listed twice), so a checkpoint holds two
    identical keys; both are read by formulation A and must be equal.
  - The global branch adds rpb.2 to q k^T where q is already scaled by dh^-0.5 (the bias is not scaled);
    the resize is F.interpolate on the [1, nh, L0, L0] bias treated as an image (align_corners False).
  - na2d_qk gets no scale (q was pre-scaled); the softmax is over the K*K slots (last axis).

Run with Debian's python3-torch (CPU):  /usr/bin/python3 tests/data/make_mass_fixture.py
"""
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "mass")
sys.path.insert(0, HERE)
import make_a2ssm_fixture as a2ssm  # noqa: E402  (the verified A2SSM, both formulations)

torch.set_default_dtype(torch.float64)
LN_EPS = 1e-6
BN_EPS = 1e-5


# ----------------------------------------------------------------------------------------------------
# parameters (float32, released state-dict names relative to `token_mixer.`)
# ----------------------------------------------------------------------------------------------------
def bn_params(prefix, C, gen):
    return {prefix + "weight": (1.0 + 0.2 * torch.randn(C, generator=gen)).float(),
            prefix + "bias": (0.2 * torch.randn(C, generator=gen)).float(),
            prefix + "running_mean": (0.2 * torch.randn(C, generator=gen)).float(),
            prefix + "running_var": (0.5 + 1.5 * torch.rand(C, generator=gen)).float()}


def ln_params(prefix, C, gen):
    return {prefix + "weight": (1.0 + 0.2 * torch.randn(C, generator=gen)).float(),
            prefix + "bias": (0.1 * torch.randn(C, generator=gen)).float()}


def conv_params(prefix, cout, cin, k, gen, groups=1, w_std=None, b_std=0.1, bias=True):
    fan_in = cin // groups * k * k
    std = w_std if w_std is not None else 1.0 / math.sqrt(fan_in)
    p = {prefix + "weight": (std * torch.randn(cout, cin // groups, k, k, generator=gen)).float()}
    if bias:
        p[prefix + "bias"] = (b_std * torch.randn(cout, generator=gen)).float()
    return p


def make_mass_params(C, nh, K, global_mode, image_size, gen):
    """MASS parameters with the released names ('qkv.weight', 'gate.1.running_var', 'rpb.0', 'rpb.1',
    'rpb.2', 'ssm.conv2d.weight', ...). rpb.1 is the same tensor object as rpb.0 (tied, as released)."""
    p = {}
    p.update(conv_params("qkv.", 3 * C, C, 1, gen))
    p.update(conv_params("gate.0.", C, C, 1, gen))
    p.update(bn_params("gate.1.", C, gen))
    p.update(conv_params("lepe.", C, C, 5, gen, groups=C, w_std=0.2))
    p.update(ln_params("norm.", C, gen))
    p.update(ln_params("proj.0.", C, gen))
    p.update(conv_params("proj.1.", C, C, 1, gen))
    p["rpb.0"] = (0.5 * torch.randn(nh // 2, 2 * K - 1, 2 * K - 1, generator=gen)).float()
    p["rpb.1"] = p["rpb.0"]
    if global_mode:
        L0 = image_size[0] * image_size[1]
        p["rpb.2"] = (0.5 * torch.randn(1, nh, L0, L0, generator=gen)).float()
    else:
        for key, value in a2ssm.make_params(C, nh, 1, gen).items():
            name = {"conv2d_weight": "conv2d.weight", "conv2d_bias": "conv2d.bias",
                    "state_fusion_weight": "state_fusion.weight",
                    "state_fusion_bias": "state_fusion.bias"}.get(key, key)
            p["ssm." + name] = value
    return p


def ssm_subdict(P):
    """'ssm.conv2d.weight' -> 'conv2d_weight' etc. (make_a2ssm_fixture's names)."""
    return {k[4:].replace(".", "_"): v for k, v in P.items() if k.startswith("ssm.")}


# ----------------------------------------------------------------------------------------------------
# formulation A: the released tensor operations (layouts [B, C, H, W], NATTEN [B, heads, H, W, D])
# ----------------------------------------------------------------------------------------------------
def rope_angle(dh, dtype=torch.float64):
    """RoPE.__init__: 1/(10000 ** linspace(0, 1, dh//4)), each value repeated twice."""
    angle = 1.0 / (10000 ** torch.linspace(0, 1, dh // 4, dtype=dtype))
    return angle.unsqueeze(-1).repeat(1, 2).flatten()


def rope_tables(angle, H, W):
    """RoPE.forward((H, W)) -> sin, cos [H, W, dh]."""
    index_h = torch.arange(H).to(angle)
    index_w = torch.arange(W).to(angle)
    sin_h = torch.sin(index_h[:, None] * angle[None, :]).unsqueeze(1).repeat(1, W, 1)
    sin_w = torch.sin(index_w[:, None] * angle[None, :]).unsqueeze(0).repeat(H, 1, 1)
    cos_h = torch.cos(index_h[:, None] * angle[None, :]).unsqueeze(1).repeat(1, W, 1)
    cos_w = torch.cos(index_w[:, None] * angle[None, :]).unsqueeze(0).repeat(H, 1, 1)
    return torch.cat([sin_h, sin_w], -1), torch.cat([cos_h, cos_w], -1)


def rotate_every_two(x):
    x1 = x[:, :, :, :, ::2]
    x2 = x[:, :, :, :, 1::2]
    return torch.stack([-x2, x1], dim=-1).flatten(-2)


def theta_shift(x, sin, cos):
    return (x * cos) + (rotate_every_two(x) * sin)


natten_window_start = a2ssm.natten_window_start        # get_window_start (piecewise), verified there


def natten_pb_start(i, n, K, d):
    """NATTEN 0.17 naive get_pb_start, piecewise form (own words)."""
    half = K // 2
    if d <= 1:
        pb = half
        if i < half:
            pb += half - i
        if i + half >= n:
            pb += n - i - 1 - half
        return pb
    if i - half * d < 0:
        return K - 1 - i // d
    if i + half * d >= n:
        return (n - i - 1) // d
    return half


def na_tables(n, K, d):
    nbr = torch.tensor([[natten_window_start(i, n, K, d) + k * d for k in range(K)] for i in range(n)])
    pb = torch.tensor([[natten_pb_start(i, n, K, d) + k for k in range(K)] for i in range(n)])
    return nbr, pb


def na2d_qk(q, k, K, dil, rpb):
    """q, k [B, h, H, W, D]; rpb [h, 2K-1, 2K-1] or None -> logits [B, h, H, W, K*K] (no scale)."""
    Bsz, h, H, W, D = q.shape
    rows, prow = na_tables(H, K, dil[0])
    cols, pcol = na_tables(W, K, dil[1])
    kg = k[:, :, rows[:, None, :, None], cols[None, :, None, :], :]          # [B, h, H, W, K, K, D]
    logits = (q[:, :, :, :, None, None, :] * kg).sum(-1)                     # [B, h, H, W, K, K]
    if rpb is not None:
        logits = logits + rpb[:, prow[:, None, :, None], pcol[None, :, None, :]][None]
    return logits.reshape(Bsz, h, H, W, K * K)


na2d_av = a2ssm.na2d_av                                 # gather with the same NATTEN start rule


def layer_norm_2d(x, w, b):
    return F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), w, b, eps=LN_EPS).permute(0, 3, 1, 2)


def batch_norm_eval(x, P, prefix):
    return F.batch_norm(x, P[prefix + "running_mean"], P[prefix + "running_var"], P[prefix + "weight"],
                        P[prefix + "bias"], training=False, eps=BN_EPS)


def mass_dilation(H, W, K):
    return (min(int(H / K), K), min(int(W / K), K))


def mass_released(x, params, nh, K, sin, cos, global_mode, off=()):
    """Attention.forward. x [B, C, H, W] (float64), params: released names (float32 or float64 tensors),
    sin / cos [H, W, dh]. `off`: branches switched off for the sensitivity checks. Returns a dict with
    y [B, C, H, W], attn1 / attn2 (NATTEN layout), x_ms, mixed [B, C, H, W], rpb_g, dil."""
    P = {k: v.double() for k, v in params.items()}
    Bsz, C, H, W = x.shape
    dh = C // nh
    dilation = list(mass_dilation(H, W, K))
    if "dilation_1" in off:
        dilation = [1, 1]
    if "rope" in off:
        sin, cos = torch.zeros_like(sin), torch.ones_like(cos)
    gate = F.silu(batch_norm_eval(F.conv2d(x, P["gate.0.weight"], P["gate.0.bias"]), P, "gate.1."))
    if "gate" in off:
        gate = torch.ones_like(gate)
    qkv = F.conv2d(x, P["qkv.weight"], P["qkv.bias"])
    lepe = F.conv2d(qkv[:, -C:], P["lepe.weight"], P["lepe.bias"], padding=2, groups=C)
    if "lepe" in off:
        lepe = torch.zeros_like(lepe)
    q, k, v = qkv.reshape(Bsz, 3, nh, dh, H, W).permute(1, 0, 2, 4, 5, 3)    # 'b (m n c) h w -> m b n h w c'
    q = theta_shift(q, sin, cos) * dh ** -0.5
    k = theta_shift(k, sin, cos)
    rpb1, rpb2 = P["rpb.0"], P["rpb.1"]
    if "rpb_local" in off:
        rpb1 = rpb2 = torch.zeros_like(rpb1)
    q1, q2 = torch.chunk(q, 2, dim=1)
    k1, k2 = torch.chunk(k, 2, dim=1)
    v1, v2 = torch.chunk(v, 2, dim=1)
    attn1 = torch.softmax(na2d_qk(q1, k1, K, (1, 1), rpb1), dim=-1)
    v1 = na2d_av(attn1, v1, K, (1, 1))
    attn2 = torch.softmax(na2d_qk(q2, k2, K, dilation, rpb2), dim=-1)
    v2 = na2d_av(attn2, v2 if "cascade" in off else v1 + v2, K, dilation)
    x_ms = torch.cat([v1, v2], dim=1).permute(0, 1, 4, 2, 3).reshape(Bsz, C, H, W)   # 'b n h w c -> b (n c) h w'
    rpb_g = None
    if not global_mode:
        if "ssm" in off:
            mixed = x_ms
        else:
            mixed = a2ssm.forward_released(x_ms, attn1, attn2, ssm_subdict(params), nh, K, dilation)[0]
    else:
        L = H * W
        qg = q.reshape(Bsz, nh, L, dh)                                        # 'b n h w c -> b n (h w) c'
        kg = k.reshape(Bsz, nh, L, dh)
        vg = x_ms.reshape(Bsz, nh, dh, L).transpose(2, 3)                     # 'b (n c) h w -> b n (h w) c'
        attn = torch.einsum("bnlc,bnmc->bnlm", qg, kg)
        rpb = P["rpb.2"]
        if "rpb_global" in off:
            rpb = torch.zeros_like(rpb)
        if rpb.shape[2:] != attn.shape[2:]:
            rpb = F.interpolate(rpb, size=attn.shape[2:], mode="bicubic",
                                align_corners="bicubic_align_corners" in off)
        rpb_g = rpb
        attn = torch.softmax(attn + rpb, dim=-1)
        mixed = torch.einsum("bnlm,bnmc->bncl", attn, vg).reshape(Bsz, -1, H, W)
        if "global_attention" in off:
            mixed = x_ms
    t = layer_norm_2d(mixed, P["norm.weight"], P["norm.bias"]) + lepe
    t = t * gate
    y = F.conv2d(layer_norm_2d(t, P["proj.0.weight"], P["proj.0.bias"]), P["proj.1.weight"], P["proj.1.bias"])
    return dict(y=y, attn1=attn1, attn2=attn2, x_ms=x_ms, mixed=mixed, rpb_g=rpb_g, dil=tuple(dilation))


# ----------------------------------------------------------------------------------------------------
# formulation B: plain loops from the spec equations, on the stored channels-last layouts (numpy float64)
# ----------------------------------------------------------------------------------------------------
def subgrid_starts_pb(n, K, d):
    st, pb = [], []
    for i in range(n):
        ph, ip = i % d, i // d
        lp = (n - ph + d - 1) // d
        assert lp >= K, "every dilation sub-grid must hold at least K pixels"
        s = min(max(ip - K // 2, 0), lp - K)
        st.append(s * d + ph)
        pb.append(s - ip + K - 1)
    return st, pb


def cubic_weight(t, A=-0.75):
    t = abs(t)
    if t <= 1.0:
        return ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0
    if t < 2.0:
        return ((A * t - 5.0 * A) * t + 8.0 * A) * t - 4.0 * A
    return 0.0


def cubic_resize_loops(img, out_h, out_w):
    """img [h, w] -> [out_h, out_w]: cubic convolution (Keys, A = -0.75), half-pixel centres
    (src = (dst + 0.5) * in/out - 0.5, not clamped), taps floor-1 .. floor+2 clamped to the border."""
    in_h, in_w = img.shape
    out = np.zeros((out_h, out_w))

    def taps(dst, n_in, n_out):
        src = (dst + 0.5) * n_in / n_out - 0.5
        f = math.floor(src)
        t = src - f
        return [(min(max(f - 1 + m, 0), n_in - 1), cubic_weight(t - (m - 1))) for m in range(4)]

    for y in range(out_h):
        ty = taps(y, in_h, out_h)
        for x in range(out_w):
            tx = taps(x, in_w, out_w)
            acc = 0.0
            for r, wy in ty:
                for c, wx in tx:
                    acc += wy * wx * img[r, c]
            out[y, x] = acc
    return out


def layer_norm_vec(v, w, b):
    mu = sum(v) / len(v)
    var = sum((t - mu) ** 2 for t in v) / len(v)
    inv = 1.0 / math.sqrt(var + LN_EPS)
    return [(v[c] - mu) * inv * w[c] + b[c] for c in range(len(v))]


def mass_loops(x, params, nh, K, global_mode):
    """x [B, H, W, C] numpy float64; params: released names (torch). Returns dict of [B, H, W, ...] arrays."""
    P = {k: v.double().numpy() for k, v in params.items()}
    Bsz, H, W, C = x.shape
    dh, half, L = C // nh, nh // 2, H * W
    dil = (min(H // K, K), min(W // K, K))
    n4 = dh // 4
    freq = [10000.0 ** (-(t / (n4 - 1))) if n4 > 1 else 1.0 for t in range(n4)]
    tab = {1: (subgrid_starts_pb(H, K, 1), subgrid_starts_pb(W, K, 1)),
           2: (subgrid_starts_pb(H, K, dil[0]), subgrid_starts_pb(W, K, dil[1]))}
    dils = {1: (1, 1), 2: dil}
    Y = np.zeros((Bsz, H, W, C))
    A1 = np.zeros((Bsz, H, W, half, K * K))
    A2 = np.zeros((Bsz, H, W, half, K * K))
    XMS = np.zeros((Bsz, H, W, C))
    MIX = np.zeros((Bsz, H, W, C))
    GATE = np.zeros((Bsz, H, W, C))
    LEPE = np.zeros((Bsz, H, W, C))
    rpb_g = None
    if global_mode:
        L0 = P["rpb.2"].shape[2]
        if L0 == L:
            rpb_g = P["rpb.2"][0]
        else:
            rpb_g = np.stack([cubic_resize_loops(P["rpb.2"][0, n], L, L) for n in range(nh)])
    for b in range(Bsz):
        gate = GATE[b]
        qkv = np.zeros((H, W, 3 * C))
        for i in range(H):
            for j in range(W):
                xv = x[b, i, j]
                for c in range(C):
                    t = P["gate.0.bias"][c] + sum(P["gate.0.weight"][c, e, 0, 0] * xv[e] for e in range(C))
                    t = (t - P["gate.1.running_mean"][c]) / math.sqrt(P["gate.1.running_var"][c] + BN_EPS) \
                        * P["gate.1.weight"][c] + P["gate.1.bias"][c]
                    gate[i, j, c] = t / (1.0 + math.exp(-t))
                for o in range(3 * C):
                    qkv[i, j, o] = P["qkv.bias"][o] + sum(P["qkv.weight"][o, e, 0, 0] * xv[e] for e in range(C))
        lepe = LEPE[b]
        for i in range(H):
            for j in range(W):
                for c in range(C):
                    acc = P["lepe.bias"][c]
                    for a in range(5):
                        for e in range(5):
                            r, s = i + a - 2, j + e - 2
                            if 0 <= r < H and 0 <= s < W:
                                acc += P["lepe.weight"][c, 0, a, e] * qkv[r, s, 2 * C + c]
                    lepe[i, j, c] = acc
        # q, k, v [H, W, nh, dh]; RoPE on q and k by explicit pair rotations
        q = np.zeros((H, W, nh, dh))
        k = np.zeros((H, W, nh, dh))
        v = np.zeros((H, W, nh, dh))
        for i in range(H):
            for j in range(W):
                for n in range(nh):
                    for p in range(dh // 2):
                        theta = i * freq[p] if p < n4 else j * freq[p - n4]
                        cs, sn = math.cos(theta), math.sin(theta)
                        for dst, off in ((q, 0), (k, C)):
                            x0 = qkv[i, j, off + n * dh + 2 * p]
                            x1 = qkv[i, j, off + n * dh + 2 * p + 1]
                            dst[i, j, n, 2 * p] = x0 * cs - x1 * sn
                            dst[i, j, n, 2 * p + 1] = x1 * cs + x0 * sn
                    for e in range(dh):
                        v[i, j, n, e] = qkv[i, j, 2 * C + n * dh + e]
        q *= dh ** -0.5

        def attend(grp, hl, head, values):
            (sh, ph), (sw, pw) = tab[grp]
            dr, dc = dils[grp]
            amap = np.zeros((H, W, K * K))
            out = np.zeros((H, W, dh))
            for i in range(H):
                for j in range(W):
                    lg = []
                    for ki in range(K):
                        for kj in range(K):
                            r, s = sh[i] + ki * dr, sw[j] + kj * dc
                            lg.append(sum(q[i, j, head, e] * k[r, s, head, e] for e in range(dh))
                                      + P["rpb.0"][hl, ph[i] + ki, pw[j] + kj])
                    mx = max(lg)
                    ex = [math.exp(t - mx) for t in lg]
                    tot = sum(ex)
                    for slot in range(K * K):
                        amap[i, j, slot] = ex[slot] / tot
                    for ki in range(K):
                        for kj in range(K):
                            r, s = sh[i] + ki * dr, sw[j] + kj * dc
                            out[i, j] += amap[i, j, ki * K + kj] * values[r, s]
            return amap, out

        for hl in range(half):
            A1[b, :, :, hl], o1 = attend(1, hl, hl, v[:, :, hl])
            A2[b, :, :, hl], o2 = attend(2, hl, half + hl, o1 + v[:, :, half + hl])
            XMS[b, :, :, hl * dh:(hl + 1) * dh] = o1
            XMS[b, :, :, (half + hl) * dh:(half + hl + 1) * dh] = o2
        if not global_mode:
            continue
        for n in range(nh):
            for l in range(L):
                i, j = divmod(l, W)
                lg = []
                for m in range(L):
                    r, s = divmod(m, W)
                    lg.append(sum(q[i, j, n, e] * k[r, s, n, e] for e in range(dh)) + rpb_g[n, l, m])
                mx = max(lg)
                ex = [math.exp(t - mx) for t in lg]
                tot = sum(ex)
                for e in range(dh):
                    MIX[b, i, j, n * dh + e] = sum(ex[m] / tot * XMS[b, m // W, m % W, n * dh + e] for m in range(L))
    if not global_mode:
        MIX = a2ssm.forward_loops(XMS, A1, A2, ssm_subdict(params), nh, K, dil)[0]
    # 6. norm + lepe, gate, proj
    for b in range(Bsz):
        for i in range(H):
            for j in range(W):
                t = layer_norm_vec(list(MIX[b, i, j]), P["norm.weight"], P["norm.bias"])
                t = [(t[c] + LEPE[b, i, j, c]) * GATE[b, i, j, c] for c in range(C)]
                t = layer_norm_vec(t, P["proj.0.weight"], P["proj.0.bias"])
                for o in range(C):
                    Y[b, i, j, o] = P["proj.1.bias"][o] + sum(P["proj.1.weight"][o, c, 0, 0] * t[c] for c in range(C))
    return dict(y=Y, attn1=A1, attn2=A2, x_ms=XMS, mixed=MIX, rpb_g=rpb_g)


# ----------------------------------------------------------------------------------------------------
def rel_diff(a, b):
    return float(np.abs(a - b).max() / np.abs(a).max())


def nhwc(t):
    return t.permute(0, 2, 3, 1).numpy()


def bicubic_check(gen):
    """Own cubic loops vs torch's F.interpolate(bicubic, align_corners False), float64, several sizes."""
    out = {}
    for (hi, wi), (ho, wo) in (((16, 16), (30, 30)), ((9, 9), (16, 16)), ((16, 16), (9, 9)),
                               ((49, 49), (64, 64)), ((7, 5), (20, 3))):
        img = torch.randn(1, 1, hi, wi, generator=gen)
        ref = F.interpolate(img, size=(ho, wo), mode="bicubic", align_corners=False)[0, 0].numpy()
        own = cubic_resize_loops(img[0, 0].numpy(), ho, wo)
        out[f"{hi}x{wi}->{ho}x{wo}"] = float(np.abs(ref - own).max() / np.abs(ref).max())
    return out


def write_case(name, Bsz, C, nh, H, W, K, global_mode, image_size, seed):
    assert C % nh == 0 and nh % 2 == 0 and (C // nh) % 4 == 0
    dh, L = C // nh, H * W
    dil = mass_dilation(H, W, K)
    for n, dd in ((H, 1), (W, 1), (H, dil[0]), (W, dil[1])):   # NATTEN's piecewise rules == sub-grid clamp
        nbr, pb = na_tables(n, K, dd)
        st, pbs = subgrid_starts_pb(n, K, dd)
        assert nbr[:, 0].tolist() == st and pb[:, 0].tolist() == pbs, (n, K, dd)
    gen = torch.Generator().manual_seed(seed)
    p = make_mass_params(C, nh, K, global_mode, image_size, gen)
    x = torch.randn(Bsz, H, W, C, generator=gen).float()                 # stored channels-last
    angle = rope_angle(dh)
    sin, cos = rope_tables(angle, H, W)
    angle32 = rope_angle(dh, torch.float32)                               # the released float32 buffer

    x_nchw = x.double().permute(0, 3, 1, 2).contiguous()
    A = mass_released(x_nchw, p, nh, K, sin, cos, global_mode)
    assert A["dil"] == dil
    outA = dict(y=nhwc(A["y"]), attn1=A["attn1"].permute(0, 2, 3, 1, 4).numpy(),
                attn2=A["attn2"].permute(0, 2, 3, 1, 4).numpy(), x_ms=nhwc(A["x_ms"]), mixed=nhwc(A["mixed"]))
    B = mass_loops(x.double().numpy(), p, nh, K, global_mode)
    rel = rel_diff(outA["y"], B["y"])
    rels = {key: rel_diff(outA[key], B[key]) for key in ("attn1", "attn2", "x_ms", "mixed")}
    if global_mode:
        rels["rpb_g"] = rel_diff(A["rpb_g"][0].numpy(), B["rpb_g"])
    assert rel < 1e-12 and max(rels.values()) < 1e-12, f"{name}: formulations differ: y {rel}, {rels}"

    # every branch visible: switching each one off moves y by more than 1% of its largest entry
    def variant(*off):
        return nhwc(mass_released(x_nchw, p, nh, K, sin, cos, global_mode, off=off)["y"])

    switches = {"rpb_local_zero": ("rpb_local",), "rope_off": ("rope",), "gate_off": ("gate",),
                "lepe_off": ("lepe",), "cascade_off_o2_from_v2": ("cascade",)}
    if dil != (1, 1):
        switches["dilation_1_for_group_2"] = ("dilation_1",)
    if global_mode:
        switches["rpb_global_zero"] = ("rpb_global",)
        switches["global_attention_off"] = ("global_attention",)
        if image_size[0] * image_size[1] != L:
            switches["bicubic_align_corners_true"] = ("bicubic_align_corners",)
    else:
        switches["a2ssm_off"] = ("ssm",)
    sens = {key: rel_diff(outA["y"], variant(*off)) for key, off in switches.items()}
    # the tied table: a different rpb for group 2 (what an untied re-implementation would read)
    q = dict(p)
    q["rpb.1"] = torch.flip(p["rpb.0"], dims=(0,)) if nh > 2 else -p["rpb.0"]
    sens["rpb_1_untied"] = rel_diff(outA["y"], nhwc(mass_released(x_nchw, q, nh, K, sin, cos, global_mode)["y"]))
    low = {key: val for key, val in sens.items() if val < 1e-2}
    assert not low, f"{name}: branches with a tiny effect: {low}"

    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    tensors = {key.replace(".", "_"): val for key, val in p.items() if key != "rpb.1"}
    tensors["rope_angle"] = angle32
    tensors.update(x=x, **outA)
    if global_mode:
        tensors["rpb_g"] = A["rpb_g"]
    for key, value in tensors.items():
        arr = value.float().numpy() if torch.is_tensor(value) else np.asarray(value, dtype=np.float32)
        np.save(os.path.join(d, key + ".npy"), arr)
    sub = lambda n, dd: [(n - g + dd - 1) // dd for g in range(dd)]
    meta = dict(B=Bsz, C=C, nh=nh, dh=dh, K=K, H=H, W=W, L=L, dil=list(dil), global_mode=global_mode,
                subgrid_lengths_h=sub(H, dil[0]), subgrid_lengths_w=sub(W, dil[1]),
                ln_eps=LN_EPS, bn_eps=BN_EPS, lepe_kernel=5, lepe_padding=2, qk_scale=dh ** -0.5,
                rope_angle=angle.tolist(),
                rope_angle_f32_vs_f64=float((angle32.double() - angle).abs().max()),
                rpb_tied=True,
                agreement_rel=rel, agreement_rel_intermediates=rels, sensitivity_rel=sens,
                rms_y=float(np.sqrt((outA["y"] ** 2).mean())),
                rms_mixed=float(np.sqrt((outA["mixed"] ** 2).mean())))
    if global_mode:
        meta["image_size"] = list(image_size)
        meta["L0"] = image_size[0] * image_size[1]
        meta["rpb_resized"] = meta["L0"] != L
        meta["bicubic"] = dict(mode="bicubic", align_corners=False, A=-0.75,
                               src="(dst + 0.5) * L0 / L - 0.5, not clamped",
                               taps="floor(src) - 1 .. floor(src) + 2, clamped to [0, L0 - 1]")
    else:
        meta["R"] = math.ceil(C / 16)
        meta["N"] = 1
    meta["layouts"] = dict(x="B,H,W,C", y="B,H,W,C", x_ms="B,H,W,C (channel n*dh+e)", mixed="B,H,W,C",
                           attn1="B,H,W,nh/2,K*K (heads [0,nh/2), dilation 1)",
                           attn2="B,H,W,nh/2,K*K (heads [nh/2,nh), dilation dil)",
                           rpb_0="nh/2,2K-1,2K-1 (= rpb.1)", rpb_2="1,nh,L0,L0", rpb_g="1,nh,L,L",
                           qkv_weight="3C,C,1,1 (out channel m*C + n*dh + e, m = q,k,v)")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(meta, f, indent=1)
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{name}: B {Bsz} C {C} nh {nh} {H}x{W} K {K} dil {dil} global {global_mode}; y agree {rel:.2e}, "
          + ", ".join(f"{k} {v:.2e}" for k, v in rels.items()) + f"; rms y {meta['rms_y']:.3f}; sensitivity "
          + ", ".join(f"{k} {v:.2e}" for k, v in sens.items()) + f"; {size} bytes")
    return size, meta


if __name__ == "__main__":
    os.makedirs(ROOT, exist_ok=True)
    total = 0
    bic = bicubic_check(torch.Generator().manual_seed(20))
    print("bicubic loops vs torch:", ", ".join(f"{k} {v:.2e}" for k, v in bic.items()))
    assert max(bic.values()) < 1e-12, "own cubic loops do not match torch's bicubic"
    for args in (("local_small", 2, 16, 4, 9, 11, 3, False, None, 21),
                 ("local_rect", 1, 16, 2, 7, 12, 3, False, None, 22),
                 ("global_native", 1, 16, 4, 5, 5, 3, True, (5, 5), 23),
                 ("global_resized", 1, 16, 2, 6, 5, 3, True, (4, 4), 24)):
        size, meta = write_case(*args)
        if meta["global_mode"]:
            path = os.path.join(ROOT, args[0], "config.json")
            meta["bicubic_loops_vs_torch"] = bic
            with open(path, "w") as f:
                json.dump(meta, f, indent=1)
            size = sum(os.path.getsize(os.path.join(ROOT, args[0], f)) for f in os.listdir(os.path.join(ROOT, args[0])))
        total += size
    print(f"total {total} bytes")
