#!/usr/bin/env bash
# Runs the independent Python reader (tests/io_read.py) on files written by
# `test_io --write`. $1: the test_io binary, $2: io_read.py. Skips (exit 77)
# when /usr/bin/python3 or numpy is missing.
set -eu
py=/usr/bin/python3
if [ ! -x "$py" ] || ! "$py" -c 'import numpy' 2>/dev/null; then
  echo "io_read: skipped: /usr/bin/python3 with numpy is not available"
  exit 77
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$1" --write "$tmp"
"$py" "$2" "$tmp"
