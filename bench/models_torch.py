#!/usr/bin/python3
"""PyTorch CPU FP32 training speed of the GPT and CNN that `ampc train
--model gpt:... | cnn:fashion` trains (the same layers, batch and threads),
for the speed floors of issue 13. Prints one JSON line per model.

    /usr/bin/python3 bench/models_torch.py --threads 2 --steps 20
    build/ampc train --model gpt --batch 16 --steps 20 --precision fp32 --threads 2
    build/ampc train --model cnn:fashion --batch 128 --steps 20 --precision fp32 --threads 2

ampc prints tokens/s (GPT) or images/s (CNN) on its summary line; compare
them with the `per_s` here, measured on the same machine in the same
session. Random data: speed does not depend on it.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from torch_models import GPTModel  # noqa: E402  the same GPT as the parity test


def fashion_cnn():
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def timed(model, make_batch, loss_of, steps, units, clock=time.perf_counter):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = make_batch()
    times = []
    for i in range(steps + 3):  # 3 warm-up steps
        t0 = clock()
        opt.zero_grad()
        loss_of(model, x, y).backward()
        opt.step()
        if i >= 3:
            times.append(clock() - t0)
    times.sort()
    median = times[len(times) // 2]
    return {"step_ms_median": 1e3 * median, "per_s": units / median}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--gpt-batch", type=int, default=16)
    ap.add_argument("--cnn-batch", type=int, default=128)
    ap.add_argument("--only", choices=("gpt", "cnn"), help="time one model only")
    ap.add_argument("--cpu-time", action="store_true",
                    help="per-step process CPU time instead of wall time (a loaded host)")
    a = ap.parse_args()
    clock = time.process_time if a.cpu_time else time.perf_counter
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = dict(vocab=256, ctx=64, layers=4, dim=128, heads=4)  # ampc's default GPT
    B, T = a.gpt_batch, c["ctx"]
    if a.only != "cnn":
        r = timed(GPTModel(c), lambda: (torch.randint(0, 256, (B, T)), torch.randint(0, 256, (B * T,))),
                  lambda m, x, y: F.cross_entropy(m(x).view(-1, 256), y), a.steps, B * T, clock)
        print(json.dumps(dict(model="gpt", unit="tokens", batch=B, threads=a.threads, **r)))
    if a.only == "gpt":
        return
    N = a.cnn_batch
    r = timed(fashion_cnn(), lambda: (torch.randn(N, 1, 28, 28), torch.randint(0, 10, (N,))),
              lambda m, x, y: F.cross_entropy(m(x), y), a.steps, N, clock)
    print(json.dumps(dict(model="cnn", unit="images", batch=N, threads=a.threads, **r)))


if __name__ == "__main__":
    main()
