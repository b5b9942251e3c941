#!/usr/bin/env python3
"""Fixtures for tests/linear/linear_fixture_test.cpp: the linear-attention family (Lightning Attention,
simple GLA, retention, linear attention with a feature map and normaliser) computed in PyTorch (float64,
from float32 inputs) by our own transcriptions of the PUBLIC reference code named below. Nothing is
imported from those projects (they need Triton / CUDA); each formula is re-written here in our own
words. Every case is computed by two independent formulations that must agree to 1e-12 (relative to
the output's largest entry) before anything is written.

SOURCES TRANSCRIBED (repository, file, function)
  OpenNLPLab/lightning-attention
    lightning_attn/utils/utils.py          _build_slope_tensor / get_slopes (ALiBi slopes; the non-power-
                                           of-two rule: slopes of the next lower power of two, then every
                                           other slope of twice that power)                 -> get_slopes
    examples/module/tnl_attn.py            TnlAttention.__init__: slope_rate = _build_slope_tensor(H)
                                           * (1 - layer_idx / (num_layers - 1) + 1e-5)  (a float32 tensor
                                           times a Python float: float32 arithmetic)          -> tnl_slopes
    lightning_attn/ops/torch/linear_attention.py   get_mask / get_full_mask / linear_attn: the quadratic
                                           torch reference, layout [b, h, n, d]:
                                           o = ((Q Kᵀ) ⊙ M) V, M[t, s] = exp(-slope·(t - s)) for s <= t
                                           else 0; no scale, no normaliser     -> opennlplab_linear_attn
  fla-org/flash-linear-attention
    fla/ops/simple_gla/naive.py            naive_recurrent_simple_gla (heads-last in, q·scale, S = h0,
                                           S = exp(g_t)·S + k_tᵀ v_t, o_t = q_t S, returns the final S),
                                           naive_chunk_simple_gla, naive_parallel_simple_gla
                                                      -> fla_recurrent_simple_gla / fla_chunk_simple_gla /
                                                         fla_parallel_simple_gla
    fla/ops/retention/naive.py             naive_retention (heads-FIRST [b, h, n, d]; decay per head
                                           log2(1 - 2^(-5-h)), mask 2^((i-j)·log2 γ)·[i >= j], q·d^-0.5;
                                           no state)                                   -> fla_naive_retention
    fla/ops/retention/chunk.py             chunk_retention: g_gamma = log(1 - 2^(-5 - h)) in float32,
                                           then chunk_simple_gla(g_gamma=...)        -> fla_retention_g_gamma
    fla/ops/lightning_attn/chunk.py        chunk_lightning_attn: g_gamma = -(8/H·(1 - layer_idx/num_layers))
                                           ·h, h = 0..H-1, in float32, then chunk_simple_gla; scale
                                           default K^-0.5                            -> fla_lightning_g_gamma
    fla/ops/linear_attn/naive.py           naive_recurrent_linear_attn (S = h0 + Σ k_sᵀ v_s, o_t =
                                           (q_t·scale) S_t, then normalize_output(q·scale, k, o))
    fla/ops/linear_attn/utils.py           normalize_output (older): o / ((q·scale)·cumsum_t(k) + 1e-10);
                                           normalize_with_z_state (newer): the same with cumsum_t(k) + z_init
    fla/ops/linear_attn/chunk.py           chunk_linear_attn(normalize=True default): chunk_simple_gla
                                           (no decay) then the normaliser above; newest version takes
                                           initial_state = (kv_state [B,H,K,V], z_state [B,1,H,K])
                                                                           -> fla_recurrent_linear_attn
  idiap/fast-transformers
    fast_transformers/attention/linear_attention.py   elu_feature_map (elu(x) + 1) and LinearAttention
                                           (NON-causal: KV = Σ_s φ(k_s)ᵀ v_s, Z = 1/(φ(q)·Σ_s φ(k_s) + eps),
                                           eps = 1e-6, no scale)          -> fast_transformers_linear_attn
                                           (fla has no non-causal linear attention op, hence this source)

CASES (tests/data/linear/<case>/; all tensors heads-last as tokenmix: q, k [B, L, H, K], v [B, L, H, V],
out [B, L, H, V], states [B, H, K, V], g [B, L, H], normaliser [B, H, K]; inputs float32, outputs float32
of the float64 results; params.txt holds the shapes and the mapping below as "key value" lines)

  lightning_tnl     OpenNLPLab torch reference, TNL slopes for H 6 (non-power-of-two ALiBi), layer 3 of 8,
                    B 2, L 37, K 16, V 20, scale 1 (the reference has none). Inputs drawn [b, h, n, d]
                    and saved transposed to [B, L, H, K]. Also saved: slopes_base = get_slopes(6) as
                    float32 (torch.tensor of the Python list), slopes = slopes_base * factor in float32
                    exactly as TnlAttention does (factor = 1 - 3/7 + 1e-5); the reference mask uses these
                    float32 slopes (widened to float64).
                    -> linear::lightning_attention(q, k, v, {.slopes = slopes, .scale = 1 (the default)})
                       with slopes = linear::tnl_slopes(6, 3, 8) (must equal the saved slopes to ~1 ulp:
                       tokenmix multiplies in double and rounds once) and alibi_slopes(6) = slopes_base.
                    (OpenNLPLab's Triton lightning_attn_func would reject this d = 16: it asserts
                    `16 % d` is non-zero; the torch reference takes any d.)  No state output (OpenNLPLab
                    has none).
  simple_gla        fla naive_recurrent_simple_gla: B 2, L 29, H 3, K 8, V 16, g = logsigmoid(N(0,1))
                    per token, scale None (= K^-0.5), initial_state h0 [B, H, K, V], output_final_state.
                    -> linear::simple_gla(q, k, v, {.g = g, .initial_state = h0}) (scale unset = K^-0.5)
                       out, final_state.   Cross-check: fla_chunk_simple_gla (chunk 8, padded).
  retention         fla naive_retention semantics (decay γ_h = 1 - 2^(-5-h), q·K^-0.5): B 1, L 33, H 4,
                    K 16, V 16. Inputs drawn [b, h, n, d] (naive_retention is heads-first), saved heads-
                    last. final_state: what chunk_retention(output_final_state=True) returns (=
                    simple_gla with g_gamma = log γ, from zero state). g_gamma saved = fla's float32
                    formula.   -> linear::retention(q, k, v) (scale unset = K^-0.5), out, final_state;
                    linear::retention_log_decay(4) vs g_gamma.
                    Cross-check: fla_recurrent_simple_gla with g = log γ per head.
  lightning_fla     fla chunk_lightning_attn(layer_idx 1, num_layers 4), H 4: g_gamma = -(8/4·(1 - 1/4))·h
                    = [0, -1.5, -3, -4.5] (head 0 has NO decay), scale None (= K^-0.5), initial_state h0,
                    output_final_state; B 1, L 30, K 12, V 12. Computed as chunk_simple_gla(g_gamma), i.e.
                    fla_recurrent_simple_gla with g broadcast per head.
                    -> linear::lightning_attention(q, k, v, {.slopes = -g_gamma, .scale = 1/sqrt(12),
                       .initial_state = h0}) with slopes = linear::fla_lightning_slopes(4, 1, 4)
                       (NB tokenmix's LightningOptions.scale defaults to 1, fla's to K^-0.5: pass it).
                    Cross-check: fla_parallel_simple_gla + the decayed initial-state term.
  linear_causal     causal linear attention, φ = elu + 1 on q and k (applied by the caller, as fla's layers
                    do), normalize=True, scale None (= K^-0.5): fla_recurrent_linear_attn on φ(q), φ(k)
                    with the normaliser den_t = (scale·φ(q_t))·Σ_{s<=t} φ(k_s) + 1e-10; no initial state.
                    B 2, L 26, H 2, K 8, V 10. final_state (kv), final_normalizer = Σ_s φ(k_s).
                    -> linear::linear_attention(q, k, v, {.causal = true, .feature_map = elu_plus_one,
                       .normalize = true}) (eps 1e-10 and scale K^-0.5 are tokenmix's defaults).
                    Cross-check: the quadratic masked form.
  linear_causal_state  as linear_causal plus the newest fla's initial_state = (kv h0, z0) with
                    z0 [B, H, K] = a positive running key sum (fla stores it [B, 1, H, K]); den uses
                    cumsum(φ(k)) + z0.  B 1, L 19, H 2, K 8, V 10.
                    -> .initial_state = h0, .initial_normalizer = z0. (The older fla, normalize_output
                    without z_init, equals tokenmix with initial_state and NO initial_normalizer.)
  linear_noncausal  fast-transformers LinearAttention (non-causal, φ = elu + 1, eps 1e-6, no scale):
                    B 2, L 23, H 2, K 8, V 10.
                    -> linear::linear_attention(q, k, v, {.causal = false, .feature_map = elu_plus_one,
                       .normalize = true, .eps = 1e-6, .scale = 1}); final_state = Σ_s φ(k_s)ᵀ v_s,
                       final_normalizer = Σ_s φ(k_s).   Cross-check: the dense form (φQ φKᵀ) V / rowsum.

Run with Debian's python3-torch:  /usr/bin/python3 tests/data/make_linear_fixture.py
"""
import math
import os
import shutil

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float32)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'linear')


