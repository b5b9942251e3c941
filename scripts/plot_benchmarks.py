#!/usr/bin/env python3
"""Draws the README's benchmark plots from Google Benchmark JSON files (scripts/plot runs the
benchmarks, then this; run it alone to redraw):

  time_per_token.png     time per token vs sequence length L, one series per token mixer
  machine_fraction.png   achieved fraction of this machine's limit per operator (the benchmarks'
                         *_bound counters: bench/support/counters.hpp, bench/support/limits.hpp)
  speedup_vs_oracle.png  oracle time / kernel time, for every oracle run at a kernel's shape

  /usr/bin/python3 scripts/plot_benchmarks.py [--json-dir build/bench/plots] [--out-dir docs/plots]

Times are CPU time of the benchmark's thread (Google Benchmark's cpu_time, or the benchmarks' own
ns_per_token counter, on the same clock), one thread, fp32. With --benchmark_repetitions, each case
keeps its fastest repetition (the least disturbed on a shared machine).

Every benchmark process measures the machine's limits when it starts (bench/support/main.hpp) and
reports its *_bound counters against them; on a busy machine a probe can come out up to 2x low,
which would inflate that process's fractions. machine_fraction.png therefore rescales every
fraction to the best limit any of the processes measured (the probes keep their best repetition
for the same reason), so a bar is never above what the best probe allows.
"""

import argparse
import glob
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter  # noqa: E402

DPI = 100
NS_PER_UNIT = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
FOOTNOTE = dict(fontsize=7.5, color="0.35", va="bottom", ha="left")


# ---- reading ------------------------------------------------------------------------------------


class Run:
    """One benchmark case: its name split into family and named arguments, CPU time in ns."""

    def __init__(self, entry, source):
        self.name = entry["run_name"] if "run_name" in entry else entry["name"]
        self.family, _, rest = self.name.partition("/")
        self.args = {}
        for part in rest.split("/") if rest else []:
            key, sep, value = part.partition(":")
            if sep:
                try:
                    self.args[key] = int(value)
                except ValueError:
                    self.args[key] = value
        self.cpu_ns = float(entry["cpu_time"]) * NS_PER_UNIT[entry.get("time_unit", "ns")]
        self.entry = entry
        self.source = source  # the executable (JSON file name), whose context holds its limits

    def get(self, key, default=None):
        return self.entry.get(key, default)


def load(json_dir):
    """{name: fastest Run}, {executable: context}, repetitions per case."""
    runs, contexts, repetitions = {}, {}, 1
    files = sorted(glob.glob(os.path.join(json_dir, "*.json")))
    if not files:
        sys.exit(f"plot_benchmarks: no *.json under {json_dir} (run scripts/plot first)")
    for path in files:
        with open(path) as f:
            data = json.load(f)
        source = os.path.splitext(os.path.basename(path))[0]
        contexts[source] = data.get("context", {})
        for entry in data.get("benchmarks", []):
            if entry.get("run_type", "iteration") != "iteration" or entry.get("error_occurred"):
                continue
            repetitions = max(repetitions, int(entry.get("repetitions", 1)))
            run = Run(entry, source)
            if run.name not in runs or run.cpu_ns < runs[run.name].cpu_ns:
                runs[run.name] = run
    return runs, contexts, repetitions


# Limits in the context (bench/support/main.hpp): name -> True when higher is better.
LIMITS = {"fma_gflops": True, "exp_ns_per_element": False, "exp2_ns_per_element": False,
          "read_gbps": True, "triad_gbps": True}


def limit(context, key):
    try:
        return float(context[key])
    except (KeyError, ValueError):
        return None


def best_limits(contexts):
    """The best value of each limit over the processes, and (min, max) of what they measured."""
    best, spread = {}, {}
    for key, higher in LIMITS.items():
        values = [v for v in (limit(c, key) for c in contexts.values()) if v is not None]
        if values:
            best[key] = max(values) if higher else min(values)
            spread[key] = (min(values), max(values))
    return best, spread


def machine_text(contexts, repetitions):
    ctx = next(iter(contexts.values()), {})
    parts = []
    if ctx.get("num_cpus"):
        parts.append(f"{ctx['num_cpus']} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz")
    if ctx.get("simd_arch"):
        parts.append(f"SIMD {ctx['simd_arch']}")
    if ctx.get("date"):
        parts.append(f"run {ctx['date'][:10]}")
    parts.append(f"fastest of {repetitions} repetition{'s' if repetitions != 1 else ''} per case")
    return "Machine: " + ", ".join(parts)


