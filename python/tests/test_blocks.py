"""tokenmix's blocks bindings (linear, rms_norm, gated_rms_norm, layer_norm, depthwise_conv2d, embedding)
against torch.nn.functional / formulas written here in float64, and the mapping of bad input to ValueError."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tokenmix


def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def randn(rng, *shape):
    return rng.standard_normal(shape, dtype=np.float32)


@pytest.mark.parametrize("M", [1, 3, 37])  # GEMV (M <= 4) and packed GEMM paths
@pytest.mark.parametrize("threads", [1, 2])
def test_linear_matches_f_linear(rng, M, threads):
    x, w, b = randn(rng, M, 23), randn(rng, 19, 23), randn(rng, 19)
    out = tokenmix.linear(x, w, b, threads=threads)
    assert out.dtype == np.float32 and out.shape == (M, 19)
    np.testing.assert_allclose(out, F.linear(t64(x), t64(w), t64(b)).numpy(), rtol=1e-4, atol=1e-5)
    out = tokenmix.linear(x, w)  # no bias
    np.testing.assert_allclose(out, F.linear(t64(x), t64(w)).numpy(), rtol=1e-4, atol=1e-5)


def test_linear_empty_batch_and_converted_inputs(rng):
    w = randn(rng, 5, 7)
    assert tokenmix.linear(np.zeros((0, 7), np.float32), w).shape == (0, 5)
    x = randn(rng, 6, 7)
    out = tokenmix.linear(np.asfortranarray(x.astype(np.float64)), w.tolist())
    np.testing.assert_allclose(out, F.linear(t64(x), t64(w)).numpy(), rtol=1e-4, atol=1e-5)


def rms_norm_torch(x, w, eps):
    x = t64(x)
    return (t64(w) * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)).numpy()


@pytest.mark.parametrize("threads", [1, 2])
def test_rms_norm_matches_torch(rng, threads):
    x, w = randn(rng, 13, 37), randn(rng, 37)
    out = tokenmix.rms_norm(x, w, 1e-6, threads=threads)
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, rms_norm_torch(x, w, 1e-6), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tokenmix.rms_norm(x, w), rms_norm_torch(x, w, 1e-5), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("group_size", [None, 8])
def test_gated_rms_norm_matches_torch(rng, group_size):
    M, D = 9, 24
    x, z, w = randn(rng, M, D), randn(rng, M, D), randn(rng, D)
    out = tokenmix.gated_rms_norm(x, z, w, 1e-5, group_size, threads=2)
    gs = D if group_size is None else group_size
    g = (t64(x) * F.silu(t64(z))).reshape(M, D // gs, gs)
    ref = (g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + 1e-5)).reshape(M, D) * t64(w)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_layer_norm_matches_f_layer_norm(rng, threads):
    x, w, b = randn(rng, 11, 29) + 50.0, randn(rng, 29), randn(rng, 29)  # a large mean: two-pass variance
    out = tokenmix.layer_norm(x, w, b, 1e-6, threads=threads)
    ref = F.layer_norm(t64(x), (29,), t64(w), t64(b), 1e-6).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    ref = F.layer_norm(t64(x), (29,), t64(w), t64(b)).numpy()
    np.testing.assert_allclose(tokenmix.layer_norm(x, w, b), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("K", [1, 3, 5])
@pytest.mark.parametrize("silu", [False, True])
def test_depthwise_conv2d_matches_f_conv2d(rng, K, silu):
    B, H, W, C = 2, 7, 9, 11
    x, w, b = randn(rng, B, H, W, C), randn(rng, C, K, K), randn(rng, C)
    out = tokenmix.depthwise_conv2d(x, w, bias=b, activation_silu=silu, threads=2)
    ref = F.conv2d(t64(x).permute(0, 3, 1, 2), t64(w)[:, None], t64(b), padding=K // 2, groups=C)
    if silu:
        ref = F.silu(ref)
    assert out.shape == x.shape
    np.testing.assert_allclose(out, ref.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-5)


def test_depthwise_conv2d_without_bias(rng):
    x, w = randn(rng, 1, 5, 4, 3), randn(rng, 3, 3, 3)
    ref = F.conv2d(t64(x).permute(0, 3, 1, 2), t64(w)[:, None], padding=1, groups=3).permute(0, 2, 3, 1)
    np.testing.assert_allclose(tokenmix.depthwise_conv2d(x, w), ref.numpy(), rtol=1e-4, atol=1e-5)


def test_embedding_matches_f_embedding(rng):
    table = randn(rng, 17, 6)
    ids = np.array([3, 0, 16, 3, 9], dtype=np.int32)
    out = tokenmix.embedding(ids, table)
    np.testing.assert_array_equal(out, F.embedding(torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(table)).numpy())
    assert tokenmix.embedding([], table).shape == (0, 6)


def test_bad_input_raises_value_error(rng):
    x, w, b = randn(rng, 4, 8), randn(rng, 5, 8), randn(rng, 5)
    with pytest.raises(ValueError, match=r"linear: x has 1 dimensions .*expected 2: \[M, K\]"):
        tokenmix.linear(x[0], w)
    with pytest.raises(ValueError, match=r"linear: x has shape \[4, 8\], expected \[M, K=7\]"):
        tokenmix.linear(x, w[:, :7])
    with pytest.raises(ValueError, match=r"linear: bias has shape \[4\], expected \[N=5\]"):
        tokenmix.linear(x, w, b[:4])
    with pytest.raises(ValueError, match=r"rms_norm: weight has shape \[7\], expected \[D=8\]"):
        tokenmix.rms_norm(x, np.ones(7, np.float32))
    with pytest.raises(ValueError, match=r"gated_rms_norm: group_size 3 must be positive and divide D=8"):
        tokenmix.gated_rms_norm(x, x, np.ones(8, np.float32), 1e-5, 3)
    with pytest.raises(ValueError, match=r"layer_norm: eps must be > 0"):
        tokenmix.layer_norm(x, np.ones(8, np.float32), np.zeros(8, np.float32), 0.0)
    with pytest.raises(ValueError, match=r"depthwise_conv2d: weight has shape \[3, 2, 2\].*odd kernel size"):
        tokenmix.depthwise_conv2d(randn(rng, 1, 4, 4, 3), randn(rng, 3, 2, 2))
    with pytest.raises(ValueError, match=r"depthwise_conv2d: bias must be a real-valued array \[C\]"):
        tokenmix.depthwise_conv2d(randn(rng, 1, 4, 4, 3), randn(rng, 3, 3, 3), bias="x")
    with pytest.raises(ValueError, match=r"embedding: ids\[1\] = 17 is out of range for a vocabulary of V=17"):
        tokenmix.embedding(np.array([0, 17]), randn(rng, 17, 3))
    with pytest.raises(ValueError, match=r"embedding: ids must be an integer array \[M\]"):
        tokenmix.embedding(np.array([0.0, 1.0]), randn(rng, 17, 3))
    with pytest.raises(ValueError, match=r"threads must be >= 1"):
        tokenmix.rms_norm(x, np.ones(8, np.float32), threads=0)
    with pytest.raises(TypeError):
        tokenmix.depthwise_conv2d(randn(rng, 1, 4, 4, 3), randn(rng, 3, 3, 3), None)  # bias is keyword-only
