#!/usr/bin/env bash
# FP8 training step time against the F16 recipe's on the reference MLP
# (MNIST, batch 128, Adam), all measured in this run with the same thread
# count: the FP8 floor of the FP8 issue (each scaling mode <= 1.15x F16).
#   bench/fp8.sh [AMPC] [THREADS] [STEPS] [ROUNDS]
# fp16 and the three FP8 scaling modes alternate, ROUNDS runs each (5); each
# ratio is taken within one adjacent fp16/delayed/current/block group (a
# shared host's load drifts over seconds) and the median is printed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ampc="${1:-$root/build/ampc}"
threads="${2:-2}"
steps="${3:-300}"
rounds="${4:-5}"
# shellcheck source=mlp_run.bash
source "$root/bench/mlp_run.bash"
# shellcheck source=waits.bash
source "$root/bench/waits.bash"
pin_waits "$ampc"
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
modes=(delayed current block)
declare -A ms ratio
f16s=()
for ((r = 0; r < rounds; r++)); do
  j=$("$ampc" "${args[@]}" --precision fp16)
  t16=$(field "$j" step_ms_median)
  f16s+=("$t16")
  for m in "${modes[@]}"; do
    t=$(field "$("$ampc" "${args[@]}" --precision fp8 --fp8-scaling "$m")" step_ms_median)
    ms[$m]="${ms[$m]:-} $t"
    ratio[$m]="${ratio[$m]:-} $(awk -v a="$t16" -v b="$t" 'BEGIN { printf "%.4f", b / a }')"
  done
done
printf '{"bench":"fp8_step","threads":%s,"steps":%s,"rounds":%s,"waits":"%s","fp16_ms":%s,"fp16_runs":"%s"' \
  "$threads" "$steps" "$rounds" "$waits" "$(median "${f16s[@]}")" "${f16s[*]}"
pass=true
for m in "${modes[@]}"; do
  # shellcheck disable=SC2086
  rm_=$(median ${ratio[$m]})
  # shellcheck disable=SC2086
  printf ',"fp8_%s_ms":%s,"fp8_%s_over_fp16":%s,"fp8_%s_pairs":"%s"' "$m" "$(median ${ms[$m]})" "$m" "$rm_" "$m" "${ratio[$m]# }"
  awk -v r="$rm_" 'BEGIN { exit !(r > 1.15) }' && pass=false
done
printf ',"floor_fp8_over_fp16":1.15,"pass":%s,"loadavg":"%s"}\n' "$pass" "$(cut -d' ' -f1-3 /proc/loadavg)"
