#!/usr/bin/python3
"""ampc -> PyTorch -> ampc, bit for bit (needs torch; no safetensors package).

  scripts/torch-roundtrip.py AMPC CHECKPOINT MNIST_DIR WORKDIR

1. `ampc export --format pytorch` writes CHECKPOINT's weights as a torch.save
   state dict; PyTorch loads it into nn.Sequential(Linear, ReLU, Linear)
   with load_state_dict(strict=True) and reports its test accuracy (FP32).
2. PyTorch's state dict is written back as a plain safetensors file (no ampc
   metadata, written here with json + struct as safetensors.torch.save_file
   would), and `ampc eval --model ...` scores it: the same accuracy.
3. Every tensor is compared bit for bit: checkpoint masters == PyTorch
   tensors == the state dict ampc reads back (and exported again).
"""
import json, os, struct, subprocess, sys
import torch

ampc, ckpt, mnist, work = sys.argv[1:5]
os.makedirs(work, exist_ok=True)

def st_read(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop('__metadata__', None)
    return {k: (v['dtype'], v['shape'], b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]])
            for k, v in h.items()}

def st_write(path, sd):
    """safetensors.torch.save_file(sd, path), F32 only, without the package."""
    header, data = {}, b''
    for k in sorted(sd):
        t = sd[k].contiguous()
        raw = t.numpy().tobytes() if hasattr(t, 'numpy') else bytes(t.untyped_storage())
        header[k] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + data)

def idx(path):
    b = open(path, 'rb').read()
    nd = b[3]
    dims = struct.unpack('>' + 'I' * nd, b[4:4 + 4 * nd])
    return torch.frombuffer(bytearray(b[4 + 4 * nd:]), dtype=torch.uint8).reshape(dims)

def run(*args):
    out = subprocess.run([ampc, *args], capture_output=True, text=True)
    if out.returncode: sys.exit(f'ampc {" ".join(args)} failed: {out.stderr}')
    return out.stdout

pt = os.path.join(work, 'model.pt')
print(run('export', '--checkpoint', ckpt, '--format', 'pytorch', pt).strip())
sd = torch.load(pt)
sizes = [sd['0.weight'].shape[1]] + [sd[f'{i}.weight'].shape[0] for i in range(0, len(sd), 2)]
layers = []
for i in range(len(sizes) - 1):
    layers += [torch.nn.Linear(sizes[i], sizes[i + 1])] + ([torch.nn.ReLU()] if i + 2 < len(sizes) else [])
model = torch.nn.Sequential(*layers)
print('load_state_dict(strict=True):', model.load_state_dict(sd, strict=True))
# ampc's loader feeds (x/255 - 0.1307)/0.3081, torchvision's Normalize((0.1307,), (0.3081,))
x = (idx(os.path.join(mnist, 't10k-images-idx3-ubyte')).reshape(-1, 784).float() / 255 - 0.1307) / 0.3081
y = idx(os.path.join(mnist, 't10k-labels-idx1-ubyte')).long()
with torch.no_grad():
    acc_torch = (model(x).argmax(1) == y).float().mean().item() * 100
print(f'PyTorch test accuracy: {acc_torch:.2f}%')

back = os.path.join(work, 'state_dict.safetensors')
st_write(back, {k: v.detach() for k, v in model.state_dict().items()})
spec = 'mlp:' + '-'.join(map(str, sizes))
res = json.loads(run('eval', '--model', spec, '--data', mnist, '--json', back))
print(f'ampc eval --model {spec} of the PyTorch state dict: {res["test_accuracy"]:.2f}%')

a, b = st_read(ckpt), st_read(back)
same = all(a[k][2] == b[k][2] and a[k][1] == b[k][1] for k in b)
same &= all(model.state_dict()[k].numpy().tobytes() == b[k][2] for k in b)
pt2 = os.path.join(work, 'model2.pt')
run('export', '--checkpoint', back, '--model', spec, '--format', 'pytorch', pt2)
sd2 = torch.load(pt2)
same &= all(torch.equal(sd[k].view(torch.int32), sd2[k].view(torch.int32)) for k in sd)
print('every tensor bit-identical (checkpoint, PyTorch, state dict, re-export):', same)
ok = same and abs(acc_torch - res['test_accuracy']) < 1e-9 + 0.005
print('ROUND TRIP OK' if ok else 'ROUND TRIP FAILED')
sys.exit(0 if ok else 1)
