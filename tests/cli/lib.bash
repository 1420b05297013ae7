# Shared by the command-line tests (tests/cli/*.sh; this file is sourced,
# not run): pass/fail counting and the checks every script uses. The script
# sets $ampc before sourcing.
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# expect_fail STATUS PATTERN ARGS...: exit status STATUS and stderr matching PATTERN.
expect_fail() {
  local want=$1 pat=$2
  shift 2
  local err rc
  err=$("$ampc" "$@" 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" -eq "$want" ] && printf '%s' "$err" | grep -q -- "$pat"; then ok; else
    bad "ampc $* -> rc=$rc stderr='$err' (want rc=$want, /$pat/)"
  fi
}

# field JSON KEY: the value of KEY in a one-line JSON object (quotes removed).
# The kernel table the binary picks here (scalar, avx2, avx512), from
# `ampc bench gemm --json`. The no-SIMD build reports scalar: the same bits as
# the SIMD build (tests compare the tables), at a fraction of the speed.
kernels_of() {
  "$1" bench gemm --m 8 --n 8 --k 8 --reps 1 --threads 1 --json | sed -n 's/.*"kernels":"\([^"]*\)".*/\1/p'
}
field() { printf '%s' "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" | tr -d '"'; }

# finish: the summary line and the exit status.
finish() {
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}
