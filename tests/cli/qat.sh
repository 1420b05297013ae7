#!/usr/bin/env bash
# Quantization-aware training and INT8 inference: `train --qat int8` saves
# the observers in its checkpoint (and a resume continues bit for bit),
# `export --int8` writes I8 weights with F32 scales, `eval` runs the export
# with integer GEMMs within 0.1 point of the fake-quantized model (on MNIST
# when data/mnist is there, else on synthetic data), and bad input is
# refused with a message and nothing written: an unknown scheme, --qat with
# a 16-bit precision or a GPT, export --int8 of a checkpoint that was not
# QAT-trained, INT8 files with bad scales (NaN, inf, zero, negative, wrong
# shape), a bad zero point, a missing tensor.
set -u
ampc="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
# shellcheck source=lib.bash
source "$(dirname "$0")/lib.bash"
command -v python3 >/dev/null 2>&1 || { echo "skipped: python3 missing (scripts/install-deps installs it)"; exit 77; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mnist="$(cd "$(dirname "$0")/../.." && pwd)/data/mnist"

# Flags and their refusals.
expect_fail 2 "'int4' is not int8" train --qat int4 --precision fp32
expect_fail 2 "trains mlp: models" train --qat int8 --model gpt --data fortunes
syn=(--data synthetic --synthetic-n 600 --model mlp:16-8-3)
"$ampc" train "${syn[@]}" --precision fp32 --epochs 1 --quiet --save "$tmp/fp32.st" >/dev/null && ok || bad "fp32 train"
expect_fail 1 "was not trained with --qat int8" export --int8 --checkpoint "$tmp/fp32.st" "$tmp/x.st"
[ ! -e "$tmp/x.st" ] && ok || bad "a refused export wrote a file"

# A resume of a QAT run gives the bits of the uninterrupted run (observers
# included).
"$ampc" train "${syn[@]}" --precision fp32 --qat int8 --epochs 2 --quiet --save "$tmp/full.st" >/dev/null && ok || bad "qat train"
"$ampc" train "${syn[@]}" --precision fp32 --qat int8 --epochs 2 --max-steps 7 --quiet --save "$tmp/half.st" >/dev/null && ok || bad "qat half"
"$ampc" train --resume "$tmp/half.st" --quiet --save "$tmp/resumed.st" >/dev/null && ok || bad "qat resume"
cmp -s "$tmp/full.st" "$tmp/resumed.st" && ok || bad "the resumed QAT run differs from the uninterrupted one"
expect_fail 2 "qat int8 conflicts with --resume" train --resume "$tmp/fp32.st" --qat int8 --quiet

# Under bf16 autocast too (the weight is fake-quantized in F32 on its master,
# then cast for the product).
"$ampc" train "${syn[@]}" --precision bf16 --qat int8 --epochs 2 --quiet --save "$tmp/b.st" >/dev/null && ok || bad "bf16 qat train"
"$ampc" export --int8 --checkpoint "$tmp/b.st" "$tmp/b8.st" >/dev/null && ok || bad "bf16 export --int8"
b=$(field "$("$ampc" eval --json "$tmp/b.st")" test_accuracy)
b8=$(field "$("$ampc" eval --json "$tmp/b8.st")" test_accuracy)
python3 -c "import sys; sys.exit(0 if abs($b - $b8) <= 1.0 else 1)" 2>/dev/null && ok ||
  bad "bf16 QAT: INT8 eval $b8% vs fake-quantized $b%"

# Export and integer eval: on MNIST (a short run) when it is there.
if [ -f "$mnist/t10k-images-idx3-ubyte" ] || [ -f "$mnist/t10k-images-idx3-ubyte.gz" ]; then
  run=(--data "$mnist" --model mlp:784-128-10 --max-steps 150 --epochs 1)
else
  echo "note: $mnist missing: the agreement check runs on synthetic data"
  run=("${syn[@]}" --epochs 2)
fi
"$ampc" train "${run[@]}" --precision fp32 --qat int8 --quiet --save "$tmp/q.st" >/dev/null && ok || bad "qat train for export"
"$ampc" export --int8 --checkpoint "$tmp/q.st" "$tmp/q8.st" >/dev/null && ok || bad "export --int8"
fq=$(field "$("$ampc" eval --json "$tmp/q.st")" test_accuracy)
i8=$(field "$("$ampc" eval --json "$tmp/q8.st")" test_accuracy)
i8t1=$(field "$("$ampc" eval --json --threads 1 "$tmp/q8.st")" test_accuracy)
python3 -c "import sys; sys.exit(0 if abs($fq - $i8) <= 0.1 else 1)" 2>/dev/null && ok ||
  bad "INT8 eval $i8% vs fake-quantized $fq% (more than 0.1 point apart)"
[ "$i8" = "$i8t1" ] && ok || bad "INT8 eval with 1 and 2 threads: $i8t1 vs $i8"
AMPC_SIMD=0 "$ampc" eval --json "$tmp/q8.st" >"$tmp/scalar.json" && ok || bad "scalar eval"
[ "$(field "$(cat "$tmp/scalar.json")" test_accuracy)" = "$i8" ] && ok || bad "scalar and SIMD INT8 eval differ"
expect_fail 2 "is an INT8 export" eval --precision fp16 "$tmp/q8.st"

# The file's layout, then broken copies of it.
cat >"$tmp/st.py" <<'PY'
import json, struct, sys
def read(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); meta = h.pop('__metadata__', {})
    return {k: [v['dtype'], v['shape'], b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]]]
            for k, v in h.items()}, meta
