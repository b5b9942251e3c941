"""tokenmix.MambaMixer / Mamba2Mixer against independent float64 PyTorch transcriptions written here
(transformers' MambaMixer.slow_forward and Mamba2Mixer.torch_forward as a plain recurrence), the decode
cache carry (prefill + steps == one forward), thread-count invariance, and bad input -> ValueError.

The fixtures under tests/data/mamba*/ hold whole models (prompt logits), not per-mixer inputs and outputs,
so the mixers are checked against the transcriptions with random weights instead."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tokenmix

RTOL, ATOL = 1e-4, 1e-5


def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def causal_conv(xs, weight, bias, conv_state):
    """Depthwise causal conv over xs [B, L, C] continuing from conv_state [B, C, K-1] (raw inputs, oldest
    first); returns conv(xs) [B, L, C] (before the activation) and the new conv_state."""
    K = weight.shape[2]
    padded = torch.cat([t64(conv_state), xs.transpose(1, 2)], dim=2)  # [B, C, K-1+L]
    out = F.conv1d(padded, t64(weight), None if bias is None else t64(bias), groups=weight.shape[0])
    return out.transpose(1, 2), padded[:, :, padded.shape[2] - (K - 1):]


def linear(x, w, b=None):
    y = x @ t64(w).T
    return y if b is None else y + t64(b)


# ---- Mamba (S6) ---------------------------------------------------------------------------------


def mamba_torch(w, x, cfg, cache=None):
    """transformers MambaMixer.slow_forward in float64; returns y [B, L, d_model] and the new cache."""
    I, N, K, R = cfg["d_inner"], cfg["d_state"], cfg["d_conv"], cfg["dt_rank"]
    x = t64(x)
    b = x.shape[0]
    if cache is None:
        cache = {"conv_state": np.zeros((b, I, K - 1)), "ssm_state": np.zeros((b, I, N))}
    proj = linear(x, w["in_proj.weight"], w.get("in_proj.bias"))
    xs, z = proj[..., :I], proj[..., I:]
    conv, conv_state = causal_conv(xs, w["conv1d.weight"], w.get("conv1d.bias"), cache["conv_state"])
    xc = F.silu(conv)
    x_dbl = linear(xc, w["x_proj.weight"])
    dt, Bm, Cm = x_dbl[..., :R], x_dbl[..., R:R + N], x_dbl[..., R + N:]
    delta = F.softplus(linear(dt, w["dt_proj.weight"], w["dt_proj.bias"]))  # [B, L, I]
    A = -torch.exp(t64(w["A_log"]))  # [I, N]
    h = t64(cache["ssm_state"]).clone()
    ys = []
    for t in range(x.shape[1]):
        h = torch.exp(delta[:, t, :, None] * A) * h + delta[:, t, :, None] * Bm[:, t, None, :] * xc[:, t, :, None]
        ys.append((h * Cm[:, t, None, :]).sum(-1))
    y = torch.stack(ys, 1) + xc * t64(w["D"])
    y = y * F.silu(z)
    out = linear(y, w["out_proj.weight"], w.get("out_proj.bias"))
    return out.numpy(), {"conv_state": conv_state.numpy(), "ssm_state": h.numpy()}


def mamba_weights(rng, d_model, d_inner, d_state, d_conv, dt_rank, use_bias=False, use_conv_bias=True):
    """Random weights in transformers' state-dict names; A_log, D and dt_proj.bias spread wide so that every
    parameter moves the output."""
    I, N, K, R = d_inner, d_state, d_conv, dt_rank

    def u(shape, fan_in):
        bound = 1 / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    w = {
        "in_proj.weight": u((2 * I, d_model), d_model),
        "conv1d.weight": u((I, 1, K), K),
        "x_proj.weight": u((R + 2 * N, I), I),
        "dt_proj.weight": u((I, R), R),
        "dt_proj.bias": rng.uniform(-4, 1, I).astype(np.float32),
        "A_log": (np.log(np.arange(1, N + 1, dtype=np.float32))[None, :] + rng.uniform(-1, 1, (I, N))).astype(np.float32),
        "D": rng.uniform(-1, 2, I).astype(np.float32),
        "out_proj.weight": u((d_model, I), I),
    }
    if use_conv_bias:
        w["conv1d.bias"] = u(I, K)
    if use_bias:
        w["in_proj.bias"] = u(2 * I, d_model)
        w["out_proj.bias"] = u(d_model, I)
    return w


MAMBA_CONFIGS = [
    dict(d_model=12, d_inner=20, d_state=5, d_conv=3, dt_rank=2, use_bias=True, use_conv_bias=False),
    dict(d_model=16, d_inner=32, d_state=16, d_conv=4, dt_rank=1, use_bias=False, use_conv_bias=True),
    dict(d_model=9, d_inner=17, d_state=1, d_conv=1, dt_rank=3, use_bias=True, use_conv_bias=True),  # K = 1
]


def random_cache(rng, b, channels, k, n):
    return {"conv_state": rng.standard_normal((b, channels, k - 1), dtype=np.float32),
            "ssm_state": rng.standard_normal((b, channels, n), dtype=np.float32) * 0.5}


@pytest.mark.parametrize("cfg", MAMBA_CONFIGS)
def test_mamba_mixer_matches_torch(rng, cfg):
    w = mamba_weights(rng, **cfg)
    mixer = tokenmix.MambaMixer(w, **cfg)
    assert mixer.config == cfg
    x = rng.standard_normal((2, 13, cfg["d_model"]), dtype=np.float32)
    y = mixer.forward(x)
    ref, _ = mamba_torch(w, x, cfg)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, ref, rtol=RTOL, atol=ATOL)

    # From a non-zero cache: the output and the new cache match, and the caller's cache is untouched.
    cache = random_cache(rng, 2, cfg["d_inner"], cfg["d_conv"], cfg["d_state"])
    before = {k: v.copy() for k, v in cache.items()}
    y2, new = mixer.forward(x, cache=cache)
    ref2, ref_cache = mamba_torch(w, x, cfg, cache)
    np.testing.assert_allclose(y2, ref2, rtol=RTOL, atol=ATOL)
    assert new["conv_state"].shape == (2, cfg["d_inner"], cfg["d_conv"] - 1)
    np.testing.assert_allclose(new["conv_state"], ref_cache["conv_state"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(new["ssm_state"], ref_cache["ssm_state"], rtol=RTOL, atol=ATOL)
    for k in cache:
        np.testing.assert_array_equal(cache[k], before[k])


def test_mamba_mixer_underscore_names_and_auto_dt_rank(rng):
    cfg = dict(d_model=33, d_inner=40, d_state=4, d_conv=2)  # dt_rank "auto" = ceil(33 / 16) = 3
    w = mamba_weights(rng, dt_rank=3, **cfg)
    w_us = {k.replace(".", "_"): v.astype(np.float64) for k, v in w.items()}  # converted from float64
    mixer = tokenmix.MambaMixer(w_us, **cfg)
    assert mixer.config["dt_rank"] == 3 and mixer.threads == 1 and mixer.parameter_bytes > 0
    x = rng.standard_normal((1, 7, 33), dtype=np.float32)
    np.testing.assert_allclose(mixer.forward(x), mamba_torch(w, x, dict(cfg, dt_rank=3))[0], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("threads", [1, 2])
def test_mamba_mixer_prefill_then_steps_equal_forward(rng, threads):
    cfg = MAMBA_CONFIGS[0]
    w = mamba_weights(rng, **cfg)
    mixer = tokenmix.MambaMixer(w, **cfg, threads=threads)
    b, L, split = 3, 11, 5
    x = rng.standard_normal((b, L, cfg["d_model"]), dtype=np.float32)
    full, full_cache = mixer.forward(x, cache=mixer.initial_cache(b))
    cache0 = mixer.initial_cache(b)
    assert cache0["conv_state"].shape == (b, 20, 2) and cache0["ssm_state"].shape == (b, 20, 5)
    assert not cache0["conv_state"].any() and not cache0["ssm_state"].any()
    head, cache = mixer.forward(x[:, :split], cache=cache0)
    assert not cache0["ssm_state"].any()  # the given cache is not modified
    ys = [head]
    for t in range(split, L):
        y, cache = mixer.step(x[:, t], cache)
        assert y.shape == (b, cfg["d_model"])
        ys.append(y[:, None])
    np.testing.assert_allclose(np.concatenate(ys, 1), full, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(cache["conv_state"], full_cache["conv_state"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(cache["ssm_state"], full_cache["ssm_state"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(full, mamba_torch(w, x, cfg)[0], rtol=RTOL, atol=ATOL)


def test_mamba_mixer_threads_are_bitwise_equal(rng):
    cfg = MAMBA_CONFIGS[1]
    w = mamba_weights(rng, **cfg)
    x = rng.standard_normal((2, 600, cfg["d_model"]), dtype=np.float32)  # more than one prefill chunk
    one, two = tokenmix.MambaMixer(w, **cfg), tokenmix.MambaMixer(w, **cfg, threads=2)
    assert two.threads == 2
    np.testing.assert_array_equal(one.forward(x), two.forward(x))
    c = one.initial_cache(2)
    np.testing.assert_array_equal(one.step(x[:, 0], c)[0], two.step(x[:, 0], c)[0])


def test_mamba_mixer_bad_input(rng):
    cfg = MAMBA_CONFIGS[0]
    w = mamba_weights(rng, **cfg)
    missing = {k: v for k, v in w.items() if k != "x_proj.weight"}
    with pytest.raises(ValueError, match=r"MambaMixer: missing weight 'x_proj_weight'"):
        tokenmix.MambaMixer(missing, **cfg)
    with pytest.raises(ValueError, match=r"MambaMixer: unknown weight 'bogus\.weight'"):
        tokenmix.MambaMixer(dict(w, **{"bogus.weight": w["D"]}), **cfg)
    # A bias that this configuration does not have is an unknown key too.
    with pytest.raises(ValueError, match=r"unknown weight 'conv1d\.bias'"):
        tokenmix.MambaMixer(dict(w, **{"conv1d.bias": w["D"]}), **cfg)
    with pytest.raises(ValueError, match=r"given twice"):
        tokenmix.MambaMixer(dict(w, **{"A.log": w["A_log"]}), **cfg)
    bad = dict(w, **{"A_log": w["A_log"][:, :4]})
    with pytest.raises(ValueError, match=r"MambaMixer: A_log has shape \[20, 4\], expected"):
        tokenmix.MambaMixer(bad, **cfg)
    # Weights of another configuration: the keyword that disagrees is named.
    with pytest.raises(ValueError, match=r"x_proj_weight has shape \[12, 20\], expected \[dt_rank\+2\*d_state=13"):
        tokenmix.MambaMixer(w, **dict(cfg, dt_rank=3))
    with pytest.raises(ValueError, match=r"MambaMixer: D has shape"):
        tokenmix.MambaMixer(dict(w, D=w["D"][:7]), **cfg)
    with pytest.raises(ValueError, match=r"conv1d_weight has 2 dimensions"):
        tokenmix.MambaMixer(dict(w, **{"conv1d.weight": w["conv1d.weight"][:, 0]}), **cfg)
    with pytest.raises(ValueError, match=r"weights must be a dict"):
        tokenmix.MambaMixer(list(w.values()), **cfg)
    with pytest.raises(ValueError, match=r"threads must be >= 1"):
        tokenmix.MambaMixer(w, **cfg, threads=0)

    mixer = tokenmix.MambaMixer(w, **cfg)
    with pytest.raises(ValueError, match=r"MambaMixer::forward: x has 2 dimensions .*expected 3"):
        mixer.forward(np.zeros((4, 12), np.float32))
    with pytest.raises(ValueError, match=r"MambaMixer::forward: x has shape \[2, 3, 11\]"):
        mixer.forward(np.zeros((2, 3, 11), np.float32))
    with pytest.raises(ValueError, match=r"MambaMixer::step: token has 3 dimensions"):
        mixer.step(np.zeros((2, 1, 12), np.float32), mixer.initial_cache(2))
    with pytest.raises(ValueError, match=r"MambaMixer::step: cache\.conv_state has shape \[3, 20, 2\], expected \[B=2"):
        mixer.step(np.zeros((2, 12), np.float32), mixer.initial_cache(3))
    with pytest.raises(ValueError, match=r"cache has no 'ssm_state'"):
        mixer.forward(np.zeros((1, 2, 12), np.float32), cache={"conv_state": np.zeros((1, 20, 2), np.float32)})
    with pytest.raises(ValueError, match=r"batch must be >= 1"):
        mixer.initial_cache(0)


# ---- Mamba-2 ------------------------------------------------------------------------------------


def mamba2_torch(w, x, cfg, cache=None, clamp=True):
    """transformers Mamba2Mixer.torch_forward in float64, as a plain recurrence (the released prefill clamps
    dt to the time-step limit; the decode step does not: clamp=)."""
    H, P, N, G, K = cfg["heads"], cfg["head_dim"], cfg["d_state"], cfg.get("n_groups", 1), cfg.get("d_conv", 4)
    I = H * P
    CD = I + 2 * G * N
    gs = cfg.get("norm_group_size", 0) or I
    x = t64(x)
    b, L, _ = x.shape
    if cache is None:
        cache = {"conv_state": np.zeros((b, CD, K - 1)), "ssm_state": np.zeros((b, I, N))}
    proj = linear(x, w["in_proj.weight"], w.get("in_proj.bias"))
    z, xbc, dt = proj[..., :I], proj[..., I:I + CD], proj[..., I + CD:]
    conv, conv_state = causal_conv(xbc, w["conv1d.weight"], w.get("conv1d.bias"), cache["conv_state"])
    xbc = F.silu(conv)
    xs = xbc[..., :I].reshape(b, L, H, P)
    Bm = xbc[..., I:I + G * N].reshape(b, L, G, N).repeat_interleave(H // G, dim=2)  # [B, L, H, N]
    Cm = xbc[..., I + G * N:].reshape(b, L, G, N).repeat_interleave(H // G, dim=2)
    dt = F.softplus(dt + t64(w["dt_bias"]))
    if clamp:
        dt = dt.clamp(cfg.get("dt_min", 0.0), cfg.get("dt_max", math.inf))
    A = -torch.exp(t64(w["A_log"]))
    h = t64(cache["ssm_state"]).reshape(b, H, P, N).clone()
    ys = []
    for t in range(L):
        d = dt[:, t, :, None, None]
        h = torch.exp(d * A[:, None, None]) * h + d * xs[:, t, :, :, None] * Bm[:, t, :, None, :]
        ys.append((h * Cm[:, t, :, None, :]).sum(-1) + t64(w["D"])[:, None] * xs[:, t])
    y = torch.stack(ys, 1).reshape(b, L, I)
    g = (y * F.silu(z)).reshape(b, L, I // gs, gs)
    g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + cfg.get("norm_eps", 1e-5))
    y = g.reshape(b, L, I) * t64(w["norm.weight"])
    out = linear(y, w["out_proj.weight"], w.get("out_proj.bias"))
    return out.numpy(), {"conv_state": conv_state.numpy(), "ssm_state": h.reshape(b, I, N).numpy()}


def mamba2_weights(rng, d_model, heads, head_dim, d_state, n_groups=1, d_conv=4, use_bias=False,
                   use_conv_bias=True, **_):
    I = heads * head_dim
    CD = I + 2 * n_groups * d_state

    def u(shape, fan_in):
        bound = 1 / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    w = {
        "in_proj.weight": u((I + CD + heads, d_model), d_model),
        "conv1d.weight": u((CD, 1, d_conv), d_conv),
        "dt_bias": rng.uniform(-4, 1, heads).astype(np.float32),
        "A_log": np.log(rng.uniform(1, 16, heads)).astype(np.float32),
        "D": rng.uniform(-1, 2, heads).astype(np.float32),
        "norm.weight": rng.uniform(0.5, 1.5, I).astype(np.float32),
        "out_proj.weight": u((d_model, I), I),
    }
    if use_conv_bias:
        w["conv1d.bias"] = u(CD, d_conv)
    if use_bias:
        w["in_proj.bias"] = u(I + CD + heads, d_model)
        w["out_proj.bias"] = u(d_model, I)
    return w


MAMBA2_CONFIGS = [
    dict(d_model=12, heads=4, head_dim=3, d_state=5, n_groups=2, d_conv=3, use_bias=True, use_conv_bias=True,
         norm_group_size=6),
    dict(d_model=10, heads=3, head_dim=5, d_state=7, n_groups=1, d_conv=4, use_bias=False, use_conv_bias=False,
         dt_min=0.05, dt_max=0.5, norm_eps=1e-3, chunk_size=4),  # the clamp bites
    dict(d_model=8, heads=2, head_dim=4, d_state=3, n_groups=2, d_conv=1),  # K = 1
]


@pytest.mark.parametrize("cfg", MAMBA2_CONFIGS)
def test_mamba2_mixer_matches_torch(rng, cfg):
    w = mamba2_weights(rng, **cfg)
    mixer = tokenmix.Mamba2Mixer(w, **cfg)
    assert all(mixer.config[k] == pytest.approx(v) for k, v in cfg.items())
    x = rng.standard_normal((2, 13, cfg["d_model"]), dtype=np.float32)
    y = mixer.forward(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, mamba2_torch(w, x, cfg)[0], rtol=RTOL, atol=ATOL)

    I = cfg["heads"] * cfg["head_dim"]
    cache = random_cache(rng, 2, I + 2 * cfg["n_groups"] * cfg["d_state"], cfg["d_conv"], cfg["d_state"])
    cache["ssm_state"] = rng.standard_normal((2, I, cfg["d_state"]), dtype=np.float32) * 0.5
    before = {k: v.copy() for k, v in cache.items()}
    y2, new = mixer.forward(x, cache=cache)
    ref2, ref_cache = mamba2_torch(w, x, cfg, cache)
    np.testing.assert_allclose(y2, ref2, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(new["conv_state"], ref_cache["conv_state"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(new["ssm_state"], ref_cache["ssm_state"], rtol=RTOL, atol=ATOL)
    for k in cache:
        np.testing.assert_array_equal(cache[k], before[k])

    # The decode step from that cache: no dt clamp (the released step's trap).
    tok = rng.standard_normal((2, cfg["d_model"]), dtype=np.float32)
    ys, new_s = mixer.step(tok, cache)
    ref_s, ref_cache_s = mamba2_torch(w, tok[:, None], cfg, cache, clamp=False)
    np.testing.assert_allclose(ys, ref_s[:, 0], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(new_s["ssm_state"], ref_cache_s["ssm_state"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("threads", [1, 2])
def test_mamba2_mixer_prefill_then_steps_equal_forward(rng, threads):
    cfg = dict(MAMBA2_CONFIGS[0], chunk_size=4)  # no dt limit: steps and prefill run the same math
    w = {k.replace(".", "_"): v for k, v in mamba2_weights(rng, **cfg).items()}
    mixer = tokenmix.Mamba2Mixer(w, **cfg, threads=threads)
    b, L, split = 2, 14, 6
    x = rng.standard_normal((b, L, cfg["d_model"]), dtype=np.float32)
    full, full_cache = mixer.forward(x, cache=mixer.initial_cache(b))
    cache0 = mixer.initial_cache(b)
    assert cache0["conv_state"].shape == (b, 12 + 2 * 2 * 5, 2) and cache0["ssm_state"].shape == (b, 12, 5)
    head, cache = mixer.forward(x[:, :split], cache=cache0)
    ys = [head]
    for t in range(split, L):
        y, cache = mixer.step(x[:, t], cache)
        ys.append(y[:, None])
    np.testing.assert_allclose(np.concatenate(ys, 1), full, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(cache["conv_state"], full_cache["conv_state"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(cache["ssm_state"], full_cache["ssm_state"], rtol=RTOL, atol=ATOL)


def test_mamba2_mixer_threads_are_bitwise_equal(rng):
    cfg = MAMBA2_CONFIGS[0]
    w = mamba2_weights(rng, **cfg)
    x = rng.standard_normal((3, 200, cfg["d_model"]), dtype=np.float32)  # gathered prefill chunks
    one, two = tokenmix.Mamba2Mixer(w, **cfg), tokenmix.Mamba2Mixer(w, **cfg, threads=2)
    np.testing.assert_array_equal(one.forward(x), two.forward(x))
    np.testing.assert_allclose(one.forward(x), mamba2_torch(w, x, cfg)[0], rtol=RTOL, atol=ATOL)


def test_mamba2_mixer_bad_input(rng):
    cfg = MAMBA2_CONFIGS[0]
    w = mamba2_weights(rng, **cfg)
    with pytest.raises(ValueError, match=r"Mamba2Mixer: missing weight 'norm_weight'"):
        tokenmix.Mamba2Mixer({k: v for k, v in w.items() if k != "norm.weight"}, **cfg)
    with pytest.raises(ValueError, match=r"Mamba2Mixer: unknown weight 'x_proj\.weight'"):
        tokenmix.Mamba2Mixer(dict(w, **{"x_proj.weight": w["D"]}), **cfg)
    with pytest.raises(ValueError, match=r"Mamba2Mixer: in_proj_weight has shape \[.*\], expected"):
        tokenmix.Mamba2Mixer(dict(w, **{"in_proj.weight": w["in_proj.weight"][:-1]}), **cfg)
    with pytest.raises(ValueError, match=r"Mamba2Mixer: dt_bias has shape \[3\], expected \[H=4\]"):
        tokenmix.Mamba2Mixer(dict(w, dt_bias=w["dt_bias"][:3]), **cfg)
    with pytest.raises(ValueError, match=r"n_groups=3 must divide heads=4"):
        tokenmix.Mamba2Mixer(w, **dict(cfg, n_groups=3))
    with pytest.raises(ValueError, match=r"norm_group_size=5 must divide d_inner=12"):
        tokenmix.Mamba2Mixer(w, **dict(cfg, norm_group_size=5))
    with pytest.raises(ValueError, match=r"the dt limit \[1, 0.5\] is empty"):
        tokenmix.Mamba2Mixer(w, **dict(cfg, dt_min=1.0, dt_max=0.5))

    mixer = tokenmix.Mamba2Mixer(w, **cfg)
    with pytest.raises(ValueError, match=r"Mamba2Mixer::forward: x has 4 dimensions"):
        mixer.forward(np.zeros((1, 2, 3, 12), np.float32))
    with pytest.raises(ValueError, match=r"Mamba2Mixer::forward: x has shape \[1, 2, 13\]"):
        mixer.forward(np.zeros((1, 2, 13), np.float32))
    bad_cache = dict(mixer.initial_cache(1), conv_state=np.zeros((1, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"Mamba2Mixer::step: cache\.conv_state has shape \[1, 32, 3\]"):
        mixer.step(np.zeros((1, 12), np.float32), bad_cache)
    with pytest.raises(ValueError, match=r"cache must be a dict"):
        mixer.step(np.zeros((1, 12), np.float32), [np.zeros(1)])
    with pytest.raises(ValueError, match=r"unknown cache entry 'state'"):
        mixer.forward(np.zeros((1, 2, 12), np.float32), cache=dict(mixer.initial_cache(1), state=1))
