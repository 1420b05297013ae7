#!/usr/bin/env bash
# The command line: every subcommand's --help, -h and `ampc help CMD` exit 0;
# every flag of the parser's tables (tools/ampc/*.c) appears in its
# command's help, and every flag the help shows is accepted (100% both
# ways); `--x=v` equals `--x v`; errors name the subcommand; an unknown flag
# gets the nearest valid one; numbers are strict (issue 11 item 9); a huge
# --epochs does not allocate per-step buffers for every step.
set -u
ampc="$1"
src="$(cd "$(dirname "$0")/../../tools/ampc" && pwd)"
# shellcheck source=lib.bash
source "$(dirname "$0")/lib.bash"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cmds=("train" "sample" "eval" "export" "plot" "diagnose" "bench gemm" "bench peak" "bench triad" "bench int8" "bench all")
for c in "${cmds[@]}"; do
  # shellcheck disable=SC2086
  for form in "$c --help" "$c -h" "help $c"; do
    out=$("$ampc" $form 2>&1)
    rc=$?
    [ $rc -eq 0 ] && printf '%s' "$out" | grep -q "^usage: ampc $c" && ok ||
      bad "ampc $form -> rc=$rc: $(printf '%s' "$out" | head -2)"
  done
done
"$ampc" help >/dev/null && "$ampc" --help >/dev/null && "$ampc" -h >/dev/null && ok || bad "ampc help"

# The flags in the tables, per command (the macro of each file, or the
# plain initialisers of plot.c and main.c), against the flags each help shows.
table_flags() { # FILE MACRO
  grep -oE "$2\(\"[a-z0-9-]+\"" "$1" | sed -E 's/.*\("//; s/"$//' | sort -u
}
help_flags() { # CMD...
  "$ampc" "$@" --help | grep -oE '^  (-[a-z], )?--[a-z0-9-]+' | sed -E 's/.*--//' | grep -vx help |
    sort -u
}
compare() { # NAME TABLE HELP
  if [ -n "$2" ] && [ "$2" = "$3" ]; then ok; else
    bad "$1: table flags [$(echo $2)] vs help [$(echo $3)]"
  fi
}
# train also takes the accumulation/MPI flags of dist.c (DIST_FLAGS).
compare train "$({
  table_flags "$src/train_opts.c" TOPT
  sed -n '/DIST_FLAGS\[\] = {/,/};/p' "$src/dist.c" | grep -oE '"--[a-z0-9-]+"' | sed -E 's/"--//; s/"$//'
} | sort -u)" "$(help_flags train)"
compare eval "$(table_flags "$src/eval.c" EOPT)" "$(help_flags eval)"
compare sample "$(table_flags "$src/sample.c" SOPT)" "$(help_flags sample)"
compare export "$(table_flags "$src/export.c" XOPT)" "$(help_flags export)"
compare diagnose "$(table_flags "$src/diagnose.c" DOPT)" "$(help_flags diagnose)"
compare "bench gemm" "$(table_flags "$src/main.c" GOPT)" "$(help_flags bench gemm)"
compare plot "$(grep -oE '\{"[a-z-]+", .?.?.?, AMPC_OPT' "$src/plot.c" | sed -E 's/\{"//; s/".*//' |
  sort -u)" "$(help_flags plot)"
compare "bench peak" "$(grep -oE '\{"[a-z-]+", 0, AMPC_OPT' "$src/main.c" | sed -E 's/\{"//; s/".*//' |
  sort -u)" "$(help_flags bench peak)"

# The man page (docs/ampc.1, made by scripts/gen-man) documents every flag
# of every help.
man="$src/../../docs/ampc.1"
for c in "${cmds[@]}"; do
  # shellcheck disable=SC2086
  for f in $(help_flags $c); do
    grep -qF -- "\-\-${f//-/\\-}" "$man" && ok || bad "docs/ampc.1 lacks $c --$f (run scripts/gen-man)"
  done
done

