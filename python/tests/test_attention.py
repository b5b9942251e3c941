"""tokenmix's attention bindings against independent PyTorch formulations written here (float64): a
dense masked softmax attention, the neighborhood window rule written from NATTEN's definition, banded
local attention and the block layouts' token rules; and the mapping of bad input to ValueError."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tokenmix

RTOL, ATOL = 1e-4, 1e-5


def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def randn(rng, *shape):
    return rng.standard_normal(shape, dtype=np.float32)


# ---- the dense reference ---------------------------------------------------------------------------


def dense_ref(q, k, v, scale=None, causal=False, q_offset=None, softcap=0.0, key_bias=None, row_scale=None,
              mask=None):
    """Masked softmax attention in float64. q [B, Lq, H, P], k [B, Lk, Hkv, P], v [B, Lk, Hkv, Pv];
    mask [Lq_total, Lk] or [H, Lq_total, Lk] (absolute query positions) or None. Returns (out, lse)."""
    q, k, v = t64(q), t64(k), t64(v)
    B, Lq, H, P = q.shape
    Lk, Hkv = k.shape[1], k.shape[2]
    g = H // Hkv
    k = k.repeat_interleave(g, dim=2)
    v = v.repeat_interleave(g, dim=2)
    scale = 1.0 / np.sqrt(P) if scale is None else scale
    off = Lk - Lq if q_offset is None else q_offset
    s = torch.einsum("bihp,bjhp->bhij", q, k) * scale
    if row_scale is not None:
        s = s * t64(row_scale)[..., None]
    if softcap > 0:
        s = softcap * torch.tanh(s / softcap)
    if key_bias is not None:
        kb = t64(key_bias)
        if kb.shape[1] not in (1, H):
            kb = kb.repeat_interleave(g, dim=1)
        s = s + kb[:, :, None, :]
    pos_i = torch.arange(Lq) + off
    allowed = torch.ones(H, Lq, Lk, dtype=torch.bool)
    if causal:
        allowed &= torch.arange(Lk)[None, None, :] <= pos_i[None, :, None]
    if mask is not None:
        m = torch.as_tensor(np.asarray(mask, dtype=bool))
        if m.dim() == 2:
            m = m[None]
        allowed &= m[:, off:off + Lq, :Lk]
    s = s.masked_fill(~allowed[None], float("-inf"))
    lse = torch.logsumexp(s, -1)
    p = torch.exp(s - lse[..., None]).nan_to_num(0.0)
    out = torch.einsum("bhij,bjhp->bihp", p, v)
    return out.numpy(), lse.numpy()


def check(got, ref):
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


def check_lse(got, ref):
    fin = np.isfinite(ref)
    assert np.array_equal(np.isfinite(got), fin)
    assert np.all(got[~fin] == -np.inf)
    np.testing.assert_allclose(got[fin], ref[fin], rtol=RTOL, atol=ATOL)


# ---- attention -------------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
def test_attention_matches_torch(rng, threads):
    q, k, v = randn(rng, 2, 19, 6, 12), randn(rng, 2, 19, 2, 12), randn(rng, 2, 19, 2, 7)
    out, lse = tokenmix.attention(q, k, v, threads=threads)
    assert out.dtype == np.float32 and out.shape == (2, 19, 6, 7) and lse.shape == (2, 6, 19)
    ref, ref_lse = dense_ref(q, k, v)
    check(out, ref)
    check_lse(lse, ref_lse)
    # causal, softcap, scale, per-kv-head key bias, row scale
    bias, rs = randn(rng, 2, 2, 19), np.abs(randn(rng, 2, 6, 19)) + 0.5
    out, lse = tokenmix.attention(q, k, v, causal=True, scale=0.4, softcap=3.0, key_bias=bias, row_scale=rs,
                                  threads=threads)
    ref, ref_lse = dense_ref(q, k, v, scale=0.4, causal=True, softcap=3.0, key_bias=bias, row_scale=rs)
    check(out, ref)
    check_lse(lse, ref_lse)


def test_attention_kv_cache_offsets_and_empty_rows(rng):
    q, k, v = randn(rng, 1, 5, 3, 8), randn(rng, 1, 23, 3, 8), randn(rng, 1, 23, 3, 8)
    # default q_offset = Lk - Lq (chunked prefill against a cache), shared key bias
    bias = randn(rng, 1, 1, 23)
    out, lse = tokenmix.attention(q, k, v, causal=True, key_bias=bias)
    ref, ref_lse = dense_ref(q, k, v, causal=True, key_bias=bias)
    check(out, ref)
    check_lse(lse, ref_lse)
    # more queries than keys: explicit q_offset; rows 0.. see key 0 only at position 0
    q2, k2, v2 = randn(rng, 1, 9, 2, 4), randn(rng, 1, 4, 1, 4), randn(rng, 1, 4, 1, 4)
    out, lse = tokenmix.attention(q2, k2, v2, causal=True, q_offset=0)
    ref, ref_lse = dense_ref(q2, k2, v2, causal=True, q_offset=0)
    check(out, ref)
    check_lse(lse, ref_lse)
    # decode step (Lq = 1), float64 Fortran-order inputs are converted
    q3 = np.asfortranarray(randn(rng, 2, 1, 4, 8).astype(np.float64))
    k3, v3 = randn(rng, 2, 17, 4, 8), randn(rng, 2, 17, 4, 5)
    out, _ = tokenmix.attention(q3, k3, v3, causal=True)
    check(out, dense_ref(q3, k3, v3, causal=True)[0])


def test_attention_bad_input(rng):
    q, k, v = randn(rng, 1, 5, 4, 8), randn(rng, 1, 5, 2, 8), randn(rng, 1, 5, 2, 8)
    with pytest.raises(ValueError, match=r"attention: q has 3 dimensions .*expected 4: \[B, Lq, H, P\]"):
        tokenmix.attention(q[0], k, v)
    with pytest.raises(ValueError, match=r"attention: q has 4 heads and k has 3"):
        tokenmix.attention(q, randn(rng, 1, 5, 3, 8), randn(rng, 1, 5, 3, 8))
    with pytest.raises(ValueError, match=r"attention: v has shape"):
        tokenmix.attention(q, k, v[:, :3])
    with pytest.raises(ValueError, match=r"attention: key_bias has shape"):
        tokenmix.attention(q, k, v, key_bias=np.zeros((1, 3, 5), np.float32))
    with pytest.raises(ValueError, match=r"attention: q_offset is -1"):
        tokenmix.attention(q, k, v, q_offset=-1)
    with pytest.raises(ValueError, match=r"attention: k must be a real-valued array"):
        tokenmix.attention(q, "k", v)
    with pytest.raises(ValueError, match=r"threads must be >= 1"):
        tokenmix.attention(q, k, v, threads=0)
    with pytest.raises(TypeError):
        tokenmix.attention(q, k, v, 0.5)  # options are keyword-only


# ---- block layouts and block-sparse attention --------------------------------------------------------


def rule_mask(L, rule, heads=1):
    i = np.arange(L)[:, None]
    j = np.arange(L)[None, :]
    return np.stack([np.broadcast_to(rule(h, i, j), (L, L)) for h in range(heads)])


def is_pow2_or_zero(d):
    return (d & (d - 1)) == 0


LAYOUT_CASES = {
    "sliding_window": (lambda L: tokenmix.sliding_window_layout(L, 8, 11, sinks=3),
                       lambda h, i, j: (j <= i) & ((i - j < 11) | (j < 3))),
    "causal": (lambda L: tokenmix.causal_layout(L, 16), lambda h, i, j: j <= i),
    "dense": (lambda L: tokenmix.dense_layout(L, L, 16), lambda h, i, j: np.ones_like(i - j, dtype=bool)),
    "power": (lambda L: tokenmix.power_layout(L, 4, 2, sink_blocks=1),
              lambda h, i, j: (j <= i) & (((i // 4 - j // 4) < 2) | is_pow2_or_zero(i // 4 - j // 4) | (j < 4))),
    "dilated": (lambda L: tokenmix.dilated_layout(L, 4, [(2, 1), (6, 3)]),
                lambda h, i, j: (j <= i) & ((i // 4 == j // 4)
                                            | ((i // 8 == j // 8))
                                            | ((i // 24 == j // 24) & ((i // 4 - j // 4) % 3 == 0)))),
}


@pytest.mark.parametrize("name", sorted(LAYOUT_CASES))
def test_layouts_and_block_sparse_attention(rng, name):
    L = 45
    make, rule = LAYOUT_CASES[name]
    layout = make(L)
    assert isinstance(layout, tokenmix.BlockLayout) and layout.q_length == L and layout.heads == 1
    mask = rule_mask(L, rule)
    np.testing.assert_array_equal(layout.to_mask(), mask)
    assert 0 < layout.block_density() <= 1
    q, k, v = randn(rng, 2, L, 4, 8), randn(rng, 2, L, 2, 8), randn(rng, 2, L, 2, 6)
    out, lse = tokenmix.block_sparse_attention(q, k, v, layout, threads=2)
    ref, ref_lse = dense_ref(q, k, v, mask=mask)
    check(out, ref)
    check_lse(lse, ref_lse)


def test_local_stride_layout_per_head_and_decode(rng):
    L, H, Hkv = 50, 4, 2
    layout = tokenmix.local_stride_layout(L, block=4, local_blocks=2, vert_stride=3, heads=H, kv_heads=Hkv,
                                          head_offset=1, dense_heads=1)
    assert layout.heads == H

    def rule(h, i, j):
        hk = h // (H // Hkv)
        qb, kb = i // 4, j // 4
        if hk >= Hkv - 1:
            keep = np.ones_like(qb - kb, dtype=bool)
        else:
            step = max(1, 3 // Hkv)
            keep = ((qb - kb) < 2) | ((kb + hk * step + 1) % 3 == 0)
        return (j <= i) & keep

    mask = rule_mask(L, rule, heads=H)
    np.testing.assert_array_equal(layout.to_mask(), mask)
    q, k, v = randn(rng, 1, L, H, 8), randn(rng, 1, L, Hkv, 8), randn(rng, 1, L, Hkv, 8)
    out, _ = tokenmix.block_sparse_attention(q, k, v, layout)
    check(out, dense_ref(q, k, v, mask=mask)[0])
    # the last rows of the same layout (chunked prefill / decode: q_offset = Lk - Lq by default)
    out, _ = tokenmix.block_sparse_attention(q[:, -3:], k, v, layout)
    check(out, dense_ref(q[:, -3:], k, v, mask=mask)[0])


def test_layout_union_intersection_and_from_mask(rng):
    L = 37
    a = tokenmix.sliding_window_layout(L, 8, 5)
    b = tokenmix.power_layout(L, 8, 1, sink_blocks=0)
    ma, mb = a.to_mask(), b.to_mask()
    np.testing.assert_array_equal(tokenmix.layout_union(a, b).to_mask(), ma | mb)
    np.testing.assert_array_equal(tokenmix.layout_intersection(a, b).to_mask(), ma & mb)
    mask = rng.random((3, L, L)) < 0.3
    layout = tokenmix.block_layout_from_mask(mask, q_block=8, k_block=4)
    assert layout.heads == 3 and layout.q_block == 8 and layout.k_block == 4
    np.testing.assert_array_equal(layout.to_mask(), mask)
    assert layout.allowed(1, 5, 7) == bool(mask[1, 5, 7])
    q, k, v = randn(rng, 1, L, 3, 8), randn(rng, 1, L, 3, 8), randn(rng, 1, L, 3, 8)
    out, lse = tokenmix.block_sparse_attention(q, k, v, layout, causal=True, softcap=2.0)
    ref, ref_lse = dense_ref(q, k, v, mask=mask, causal=True, softcap=2.0)
    check(out, ref)
    check_lse(lse, ref_lse)  # rows with no allowed key: out = 0, lse = -inf


def test_layout_bad_input(rng):
    with pytest.raises(ValueError, match=r"sliding_window_layout: window must be >= 1 token, got 0"):
        tokenmix.sliding_window_layout(16, 4, 0)
    with pytest.raises(ValueError, match=r"layout_union: layouts differ in blocks or lengths"):
        tokenmix.layout_union(tokenmix.causal_layout(16, 4), tokenmix.causal_layout(16, 8))
    with pytest.raises(ValueError, match=r"dilated_layout: at least one \(segment, dilation\) pair"):
        tokenmix.dilated_layout(16, 4, [])
    layout = tokenmix.causal_layout(16, 4)
    q = randn(rng, 1, 20, 2, 4)
    with pytest.raises(ValueError, match=r"block_sparse_attention: the layout covers 16 query and 16 key"):
        tokenmix.block_sparse_attention(q, q, q, layout)
    with pytest.raises(ValueError, match=r"block_sparse_attention: the layout has 3 head patterns"):
        tokenmix.block_sparse_attention(q[:, :16], q[:, :16], q[:, :16],
                                        tokenmix.block_layout_from_mask(np.ones((3, 16, 16)), q_block=4, k_block=4))


# ---- content-sparse attention -------------------------------------------------------------------------


def test_dynamic_mask_attention(rng):
    B, L, H, Hkv, P = 2, 21, 4, 2, 6
    q, k, v = randn(rng, B, L, H, P), randn(rng, B, L, Hkv, P), randn(rng, B, L, Hkv, P)
    W_dt, A = randn(rng, Hkv, Hkv * P) * 0.3, -np.abs(randn(rng, Hkv))
    bias = tokenmix.dma_key_bias(v, W_dt, A)
    dt = torch.einsum("bjc,hc->bhj", t64(v).reshape(B, L, Hkv * P), t64(W_dt))
    ref_bias = (t64(A)[None, :, None] * F.softplus(dt)).numpy()
    check(bias, ref_bias)
    window = 5
    for causal in (True, False):
        mask = np.zeros((B, H, L, L), dtype=bool)
        for b, h, i in itertools.product(range(B), range(H), range(L)):
            row = ref_bias[b, h // (H // Hkv)]
            cand = np.arange(i + 1) if causal else np.arange(L)
            keep = cand[np.argsort(-row[cand], kind="stable")[:window]]
            mask[b, h, i, keep] = True
        out, lse = tokenmix.dynamic_mask_attention(q, k, v, bias, window, block=8, causal=causal, threads=2)
        for b in range(B):
            ref, ref_lse = dense_ref(q[b:b + 1], k[b:b + 1], v[b:b + 1], key_bias=ref_bias[b:b + 1], mask=mask[b],
                                     causal=causal)
            check(out[b:b + 1], ref)
            check_lse(lse[b:b + 1], ref_lse)


def test_selective_attention_and_temperature(rng):
    B, L, H, Hkv, P = 2, 13, 4, 2, 8
    q, k, v = randn(rng, B, L, H, P), randn(rng, B, L, Hkv, P), randn(rng, B, L, Hkv, 5)
    f, alpha = randn(rng, B, H, L), randn(rng, H)
    tau = tokenmix.ssa_query_temperature(f, alpha, q_offset=3)
    pos = torch.arange(L, dtype=torch.float64) + 4
    ref_tau = torch.tanh(t64(f)) + 1 + torch.sigmoid(t64(alpha))[None, :, None] * torch.log(pos)
    check(tau, ref_tau.numpy())
    vt = np.abs(randn(rng, B, L, Hkv))
    v_before = v.copy()
    out, lse = tokenmix.selective_attention(q, k, v, tau, value_temperature=vt, causal=True)
    np.testing.assert_array_equal(v, v_before)  # the caller's values are not scaled in place
    ref, ref_lse = dense_ref(q, k, v * vt[..., None], causal=True, row_scale=tau)
    check(out, ref)
    check_lse(lse, ref_lse)


def test_block_topk_attention(rng):
    B, L, H, Hkv, P, blk = 2, 30, 2, 1, 4, 4
    q, k, v = randn(rng, B, L, H, P), randn(rng, B, L, Hkv, P), randn(rng, B, L, Hkv, P)
    top_k, sink, local = 2, 1, 2
    out, lse = tokenmix.block_topk_attention(q, k, v, block=blk, top_k=top_k, sink_blocks=sink, local_blocks=local)
    nb = -(-L // blk)
    for b in range(B):
        qm = np.stack([q[b, i * blk:(i + 1) * blk].astype(np.float64).mean(0) for i in range(nb)])  # [nb, H, P]
        km = np.stack([k[b, i * blk:(i + 1) * blk].astype(np.float64).mean(0) for i in range(nb)])
        mask = np.zeros((H, L, L), dtype=bool)
        for h in range(H):
            for qb in range(nb):
                kept = [kb for kb in range(qb + 1) if kb < sink or qb - kb < local]
                others = [kb for kb in range(qb + 1) if kb not in kept]
                scores = [qm[qb, h] @ km[kb, h // (H // Hkv)] for kb in others]
                kept += [others[t] for t in np.argsort(scores)[::-1][:top_k]]
                for kb in kept:
                    mask[h, qb * blk:(qb + 1) * blk, kb * blk:(kb + 1) * blk] = True
        mask &= np.tril(np.ones((L, L), dtype=bool))[None]
        ref, ref_lse = dense_ref(q[b:b + 1], k[b:b + 1], v[b:b + 1], mask=mask)
        check(out[b:b + 1], ref)
        check_lse(lse[b:b + 1], ref_lse)
        np.testing.assert_array_equal(
            tokenmix.block_topk_layout(q[b:b + 1], k[b:b + 1], block=blk, top_k=top_k, sink_blocks=sink,
                                       local_blocks=local).to_mask(), mask)


def test_hax_buckets_layout_and_attention(rng):
    B, L, d, bits, Dv, budget = 2, 26, 5, 2, 3, 6
    q2, k2, v = randn(rng, B, L, 1, d), randn(rng, B, L, 1, d), randn(rng, B, L, 1, Dv)
    R, scores = randn(rng, d, bits), randn(rng, B, L)

    def buckets(x):
        x = t64(x)
        y = x - x.mean(1, keepdim=True)
        y = y / y.norm(dim=-1, keepdim=True)
        return ((y @ t64(R)) > 0).long() @ (2 ** torch.arange(bits))

    qb, kb = buckets(q2[:, :, 0]).numpy(), buckets(k2[:, :, 0]).numpy()
    np.testing.assert_array_equal(tokenmix.hax_buckets(q2[:, :, 0], R), qb)
    out, lse = tokenmix.hax_attention(q2, k2, v, R, scores, budget, block=8)
    for b in range(B):
        mask = np.zeros((L, L), dtype=bool)
        for i in range(L):
            same = [j for j in range(i + 1) if kb[b, j] == qb[b, i]]
            mask[i, same[-(budget // 2):]] = True
            mask[i, np.argsort(-scores[b, :i + 1], kind="stable")[:budget - budget // 2]] = True
        np.testing.assert_array_equal(tokenmix.hax_layout(qb[b], kb[b], scores[b], budget, block=8).to_mask()[0], mask)
        ref, ref_lse = dense_ref(q2[b:b + 1], k2[b:b + 1], v[b:b + 1], mask=mask)
        check(out[b:b + 1], ref)
        check_lse(lse[b:b + 1], ref_lse)


def test_content_sparse_bad_input(rng):
    q, k, v = randn(rng, 1, 8, 2, 4), randn(rng, 1, 8, 2, 4), randn(rng, 1, 8, 2, 4)
    with pytest.raises(ValueError, match=r"dynamic_mask_attention: window must be >= 1 key, got 0"):
        tokenmix.dynamic_mask_attention(q, k, v, np.zeros((1, 2, 8), np.float32), 0)
    with pytest.raises(ValueError, match=r"dynamic_mask_attention: key_bias has shape"):
        tokenmix.dynamic_mask_attention(q, k, v, np.zeros((1, 1, 8), np.float32), 2)
    with pytest.raises(ValueError, match=r"block_topk_layout: top_k is 9 blocks"):
        tokenmix.block_topk_attention(q, k, v, block=4, top_k=9)
    with pytest.raises(ValueError, match=r"selective_attention: row_scale has shape"):
        tokenmix.selective_attention(q, k, v, np.ones((1, 2, 7), np.float32))
    with pytest.raises(ValueError, match=r"hax_attention: q2 has shape .*expected one head"):
        tokenmix.hax_attention(q, k, v, randn(rng, 4, 2), randn(rng, 1, 8), 4)


# ---- neighborhood attention ------------------------------------------------------------------------------


def axis_keys(i, L, K, d, s, causal):
    """Keys (global indices, ascending) and rpb indices of query i along one axis, NATTEN's rule:
    within the dilation group of i, the window starts at clamp(leader - K//2, 0, L_g - K), the leader
    being i itself for stride 1 (the middle of its stride group otherwise); causal windows end at i."""
    g, ii = i % d, i // d
    Lg = len(range(g, L, d))
    if causal:
        leader = min((ii // s) * s + s - 1, Lg - 1)
        lo, hi = max(leader - K + 1, 0), ii
    else:
        leader = min((ii // s) * s + s // 2, Lg - 1)
        lo = min(max(leader - K // 2, 0), Lg - K)
        hi = lo + K - 1
    return [(jj * d + g, (K - 1) + (jj - ii)) for jj in range(lo, hi + 1)]


def tup(x, R):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,) * R


def na_windows(extent, kernel_size, dilation, stride, causal):
    """For each query (flat index), the list of (slot, key flat index, rpb multi-index)."""
    R = len(extent)
    K, D, S, C = (tup(x, R) for x in (kernel_size, dilation, stride, causal))
    out = []
    for pos in itertools.product(*[range(e) for e in extent]):
        axes = [axis_keys(pos[a], extent[a], K[a], D[a], S[a], C[a]) for a in range(R)]
        entries = []
        for ns in itertools.product(*[range(len(ax)) for ax in axes]):
            slot = int(np.ravel_multi_index(ns, K))
            key = int(np.ravel_multi_index([axes[a][ns[a]][0] for a in range(R)], extent))
            entries.append((slot, key, tuple(axes[a][ns[a]][1] for a in range(R))))
        out.append(entries)
    return out


def na_logits_ref(q, k, kernel_size, dilation=1, stride=1, causal=False, rpb=None, scale=None):
    """[B, X.., H, S] logits in float64 (-inf at missing slots)."""
    q, k = t64(q), t64(k)
    extent = q.shape[1:-2]
    B, H, P = q.shape[0], q.shape[-2], q.shape[-1]
    T = int(np.prod(extent))
    g = H // k.shape[-2]
    qf = q.reshape(B, T, H, P)
    kf = k.reshape(B, T, -1, P).repeat_interleave(g, dim=2)
    scale = 1 / np.sqrt(P) if scale is None else scale
    S = int(np.prod(tup(kernel_size, len(extent))))
    logits = torch.full((B, T, H, S), float("-inf"), dtype=torch.float64)
    for t, entries in enumerate(na_windows(extent, kernel_size, dilation, stride, causal)):
        for slot, key, r in entries:
            val = scale * (qf[:, t] * kf[:, key]).sum(-1)
            if rpb is not None:
                val = val + t64(rpb)[(slice(None),) + r]
            logits[:, t, :, slot] = val
    return logits.reshape(*q.shape[:-1], S)


def na_av_ref(w, v, kernel_size, dilation=1, stride=1, causal=False):
    w, v = t64(w), t64(v)
    extent = w.shape[1:-2]
    B, H = w.shape[0], w.shape[-2]
    T = int(np.prod(extent))
    vf = v.reshape(B, T, v.shape[-2], v.shape[-1]).repeat_interleave(H // v.shape[-2], dim=2)
    wf = w.reshape(B, T, H, -1)
    out = torch.zeros(B, T, H, v.shape[-1], dtype=torch.float64)
    for t, entries in enumerate(na_windows(extent, kernel_size, dilation, stride, causal)):
        for slot, key, _ in entries:
            out[:, t] += wf[:, t, :, slot, None] * vf[:, key]
    return out.reshape(*w.shape[:-1], v.shape[-1]).numpy()


def na_ref(q, k, v, kernel_size, dilation=1, stride=1, causal=False, rpb=None, scale=None):
    logits = na_logits_ref(q, k, kernel_size, dilation, stride, causal, rpb, scale)
    lse = torch.logsumexp(logits, -1)
    return na_av_ref(torch.exp(logits - lse[..., None]).numpy(), v, kernel_size, dilation, stride, causal), lse.numpy()


NA_CASES = [
    # extent, kernel_size, dilation, stride, is_causal, rpb
    ((17,), 5, 1, 1, False, True),
    ((19,), 4, 2, 3, False, False),
    ((13,), 3, 2, 2, True, False),
    ((7, 9), (3, 5), (2, 1), (1, 2), False, True),
    ((8, 7), 3, 1, (1, 3), (True, False), False),
    ((5, 4, 6), (3, 2, 3), (1, 2, 1), 1, False, True),
    ((5, 4, 6), 2, 1, (2, 1, 2), (False, True, True), False),
]


@pytest.mark.parametrize("case", range(len(NA_CASES)))
def test_neighborhood_attention_matches_natten_rule(rng, case):
    extent, K, D, S, C, with_rpb = NA_CASES[case]
    R = len(extent)
    B, H, Hkv, P, Pv = 2, 4, 2, 6, 5
    q, k, v = randn(rng, B, *extent, H, P), randn(rng, B, *extent, Hkv, P), randn(rng, B, *extent, Hkv, Pv)
    rpb = randn(rng, H, *[2 * x - 1 for x in tup(K, R)]) if with_rpb else None
    threads = 2 if case % 2 else 1
    out, lse = tokenmix.neighborhood_attention(q, k, v, kernel_size=K, dilation=D, stride=S, is_causal=C, rpb=rpb,
                                               return_lse=True, threads=threads)
    ref, ref_lse = na_ref(q, k, v, K, D, S, C, rpb)
    assert out.shape == (B, *extent, H, Pv) and lse.shape == (B, *extent, H)
    check(out, ref)
    check(lse, ref_lse)
    # the split ops: logits (-inf at missing causal slots), then aggregation of arbitrary weights
    logits = tokenmix.neighborhood_qk(q, k, kernel_size=K, dilation=D, stride=S, is_causal=C, rpb=rpb, scale=0.7,
                                      threads=threads)
    ref_logits = na_logits_ref(q, k, K, D, S, C, rpb, scale=0.7).numpy()
    assert np.array_equal(np.isinf(logits), np.isinf(ref_logits))
    fin = np.isfinite(ref_logits)
    np.testing.assert_allclose(logits[fin], ref_logits[fin], rtol=RTOL, atol=ATOL)
    w = randn(rng, *logits.shape)
    out = tokenmix.neighborhood_av(w, v, kernel_size=K, dilation=D, stride=S, is_causal=C, threads=threads)
    check(out, na_av_ref(w, v, K, D, S, C))
    # their softmax in one pass: 0 at the missing causal slots
    weights = tokenmix.neighborhood_attention_weights(q, k, kernel_size=K, dilation=D, stride=S, is_causal=C, rpb=rpb,
                                                      scale=0.7, threads=threads)
    check(weights, torch.softmax(torch.from_numpy(ref_logits), dim=-1).numpy())


def test_neighborhood_attention_defaults_and_scale(rng):
    q, k, v = randn(rng, 1, 11, 2, 8), randn(rng, 1, 11, 1, 8), randn(rng, 1, 11, 1, 8)
    out = tokenmix.neighborhood_attention(q, k, v, kernel_size=(3,), scale=0.25)
    assert isinstance(out, np.ndarray)
    check(out, na_ref(q, k, v, 3, scale=0.25)[0])
    # NumPy integers as kernel sizes; K = 1: each query attends to itself
    out = tokenmix.neighborhood_attention(q, k, v, kernel_size=np.int64(1))
    check(out, np.repeat(v, 2, axis=2))


def test_neighborhood_bad_input(rng):
    q = randn(rng, 1, 9, 2, 4)
    with pytest.raises(ValueError, match=r"neighborhood_attention: q has 3 dimensions, expected 4, 5 or 6"):
        tokenmix.neighborhood_attention(q[0], q[0], q[0], kernel_size=3)
    with pytest.raises(ValueError, match=r"neighborhood_attention: kernel_size·dilation on axis 0 is 5·2 = 10"):
        tokenmix.neighborhood_attention(q, q, q, kernel_size=5, dilation=2)
    with pytest.raises(ValueError, match=r"neighborhood_attention: kernel_size must be an int or a tuple of 1"):
        tokenmix.neighborhood_attention(q, q, q, kernel_size=(3, 3))
    with pytest.raises(ValueError, match=r"neighborhood_attention: k has shape"):
        tokenmix.neighborhood_attention(q, q[:, :8], q, kernel_size=3)
    with pytest.raises(ValueError, match=r"neighborhood_attention: rpb is not defined with causal axes"):
        tokenmix.neighborhood_attention(q, q, q, kernel_size=3, is_causal=True, rpb=np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"neighborhood_qk: stride on axis 0 is 4"):
        tokenmix.neighborhood_qk(q, q, kernel_size=3, stride=4)
    with pytest.raises(ValueError, match=r"neighborhood_attention_weights: k has shape"):
        tokenmix.neighborhood_attention_weights(q, q[:, :8], kernel_size=3)
    with pytest.raises(ValueError, match=r"neighborhood_av: weights has shape .*S=3"):
        tokenmix.neighborhood_av(np.zeros((1, 9, 2, 4), np.float32), q, kernel_size=3)
    with pytest.raises(ValueError, match=r"neighborhood_av: v has 3 dimensions .*expected 4"):
        tokenmix.neighborhood_av(np.zeros((1, 9, 2, 3), np.float32), q[0], kernel_size=3)


# ---- local attention -----------------------------------------------------------------------------------


def local_ref(q, k, v, window, causal=True, kind="softmax", scale=None, positions=None, rel_pos_bias=None):
    q, k, v = t64(q), t64(k), t64(v)
    B, Lq, H, P = q.shape
    L = k.shape[1]
    i = torch.arange(L - Lq, L)[:, None]
    j = torch.arange(L)[None, :]
    band = (j <= i) & (j >= i - window) if causal else (j - i).abs() <= window
    if scale is None:
        scale = 1 / np.sqrt(P) if kind == "softmax" else (1.0 if window == 0 else 1.0 / (window if causal else 2 * window))
    s = torch.einsum("bihp,bjhp->bhij", q, k) * scale
    if rel_pos_bias is not None:
        M = (rel_pos_bias.shape[1] + 1) // 2
        pos = torch.arange(L)[None].expand(B, L) if positions is None else torch.as_tensor(positions)
        rel = (pos[:, None, :] - pos[:, L - Lq:, None]).clamp(-(M - 1), M - 1) + M - 1  # [B, Lq, L]
        s = s + t64(rel_pos_bias)[:, rel].permute(1, 0, 2, 3)
    if kind == "softmax":
        a = torch.softmax(s.masked_fill(~band, float("-inf")), -1)
    else:
        a = torch.relu(s) ** 2 * band
    return torch.einsum("bhij,bjhp->bihp", a, v).numpy()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["softmax", "relu_squared"])
@pytest.mark.parametrize("causal", [True, False])
def test_local_attention_matches_banded_mask(rng, threads, kind, causal):
    B, L, H, P, Pv, W = 2, 29, 3, 8, 5, 4
    q, k, v = randn(rng, B, L, H, P), randn(rng, B, L, H, P), randn(rng, B, L, H, Pv)
    out = tokenmix.local_attention(q, k, v, window=W, causal=causal, kind=kind, threads=threads)
    assert out.shape == (B, L, H, Pv)
    check(out, local_ref(q, k, v, W, causal, kind))
    # relative-position bias over compressed positions, explicit scale, the last queries only
    positions = np.sort(rng.integers(0, 60, size=(B, L)), axis=1)
    bias = randn(rng, H, 7)
    out = tokenmix.local_attention(q[:, -6:], k, v, window=W, causal=causal, kind=kind, scale=0.3,
                                   positions=positions, rel_pos_bias=bias, threads=threads)
    check(out, local_ref(q[:, -6:], k, v, W, causal, kind, 0.3, positions, bias))


def test_local_attention_bad_input(rng):
    q = randn(rng, 1, 6, 2, 4)
    with pytest.raises(ValueError, match=r"local_attention: kind must be 'softmax' or 'relu_squared', got 'relu'"):
        tokenmix.local_attention(q, q, q, window=2, kind="relu")
    with pytest.raises(ValueError, match=r"local_attention: q has 3 dimensions .*expected 4"):
        tokenmix.local_attention(q[0], q, q, window=2)
    with pytest.raises(ValueError, match=r"local_attention: k has shape"):
        tokenmix.local_attention(q, q[:, :3], q, window=2)
    with pytest.raises(ValueError, match=r"local_attention: window is -1"):
        tokenmix.local_attention(q, q, q, window=-1)
    with pytest.raises(ValueError, match=r"local_attention: positions must be an integer array"):
        tokenmix.local_attention(q, q, q, window=2, positions=np.zeros((1, 6)), rel_pos_bias=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"local_attention: positions must not decrease"):
        tokenmix.local_attention(q, q, q, window=2, positions=np.array([[0, 1, 2, 1, 3, 4]]))
    with pytest.raises(ValueError, match=r"local_attention: rel_pos_bias has shape"):
        tokenmix.local_attention(q, q, q, window=2, rel_pos_bias=np.zeros((2, 4), np.float32))
