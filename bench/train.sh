#!/usr/bin/env bash
# Training step time and activation memory of the reference MLP (MNIST,
# batch 128, Adam) in ampc fp32, ampc fp16 mixed precision and PyTorch fp32
# on the CPU, all measured in this run with the same thread count; prints
# JSON lines with the ratios and the issue's floors.
#   bench/train.sh [AMPC] [THREADS] [STEPS]
# AMPC_KERNELS=avx2 bench/train.sh runs every ampc with the AVX2 kernel table
# (as on an AVX2-only CPU: the fp16 floor's case); the machine line's
# "kernels" says which table ran.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ampc="${1:-$root/build/ampc}"
threads="${2:-2}"
steps="${3:-300}"
# shellcheck source=mlp_run.bash
source "$root/bench/mlp_run.bash"
# shellcheck source=waits.bash
source "$root/bench/waits.bash"
pin_waits "$ampc"

# fp32, fp16 and bf16 alternate, five runs each. A shared host's load drifts
# over seconds, so each ratio is taken within one adjacent fp32/fp16/bf16
# triple and the median of the five ratios is reported (with the median step
# times). bf16 runs with the context's default BF16 GEMM (the AVX512-BF16
# dot-product kernel where the CPU has it; AMPC_BF16_DOT=0 for the exact
# FMA path); the machine line says which.
# Each run's CPU time (user + system, the whole run: start, steps and the
# test pass) is kept too: on a loaded host it moves less than wall time, and
# its ratios are printed beside the wall ones.
runs32=() runs16=() runsbf=() pairs=() pairsbf=() cpu16=() cpubf=()
cpu=$(mktemp)
trap 'rm -f "$cpu"' EXIT
timed() { # PRECISION: the run's JSON line; its CPU seconds go to $cpu
  /usr/bin/time -f '%U %S' -o "$cpu" "$ampc" "${args[@]}" --precision "$1"
}
cpus() { awk '{ printf "%.2f", $1 + $2 }' "$cpu"; }
for _ in 1 2 3 4 5; do
  f32=$(timed fp32) u32=$(cpus)
  f16=$(timed fp16) u16=$(cpus)
  fbf=$(timed bf16) ubf=$(cpus)
  a=$(field "$f32" step_ms_median) b=$(field "$f16" step_ms_median) c=$(field "$fbf" step_ms_median)
  runs32+=("$a") runs16+=("$b") runsbf+=("$c")
  pairs+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.4f", b / a }')")
  pairsbf+=("$(awk -v a="$a" -v c="$c" 'BEGIN { printf "%.4f", c / a }')")
  cpu16+=("$(awk -v a="$u32" -v b="$u16" 'BEGIN { printf "%.4f", b / a }')")
  cpubf+=("$(awk -v a="$u32" -v c="$ubf" 'BEGIN { printf "%.4f", c / a }')")
done
median5() { printf '%s\n' "$@" | sort -g | sed -n 3p; }
torch=$(/usr/bin/python3 "$root/bench/torch_mlp.py" --threads "$threads" --steps "$steps" --data "$data" 2>/dev/null ||
  echo '{"error":"python3 failed"}')
t32=$(median5 "${runs32[@]}")
t16=$(median5 "${runs16[@]}")
tbf=$(median5 "${runsbf[@]}")
r16=$(median5 "${pairs[@]}")
rbf=$(median5 "${pairsbf[@]}")
# The step's GEMM work (784-1024-10, batch 128: forward, both weight
# gradients and the hidden layer's input gradient; the input needs none)
# over the fp32 step time, against the FMA peak measured in this run.
# The peak is probed before and after the GEMMs below, and the better probe
# kept (a shared host's slow phase would otherwise inflate every fraction).
peak=$(field "$("$ampc" bench peak --threads "$threads")" gflops)
# The ceiling of that fraction: the step's five F32 GEMMs alone, each timed
# by `ampc bench gemm` (ours and OpenBLAS's sgemm, same shapes and
# transposes), with nothing else in the step. Fields "M N K FLAGS".
gemm_ours=0 gemm_blas=0
for shape in "128 1024 784 --tb" "128 10 1024 --tb" "128 1024 10" "10 1024 128 --ta" "1024 784 128 --ta"; do
  read -r m n k flag <<<"$shape"
  gl=$("$ampc" bench gemm --m "$m" --n "$n" --k "$k" ${flag:+"$flag"} --a f32 --b f32 --c f32 --threads "$threads" --json)
  gemm_ours=$(awk -v t="$gemm_ours" -v f="$((2 * m * n * k))" -v r="$(field "$gl" gflops)" 'BEGIN { printf "%.9f", t + f / (r * 1e9) }')
  ob=$(field "$gl" openblas_gflops)
  gemm_blas=$(awk -v t="$gemm_blas" -v f="$((2 * m * n * k))" -v r="${ob:-0}" 'BEGIN { printf "%.9f", (r > 0 && t >= 0) ? t + f / (r * 1e9) : -1 }')
