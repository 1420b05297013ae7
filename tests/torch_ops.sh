#!/usr/bin/env bash
# Compares the models' ops (attention, batch norm, gelu_tanh, tanh, average
# pooling) with PyTorch: `test_ops_models --write DIR` writes inputs, results
# and gradients, tests/torch_ops.py recomputes them with torch. $1: the
# test_ops_models binary, $2: torch_ops.py. Skips (exit 77) when
# /usr/bin/python3 with torch is missing.
set -eu
py=/usr/bin/python3
if [ ! -x "$py" ] || ! "$py" -c 'import torch' 2>/dev/null; then
  echo "torch_ops: skipped: /usr/bin/python3 with torch is not available (scripts/install-deps --bench)"
  exit 77
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$1" --write "$tmp" >/dev/null
"$py" "$2" "$tmp"
