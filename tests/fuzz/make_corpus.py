#!/usr/bin/env python3
"""Writes the hostile seeds of tests/fuzz/corpus (issue 11): a real
checkpoint of the run fuzz_checkpoint builds (mlp:4-3-2, Adam, fp16 dynamic
scaling, 16 synthetic samples in batches of 4) and variants of it that a
checkpoint must not get away with: output paths in its configuration,
counters at INT64_MAX, non-finite weights and moments, a scale below the
floor, a model its tensors do not fit, and what the safetensors format
forbids (a NUL escape, a byte-order mark, a control character).

  python3 tests/fuzz/make_corpus.py BUILD/ampc
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
ampc = sys.argv[1]
with tempfile.TemporaryDirectory() as tmp:
    base = os.path.join(tmp, "base.st")
    subprocess.run([ampc, "train", "--data", "synthetic", "--model", "mlp:4-3-2",
                    "--synthetic-n", "16", "--batch", "4", "--epochs", "1", "--quiet",
                    "--save", base], check=True, stdout=subprocess.DEVNULL)
    raw = open(base, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]


def pack(h, d=data, prefix=b"", text=None):
    j = text if text is not None else json.dumps(h, separators=(",", ":")).encode()
    j = prefix + j
    j += b" " * (-len(j) % 8)
    return struct.pack("<Q", len(j)) + j + d


def meta(key, value):
    h = json.loads(json.dumps(header))
    h["__metadata__"][key] = value
    return pack(h)


def with_f32(name, index, value):
    off = header[name]["data_offsets"][0] + 4 * index
    d = bytearray(data)
    d[off:off + 4] = struct.pack("<f", value)
    return pack(header, bytes(d))


big = "9223372036854775807"
seeds = {
    "good": pack(header),
    "config-save": meta("config.save", "/tmp/pwned"),
    "config-metrics": meta("config.metrics", "/tmp/pwned"),
    "config-model-huge": meta("config.model", "mlp:4-1048576-1048576-2"),
    "train-skipped-max": meta("train.skipped", big),
    "train-bad-losses-max": meta("train.bad_losses", big),
    "optim-step-max": meta("ampc.optim.step", big),
    "scaler-skipped-max": meta("ampc.scaler.skipped", big),
    "scale-1e-45": meta("ampc.scaler.scale", "1e-45"),
    "scale-0": meta("ampc.scaler.scale", "0"),
    "min-scale-subnormal": meta("ampc.scaler.min_scale", "1e-40"),
    "nan-weight": with_f32("0.weight", 1, float("nan")),
    "inf-moment": with_f32("optim.exp_avg_sq.2.bias", 0, float("inf")),
    "nul-name": pack(None, text=json.dumps(header, separators=(",", ":")).replace(
        '"0.weight"', '"0.weight\\u0000junk"').encode()),
    "bom": pack(header, prefix=b"\xef\xbb\xbf"),
    "control-char": pack(None, text=json.dumps(header, separators=(",", ":")).replace(
        "ampc-checkpoint-1", "ampc-\x01checkpoint-1").encode()),
}
for corpus in ("checkpoint", "safetensors"):
    os.makedirs(os.path.join(here, "corpus", corpus), exist_ok=True)
for name, blob in seeds.items():
    open(os.path.join(here, "corpus", "checkpoint", name + ".st"), "wb").write(blob)
for name in ("nul-name", "bom", "control-char", "config-save", "nan-weight"):
    open(os.path.join(here, "corpus", "safetensors", "hostile-" + name + ".st"),
         "wb").write(seeds[name])
print(f"wrote {len(seeds)} checkpoint seeds, 5 safetensors seeds")