done
peak=$(awk -v a="${peak:-0}" -v b="$(field "$("$ampc" bench peak --threads "$threads")" gflops)" 'BEGIN { print (b > a ? b : a) }')
gj=$(AMPC_BF16_DOT="${AMPC_BF16_DOT:-}" "$ampc" bench gemm --m 8 --n 8 --k 8 --a bf16 --b bf16 --c f32 --threads 1 --reps 1 --json)
dot=$(printf '%s' "$gj" | sed -n 's/.*"bf16_gemm":"\([^"]*\)".*/\1/p')
kern=$(printf '%s' "$gj" | sed -n 's/.*"kernels":"\([^"]*\)".*/\1/p')
a32=$(field "$f32" activation_bytes)
a16=$(field "$f16" activation_bytes)
tt=$(field "$torch" step_ms_median)
echo "{\"bench\":\"train_step\",\"threads\":$threads,\"steps\":$steps,\"ampc_fp32_ms\":$t32,\"ampc_fp16_ms\":$t16,\"ampc_bf16_ms\":$tbf,\"kernels\":\"$kern\",\"waits\":\"$waits\",\"bf16_gemm\":\"$dot\",\"torch_fp32_ms\":${tt:-null},\"ampc_fp32_runs\":\"${runs32[*]}\",\"ampc_fp16_runs\":\"${runs16[*]}\",\"ampc_bf16_runs\":\"${runsbf[*]}\",\"fp16_over_fp32_pairs\":\"${pairs[*]}\",\"bf16_over_fp32_pairs\":\"${pairsbf[*]}\",\"cpu_fp16_over_fp32_pairs\":\"${cpu16[*]}\",\"cpu_bf16_over_fp32_pairs\":\"${cpubf[*]}\",\"cpu_fp16_over_fp32\":$(median5 "${cpu16[@]}"),\"cpu_bf16_over_fp32\":$(median5 "${cpubf[@]}"),\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
awk -v t32="$t32" -v t16="$t16" -v r16="$r16" -v rbf="$rbf" -v dot="$dot" -v peak="${peak:-0}" -v tt="${tt:-0}" -v a32="$a32" -v a16="$a16" -v go="$gemm_ours" -v gb="$gemm_blas" 'BEGIN {
  printf "{\"bench\":\"train_ratios\",\"fp16_over_fp32\":%.3f,\"floor_fp16_over_fp32\":1.0,\"pass_fp16_le_fp32\":%s,", r16, (r16 <= 1 ? "true" : "false");
  printf "\"bf16_over_fp32\":%.3f,", rbf;
  if (dot ~ /dot/) printf "\"floor_bf16_over_fp32\":0.65,\"pass_bf16\":%s,", (rbf <= 0.65 ? "true" : "false");
  else printf "\"bf16_floor\":\"not run: no AVX512-BF16 dot kernel here (%s)\",", dot;
  gf = 2 * 128 * (1024 * 784 * 2 + 10 * 1024 * 3) * 1e-9;
  if (peak > 0) printf "\"fp32_step_gemm_gflop\":%.4f,\"fp32_step_gflops\":%.2f,\"peak_gflops\":%.2f,\"fp32_step_peak_frac\":%.3f,\"floor_peak_frac\":0.80,\"pass_peak_frac\":%s,", gf, gf / (t32 * 1e-3), peak, gf / (t32 * 1e-3) / peak, (gf / (t32 * 1e-3) >= 0.8 * peak ? "true" : "false");
  if (peak > 0 && go > 0) printf "\"gemms_only_ms\":%.3f,\"gemms_only_peak_frac\":%.3f,", go * 1e3, gf / go / peak;
  if (peak > 0 && gb > 0) printf "\"openblas_gemms_only_ms\":%.3f,\"openblas_gemms_only_peak_frac\":%.3f,", gb * 1e3, gf / gb / peak;
  if (tt > 0) printf "\"fp32_over_torch\":%.3f,\"fp16_over_torch\":%.3f,\"floor_over_torch\":0.4,\"pass_torch\":%s,", t32 / tt, t16 / tt, (t32 <= 0.4 * tt && t16 <= 0.4 * tt ? "true" : "false");
  else printf "\"torch\":\"unavailable (install python3-torch)\",";
  printf "\"activation_fp16_over_fp32\":%.3f,\"floor_activation\":0.55,\"pass_activation\":%s}\n", a16 / a32, (a16 <= 0.55 * a32 ? "true" : "false");
}'
