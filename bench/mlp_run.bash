# Sourced by bench/train.sh and bench/fp8.sh after they set $root and
# $threads and $steps: the reference MLP's training command (MNIST from
# data/mnist, else synthetic data of the same shape; batch 128, Adam, JSON
# summary) in $args, and field JSON KEY, a key's value from a one-line JSON
# object (quotes removed).
data="$root/data/mnist"
args=(train --model mlp:784-1024-10 --batch 128 --threads "$threads" --max-steps "$steps" --json --quiet)
if [ -f "$data/train-images-idx3-ubyte" ]; then args+=(--data "$data"); else
  args+=(--data synthetic --synthetic-n 40000)
fi
field() { printf '%s' "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" | tr -d '"'; }
