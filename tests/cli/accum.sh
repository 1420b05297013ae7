#!/usr/bin/env bash
# ampc train --accum K on one process (issue 16; tests/mpi/train.sh holds
# the MPI side): the step's loss is the mean of the micro-batches' (the
# global batch's loss, to rounding), the bits do not depend on the thread
# count, an overflow in one micro-batch skips the whole step, and bad
# values are refused.
set -u
ampc=$1
source "$(dirname "$0")/lib.bash"
t=$(mktemp -d /tmp/ampc-accum.XXXXXX)
trap 'rm -rf "$t"' EXIT
syn=(--data synthetic --model mlp:32-64-5 --synthetic-n 1200 --seed 5 --quiet --epochs 1)

"$ampc" train "${syn[@]}" --precision fp32 --batch 32 --max-steps 1 --metrics "$t/b32.jsonl" >/dev/null
"$ampc" train "${syn[@]}" --precision fp32 --batch 16 --accum 2 --max-steps 1 \
  --metrics "$t/a2.jsonl" >/dev/null
l32=$(field "$(cat "$t/b32.jsonl")" loss) la=$(field "$(cat "$t/a2.jsonl")" loss)
g32=$(field "$(cat "$t/b32.jsonl")" grad_norm) ga=$(field "$(cat "$t/a2.jsonl")" grad_norm)
if awk -v a="$l32" -v b="$la" -v c="$g32" -v d="$ga" 'function ab(x) { return x < 0 ? -x : x }
  BEGIN { exit !(ab(a - b) <= 1e-6 * a && ab(c - d) <= 1e-5 * c) }'; then ok; else
  bad "--accum 2 x 16 against --batch 32: loss $la vs $l32, grad norm $ga vs $g32"
fi

for th in 1 2; do
  "$ampc" train "${syn[@]}" --precision fp16 --batch 8 --accum 3 --threads "$th" \
    --metrics "$t/t$th.jsonl" --save "$t/t$th.st" >/dev/null
done
cmp -s "$t/t1.jsonl" "$t/t2.jsonl" && cmp -s "$t/t1.st" "$t/t2.st" && ok ||
  bad "--accum 3: threads 1 and 2 differ"

"$ampc" train "${syn[@]}" --precision fp16 --batch 8 --accum 3 --max-steps 6 \
  --debug-nonfinite-grad 3:2 --metrics "$t/inj.jsonl" >/dev/null
l3=$(sed -n 4p "$t/inj.jsonl") l4=$(sed -n 5p "$t/inj.jsonl")
if [ "$(field "$l3" skipped)" = 1 ] && [ "$(field "$l4" scale)" = 32768 ] &&
  [ "$(grep -c '"skipped":1' "$t/inj.jsonl")" = 1 ]; then ok; else
  bad "an overflow in micro-batch 2 of step 3: '$l3' '$l4'"
fi

expect_fail 2 "--accum: '0' is not a whole number in \[1, 65536\]" train "${syn[@]}" --accum 0
expect_fail 2 "does not split into 1 rank(s) x 2" train "${syn[@]}" --accum 2 --global-batch 33
expect_fail 2 "STEP:RANK" train "${syn[@]}" --debug-nonfinite-grad 3
expect_fail 2 "--grad-comm: 'f8' is not" train "${syn[@]}" --grad-comm f8
finish
