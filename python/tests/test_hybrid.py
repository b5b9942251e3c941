"""tokenmix's hybrid bindings (A2ssm, Mass, H3Layer, SeqBoatLayer, A2MambaBackbone, MambaLM) against the
PyTorch fixtures of tests/data (made by tests/data/make_*_fixture.py from the released PyTorch code, in
float64), the streaming forms against the parallel ones, and the mapping of bad input to ValueError."""

import json
import pathlib

import numpy as np
import pytest

import tokenmix

DATA = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data"
INPUTS = {"x", "y", "x_ms", "attn1", "attn2", "mixed", "rope_angle", "rpb_g", "u", "states", "fused", "out"}


def fixture(family, name):
    """(config dict, {npy name: array}) of tests/data/<family>/<name>."""
    d = DATA / family / name
    cfg = json.loads((d / "config.json").read_text()) if (d / "config.json").exists() else {}
    return cfg, {p.stem: np.load(p) for p in d.glob("*.npy")}


def weights_of(arrays, drop=()):
    return {k: v for k, v in arrays.items() if k not in INPUTS and k not in drop}


# ---- A2ssm ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,threads", [("n1_small", 1), ("n1_rect", 2), ("n2_generalised", 1)])
def test_a2ssm_matches_the_released_code(name, threads):
    cfg, a = fixture("a2ssm", name)
    op = tokenmix.A2ssm(weights_of(a), channels=cfg["C"], heads=cfg["nh"], kernel_size=cfg["K"], d_state=cfg["N"],
                        dt_rank=cfg["R"], threads=threads)
    y = op.forward(a["x_ms"], a["attn1"], a["attn2"], tuple(cfg["dil"]))
    assert y.dtype == np.float32 and y.shape == a["y"].shape
    np.testing.assert_allclose(y, a["y"], rtol=2e-5, atol=5e-5)
    # float64 inputs are converted; the object is reusable.
    y64 = op.forward(a["x_ms"].astype(np.float64), a["attn1"], a["attn2"], dilation=cfg["dil"])
    np.testing.assert_array_equal(y64, y)


def test_a2ssm_accepts_state_dict_names():
    cfg, a = fixture("a2ssm", "n1_small")
    w = weights_of(a)
    dotted = {k.replace("conv2d_", "conv2d.").replace("state_fusion_", "state_fusion."): v for k, v in w.items()}
    assert "conv2d.weight" in dotted and "state_fusion.bias" in dotted
    op = tokenmix.A2ssm(dotted, channels=cfg["C"], heads=cfg["nh"], kernel_size=cfg["K"])
    np.testing.assert_allclose(op.forward(a["x_ms"], a["attn1"], a["attn2"], cfg["dil"]), a["y"], rtol=2e-5, atol=5e-5)


def test_a2ssm_rejects_bad_input():
    cfg, a = fixture("a2ssm", "n1_small")
    kw = dict(channels=cfg["C"], heads=cfg["nh"], kernel_size=cfg["K"])
    w = weights_of(a)
    with pytest.raises(ValueError, match="A2ssm: missing weight 'Ds'"):
        tokenmix.A2ssm({k: v for k, v in w.items() if k != "Ds"}, **kw)
    with pytest.raises(ValueError, match="A2ssm: unknown weight 'bogus.weight'"):
        tokenmix.A2ssm({**w, "bogus.weight": np.zeros(3)}, **kw)
    with pytest.raises(ValueError, match=r"Ds has shape \[3\], expected \[C=16\]"):
        tokenmix.A2ssm({**w, "Ds": np.zeros(3, np.float32)}, **kw)
    with pytest.raises(ValueError, match="A2ssm: x_proj_weight has 1 dimensions"):
        tokenmix.A2ssm({**w, "x_proj_weight": np.zeros(3, np.float32)}, **kw)
    with pytest.raises(ValueError, match="an even number of heads"):
        tokenmix.A2ssm(w, channels=16, heads=3, kernel_size=3)
    op = tokenmix.A2ssm(w, **kw)
    with pytest.raises(ValueError, match="A2ssm::forward: attn1 has 4 dimensions"):
        op.forward(a["x_ms"], a["attn1"][..., 0], a["attn2"], cfg["dil"])
    with pytest.raises(ValueError, match=r"dilation\[0\] = 4 with kernel_size 3 does not fit the height 9"):
        op.forward(a["x_ms"], a["attn1"], a["attn2"], (4, 3))