# ---- OpenNLPLab/lightning-attention -----------------------------------------------------------------

def get_slopes(n):
    """ALiBi slopes (lightning_attn/utils/utils.py get_slopes), as Python floats."""
    def power_of_two(m):
        first = 2.0 ** (-(2.0 ** -(math.log2(m) - 3)))
        return [first * first ** i for i in range(m)]
    if math.log2(n).is_integer():
        return power_of_two(n)
    lower = 2 ** math.floor(math.log2(n))
    return power_of_two(lower) + get_slopes(2 * lower)[0::2][:n - lower]


def tnl_slopes(H, layer, num_layers):
    """(slopes_base, slopes): float32 tensors [H], as _build_slope_tensor and TnlAttention compute them."""
    base = torch.tensor(get_slopes(H))  # float32, as torch.tensor(list of floats)
    return base, base * (1 - layer / (num_layers - 1) + 1e-5)  # float32 tensor times a Python float


def opennlplab_linear_attn(q, k, v, slopes):
    """lightning_attn/ops/torch/linear_attention.py linear_attn in float64: [b, h, n, d] -> [b, h, n, e]."""
    n = q.shape[2]
    t = torch.arange(n, dtype=torch.float64)
    dist = t[:, None] - t[None, :]  # t - s
    masks = []
    for s in slopes.tolist():  # get_full_mask: one mask per head
        m = torch.exp(-s * dist)
        masks.append(torch.where(dist >= 0, m, torch.zeros_like(m)))  # exp(-inf) = 0 above the diagonal
    mask = torch.stack(masks)  # [h, n, n]
    return ((q @ k.transpose(2, 3)) * mask) @ v