def write(path, t, meta):
    header, data = {'__metadata__': meta}, b''
    for k in sorted(t):
        dt, shape, raw = t[k]
        header[k] = {'dtype': dt, 'shape': shape, 'data_offsets': [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode(); h += b' ' * (-len(h) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + data)
cmd, src, dst = sys.argv[1:4]
t, meta = read(src)
if cmd == 'layout':
    want = {'0.weight': 'I8', '0.weight_scale': 'F32', '0.bias': 'F32', '0.input_scale': 'F32',
            '0.input_zero_point': 'I32'}
    ok = all(t[k][0] == v for k, v in want.items()) and meta.get('ampc.int8') == 'mlp'
    ok = ok and t['0.weight_scale'][1] == [t['0.weight'][1][0]] and len(t) == 10
    sys.exit(0 if ok else 1)
f = lambda v: struct.pack('<f', v)
if cmd == 'nan': t['2.weight_scale'][2] = f(float('nan')) + t['2.weight_scale'][2][4:]
if cmd == 'inf': t['0.input_scale'][2] = f(float('inf'))
if cmd == 'zero': t['0.weight_scale'][2] = t['0.weight_scale'][2][:4] + f(0.0) + t['0.weight_scale'][2][8:]
if cmd == 'neg': t['0.input_scale'][2] = f(-0.5)
if cmd == 'shape':
    t['0.weight_scale'][1] = [t['0.weight_scale'][1][0] - 1]; t['0.weight_scale'][2] = t['0.weight_scale'][2][4:]
if cmd == 'zp': t['2.input_zero_point'][2] = struct.pack('<i', 300)
if cmd == 'missing': del t['2.bias']
if cmd == 'f32w':
    t['0.weight'] = ['F32', t['0.weight'][1], b''.join(f(float(x)) for x in struct.unpack('%db' % len(t['0.weight'][2]), t['0.weight'][2]))]
write(dst, t, meta)
PY
python3 "$tmp/st.py" layout "$tmp/q8.st" - && ok || bad "the INT8 file's layout"
for c in nan inf zero neg shape zp missing; do
  python3 "$tmp/st.py" "$c" "$tmp/q8.st" "$tmp/bad_$c.st" || bad "writing bad_$c"
done
expect_fail 1 "2.weight_scale\[0\] is nan" eval "$tmp/bad_nan.st"
expect_fail 1 "input_scale inf must be finite and > 0" eval "$tmp/bad_inf.st"
expect_fail 1 "0.weight_scale\[1\] is 0" eval "$tmp/bad_zero.st"
expect_fail 1 "input_scale -0.5 must be finite and > 0" eval "$tmp/bad_neg.st"
expect_fail 1 "0.weight_scale must be f32 \[" eval "$tmp/bad_shape.st"
expect_fail 1 "input_zero_point 300 in \[0, 255\]" eval "$tmp/bad_zp.st"
expect_fail 1 "2.bias must be f32 .*missing\|need 10 tensors" eval "$tmp/bad_missing.st"
# An INT8 export is not a checkpoint: export and --init refuse it by name.
expect_fail 1 "0.weight is I8" export --checkpoint "$tmp/q8.st" --model mlp:16-8-3 "$tmp/y.st"
[ ! -e "$tmp/y.st" ] && ok || bad "a refused export wrote a file"
# The benchmark itself (`ampc bench int8`) is not run here: it takes seconds
# with SIMD and minutes on the scalar kernels of a -DAMPC_SIMD=OFF build.
expect_fail 2 "unknown option" bench int8 --fast
finish
