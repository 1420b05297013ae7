#!/usr/bin/env bash
# Data-parallel training figures (issue 16): the reference MLP
# (mlp:784-1024-10, 814,090 parameters, 3.26 MB of FP32 gradients) at a
# global batch of 128, as
#   1 process x 2 threads (--batch 128),
#   1 process x 1 thread with --accum 2 (--batch 64: the bits of 2 ranks),
#   2 ranks x 1 thread (--batch 64), and 3 and 4 ranks oversubscribed
#   (--global-batch 128 does not split into 3: 3 ranks use --batch 43),
# printing one JSON line per run (samples/s, step time, bytes per step
# against the reduce-scatter + all-gather optimum 2(N-1)/N, the fraction of
# step time waiting in MPI) and the measured cost per byte of the exchange.
#   bench/mpi.sh [AMPC] [STEPS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ampc="${1:-$root/build/ampc}"
steps="${2:-200}"
data="$root/data/mnist"
args=(train --model mlp:784-1024-10 --precision fp16 --max-steps "$steps" --json --quiet)
if [ -f "$data/train-images-idx3-ubyte" ]; then args+=(--data "$data"); else
  args+=(--data synthetic --synthetic-n 40000)
fi
root_flag=()
[ "$(id -u)" -eq 0 ] && root_flag=(--allow-run-as-root)
mr() {
  local n=$1
  shift
  mpirun -np "$n" "${root_flag[@]}" --oversubscribe --bind-to none "$ampc" "$@"
}
field() { printf '%s' "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" | tr -d '"'; }
line() { # NAME JSON
  local j=$2
  printf '{"bench":"mpi","run":"%s","samples_per_s":%s,"step_ms_median":%s,"ranks":%s,' "$1" \
    "$(field "$j" samples_per_s)" "$(field "$j" step_ms_median)" "${3:-1}"
  printf '"comm_bytes_per_step":%s,"comm_optimal_bytes_per_step":%s,"comm_ratio":%s,' \
    "$(field "$j" comm_bytes_per_step)" "$(field "$j" comm_optimal_bytes_per_step)" \
    "$(field "$j" comm_ratio)"
  printf '"comm_s_per_step":%s,"mpi_wait_fraction":%s}\n' "$(field "$j" comm_s_per_step)" \
    "$(field "$j" mpi_wait_fraction)"
}
p2=$("$ampc" "${args[@]}" --batch 128 --threads 2)
line "1 process x 2 threads" "${p2%\}},\"comm_bytes_per_step\":0,\"comm_optimal_bytes_per_step\":0,\"comm_ratio\":0,\"comm_s_per_step\":0,\"mpi_wait_fraction\":0}"
a2=$("$ampc" "${args[@]}" --batch 64 --accum 2 --threads 1)
line "1 process x 1 thread, --accum 2" "$a2"
r2=$(mr 2 "${args[@]}" --batch 64 --threads 1)
line "2 ranks x 1 thread" "$r2" 2
r3=$(mr 3 "${args[@]}" --batch 43 --threads 1)
line "3 ranks x 1 thread (oversubscribed)" "$r3" 3
r4=$(mr 4 "${args[@]}" --batch 32 --threads 1)
line "4 ranks x 1 thread (oversubscribed)" "$r4" 4
# The ratio the issue asks for, and the cost per byte sent by one rank in
# the 2-rank exchange (seconds in the exchange per step / bytes per step).
awk -v a="$(field "$r2" samples_per_s)" -v b="$(field "$p2" samples_per_s)" \
  -v c="$(field "$r2" comm_s_per_step)" -v by="$(field "$r2" comm_bytes_per_step)" \
  'BEGIN { printf "{\"bench\":\"mpi_summary\",\"ranks2_over_threads2\":%.3f,\"exchange_ns_per_byte\":%.3f}\n", a / b, 1e9 * c / by }'

# --grad-comm f16|bf16 against the F32 exchange: the relative L2 error of
# the first SGD update (= the exchanged gradient's error: the update is
# -lr·g) over 4 steps' worth of first updates, and the end of a short run.
t=$(mktemp -d /tmp/ampc-gc.XXXXXX)
trap 'rm -rf "$t"' EXIT
g=(train --model mlp:784-1024-10 --precision fp16 --optim sgd --lr 0.1 --threads 1 --quiet)
if [ -f "$data/train-images-idx3-ubyte" ]; then g+=(--data "$data"); else g+=(--data synthetic); fi
mr 2 "${g[@]}" --batch 64 --max-steps 1 --lr 0 --save "$t/w0.st" >/dev/null
for c in f32 f16 bf16; do
  mr 2 "${g[@]}" --batch 64 --max-steps 1 --grad-comm "$c" --save "$t/w1$c.st" >/dev/null
  run=$(mr 2 "${g[@]}" --batch 64 --max-steps "$steps" --grad-comm "$c" --json)
  echo "$c $(field "$run" final_loss) $(field "$run" test_accuracy) $(field "$run" comm_ratio)" >>"$t/runs"
done
python3 - "$t" <<'PY'
import array, json, math, struct, sys
t = sys.argv[1]
def masters(p):  # the FP32 masters in name order (no numpy needed)
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
    out = array.array('f')
    for k in sorted(k for k in h if k != '__metadata__' and not k.startswith('optim.')):
        s, e = h[k]['data_offsets']; out.frombytes(b[8 + n + s:8 + n + e])
    return out
w0 = masters(f'{t}/w0.st'); w32 = masters(f'{t}/w1f32.st')
d32 = [a - b for a, b in zip(w32, w0)]
runs = {l.split()[0]: l.split()[1:] for l in open(f'{t}/runs')}
for c in ('f16', 'bf16'):
    d = [a - b for a, b in zip(masters(f'{t}/w1{c}.st'), w0)]
    err = math.sqrt(sum((x - y) ** 2 for x, y in zip(d, d32)) / sum(y * y for y in d32))
    print(json.dumps({"bench": "grad_comm", "grad_comm": c, "first_update_rel_l2_error": round(err, 8),
                      "final_loss": float(runs[c][0]), "final_loss_f32": float(runs['f32'][0]),
                      "test_accuracy": float(runs[c][1]), "test_accuracy_f32": float(runs['f32'][1]),
                      "comm_ratio": float(runs[c][2])}))
PY
