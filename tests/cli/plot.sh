#!/usr/bin/env bash
# `ampc plot`: the metrics of two runs (one with skipped steps) become an SVG
# that an XML parser accepts, with one path per series per run; garbage lines
# are skipped and counted; unreadable input and unwritable output fail with a
# message and leave no file behind.
set -u
ampc="$1"
# shellcheck source=lib.bash
source "$(dirname "$0")/lib.bash"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
syn=(train --data synthetic --model mlp:32-48-5 --synthetic-n 1000 --epochs 1 --quiet)
"$ampc" "${syn[@]}" --precision fp32 --metrics "$tmp/a.jsonl" >/dev/null 2>&1 || bad "train a"
"$ampc" "${syn[@]}" --precision fp16 --loss-mul 1e6 --metrics "$tmp/b.jsonl" >/dev/null 2>&1 || true
[ -s "$tmp/b.jsonl" ] && ok || bad "no metrics from the fp16 run"
skipped=$(grep -c '"skipped":1' "$tmp/b.jsonl")
[ "$skipped" -gt 0 ] && ok || bad "the fp16 run skipped no step (the marker check would be empty)"

if "$ampc" plot "$tmp/a.jsonl" "$tmp/b.jsonl" -o "$tmp/run.svg" 2>"$tmp/err"; then ok; else
  bad "plot failed: $(cat "$tmp/err")"
fi
if command -v python3 >/dev/null 2>&1; then
  # Each run has 5 series (loss, the epoch's val_accuracy, scale, lr,
  # grad_norm): 10 series paths, and one skipped-step marker per skipped step.
  python3 - "$tmp/run.svg" "$skipped" <<'PY' && ok || bad "the SVG is not what it should be"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = '{http://www.w3.org/2000/svg}'
series = [p for p in root.iter(ns + 'path') if p.get('class') != 'skipped']
marks = [p for p in root.iter(ns + 'path') if p.get('class') == 'skipped']
assert len(series) == 10, len(series)
assert len(marks) == int(sys.argv[2]), (len(marks), sys.argv[2])
PY
else
  echo "note: python3 missing; the SVG was not parsed"
fi

# Lines that are not metrics are skipped and counted.
{ head -n 3 "$tmp/a.jsonl"; echo 'not json'; echo '{"step":"x"}'; tail -n 2 "$tmp/a.jsonl"; } >"$tmp/c.jsonl"
err=$("$ampc" plot "$tmp/c.jsonl" -o "$tmp/c.svg" 2>&1) && [ -s "$tmp/c.svg" ] &&
  printf '%s' "$err" | grep -q "skipped 2 line(s) that are not metrics (first: line 4)" && ok ||
  bad "garbage lines: $err"

expect_fail 1 "cannot read" plot "$tmp/missing.jsonl" -o "$tmp/m.svg"
[ ! -e "$tmp/m.svg" ] && ok || bad "a failed plot left a file"
expect_fail 1 "cannot write" plot "$tmp/a.jsonl" -o "$tmp/no/such/dir.svg"
printf 'nothing\n' >"$tmp/empty.jsonl"
expect_fail 1 "no metrics" plot "$tmp/empty.jsonl" -o "$tmp/e.svg"
[ ! -e "$tmp/e.svg" ] && ok || bad "an empty plot left a file"
expect_fail 2 "where to" plot "$tmp/a.jsonl"
expect_fail 2 "unknown option" plot --bogus "$tmp/a.jsonl" -o "$tmp/x.svg"
"$ampc" plot --help | grep -q "usage: ampc plot" && ok || bad "plot --help"
[ -z "$(find "$tmp" -name '*.tmp.*')" ] && ok || bad "temporary files left"
finish
