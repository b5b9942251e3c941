#!/usr/bin/env python3
"""Fixtures for tests/io/io_test.cpp: files written by Python, read back by tokenmix's io/ readers.

tests/data/io/tiny.safetensors is written BY HAND (struct + json; the `safetensors` package is not
available on Debian 12) following the huggingface/safetensors layout: u64 little-endian header length,
a JSON header padded with spaces to a multiple of 8 bytes, then the data buffer. F16 data comes from
numpy's float16, BF16 data from torch's bfloat16 (round-to-nearest-even from float32). The data is laid
out in an order different from the header's key order on purpose. The metadata value uses a non-ASCII
character that json.dumps writes as a \\u escape.

The .npy files come from numpy itself (np.save / np.lib.format.write_array).

Run with Debian's python3-numpy and python3-torch:  /usr/bin/python3 tests/data/make_io_fixture.py
The expected values are repeated, independently, in tests/io/io_test.cpp.
"""
import json
import os
import struct

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "io")


def bf16_bytes(values):
    t = torch.tensor(values, dtype=torch.float32).to(torch.bfloat16)
    return t.view(torch.int16).numpy().astype("<i2").tobytes()


def write_safetensors(path):
    f32 = np.array([[-1.5, 0.0, 0.25], [1.0, 2.5, 1e-3]], dtype="<f4")
    f16 = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, 2.0**-24, 2.0**-14, np.inf, -np.inf, 0.1, np.nan], dtype="<f2")
    bf16_values = [[1.0, 3.14159265], [2.0**-133, -3.3895313892515355e38]]
    scalar = np.array(42.0, dtype="<f4")
    i64 = np.array([1, -2, 3], dtype="<i8")
    empty = np.zeros((0, 3), dtype="<f4")

    # (name, dtype, shape, bytes) in DATA order; the header lists them in another order.
    blobs = [
        ("f16", "F16", list(f16.shape), f16.tobytes()),
        ("bf16", "BF16", [2, 2], bf16_bytes(bf16_values)),
        ("f32", "F32", list(f32.shape), f32.tobytes()),
        ("scalar", "F32", [], scalar.tobytes()),
        ("i64", "I64", list(i64.shape), i64.tobytes()),
        ("empty", "F32", list(empty.shape), empty.tobytes()),
    ]
    entries = {}
    offset = 0
    for name, dtype, shape, data in blobs:
        entries[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    header = {"__metadata__": {"format": "pt", "note": "h\u00e9llo from make_io_fixture.py"}}
    for name in ["f32", "empty", "bf16", "i64", "scalar", "f16"]:
        header[name] = entries[name]
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")  # ensure_ascii: \u00e9
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, data in blobs:
            f.write(data)


def write_npys():
    np.save(os.path.join(OUT, "tiny.npy"), (np.arange(24, dtype=np.float32) * 0.5 - 3.0).reshape(2, 3, 4))
    np.save(os.path.join(OUT, "tiny_f2.npy"), np.array([1.0, -0.5, 65504.0, 2.0**-24], dtype="<f2"))
    np.save(os.path.join(OUT, "tiny_i8.npy"), np.array([[7, -8], [1 << 40, 0]], dtype="<i8"))
    np.save(os.path.join(OUT, "tiny_0d.npy"), np.array(7.25, dtype="<f4"))
    np.save(os.path.join(OUT, "tiny_fortran.npy"), np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    with open(os.path.join(OUT, "tiny_v2.npy"), "wb") as f:
        np.lib.format.write_array(f, np.array([0.1, -2.0, 1e300], dtype="<f8"), version=(2, 0))


def main():
    os.makedirs(OUT, exist_ok=True)
    write_safetensors(os.path.join(OUT, "tiny.safetensors"))
    write_npys()
    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(os.path.join(OUT, name)), "bytes")


if __name__ == "__main__":
    main()