# Every flag the help shows is accepted: never "unknown option". (`--f=x
# --help`: the parser takes or refuses the value, then prints the usage;
# nothing runs.)
for c in "${cmds[@]}"; do
  # shellcheck disable=SC2086
  for f in $(help_flags $c); do
    # shellcheck disable=SC2086
    err=$("$ampc" $c --$f=x --help 2>&1 </dev/null | head -3)
    printf '%s' "$err" | grep -q "unknown option" && bad "$c --$f: $err" || ok
  done
done

# --x=v is --x v; errors name the subcommand; suggestions.
syn=(train --data synthetic --model mlp:16-8-3 --synthetic-n 300 --epochs 1 --quiet --json)
a=$("$ampc" "${syn[@]}" --seed 4 --lr 0.01)
b=$("$ampc" "${syn[@]}" --seed=4 --lr=0.01)
[ -n "$a" ] && [ "$(field "$a" final_loss)" = "$(field "$b" final_loss)" ] && ok || bad "--x=v: $a / $b"
expect_fail 2 "^ampc train: unknown option '--epoch'; did you mean --epochs?" train --epoch 3
expect_fail 2 "^ampc eval: unknown option '--chekpoint'; did you mean --checkpoint?" eval --chekpoint x
expect_fail 2 "^ampc export: unknown option '--fromat'; did you mean --format?" export --fromat pytorch
expect_fail 2 "^ampc plot: unknown option '--ouput'; did you mean --output?" plot --ouput x
expect_fail 2 "^ampc bench gemm: unknown option '--thread'; did you mean --threads?" bench gemm --thread 2
expect_fail 2 "did you mean 'train'" trian
expect_fail 2 "^ampc eval: --threads needs a value" eval --threads
expect_fail 2 "^ampc train: --json takes no value" train --json=1
expect_fail 2 "^ampc eval: --precision: 'fp8' is not fp32, fp16 or bf16" eval --precision fp8 x

# Strict numbers: the range is in the message.
for v in 1.5 0x10 1e2 " 2" "+2" "" "2 " 18446744073709551617 9007199254740993; do
  expect_fail 2 "^ampc train: --seed: '$v' is not an integer (whole number) in \[0, 9007199254740992\]" \
    train --seed "$v"
done
expect_fail 2 "'0x10' is not an integer (whole number) in \[1, 100000\]" train --epochs 0x10
expect_fail 2 "'100001' is not an integer" train --epochs 100001
expect_fail 2 "--lr: 'nan' is not a number in \[0, 1000\]" train --lr nan
expect_fail 2 "--lr: '0x1p-3' is not a number" train --lr 0x1p-3
expect_fail 2 "--lr: 'inf' is not a number" train --lr inf
for m in "mlp:32-64-5-" "mlp:-32-64" "mlp:32--64" "mlp:32- 64" "mlp:+32-64" "mlp:32-0-5" \
  "mlp:32-2000000-5" "mlp:32"; do
  expect_fail 2 "^ampc train: --model: '$m' is not mlp:" train --model "$m"
done
for s in cosine:99999999999999999999 step:99999999999999999999:0.5 step:10:0 step:10:1.5 \
  step:0:0.5 cosine:-1 "cosine: 5" step:10 cosine; do
  expect_fail 2 "^ampc train: --schedule: '$s' is not constant" train --schedule "$s"
done
expect_fail 2 "static:N or none" train --loss-scale static:abc

# --batch 1 --epochs 100000 keeps the per-step timing buffer bounded (it was
# 8 bytes per step of the whole run, 6e9 steps here: 48 GB, refused at once
# under a 1 GiB address-space limit): the run is still training after 3 s.
# (Not with AddressSanitizer, whose shadow memory needs more address space.)
if grep -q __asan_init "$ampc"; then
  echo "note: sanitizer build; the address-space limit check is skipped"
else
  (
    ulimit -v 1048576
    timeout 3 "$ampc" train --data synthetic --model mlp:16-8-3 --synthetic-n 60000 --batch 1 \
      --epochs 100000 --quiet --threads 1 >"$tmp/huge.out" 2>&1
    echo $? >"$tmp/huge.rc"
  )
  [ "$(cat "$tmp/huge.rc")" = 124 ] && ok ||
    bad "--batch 1 --epochs 100000: rc $(cat "$tmp/huge.rc"): $(cat "$tmp/huge.out")"
fi

finish
