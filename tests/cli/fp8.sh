#!/usr/bin/env bash
# FP8 recipes from the command line: for each scaling mode (delayed with a
# short history and stochastic rounding, current, block), 2 epochs straight
# and 1 epoch + save + resume + 1 epoch give the same checkpoint bits (the
# amax histories travel in the checkpoint); stochastic rounding gives the
# same bits with 1 and 2 threads; eval reads an FP8 checkpoint; bad flags
# and a resume under another recipe are refused with nothing written.
set -u
ampc="$1"
# shellcheck source=lib.bash
source "$(dirname "$0")/lib.bash"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

run=("$ampc" train --data synthetic --model mlp:32-48-5 --synthetic-n 3000 --precision fp8
  --quiet --json)
for mode in "delayed:4 --rounding stochastic" current block; do
  # shellcheck disable=SC2206
  m=(--fp8-scaling $mode)
  "${run[@]}" "${m[@]}" --epochs 2 --save "$tmp/a.st" >/dev/null || bad "$mode: straight run failed"
  "${run[@]}" "${m[@]}" --epochs 1 --save "$tmp/b.st" >/dev/null || bad "$mode: first half failed"
  "${run[@]}" --epochs 2 --resume "$tmp/b.st" --save "$tmp/c.st" >/dev/null ||
    bad "$mode: resume failed"
  cmp -s "$tmp/a.st" "$tmp/c.st" && ok || bad "$mode: resumed checkpoint differs from the straight run"
done
# the history moved: an FP8 checkpoint holds non-trivial scaling state
python3 - "$tmp/b.st" <<'PY' && ok || bad "fp8.* buffers missing from the checkpoint"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
assert {"fp8.amax_history", "fp8.scale", "fp8.state"} <= set(h), sorted(h)
PY

# stochastic rounding: the same bits with 1 and 2 threads, other bits than nearest
sr=("${run[@]}" --epochs 1 --rounding stochastic --seed 3)
"${sr[@]}" --threads 1 --save "$tmp/t1.st" >/dev/null && "${sr[@]}" --threads 2 --save "$tmp/t2.st" >/dev/null &&
  cmp -s "$tmp/t1.st" "$tmp/t2.st" && ok || bad "stochastic rounding: 1 and 2 threads differ"
"${run[@]}" --epochs 1 --seed 3 --save "$tmp/rn.st" >/dev/null
cmp -s "$tmp/t1.st" "$tmp/rn.st" && bad "stochastic rounding changed nothing" || ok

out=$("$ampc" eval "$tmp/a.st" 2>&1) && ok || bad "eval of an FP8 checkpoint: $out"

# bad input: a clear message, exit 2, nothing written
expect_fail 2 "--fp8-scaling.*is not delayed" train --precision fp8 --fp8-scaling tensorwise
expect_fail 2 "--fp8-scaling.*is not delayed" train --precision fp8 --fp8-scaling delayed:0
expect_fail 2 "--fp8-scaling.*is not delayed" train --precision fp8 --fp8-scaling delayed:x
expect_fail 2 "--fp8-scaling needs --precision fp8" train --precision bf16 --fp8-scaling block
expect_fail 2 "--rounding" train --precision fp8 --rounding up
expect_fail 2 "--rounding stochastic needs a 16-bit" train --precision fp32 --rounding stochastic
for flag in "--precision bf16" "--fp8-scaling current" "--rounding nearest"; do
  # shellcheck disable=SC2086
  expect_fail 2 "${flag%% *} .* conflicts with --resume" "${run[@]:1}" --epochs 2 \
    --resume "$tmp/b.st" --save "$tmp/never.st" $flag
done
[ ! -e "$tmp/never.st" ] && ok || bad "a refused resume wrote its --save"
finish
