#!/usr/bin/env bash
# `ampc train --model gpt:...|cnn:...` and `ampc sample`: bad specs and data
# give a clear message and a non-zero status; a tiny GPT trains on a text
# file, gives the same checkpoint bits with 1 and 2 threads, starts from
# given weights (--init, names checked) and samples reproducibly; the loop
# honours --json, --metrics, --quiet, --max-steps, --epochs, --log-every and
# --loss-mul; the fp16 step's peak activation memory is at most 0.55 of the
# fp32 step's for a small GPT and the Fashion-MNIST CNN.
set -u
ampc="$1"
# shellcheck source=lib.bash
source "$(dirname "$0")/lib.bash"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

expect_fail 2 "heads=3 does not divide dim=64" train --model gpt:dim=64,heads=3
expect_fail 2 "'depth=2' is not layers=N" train --model gpt:depth=2
expect_fail 2 "layers=0 is not a whole number" train --model gpt:layers=0
expect_fail 2 "vocab must be at least 256" train --model gpt:vocab=100
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
# The loop's flags. --json: the MLP's summary keys, stdout holding only the
# JSON object; the data actually used (the default data is named, also in
# the checkpoint); skipped steps, non-finite losses and the final scale.
out=$(run --precision fp16 --json --quiet --metrics "$dir/m.jsonl" --save "$dir/j.ckpt" 2>"$dir/err")
printf '%s\n' "$out" >"$dir/j.json"
n=$(printf '%s\n' "$out" | wc -l)
if [ "$n" -eq 1 ] && [ "$(field "$out" steps)" = 12 ] && [ "$(field "$out" skipped_steps)" = 0 ] &&
  [ "$(field "$out" nonfinite_losses)" = 0 ] && [ -n "$(field "$out" final_scale)" ] &&
  [ -n "$(field "$out" val_loss)" ] && [ "$(field "$out" data)" = "text:$dir/c.txt" ] &&
  [ ! -s "$dir/err" ]; then ok; else bad "--json --quiet: '$out' stderr '$(cat "$dir/err")'"; fi
# --metrics: one line per step, val_loss on the evaluation steps (6 and 12)
lines=$(wc -l <"$dir/m.jsonl")
nval=$(grep -c '"val_loss"' "$dir/m.jsonl")
first=$(head -1 "$dir/m.jsonl")
if [ "$lines" -eq 12 ] && [ "$nval" -eq 2 ] && [ "$(field "$first" step)" = 0 ] &&
  [ -n "$(field "$first" loss)" ] && [ -n "$(field "$first" grad_norm)" ] &&
  sed -n 6p "$dir/m.jsonl" | grep -q '"val_loss"'; then ok; else
  bad "--metrics: $lines lines, $nval with val_loss: $(cat "$dir/m.jsonl")"
fi
"$ampc" plot "$dir/m.jsonl" -o "$dir/m.svg" 2>/dev/null && grep -q "validation loss" "$dir/m.svg" && ok ||
  bad "ampc plot of a GPT's metrics"
# the checkpoint records the data trained on
if command -v python3 >/dev/null; then
  d=$(python3 -c 'import json,struct,sys; f=open(sys.argv[1],"rb"); n=struct.unpack("<Q",f.read(8))[0]; print(json.loads(f.read(n))["__metadata__"]["config.data"])' "$dir/j.ckpt")
  [ "$d" = "text:$dir/c.txt" ] && ok || bad "checkpoint config.data '$d'"
fi
# --max-steps caps --steps; --epochs counts passes over the text; not both
out=$(run --precision fp32 --json --max-steps 3 2>/dev/null)
[ "$(field "$out" steps)" = 3 ] && ok || bad "--max-steps 3: $out"
per=$(( ($(wc -c <"$dir/c.txt") * 9 / 10 - 1) / (4 * 16) ))
out=$("$ampc" train --model $spec --data text:"$dir/c.txt" --batch 4 --epochs 1 --json 2>/dev/null)
steps=$(field "$out" steps)
[ -n "$steps" ] && [ "$steps" -ge $((per - 1)) ] && [ "$steps" -le $((per + 1)) ] && ok ||
  bad "--epochs 1: $steps steps, about $per expected"
expect_fail 2 "give one" train --model $spec --data text:"$dir/c.txt" --steps 3 --epochs 1
# --save-every: the periodic saves leave the run's bits alone; --synthetic-n
# has no meaning here
run --precision fp16 --threads 1 --save "$dir/e.ckpt" --save-every 5 >/dev/null 2>&1
cmp -s "$dir/a1.ckpt" "$dir/e.ckpt" && ok || bad "--save-every 5 changed the final checkpoint"
expect_fail 2 "synthetic-n is for mlp" train --model $spec --synthetic-n 100 --steps 1
# --resume: 6 steps, then the rest from the checkpoint (the model named by
# it), gives the checkpoint of the 12 steps run at once, bit for bit
run --precision fp16 --threads 1 --steps 6 --save "$dir/h.ckpt" >/dev/null 2>&1
"$ampc" train --resume "$dir/h.ckpt" --steps 12 --threads 1 --save "$dir/r.ckpt" >/dev/null 2>&1
cmp -s "$dir/a1.ckpt" "$dir/r.ckpt" && ok || bad "GPT: 6 steps + --resume to 12 differ from 12 steps"
# ampc eval of a GPT checkpoint: its run's last validation loss, exactly
v=$(field "$("$ampc" eval --json "$dir/j.ckpt")" val_loss)
[ -n "$v" ] && [ "$v" = "$(field "$(cat "$dir/j.json")" val_loss)" ] && ok ||
  bad "eval of a GPT checkpoint: '$v' vs the run's $(cat "$dir/j.json")"
