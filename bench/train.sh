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

# fp32 and fp16 alternate, five runs each. A shared host's load drifts over
# seconds, so the ratio is taken within each adjacent pair and the median
# of the five pair ratios is reported (with the median step times).
runs32=() runs16=() pairs=()
for _ in 1 2 3 4 5; do
  f32=$("$ampc" "${args[@]}" --precision fp32)
  f16=$("$ampc" "${args[@]}" --precision fp16)
  a=$(field "$f32" step_ms_median) b=$(field "$f16" step_ms_median)
  runs32+=("$a") runs16+=("$b")
  pairs+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.4f", b / a }')")
done
median5() { printf '%s\n' "$@" | sort -g | sed -n 3p; }
torch=$(/usr/bin/python3 "$root/bench/torch_mlp.py" --threads "$threads" --steps "$steps" --data "$data" 2>/dev/null ||
  echo '{"error":"python3 failed"}')
t32=$(median5 "${runs32[@]}")
t16=$(median5 "${runs16[@]}")
r16=$(median5 "${pairs[@]}")
a32=$(field "$f32" activation_bytes)
a16=$(field "$f16" activation_bytes)
tt=$(field "$torch" step_ms_median)
echo "{\"bench\":\"train_step\",\"threads\":$threads,\"steps\":$steps,\"ampc_fp32_ms\":$t32,\"ampc_fp16_ms\":$t16,\"torch_fp32_ms\":${tt:-null},\"ampc_fp32_runs\":\"${runs32[*]}\",\"ampc_fp16_runs\":\"${runs16[*]}\",\"fp16_over_fp32_pairs\":\"${pairs[*]}\"}"
awk -v t32="$t32" -v t16="$t16" -v r16="$r16" -v tt="${tt:-0}" -v a32="$a32" -v a16="$a16" 'BEGIN {
  printf "{\"bench\":\"train_ratios\",\"fp16_over_fp32\":%.3f,\"floor_fp16_over_fp32\":1.0,\"pass_fp16_le_fp32\":%s,", r16, (r16 <= 1 ? "true" : "false");
  if (tt > 0) printf "\"fp32_over_torch\":%.3f,\"fp16_over_torch\":%.3f,\"floor_over_torch\":0.4,\"pass_torch\":%s,", t32 / tt, t16 / tt, (t32 <= 0.4 * tt && t16 <= 0.4 * tt ? "true" : "false");
  else printf "\"torch\":\"unavailable (install python3-torch)\",";
  printf "\"activation_fp16_over_fp32\":%.3f,\"floor_activation\":0.55,\"pass_activation\":%s}\n", a16 / a32, (a16 <= 0.55 * a32 ? "true" : "false");
}'
