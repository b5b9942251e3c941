#!/usr/bin/env python3
"""Fixtures for the Mamba LM loader (issue "Mamba end to end"): tiny random-weight
MambaForCausalLM checkpoints made with transformers, saved with save_pretrained (config.json +
model.safetensors), with the prompt logits and the greedy continuation transformers produces.

Run where PyTorch 2 and transformers are installed (the lent device machine; CPU, float32):
    python3 tests/data/make_mamba_fixture.py OUT_DIR
Writes OUT_DIR/<case>/{config.json, model.safetensors, prompt_ids.npy, prompt_logits.npy,
greedy_ids.npy, greedy_logits.npy}. The cases cover odd sizes, both bias settings, tied and untied
heads, conv kernels 4 and 3, time_step_rank "auto" and explicit, and the original checkpoints'
`backbone.embedding.weight` key.
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import MambaConfig, MambaForCausalLM

CASES = {
    # hidden 24 -> d_inner 48, dt_rank auto = ceil(24/16) = 2; tied head; no in/out_proj bias.
    'tied_auto_rank': dict(vocab_size=67, hidden_size=24, state_size=5, num_hidden_layers=2, expand=2,
                           conv_kernel=4, time_step_rank='auto', use_bias=False, use_conv_bias=True,
                           tie_word_embeddings=True, layer_norm_epsilon=1e-5, residual_in_fp32=True),
    # biases on in/out_proj, no conv bias, untied head, K = 3, explicit rank, other eps.
    'bias_untied_k3': dict(vocab_size=53, hidden_size=20, state_size=7, num_hidden_layers=3, expand=2,
                           conv_kernel=3, time_step_rank=3, use_bias=True, use_conv_bias=False,
                           tie_word_embeddings=False, layer_norm_epsilon=1e-6, residual_in_fp32=True),
    # the original (non-HF) embedding key, residual kept in the model dtype, expand 3.
    'original_names': dict(vocab_size=41, hidden_size=16, state_size=4, num_hidden_layers=2, expand=3,
                           conv_kernel=4, time_step_rank='auto', use_bias=False, use_conv_bias=True,
                           tie_word_embeddings=True, layer_norm_epsilon=1e-5, residual_in_fp32=False),
}
PROMPT = [3, 14, 15, 9, 26, 5, 35, 8, 9, 7, 9]
NEW_TOKENS = 8


def perturb(model, seed):
    """Random weights beyond HF's init so that every parameter matters (biases non-zero, A and D varied)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.5 if ('A_log' in name or name.endswith('.D')) else 0.2
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


def make_case(out_dir, name, cfg, seed):
    torch.manual_seed(seed)
    config = MambaConfig(**cfg)
    model = MambaForCausalLM(config).float().eval()
    perturb(model, seed)
    folder = os.path.join(out_dir, name)
    model.save_pretrained(folder, safe_serialization=True)
    if name == 'original_names':  # rename the embedding as state-spaces/mamba-* checkpoints name it
        path = os.path.join(folder, 'model.safetensors')
        tensors = load_file(path)
        tensors['backbone.embedding.weight'] = tensors.pop('backbone.embeddings.weight')
        save_file(tensors, path, metadata={'format': 'pt'})
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        logits = model(ids).logits[0]  # [L, V]
        out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    greedy = out.sequences[0, len(PROMPT):]
    greedy_logits = torch.stack(out.logits, dim=1)[0]  # [NEW_TOKENS, V], decode-path logits
    np.save(os.path.join(folder, 'prompt_ids.npy'), np.array(PROMPT, dtype=np.int64))
    np.save(os.path.join(folder, 'prompt_logits.npy'), logits.numpy().astype(np.float32))
    np.save(os.path.join(folder, 'greedy_ids.npy'), greedy.numpy().astype(np.int64))
    np.save(os.path.join(folder, 'greedy_logits.npy'), greedy_logits.numpy().astype(np.float32))
    with open(os.path.join(folder, 'config.json')) as f:
        saved = json.load(f)
    print(name, 'keys:', sorted(load_file(os.path.join(folder, 'model.safetensors')).keys())[:4], '...',
          'greedy:', greedy.tolist(), 'time_step_rank:', saved.get('time_step_rank'))


if __name__ == '__main__':
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), 'mamba')
    print('torch', torch.__version__)
    for i, (name, cfg) in enumerate(CASES.items()):
        make_case(out_dir, name, cfg, 100 + i)
