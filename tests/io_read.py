#!/usr/bin/env python3
"""An independent safetensors reader (json + struct + numpy only) that checks
the files `test_io --write DIR` wrote against DIR/expect.txt: the layout the
format requires (header length, JSON object, dtypes, offsets that tile the
data section) and a few values bit for bit.

Usage: io_read.py DIR"""
import json
import os
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "I32": np.int32,
          "U8": np.uint8, "I64": np.int64, "F64": np.float64}
SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I32": 4, "U8": 1, "I64": 8, "F64": 8}


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert 2 <= n <= len(raw) - 8, f"{path}: header length {n}"
    assert (8 + n) % 8 == 0, f"{path}: header not padded to 8 bytes"
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    assert isinstance(header, dict), "header is not an object"
    meta = header.pop("__metadata__", {})
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    data = raw[8 + n:]
    tensors = {}
    pos = 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        b, e = info["data_offsets"]
        assert b == pos, f"{name}: offset {b}, expected {pos}"
        numel = int(np.prod(info["shape"], dtype=np.int64))
        assert e - b == numel * SIZES[info["dtype"]], f"{name}: size"
        dt = DTYPES[info["dtype"]]
        arr = np.frombuffer(data[b:e], dtype=dt).reshape(info["shape"])
        tensors[name] = arr
        pos = e
    assert pos == len(data), "data section not fully covered"
    return tensors, meta


def main():
    d = sys.argv[1]
    files = {}
    checked = 0
    with open(os.path.join(d, "expect.txt")) as f:
        for line in f:
            w = line.split()
            if w[1] not in files:
                files[w[1]] = load(os.path.join(d, w[1]))
            tensors, meta = files[w[1]]
            if w[0] == "count":
                assert len(tensors) == int(w[2]), f"{w[1]}: {len(tensors)} tensors, want {w[2]}"
            elif w[0] == "tensor":
                name, dtype, idx, bits = w[2], w[3], int(w[4]), int(w[5])
                shape = [int(s) for s in w[7:]]
                t = tensors[name]
                assert list(t.shape) == shape, f"{name}: shape {t.shape}, want {shape}"
                assert t.dtype == DTYPES[dtype], f"{name}: dtype {t.dtype}"
                view = np.uint32 if dtype == "F32" else np.uint16
                got = int(t.reshape(-1).view(view)[idx])
                assert got == bits, f"{name}[{idx}]: bits {got:#x}, want {bits:#x}"
            elif w[0] == "metaf32":
                got = np.float32(float(meta[w[2]]))
                assert int(got.view(np.uint32)) == int(w[3]), f"{w[2]}: {meta[w[2]]}"
            elif w[0] == "meta":
                assert meta[w[2]] == w[3], f"{w[2]}: {meta.get(w[2])!r}, want {w[3]!r}"
            checked += 1
    print(f"io_read.py: {checked} checks passed on {len(files)} files")


if __name__ == "__main__":
    main()
