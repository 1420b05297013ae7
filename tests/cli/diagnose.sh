#!/usr/bin/env bash
# `ampc diagnose` (issue 15 item 4): on the reference MLP (MNIST) in fp16
# without loss scaling a substantial share of the activation gradients would
# flush to zero in F16, and with dynamic scaling (grown past its initial
# 65536) almost none do; the run takes under 30 s (CPU) on 2 threads; the four SVG
# figures parse as XML with one series per layer; --checkpoint reads an ampc
# checkpoint and an export (with --model); bad input (flags, a checkpoint
# without or with an unknown model, unwritable --out) fails with a message
# and a non-zero status and leaves no file behind. A tiny GPT (fortunes) and
# the CNN (Fashion-MNIST): every layer by its module path, sane fractions,
# legible figures (the worst 8 layers drawn), the steps bit for bit train's.
# Without data/mnist the MNIST part is skipped, without fortunes or
# Fashion-MNIST that model's, without python3 the JSON and SVG checks: then
# the script exits 77 (skipped) after the other checks.
set -u
ampc="$1"
root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=lib.bash
source "$(dirname "$0")/lib.bash"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
skipped=""
# The 50-step MNIST runs and the CNN are minutes on scalar kernels; their
# numbers are the SIMD build's bit for bit, so a no-SIMD build leaves them to
# the SIMD build's run of this script (and says so).
kern=$(kernels_of "$ampc")
[ "$kern" = scalar ] && skipped="$skipped mnist(scalar) fashion-mnist(scalar)" &&
  echo "scalar kernels: the MNIST and CNN runs are left to the SIMD build (same bits, minutes here)"
py=""
command -v python3 >/dev/null 2>&1 && py=python3 || skipped="$skipped python3"
mnist="${AMPC_MNIST:-$root/data/mnist}"
[ -f "$mnist/train-images-idx3-ubyte" ] || [ -f "$mnist/train-images-idx3-ubyte.gz" ] ||
  skipped="$skipped data/mnist"

# stat FILE.json ROLE FORMAT KEY: an aggregate over the role's layers, or
# per-layer minima/maxima (KEY: agg_zero, min_zero, max_zero, below_normal).
stat() {
  $py - "$@" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); role, fmt, key = sys.argv[2:5]
L = d['roles'][role]
z = [e[fmt]['zero'] for e in L]; s = [e[fmt]['subnormal'] for e in L]; n = [e['nonzero'] for e in L]
fr = [a / b for a, b in zip(z, n)]
print({'agg_zero': sum(z) / sum(n), 'min_zero': min(fr), 'max_zero': max(fr),
       'below_normal': (sum(z) + sum(s)) / sum(n), 'scale_max': d['scale_max'],
       'wall_s': d['wall_s'], 'cpu_s': d['cpu_s'], 'steps': d['steps'],
       'observed': d['observed']}[key])
PY
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