# ---- time per token -----------------------------------------------------------------------------


def ns_per_token(run, tokens):
    """The benchmark's own ns_per_token counter if it has one, else CPU time / tokens."""
    value = run.get("ns_per_token")
    return float(value) if value is not None else run.cpu_ns / tokens


# label, family, which cases, tokens per call, line style
TOKEN_SERIES = [
    ("Selective scan, Mamba-1 (D 1536, N 16)", "BM_SelectiveScan_Simd",
     lambda a: a.get("D") == 1536, lambda a: a["B"] * a["L"], dict(color="tab:blue", marker="o")),
    ("SSD, Mamba-2 (H 32, P 64, N 128; auto algorithm)", "BM_SSD_Auto",
     lambda a: True, lambda a: a["B"] * a["L"], dict(color="tab:orange", marker="s")),
    ("Dense softmax attention, causal (H 8, P 64)", "BM_Attention_Dense",
     lambda a: a.get("causal") == 1, lambda a: a["L"], dict(color="tab:red", marker="^")),
    ("Block-sparse attention, sliding window, 10% (H 8, P 64)", "BM_Attention_BlockSparse_SlidingWindow",
     lambda a: True, lambda a: a["L"], dict(color="tab:purple", marker="v")),
    ("Block-sparse attention, block top-k, 10% (H 8, P 64)", "BM_Attention_BlockSparse_TopK",
     lambda a: True, lambda a: a["L"], dict(color="tab:pink", marker="v", linestyle="--")),
    ("1-D neighborhood attention, window 7 (H 4, P 32)", "BM_NeighborhoodAttention1d_Fused",
     lambda a: a.get("K") == 7 and a.get("dil") == 1, lambda a: a["L"], dict(color="tab:green", marker="D")),
    ("1-D neighborhood attention, window 65 (H 4, P 32)", "BM_NeighborhoodAttention1d_Fused",
     lambda a: a.get("K") == 65 and a.get("dil") == 1, lambda a: a["L"],
     dict(color="tab:olive", marker="D", linestyle="--")),
    ("Lightning attention (H 8, K = V 64)", "BM_LightningAttention_Simd",
     lambda a: True, lambda a: a["L"], dict(color="tab:cyan", marker="P")),
]


def length_label(value, _pos=None):
    value = int(round(value))
    return f"{value // 1024}K" if value >= 1024 and value % 1024 == 0 else str(value)


def ns_label(value, _pos=None):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if value >= scale:
            return f"{value / scale:g} {unit}"
    return f"{value:g} ns"


def plot_time_per_token(runs, machine, path):
    fig, ax = plt.subplots(figsize=(10, 7.2))
    drawn, lengths, times = 0, set(), []
    for label, family, keep, tokens, style in TOKEN_SERIES:
        points = sorted((r.args["L"], ns_per_token(r, tokens(r.args)))
                        for r in runs.values() if r.family == family and "L" in r.args and keep(r.args))
        if not points:
            print(f"plot_benchmarks: warning: no points for '{label}' ({family})", file=sys.stderr)
            continue
        xs, ys = zip(*points)
        lengths.update(xs)
        times.extend(ys)
        ax.plot(xs, ys, label=label, linewidth=1.8, markersize=6, **style)
        drawn += 1
    if not drawn:
        sys.exit("plot_benchmarks: no time-per-token series found")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    low, high = min(lengths), max(lengths)
    ticks = [1 << e for e in range(low.bit_length() - 1, high.bit_length())]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(length_label))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(ticks[0] / 1.25, ticks[-1] * 1.25)
    ax.set_ylim(10 ** math.floor(math.log10(min(times))), 10 ** math.ceil(math.log10(max(times))))
    ax.yaxis.set_major_locator(LogLocator(base=10))
    ax.yaxis.set_major_formatter(FuncFormatter(ns_label))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("sequence length L (tokens, batch 1)")
    ax.set_ylabel("time per token = CPU time of one call / L")
    ax.set_title("Time per token vs sequence length (prefill, one layer's token mixer)\n"
                 "1 thread, fp32, this machine; lower is better, flat = linear in L", fontsize=12)
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", axis="y", alpha=0.15)
    ax.legend(fontsize=8.5, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, framealpha=0.9)
    fig.text(0.01, 0.005, machine + ".\nWidths differ per family (in the legend): compare the slopes, "
             "and absolute times within a family.", **FOOTNOTE)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return drawn


# ---- fraction of the machine limit --------------------------------------------------------------

