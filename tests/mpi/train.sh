#!/usr/bin/env bash
# Data-parallel `ampc train` under mpirun (issue 16):
#   tests/mpi/train.sh AMPC HAVE_MPI MPIRUN
# 1, 2 and 3 ranks give the bits (every loss, scale and skip of --metrics,
# the final checkpoint byte for byte) of one process with --accum N, for
# fp32, fp16, bf16 and fp8 (delayed with stochastic rounding, current)
# recipes with skipped steps; an injected non-finite
# gradient on one rank skips the step everywhere; a 2-rank checkpoint
# resumes on 1, 2 and 3 ranks; bad input stops every rank with a message.
# Exit 77 (skipped) without MPI.
set -u
ampc=$1
have_mpi=${2:-OFF}
mpirun=${3:-}
case "$have_mpi" in ON | on | 1 | TRUE | true) ;; *)
  echo "skipped: ampc was built without MPI (scripts/install-deps --mpi, then rebuild)"
  exit 77
  ;;
esac
if [ -z "$mpirun" ] || [ ! -x "$mpirun" ]; then
  echo "skipped: no mpirun (openmpi-bin)"
  exit 77
fi
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../cli/lib.bash"
root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
# --oversubscribe: 3 ranks on a 2-core machine; --bind-to none: a rank's
# threads are not pinned to one core.
mr() {
  local n=$1
  shift
  timeout 300 "$mpirun" -np "$n" "${root[@]}" --oversubscribe --bind-to none "$ampc" train "$@"
}
t=$(mktemp -d /tmp/ampc-mpi.XXXXXX)
trap 'rm -rf "$t"' EXIT
syn=(--data synthetic --model mlp:32-64-5 --synthetic-n 1200 --seed 3 --threads 1 --quiet)

# same NAME A B: the metrics and checkpoints of runs A and B are the same bits.
same() {
  if cmp -s "$t/$2.jsonl" "$t/$3.jsonl" && cmp -s "$t/$2.st" "$t/$3.st"; then ok; else
    bad "$1: $2 and $3 differ"
  fi
}
skips() { grep -c '"skipped":1' "$t/$1.jsonl"; }

# The equality table: N ranks x recipe against --accum N on one process.
recipes=(
  "fp32|--precision fp32 --optim adamw --schedule cosine:5 --clip 1"
  "fp16|--precision fp16 --loss-mul 3000 --growth-interval 5 --clip 1 --debug-nonfinite-grad 7:1"
  "bf16|--precision bf16 --loss-scale dynamic --growth-interval 3 --debug-nonfinite-grad 4:0"
  "fp8d|--precision fp8 --fp8-scaling delayed:4 --rounding stochastic --loss-scale dynamic --debug-nonfinite-grad 5:1"
  "fp8c|--precision fp8 --fp8-scaling current --loss-scale dynamic --debug-nonfinite-grad 3:0"
)
echo "N recipe skipped same-bits"
for n in 1 2 3; do
  for rec in "${recipes[@]}"; do
    name=${rec%%|*}
    read -r -a flags <<<"${rec#*|}"
    mr "$n" "${syn[@]}" "${flags[@]}" --batch 16 --epochs 2 --metrics "$t/mpi$n$name.jsonl" \
      --save "$t/mpi$n$name.st" >/dev/null || bad "mpirun -np $n $name failed"
    if [ "$n" -eq 1 ]; then
      "$ampc" train "${syn[@]}" "${flags[@]}" --batch 16 --epochs 2 \
        --metrics "$t/one$n$name.jsonl" --save "$t/one$n$name.st" >/dev/null
    else
      "$ampc" train "${syn[@]}" "${flags[@]}" --batch 16 --epochs 2 --accum "$n" \
        --metrics "$t/one$n$name.jsonl" --save "$t/one$n$name.st" >/dev/null
    fi
    same "N=$n $name" "mpi$n$name" "one$n$name"
    s=$(skips "mpi$n$name")
    echo "$n $name $s $(cmp -s "$t/mpi$n$name.st" "$t/one$n$name.st" && echo yes || echo no)"
    if [ "$n" -gt 1 ] && [ "$name" != fp32 ] && [ "$s" -lt 1 ]; then bad "$name on $n ranks skipped no step"; fi
  done