if [ -n "$py" ] && [[ "$skipped" != *mnist* ]]; then
  # No loss scaling: F16 flushes about 5% of every layer's activation
  # gradients (2 Linear: 13%) and holds ~75% as subnormals (measured).
  "$ampc" diagnose --data "$mnist" --precision fp16 --loss-scale none --threads 2 --json \
    --out "$tmp/none" >"$tmp/none.json" 2>"$tmp/err" || bad "diagnose none: $(cat "$tmp/err")"
  z=$(stat "$tmp/none.json" activation_grads f16 min_zero)
  ge "$z" 0.02 && ok || bad "no scaling: the least-flushed layer loses only $z of its gradients"
  z=$(stat "$tmp/none.json" activation_grads f16 agg_zero)
  ge "$z" 0.03 && ok || bad "no scaling: F16 flushes only $z of the activation gradients"
  u=$(stat "$tmp/none.json" activation_grads f16 below_normal)
  ge "$u" 0.5 && ok || bad "no scaling: only $u of the activation gradients below F16's normals"
  # The floor, 30 s on 2 threads, in CPU time (both threads): the shared
  # test machine's wall clock measures its load (a hung run still fails).
  c=$(stat "$tmp/none.json" activation_grads f16 cpu_s)
  w=$(stat "$tmp/none.json" activation_grads f16 wall_s)
  ge 30 "$c" && ge 300 "$w" && ok || bad "diagnose took $c s of CPU, $w s wall (floor: 30 s)"
  echo "no scaling: F16 flushes $z of the activation gradients ($u below normal); $c s CPU, $w s wall"
  # Dynamic scaling, grown from 65536: the flushing is gone (ignoring the
  # scale would leave the 5% above).
  "$ampc" diagnose --data "$mnist" --precision fp16 --loss-scale dynamic --growth-interval 10 \
    --threads 2 --json >"$tmp/dyn.json" 2>"$tmp/err" || bad "diagnose dynamic: $(cat "$tmp/err")"
  s=$(stat "$tmp/dyn.json" activation_grads f16 scale_max)
  ge "$s" 131072 && ok || bad "the dynamic scale did not grow ($s)"
  z=$(stat "$tmp/dyn.json" activation_grads f16 max_zero)
  ge 0.002 "$z" && ok || bad "dynamic scaling: a layer still flushes $z"
  z=$(stat "$tmp/dyn.json" activation_grads f16 agg_zero)
  ge 0.0005 "$z" && ok || bad "dynamic scaling: F16 still flushes $z"
  u=$(stat "$tmp/dyn.json" activation_grads f16 below_normal)
  ge 0.05 "$u" && ok || bad "dynamic scaling: $u still below F16's normals"
  echo "dynamic scaling (up to $s): F16 flushes $z ($u below normal)"
  # The text summary names the worst layers and the recommendation.
  "$ampc" diagnose --data "$mnist" --loss-scale none --steps 2 >"$tmp/text" 2>&1 &&
    grep -q "layers that lose most in f16" "$tmp/text" &&
    grep -q "recommended loss scale" "$tmp/text" && ok || bad "text summary: $(head -5 "$tmp/text")"
  # The figures: well-formed SVG, one series per layer, the rulers.
  $py - "$tmp/none" <<'PY' && ok || bad "the SVG figures are not what they should be"
import sys, xml.etree.ElementTree as ET
ns = '{http://www.w3.org/2000/svg}'
for role, n in [('weights', 4), ('activations', 3), ('activation_grads', 3), ('weight_grads', 4)]:
    root = ET.parse(f'{sys.argv[1]}/diagnose-{role}.svg').getroot()
    series = [p for p in root.iter(ns + 'path') if p.get('class') == 'series']
    rulers = [r for r in root.iter(ns + 'rect') if r.get('class') == 'ruler']
    limits = [l for l in root.iter(ns + 'line') if l.get('class') == 'limit']
    assert len(series) == n, (role, len(series))
    assert len(rulers) >= 8 and len(limits) >= 3, (role, len(rulers), len(limits))
PY
fi

# Synthetic data: --checkpoint (an ampc checkpoint, an export with --model),
# --steps 0, and the JSON's counts.
syn=(--data synthetic --model mlp:32-48-5 --synthetic-n 600 --threads 2)
"$ampc" train "${syn[@]}" --epochs 1 --quiet --save "$tmp/ck.st" >/dev/null 2>&1 || bad "train"
"$ampc" export --checkpoint "$tmp/ck.st" --dtype f16 "$tmp/w16.st" >/dev/null 2>&1 || bad "export"
"$ampc" diagnose --data synthetic --synthetic-n 600 --checkpoint "$tmp/ck.st" --steps 0 --json \
  >"$tmp/ck.json" 2>"$tmp/err" && ok || bad "diagnose --checkpoint: $(cat "$tmp/err")"
"$ampc" diagnose "${syn[@]}" --checkpoint "$tmp/w16.st" --steps 3 >"$tmp/w.txt" 2>"$tmp/err" &&
  grep -q "mlp:32-48-5" "$tmp/w.txt" && ok || bad "diagnose an export: $(cat "$tmp/err")"
if [ -n "$py" ]; then
  [ "$(stat "$tmp/ck.json" activations f16 steps)" = 0 ] &&
    [ "$(stat "$tmp/ck.json" activations f16 observed)" = 1 ] && ok || bad "--steps 0 counts"
  $py - "$tmp/ck.json" <<'PY' && ok || bad "the JSON's histograms do not add up"
