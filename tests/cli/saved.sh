#!/usr/bin/env bash
# Memory saved for backward (amp_tape_saved(), saved_for_backward_bytes in
# `ampc train --json`) on the MNIST MLP shape 784-1024-10, batch 128, one
# step: the figures are exact byte counts (F32: x 401408 + relu's 1-bit mask
# 16384 + the hidden layer 524288 + log-softmax and labels 5632), and the
# floors of issue 15 hold: FP8 (each mode) ≤ 0.35 × F32, FP16/BF16 ≤ 0.55 ×.
# An FP8 linear that kept its 16-bit input, or a ReLU that kept its input,
# would break the FP8 floor.
set -u
ampc="$1"
# shellcheck source=lib.bash
source "$(dirname "$0")/lib.bash"
run=("$ampc" train --data synthetic --model mlp:784-1024-10 --synthetic-n 256 --max-steps 1
  --batch 128 --quiet --json)
saved() { # precision args -> saved_for_backward_bytes
  local out
  # shellcheck disable=SC2068
  out=$("${run[@]}" --precision $@ 2>&1) || { bad "train --precision $*: $out"; echo 0; return; }
  field "$out" saved_for_backward_bytes
}
f32=$(saved fp32)
[ "$f32" = 947712 ] && ok || bad "fp32 saved $f32 bytes, expected 947712"
for p in fp16 bf16; do
  b=$(saved $p)
  [ "$b" = 484864 ] && ok || bad "$p saved $b bytes, expected 484864"
  awk "BEGIN{exit !($b <= 0.55 * $f32)}" && ok || bad "$p saved $b > 0.55 x $f32"
done
for mode in delayed current block; do
  b=$(saved fp8 --fp8-scaling $mode)
  awk "BEGIN{exit !($b > 0 && $b <= 0.35 * $f32)}" && ok || bad "fp8 $mode saved $b > 0.35 x $f32"
done
# the weights the ops keep (W2 only: the input needs no gradient) are apart
out=$("${run[@]}" --precision fp8)
[ "$(field "$out" saved_param_bytes)" = 10244 ] && ok || bad "fp8 saved_param_bytes: $out"
finish
