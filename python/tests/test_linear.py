"""tokenmix's linear-attention bindings (simple_gla, lightning_attention, retention, linear_attention and
their steps / slope helpers) against independent PyTorch formulations written here in float64 (the
quadratic form with the decay matrix, and the token recurrence), and the mapping of bad input to
ValueError. Layout heads-last: q, k [B, L, H, K], v [B, L, H, V]; state [B, H, K, V]."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tokenmix

TOL = dict(rtol=1e-4, atol=1e-5)


def t64(a):
    return torch.from_numpy(np.array(a, dtype=np.float64))  # a writable copy


def qkv(rng, b=2, L=37, h=3, k=5, v=7):
    return (rng.standard_normal((b, L, h, k), dtype=np.float32), rng.standard_normal((b, L, h, k), dtype=np.float32),
            rng.standard_normal((b, L, h, v), dtype=np.float32))


def quadratic_torch(q, k, v, G, scale, S0=None):
    """The parallel (quadratic) form of decayed causal linear attention, per (b, h):
    O = scale·((Q Kᵀ) ⊙ D) V + scale·diag(exp(G)) Q S0,  D[t, s] = exp(G[t] - G[s]) (s <= t, else 0),
    with G [B, L, H] the cumulative log decay. Returns out [B, L, H, V] and the final state [B, H, K, V]."""
    q, k, v, G = (t64(a).transpose(1, 2) for a in (q, k, v, G))  # [B, H, L, .], G [B, H, L]
    L = q.shape[2]
    mask = torch.tril(torch.ones(L, L, dtype=torch.bool))
    diff = G[..., :, None] - G[..., None, :]
    D = torch.where(mask, torch.exp(torch.where(mask, diff, torch.zeros_like(diff))), torch.zeros_like(diff))
    out = ((q @ k.transpose(-1, -2)) * D) @ v
    last = G[..., -1]  # [B, H]
    S = (k * torch.exp(last[..., None] - G)[..., None]).transpose(-1, -2) @ v
    if S0 is not None:
        S0 = t64(S0)
        out = out + torch.exp(G)[..., None] * (q @ S0)
        S = S + torch.exp(last)[..., None, None] * S0
    return (scale * out).transpose(1, 2).numpy(), S.numpy()


def recurrence_torch(q, k, v, g, scale, S0=None):
    """The token recurrence S_t = exp(g_t)·S_{t-1} + k_tᵀ v_t, o_t = scale·q_t S_t; g [B, L, H]."""
    q, k, v, g = map(t64, (q, k, v, g))
    b, L, h, kd = q.shape
    S = torch.zeros(b, h, kd, v.shape[3], dtype=torch.float64) if S0 is None else t64(S0).clone()
    outs = []
    for t in range(L):
        S = torch.exp(g[:, t])[..., None, None] * S + k[:, t, :, :, None] * v[:, t, :, None, :]
        outs.append(scale * (q[:, t, :, None, :] @ S)[:, :, 0])
    return torch.stack(outs, 1).numpy(), S.numpy()


def per_head_log_decay(log_decay, b, L):
    return np.broadcast_to(np.asarray(log_decay, np.float64), (b, L, len(log_decay)))


# ---- simple_gla -------------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm,chunk_size", [("chunked", 0), ("chunked", 8), ("recurrent", 0), ("auto_select", 0)])
@pytest.mark.parametrize("threads", [1, 2])
def test_simple_gla_g_matches_quadratic_form(rng, algorithm, chunk_size, threads):
    q, k, v = qkv(rng, v=16)
    g = -rng.uniform(0.0, 0.5, (2, 37, 3)).astype(np.float32)
    S0 = rng.standard_normal((2, 3, 5, 16), dtype=np.float32)
    out, state = tokenmix.simple_gla(q, k, v, g=g, initial_state=S0, algorithm=algorithm, chunk_size=chunk_size,
                                     threads=threads)
    ref, ref_state = quadratic_torch(q, k, v, np.cumsum(g.astype(np.float64), 1), 1 / math.sqrt(5), S0)
    assert out.dtype == np.float32 and out.shape == v.shape and state.shape == S0.shape
    np.testing.assert_allclose(out, ref, **TOL)
    np.testing.assert_allclose(state, ref_state, **TOL)
    # the recurrence agrees with the quadratic form
    rec, rec_state = recurrence_torch(q, k, v, g, 1 / math.sqrt(5), S0)
    np.testing.assert_allclose(rec, ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(rec_state, ref_state, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("algorithm", ["chunked", "recurrent"])
def test_simple_gla_g_gamma_and_no_decay_match_recurrence(rng, algorithm):
    q, k, v = qkv(rng, b=1, L=41, h=2, k=4, v=9)
    gg = np.array([-0.1, -0.7], np.float32)
    out, state = tokenmix.simple_gla(q, k, v, g_gamma=gg, scale=0.5, algorithm=algorithm)
    ref, ref_state = recurrence_torch(q, k, v, per_head_log_decay(gg, 1, 41), 0.5)
    np.testing.assert_allclose(out, ref, **TOL)
    np.testing.assert_allclose(state, ref_state, **TOL)
    out, state = tokenmix.simple_gla(q, k, v, algorithm=algorithm)  # no decay, default scale 1/sqrt(K)
    ref, ref_state = recurrence_torch(q, k, v, np.zeros((1, 41, 2)), 1 / math.sqrt(4))
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(state, ref_state, rtol=1e-4, atol=1e-4)


def test_simple_gla_state_carries_across_two_calls(rng):
    q, k, v = qkv(rng, v=16)
    g = -rng.uniform(0.0, 0.3, (2, 37, 3)).astype(np.float32)
    full, full_state = tokenmix.simple_gla(q, k, v, g=g, algorithm="chunked")
    a, sa = tokenmix.simple_gla(q[:, :20], k[:, :20], v[:, :20], g=g[:, :20], algorithm="chunked")
    b, sb = tokenmix.simple_gla(q[:, 20:], k[:, 20:], v[:, 20:], g=g[:, 20:], initial_state=sa, algorithm="chunked")
    np.testing.assert_allclose(np.concatenate([a, b], 1), full, **TOL)
    np.testing.assert_allclose(sb, full_state, **TOL)


@pytest.mark.parametrize("decay", ["g", "g_gamma"])
def test_simple_gla_step_equals_chunked(rng, decay):
    q, k, v = qkv(rng, b=2, L=11, h=3, k=5, v=6)
    g = -rng.uniform(0.0, 0.5, (2, 11, 3)).astype(np.float32)
    gg = np.array([-0.2, -0.05, -1.0], np.float32)
    S0 = rng.standard_normal((2, 3, 5, 6), dtype=np.float32)
    if decay == "g":
        ref, ref_state = tokenmix.simple_gla(q, k, v, g=g, initial_state=S0, algorithm="chunked", chunk_size=4)
    else:
        ref, ref_state = tokenmix.simple_gla(q, k, v, g_gamma=gg, initial_state=S0, algorithm="chunked", chunk_size=4)
    state, outs = S0.copy(), []
    for t in range(11):
        kw = dict(g=g[:, t]) if decay == "g" else dict(g_gamma=gg)
        before = state.copy()
        o, new_state = tokenmix.simple_gla_step(state, q[:, t], k[:, t], v[:, t], **kw)
        np.testing.assert_array_equal(state, before)  # the input state is not modified
        assert o.shape == (2, 3, 6)
        outs.append(o)
        state = new_state
    np.testing.assert_allclose(np.stack(outs, 1), ref, **TOL)
    np.testing.assert_allclose(state, ref_state, **TOL)


# ---- lightning attention ----------------------------------------------------------------------------

def alibi_torch(n):
    """OpenNLPLab's get_slopes (TransNormerLLM), written out."""
    def power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]
    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + alibi_torch(2 * closest)[0::2][: n - closest]