import json, sys
d = json.load(open(sys.argv[1]))
assert d['model'] == 'mlp:32-48-5', d['model']
for role, L in d['roles'].items():
    for e in L:
        h = e['log2_hist']['counts']
        assert sum(h) == e['nonzero'] == e['values'] - e['zeros'] - e['nans'], (role, e['name'])
        for f in ('f16', 'bf16', 'e4m3', 'e5m2'):
            assert sum(e[f][c] for c in ('zero', 'subnormal', 'normal', 'overflow')) == e['nonzero']
assert [f['name'] for f in d['formats']] == ['f16', 'bf16', 'e4m3', 'e5m2']
import struct
f32 = lambda x: struct.unpack('<f', struct.pack('<f', x))[0]  # shortest digits read back
assert f32(d['formats'][0]['min_subnormal']) == 2**-24 and d['formats'][0]['max'] == 65504
PY
fi

# The recipe's steps are `ampc train`'s, bit for bit: the same loss after 20
# steps (fp16, dynamic scaling, the observation pass in between).
t=$("$ampc" train "${syn[@]}" --epochs 1 --max-steps 20 --batch 16 --quiet --json 2>/dev/null)
dj=$("$ampc" diagnose "${syn[@]}" --steps 20 --batch 16 --json 2>/dev/null)
[ -n "$(field "$t" final_loss)" ] && [ "$(field "$t" final_loss)" = "$(field "$dj" final_loss)" ] &&
  [ "$(field "$t" final_scale)" = "$(field "$dj" final_scale)" ] && ok ||
  bad "diagnose's steps differ from train's: $(field "$t" final_loss) vs $(field "$dj" final_loss)"

# Bad input: a clear message, a non-zero status, nothing written.
expect_fail 2 "unknown option '--step'; did you mean --steps" diagnose --step 3
expect_fail 2 "not an integer" diagnose --steps -1
expect_fail 2 "not an integer" diagnose --steps 1.5
expect_fail 2 "is not mlp:IN-HIDDEN" diagnose --model rnn:3
expect_fail 2 "is not fp32, fp16, bf16 or fp8" diagnose --precision fp4
expect_fail 2 "is not dynamic, static:N or none" diagnose --loss-scale sometimes
expect_fail 1 "does not say which model it holds" diagnose --data synthetic --checkpoint "$tmp/w16.st"
expect_fail 1 "No such file\|cannot" diagnose --checkpoint "$tmp/missing.st"
expect_fail 1 "shape \\[48, 32\\] in the file" diagnose --data synthetic --model mlp:32-40-5 \
  --checkpoint "$tmp/ck.st"
if [ -n "$py" ]; then # checkpoints that name a GPT, or no model ampc knows
  for m in "gpt:layers=1,dim=8,heads=1,ctx=8" "rnn:32-5"; do
    data=synthetic
    [ "${m%%:*}" = gpt ] && data=fortunes # the GPT's data: then its weights are missing
    $py - "$tmp/ck.st" "$tmp/other.st" "$m" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
head = json.loads(raw[8:8 + n])
head['__metadata__']['config.model'] = sys.argv[3]
h = json.dumps(head).encode()
h += b' ' * (-len(h) % 8)
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(h)) + h + raw[8 + n:])
PY
    expect_fail 1 "not a checkpoint of gpt:layers=1\|config.model = 'rnn:32-5' is not valid" \
      diagnose --data "$data" --checkpoint "$tmp/other.st"
  done
fi
# A GPT and the CNN (as `ampc train --model` takes them; each a few seconds of
# CPU): every layer named by its module path, fractions that add up, the
# figures with the worst 8 layers drawn and the rest summarised, and the
# recipe's steps bit for bit `ampc train`'s (the same final loss and scale).
gpt=(--model gpt:layers=2,dim=32,heads=2,ctx=16 --batch 4 --threads 2)
cnn=(--model cnn:fashion --batch 8 --threads 2)
if [ -n "$py" ] && "$ampc" train "${gpt[@]}" --steps 1 --quiet >/dev/null 2>&1; then
  "$ampc" diagnose "${gpt[@]}" --steps 6 --loss-scale none --json --out "$tmp/gpt" \
    >"$tmp/gpt.json" 2>"$tmp/err" && ok || bad "diagnose a GPT: $(cat "$tmp/err")"
  $py - "$tmp/gpt.json" "$tmp/gpt" <<'PY' && ok || bad "the GPT's diagnosis is not what it should be"
