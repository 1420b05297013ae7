#!/usr/bin/python3
"""PyTorch's step time on ampc's reference workload, for the same-run ratio:
MLP 784 -> 1024 -> ReLU -> 10, cross-entropy, Adam lr 1e-3, batch 128, FP32,
on the CPU with the given number of threads. Prints one JSON line.

usage: torch_mlp.py [--threads N] [--steps N] [--data DIR]
Random inputs are used when DIR has no MNIST files (step time does not
depend on the values)."""
import argparse, json, os, statistics, sys, time

try:
    import torch
except ImportError:
    print(json.dumps({"bench": "torch_mlp", "error": "python3-torch is not installed"}))
    sys.exit(0)

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=200)
ap.add_argument("--data", default="data/mnist")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

path = os.path.join(a.data, "train-images-idx3-ubyte")
if os.path.exists(path):
    with open(path, "rb") as f:
        raw = f.read()
    x_all = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).view(-1, 784)
    with open(os.path.join(a.data, "train-labels-idx1-ubyte"), "rb") as f:
        y_all = torch.frombuffer(bytearray(f.read()[8:]), dtype=torch.uint8).long()
    x_all = (x_all.float() / 255 - 0.1307) / 0.3081
else:
    x_all = torch.randn(60000, 784)
    y_all = torch.randint(0, 10, (60000,))

model = torch.nn.Sequential(torch.nn.Linear(784, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
times = []
perm = torch.randperm(x_all.shape[0])
for s in range(a.steps + 10):
    idx = perm[(s * 128) % 59904:(s * 128) % 59904 + 128]
    x, y = x_all[idx], y_all[idx]
    t0 = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if s >= 10:
        times.append(1e3 * (time.perf_counter() - t0))
print(json.dumps({"bench": "torch_mlp", "torch": torch.__version__, "threads": a.threads,
                  "steps": a.steps, "step_ms_median": round(statistics.median(times), 4)}))