expect_fail 2 "are for mlp: models" eval --model mlp:4-2 "$dir/j.ckpt"
expect_fail 1 "export handles mlp: models" export --checkpoint "$dir/j.ckpt" -o "$dir/x.st"
# --quiet: no evaluation lines; --log-every: progress on stderr
out=$(run --precision fp32 --quiet 2>&1)
printf '%s' "$out" | grep -q "^step" && bad "--quiet printed: $out" || ok
err=$(run --precision fp32 --log-every 4 2>&1 >/dev/null)
[ "$(printf '%s\n' "$err" | grep -c '^step [0-9]*/12: loss')" -eq 3 ] && ok || bad "--log-every 4: '$err'"
# --loss-mul multiplies the loss (exactly, by 2): the first step's loss doubles
# (to the 6 digits final_loss has)
l1=$(field "$(run --precision fp32 --json --steps 1 --eval-every 1 2>/dev/null)" final_loss)
l2=$(field "$(run --precision fp32 --json --steps 1 --eval-every 1 --loss-mul 2 2>/dev/null)" final_loss)
awk -v a="$l1" -v b="$l2" 'BEGIN { d = b - 2 * a; exit !(a > 0 && d * d <= (1e-5 * b) ^ 2) }' && ok || bad "--loss-mul 2: $l1 -> $l2"

# Peak activation memory of a training step, fp16 over fp32 (the arena's
# figure, activation_bytes): the issue's floor is 0.55. Norms return the
# autocast dtype (statistics in F32), attention keeps P in 16 bits, and no
# op copies a 16-bit input to F32; before that the ratio was 0.70 (GPT) and
# above 1 (CNN).
mem() { field "$("$ampc" train "$@" --json --quiet 2>/dev/null)" activation_bytes; }
ratio_ok() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > 0 && b > 0 && b <= 0.55 * a) }'; }
g=(--model gpt --data text:"$dir/c.txt" --batch 4 --steps 2) # the demo GPT, batch 4
a32=$(mem "${g[@]}" --precision fp32)
a16=$(mem "${g[@]}" --precision fp16)
ratio_ok "$a32" "$a16" && ok || bad "GPT activations: fp16 $a16 bytes vs fp32 $a32 (> 0.55)"
c=(--model cnn:fashion --batch 32 --steps 2)
if [ "$(kernels_of "$ampc")" = scalar ]; then
  # minutes on scalar kernels (each run ends with a 10000-image test pass);
  # the numbers are the SIMD build's bit for bit, checked in its run
  echo "note: scalar kernels: the CNN checks are left to the SIMD build"
elif "$ampc" train "${c[@]}" --steps 1 --precision fp32 --quiet >/dev/null 2>"$dir/err"; then
  a32=$(mem "${c[@]}" --precision fp32)
  a16=$(mem "${c[@]}" --precision fp16)
  ratio_ok "$a32" "$a16" && ok || bad "CNN activations: fp16 $a16 bytes vs fp32 $a32 (> 0.55)"
  # --resume of a CNN: the loader's position comes back too
  out=$("$ampc" train "${c[@]}" --steps 4 --quiet --json --save "$dir/c4.ckpt" 2>/dev/null)
  # ampc eval of a CNN checkpoint: its run's test accuracy, exactly
  e=$("$ampc" eval --json "$dir/c4.ckpt")
  [ -n "$(field "$e" test_accuracy)" ] &&
    [ "$(field "$e" test_accuracy)" = "$(field "$out" test_accuracy)" ] && ok ||
    bad "eval of a CNN checkpoint: '$e' vs the run's '$out'"
  "$ampc" train "${c[@]}" --quiet --save "$dir/c2.ckpt" >/dev/null 2>&1
  "$ampc" train --resume "$dir/c2.ckpt" --steps 4 --quiet --save "$dir/cr.ckpt" >/dev/null 2>&1
  cmp -s "$dir/c4.ckpt" "$dir/cr.ckpt" && ok || bad "CNN: 2 steps + --resume to 4 differ from 4"
  # the same bits with 1 and 2 threads (c2 ran with the default, 2)
  "$ampc" train "${c[@]}" --quiet --threads 1 --save "$dir/c1.ckpt" >/dev/null 2>&1
  cmp -s "$dir/c1.ckpt" "$dir/c2.ckpt" && ok || bad "CNN: 1 and 2 threads: different checkpoints"
  # a batch larger than the training set is refused, not trained into NaN
  expect_fail 2 "larger than the training set" train --model cnn:fashion --batch 70000 --steps 1
elif grep -q "dataset-fashion-mnist" "$dir/err"; then
  echo "note: Fashion-MNIST is not installed; the CNN checks did not run"
else bad "cnn:fashion: $(cat "$dir/err")"; fi
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
