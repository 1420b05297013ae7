#!/usr/bin/env bash
# A checkpoint, a data file and the command line are untrusted input
# (issue 11): crafted checkpoints (paths in the configuration, counters near
# overflow, non-finite weights, a scale that cannot go on, a model that does
# not fit the file, headers safetensors forbids), FIFOs, diverging runs
# (never saved over a good checkpoint, never exit 0), invalid JSON in
# metrics, memory estimates, stale temporary files and an unwritable --save.
# Every external command runs under `timeout`: a hang fails the test.
# Run by CTest against whichever build runs it (make test-asan: ASan+UBSan).
set -u
ampc="$1"
# shellcheck source=lib.bash
source "$(dirname "$0")/lib.bash"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if ! command -v python3 >/dev/null; then
  echo "skipped: python3 not found; the crafted-file checks need it"
  exit 77
fi
T=60 # seconds any one command may take
run() { timeout -k 5 "$T" "$ampc" "$@"; }
expect() { # STATUS PATTERN ARGS...: expect_fail under the timeout
  local want=$1 pat=$2 err rc
  shift 2
  err=$(run "$@" 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" -eq "$want" ] && printf '%s' "$err" | grep -q -- "$pat"; then ok; else
    bad "ampc $* -> rc=$rc stderr='$err' (want rc=$want, /$pat/)"
  fi
}
# craft IN OUT PY: OUT is IN with its header h (a dict), metadata m and data
# section d (a bytearray) changed by the Python statements PY.
craft() {
  python3 - "$@" <<'PY'
import json, math, struct, sys
src, dst, code = sys.argv[1:4]
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
m = h.setdefault("__metadata__", {})
d = bytearray(b[8 + n:])
def put_f32(name, i, v):  # value i of F32 tensor `name`
    off = h[name]["data_offsets"][0] + 4 * i
    d[off:off + 4] = struct.pack("<f", v)
raw = None
exec(code)
if raw is None:
    j = json.dumps(h, separators=(",", ":")).encode()
    j += b" " * (-len(j) % 8)
    raw = struct.pack("<Q", len(j)) + j + bytes(d)
open(dst, "wb").write(raw)
PY
}

syn=(train --data synthetic --model mlp:32-48-5 --synthetic-n 600 --quiet)
run "${syn[@]}" --epochs 1 --save "$tmp/good.st" >/dev/null || bad "the base checkpoint"
cp "$tmp/good.st" "$tmp/keep.st"

# 1. The configuration is an allow-list: no output path, ever.
craft "$tmp/good.st" "$tmp/c1.st" "m['config.save'] = '$tmp/pwned'"
expect 1 "config.save is not one a checkpoint may set" train --resume "$tmp/c1.st"
[ ! -e "$tmp/pwned" ] && ok || bad "a checkpoint's config.save was obeyed"
expect 2 "conflicts with --resume" "${syn[@]}" --resume "$tmp/good.st" --precision bf16

# 2. Non-finite state is never saved; the run fails; the good file stays.
div=(train --data synthetic --model mlp:32-64-5 --precision fp32 --optim sgd --lr 1000 --quiet)
cp "$tmp/keep.st" "$tmp/d.st"
expect 1 "non-finite value .* left as it was" "${div[@]}" --max-steps 8 --save "$tmp/d.st"
cmp -s "$tmp/d.st" "$tmp/keep.st" && ok || bad "a diverged run replaced the checkpoint"
cp "$tmp/keep.st" "$tmp/d.st"
expect 1 "not saved: tensor" "${div[@]}" --max-steps 20 --save-every 2 --save "$tmp/d.st"
run eval --checkpoint "$tmp/d.st" >/dev/null && ok || bad "--save-every wrote non-finite state"
expect 1 "non-finite value" "${div[@]}" --max-steps 8 # no --save: still a failure
# Adam's second moment saturates to inf (the weights themselves stay finite).
expect 1 "optim.exp_avg_sq.* non-finite" train --data synthetic --model mlp:32-64-5 \
  --precision fp32 --loss-mul 1e25 --max-steps 3 --quiet
# A late divergence (fewer than 5 non-finite losses before the end) fails:
# weights large enough for the FP16 forward pass to overflow (the loss is
# NaN, the scaler skips every step, the state stays finite) resumed for 3
# more steps.
craft "$tmp/good.st" "$tmp/late.st" "
for i in range(32 * 48): put_f32('0.weight', i, 3e4)"
expect 1 "non-finite loss for its last 3 step" "${syn[@]}" --resume "$tmp/late.st" --epochs 2 \
  --max-steps 8 --save "$tmp/late2.st"
run eval --checkpoint "$tmp/late2.st" >/dev/null && ok || bad "the late run's finite state"

# 3. Counters read from a file are bounded.
for key in train.skipped train.bad_losses train.step; do
  craft "$tmp/good.st" "$tmp/c3.st" "m['$key'] = '9223372036854775807'"
  expect 1 "train.step/train.skipped" train --resume "$tmp/c3.st"
done
for key in ampc.optim.step ampc.scaler.skipped ampc.loader.epoch; do
  craft "$tmp/good.st" "$tmp/c3.st" "m['$key'] = '9223372036854775807'"
  expect 1 "$key" train --resume "$tmp/c3.st"
done

# 4. A FIFO is refused, not waited on.
mkfifo "$tmp/fifo.st"
expect 1 "fifo.st" eval --checkpoint "$tmp/fifo.st"
expect 1 "fifo.st" train --resume "$tmp/fifo.st"
mkdir "$tmp/mn"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
  t10k-labels-idx1-ubyte; do mkfifo "$tmp/mn/$f"; done
expect 1 "idx3-ubyte" train --data "$tmp/mn" --quiet

# 5. What safetensors forbids: a NUL escape, a byte-order mark, control
# characters.
craft "$tmp/good.st" "$tmp/c5.st" "h['0.weight\\u0000junk'] = h.pop('0.weight')"
expect 1 "safetensors" eval --checkpoint "$tmp/c5.st"
craft "$tmp/good.st" "$tmp/c5.st" "
j = json.dumps(h).encode(); j = b'\\xef\\xbb\\xbf' + j; j += b' ' * (-len(j) % 8)
raw = struct.pack('<Q', len(j)) + j + bytes(d)"
expect 1 "safetensors" eval --checkpoint "$tmp/c5.st"
craft "$tmp/good.st" "$tmp/c5.st" "
j = json.dumps(h).replace('ampc-checkpoint-1', 'ampc-\\x01checkpoint').encode()
j += b' ' * (-len(j) % 8); raw = struct.pack('<Q', len(j)) + j + bytes(d)"
expect 1 "safetensors" eval --checkpoint "$tmp/c5.st"

# 6. Non-finite weights are refused on load, with the tensor's name.
craft "$tmp/good.st" "$tmp/c6.st" "put_f32('2.bias', 3, math.nan)"
expect 1 "'2.bias' holds a non-finite value at index 3" eval --checkpoint "$tmp/c6.st"
expect 1 "'2.bias' holds a non-finite value" export --checkpoint "$tmp/c6.st" "$tmp/w.st"
[ ! -e "$tmp/w.st" ] && ok || bad "export wrote weights from a NaN checkpoint"
craft "$tmp/good.st" "$tmp/c6.st" "put_f32('optim.exp_avg_sq.0.weight', 0, math.inf)"
expect 1 "exp_avg_sq.0.weight' holds a non-finite" train --resume "$tmp/c6.st"

# 7. The scale: at least the floor on load; a scale that cannot go on stops.
craft "$tmp/good.st" "$tmp/c7.st" "m['ampc.scaler.scale'] = '1e-45'"
expect 1 "scale below the least scale" train --resume "$tmp/c7.st"
expect 1 "loss scale is at its floor" train --data synthetic --model mlp:32-48-5 --optim sgd \
  --lr 1000 --loss-mul 1e30 --precision fp16 --quiet --save "$tmp/s7.st"
[ ! -e "$tmp/s7.st" ] && ok || bad "a run stopped at the scale floor saved a checkpoint"

# 8. Metrics and --json stay JSON with a non-finite loss (null): the late
# divergence's steps, and a resumed run with no step left (no loss yet).
run "${syn[@]}" --resume "$tmp/late.st" --epochs 2 --max-steps 8 --metrics "$tmp/m.jsonl" \
  >/dev/null 2>&1
python3 -c 'import json,sys
ls = [json.loads(l) for l in open(sys.argv[1])]
assert len(ls) == 3 and all(l["loss"] is None for l in ls)' "$tmp/m.jsonl" &&
  ok || bad "--metrics with a non-finite loss: $(head -1 "$tmp/m.jsonl")"
out=$(run "${syn[@]}" --resume "$tmp/good.st" --json 2>/dev/null)
printf '%s\n' "$out" | python3 -c 'import json,sys; assert json.load(sys.stdin)["final_loss"] is None' &&
  ok || bad "--json with no finite loss: $out"

# 10. Memory: estimated and refused before allocating; a file's tensors must
# be the model its metadata names before that model is built.
expect 1 "refused before allocating" train --data synthetic --model mlp:784-1048576-1048576-10 \
  --synthetic-n 100
craft "$tmp/good.st" "$tmp/c10.st" "m['config.model'] = 'mlp:32-1048576-1048576-5'"
expect 1 "not this model's weights" eval --checkpoint "$tmp/c10.st"
expect 1 "not this model's weights" export --checkpoint "$tmp/c10.st" "$tmp/w.st"
expect 1 "not this model's weights" train --resume "$tmp/c10.st"

# 11. Temporary files of killed saves of the same target go at the next
# save; a live process's, and other targets', stay.
sleep 60 &
live=$!
sh -c 'exit 0' &
dead=$!
wait "$dead"
: >"$tmp/t.st.tmp.$dead.0"
: >"$tmp/t.st.tmp.$dead.7"
: >"$tmp/t.st.tmp.$live.0"
: >"$tmp/other.st.tmp.$dead.0"
: >"$tmp/t.st.tmp.$dead.0x"
run "${syn[@]}" --max-steps 2 --save "$tmp/t.st" >/dev/null || bad "save with stale files"
[ ! -e "$tmp/t.st.tmp.$dead.0" ] && [ ! -e "$tmp/t.st.tmp.$dead.7" ] && ok ||
  bad "stale temporary files of a dead process were kept"
[ -e "$tmp/t.st.tmp.$live.0" ] && [ -e "$tmp/other.st.tmp.$dead.0" ] &&
  [ -e "$tmp/t.st.tmp.$dead.0x" ] && ok || bad "a file that is not stale was removed"
kill "$live" 2>/dev/null
wait "$live" 2>/dev/null

# 12. An unwritable --save is found at start-up, not after training.
expect 2 "cannot create files next to" "${syn[@]}" --epochs 1 --save /proc/self/x.st
expect 2 "cannot create files next to" "${syn[@]}" --epochs 1 --save "$tmp/no/such/dir/x.st"
expect 2 "not a regular file" "${syn[@]}" --epochs 1 --save "$tmp"

# Bad command lines: a message and status 2, never a crash.
expect 2 "needs a value" train --resume
expect 2 "not a number" train --lr nan
expect 2 "unknown option" eval --checkpoint "$tmp/good.st" --frob 1
expect 2 "is not f16, bf16" export --checkpoint "$tmp/good.st" --dtype f8 "$tmp/w.st"

finish