@pytest.mark.parametrize("H", [1, 4, 6, 8])
def test_slope_helpers(H):
    np.testing.assert_allclose(tokenmix.alibi_slopes(H), alibi_torch(H), rtol=1e-6)
    for layer, n in [(0, 4), (2, 4), (3, 4), (0, 1)]:
        factor = (1 - layer / (n - 1) + 1e-5) if n > 1 else 1 + 1e-5
        s = tokenmix.tnl_slopes(H, layer, n)
        assert s.dtype == np.float32 and s.shape == (H,)
        np.testing.assert_allclose(s, np.array(alibi_torch(H)) * factor, rtol=1e-6)
        np.testing.assert_allclose(tokenmix.fla_lightning_slopes(H, layer, n),
                                   [8 / H * (1 - layer / n) * h for h in range(H)], rtol=1e-6)
    np.testing.assert_allclose(tokenmix.retention_log_decay(H), [math.log(1 - 2 ** (-5 - h)) for h in range(H)],
                               rtol=1e-6)


@pytest.mark.parametrize("algorithm,block_size", [("chunked", 0), ("chunked", 16), ("recurrent", 0)])
@pytest.mark.parametrize("threads", [1, 2])
def test_lightning_attention_matches_quadratic_form(rng, algorithm, block_size, threads):
    q, k, v = qkv(rng, b=2, L=45, h=4, k=6, v=16)
    slopes = tokenmix.tnl_slopes(4, 1, 3)
    S0 = rng.standard_normal((2, 4, 6, 16), dtype=np.float32)
    out, state = tokenmix.lightning_attention(q, k, v, slopes=slopes, initial_state=S0, algorithm=algorithm,
                                              block_size=block_size, threads=threads)
    # decay matrix λ^(t-s): G[t] = -slope·(t + 1)
    G = -np.arange(1, 46, dtype=np.float64)[None, :, None] * np.asarray(slopes, np.float64)[None, None, :]
    ref, ref_state = quadratic_torch(q, k, v, np.broadcast_to(G, (2, 45, 4)), 1.0, S0)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(state, ref_state, rtol=1e-4, atol=1e-4)


