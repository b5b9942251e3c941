#!/usr/bin/env python3
"""Fixtures for a tokenmix end-to-end test of a tiny A2Mamba (stem, 4 stages of Blocks with MASS / A2SSM,
downsamples, classifier): a random checkpoint with the RELEASED state-dict names written as safetensors,
one image, the four forward_features outputs and the logits, computed in PyTorch (float64, from the float32
parameters and image) by our own transcription of the PUBLIC reference code named below. Nothing is imported
from that project (it needs its CUDA scan extension and natten). The MASS token mixer is the one verified by
make_mass_fixture.py (imported as a module, both formulations; it imports make_a2ssm_fixture.py in turn).
The whole network is computed by two independent formulations that must agree to 1e-12 (relative to each
output's largest entry) before anything is written. Spec: /work/shared/spec/a2mamba.md sections 3, 4.

SOURCES TRANSCRIBED
  LMMMEng/A2Mamba @a9ea14c, models/a2mamba.py (read from a stored copy of the same file)
    stem                 Sequential(Conv2d(3, C0/2, 3, s2, p1, no bias), BN, GELU, Conv2d(C0/2, C0/2, 3, p1, no
                         bias), BN, GELU, Conv2d(C0/2, C0, 3, s2, p1, no bias), BN, GELU, Conv2d(C0, C0, 3, p1, no
                         bias), BN) -> patch_embed.{0,3,6,9} convs, patch_embed.{1,4,7,10} BNs
    A2Mamba.__init__     layers = [stage0, down0, stage1, down1, stage2, down2, stage3, Identity];
                         down_i = Sequential(Conv2d(C_i, C_{i+1}, 3, s2, p1, no bias), BN(C_{i+1}));
                         global_mode = (stage == 3); image_size per stage = img // 2**(stage+2) (sets the
                         rpb.2 shape of stage 3 only); ffn_dim = int(mlp_ratio * C);
                         classifier = Sequential(Conv2d(C3, projection, 1), BN, SiLU, AdaptiveAvgPool2d(1),
                         Conv2d(projection, num_classes, 1)) -> classifier.{0,1,4}
    A2Mamba.forward_features / forward   features = outputs of layers 0, 2, 4, 6 (before the downsamples);
                         logits = classifier(layers(patch_embed(x))).flatten(1)
    BasicLayer           rope = RoPE(C, nh) (buffer layers.<2i>.rope.angle, float32 [2*(dh//4)]); one
                         (sin, cos) table per stage from the stage input's H, W, shared by its blocks
    Block (no layerscale / resscale, drop_path 0)
                         x = x + cpe1(x); x = x + token_mixer(norm1(x), (sin, cos)); x = x + cpe2(x);
                         x = x + mlp(norm2(x)); cpe = Conv2d(C, C, 3, p1, groups C) with bias, norms LayerNorm2d
                         (eps 1e-6)
    FFN                  fc1 Conv2d(C, F, 1); GELU (exact, erf); t = t + dwconv(t) (Conv2d(F, F, 3, p1, groups F));
                         fc2 Conv2d(F, C, 1); dropout off
    Attention (MASS)     make_mass_fixture.py (its docstring lists the transcribed lines); the global rpb.2
                         is [1, nh, L0, L0] with L0 = (img//32)**2 and is added as it is when L = L0
  BatchNorm2d everywhere in EVAL mode: (x - running_mean) / sqrt(running_var + 1e-5) * weight + bias.
  Formulation A (forward_released): torch.nn.functional ops on [B, C, H, W] (F.conv2d, F.batch_norm,
  F.gelu, F.layer_norm), make_mass_fixture.mass_released for the token mixers.
  Formulation B (forward_numpy): numpy on channels-last [H, W, C] with our own convolution (sums of shifted,
  strided slices times the tap matrices), own BN / LN / GELU (math.erf) / SiLU, and
  make_mass_fixture.mass_loops (scalar loops from the spec, incl. make_a2ssm_fixture.forward_loops).

MODEL (tests/data/a2mamba/tiny/)
  image 96 x 96 x 3, dims [8, 16, 16, 24], depths [1, 1, 2, 1], heads [2, 2, 2, 2] (dh 4, 8, 8, 12),
  K [3, 3, 3, 3], window_dilation [1, 1, 1, 1], mlp_ratios [2, 2, 2, 2], projection 32, num_classes 10,
  use_rpb True, no layerscale / resscale. Stage resolutions 24, 12, 6, 3; MASS dilations (3, 3), (3, 3),
  (2, 2), (1, 1); stage 3 is global (rpb.2 [1, 2, 9, 9], L = L0 = 9: no resize); A2SSM R = 1 in stages 0-2.

FILES
  model.safetensors   the FULL state dict, released names, written by hand (u64 LE header length, JSON
                      header {name: {dtype, shape, data_offsets}} in state-dict order, padded with spaces to a
                      multiple of 8, then the raw little-endian data: the I64 scalars first, then the F32
                      tensors in state-dict order, every tensor aligned to its element size). F32 except the BN num_batches_tracked (I64, shape
                      [], value 187500, unused in eval). Keys (state-dict order; <s> = 2*stage, <j> = block):
                        patch_embed.{0,3,6,9}.weight [Cout, Cin, 3, 3]
                        patch_embed.{1,4,7,10}.{weight, bias, running_mean, running_var, num_batches_tracked}
                        layers.<s>.rope.angle [2*(dh//4)]  (float32, as the released float32 code computes it)
                        layers.<s>.blocks.<j>.cpe1.{weight [C,1,3,3], bias}, .norm1.{weight, bias}
                        layers.<s>.blocks.<j>.token_mixer.{qkv, gate.0, gate.1, lepe, norm, proj.0, proj.1}.*
                          (shapes as in make_mass_fixture.py), stages 0-2: .ssm.{x_proj_weight,
                          dt_projs_weight, dt_projs_bias, A_logs, Ds, conv2d.weight, conv2d.bias,
                          state_fusion.weight, state_fusion.bias}; .rpb.0 and .rpb.1 (identical values: tied);
                          stage 3: .rpb.2 [1, nh, L0, L0]
                        layers.<s>.blocks.<j>.cpe2.*, .norm2.*, .mlp.fc1.{weight [F,C,1,1], bias},
                          .mlp.dwconv.{weight [F,1,3,3], bias}, .mlp.fc2.{weight [C,F,1,1], bias}
                        layers.<2i+1>.0.weight [C_{i+1}, C_i, 3, 3], layers.<2i+1>.1.{BN}   (i = 0, 1, 2)
                        classifier.0.{weight [P, C3, 1, 1], bias}, classifier.1.{BN}, classifier.4.{weight
                          [num_classes, P, 1, 1], bias}
  image.npy           [1, 96, 96, 3] channels-last float32 ~ N(0, 1)     (released input [1, 3, 96, 96])
  features_<i>.npy    [1, h_i, w_i, C_i] channels-last float32            (released [1, C_i, h_i, w_i])
  logits.npy          [1, 10]
  config.json         the model config, stage resolutions, dilations, image_size per stage, parameter counts
                      (unique parameters: rpb.0/rpb.1 counted once, buffers excluded; and state-dict
                      floats), agreement_rel per output (A vs B), feature rms / max, eps values.
  Parameter draws: conv weights randn / sqrt(fan_in) (stem and downsample convs too; FFN dwconv fan_in 9)
  except the residual positional convs cpe1 / cpe2: 0.3 randn / sqrt(9) (with 1/sqrt(9) every
  x + cpe(x) grows x by ~sqrt(2) and stage 3 ends at rms ~26), biases 0.1 randn, BN weight 1 + 0.2 randn, bias 0.2 randn, running_mean 0.2 randn,
  running_var U(0.5, 2), LN weight 1 + 0.2 randn, bias 0.1 randn, rpb 0.5 randn, A2SSM as
  make_a2ssm_fixture.py; the MASS draws of make_mass_fixture.make_mass_params.

FORMULAS
  stem / downsample convs: zero padding 1, stride as listed, cross-correlation, no bias; BN eval eps 1e-5;
  GELU(t) = t/2 (1 + erf(t/sqrt 2)); LayerNorm2d over channels per pixel, biased variance, eps 1e-6;
  RoPE tables per stage from float64 angles (the stored float32 buffers differ from them by up to ~2e-10:
  config.json rope_angle_f32_vs_f64);
  classifier: z = SiLU(BN(W0 x + b0)) per pixel, mean over all pixels, logits = W4 mean + b4.

Run with Debian's python3-torch (CPU):  /usr/bin/python3 tests/data/make_a2mamba_fixture.py
"""
import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "a2mamba", "tiny")
sys.path.insert(0, HERE)
import make_mass_fixture as mass  # noqa: E402  (verified MASS forward, both formulations)