# ---- fla-org/flash-linear-attention -----------------------------------------------------------------

def fla_recurrent_simple_gla(q, k, v, g, scale=None, h0=None):
    """naive_recurrent_simple_gla: q, k [B,T,H,K], v [B,T,H,V], g [B,T,H] -> (o [B,T,H,V], S [B,H,K,V])."""
    q, k, v, g = (x.transpose(1, 2) for x in (q, k, v, g))  # heads first
    B, H, T, K = q.shape
    if scale is None:
        scale = K ** -0.5
    q = q * scale
    S = torch.zeros(B, H, K, v.shape[-1], dtype=q.dtype)
    if h0 is not None:
        S = S + h0
    o = torch.zeros_like(v)
    for t in range(T):
        S = S * g[:, :, t].exp()[..., None, None] + k[:, :, t, :, None] * v[:, :, t, None, :]
        o[:, :, t] = (q[:, :, t, :, None] * S).sum(-2)
    return o.transpose(1, 2), S


def fla_chunk_simple_gla(q, k, v, g, scale=None, h0=None, chunk=8):
    """naive_chunk_simple_gla (padded to a whole number of chunks; padding has g = 0, k = 0)."""
    q, k, v, g = (x.transpose(1, 2) for x in (q, k, v, g))
    B, H, T, K = q.shape
    V = v.shape[-1]
    if scale is None:
        scale = K ** -0.5
    pad = (chunk - T % chunk) % chunk
    q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
    g = F.pad(g, (0, pad))
    n = (T + pad) // chunk
    q = (q * scale).reshape(B, H, n, chunk, K)
    k = k.reshape(B, H, n, chunk, K)
    v = v.reshape(B, H, n, chunk, V)
    G = g.reshape(B, H, n, chunk).cumsum(-1)  # within-chunk cumulative log decay
    S = torch.zeros(B, H, K, V, dtype=q.dtype) if h0 is None else h0.clone()
    o = torch.zeros_like(v)
    causal = torch.ones(chunk, chunk, dtype=torch.bool).tril()
    for c in range(n):
        Gc = G[:, :, c]
        D = torch.where(causal, (Gc[..., :, None] - Gc[..., None, :]).clamp(max=0).exp(), torch.zeros(()))
        o[:, :, c] = (q[:, :, c] @ k[:, :, c].transpose(-1, -2) * D) @ v[:, :, c] \
            + (q[:, :, c] * Gc[..., None].exp()) @ S
        last = Gc[..., -1:]
        S = S * last[..., None].exp() + (k[:, :, c] * (last - Gc).exp()[..., None]).transpose(-1, -2) @ v[:, :, c]
    o = o.reshape(B, H, n * chunk, V)[:, :, :T]
    return o.transpose(1, 2), S