def test_lightning_attention_no_slopes_and_scale(rng):
    q, k, v = qkv(rng, b=1, L=19, h=2, k=3, v=5)
    out, state = tokenmix.lightning_attention(q, k, v, scale=0.25)
    ref, ref_state = recurrence_torch(q, k, v, np.zeros((1, 19, 2)), 0.25)
    np.testing.assert_allclose(out, ref, **TOL)
    np.testing.assert_allclose(state, ref_state, **TOL)


def test_lightning_attention_step_and_state_carry(rng):
    q, k, v = qkv(rng, b=2, L=13, h=3, k=4, v=5)
    slopes = tokenmix.fla_lightning_slopes(3, 0, 2)  # head 0: no decay
    full, full_state = tokenmix.lightning_attention(q, k, v, slopes=slopes, algorithm="chunked", block_size=4)
    pre, state = tokenmix.lightning_attention(q[:, :6], k[:, :6], v[:, :6], slopes=slopes)
    outs = [pre]
    for t in range(6, 13):
        before = state.copy()
        o, new_state = tokenmix.lightning_attention_step(state, q[:, t], k[:, t], v[:, t], slopes=slopes)
        np.testing.assert_array_equal(state, before)
        outs.append(o[:, None])
        state = new_state
    np.testing.assert_allclose(np.concatenate(outs, 1), full, **TOL)
    np.testing.assert_allclose(state, full_state, **TOL)
    ref, ref_state = recurrence_torch(q, k, v, per_head_log_decay(-np.asarray(slopes, np.float64), 2, 13), 1.0)
    np.testing.assert_allclose(full, ref, **TOL)
    np.testing.assert_allclose(full_state, ref_state, **TOL)


# ---- retention --------------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["chunked", "recurrent"])
def test_retention_matches_quadratic_form(rng, algorithm):
    q, k, v = qkv(rng, b=1, L=33, h=4, k=8, v=16)
    S0 = rng.standard_normal((1, 4, 8, 16), dtype=np.float32)
    out, state = tokenmix.retention(q, k, v, initial_state=S0, algorithm=algorithm, threads=2)
    gamma = np.array([1 - 2.0 ** (-5 - h) for h in range(4)])
    G = np.arange(1, 34, dtype=np.float64)[None, :, None] * np.log(gamma)[None, None, :]
    ref, ref_state = quadratic_torch(q, k, v, G, 1 / math.sqrt(8), S0)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(state, ref_state, rtol=1e-4, atol=1e-4)


# ---- linear attention -------------------------------------------------------------------------------

def phi_torch(x, feature_map):
    x = t64(x)
    return {"identity": x, "elu_plus_one": F.elu(x) + 1, "relu": F.relu(x)}[feature_map]


def linear_attention_torch(q, k, v, feature_map, causal, normalize, scale, eps=1e-10, S0=None, z0=None):
    """Katharopoulos et al.'s linear attention written out per token (cumulative sums for causal)."""
    q, k, v = phi_torch(q, feature_map), phi_torch(k, feature_map), t64(v)
    kv = k[..., :, None] * v[..., None, :]  # [B, L, H, K, V]
    if causal:
        S = torch.cumsum(kv, 1) + (0 if S0 is None else t64(S0)[:, None])
        z = torch.cumsum(k, 1) + (0 if z0 is None else t64(z0)[:, None])
    else:
        S = kv.sum(1, keepdim=True).expand_as(kv)
        z = k.sum(1, keepdim=True).expand_as(k)
    out = scale * (q[..., None, :] @ S)[..., 0, :]
    if normalize:
        out = out / (scale * (q * z).sum(-1, keepdim=True) + eps)
    return out.numpy(), S[:, -1].numpy(), z[:, -1].numpy()


# (no normalize with the identity map: its denominator can vanish)
@pytest.mark.parametrize("feature_map,normalize",
                         [("identity", False), ("elu_plus_one", False), ("relu", False), ("elu_plus_one", True),
                          ("relu", True)])
