#!/usr/bin/env bash
# Weights in and out (no PyTorch needed; python3's standard library writes
# and reads the files): ampc eval scores a checkpoint, an ampc export and a
# plain safetensors state dict (with --model, and a message naming what is
# missing without it or with names that match nothing); train --init starts
# from a state dict; export --format pytorch writes a torch.save archive
# whose pickle names every parameter with its shape and exact bytes; eval
# reads only the test split and works from another directory. The bit-exact
# round trip through PyTorch itself is scripts/torch-roundtrip.py.
set -u
ampc="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
# shellcheck source=lib.bash
source "$(dirname "$0")/lib.bash"
command -v python3 >/dev/null 2>&1 || { echo "skipped: python3 missing (scripts/install-deps installs it)"; exit 77; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
py="$tmp/st.py"
cat >"$py" <<'PY'
import json, struct, sys
def read(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); meta = h.pop('__metadata__', {})
    return {k: (v['dtype'], v['shape'], b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]])
            for k, v in h.items()}, meta
def write(path, t):  # as safetensors.torch.save_file: no metadata
    header, data = {}, b''
    for k in sorted(t):
        dt, shape, raw = t[k]
        header[k] = {'dtype': dt, 'shape': shape, 'data_offsets': [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode(); h += b' ' * (-len(h) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + data)
cmd, src, dst = sys.argv[1:4]
t, meta = read(src)
params = {k: v for k, v in t.items() if not k.startswith('optim.')}
if cmd == 'plain': write(dst, params)
if cmd == 'rename': write(dst, {'layers.' + k: v for k, v in params.items()})
if cmd == 'extra': write(dst, dict(params, **{'head.weight': params['0.bias']}))
if cmd == 'same':  # dst's parameters have src's bytes
    u, _ = read(dst)
    sys.exit(0 if all(u[k] == params[k] for k in params) and set(params) <= set(u) else 1)
PY

syn=(--data synthetic --synthetic-n 600)
"$ampc" train "${syn[@]}" --model mlp:16-8-3 --precision fp32 --epochs 2 --quiet \
  --save "$tmp/ck.st" >/dev/null && ok || bad "train"
acc=$(field "$("$ampc" eval --json "$tmp/ck.st")" test_accuracy)
[ -n "$acc" ] && ok || bad "eval of the checkpoint"

# A plain state dict: --model is needed, and then it scores the same.
python3 "$py" plain "$tmp/ck.st" "$tmp/sd.st"
expect_fail 1 "does not say which model it holds.*give --model.*0.weight F32 \[8, 16\]" \
  eval "$tmp/sd.st" "${syn[@]}"
out=$("$ampc" eval --json --model mlp:16-8-3 "${syn[@]}" "$tmp/sd.st")
[ "$(field "$out" test_accuracy)" = "$acc" ] && ok || bad "state dict: $out (checkpoint: $acc)"
python3 "$py" rename "$tmp/ck.st" "$tmp/renamed.st"
expect_fail 1 "no tensor name matches a parameter of the model, which expects 0.weight \[8, 16\]" \
  eval --model mlp:16-8-3 "$tmp/renamed.st"
python3 "$py" extra "$tmp/ck.st" "$tmp/extra.st"
expect_fail 1 "tensor head.weight is not a parameter of the model" eval --model mlp:16-8-3 "$tmp/extra.st"
expect_fail 1 "0.weight is F32 \[8, 16\], the model's parameter is \[9, 16\]" \
  eval --model mlp:16-9-3 "$tmp/sd.st"
expect_fail 1 "missing 4.weight \[3, 3\]" eval --model mlp:16-8-3-3 "$tmp/sd.st"

# ampc's own 16-bit export evaluates (it says no model: --model).
"$ampc" export --checkpoint "$tmp/ck.st" --dtype bf16 "$tmp/ex.st" >/dev/null && ok || bad "export"
"$ampc" eval --model mlp:16-8-3 "${syn[@]}" "$tmp/ex.st" >/dev/null && ok || bad "eval of an export"
expect_fail 1 "cannot\|error writing\|No such" export --checkpoint "$tmp/ck.st" "$tmp/no/dir/x.st"

# train --init: with lr 0 (SGD) the saved masters are the state dict's bits.
"$ampc" train "${syn[@]}" --model mlp:16-8-3 --precision fp16 --optim sgd --lr 0 --epochs 1 \
  --quiet --init "$tmp/sd.st" --save "$tmp/init.st" >/dev/null && ok || bad "train --init"
python3 "$py" same "$tmp/sd.st" "$tmp/init.st" && ok || bad "--init did not start from the weights"
expect_fail 1 "^ampc train: --init: .*missing" train "${syn[@]}" --model mlp:16-8-3-3 --init "$tmp/sd.st"

# export --format pytorch: a zip of data.pkl + data/<k> + version; the pickle
# (read with stand-ins for torch's classes) names each parameter, its shape,
# and its storage holds the checkpoint's bytes.
"$ampc" export --checkpoint "$tmp/ck.st" --format pytorch -o "$tmp/m.pt" >/dev/null && ok || bad "pt"
python3 - "$tmp/m.pt" "$tmp/ck.st" "$py" <<'PY' && ok || bad "the .pt archive is not a state dict"
import pickle, sys, zipfile, importlib.util
spec = importlib.util.spec_from_file_location('st', sys.argv[3])
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
names = z.namelist()
assert names[0] == 'archive/data.pkl' and 'archive/version' in names, names
class U(pickle.Unpickler):
    def find_class(self, mod, name):
        if (mod, name) == ('collections', 'OrderedDict'): return dict
        if (mod, name) == ('torch._utils', '_rebuild_tensor_v2'):
            return lambda st, off, size, stride, rg, hooks: (st, off, size, stride)
        if mod == 'torch': return name
        raise pickle.UnpicklingError(mod + '.' + name)
    def persistent_load(self, pid):
        kind, stype, key, loc, numel = pid
        assert kind == 'storage' and stype == 'FloatStorage' and loc == 'cpu'
        return z.read('archive/data/' + key), numel
import io
sd = U(io.BytesIO(z.read('archive/data.pkl'))).load()
import json, struct
b = open(sys.argv[2], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
params = [k for k in h if k != '__metadata__' and not k.startswith('optim.')]
assert sorted(sd) == sorted(params), (sorted(sd), params)
for k, ((raw, numel), off, size, stride) in sd.items():
    s, e = h[k]['data_offsets']
    assert list(size) == h[k]['shape'] and off == 0 and raw == b[8 + n + s:8 + n + e], k
    assert stride == ((size[1], 1) if len(size) == 2 else (1,)), (k, stride)
PY

# eval reads only the test split (no train files) and, the checkpoint
# holding an absolute data path, works from any directory.
mkdir -p "$tmp/mn"
for set in train t10k; do
  { printf '\x00\x00\x08\x03\x00\x00\x00\x04\x00\x00\x00\x1c\x00\x00\x00\x1c'
    head -c 3136 /dev/urandom; } >"$tmp/mn/$set-images-idx3-ubyte"
  printf '\x00\x00\x08\x01\x00\x00\x00\x04\x01\x02\x03\x09' >"$tmp/mn/$set-labels-idx1-ubyte"
done
(cd "$tmp" && "$ampc" train --data mn --model mlp:784-16-10 --batch 2 --epochs 1 --quiet \
  --save "$tmp/mn.st" >/dev/null) && ok || bad "tiny MNIST train"
rm "$tmp/mn/train-images-idx3-ubyte" "$tmp/mn/train-labels-idx1-ubyte"
out=$(cd / && "$ampc" eval --json "$tmp/mn.st")
[ "$(field "$out" test_samples)" = 4 ] && ok || bad "eval from / without train files: $out"

finish