import json, sys, xml.etree.ElementTree as ET
d = json.load(open(sys.argv[1]))
layers = ['transformer.wte', 'transformer.wpe']
for b in range(2):
    p = f'transformer.h.{b}'
    layers += [p + ' Block', p + '.ln_1', p + '.attn.c_attn', p + '.attn.c_proj', p + '.ln_2',
               p + '.mlp.c_fc', p + '.mlp.c_proj']
layers += ['transformer.ln_f']
for role in ('activations', 'activation_grads'):
    names = [e['name'] for e in d['roles'][role]]
    assert names == layers, (role, names)
assert len(d['roles']['weights']) == len(d['roles']['weight_grads']) == 2 + 12 * 2 + 2
for role, L in d['roles'].items():
    for e in L:
        assert e['values'] > 0 and e['nans'] == 0, (role, e['name'])
        assert sum(e['log2_hist']['counts']) == e['nonzero'], (role, e['name'])
        for f in ('f16', 'bf16', 'e4m3', 'e5m2'):
            fr = [e[f][c + '_frac'] for c in ('zero', 'subnormal', 'normal', 'overflow')]
            assert all(0 <= x <= 1 for x in fr) and abs(sum(fr) - 1) < 1e-4, (role, e['name'], fr)
# No scaling: F16 would flush some activation gradients (the QKV projection's
# most) and the recommendation scales; BF16 needs none.
g = {e['name']: e['f16']['zero_frac'] for e in d['roles']['activation_grads']}
assert max(g.values()) > 0.001 and d['scale_max'] == 1, g
rec = {f['name']: f['recommendation'] for f in d['formats']}
assert rec['f16']['needed'] and rec['f16']['scale'] > 1 and not rec['bf16']['needed'], rec
ns = '{http://www.w3.org/2000/svg}'
root = ET.parse(sys.argv[2] + '/diagnose-activation_grads.svg').getroot()
series = [p for p in root.iter(ns + 'path') if p.get('class') == 'series']
rest = [t.text for t in root.iter(ns + 'text') if t.get('class') == 'rest']
assert len(series) == 8 and len(rest) == 1 and '+ 9 more' in rest[0], (len(series), rest)
PY
  c=$(stat "$tmp/gpt.json" activations f16 cpu_s)
  ge 20 "$c" && ok || bad "diagnose of the tiny GPT took $c s of CPU"
  echo "tiny GPT: $(stat "$tmp/gpt.json" activation_grads f16 agg_zero) of the activation" \
    "gradients flush in F16 unscaled; $c s CPU"
  for p in fp16 fp8; do
    t=$("$ampc" train "${gpt[@]}" --precision "$p" --steps 5 --quiet --json 2>/dev/null)
    dj=$("$ampc" diagnose "${gpt[@]}" --precision "$p" --steps 5 --json 2>/dev/null)
    [ -n "$(field "$t" final_loss)" ] &&
      [ "$(field "$t" final_loss)" = "$(field "$dj" final_loss)" ] &&
      [ "$(field "$t" final_scale)" = "$(field "$dj" final_scale)" ] && ok ||
      bad "GPT $p: diagnose's steps differ from train's: $(field "$t" final_loss) vs" \
        "$(field "$dj" final_loss)"
  done
  "$ampc" train "${gpt[@]}" --steps 2 --quiet --save "$tmp/gpt.ckpt" >/dev/null 2>&1 || bad "train"
  "$ampc" diagnose --checkpoint "$tmp/gpt.ckpt" --steps 1 >"$tmp/g.txt" 2>"$tmp/err" &&
    grep -q "transformer.h.1.attn.c_attn" "$tmp/g.txt" && ok ||
    bad "diagnose a GPT checkpoint: $(cat "$tmp/err")"
  expect_fail 2 "does not divide" diagnose --model gpt:layers=1,dim=32,heads=3
  expect_fail 2 "ampc diagnose: --data 'synthetic': a GPT trains on" diagnose "${gpt[@]}" \
    --data synthetic
  printf 'tiny' >"$tmp/tiny.txt"
  expect_fail 1 "a batch of 4 x 16 needs" diagnose "${gpt[@]}" --data "text:$tmp/tiny.txt"
  expect_fail 2 "fp8-scaling needs --precision fp8" diagnose "${gpt[@]}" --fp8-scaling current