torch.set_default_dtype(torch.float64)

CFG = dict(image_size=96, in_chans=3, embed_dims=[8, 16, 16, 24], depths=[1, 1, 2, 1], num_heads=[2, 2, 2, 2],
           window_size=[3, 3, 3, 3], window_dilation=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2], projection=32,
           num_classes=10, use_rpb=True, layerscales=[False] * 4, resscales=[False] * 4, drop_path_rate=0.0)
NUM_BATCHES_TRACKED = 187500
CPE_STD = 0.3 / 3.0          # residual depthwise cpe1 / cpe2: 0.3 / sqrt(9) keeps the stages O(1)
LN_EPS, BN_EPS = mass.LN_EPS, mass.BN_EPS


# ----------------------------------------------------------------------------------------------------
# parameters: an ordered state dict with the released names (float32; num_batches_tracked int64 [])
# ----------------------------------------------------------------------------------------------------
def bn(sd, prefix, C, gen):
    sd.update(mass.bn_params(prefix, C, gen))
    sd[prefix + "num_batches_tracked"] = torch.tensor(NUM_BATCHES_TRACKED, dtype=torch.int64)


def make_state_dict(gen):
    c = CFG
    dims = c["embed_dims"]
    sd = {}
    # stem
    stem = [(0, c["in_chans"], dims[0] // 2), (3, dims[0] // 2, dims[0] // 2), (6, dims[0] // 2, dims[0]),
            (9, dims[0], dims[0])]
    for idx, cin, cout in stem:
        sd.update(mass.conv_params(f"patch_embed.{idx}.", cout, cin, 3, gen, bias=False))
        bn(sd, f"patch_embed.{idx + 1}.", cout, gen)
    for i in range(4):
        C, nh, K = dims[i], c["num_heads"][i], c["window_size"][i]
        Fd = int(c["mlp_ratios"][i] * C)
        glob = i == 3
        img = (c["image_size"] // 2 ** (i + 2),) * 2
        pre = f"layers.{2 * i}."
        sd[pre + "rope.angle"] = mass.rope_angle(C // nh, torch.float32)
        for j in range(c["depths"][i]):
            bp = pre + f"blocks.{j}."
            sd.update(mass.conv_params(bp + "cpe1.", C, C, 3, gen, groups=C, w_std=CPE_STD))
            sd.update(mass.ln_params(bp + "norm1.", C, gen))
            mp = mass.make_mass_params(C, nh, K, glob, img, gen)
            order = [k for k in mp if not k.startswith(("ssm.", "rpb."))]
            order += [k for k in mp if k.startswith("ssm.") and k.count(".") == 1]        # A2SSM's own params
            order += [k for k in mp if k.startswith("ssm.") and k.count(".") == 2]        # conv2d, state_fusion
            order += [k for k in mp if k.startswith("rpb.")]
            for k in order:
                sd[bp + "token_mixer." + k] = mp[k]
            gate_bn = bp + "token_mixer.gate.1."
            sd[gate_bn + "num_batches_tracked"] = torch.tensor(NUM_BATCHES_TRACKED, dtype=torch.int64)
            sd.update(mass.conv_params(bp + "cpe2.", C, C, 3, gen, groups=C, w_std=CPE_STD))
            sd.update(mass.ln_params(bp + "norm2.", C, gen))
            sd.update(mass.conv_params(bp + "mlp.fc1.", Fd, C, 1, gen))
            sd.update(mass.conv_params(bp + "mlp.dwconv.", Fd, Fd, 3, gen, groups=Fd))
            sd.update(mass.conv_params(bp + "mlp.fc2.", C, Fd, 1, gen))
        if i < 3:
            sd.update(mass.conv_params(f"layers.{2 * i + 1}.0.", dims[i + 1], C, 3, gen, bias=False))
            bn(sd, f"layers.{2 * i + 1}.1.", dims[i + 1], gen)
    sd.update(mass.conv_params("classifier.0.", c["projection"], dims[3], 1, gen))
    bn(sd, "classifier.1.", c["projection"], gen)
    sd.update(mass.conv_params("classifier.4.", c["num_classes"], c["projection"], 1, gen))
    # the gate BN's num_batches_tracked sits right after its running_var (state-dict order)
    ordered = {}
    for k, v in sd.items():
        if k.endswith("gate.1.num_batches_tracked"):
            continue
        ordered[k] = v
        if k.endswith("gate.1.running_var"):
            nbt = k[: -len("running_var")] + "num_batches_tracked"
            ordered[nbt] = sd[nbt]
    return ordered


def sub(sd, prefix):
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


# ----------------------------------------------------------------------------------------------------
# formulation A: torch functional ops in the released layout [B, C, H, W]
# ----------------------------------------------------------------------------------------------------
def forward_released(image_nchw, sd):
    c = CFG
    P = {k: v.double() for k, v in sd.items() if v.dtype != torch.int64}

    def bn_(x, prefix):
        return F.batch_norm(x, P[prefix + "running_mean"], P[prefix + "running_var"], P[prefix + "weight"],
                            P[prefix + "bias"], training=False, eps=BN_EPS)

    x = image_nchw
    for idx, stride in ((0, 2), (3, 1), (6, 2), (9, 1)):
        x = F.conv2d(x, P[f"patch_embed.{idx}.weight"], None, stride=stride, padding=1)
        x = bn_(x, f"patch_embed.{idx + 1}.")
        if idx != 9:
            x = F.gelu(x)
    feats, dils = [], []
    for i in range(4):
        C, nh, K = c["embed_dims"][i], c["num_heads"][i], c["window_size"][i]
        H, W = x.shape[2:]
        sin, cos = mass.rope_tables(mass.rope_angle(C // nh), H, W)          # BasicLayer: one table per stage
        for j in range(c["depths"][i]):
            bp = f"layers.{2 * i}.blocks.{j}."
            x = x + F.conv2d(x, P[bp + "cpe1.weight"], P[bp + "cpe1.bias"], padding=1, groups=C)
            t = mass.layer_norm_2d(x, P[bp + "norm1.weight"], P[bp + "norm1.bias"])
            res = mass.mass_released(t, sub(sd, bp + "token_mixer."), nh, K, sin, cos, i == 3)
            x = x + res["y"]
            x = x + F.conv2d(x, P[bp + "cpe2.weight"], P[bp + "cpe2.bias"], padding=1, groups=C)
            t = mass.layer_norm_2d(x, P[bp + "norm2.weight"], P[bp + "norm2.bias"])
            t = F.gelu(F.conv2d(t, P[bp + "mlp.fc1.weight"], P[bp + "mlp.fc1.bias"]))
            t = t + F.conv2d(t, P[bp + "mlp.dwconv.weight"], P[bp + "mlp.dwconv.bias"], padding=1, groups=t.shape[1])
            x = x + F.conv2d(t, P[bp + "mlp.fc2.weight"], P[bp + "mlp.fc2.bias"])
        dils.append(res["dil"])
        feats.append(x)
        if i < 3:
            x = bn_(F.conv2d(x, P[f"layers.{2 * i + 1}.0.weight"], None, stride=2, padding=1), f"layers.{2 * i + 1}.1.")
    z = F.silu(bn_(F.conv2d(x, P["classifier.0.weight"], P["classifier.0.bias"]), "classifier.1."))
    z = F.adaptive_avg_pool2d(z, 1)
    logits = F.conv2d(z, P["classifier.4.weight"], P["classifier.4.bias"]).flatten(1)
    return feats, logits, dils


# ----------------------------------------------------------------------------------------------------
# formulation B: numpy, channels-last [H, W, C], own convolution / norms; MASS from mass_loops
# ----------------------------------------------------------------------------------------------------
def conv_np(x, w, b, stride=1, pad=0, depthwise=False):
    """x [H, W, Cin], w [Cout, Cin or 1, k, k] -> [Ho, Wo, Cout]: sum over taps of shifted, strided slices."""
    H, W, _ = x.shape
    cout, _, k, _ = w.shape
    xp = np.zeros((H + 2 * pad, W + 2 * pad, x.shape[2]))
    xp[pad:pad + H, pad:pad + W] = x
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    out = np.zeros((Ho, Wo, cout))
    for a in range(k):
        for e in range(k):
            patch = xp[a:a + stride * (Ho - 1) + 1:stride, e:e + stride * (Wo - 1) + 1:stride]
            out += patch * w[:, 0, a, e] if depthwise else patch @ w[:, :, a, e].T
    return out + (b if b is not None else 0.0)


def bn_np(x, P, prefix):
    return (x - P[prefix + "running_mean"]) / np.sqrt(P[prefix + "running_var"] + BN_EPS) * P[prefix + "weight"] \
        + P[prefix + "bias"]


def ln_np(x, w, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + LN_EPS) * w + b


_erf = np.frompyfunc(math.erf, 1, 1)


def gelu_np(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def forward_numpy(image_hwc, sd):
    c = CFG
    P = {k: v.double().numpy() for k, v in sd.items() if v.dtype != torch.int64}
    x = image_hwc
    for idx, stride in ((0, 2), (3, 1), (6, 2), (9, 1)):
        x = bn_np(conv_np(x, P[f"patch_embed.{idx}.weight"], None, stride, 1), P, f"patch_embed.{idx + 1}.")
        if idx != 9:
            x = gelu_np(x)
    feats = []
    for i in range(4):
        C, nh, K = c["embed_dims"][i], c["num_heads"][i], c["window_size"][i]
        for j in range(c["depths"][i]):
            bp = f"layers.{2 * i}.blocks.{j}."
            x = x + conv_np(x, P[bp + "cpe1.weight"], P[bp + "cpe1.bias"], 1, 1, depthwise=True)
            t = ln_np(x, P[bp + "norm1.weight"], P[bp + "norm1.bias"])
            x = x + mass.mass_loops(t[None], sub(sd, bp + "token_mixer."), nh, K, i == 3)["y"][0]
            x = x + conv_np(x, P[bp + "cpe2.weight"], P[bp + "cpe2.bias"], 1, 1, depthwise=True)
            t = ln_np(x, P[bp + "norm2.weight"], P[bp + "norm2.bias"])
            t = gelu_np(conv_np(t, P[bp + "mlp.fc1.weight"], P[bp + "mlp.fc1.bias"]))
            t = t + conv_np(t, P[bp + "mlp.dwconv.weight"], P[bp + "mlp.dwconv.bias"], 1, 1, depthwise=True)
            x = x + conv_np(t, P[bp + "mlp.fc2.weight"], P[bp + "mlp.fc2.bias"])
        feats.append(x)
        if i < 3:
            x = bn_np(conv_np(x, P[f"layers.{2 * i + 1}.0.weight"], None, 2, 1), P, f"layers.{2 * i + 1}.1.")
    z = conv_np(x, P["classifier.0.weight"], P["classifier.0.bias"])
    z = bn_np(z, P, "classifier.1.")
    z = z / (1.0 + np.exp(-z))
    pooled = z.mean((0, 1))
    logits = P["classifier.4.weight"][:, :, 0, 0] @ pooled + P["classifier.4.bias"]
    return feats, logits[None]


# ----------------------------------------------------------------------------------------------------
def write_safetensors(path, sd):
    """Header keys in state-dict order; data: the I64 scalars first, then the F32 tensors (state-dict
    order), so that every tensor starts at a multiple of its element size (as the official writer, which
    sorts by alignment, also guarantees)."""
    entries, blobs, offset = {}, [], 0
    for want in (torch.int64, torch.float32):
        for name, t in sd.items():
            if t.dtype != want:
                continue
            if t.dtype == torch.int64:
                data, dtype = t.numpy().astype("<i8").tobytes(), "I64"
            else:
                data, dtype = t.contiguous().numpy().astype("<f4").tobytes(), "F32"
            entries[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
            blobs.append(data)
            offset += len(data)
    assert len(entries) == len(sd), "only F32 / I64 tensors are expected"
    header = {name: entries[name] for name in sd}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        buf = f.read()
    out = {}
    for name, e in header.items():
        dt = {"F32": "<f4", "I64": "<i8"}[e["dtype"]]
        out[name] = np.frombuffer(buf[e["data_offsets"][0]:e["data_offsets"][1]], dtype=dt).reshape(e["shape"])
    return out


def rel_diff(a, b):
    return float(np.abs(a - b).max() / np.abs(a).max())


def main():
    gen = torch.Generator().manual_seed(31)
    sd = make_state_dict(gen)
    c = CFG
    image = torch.randn(1, c["image_size"], c["image_size"], c["in_chans"], generator=gen).float()
    featsA, logitsA, dils = forward_released(image.double().permute(0, 3, 1, 2).contiguous(), sd)
    featsA = [f.permute(0, 2, 3, 1).numpy() for f in featsA]
    logitsA = logitsA.numpy()
    featsB, logitsB = forward_numpy(image.double().numpy()[0], sd)
    agree = {f"features_{i}": rel_diff(featsA[i], featsB[i][None]) for i in range(4)}
    agree["logits"] = rel_diff(logitsA, logitsB)
    assert max(agree.values()) < 1e-12, f"formulations differ: {agree}"
    for f in featsA + [logitsA]:
        assert np.isfinite(f).all()
    rms = [float(np.sqrt((f ** 2).mean())) for f in featsA]
    mx = [float(np.abs(f).max()) for f in featsA]
    assert all(0.1 < r < 10 for r in rms), f"features not O(1): rms {rms}"

    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    path = os.path.join(OUT, "model.safetensors")
    write_safetensors(path, sd)
    back = read_safetensors(path)                                   # round trip of the hand-written file
    assert list(back) == list(sd)
    for k, v in sd.items():
        assert back[k].shape == tuple(v.shape) and np.array_equal(back[k], v.numpy()), k
    np.save(os.path.join(OUT, "image.npy"), image.numpy())
    for i, f in enumerate(featsA):
        np.save(os.path.join(OUT, f"features_{i}.npy"), f.astype(np.float32))
    np.save(os.path.join(OUT, "logits.npy"), logitsA.astype(np.float32))

    seen, n_unique = set(), 0
    for k, v in sd.items():
        if v.dtype == torch.int64 or k.endswith(("running_mean", "running_var", "rope.angle")):
            continue
        if id(v) in seen:                                             # rpb.1 is rpb.0 (tied)
            continue
        seen.add(id(v))
        n_unique += v.numel()
    n_sd = sum(v.numel() for v in sd.values() if v.dtype != torch.int64)
    res = [c["image_size"] // 2 ** (i + 2) for i in range(4)]
    meta = dict(CFG)
    meta.update(
        stage_resolutions=[[r, r] for r in res], stage_image_size=[[r, r] for r in res],
        head_dims=[c["embed_dims"][i] // c["num_heads"][i] for i in range(4)],
        ffn_dims=[int(c["mlp_ratios"][i] * c["embed_dims"][i]) for i in range(4)],
        dt_rank=[math.ceil(c["embed_dims"][i] / 16) for i in range(3)] + [None], d_state=1,
        dilations=[list(d) for d in dils], global_mode=[False, False, False, True],
        global_rpb_shape=list(sd["layers.6.blocks.0.token_mixer.rpb.2"].shape), global_rpb_resized=False,
        n_params_unique=n_unique, n_state_dict_floats=n_sd, n_state_dict_keys=len(sd),
        num_batches_tracked=NUM_BATCHES_TRACKED, ln_eps=LN_EPS, bn_eps=BN_EPS, gelu="erf",
        rope_angles_used="float64 (rope_angle_f32_vs_f64: largest |stored float32 buffer - float64| per stage)",
        rope_angle_f32_vs_f64=[float((sd[f"layers.{2 * i}.rope.angle"].double()
                                      - mass.rope_angle(c["embed_dims"][i] // c["num_heads"][i])).abs().max())
                               for i in range(4)],
        agreement_rel=agree, features_rms=rms, features_max_abs=mx,
        logits=logitsA[0].tolist(),
        layouts=dict(image="1,96,96,3 (released 1,3,96,96)", features_i="1,h_i,w_i,C_i (released 1,C_i,h_i,w_i)",
                     logits="1,num_classes"))
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(meta, f, indent=1)
    total = 0
    for name in sorted(os.listdir(OUT)):
        size = os.path.getsize(os.path.join(OUT, name))
        total += size
        print(f"  {name}: {size} bytes")
    print(f"tiny: {len(sd)} keys, {n_unique} unique parameters; dilations {dils}; agreement "
          + ", ".join(f"{k} {v:.2e}" for k, v in agree.items()) + "; features rms "
          + ", ".join(f"{r:.3f}" for r in rms) + " max " + ", ".join(f"{m:.2f}" for m in mx)
          + f"; logits {np.round(logitsA[0], 3).tolist()}; total {total} bytes")


if __name__ == "__main__":
    main()