done

# An overflow on rank 2 alone at step 4: every rank skips, the scale halves.
mr 3 "${syn[@]}" --precision fp16 --batch 16 --max-steps 8 --debug-nonfinite-grad 4:2 \
  --metrics "$t/inj.jsonl" >/dev/null || bad "injected overflow: mpirun failed"
line=$(sed -n 5p "$t/inj.jsonl")
next=$(sed -n 6p "$t/inj.jsonl")
if [ "$(field "$line" skipped)" = 1 ] && [ "$(field "$line" scale)" = 65536 ] &&
  [ "$(field "$next" scale)" = 32768 ] && [ "$(skips inj)" = 1 ]; then ok; else
  bad "injected overflow on rank 2: '$line' then '$next'"
fi

# Resume: 2 ranks x 24 (global batch 48) for 10 steps, then on 1, 2 and 3
# ranks. 1 rank (--accum 2) and 2 ranks continue with the bits of the
# uninterrupted 2-rank run; 3 ranks (micro-batches of 16) with those of one
# process resuming with --accum 3.
res=("${syn[@]}" --precision fp16 --loss-mul 3000 --growth-interval 5 --epochs 3)
mr 2 "${res[@]}" --batch 24 --save "$t/full.st" --metrics "$t/full.jsonl" >/dev/null
mr 2 "${res[@]}" --batch 24 --max-steps 10 --save "$t/ck.st" >/dev/null
mr 2 --resume "$t/ck.st" --threads 1 --quiet --save "$t/r2.st" --metrics "$t/r2.jsonl" >/dev/null
"$ampc" train --resume "$t/ck.st" --threads 1 --quiet --accum 2 --save "$t/r1.st" \
  --metrics "$t/r1.jsonl" >/dev/null
mr 3 --resume "$t/ck.st" --threads 1 --quiet --save "$t/r3.st" --metrics "$t/r3.jsonl" >/dev/null
"$ampc" train --resume "$t/ck.st" --threads 1 --quiet --accum 3 --save "$t/r3one.st" \
  --metrics "$t/r3one.jsonl" >/dev/null
tail -n +11 "$t/full.jsonl" >"$t/fulltail.jsonl"
cp "$t/full.st" "$t/fulltail.st"
same "resume 2->2" r2 fulltail
same "resume 2->1 (--accum 2)" r1 fulltail
same "resume 2->3" r3 r3one
echo "resume: 2->1 $(cmp -s "$t/r1.st" "$t/full.st" && echo same || echo DIFF)," \
  "2->2 $(cmp -s "$t/r2.st" "$t/full.st" && echo same || echo DIFF)," \
  "2->3 vs --accum 3 $(cmp -s "$t/r3.st" "$t/r3one.st" && echo same || echo DIFF)"

# Communication: within 1.1x of 2(N-1)/N of the gradient per rank.
out=$(mr 3 "${syn[@]}" --batch 16 --max-steps 20 --json)
ratio=$(field "$out" comm_ratio)
if awk -v r="$ratio" 'BEGIN { exit !(r > 0.99 && r <= 1.1) }'; then ok; else
  bad "3 ranks: bytes per step $ratio x the optimum"
fi
echo "3 ranks: comm_ratio $ratio, mpi_wait_fraction $(field "$out" mpi_wait_fraction)"

# --grad-comm f16|bf16: half the bytes, every rank ends with the same
# weights (checked by ampc itself), the loss near the F32 exchange's.
for c in f16 bf16; do
  out=$(mr 2 "${syn[@]}" --batch 16 --max-steps 30 --grad-comm "$c" --json)
  base=$(mr 2 "${syn[@]}" --batch 16 --max-steps 30 --json)
  if awk -v r="$(field "$out" comm_ratio)" 'BEGIN { exit !(r == 0.5) }' && awk -v a="$(field "$out" final_loss)" \
    -v b="$(field "$base" final_loss)" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 0.01 * b) }'; then ok; else
    bad "--grad-comm $c: '$out' against '$base'"
  fi
