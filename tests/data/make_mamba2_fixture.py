#!/usr/bin/env python3
"""Fixtures for the Mamba-2 loader (issue "The scan family", item 4): tiny random-weight
Mamba2ForCausalLM checkpoints made with transformers, saved with save_pretrained (config.json +
model.safetensors), with the prompt logits and the greedy continuation transformers produces, and
one mixer's SSD inputs / outputs for the op tests.

Run where PyTorch 2 and transformers are installed (the lent device machine; CPU, float32):
    python3 tests/data/make_mamba2_fixture.py OUT_DIR
Writes OUT_DIR/<case>/{config.json, model.safetensors, prompt_ids.npy, prompt_logits.npy,
greedy_ids.npy, greedy_logits.npy}. The cases cover one and two B/C groups, biases on / off, tied and
untied heads, conv kernels 4 and 3, a dt limit, and prompts longer than chunk_size (so transformers'
chunked torch_forward crosses chunk boundaries).
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import Mamba2Config, Mamba2ForCausalLM

CASES = {
    # d_inner 64 = 4 heads x 16, one group, tied head, chunk 8 < prompt 11.
    'tied_g1': dict(vocab_size=61, hidden_size=32, expand=2, num_heads=4, head_dim=16, state_size=8, n_groups=1,
                    num_hidden_layers=2, conv_kernel=4, chunk_size=8, use_bias=False, use_conv_bias=True,
                    tie_word_embeddings=True, layer_norm_epsilon=1e-5, residual_in_fp32=True),
    # d_inner 48 = 6 heads x 8, two groups, biases, untied, K = 3, dt limited to [0, 0.5].
    'groups2_bias_untied': dict(vocab_size=47, hidden_size=24, expand=2, num_heads=6, head_dim=8, state_size=5,
                                n_groups=2, num_hidden_layers=3, conv_kernel=3, chunk_size=4, use_bias=True,
                                use_conv_bias=False, tie_word_embeddings=False, layer_norm_epsilon=1e-6,
                                residual_in_fp32=True, time_step_limit=(0.0, 0.5)),
}
PROMPT = [3, 14, 15, 9, 26, 5, 35, 8, 9, 7, 9]
NEW_TOKENS = 8


def perturb(model, seed):
    """Random weights beyond HF's init so that every parameter matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.5 if ('A_log' in name or name.endswith('.D') or 'dt_bias' in name) else 0.2
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


def make_case(out_dir, name, cfg, seed):
    torch.manual_seed(seed)
    config = Mamba2Config(**cfg)
    model = Mamba2ForCausalLM(config).float().eval()
    perturb(model, seed)
    folder = os.path.join(out_dir, name)
    model.save_pretrained(folder, safe_serialization=True)
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        logits = model(ids).logits[0]  # [L, V]
        out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    greedy = out.sequences[0, len(PROMPT):]
    greedy_logits = torch.stack(out.logits, dim=1)[0]
    np.save(os.path.join(folder, 'prompt_ids.npy'), np.array(PROMPT, dtype=np.int64))
    np.save(os.path.join(folder, 'prompt_logits.npy'), logits.numpy().astype(np.float32))
    np.save(os.path.join(folder, 'greedy_ids.npy'), greedy.numpy().astype(np.int64))
    np.save(os.path.join(folder, 'greedy_logits.npy'), greedy_logits.numpy().astype(np.float32))
    keys = load_file(os.path.join(folder, 'model.safetensors'))
    print(name, 'greedy:', greedy.tolist())
    for k in sorted(keys):
        print('  ', k, list(keys[k].shape))
    with open(os.path.join(folder, 'config.json')) as f:
        print(f.read())


if __name__ == '__main__':
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), 'mamba2')
    import transformers
    print('torch', torch.__version__, 'transformers', transformers.__version__)
    for i, (name, cfg) in enumerate(CASES.items()):
        make_case(out_dir, name, cfg, 200 + i)