def fla_parallel_simple_gla(q, k, v, g, scale=None, h0=None):
    """naive_parallel_simple_gla, plus the initial-state term diag(exp(G_t)) q_t h0 it leaves out."""
    q, k, v, g = (x.transpose(1, 2) for x in (q, k, v, g))
    K = q.shape[-1]
    if scale is None:
        scale = K ** -0.5
    G = g.cumsum(-1)
    T = q.shape[2]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    D = torch.where(causal, (G[..., :, None] - G[..., None, :]).clamp(max=0).exp(), torch.zeros(()))
    o = (q @ k.transpose(-1, -2) * scale * D) @ v
    if h0 is not None:
        o = o + (q * scale * G[..., None].exp()) @ h0
    return o.transpose(1, 2)


def fla_retention_g_gamma(H):
    """chunk_retention's per-head log decay, float32 as fla computes it."""
    return (1 - torch.tensor(2.0).pow(-5.0 - torch.tensor(range(H), dtype=torch.float))).log()


def fla_naive_retention(q, k, v):
    """naive_retention (fla/ops/retention/naive.py) in float64: heads-first [b, h, n, d]."""
    _, H, n, d = q.shape
    log2_gamma = (1 - torch.tensor(2.0, dtype=torch.float64).pow(
        -5.0 - torch.arange(H, dtype=torch.float64))).log2()
    t = torch.arange(n, dtype=torch.float64)
    decay = torch.exp2((t[:, None] - t[None, :]) * log2_gamma.view(-1, 1, 1)) * (t[:, None] >= t[None, :])
    scores = torch.einsum('bhqd,bhkd,hqk->bhqk', q * d ** -0.5, k, decay)
    return torch.einsum('bhqk,bhkd->bhqd', scores, v)


def fla_lightning_g_gamma(H, layer_idx, num_layers):
    """chunk_lightning_attn's per-head log decay (float32, a Python float times a float tensor)."""
    return -(8 / H * (1 - layer_idx / num_layers)) * torch.tensor(range(H), dtype=torch.float)


