#!/usr/bin/env bash
# `ampc train`: every recipe trains on synthetic data and prints the JSON
# summary; --metrics writes one JSON line per step; bad flags and missing,
# truncated or corrupt MNIST files give a message and a non-zero status.
set -u
ampc="$1"
# shellcheck source=lib.bash
source "$(dirname "$0")/lib.bash"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
syn=(train --data synthetic --model mlp:32-48-5 --synthetic-n 3000 --epochs 2 --quiet --json)
for args in "--precision fp32" "--precision fp16" "--precision bf16" \
  "--precision fp16 --loss-scale static:1024" "--precision fp16 --loss-scale none" \
  "--precision fp16 --master-weights off" "--precision bf16 --optim adamw" \
  "--precision fp16 --optim sgd --lr 0.1 --schedule cosine:10 --clip 1"; do
  # shellcheck disable=SC2086
  out=$("$ampc" "${syn[@]}" $args 2>&1)
  rc=$?
  acc=$(field "$out" test_accuracy)
  if [ $rc -eq 0 ] && [ -n "$acc" ] && awk "BEGIN{exit !($acc > 90)}"; then ok; else
    bad "train $args -> rc=$rc: $out"
  fi
  for k in final_loss steps skipped_steps final_scale step_ms_median samples_per_s peak_rss_mb \
    activation_bytes param_bytes; do
    [ -n "$(field "$out" $k)" ] && ok || bad "train $args: no $k in $out"
  done
done

# The same seed gives the same result, with 1 and 2 threads.
a=$("$ampc" "${syn[@]}" --precision fp16 --seed 3 --threads 1 --metrics "$tmp/a.jsonl")
b=$("$ampc" "${syn[@]}" --precision fp16 --seed 3 --threads 2 --metrics "$tmp/b.jsonl")
[ "$(field "$a" final_loss)" = "$(field "$b" final_loss)" ] && ok || bad "threads differ: $a / $b"
cmp -s "$tmp/a.jsonl" "$tmp/b.jsonl" && ok || bad "metrics differ between 1 and 2 threads"
lines=$(wc -l <"$tmp/a.jsonl")
steps=$(field "$a" steps)
[ "$lines" -eq "$steps" ] && ok || bad "metrics: $lines lines for $steps steps"
head -1 "$tmp/a.jsonl" | grep -q '"loss":.*"scale":.*"skipped":.*"lr":.*"grad_norm":' && ok ||
  bad "metrics line: $(head -1 "$tmp/a.jsonl")"

# A loss that stays non-finite stops the run with a message (instead of the
# scaler backing off forever). In FP16 the dynamic scaler reaches its floor
# first (gradients overflow at every scale): that stops the run too.
expect_fail 1 "loss itself has been NaN for 5 consecutive steps" train --data synthetic \
  --model mlp:32-48-5 --synthetic-n 3000 --optim sgd --lr 1000 --loss-mul 1e30 --precision fp32 \
  --quiet
expect_fail 1 "loss scale is at its floor .* cannot go on" train --data synthetic \
  --model mlp:32-48-5 --synthetic-n 3000 --optim sgd --lr 1000 --loss-mul 1e30 --precision fp16 \
  --quiet

# Bad flags and values.
expect_fail 2 "unknown option '--frob'" train --frob 1
expect_fail 2 "fp32, fp16, bf16 or fp8" train --precision fp4
expect_fail 2 "not a number" train --lr abc
expect_fail 2 "whole number" train --batch 1.5
expect_fail 2 "needs a value" train --epochs
expect_fail 2 "dynamic, static:N or none" train --loss-scale sometimes
expect_fail 2 "mlp:" train --model resnet
expect_fail 2 "adam, adamw or sgd" train --optim lbfgs
expect_fail 2 "16-bit --precision" train --precision fp32 --master-weights off
expect_fail 1 "cannot write" train --data synthetic --model mlp:784-8-10 --synthetic-n 100 \
  --metrics /nonexistent/dir/m.jsonl