# ---- Mass -------------------------------------------------------------------------------------------


def mass_config(cfg):
    kw = dict(channels=cfg["C"], heads=cfg["nh"], kernel_size=cfg["K"], global_mode=cfg["global_mode"])
    if cfg["global_mode"]:
        kw["global_grid"] = tuple(cfg["image_size"])
    return kw


@pytest.mark.parametrize("name,threads", [("local_small", 1), ("local_rect", 2), ("global_native", 1),
                                          ("global_resized", 2)])
def test_mass_matches_the_released_code(name, threads):
    cfg, a = fixture("mass", name)
    op = tokenmix.Mass(weights_of(a), **mass_config(cfg), threads=threads)
    assert op.threads == threads
    y = op.forward(a["x"])
    assert y.dtype == np.float32 and y.shape == a["x"].shape
    np.testing.assert_allclose(y, a["y"], rtol=2e-5, atol=5e-5)
    np.testing.assert_allclose(op.attn1, a["attn1"], rtol=2e-5, atol=5e-5)
    np.testing.assert_allclose(op.attn2, a["attn2"], rtol=2e-5, atol=5e-5)
    np.testing.assert_array_equal(op.forward(a["x"]), y)  # buffers reused
    assert tokenmix.mass_dilation(cfg["H"], cfg["W"], cfg["K"]) == tuple(cfg["dil"])


def test_mass_accepts_state_dict_names():
    cfg, a = fixture("mass", "local_small")
    w = weights_of(a)
    dotted = {}
    for k, v in w.items():
        k = k.replace("qkv_", "qkv.").replace("gate_0_", "gate.0.").replace("gate_1_", "gate.1.")
        k = k.replace("proj_1_", "proj.1.").replace("rpb_0", "rpb.0").replace("ssm_conv2d_", "ssm.conv2d.")
        dotted[k] = v
    dotted["rpb.1"] = w["rpb_0"]  # the released list holds rpb.0 twice
    dotted["gate.1.num_batches_tracked"] = np.array(7)  # ignored
    assert "gate.1.running_var" in dotted and "ssm.conv2d.weight" in dotted
    op = tokenmix.Mass(dotted, **mass_config(cfg))
    np.testing.assert_allclose(op.forward(a["x"]), a["y"], rtol=2e-5, atol=5e-5)


def test_mass_rejects_bad_input():
    cfg, a = fixture("mass", "local_small")
    kw = mass_config(cfg)
    w = weights_of(a)
    with pytest.raises(ValueError, match="Mass: missing weight 'ssm_A_logs'"):
        tokenmix.Mass({k: v for k, v in w.items() if k != "ssm_A_logs"}, **kw)
    with pytest.raises(ValueError, match="Mass: unknown weight 'rpb.2' for this configuration"):
        tokenmix.Mass({**w, "rpb.2": np.zeros((1, 4, 4, 4), np.float32)}, **kw)
    with pytest.raises(ValueError, match=r"qkv_weight has shape \[48, 16, 3, 3\], expected \[3C=48, C=16, 1=1, 1=1\]"):
        tokenmix.Mass({**w, "qkv_weight": np.zeros((48, 16, 3, 3), np.float32)}, **kw)
    with pytest.raises(ValueError, match="rpb.1 differs from rpb.0"):
        tokenmix.Mass({**w, "rpb_1": w["rpb_0"] + 1}, **kw)
    with pytest.raises(ValueError, match="weights must be a dict"):
        tokenmix.Mass(list(w.values()), **kw)
    with pytest.raises(ValueError, match="Mass: weight 'qkv_weight' is given twice"):
        tokenmix.Mass({**w, "qkv.weight": w["qkv_weight"]}, **kw)
    op = tokenmix.Mass(w, **kw)
    with pytest.raises(ValueError, match=r"Mass::forward: x has 3 dimensions \(shape \(9, 11, 16\)\), expected 4"):
        op.forward(a["x"][0])
    with pytest.raises(ValueError, match=r"x has shape \[1, 9, 9, 8\], expected \[B, H, W, C=16\]"):
        op.forward(np.zeros((1, 9, 9, 8), np.float32))
    with pytest.raises(ValueError, match="expected H and W >= kernel_size"):
        op.forward(np.zeros((1, 2, 9, 16), np.float32))
    with pytest.raises(ValueError, match="must be a real-valued array"):
        op.forward("not an array")