def fla_recurrent_linear_attn(q, k, v, scale=None, h0=None, z0=None, eps=1e-10):
    """naive_recurrent_linear_attn + normalize (normalize_output / normalize_with_z_state), heads-last.
    q, k are already feature-mapped. Returns (o, S_final, z_final) with z [B, H, K]."""
    B, T, H, K = q.shape
    if scale is None:
        scale = K ** -0.5
    S = torch.zeros(B, H, K, v.shape[-1], dtype=q.dtype)
    if h0 is not None:
        S = S + h0
    o = torch.zeros_like(v)
    for t in range(T):
        S = S + torch.einsum('bhk,bhv->bhkv', k[:, t], v[:, t])
        o[:, t] = torch.einsum('bhkv,bhk->bhv', S, q[:, t] * scale)
    k_cum = k.cumsum(1)  # over time (dim 1 of [B, T, H, K])
    if z0 is not None:
        k_cum = k_cum + z0[:, None]  # fla's z_state [B, 1, H, K]
    den = (q * scale * k_cum).sum(-1, keepdim=True) + eps
    return o / den, S, k_cum[:, -1]


def quadratic_linear_attn(q, k, v, scale, h0=None, z0=None, eps=1e-10):
    """Cross-check of the causal normalised form: masked (q kᵀ) V over all pairs."""
    qh, kh, vh = (x.transpose(1, 2) for x in (q, k, v))
    T = q.shape[1]
    A = (qh @ kh.transpose(-1, -2) * scale).tril()
    num = A @ vh
    den = A.sum(-1, keepdim=True)
    if h0 is not None:
        num = num + qh * scale @ h0
    if z0 is not None:
        den = den + (qh * scale * z0[:, :, None]).sum(-1, keepdim=True)
    return (num / (den + eps)).transpose(1, 2)


# ---- idiap/fast-transformers ------------------------------------------------------------------------

def elu_feature_map(x):
    return F.elu(x) + 1


def fast_transformers_linear_attn(Q, K, V, eps=1e-6):
    """LinearAttention.forward (all-ones masks), [N, L, H, D] with Q, K feature-mapped already."""
    KV = torch.einsum('nshd,nshm->nhmd', K, V)
    Z = 1 / (torch.einsum('nlhd,nhd->nlh', Q, K.sum(dim=1)) + eps)
    return torch.einsum('nlhd,nhmd,nlh->nlhm', Q, KV, Z), KV.transpose(-1, -2), K.sum(dim=1)


# ---- writing ------------------------------------------------------------------------------------

def f32(*shape, scale=1.0):
    """float32 N(0, scale²) values, returned widened to float64 (the exact values that are saved)."""
    return (torch.randn(*shape) * scale).to(torch.float32).to(torch.float64)


def save(folder, name, t):
    np.save(os.path.join(folder, name + '.npy'), np.ascontiguousarray(t.detach().numpy().astype(np.float32)))


def agree(a, b, what):
    err = (a - b).abs().max().item() / max(b.abs().max().item(), 1e-300)
    assert err < 1e-12, f'{what}: the two formulations differ by {err:.3g} (relative to max |ref|)'


def write_case(name, tensors, params):
    folder = os.path.join(ROOT, name)
    os.makedirs(folder)
    for key, t in tensors.items():
        save(folder, key, t)
    with open(os.path.join(folder, 'params.txt'), 'w') as f:
        for key, value in params:
            f.write(f'{key} {value}\n')


