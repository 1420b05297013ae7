#!/usr/bin/env bash
# JSON output through cJSON: with paths holding quotes, backslashes, a tab
# and non-ASCII, the --json summaries of train and eval and every --metrics
# line parse (python3's json, NaN/Infinity refused) and give the paths back;
# float32 metrics read back to the bits the run had; a non-finite loss is
# null.
set -u
ampc="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
# shellcheck source=lib.bash
source "$(dirname "$0")/lib.bash"
command -v python3 >/dev/null 2>&1 || { echo "skipped: python3 missing (scripts/install-deps installs it)"; exit 77; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
dir="$tmp/we\"ird\\dir	é ü 猫"
mkdir -p "$dir"
syn=(train --data synthetic --model mlp:16-8-3 --synthetic-n 600 --epochs 2 --quiet --json)
"$ampc" "${syn[@]}" --save "$dir/c\"k.st" --metrics "$dir/m\\1.jsonl" >"$tmp/train.json" && ok ||
  bad "train"
"$ampc" eval --json "$dir/c\"k.st" >"$tmp/eval.json" && ok || bad "eval"
python3 - "$tmp/train.json" "$tmp/eval.json" "$dir" <<'PY' && ok || bad "JSON output"
import json, struct, sys
def strict(s):
    return json.loads(s, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
t = strict(open(sys.argv[1], encoding='utf-8').read())
e = strict(open(sys.argv[2], encoding='utf-8').read())
d = sys.argv[3]
assert t['checkpoint'] == d + '/c"k.st' and t['metrics'] == d + '/m\\1.jsonl', t
assert e['checkpoint'] == d + '/c"k.st' and e['test_accuracy'] == t['test_accuracy'], (e, t)
lines = [strict(l) for l in open(d + '/m\\1.jsonl', encoding='utf-8')]
assert len(lines) == t['steps'], (len(lines), t['steps'])
assert sum('val_accuracy' in l for l in lines) == 2 and 'val_accuracy' in lines[-1]
for l in lines:  # float32 values print with at most 9 significant digits
    for k in ('loss', 'lr', 'grad_norm', 'scale'):
        v = l[k]
        assert struct.unpack('f', struct.pack('f', v))[0] == v or len(repr(v)) <= 12, (k, v)
PY

# The checkpoint's metadata (written by the library with cJSON) keeps such a
# data path, absolute, and the header parses.
mkdir -p "$dir/mn"
for set in train t10k; do
  { printf '\x00\x00\x08\x03\x00\x00\x00\x04\x00\x00\x00\x1c\x00\x00\x00\x1c'
    head -c 3136 /dev/urandom; } >"$dir/mn/$set-images-idx3-ubyte"
  printf '\x00\x00\x08\x01\x00\x00\x00\x04\x01\x02\x03\x09' >"$dir/mn/$set-labels-idx1-ubyte"
done
(cd "$dir" && "$ampc" train --data mn --model mlp:784-8-10 --batch 2 --epochs 1 --quiet \
  --save "$tmp/mn.st" >/dev/null) && ok || bad "train on $dir/mn"
python3 - "$tmp/mn.st" "$dir/mn" <<'PY' && ok || bad "checkpoint metadata"
import json, struct, sys
b = open(sys.argv[1], 'rb').read()
meta = json.loads(b[8:8 + struct.unpack('<Q', b[:8])[0]])['__metadata__']
assert meta['config.data'] == sys.argv[2], (meta['config.data'], sys.argv[2])
PY

# A loss that goes non-finite: those steps' loss is null, not NaN.
# (fp32 has no loss scaler to skip the steps: SGD at lr 1000 diverges to NaN.)
"$ampc" train --data synthetic --model mlp:32-48-5 --synthetic-n 3000 --optim sgd --lr 1000 \
  --precision fp32 --quiet --metrics "$tmp/nan.jsonl" >/dev/null 2>&1
python3 - "$tmp/nan.jsonl" <<'PY' && ok || bad "non-finite loss in the metrics"
import json, sys
lines = [json.loads(l, parse_constant=lambda c: 1 / 0) for l in open(sys.argv[1])]
assert any(l['loss'] is None for l in lines), lines[-3:]
PY

finish