# A tiny valid MNIST directory (4 images): trains; a model that does not fit
# its 784 features and 10 classes is refused.
mkdir -p "$tmp/ok"
for set in train t10k; do
  { printf '\x00\x00\x08\x03\x00\x00\x00\x04\x00\x00\x00\x1c\x00\x00\x00\x1c'
    head -c 3136 /dev/urandom; } >"$tmp/ok/$set-images-idx3-ubyte"
  printf '\x00\x00\x08\x01\x00\x00\x00\x04\x01\x02\x03\x09' >"$tmp/ok/$set-labels-idx1-ubyte"
done
out=$("$ampc" train --data "$tmp/ok" --model mlp:784-16-10 --batch 2 --epochs 1 --json --quiet)
[ $? -eq 0 ] && [ "$(field "$out" steps)" = 2 ] && ok || bad "tiny MNIST: $out"
expect_fail 1 "does not fit the data" train --data "$tmp/ok" --model mlp:10-5-3

# Missing, truncated, corrupt MNIST.
expect_fail 1 "scripts/fetch-mnist" train --data "$tmp/none"
mkdir -p "$tmp/mn"
printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x1c\x00\x00\x00\x1c' >"$tmp/mn/train-images-idx3-ubyte"
head -c 100 /dev/zero >>"$tmp/mn/train-images-idx3-ubyte"
printf '\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02' >"$tmp/mn/train-labels-idx1-ubyte"
cp "$tmp/mn/train-images-idx3-ubyte" "$tmp/mn/t10k-images-idx3-ubyte"
cp "$tmp/mn/train-labels-idx1-ubyte" "$tmp/mn/t10k-labels-idx1-ubyte"
expect_fail 1 "train-images-idx3-ubyte.*truncated" train --data "$tmp/mn"
printf 'garbage!garbage!' >"$tmp/mn/train-images-idx3-ubyte"
expect_fail 1 "train-images-idx3-ubyte" train --data "$tmp/mn"

# OpenMP's wait policy (tools/ampc/main.c): a policy the user set is kept
# (GOMP_SPINCOUNT decides when both are set, as in libgomp); an idle machine
# keeps OpenMP's default; with other processes keeping the CPUs busy, train
# runs again with passive waits. AMPC_LOADAVG_FILE shows the choice an idle
# or a busy machine (in /proc/loadavg's format), whatever this one is doing.
syn=(train --data synthetic --model mlp:16-8-3 --synthetic-n 200 --epochs 1 --json --quiet --threads 2)
policy() { field "$("$@" 2>/dev/null)" omp_wait_policy; }
[ "$(OMP_WAIT_POLICY=active policy "$ampc" "${syn[@]}")" = active ] && ok || bad "OMP_WAIT_POLICY kept"
[ "$(GOMP_SPINCOUNT=1000 policy "$ampc" "${syn[@]}")" = spincount ] && ok || bad "GOMP_SPINCOUNT kept"
[ "$(OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=1000 policy "$ampc" "${syn[@]}")" = spincount ] && ok ||
  bad "GOMP_SPINCOUNT decides"
ncpu=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
printf '0.00 0.00 0.00 1/90 1234\n' >"$tmp/idle"
printf '4.00 4.00 4.00 %d/90 1234\n' "$((ncpu + 1))" >"$tmp/busy"
printf '0.00 0.00 0.00 0/0 0\n' >"$tmp/blind" # a sandbox's: unknown, keep the default
unset_waits=(env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT)
for c in "idle default 1" "idle default $ncpu" "busy passive 1" "blind default $ncpu" "idle passive $((ncpu + 1))"; do
  read -r file want t <<<"$c"
  got=$(AMPC_LOADAVG_FILE="$tmp/$file" policy "${unset_waits[@]}" "$ampc" "${syn[@]}" --threads "$t")
  [ "$got" = "$want" ] && ok || bad "$file machine, --threads $t: $got (want $want)"
done
# The same through /proc/loadavg: one spinning process per CPU.
busy=()
trap 'kill "${busy[@]}" 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq "$ncpu"); do
  (while :; do :; done) &
  busy+=($!)
done
sleep 0.2
got=$(policy "${unset_waits[@]}" "$ampc" "${syn[@]}")
kill "${busy[@]}" 2>/dev/null
wait "${busy[@]}" 2>/dev/null
[ "$got" = passive ] && ok || bad "busy machine (/proc/loadavg): $got (want passive)"

finish