# (benchmark name, bound counter, the limit it is measured against: bench/*.cpp)
TRACKED = [
    ("BM_SelectiveScan_Simd/B:1/L:2048/D:1536/N:16", "exp_bound", "exp_ns_per_element"),
    ("BM_SelectiveScan_Simd/B:1/L:3136/D:192/N:16", "exp_bound", "exp_ns_per_element"),
    ("BM_SelectiveStateUpdate_Simd/B:1/D:1536/N:16", "bw_bound", "read_gbps"),
    ("BM_CausalConv1d_Simd/B:1/L:2048/D:1536/K:4", "bw_bound", "triad_gbps"),
    ("BM_CausalConv1dUpdate_Simd/B:1/D:1536/K:4", "bw_bound", "triad_gbps"),
    ("BM_SSD_Chunked/B:1/L:2048/H:32/P:64/N:128", "fma_bound", "fma_gflops"),
    ("BM_SSD_ChunkedMatmuls/B:1/L:2048/H:32/P:64/N:128", "fma_bound", "fma_gflops"),
    ("BM_SSDStateUpdate_Simd/B:1/H:32/P:64/N:128", "bw_bound", "read_gbps"),
    ("BM_Attention_Dense/causal:1/L:4096/H:8/P:64", "fma_bound", "fma_gflops"),
    ("BM_Attention_BlockSparse_SlidingWindow/L:8192/H:8/P:64/block:64/density_pct:10", "fma_bound", "fma_gflops"),
    ("BM_Attention_Decode/Lk:32768/H:8/P:64", "bw_bound", "read_gbps"),
    ("BM_NeighborhoodAttention1d_Fused/L:4096/K:7/dil:1/H:4/P:32", "fma_bound", "fma_gflops"),
    ("BM_NeighborhoodAttention2d_Fused/X:56/Y:56/K:7/dil:1/H:4/P:32", "fma_bound", "fma_gflops"),
    ("BM_LightningAttention_Simd/L:1024/H:8/K:64/V:64", "fma_bound", "fma_gflops"),
    ("BM_LightningAttention_ChunkMatmuls/L:4096/H:8/K:64/V:64", "fma_bound", "fma_gflops"),
    ("BM_LightningAttention_Decode/H:8/K:64/V:64", "bw_bound", "triad_gbps"),
    ("BM_DepthwiseConv2d_Simd/H:56/W:56/C:32/K:3", "bw_bound", "triad_gbps"),
    ("BM_Linear_Simd/M:512/K:768/N:3072", "fma_bound", "fma_gflops"),
    ("BM_Linear_Simd/M:1/K:768/N:3072", "bandwidth_bound", "read_gbps"),
]

LIMIT_STYLE = {  # limit -> (legend, color)
    "fma_gflops": ("flops at the FMA peak (fma_bound)", "tab:blue"),
    "exp_ns_per_element": ("exps at simd::exp throughput (exp_bound)", "tab:orange"),
    "read_gbps": ("bytes at streaming-read bandwidth (bw_bound, bandwidth_bound)", "tab:green"),
    "triad_gbps": ("bytes at STREAM-triad bandwidth (bw_bound)", "tab:olive"),
}
LIMIT_TEXT = {"fma_gflops": "FMA {:.0f} GFLOP/s", "exp_ns_per_element": "exp {:.3g} ns/float",
              "read_gbps": "read {:.1f} GB/s", "triad_gbps": "triad {:.1f} GB/s"}


def rescaled_fraction(value, own, best, higher_is_better):
    """The fraction against the best limit instead of the process's own measurement."""
    if own is None or best is None:
        return value
    return value * (own / best if higher_is_better else best / own)


