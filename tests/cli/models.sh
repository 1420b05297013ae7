#!/usr/bin/env bash
# `ampc train --model gpt:...|cnn:...` and `ampc sample`: bad specs and data
# give a clear message and a non-zero status; a tiny GPT trains on a text
# file, gives the same checkpoint bits with 1 and 2 threads, starts from
# given weights (--init, names checked) and samples reproducibly.
set -u
ampc="$1"
# shellcheck source=lib.bash
source "$(dirname "$0")/lib.bash"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

expect_fail 2 "heads=3 does not divide dim=64" train --model gpt:dim=64,heads=3
expect_fail 2 "'depth=2' is not layers=N" train --model gpt:depth=2
expect_fail 2 "layers=0 is not a whole number" train --model gpt:layers=0
expect_fail 2 "not a known CNN" train --model cnn:alexnet
expect_fail 2 "a GPT trains on text:PATH or fortunes" train --model gpt --data fashion-mnist
expect_fail 2 "the CNN trains on fashion-mnist" train --model cnn:fashion --data text:/etc/passwd
expect_fail 1 "cannot open" train --model gpt --data text:"$dir/none.txt"
printf 'short' >"$dir/short.txt"
expect_fail 1 "needs" train --model gpt:ctx=16 --batch 4 --data text:"$dir/short.txt"

for i in $(seq 1 300); do echo "line $i: the quick brown fox jumps over the lazy dog"; done >"$dir/c.txt"
spec=gpt:layers=1,dim=32,heads=2,ctx=16
run() { "$ampc" train --model $spec --data text:"$dir/c.txt" --batch 4 --steps 12 --eval-every 6 \
  --optim adamw --lr 0.003 "$@"; }
out=$(run --precision fp16 --threads 1 --save "$dir/a1.ckpt" 2>&1)
if [ $? -eq 0 ] && printf '%s' "$out" | grep -q "step 12: train loss [0-9.]*, val loss [0-9.]* nats/token"; then
  ok
else bad "gpt train: $out"; fi
run --precision fp16 --threads 2 --save "$dir/a2.ckpt" >/dev/null 2>&1
cmp -s "$dir/a1.ckpt" "$dir/a2.ckpt" && ok || bad "1 and 2 threads: different checkpoints"
# --init: a checkpoint's (or PyTorch's) weights by name; a mismatch is named.
out=$(run --precision fp32 --init "$dir/a1.ckpt" 2>&1) && ok || bad "--init: $out"
expect_fail 1 "transformer.wte.weight is f32 \[256,32\], the model's is f32 \[256,48\]" \
  train --model gpt:layers=1,dim=48,heads=2,ctx=16 --data text:"$dir/c.txt" --batch 4 --steps 1 \
  --init "$dir/a1.ckpt"
expect_fail 1 "transformer.h.1.ln_1.weight is not in the file" \
  train --model gpt:layers=2,dim=32,heads=2,ctx=16 --data text:"$dir/c.txt" --batch 4 --steps 1 \
  --init "$dir/a1.ckpt"
# PyTorch's own state_dict (nanoGPT names, lm_head.weight tied) as safetensors,
# written with json + struct (when /usr/bin/python3 has torch).
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  /usr/bin/python3 - "$(dirname "$0")/.." "$dir/pt.st" <<'PY'
import json, struct, sys
sys.path.insert(0, sys.argv[1])
from torch_models import GPTModel
sd = GPTModel(dict(vocab=256, ctx=16, layers=1, dim=32, heads=2)).state_dict()
hdr, blobs, off = {}, [], 0
for k, v in sd.items():
    b = v.detach().float().contiguous().numpy().tobytes()
    hdr[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
    off += len(b)
    blobs.append(b)
h = json.dumps(hdr).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
  out=$(run --precision fp32 --init "$dir/pt.st" 2>&1) && ok || bad "--init from PyTorch: $out"
fi
# sample: the same seed, the same text; the prompt comes first.
s1=$("$ampc" sample --checkpoint "$dir/a1.ckpt" --prompt "line " --tokens 40 --top-k 5 --seed 7)
s2=$("$ampc" sample --checkpoint "$dir/a1.ckpt" --prompt "line " --tokens 40 --top-k 5 --seed 7)
if [ -n "$s1" ] && [ "$s1" = "$s2" ] && [ "${s1:0:5}" = "line " ] && [ ${#s1} -eq 45 ]; then ok; else
  bad "sample: '$s1' vs '$s2'"
fi
expect_fail 2 "--checkpoint FILE is required" sample --prompt hi
expect_fail 2 "temperature" sample --checkpoint "$dir/a1.ckpt" --temperature -1
expect_fail 1 "cannot open" sample --checkpoint "$dir/none.ckpt"
# Sizes an untrusted spec may not ask for, and no several-rank launch.
expect_fail 2 "too large" train --model gpt:layers=1,dim=32,heads=2,ctx=16777216 --steps 1
expect_fail 2 "more than 2\^31" train --model gpt:layers=1000,dim=16384,heads=2,ctx=64 --steps 1
err=$(OMPI_COMM_WORLD_SIZE=2 "$ampc" train --model gpt:layers=1,dim=32,heads=2,ctx=16 --steps 1 2>&1)
[ $? -eq 2 ] && printf '%s' "$err" | grep -q "one process" && ok || bad "GPT under a 2-rank launch: $err"
finish
