#!/usr/bin/env bash
# Training step time and activation memory of the reference MLP (MNIST,
# batch 128, Adam) in ampc fp32, ampc fp16 mixed precision and PyTorch fp32
# on the CPU, all measured in this run with the same thread count; prints
# JSON lines with the ratios and the issue's floors.
#   bench/train.sh [AMPC] [THREADS] [STEPS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ampc="${1:-$root/build/ampc}"
threads="${2:-2}"
steps="${3:-300}"
data="$root/data/mnist"
args=(train --model mlp:784-1024-10 --batch 128 --threads "$threads" --max-steps "$steps" --json --quiet)
if [ -f "$data/train-images-idx3-ubyte" ]; then args+=(--data "$data"); else
  args+=(--data synthetic --synthetic-n 40000)
fi
field() { printf '%s' "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" | tr -d '"'; }

# fp32 and fp16 alternate, three runs each; the median of the runs' median
# step times is reported (one run's noise does not decide the ratio).
runs32=() runs16=()
for _ in 1 2 3; do
  f32=$("$ampc" "${args[@]}" --precision fp32)
  f16=$("$ampc" "${args[@]}" --precision fp16)
  runs32+=("$(field "$f32" step_ms_median)")
  runs16+=("$(field "$f16" step_ms_median)")
done
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
torch=$(/usr/bin/python3 "$root/bench/torch_mlp.py" --threads "$threads" --steps "$steps" --data "$data" 2>/dev/null ||
  echo '{"error":"python3 failed"}')
t32=$(median3 "${runs32[@]}")
t16=$(median3 "${runs16[@]}")
a32=$(field "$f32" activation_bytes)
a16=$(field "$f16" activation_bytes)
tt=$(field "$torch" step_ms_median)
echo "{\"bench\":\"train_step\",\"threads\":$threads,\"steps\":$steps,\"ampc_fp32_ms\":$t32,\"ampc_fp16_ms\":$t16,\"torch_fp32_ms\":${tt:-null},\"ampc_fp32_runs\":\"${runs32[*]}\",\"ampc_fp16_runs\":\"${runs16[*]}\"}"
awk -v t32="$t32" -v t16="$t16" -v tt="${tt:-0}" -v a32="$a32" -v a16="$a16" 'BEGIN {
  printf "{\"bench\":\"train_ratios\",\"fp16_over_fp32\":%.3f,\"floor_fp16_over_fp32\":1.0,\"pass_fp16_le_fp32\":%s,", t16 / t32, (t16 <= t32 ? "true" : "false");
  if (tt > 0) printf "\"fp32_over_torch\":%.3f,\"fp16_over_torch\":%.3f,\"floor_over_torch\":0.4,\"pass_torch\":%s,", t32 / tt, t16 / tt, (t32 <= 0.4 * tt && t16 <= 0.4 * tt ? "true" : "false");
  else printf "\"torch\":\"unavailable (install python3-torch)\",";
  printf "\"activation_fp16_over_fp32\":%.3f,\"floor_activation\":0.55,\"pass_activation\":%s}\n", a16 / a32, (a16 <= 0.55 * a32 ? "true" : "false");
}'