done

# Bad input: a clear message and a non-zero exit on every rank, no checkpoint.
err=$(mr 2 "${syn[@]}" --global-batch 33 --save "$t/no1.st" 2>&1 >/dev/null)
rc=$?
if [ $rc -ne 0 ] && printf '%s' "$err" | grep -q "does not split into 2 rank" && [ ! -e "$t/no1.st" ]; then ok; else
  bad "global batch 33 on 2 ranks: rc=$rc '$err'"
fi
err=$(timeout 300 "$mpirun" "${root[@]}" --oversubscribe -np 1 "$ampc" train "${syn[@]}" --seed 1 \
  --save "$t/no2.st" : -np 1 "$ampc" train "${syn[@]}" --seed 2 --save "$t/no2.st" 2>&1 >/dev/null)
rc=$?
if [ $rc -ne 0 ] && printf '%s' "$err" | grep -q "different options" && [ ! -e "$t/no2.st" ]; then ok; else
  bad "ranks with different flags: rc=$rc '$err'"
fi
start=$(date +%s)
err=$(mr 3 "${syn[@]}" --epochs 50 --debug-exit 5:1 --mpi-timeout 20 --save "$t/no3.st" 2>&1 >/dev/null)
rc=$?
took=$(($(date +%s) - start))
if [ $rc -ne 0 ] && [ $took -lt 120 ] && printf '%s' "$err" | grep -q "rank 1: --debug-exit" &&
  [ ! -e "$t/no3.st" ]; then ok; else
  bad "a rank that dies: rc=$rc after ${took}s '$err'"
fi
start=$(date +%s)
err=$(mr 3 "${syn[@]}" --epochs 50 --debug-hang 5:2 --mpi-timeout 5 --save "$t/no4.st" 2>&1 >/dev/null)
rc=$?
took=$(($(date +%s) - start))
if [ $rc -ne 0 ] && [ $took -lt 60 ] && printf '%s' "$err" | grep -q "no answer from the other ranks for 5 s" &&
  [ ! -e "$t/no4.st" ]; then ok; else
  bad "a rank that hangs: rc=$rc after ${took}s '$err'"
fi
err=$(mr 2 --resume "$t/ck.st" --model mlp:32-32-5 --quiet 2>&1 >/dev/null)
rc=$?
if [ $rc -ne 0 ] && printf '%s' "$err" | grep -q "conflicts with --resume"; then ok; else
  bad "resume with a different model: rc=$rc '$err'"
fi
err=$(mr 3 --resume "$t/ck.st" --batch 20 --accum 1 --quiet 2>&1 >/dev/null)
rc=$?
[ $rc -eq 0 ] && ok || bad "resume on 3 ranks with an explicit --batch 20: rc=$rc '$err'"
err=$(mr 5 --resume "$t/ck.st" --quiet 2>&1 >/dev/null)
rc=$?
if [ $rc -ne 0 ] && printf '%s' "$err" | grep -q "global batch of 48 samples does not split"; then ok; else
  bad "resume of global batch 48 on 5 ranks: rc=$rc '$err'"
fi

# A short MNIST run (when the data are there): 2 ranks = --accum 2.
mnist=${AMPC_MNIST:-$here/../../data/mnist}
if [ -f "$mnist/train-images-idx3-ubyte" ] || [ -f "$mnist/train-images-idx3-ubyte.gz" ]; then
  m=(--data "$mnist" --model mlp:784-128-10 --precision fp16 --batch 32 --max-steps 40 --threads 1 --quiet)
  mr 2 "${m[@]}" --metrics "$t/mn2.jsonl" --save "$t/mn2.st" >/dev/null
  "$ampc" train "${m[@]}" --accum 2 --metrics "$t/mn1.jsonl" --save "$t/mn1.st" >/dev/null
  same "MNIST 2 ranks" mn2 mn1
else
  echo "MNIST part skipped: no data in $mnist (scripts/fetch-mnist)"
fi
finish