else
  skipped="$skipped fortunes"
fi
if [ -n "$py" ] && [ "$kern" != scalar ] && "$ampc" train "${cnn[@]}" --steps 1 --quiet >/dev/null 2>&1; then
  t=$("$ampc" train "${cnn[@]}" --steps 2 --quiet --json 2>/dev/null)
  "$ampc" diagnose "${cnn[@]}" --steps 2 --json >"$tmp/cnn.json" 2>"$tmp/err" ||
    bad "diagnose the CNN: $(cat "$tmp/err")"
  [ -n "$(field "$t" final_loss)" ] &&
    [ "$(field "$t" final_loss)" = "$(field "$(cat "$tmp/cnn.json")" final_loss)" ] && ok ||
    bad "CNN: diagnose's steps differ from train's"
  $py - "$tmp/cnn.json" <<'PY' && ok || bad "the CNN's diagnosis is not what it should be"
import json, sys
d = json.load(open(sys.argv[1]))
want = ['0 Conv2d', '1 BatchNorm2d', '2 ReLU', '3 MaxPool2d', '4 Conv2d', '5 BatchNorm2d',
        '6 ReLU', '7 MaxPool2d', '8 Flatten', '9 Linear', '10 ReLU', '11 Linear']
for role in ('activations', 'activation_grads'):
    L = d['roles'][role]
    assert [e['name'] for e in L] == want, [e['name'] for e in L]
    for e in L:
        assert e['values'] > 0 and 0 <= e['f16']['zero_frac'] <= 1, e['name']
# ReLU zeroes about half of its outputs exactly (counted apart, not as a loss).
relu = [e['zeros'] / e['values'] for e in d['roles']['activations'] if 'ReLU' in e['name']]
assert all(0.2 < z < 0.8 for z in relu), relu
PY
  expect_fail 2 "is not a known CNN" diagnose --model cnn:mnist
  expect_fail 2 "the CNN trains on fashion-mnist" diagnose "${cnn[@]}" --data fortunes
else
  skipped="$skipped fashion-mnist"
fi

printf 'x' >"$tmp/file"
expect_fail 2 "is not a directory" diagnose "${syn[@]}" --steps 1 --out "$tmp/file"
[ "$(cat "$tmp/file")" = x ] && ok || bad "--out FILE was changed"
expect_fail 2 "cannot create the directory" diagnose "${syn[@]}" --steps 1 --out "$tmp/no/such"
expect_fail 2 "cannot create files" diagnose "${syn[@]}" --steps 1 --out /proc/self
expect_fail 1 "no such file" diagnose --data "$tmp/none-such" --out "$tmp/figs"
[ ! -e "$tmp/figs" ] && ok || bad "a failed run created --out"
expect_fail 1 "in the file" diagnose --data synthetic --synthetic-n 600 \
  --checkpoint "$tmp/ck.st" --model mlp:30-48-5 --out "$tmp/figs2"
[ ! -e "$tmp/figs2" ] && ok || bad "a failed run created --out"
"$ampc" diagnose --help | grep -q "usage: ampc diagnose" && ok || bad "diagnose --help"
left=$(find "$tmp" -name '*.tmp.*' -o -name 'diagnose-*' -not -path "$tmp/none/*" \
  -not -path "$tmp/gpt/*")
[ -z "$left" ] && ok || bad "files left behind: $left"

if [ -n "$skipped" ]; then
  echo "SKIP (partly): missing$skipped; the other checks: $pass passed, $fail failed"
  [ "$fail" -eq 0 ] && exit 77
  exit 1
fi
finish