def case_lightning_tnl():
    torch.manual_seed(101)
    B, L, H, K, V, layer, layers = 2, 37, 6, 16, 20, 3, 8
    q, k = f32(B, H, L, K, scale=0.5), f32(B, H, L, K, scale=0.5)  # OpenNLPLab layout [b, h, n, d]
    v = f32(B, H, L, V)
    base, slopes = tnl_slopes(H, layer, layers)
    out = opennlplab_linear_attn(q, k, v, slopes.to(torch.float64))  # [b, h, n, e]
    to_last = lambda x: x.transpose(1, 2).contiguous()
    g = (-slopes.to(torch.float64)).view(1, 1, H).expand(B, L, H)
    out2, _ = fla_recurrent_simple_gla(to_last(q), to_last(k), to_last(v), g, scale=1.0)
    agree(out2, to_last(out), 'lightning_tnl: OpenNLPLab quadratic vs fla recurrent with g_gamma = -slope')
    write_case('lightning_tnl',
               {'q': to_last(q), 'k': to_last(k), 'v': to_last(v), 'out': to_last(out),
                'slopes_base': base, 'slopes': slopes},
               [('op', 'lightning_attention'), ('source', 'OpenNLPLab/lightning-attention ops/torch/linear_attention.py'),
                ('shape', f'B {B} L {L} H {H} K {K} V {V}'), ('slopes', f'tnl H {H} layer {layer} num_layers {layers}'),
                ('layer', layer), ('num_layers', layers), ('scale', '1'), ('initial_state', 0), ('final_state', 0)])


def case_simple_gla():
    torch.manual_seed(202)
    B, L, H, K, V = 2, 29, 3, 8, 16
    q, k, v = f32(B, L, H, K), f32(B, L, H, K), f32(B, L, H, V)
    g = F.logsigmoid(f32(B, L, H)).to(torch.float32).to(torch.float64)  # the saved float32 g is the input
    h0 = f32(B, H, K, V)
    out, S = fla_recurrent_simple_gla(q, k, v, g, None, h0)
    out2, S2 = fla_chunk_simple_gla(q, k, v, g, None, h0, chunk=8)
    agree(out2, out, 'simple_gla out: recurrent vs chunk')
    agree(S2, S, 'simple_gla final state: recurrent vs chunk')
    agree(fla_parallel_simple_gla(q, k, v, g, None, h0), out, 'simple_gla out: recurrent vs parallel')
    write_case('simple_gla', {'q': q, 'k': k, 'v': v, 'g': g, 'initial_state': h0, 'out': out, 'final_state': S},
               [('op', 'simple_gla'), ('source', 'fla ops/simple_gla/naive.py naive_recurrent_simple_gla'),
                ('shape', f'B {B} L {L} H {H} K {K} V {V}'), ('g', 'per-token logsigmoid'),
                ('scale', 'default'), ('initial_state', 1), ('final_state', 1)])


def case_retention():
    torch.manual_seed(303)
    B, L, H, K, V = 1, 33, 4, 16, 16
    q, k, v = f32(B, H, L, K), f32(B, H, L, K), f32(B, H, L, V)  # naive_retention is heads-first
    out = fla_naive_retention(q, k, v)
    to_last = lambda x: x.transpose(1, 2).contiguous()
    log_gamma = torch.log1p(-torch.pow(2.0, -5.0 - torch.arange(H, dtype=torch.float64)))
    g = log_gamma.view(1, 1, H).expand(B, L, H)
    out2, S = fla_recurrent_simple_gla(to_last(q), to_last(k), to_last(v), g)
    agree(out2, to_last(out), 'retention: naive_retention vs chunk_retention (recurrent simple_gla)')
    write_case('retention', {'q': to_last(q), 'k': to_last(k), 'v': to_last(v), 'out': to_last(out),
                             'final_state': S, 'g_gamma': fla_retention_g_gamma(H)},
               [('op', 'retention'), ('source', 'fla ops/retention/naive.py naive_retention + chunk.py chunk_retention'),
                ('shape', f'B {B} L {L} H {H} K {K} V {V}'), ('scale', 'default'), ('initial_state', 0),
                ('final_state', 1)])


