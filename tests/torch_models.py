#!/usr/bin/python3
"""Writes tests/data/models_ref.bin: PyTorch's numbers for a tiny GPT and a
small CNN, which tests/test_parity.c checks ampc against.

Run by the developer (Debian's python3-torch), not by CI:
    /usr/bin/python3 tests/torch_models.py tests/data/models_ref.bin

The models are written out as nanoGPT's GPT (names transformer.wte.weight,
transformer.h.0.attn.c_attn.weight, ...; the head tied to wte) and an
nn.Sequential CNN (names 0.weight, 1.running_mean, ...), the names ampc's
amp_nn_gpt() and amp_nn_cnn() give their parameters. Initial weights are
rounded to values that bfloat16 represents exactly, so they are stored in 16
bits without loss. The reference is computed in float64 (the exact answer
to the precision that matters); gradients, logits and losses are stored in
float32 or float64.

File format (little endian): the 8 bytes "AMPREF01", a u32 record count,
then records: u32 name length, the name, u8 dtype (0 f32, 1 i32, 2 f64,
3 bf16 bits), u32 ndim, ndim i64 sizes, the data.
"""
import math
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

GPT = dict(vocab=256, ctx=32, layers=2, dim=64, heads=4, batch=4)
STEPS = 10
ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)


class CausalSelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.c_proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.heads)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        att = F.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.c_fc = nn.Linear(dim, 4 * dim)
        self.c_proj = nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPTModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c["vocab"], c["dim"]),
            wpe=nn.Embedding(c["ctx"], c["dim"]),
            h=nn.ModuleList([Block(c["dim"], c["heads"]) for _ in range(c["layers"])]),
            ln_f=nn.LayerNorm(c["dim"])))
        self.lm_head = nn.Linear(c["dim"], c["vocab"], bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied
        for name, p in self.named_parameters():  # nanoGPT's init
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c["layers"]))
            elif p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)
            elif "ln_" not in name:
                nn.init.zeros_(p)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(T))
        for b in self.transformer.h:
            x = b(x)
        return self.lm_head(self.transformer.ln_f(x))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10))


class Writer:
    def __init__(self):
        self.recs = []

    def add(self, name, a, code):
        a = np.ascontiguousarray(a)
        kind = {0: "<f4", 1: "<i4", 2: "<f8", 3: "<u2"}[code]
        self.recs.append((name, code, a.shape, a.astype(kind).tobytes()))

    def tensor(self, name, t, code=0):
        self.add(name, t.detach().to(torch.float64).numpy() if code != 1 else t.numpy(), code)

    def bf16(self, name, t):  # exact: the values are bf16 values
        bits = (t.detach().to(torch.float32).numpy().view(np.uint32) >> 16).astype(np.uint16)
        self.add(name, bits, 3)

    def save(self, path):
        with open(path, "wb") as f:
            f.write(b"AMPREF01" + struct.pack("<I", len(self.recs)))
            for name, code, shape, data in self.recs:
                nb = name.encode()
                f.write(struct.pack("<I", len(nb)) + nb + struct.pack("<BI", code, len(shape)))
                f.write(struct.pack("<%dq" % len(shape), *shape) + data)


def bf16_exact(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(p.dtype))


def record(w, prefix, model, x, y, logits_of):
    """Initial weights, batch, logits, loss, gradients, then 10 AdamW losses."""
    for name, p in model.state_dict().items():
        if name.endswith("num_batches_tracked") or name == "lm_head.weight":
            continue
        if name.endswith("running_mean") or name.endswith("running_var"):
            continue
        w.bf16(prefix + ".param." + name, p)
    w.tensor(prefix + ".x", x, 1 if x.dtype == torch.int64 else 0)
    w.tensor(prefix + ".y", y, 1)
    m = model.double()
    xd = x if x.dtype == torch.int64 else x.double()
    logits = logits_of(m, xd)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    w.tensor(prefix + ".logits", logits, 0)
    w.tensor(prefix + ".loss", loss.reshape(1), 2)
    for name, p in m.named_parameters():
        w.tensor(prefix + ".grad." + name, p.grad, 0)
    for name, b in m.named_buffers():
        if not name.endswith("num_batches_tracked"):
            w.tensor(prefix + ".buffer." + name, b, 0)
    opt = torch.optim.AdamW(m.parameters(), **ADAMW)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = F.cross_entropy(logits_of(m, xd), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    w.tensor(prefix + ".losses", torch.tensor(losses, dtype=torch.float64), 2)
    print("%s: loss %.6f, after %d AdamW steps %.6f" % (prefix, losses[0], STEPS, losses[-1]))


def main():
    torch.manual_seed(1337)
    w = Writer()
    c = GPT
    w.tensor("gpt.config", torch.tensor([c["vocab"], c["ctx"], c["layers"], c["dim"], c["heads"],
                                         c["batch"]], dtype=torch.int32), 1)
    g = GPTModel(c)
    bf16_exact(g)
    data = torch.randint(0, c["vocab"], (c["batch"] * c["ctx"] + 1,))
    x = data[:-1].view(c["batch"], c["ctx"])
    y = data[1:].clone()
    record(w, "gpt", g, x, y, lambda m, xx: m(xx).view(-1, c["vocab"]))
    n = cnn()
    bf16_exact(n)
    xi = torch.randn(8, 1, 16, 16)
    xi = xi.to(torch.bfloat16).float()
    yi = torch.randint(0, 10, (8,))
    record(w, "cnn", n, xi, yi, lambda m, xx: m(xx))
    w.save(sys.argv[1] if len(sys.argv) > 1 else "tests/data/models_ref.bin")


if __name__ == "__main__":
    main()
