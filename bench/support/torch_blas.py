"""What the PyTorch comparison scripts of bench/ share: the BLAS report (the lines they print first), their
common options, the re-execution that sets the BLAS / OpenMP / malloc environment, and the timing loop.

Debian's torch linked against the reference BLAS (libblas.so.3 -> blas/) runs ~2.5 GFLOP/s and would make
every comparison meaningless: blas_report() says which library is loaded and warns when it is not
OpenBLAS. Import from a script with sys.path.insert(0, <bench/support>).

This module does not import torch at module level: a script imports it, parses its options and calls
reexec_with_blas_env() BEFORE it imports torch (OpenBLAS reads OPENBLAS_NUM_THREADS when it is loaded, and
glibc reads GLIBC_TUNABLES at process start). Only blas_report() and print_setup() import torch, when called.
"""

import ctypes
import os
import statistics
import sys
import time

LIBBLAS = '/usr/lib/x86_64-linux-gnu/libblas.so.3'


def blas_report():
    import torch
    lines = []
    build = [line for line in torch.__config__.show().splitlines() if 'BLAS_INFO' in line]
    blas_info = 'BLAS_INFO=?'
    if build:
        items = [s.strip() for s in build[0].split(',')]
        blas_info = ', '.join(s.split('Build settings: ')[-1] for s in items
                              if 'BLAS_INFO' in s or 'LAPACK_INFO' in s)
    alternative = os.path.realpath(LIBBLAS)
    torch.mm(torch.ones(64, 64), torch.ones(64, 64))                                   # loads BLAS
    loaded = set()
    with open('/proc/self/maps') as f:
        for line in f:
            path = line.split()[-1]
            name = os.path.basename(path)
            if path.startswith('/') and ('blas' in name or 'mkl' in name) and '.so' in name:
                loaded.add(path)
    lines.append(f'torch.__config__: {blas_info}')
    lines.append(f'libblas.so.3 alternative -> {alternative}; BLAS libraries loaded: '
                 f'{", ".join(sorted(loaded)) or "none"}')
    openblas = [p for p in loaded if 'openblas' in p]
    if openblas:
        try:
            lib = ctypes.CDLL(openblas[0])
            lib.openblas_get_config.restype = ctypes.c_char_p
            lines.append(f'OpenBLAS: {lib.openblas_get_config().decode()}, '
                         f'openblas_get_num_threads()={lib.openblas_get_num_threads()}')
        except (OSError, AttributeError):
            pass
    if 'openblas' not in alternative or not openblas:
        lines.append('WARNING: torch is not using OpenBLAS (libblas.so.3 is probably the reference '
                     'BLAS, ~2.5 GFLOP/s): apt-get install -y libopenblas0-pthread')
    return lines


def print_setup(args):
    """torch.set_num_threads(args.threads), then the lines attention_torch.py, neighborhood_torch.py and
    linear_torch.py print first: torch's version and threads, the environment reexec_with_blas_env() set,
    the malloc mode and the kernel's THP mode, and blas_report()."""
    import torch
    torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, torch.get_num_threads()={torch.get_num_threads()}, '
          f'OPENBLAS_NUM_THREADS={os.environ.get("OPENBLAS_NUM_THREADS")}, '
          f'OMP_WAIT_POLICY={os.environ.get("OMP_WAIT_POLICY")}, '
          f'malloc={args.malloc} (GLIBC_TUNABLES={os.environ.get("GLIBC_TUNABLES")!r}, THP {thp_mode()})')
    for line in blas_report():
        print(line)


# ---------------------------------------------------------------------------------------------
# Options and environment (attention_torch.py, neighborhood_torch.py, linear_torch.py)

def add_common_args(parser, own_args=None, filter_arg=False):
    """Adds the shared options to an argparse parser, in the scripts' --help order: --threads, --min-time,
    --max-runs, then the script's own options (own_args(parser), if given), --malloc, --filter (if
    filter_arg), --skip-check."""
    parser.add_argument('--threads', type=int, default=1, help='torch / OpenBLAS threads (default 1)')
    parser.add_argument('--min-time', type=float, default=1.0,
                        help='keep timing a case until it has run this many seconds (default 1.0)')
    parser.add_argument('--max-runs', type=int, default=50, help='at most this many timed runs per case')
    if own_args is not None:
        own_args(parser)
    parser.add_argument('--malloc', choices=('thp', 'default'), default='thp',
                        help='thp: GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (transparent huge pages for malloc); '
                             'default: glibc as it comes (4 KiB pages)')
    if filter_arg:
        parser.add_argument('--filter', default='', help='only the cases whose name contains this string')
    parser.add_argument('--skip-check', action='store_true', help='skip the small-shape formulation check')
    return parser


def reexec_with_blas_env(args, script_path):
    """Call before torch is imported. Unless the environment already says so, re-executes script_path
    (with the same command line) with OPENBLAS_NUM_THREADS=args.threads, OMP_WAIT_POLICY=passive and,
    for args.malloc == 'thp', glibc.malloc.hugetlb=1 added to GLIBC_TUNABLES (any other malloc.hugetlb
    tunable removed; the other tunables kept). Returns only when nothing needed changing."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_WAIT_POLICY='passive')
    tunables = [t for t in os.environ.get('GLIBC_TUNABLES', '').split(':') if t and 'malloc.hugetlb' not in t]
    if args.malloc == 'thp':
        tunables.append('glibc.malloc.hugetlb=1')
    env['GLIBC_TUNABLES'] = ':'.join(tunables)
    if any(os.environ.get(k, '') != env[k] for k in ('OPENBLAS_NUM_THREADS', 'OMP_WAIT_POLICY', 'GLIBC_TUNABLES')):
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, os.path.abspath(script_path)] + sys.argv[1:], env)


# ---------------------------------------------------------------------------------------------
# Timing and memory reporting

def time_case(fn, min_time, max_runs, min_runs=3):
    """One warm-up call, then >= min_runs timed calls, more (up to max_runs) while the timed calls have
    taken less than min_time seconds. Returns (median seconds, list of the runs' seconds)."""
    fn()                                                                               # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < min_time and len(times) < max_runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def thp_mode():
    try:
        with open('/sys/kernel/mm/transparent_hugepage/enabled') as f:
            return f.read().strip()
    except OSError:
        return '?'


def anon_huge_pages():
    try:
        with open('/proc/self/smaps_rollup') as f:
            return next((line.split(':')[1].strip() for line in f if line.startswith('AnonHugePages')), '?')
    except OSError:
        return '?'