def case_lightning_fla():
    torch.manual_seed(404)
    B, L, H, K, V, layer, layers = 1, 30, 4, 12, 12, 1, 4
    q, k, v = f32(B, L, H, K), f32(B, L, H, K), f32(B, L, H, V)
    h0 = f32(B, H, K, V)
    g_gamma = fla_lightning_g_gamma(H, layer, layers)
    g = g_gamma.to(torch.float64).view(1, 1, H).expand(B, L, H)
    out, S = fla_recurrent_simple_gla(q, k, v, g, None, h0)
    agree(fla_parallel_simple_gla(q, k, v, g, None, h0), out, 'lightning_fla: recurrent vs parallel')
    write_case('lightning_fla', {'q': q, 'k': k, 'v': v, 'initial_state': h0, 'out': out, 'final_state': S,
                                 'g_gamma': g_gamma},
               [('op', 'lightning_attention'), ('source', 'fla ops/lightning_attn/chunk.py chunk_lightning_attn'),
                ('shape', f'B {B} L {L} H {H} K {K} V {V}'), ('slopes', f'fla H {H} layer {layer} num_layers {layers}'),
                ('layer', layer), ('num_layers', layers), ('scale', 'default'), ('initial_state', 1),
                ('final_state', 1)])


def case_linear_causal(name, seed, B, L, H, K, V, with_state):
    torch.manual_seed(seed)
    q, k, v = f32(B, L, H, K), f32(B, L, H, K), f32(B, L, H, V)
    fq, fk = elu_feature_map(q), elu_feature_map(k)
    h0 = f32(B, H, K, V) if with_state else None
    z0 = elu_feature_map(f32(B, H, K)) * 3 if with_state else None  # a running sum of positive φ(k)
    out, S, z = fla_recurrent_linear_attn(fq, fk, v, None, h0, z0)
    agree(quadratic_linear_attn(fq, fk, v, K ** -0.5, h0, z0), out, f'{name}: recurrent vs quadratic')
    tensors = {'q': q, 'k': k, 'v': v, 'out': out, 'final_state': S, 'final_normalizer': z}
    if with_state:
        tensors.update({'initial_state': h0, 'initial_normalizer': z0})
    write_case(name, tensors,
               [('op', 'linear_attention'), ('source', 'fla ops/linear_attn naive_recurrent_linear_attn + normalize'),
                ('shape', f'B {B} L {L} H {H} K {K} V {V}'), ('causal', 1), ('feature_map', 'elu_plus_one'),
                ('normalize', 1), ('eps', '1e-10'), ('scale', 'default'), ('initial_state', int(with_state)),
                ('final_state', 1)])


def case_linear_noncausal():
    torch.manual_seed(606)
    B, L, H, K, V = 2, 23, 2, 8, 10
    q, k, v = f32(B, L, H, K), f32(B, L, H, K), f32(B, L, H, V)
    fq, fk = elu_feature_map(q), elu_feature_map(k)
    out, S, z = fast_transformers_linear_attn(fq, fk, v, eps=1e-6)
    A = torch.einsum('blhk,bshk->bhls', fq, fk)
    dense = (torch.einsum('bhls,bshv->blhv', A, v) / (A.sum(-1).transpose(1, 2)[..., None] + 1e-6))
    agree(dense, out, 'linear_noncausal: fast-transformers vs dense')
    write_case('linear_noncausal', {'q': q, 'k': k, 'v': v, 'out': out, 'final_state': S, 'final_normalizer': z},
               [('op', 'linear_attention'), ('source', 'idiap/fast-transformers attention/linear_attention.py'),
                ('shape', f'B {B} L {L} H {H} K {K} V {V}'), ('causal', 0), ('feature_map', 'elu_plus_one'),
                ('normalize', 1), ('eps', '1e-6'), ('scale', '1'), ('initial_state', 0), ('final_state', 1)])


def main():
    torch.set_num_threads(1)
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    os.makedirs(ROOT)
    case_lightning_tnl()
    case_simple_gla()
    case_retention()
    case_lightning_fla()
    case_linear_causal('linear_causal', 505, 2, 26, 2, 8, 10, False)
    case_linear_causal('linear_causal_state', 515, 1, 19, 2, 8, 10, True)
    case_linear_noncausal()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ROOT) for f in fs)
    print(f'wrote {ROOT}: {total} bytes')


if __name__ == '__main__':
    main()