# ---- H3Layer ----------------------------------------------------------------------------------------


def h3_layer(name, threads=1):
    _, a = fixture("h3", name)
    w = weights_of(a)
    return tokenmix.H3Layer(w, d_model=a["u"].shape[2], d_state=w["ssm_k_kernel_B"].shape[1],
                            head_dim={"hd1": 1, "hd2": 2}[name], threads=threads), a


@pytest.mark.parametrize("name,threads", [("hd1", 1), ("hd2", 2)])
def test_h3_matches_the_released_code(name, threads):
    layer, a = h3_layer(name, threads)
    y = layer.forward(a["u"])
    assert y.dtype == np.float32 and y.shape == a["u"].shape
    np.testing.assert_allclose(y, a["out"], rtol=1e-5, atol=1e-5)


def test_h3_accepts_released_names_with_the_leading_axis():
    _, a = fixture("h3", "hd1")
    w = weights_of(a)
    released = {}
    for k, v in w.items():
        if k.startswith("ssm_k_kernel_"):
            k = "ssm_k_kernel.kernel." + k[len("ssm_k_kernel_"):]
        elif k.startswith("kernel_"):
            k = "kernel.kernel." + k[len("kernel_"):]
        elif k.endswith(("_weight", "_bias")):
            k = k[::-1].replace("_", ".", 1)[::-1]
        released[k] = v
    released["ssm_k_kernel.kernel.C"] = w["ssm_k_kernel_C"][None]  # [1, D, N] as stored
    released["kernel.kernel.C"] = w["kernel_C"][None]  # [1, Hh, M, 2]
    assert "q_proj.weight" in released and "kernel.kernel.log_dt" in released
    layer = tokenmix.H3Layer(released, d_model=a["u"].shape[2], d_state=w["ssm_k_kernel_B"].shape[1])
    np.testing.assert_allclose(layer.forward(a["u"]), a["out"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["hd1", "hd2"])
def test_h3_prefill_and_steps_equal_one_forward(name):
    layer, a = h3_layer(name)
    u = a["u"]
    B, L, D = u.shape
    full = layer.forward(u)
    state0 = layer.initial_state(B)
    snapshot = {k: v.copy() for k, v in state0.items()}
    y0, state = layer.forward(u[:, :5], state=state0)
    outs = [y0]
    for t in range(5, L):
        yt, state = layer.step(u[:, t], state)
        assert yt.shape == (B, D)
        outs.append(yt[:, None])
    np.testing.assert_allclose(np.concatenate(outs, 1), full, rtol=1e-5, atol=1e-5)
    for k in snapshot:  # the caller's state is left as it was
        np.testing.assert_array_equal(state0[k], snapshot[k])
        assert not np.array_equal(state[k], snapshot[k])


def test_h3_rejects_bad_input():
    layer, a = h3_layer("hd1")
    _, arrays = fixture("h3", "hd1")
    w = weights_of(arrays)
    D, N = a["u"].shape[2], w["ssm_k_kernel_B"].shape[1]
    with pytest.raises(ValueError, match="H3Layer: missing weight 'kernel_log_dt'"):
        tokenmix.H3Layer({k: v for k, v in w.items() if k != "kernel_log_dt"}, d_model=D, d_state=N)
    with pytest.raises(ValueError, match="d_state=5 must be even"):
        tokenmix.H3Layer(w, d_model=D, d_state=5)
    with pytest.raises(ValueError, match=r"H3Layer::forward: u has shape \[1, 4, 3\], expected \[B, L, D="):
        layer.forward(np.zeros((1, 4, 3), np.float32))
    state = layer.initial_state(a["u"].shape[0])
    with pytest.raises(ValueError, match=r"state.shift_state has shape"):
        layer.forward(a["u"], state={**state, "shift_state": state["shift_state"][:, :, :1]})
    with pytest.raises(ValueError, match="state has no 'diagonal_state'"):
        layer.step(a["u"][:, 0], {"shift_state": state["shift_state"]})
    with pytest.raises(ValueError, match="H3Layer::step: u has 3 dimensions"):
        layer.step(a["u"], state)


# ---- SeqBoatLayer -----------------------------------------------------------------------------------


def seqboat_layer(name, threads=1):
    cfg, a = fixture("seqboat", name)
    kw = dict(d_model=cfg["D"], zdim=cfg["Z"], hdim=cfg["E"], ndim=cfg["N"], window=cfg["W"],
              bidirectional=cfg["bidirectional"], attention={"relu2": "relu_squared"}.get(cfg["attention"], "softmax"),
              position=cfg["position"], norm={"rmsnorm": "rms_norm", "scalenorm": "scale_norm"}.get(cfg["norm"], "layer_norm"),
              prenorm=cfg["prenorm"], norm_eps=cfg["norm_eps"], act_bias=cfg["act_bias"])
    if cfg.get("M") is not None:
        kw["max_positions"] = cfg["M"]
    return tokenmix.SeqBoatLayer(weights_of(a), **kw, threads=threads), cfg, a, kw


@pytest.mark.parametrize("name,threads", [("causal_softmax_simple", 1), ("bidir_relu2_simple", 2),
                                          ("causal_softmax_rotary", 1), ("all_active", 1)])
def test_seqboat_matches_the_released_code(name, threads):
    layer, cfg, a, _ = seqboat_layer(name, threads)
    y = layer.forward(a["x"])
    assert y.dtype == np.float32 and y.shape == a["x"].shape
    np.testing.assert_allclose(y, a["out"], rtol=5e-5, atol=5e-5)
    assert layer.activated == cfg["activated_counts"]


@pytest.mark.parametrize("name", ["causal_softmax_simple", "causal_softmax_rotary"])
def test_seqboat_streaming_equals_one_forward(name):
    layer, _, a, _ = seqboat_layer(name)
    x = a["x"]
    B, L, _ = x.shape
    full = layer.forward(x)
    y0, state = layer.forward(x[:, :4], state=layer.initial_state(B))
    assert state["tokens"] == 4 and state["key_positions"].dtype == np.int64
    outs = [y0]
    for t in range(4, L):
        yt, state = layer.step(x[:, t], state)
        outs.append(yt[:, None])
    np.testing.assert_allclose(np.concatenate(outs, 1), full, rtol=1e-5, atol=1e-5)
    assert state["tokens"] == L


def test_seqboat_rejects_bad_input():
    layer, _, a, kw = seqboat_layer("causal_softmax_simple")
    _, arrays = fixture("seqboat", "causal_softmax_simple")
    w = weights_of(arrays)
    with pytest.raises(ValueError, match=r"SeqBoatLayer: unknown norm 'group_norm' \(expected one of 'layer_norm'"):
        tokenmix.SeqBoatLayer(w, **{**kw, "norm": "group_norm"})
    with pytest.raises(ValueError, match="SeqBoatLayer: unknown attention 'linear'"):
        tokenmix.SeqBoatLayer(w, **{**kw, "attention": "linear"})
    with pytest.raises(ValueError, match="SeqBoatLayer: missing weight 'gamma'"):
        tokenmix.SeqBoatLayer({k: v for k, v in w.items() if k != "gamma"}, **kw)
    with pytest.raises(ValueError, match=r"h_proj_weight has shape \[8, 3\], expected \[D=12, E=16\]"):
        tokenmix.SeqBoatLayer({**w, "h_proj_weight": np.zeros((8, 3), np.float32)}, **kw)
    bidir, _, b, _ = seqboat_layer("bidir_relu2_simple")
    with pytest.raises(ValueError, match="a streaming state needs the causal layer"):
        bidir.forward(b["x"], state=bidir.initial_state(b["x"].shape[0]))
    state = layer.initial_state(a["x"].shape[0])
    with pytest.raises(ValueError, match=r"state\['key_positions'\] must be an integer array"):
        layer.step(a["x"][:, 0], {**state, "key_positions": state["key_positions"].astype(np.float32)})
    with pytest.raises(ValueError, match=r"SeqBoatLayer::step: x has shape \[2, 3\], expected \[B, D=12\]"):
        layer.step(np.zeros((2, 3), np.float32), state)


# ---- A2MambaBackbone --------------------------------------------------------------------------------

TINY = dict(image_size=96, dims=(8, 16, 16, 24), depths=(1, 1, 2, 1), heads=(2, 2, 2, 2), kernel_size=(3, 3, 3, 3),
            mlp_ratios=(2, 2, 2, 2), projection=32, num_classes=10)


def test_a2mamba_backbone_matches_the_released_model():
    d = DATA / "a2mamba" / "tiny"
    image = np.load(d / "image.npy")
    net = tokenmix.A2MambaBackbone(d / "model.safetensors", **TINY)
    features = net.features(image)
    assert isinstance(features, list) and len(features) == 4
    for i, f in enumerate(features):
        np.testing.assert_allclose(f, np.load(d / f"features_{i}.npy"), rtol=2e-5, atol=5e-5)
    logits = net.logits(image)
    np.testing.assert_allclose(logits, np.load(d / "logits.npy"), rtol=2e-5, atol=5e-5)
    threaded = tokenmix.A2MambaBackbone(str(d / "model.safetensors"), **TINY, threads=2)
    np.testing.assert_array_equal(threaded.logits(image), logits)  # bitwise for any thread count


def test_a2mamba_backbone_random_checkpoint_and_bad_input(rng):
    cfg = dict(image_size=96, dims=(16, 16, 24, 16), depths=(1, 1, 1, 1), heads=(2, 4, 2, 2), kernel_size=(3, 5, 3, 3),
               mlp_ratios=(2, 2, 1.5, 2), projection=8, num_classes=5)
    net = tokenmix.A2MambaBackbone(random_seed=3, **cfg)
    image = rng.standard_normal((1, 96, 96, 3), dtype=np.float32)
    shapes = [f.shape for f in net.features(image)]
    assert shapes == [(1, 24, 24, 16), (1, 12, 12, 16), (1, 6, 6, 24), (1, 3, 3, 16)]
    logits = net.logits(image)
    assert logits.shape == (1, 5) and np.isfinite(logits).all()
    np.testing.assert_array_equal(tokenmix.A2MambaBackbone(random_seed=3, **cfg).logits(image), logits)
    with pytest.raises(ValueError, match="give exactly one of path"):
        tokenmix.A2MambaBackbone()
    with pytest.raises(ValueError, match="give exactly one of path"):
        tokenmix.A2MambaBackbone(DATA / "a2mamba" / "tiny" / "model.safetensors", random_seed=1, **TINY)
    with pytest.raises(ValueError, match=r"A2MambaBackbone: parameter 'patch_embed.0.weight' has shape \[4, 3, 3, 3\], expected \[8, 3, 3, 3\]"):
        tokenmix.A2MambaBackbone(DATA / "a2mamba" / "tiny" / "model.safetensors", **cfg)
    with pytest.raises(ValueError, match=r"image has shape \[1, 96, 96, 4\], expected \[B, H, W, in_chans=3\]"):
        net.features(np.zeros((1, 96, 96, 4), np.float32))
    with pytest.raises(ValueError, match="A2MambaBackbone::logits: image has 3 dimensions"):
        net.logits(image[0])


# ---- MambaLM ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bias_untied_k3", "original_names", "tied_auto_rank"])
def test_mamba_lm_matches_transformers(name):
    d = DATA / "mamba" / name
    lm = tokenmix.MambaLM.load(d)
    prompt = np.load(d / "prompt_ids.npy")
    logits = lm.forward(prompt[None])
    assert logits.shape == (1, len(prompt), lm.vocab_size)
    np.testing.assert_allclose(logits[0], np.load(d / "prompt_logits.npy"), rtol=1e-4, atol=1e-4)
    greedy = np.load(d / "greedy_ids.npy")
    assert lm.generate_greedy(prompt, len(greedy), stop_at_eos=False) == greedy.tolist()
    # prefill with a cache, then decode step by step: the same ids and logits.
    last, cache = lm.forward(prompt[None], cache=lm.new_cache(1), logits_for="last_token")
    expected_logits = np.load(d / "greedy_logits.npy")
    np.testing.assert_allclose(last[0, 0], expected_logits[0], rtol=1e-4, atol=1e-4)
    for t in range(1, len(greedy)):
        step_logits, cache = lm.step(greedy[t - 1:t], cache)
        np.testing.assert_allclose(step_logits[0], expected_logits[t], rtol=1e-4, atol=1e-4)
    assert cache["seen_tokens"] == len(prompt) + len(greedy) - 1


def test_mamba_lm_rejects_bad_input():
    lm = tokenmix.MambaLM.load(DATA / "mamba" / "tied_auto_rank", threads=2)
    with pytest.raises(ValueError, match="MambaLM::forward: ids must be an integer array"):
        lm.forward(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="unknown logits_for 'first_token'"):
        lm.forward(np.zeros((1, 3), np.int64), logits_for="first_token")
    with pytest.raises(ValueError, match="the prompt is empty"):
        lm.generate_greedy(np.zeros(0, np.int64), 3)