@pytest.mark.parametrize("causal", [True, False])
def test_linear_attention_matches_torch(rng, feature_map, causal, normalize):
    q, k, v = qkv(rng, b=2, L=29, h=3, k=5, v=11)
    out, state, z = tokenmix.linear_attention(q, k, v, causal=causal, feature_map=feature_map, normalize=normalize,
                                              threads=2)
    ref, ref_state, ref_z = linear_attention_torch(q, k, v, feature_map, causal, normalize, 1 / math.sqrt(5))
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(state, ref_state, rtol=1e-4, atol=1e-4)
    if normalize:
        np.testing.assert_allclose(z, ref_z, rtol=1e-4, atol=1e-4)
    else:
        assert z is None


@pytest.mark.parametrize("algorithm", ["chunked", "recurrent"])
def test_linear_attention_state_and_normalizer_carry(rng, algorithm):
    q, k, v = qkv(rng, b=1, L=40, h=2, k=4, v=16)
    kw = dict(feature_map="elu_plus_one", normalize=True, scale=0.7, algorithm=algorithm)
    full, full_state, full_z = tokenmix.linear_attention(q, k, v, **kw)
    a, sa, za = tokenmix.linear_attention(q[:, :17], k[:, :17], v[:, :17], **kw)
    b, sb, zb = tokenmix.linear_attention(q[:, 17:], k[:, 17:], v[:, 17:], initial_state=sa, initial_normalizer=za, **kw)
    np.testing.assert_allclose(np.concatenate([a, b], 1), full, **TOL)
    np.testing.assert_allclose(sb, full_state, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(zb, full_z, rtol=1e-4, atol=1e-4)
    ref, _, _ = linear_attention_torch(q[:, 17:], k[:, 17:], v[:, 17:], "elu_plus_one", True, True, 0.7, S0=sa, z0=za)
    np.testing.assert_allclose(b, ref, **TOL)


# ---- bad input --------------------------------------------------------------------------------------

def test_bad_input_raises_value_error(rng):
    q, k, v = qkv(rng, b=1, L=6, h=2, k=3, v=4)
    with pytest.raises(ValueError, match=r"simple_gla: q has 3 dimensions .*expected 4: \[B, L, H, K\]"):
        tokenmix.simple_gla(q[0], k, v)
    with pytest.raises(ValueError, match=r"simple_gla: k has shape \[1, 5, 2, 3\], expected \[B=1, L=6, H=2, K=3\]"):
        tokenmix.simple_gla(q, k[:, :5], v)
    with pytest.raises(ValueError, match=r"simple_gla: pass g \(per token\) or g_gamma \(per head\), not both"):
        tokenmix.simple_gla(q, k, v, g=np.zeros((1, 6, 2)), g_gamma=np.zeros(2))
    with pytest.raises(ValueError, match=r"simple_gla: algorithm must be 'auto_select', 'chunked' or 'recurrent'"):
        tokenmix.simple_gla(q, k, v, algorithm="fast")
    with pytest.raises(ValueError, match=r"linear_attention: feature_map must be 'identity', 'elu_plus_one' or 'relu'"):
        tokenmix.linear_attention(q, k, v, feature_map="softmax")
    with pytest.raises(ValueError, match=r"linear_attention: initial_state / initial_normalizer continue a causal"):
        tokenmix.linear_attention(q, k, v, causal=False, initial_state=np.zeros((1, 2, 3, 4)))
    with pytest.raises(ValueError, match=r"lightning_attention: slopes\[1\] is -1, expected a finite slope >= 0"):
        tokenmix.lightning_attention(q, k, v, slopes=[0.5, -1.0])
    with pytest.raises(ValueError, match=r"lightning_attention_step: state has shape \[1, 2, 3, 5\], expected "
                                         r"\[B=1, H=2, K=3, V=4\]"):
        tokenmix.lightning_attention_step(np.zeros((1, 2, 3, 5)), q[:, 0], k[:, 0], v[:, 0])
    with pytest.raises(ValueError, match=r"simple_gla_step: g has shape \[2, 1\], expected \[B=1, H=2\]"):
        tokenmix.simple_gla_step(np.zeros((1, 2, 3, 4)), q[:, 0], k[:, 0], v[:, 0], g=np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"retention: initial_state has 3 dimensions"):
        tokenmix.retention(q, k, v, initial_state=np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"tnl_slopes: H 8, layer 4 of 4, expected H >= 1 and 0 <= layer < num_layers"):
        tokenmix.tnl_slopes(8, 4, 4)
    with pytest.raises(ValueError, match=r"threads must be >= 1"):
        tokenmix.retention(q, k, v, threads=0)
    with pytest.raises(TypeError):
        tokenmix.simple_gla(q, k, v, None)  # g is keyword-only
