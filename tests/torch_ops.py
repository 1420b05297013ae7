"""Checks the files of `test_ops_models --write DIR` against PyTorch (F32,
CPU, computed in float64 from the same inputs): results, gradients of
L = sum_i sum(y_i * w_i), and batch norm's running statistics (PyTorch's
momentum rule, unbiased running variance). Tolerance 2e-5 relative to each
array's largest magnitude: the ops compute in F32 with sums of at most 100
terms here."""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

d = sys.argv[1]


def load(name, shape):
    a = np.fromfile(os.path.join(d, name + ".f32"), dtype="<f4")
    assert a.size == int(np.prod(shape)), (name, a.size, shape)
    return torch.tensor(a.reshape(shape), dtype=torch.float64)


def leaf(name, shape):
    return load(name, shape).requires_grad_(True)


failed = 0


def close(what, got, want, tol=2e-5):
    global failed
    want = want.detach()
    err = (got - want).abs().max().item()
    scale = max(want.abs().max().item(), 1e-30)
    ok = err <= tol * scale
    failed += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {what}: max error {err:.3g} (max |ref| {scale:.3g})")


att = (2, 3, 5, 4)
bn = (4, 3, 5, 5)
el = (2, 2, 7, 7)
q, k, v = leaf("att.q", att), leaf("att.k", att), leaf("att.v", att)
x, w, b, x2 = leaf("bn.x", bn), leaf("bn.weight", (3,)), leaf("bn.bias", (3,)), leaf("bn.x2", bn)
e = leaf("elt.x", el)


def sdpa(q, k, v, causal):
    """F.scaled_dot_product_attention's math (torch >= 2.0 has it built in;
    Debian's 1.13 does not)."""
    s = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if causal:
        t = q.shape[-2]
        s = s.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


rm = torch.zeros(3, dtype=torch.float64)
rv = torch.ones(3, dtype=torch.float64)
ys = {
    "att.causal": sdpa(q, k, v, True),
    "att.full": sdpa(q, k, v, False),
    "bn.train": F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5),
}
close("bn.running_mean", load("bn.running_mean", (3,)), rm)
close("bn.running_var", load("bn.running_var", (3,)), rv)
ys["bn.eval"] = F.batch_norm(x2, rm, rv, w, b, training=False, momentum=0.1, eps=1e-5)
ys["gelu_tanh"] = F.gelu(e, approximate="tanh")
ys["tanh"] = torch.tanh(e)
ys["avg_pool"] = F.avg_pool2d(e, 3, 2)
ys["global_pool"] = F.adaptive_avg_pool2d(e, 1)
loss = 0
for name, y in ys.items():
    close(name, load(name + ".y", y.shape), y)
    loss = loss + (y * load(name + ".w", y.shape)).sum()
loss.backward()
for name, t in [("att.q", q), ("att.k", k), ("att.v", v), ("bn.x", x), ("bn.weight", w),
                ("bn.bias", b), ("bn.x2", x2), ("elt.x", e)]:
    close(name + ".grad", load(name + ".grad", t.shape), t.grad)
print(f"torch_ops: {failed} failed")
sys.exit(1 if failed else 0)