def plot_machine_fraction(runs, contexts, machine, path):
    best, spread = best_limits(contexts)
    bars = []
    for name, counter, key in TRACKED:
        run = runs.get(name)
        if run is None or run.get(counter) is None:
            print(f"plot_benchmarks: warning: no {counter} for {name}", file=sys.stderr)
            continue
        own = limit(contexts.get(run.source, {}), key)
        value = rescaled_fraction(float(run.get(counter)), own, best.get(key), LIMITS[key])
        bars.append((name, counter, key, value))
    if not bars:
        sys.exit("plot_benchmarks: none of the tracked benchmarks ran")
    bars.reverse()  # the first listed at the top
    fig, ax = plt.subplots(figsize=(12, 0.36 * len(bars) + 2.9))
    ys = list(range(len(bars)))
    values = [b[3] for b in bars]
    ax.barh(ys, values, color=[LIMIT_STYLE[b[2]][1] for b in bars], height=0.7)
    ax.set_yticks(ys)
    ax.set_yticklabels([b[0] for b in bars], fontsize=7.5, family="monospace")
    right = max(1.1, max(values) * 1.3)
    for y, (_, counter, _, value) in zip(ys, bars):
        ax.text(value + right * 0.008, y, f"{value:.2f} {counter}", va="center", fontsize=7.5)
    ax.axvline(1.0, color="0.3", linestyle="--", linewidth=1)
    ax.set_xlim(0, right)
    ax.set_xlabel("fraction of the machine limit = time at the limit / measured time (1.0 = at the limit)")
    ax.set_title("Achieved fraction of this machine's limit per operator\n1 thread, fp32, this machine",
                 fontsize=12)
    used = [k for k in LIMIT_STYLE if any(b[2] == k for b in bars)]
    handles = [plt.Rectangle((0, 0), 1, 1, color=LIMIT_STYLE[k][1]) for k in used]
    ax.legend(handles, [LIMIT_STYLE[k][0] for k in used], fontsize=8, loc="upper center",
              bbox_to_anchor=(0.3, -0.09 * 24 / (len(bars) + 5)), ncol=2, framealpha=0.9)
    ax.grid(True, axis="x", alpha=0.4)
    limits_used = "; ".join(
        LIMIT_TEXT[k].format(best[k]) + f" (probes: {LIMIT_TEXT[k].split()[0]} " +
        f"{spread[k][0]:.3g}-{spread[k][1]:.3g})" for k in used if k in best)
    fig.text(0.01, 0.005, machine + ".\nLimits (bench/support/limits.hpp), the best of the "
             f"{len(contexts)} benchmark processes' start-up probes, every fraction rescaled to them: "
             + limits_used + ". Bandwidth fractions can pass 1.0: the benchmarks' headers say why (e.g. an "
             "in-place state update moves fewer bytes than STREAM triad counts).", wrap=True, **FOOTNOTE)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return len(bars)


# ---- speedup over the oracle --------------------------------------------------------------------


def plot_speedup(runs, machine, path):
    pairs = []
    for ref in runs.values():
        if not ref.family.endswith("_Reference"):
            continue
        base, suffix = ref.family[: -len("_Reference")], ref.name[len(ref.family):]
        for fast_family in (base + "_Simd", base + "_Fused"):
            fast = runs.get(fast_family + suffix)
            if fast is not None:
                pairs.append((fast.name, ref.cpu_ns / fast.cpu_ns))
                break
    if not pairs:
        print("plot_benchmarks: warning: no oracle and kernel at the same shape", file=sys.stderr)
        return 0
    pairs.sort(key=lambda p: p[1])
    fig, ax = plt.subplots(figsize=(11, 0.4 * len(pairs) + 2.4))
    ys = list(range(len(pairs)))
    values = [v for _, v in pairs]
    ax.barh(ys, values, color="tab:blue", height=0.7)
    ax.set_xscale("log")
    ax.set_yticks(ys)
    ax.set_yticklabels([n for n, _ in pairs], fontsize=8, family="monospace")
    for y, value in zip(ys, values):
        ax.text(value * 1.06, y, f"{value:.0f}x" if value >= 10 else f"{value:.1f}x", va="center", fontsize=8)
    ax.set_xlim(min(1.0, min(values) / 1.5), max(values) * 3)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}x"))
    ax.axvline(1.0, color="0.3", linewidth=1)
    ax.set_xlabel("speedup = oracle CPU time / kernel CPU time, same shape")
    ax.set_title("Kernels vs their reference oracles (tokenmix::ref, plain loops)\n"
                 "1 thread, fp32 kernels, this machine", fontsize=12)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.text(0.01, 0.005, machine + ".", **FOOTNOTE)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return len(pairs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json-dir", default="build/bench/plots")
    parser.add_argument("--out-dir", default="docs/plots")
    args = parser.parse_args()
    runs, contexts, repetitions = load(args.json_dir)
    machine = machine_text(contexts, repetitions)
    os.makedirs(args.out_dir, exist_ok=True)
    for file_name, draw, what in (
        ("time_per_token.png", lambda p: plot_time_per_token(runs, machine, p), "series"),
        ("machine_fraction.png", lambda p: plot_machine_fraction(runs, contexts, machine, p), "bars"),
        ("speedup_vs_oracle.png", lambda p: plot_speedup(runs, machine, p), "bars"),
    ):
        path = os.path.join(args.out_dir, file_name)
        count = draw(path)
        if count:
            print(f"plot_benchmarks: wrote {path} ({count} {what})")


if __name__ == "__main__":
    main()
