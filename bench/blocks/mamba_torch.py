#!/usr/bin/env python3
"""A 130m-sized Mamba-1 model in PyTorch on this machine, for the README's end-to-end comparison.

transformers is not installed here, so this file writes out transformers' `MambaForCausalLM` in plain
torch, following `MambaMixer.slow_forward` (the path transformers takes without the CUDA kernels; see
/work/shared/spec/mamba_scan.md §2-§3): in_proj -> depthwise causal Conv1d + SiLU -> x_proj -> dt_proj
+ softplus -> discrete_A / deltaB_u materialised as [B, I, L, N] -> Python loop over L -> + D*x ->
* silu(z) -> out_proj; decode keeps conv / ssm caches (conv_state rolled, new x written at the end).
Module and parameter names follow transformers' (backbone.embeddings, backbone.layers.{i}.norm /
.mixer.in_proj ..., backbone.norm_f, lm_head tied to the embeddings).

Shape (state-spaces/mamba-130m-hf): d_model 768, 24 layers, vocab 50280, d_inner 1536, state 16,
conv 4, dt_rank 48, no in/out_proj bias, conv bias, RMSNorm eps 1e-5. Random weights (fixed seed),
float32, eval, no_grad, batch 1.

Timed (best of N after a warm-up; per thread count T, torch.set_num_threads(T)):
  mixer_prefill              one mixer forward on [1, L, 768] (L = --length, default 512), no cache
  mixer_decode               one mixer decode step (one token, conv/ssm caches), per token
  model_prefill              the whole model on L token ids filling the caches, logits only for the
                             last position (what generate's prefill computes)
  model_prefill_all_logits   the same with logits for all L positions
  model_decode               one full-model decode step (embedding, 24 layers with caches, norm_f,
                             lm_head for one token), per token
Decode is timed in blocks of --decode-tokens tokens after 2 warm-up tokens, starting from the caches
a prefill of the timing prompt left; the reported time is the best block divided by its tokens.
--check instead verifies the formulation: token-by-token decode reproduces the prefill (mixer
outputs, also from a cache a shorter prefill filled, and the model's logits), allclose rtol 1e-4 /
atol 1e-5.

BLAS: Debian's python3-torch (BLAS_INFO=generic) calls whatever /usr/lib/x86_64-linux-gnu/libblas.so.3
points at; out of the box that is the reference BLAS (~2.5 GFLOP/s), which would make every
projection absurdly slow. Install OpenBLAS first, which switches the alternative automatically:
    apt-get install -y libopenblas0-pthread
    update-alternatives --display libblas.so.3-x86_64-linux-gnu   # should point at openblas-pthread
The script checks the alternative and the library actually loaded, and prints a WARNING line if it is
not OpenBLAS. OpenBLAS reads OPENBLAS_NUM_THREADS when it is loaded, so each thread count runs in
its own process with OPENBLAS_NUM_THREADS=T set before torch is imported (the script re-executes
itself). Run with Debian's python3 (the `python3` on PATH may be another interpreter without torch):
    /usr/bin/python3 bench/blocks/mamba_torch.py [--threads 1 2] [--length 512] [--json FILE]
    /usr/bin/python3 bench/blocks/mamba_torch.py --check
Both thread counts take about 45 s on a 2-core machine (model prefill, 24 Python scan loops, dominates).
--json FILE writes {"<name>/threads:<T>": seconds} (per token for the decode entries).

Threads: torch's OpenMP pool and OpenBLAS's pthread pool are separate. With libgomp's default wait
policy an idle OpenMP worker spins for a while after each parallel region, which on a 2-core machine
takes the core an OpenBLAS thread needs: with 2 threads here that made mixer_decode ~20 ms instead
of ~1.6 ms and model_decode ~400 ms instead of ~65 ms per token. By default (--omp-wait passive) each
child therefore runs with OMP_WAIT_POLICY=passive (no effect at 1 thread); --omp-wait default
leaves the variable alone.

Memory: slow_forward allocates several [1, 1536, L, 16] fp32 temporaries (50 MB each at L = 512) per
layer. glibc serves allocations that large with fresh mmaps and unmaps them on free, so every call
page-faults them in again; in this VM a page fault costs ~15 us and that alone made mixer_prefill
~0.75 s instead of ~0.09 s. By default (--malloc reuse) the script therefore calls
mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, 2^31-1) before importing torch, so freed
memory stays in the heap and is reused, as a caching allocator (jemalloc, tcmalloc) would do;
--malloc default measures glibc as it comes (then use --model-repeats 1: a model prefill takes
tens of seconds here).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time



def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--threads', type=int, nargs='+', default=[1, 2],
                   help='thread counts, each run in its own process (default: 1 2)')
    p.add_argument('--length', type=int, default=512, help='prompt length for the prefills')
    p.add_argument('--repeats', type=int, default=5, help='timed runs of mixer_prefill')
    p.add_argument('--model-repeats', type=int, default=2, help='timed runs of each model prefill')
    p.add_argument('--decode-tokens', type=int, default=16, help='tokens per timed decode block')
    p.add_argument('--decode-repeats', type=int, default=3, help='timed decode blocks')
    p.add_argument('--malloc', choices=('reuse', 'default'), default='reuse',
                   help='reuse: keep freed memory in the process (mallopt M_MMAP_MAX=0, '
                        'M_TRIM_THRESHOLD=2^31-1) so large temporaries do not page-fault anew on '
                        'every call; default: glibc as it comes')
    p.add_argument('--omp-wait', choices=('passive', 'default'), default='passive',
                   help='passive: run with OMP_WAIT_POLICY=passive, so idle OpenMP workers sleep '
                        'instead of spinning against the OpenBLAS threads; default: leave it unset')
    p.add_argument('--json', metavar='FILE', help='also write the results as JSON')
    p.add_argument('--check', action='store_true',
                   help='check decode against prefill instead of timing (first thread count only)')
    return p.parse_args()


def child_argv(a, threads, json_path):
    argv = [sys.executable, os.path.abspath(__file__), '--threads', str(threads),
            '--length', str(a.length), '--repeats', str(a.repeats),
            '--model-repeats', str(a.model_repeats), '--decode-tokens', str(a.decode_tokens),
            '--decode-repeats', str(a.decode_repeats), '--malloc', a.malloc, '--omp-wait', a.omp_wait]
    if json_path:
        argv += ['--json', json_path]
    if a.check:
        argv.append('--check')
    return argv


def child_env(a, threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
    if a.omp_wait == 'passive':
        env['OMP_WAIT_POLICY'] = 'passive'
    return env


def run_all_thread_counts(a):
    """Parent: one subprocess per thread count with OPENBLAS_NUM_THREADS set; merge their JSON."""
    results = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for threads in a.threads:
            path = os.path.join(tmp, f'threads{threads}.json')
            env = child_env(a, threads)
            sys.stdout.flush()
            rc = subprocess.run(child_argv(a, threads, path), env=env).returncode
            if rc != 0:
                sys.exit(rc)
            with open(path) as f:
                results.update(json.load(f))
    print(f'total wall time {time.perf_counter() - start:.1f} s')
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(results, f, indent=2, sort_keys=True)


if __name__ == '__main__':
    # Before torch is imported: fan out over thread counts, or make sure OPENBLAS_NUM_THREADS
    # matches the one thread count (OpenBLAS sizes its thread pool when it is loaded).
    a = parse_args()
    if a.check:
        a.threads = a.threads[:1]
    if len(a.threads) > 1:
        run_all_thread_counts(a)
        sys.exit(0)
    _env = child_env(a, a.threads[0])
    if any(os.environ.get(k) != _env[k] for k in ('OPENBLAS_NUM_THREADS', 'OMP_WAIT_POLICY') if k in _env):
        sys.stdout.flush()
        os.execve(sys.executable, child_argv(a, a.threads[0], a.json), _env)

import ctypes  # noqa: E402
import math  # noqa: E402

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4                                                   # <malloc.h>
if __name__ == '__main__' and a.malloc == 'reuse':
    _libc = ctypes.CDLL('libc.so.6')
    if not (_libc.mallopt(M_MMAP_MAX, 0) and _libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1)):
        raise SystemExit('mallopt failed')

import torch  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from torch_blas import blas_report  # noqa: E402  (bench/support/torch_blas.py)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# ---------------------------------------------------------------------------------------------
# The model: transformers' MambaForCausalLM, slow_forward path, written out in plain torch.

class Config:
    vocab_size = 50280
    hidden_size = 768
    state_size = 16
    num_hidden_layers = 24
    layer_norm_epsilon = 1e-5
    intermediate_size = 1536
    conv_kernel = 4
    time_step_rank = 48
    use_bias = False
    use_conv_bias = True
    time_step_min = 0.001
    time_step_max = 0.1
    time_step_floor = 1e-4
    initializer_range = 0.02


class MambaCache:
    """Per-layer conv_states [B, I, K] (raw pre-conv x, newest last) and ssm_states [B, I, N]."""

    def __init__(self, config, batch_size, dtype=torch.float32):
        shape_conv = (batch_size, config.intermediate_size, config.conv_kernel)
        shape_ssm = (batch_size, config.intermediate_size, config.state_size)
        self.conv_kernel_size = config.conv_kernel
        self.conv_states = [torch.zeros(shape_conv, dtype=dtype) for _ in range(config.num_hidden_layers)]
        self.ssm_states = [torch.zeros(shape_ssm, dtype=dtype) for _ in range(config.num_hidden_layers)]

    def update_conv_state(self, layer_idx, new_conv_state):
        # decode: shift left by one, write the new x at the end (transformers' roll + index write)
        conv_state = self.conv_states[layer_idx].roll(shifts=-1, dims=-1)
        conv_state[:, :, -1:] = new_conv_state
        self.conv_states[layer_idx].copy_(conv_state)
        return self.conv_states[layer_idx]


class MambaRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class MambaMixer(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.layer_idx = layer_idx
        self.hidden_size = config.hidden_size
        self.ssm_state_size = config.state_size
        self.conv_kernel_size = config.conv_kernel
        self.intermediate_size = config.intermediate_size
        self.time_step_rank = config.time_step_rank
        I, N, R = self.intermediate_size, self.ssm_state_size, self.time_step_rank
        self.conv1d = nn.Conv1d(I, I, kernel_size=config.conv_kernel, groups=I,
                                padding=config.conv_kernel - 1, bias=config.use_conv_bias)
        self.act = nn.SiLU()
        self.in_proj = nn.Linear(self.hidden_size, 2 * I, bias=config.use_bias)
        self.x_proj = nn.Linear(I, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, I, bias=True)
        A = torch.arange(1, N + 1, dtype=torch.float32)[None, :].expand(I, -1).contiguous()
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(I))
        self.out_proj = nn.Linear(I, self.hidden_size, bias=config.use_bias)

    def forward(self, input_states, cache_params=None, prefill=True):
        """slow_forward. input_states [B, L, d_model]. With cache_params: prefill=True fills the
        caches from the whole prompt (transformers' cache_position.shape[0] == conv_kernel branch),
        prefill=False is a one-token decode step from them."""
        batch_size, seq_len, _ = input_states.shape
        dtype = input_states.dtype
        # 1. Gated MLP's linear projection
        projected_states = self.in_proj(input_states).transpose(1, 2)          # [B, 2I, L]
        hidden_states, gate = projected_states.chunk(2, dim=1)

        # 2. Convolution sequence transformation
        if cache_params is not None:
            ssm_state = cache_params.ssm_states[self.layer_idx].clone()
            if prefill:
                conv_state = F.pad(hidden_states, (self.conv_kernel_size - hidden_states.shape[-1], 0))
                cache_params.conv_states[self.layer_idx].copy_(conv_state)
                hidden_states = self.act(self.conv1d(hidden_states)[..., :seq_len])   # [B, I, L]
            else:
                conv_state = cache_params.update_conv_state(self.layer_idx, hidden_states)
                hidden_states = torch.sum(conv_state * self.conv1d.weight[:, 0, :], dim=-1)
                if self.conv1d.bias is not None:
                    hidden_states += self.conv1d.bias
                hidden_states = self.act(hidden_states).to(dtype).unsqueeze(-1)       # [B, I, 1]
        else:
            ssm_state = torch.zeros((batch_size, self.intermediate_size, self.ssm_state_size),
                                    dtype=dtype)
            hidden_states = self.act(self.conv1d(hidden_states)[..., :seq_len])       # [B, I, L]

        # 3. State Space Model sequence transformation
        # 3.a. Selection: [B, L, R + 2N]
        ssm_parameters = self.x_proj(hidden_states.transpose(1, 2))
        time_step, B, C = torch.split(
            ssm_parameters, [self.time_step_rank, self.ssm_state_size, self.ssm_state_size], dim=-1)
        discrete_time_step = self.dt_proj(time_step)                                   # [B, L, I]
        discrete_time_step = F.softplus(discrete_time_step).transpose(1, 2)            # [B, I, L]

        # 3.b. Discretization: [B, I, L, N]
        A = -torch.exp(self.A_log.float())                                             # [I, N]
        discrete_A = torch.exp(A[None, :, None, :] * discrete_time_step[:, :, :, None])
        discrete_B = discrete_time_step[:, :, :, None] * B[:, None, :, :].float()
        deltaB_u = discrete_B * hidden_states[:, :, :, None].float()

        # 3.c. The recurrence, sequentially over L
        scan_outputs = []
        for i in range(seq_len):
            ssm_state = discrete_A[:, :, i, :] * ssm_state + deltaB_u[:, :, i, :]       # [B, I, N]
            scan_output = torch.matmul(ssm_state.to(dtype), C[:, i, :].unsqueeze(-1))  # [B, I, 1]
            scan_outputs.append(scan_output[:, :, 0])
        scan_output = torch.stack(scan_outputs, dim=-1)                                # [B, I, L]
        scan_output = scan_output + (hidden_states * self.D[None, :, None])
        scan_output = scan_output * self.act(gate)
        if cache_params is not None:
            cache_params.ssm_states[self.layer_idx].copy_(ssm_state)

        # 4. Final linear projection
        return self.out_proj(scan_output.transpose(1, 2))                              # [B, L, d_model]


class MambaBlock(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.norm = MambaRMSNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.mixer = MambaMixer(config, layer_idx=layer_idx)

    def forward(self, hidden_states, cache_params=None, prefill=True):
        residual = hidden_states
        hidden_states = self.norm(hidden_states.to(dtype=self.norm.weight.dtype))
        residual = residual.to(torch.float32)                                          # residual_in_fp32
        hidden_states = self.mixer(hidden_states, cache_params=cache_params, prefill=prefill)
        return residual + hidden_states


class MambaModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([MambaBlock(config, i) for i in range(config.num_hidden_layers)])
        self.norm_f = MambaRMSNorm(config.hidden_size, eps=config.layer_norm_epsilon)

    def forward(self, input_ids, cache_params=None, prefill=True):
        hidden_states = self.embeddings(input_ids)
        for layer in self.layers:
            hidden_states = layer(hidden_states, cache_params=cache_params, prefill=prefill)
        return self.norm_f(hidden_states)


class MambaForCausalLM(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.backbone = MambaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.lm_head.weight = self.backbone.embeddings.weight                          # tied

    def forward(self, input_ids, cache_params=None, prefill=True, logits_to_keep=0):
        """logits_to_keep=0: all positions; 1: the last one (generate's prefill)."""
        hidden_states = self.backbone(input_ids, cache_params=cache_params, prefill=prefill)
        hidden_states = hidden_states[:, -logits_to_keep:, :]                          # -0: all
        return self.lm_head(hidden_states.to(self.lm_head.weight.dtype)).float()


@torch.no_grad()
def init_mixer_(mixer, config, gen):
    """Random but sane weights: the mamba_ssm / transformers initialisation, normal(0.02) for the
    projections; A_log = log(1..N), D = 1, dt_proj.bias = softplus^-1(dt), dt in [0.001, 0.1]."""
    std = config.initializer_range
    mixer.in_proj.weight.normal_(0.0, std, generator=gen)
    bound = 1.0 / math.sqrt(config.conv_kernel)                                        # Conv1d default
    mixer.conv1d.weight.uniform_(-bound, bound, generator=gen)
    mixer.conv1d.bias.uniform_(-bound, bound, generator=gen)
    mixer.x_proj.weight.normal_(0.0, std, generator=gen)
    dt_init_std = config.time_step_rank ** -0.5
    mixer.dt_proj.weight.uniform_(-dt_init_std, dt_init_std, generator=gen)
    u = torch.rand(config.intermediate_size, generator=gen)
    dt = torch.exp(u * (math.log(config.time_step_max) - math.log(config.time_step_min))
                   + math.log(config.time_step_min)).clamp(min=config.time_step_floor)
    mixer.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
    mixer.out_proj.weight.normal_(0.0, std / math.sqrt(config.num_hidden_layers), generator=gen)


@torch.no_grad()
def build_model(config, seed=0):
    torch.manual_seed(seed)
    model = MambaForCausalLM(config)
    gen = torch.Generator().manual_seed(seed)
    model.backbone.embeddings.weight.normal_(0.0, config.initializer_range, generator=gen)
    for layer in model.backbone.layers:
        init_mixer_(layer.mixer, config, gen)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Timing

def best_time(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def best_per_token(step, tokens, repeats, warmup=2):
    """step(i) decodes the i-th token; best block of `tokens` steps, divided by `tokens`."""
    i = 0
    for _ in range(warmup):
        step(i)
        i += 1
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(tokens):
            step(i)
            i += 1
        best = min(best, (time.perf_counter() - start) / tokens)
    return best


def check_finite(name, t):
    if not torch.isfinite(t).all():
        raise SystemExit(f'{name}: non-finite values in the output')


@torch.no_grad()
def run_timings(a, threads, config):
    results = {}

    def report(name, seconds, tokens_per_run, decode=False):
        results[f'{name}/threads:{threads}'] = seconds
        if decode:
            print(f'threads={threads} {name}: {seconds * 1e3:.2f} ms/token ({1.0 / seconds:.1f} tokens/s)',
                  flush=True)
        else:
            print(f'threads={threads} {name}: {seconds * 1e3:.1f} ms '
                  f'({tokens_per_run / seconds:.0f} tokens/s)', flush=True)

    model = build_model(config)
    L, total_decode = a.length, 2 + a.decode_tokens * a.decode_repeats
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, config.vocab_size, (1, L), generator=gen)
    decode_ids = torch.randint(0, config.vocab_size, (total_decode, 1, 1), generator=gen)

    # mixer: layer 0's, on its RMSNorm-ed input
    mixer = model.backbone.layers[0].mixer
    x = model.backbone.layers[0].norm(model.backbone.embeddings(ids))
    decode_x = model.backbone.layers[0].norm(model.backbone.embeddings(decode_ids[:, 0]))  # [T, 1, 768]
    check_finite('mixer_prefill', mixer(x))
    report('mixer_prefill', best_time(lambda: mixer(x), a.repeats), L)

    cache = MambaCache(config, 1)
    mixer(x, cache_params=cache, prefill=True)
    report('mixer_decode', best_per_token(
        lambda i: mixer(decode_x[i:i + 1], cache_params=cache, prefill=False),
        a.decode_tokens, a.decode_repeats), 1, decode=True)
    check_finite('mixer_decode', cache.ssm_states[0])

    caches = []

    def prefill_last():
        caches.append(MambaCache(config, 1))
        return model(ids, cache_params=caches[-1], prefill=True, logits_to_keep=1)

    check_finite('model_prefill', prefill_last())
    report('model_prefill', best_time(prefill_last, a.model_repeats, warmup=0), L)
    report('model_prefill_all_logits',
           best_time(lambda: model(ids, logits_to_keep=0), a.model_repeats, warmup=1), L)

    cache = caches[-1]
    logits = []

    def decode_step(i):
        logits.append(model(decode_ids[i], cache_params=cache, prefill=False, logits_to_keep=1))

    report('model_decode', best_per_token(decode_step, a.decode_tokens, a.decode_repeats), 1, decode=True)
    check_finite('model_decode', logits[-1])
    return results


# ---------------------------------------------------------------------------------------------
# Correctness: decode token by token == prefill

def mixer_ref(m, hidden):
    """mamba_ssm's Mamba.forward (reference path): conv1d, then selective_scan_ref's einsums."""
    I, N, R = m.intermediate_size, m.ssm_state_size, m.time_step_rank
    K, L = m.conv_kernel_size, hidden.shape[1]
    xz = torch.einsum('bld,ed->bel', hidden, m.in_proj.weight)
    x, z = xz[:, :I], xz[:, I:]
    x = F.pad(x, (K - 1, 0))
    u = F.silu(sum(m.conv1d.weight[None, :, 0, k, None] * x[:, :, k:k + L] for k in range(K))
               + m.conv1d.bias[None, :, None])
    x_dbl = torch.einsum('bdl,ed->ble', u, m.x_proj.weight)
    delta = torch.einsum('blr,dr->bdl', x_dbl[..., :R], m.dt_proj.weight)
    B, C = x_dbl[..., R:R + N].transpose(1, 2), x_dbl[..., R + N:].transpose(1, 2)  # [b, n, l]
    A = -torch.exp(m.A_log)
    delta = F.softplus(delta + m.dt_proj.bias[:, None])
    deltaA = torch.exp(torch.einsum('bdl,dn->bdln', delta, A))
    deltaB_u = torch.einsum('bdl,bnl,bdl->bdln', delta, B, u)
    h = u.new_zeros(u.shape[0], I, N)
    ys = []
    for t in range(L):
        h = deltaA[:, :, t] * h + deltaB_u[:, :, t]
        ys.append(torch.einsum('bdn,bn->bd', h, C[:, :, t]))
    y = (torch.stack(ys, dim=2) + u * m.D[:, None]) * F.silu(z)
    return torch.einsum('bdl,ed->ble', y, m.out_proj.weight)


@torch.no_grad()
def run_check(config, length=13, split=6):
    rtol, atol = 1e-4, 1e-5
    ok = True

    def compare(name, got, want):
        nonlocal ok
        good = bool(torch.isfinite(got).all()) and torch.allclose(got, want, rtol=rtol, atol=atol)
        err = (got - want).abs().max().item()
        scale = want.abs().max().item()
        print(f'check {name}: max |diff| {err:.3g} (max |ref| {scale:.3g}) '
              f'{"OK" if good else "FAILED"}', flush=True)
        ok = ok and good

    model = build_model(config)
    gen = torch.Generator().manual_seed(2)
    # an independently written formulation (mamba_ssm's Mamba.forward with selective_scan_ref)
    mixer = model.backbone.layers[0].mixer
    x = torch.randn(1, 64, config.hidden_size, generator=gen)
    compare('mixer[0] prefill vs selective_scan_ref formulation', mixer(x), mixer_ref(mixer, x))
    ids = torch.randint(0, config.vocab_size, (1, length), generator=gen)
    for layer_idx in (0, config.num_hidden_layers - 1):
        mixer = model.backbone.layers[layer_idx].mixer
        x = torch.randn(1, length, config.hidden_size, generator=gen)
        x = model.backbone.layers[layer_idx].norm(x)
        want = mixer(x)                                                                # no cache
        # token by token from empty caches
        cache = MambaCache(config, 1)
        got = torch.cat([mixer(x[:, t:t + 1], cache_params=cache, prefill=False)
                         for t in range(length)], dim=1)
        compare(f'mixer[{layer_idx}] decode x{length} vs prefill', got, want)
        # prefill with cache (shorter and longer than the conv kernel), then decode the rest
        for p in (2, split):
            cache = MambaCache(config, 1)
            head = mixer(x[:, :p], cache_params=cache, prefill=True)
            tail = [mixer(x[:, t:t + 1], cache_params=cache, prefill=False) for t in range(p, length)]
            compare(f'mixer[{layer_idx}] prefill {p} + decode {length - p} vs prefill',
                    torch.cat([head] + tail, dim=1), want)

    want = model(ids, logits_to_keep=0)                                                # [1, L, V]
    cache = MambaCache(config, 1)
    got = torch.cat([model(ids[:, t:t + 1], cache_params=cache, prefill=False, logits_to_keep=1)
                     for t in range(length)], dim=1)
    compare(f'model decode x{length} vs prefill (all logits)', got, want)
    cache = MambaCache(config, 1)
    head = model(ids[:, :split], cache_params=cache, prefill=True, logits_to_keep=1)
    compare(f'model prefill {split} last logits vs all logits', head, want[:, split - 1:split])
    tail = [model(ids[:, t:t + 1], cache_params=cache, prefill=False, logits_to_keep=1)
            for t in range(split, length)]
    compare(f'model prefill {split} + decode {length - split} vs prefill',
            torch.cat(tail, dim=1), want[:, split:])
    print('check passed' if ok else 'check FAILED', flush=True)
    return ok


def main():
    threads = a.threads[0]
    torch.set_num_threads(threads)
    config = Config()
    print(f'torch {torch.__version__}, torch.get_num_threads()={torch.get_num_threads()}, '
          f'OPENBLAS_NUM_THREADS={os.environ.get("OPENBLAS_NUM_THREADS")}, '
          f'OMP_WAIT_POLICY={os.environ.get("OMP_WAIT_POLICY")}')
    print('malloc: ' + ('reuse (mallopt M_MMAP_MAX=0, M_TRIM_THRESHOLD=2^31-1)' if a.malloc == 'reuse'
                        else 'glibc default (large temporaries are fresh mmaps, page-faulted on every call)'))
    for line in blas_report():
        print(line)
    print(f'Mamba 130m shape: d_model {config.hidden_size}, {config.num_hidden_layers} layers, '
          f'vocab {config.vocab_size}, d_inner {config.intermediate_size}, state {config.state_size}, '
          f'conv {config.conv_kernel}, dt_rank {config.time_step_rank}; float32, batch 1, '
          f'prompt {a.length}', flush=True)
    if a.check:
        sys.exit(0 if run_check(config) else 1)
    results = run_timings(a, threads, config)
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(results, f, indent=2, sort_keys=True)


if __name__ == '__main__':
    main()
