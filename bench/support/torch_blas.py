"""Which BLAS PyTorch runs on, for the PyTorch comparison scripts of bench/ (the lines they print first).

Debian's torch linked against the reference BLAS (libblas.so.3 -> blas/) runs ~2.5 GFLOP/s and would make
every comparison meaningless: blas_report() says which library is loaded and warns when it is not
OpenBLAS. Import from a script with sys.path.insert(0, <bench/support>).
"""

import ctypes
import os

import torch

LIBBLAS = '/usr/lib/x86_64-linux-gnu/libblas.so.3'


def blas_report():
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
