#!/usr/bin/env bash
# The `ampc` tool: valid bench invocations print JSON; bad input gives a
# message naming the problem and a non-zero status, never a crash.
set -u
ampc="$1"
# shellcheck source=lib.bash
source "$(dirname "$0")/lib.bash"


out=$("$ampc" bench gemm --m 33 --n 17 --k 9 --a bf16 --b f16 --c f16 --ta --tb --threads 2 --reps 3 --json)
if [ $? -eq 0 ] && printf '%s' "$out" | grep -q '"gflops":[0-9]' &&
  printf '%s' "$out" | grep -q '"m":33'; then ok; else bad "gemm --json: $out"; fi
out=$("$ampc" version) && printf '%s' "$out" | grep -q '^ampc [0-9]' && ok || bad "version: $out"
"$ampc" help | grep -q 'bench gemm' && ok || bad "help"

expect_fail 2 "unknown command" frobnicate
expect_fail 2 "usage" 
expect_fail 2 "which benchmark" bench
expect_fail 2 "unknown benchmark" bench nope
expect_fail 2 "required" bench gemm --m 4 --n 4
expect_fail 2 "'0' is not an integer" bench gemm --m 0 --n 4 --k 4
expect_fail 2 "'-3' is not an integer" bench gemm --m 4 --n -3 --k 4
expect_fail 2 "'4x' is not an integer" bench gemm --m 4x --n 4 --k 4
expect_fail 2 "'f64' is not" bench gemm --m 4 --n 4 --k 4 --a f64
expect_fail 2 "'e4m3' is not" bench gemm --m 4 --n 4 --k 4 --c e4m3
expect_fail 2 "unknown option '--bogus'" bench gemm --m 4 --n 4 --k 4 --bogus
expect_fail 2 "too large" bench gemm --m 1000000 --n 1000000 --k 1000000
expect_fail 2 "needs a value" bench peak --threads
expect_fail 2 "threads: '0' is not an integer (whole number) in \[1, 1024\]" bench peak --threads 0
expect_fail 2 "unknown option" bench triad --fast

# bench/fp8.sh (make bench): one round of a few steps still prints every
# scaling mode's ratio against fp16, the floor and the verdict.
root="$(cd "$(dirname "$0")/../.." && pwd)"
out=$(bash "$root/bench/fp8.sh" "$ampc" 1 3 1)
for m in delayed current block; do
  r=$(field "$out" "fp8_${m}_over_fp16")
  awk -v r="$r" 'BEGIN { exit !(r > 0) }' && ok || bad "bench/fp8.sh: no $m ratio: $out"
done
case "$(field "$out" pass)" in true | false) ok ;; *) bad "bench/fp8.sh: no verdict: $out" ;; esac

finish
