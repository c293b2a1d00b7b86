#!/usr/bin/env python3
"""PyTorch side of bench/train.js: train an MLP (--sizes) or Loom's `cnn` (--model cnn: Conv 1→32 3×3
padding 1, ReLU, MaxPool 2, Conv 32→64 3×3 padding 1, ReLU, MaxPool 2, Flatten, Linear 3136→128,
ReLU, Linear 128→10, PyTorch's default init, as @loom/worker's registry builds it) with Adam 1e-3
on one thread (or --threads T intra-op threads) and report samples/s (median epoch after the
first, and every epoch's in "rates") and test accuracy.

Data comes either from a file Loom wrote (--data FILE: a JSON header line, then float32 features
and int32 labels) or from Fashion-MNIST IDX files (--fmnist DIR), scaled to [0, 1] and then, as
loom train's idx:DIR, standardised with the mean and std of every pixel of the training rows kept.
Prints one JSON line.
"""
import argparse, gzip, json, os, statistics, time
import numpy as np
import torch
from mlp import mlp

p = argparse.ArgumentParser()
p.add_argument("--data")
p.add_argument("--fmnist")
p.add_argument("--sizes", default="100,50,10")
p.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
p.add_argument("--batch", type=int, default=64)
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--threads", type=int, default=1, help="intra-op threads (run with OMP_NUM_THREADS=T and OpenMP OpenBLAS, as bench/lib.js's torchEnv does)")
p.add_argument("--holdout", type=float, default=0.0, help="fraction of the training set to leave out, as loom train holds out its validation split")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)

def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)

def find(d, name):
    for n in (name, name + ".gz"):
        if os.path.exists(os.path.join(d, n)):
            return os.path.join(d, n)
    raise SystemExit(f"{d}: no {name}")

if a.fmnist:
    xtr = torch.tensor(idx(find(a.fmnist, "train-images-idx3-ubyte")).reshape(-1, 784), dtype=torch.float32) / 255
    ytr = torch.tensor(idx(find(a.fmnist, "train-labels-idx1-ubyte")), dtype=torch.int64)
    xte = torch.tensor(idx(find(a.fmnist, "t10k-images-idx3-ubyte")).reshape(-1, 784), dtype=torch.float32) / 255
    yte = torch.tensor(idx(find(a.fmnist, "t10k-labels-idx1-ubyte")), dtype=torch.int64)
else:
    with open(a.data, "rb") as f:
        header = json.loads(f.readline())
        n, w, ntr = header["rows"], header["width"], header["train"]
        x = np.frombuffer(f.read(n * w * 4), dtype=np.float32).reshape(n, w)
        y = np.frombuffer(f.read(n * 4), dtype=np.int32)
    xtr, ytr = torch.tensor(x[:ntr]), torch.tensor(y[:ntr].astype(np.int64))
    xte, yte = torch.tensor(x[ntr:]), torch.tensor(y[ntr:].astype(np.int64))

if a.holdout > 0:  # train on the same amount of data as loom train, which validates on 10%
    keep = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(a.seed))[: int(round(len(xtr) * (1 - a.holdout)))]
    xtr, ytr = xtr[keep], ytr[keep]
if a.fmnist:  # torchvision's Normalize((0.2860,), (0.3530,)), fitted on the rows trained on
    mean, std = xtr.double().mean().item(), xtr.double().std(unbiased=False).item()
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
sizes = [int(s) for s in a.sizes.split(",")]
if a.model == "cnn":
    nn = torch.nn
    model = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
else:
    model = mlp(sizes)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
rates = []
for epoch in range(a.epochs):
    perm = torch.randperm(len(xtr))
    t0 = time.perf_counter()
    for s in range(0, len(xtr), a.batch):
        idx_ = perm[s:s + a.batch]
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xtr[idx_]), ytr[idx_])
        loss.backward()
        opt.step()
    rates.append(len(xtr) / (time.perf_counter() - t0))
with torch.no_grad():
    acc = (model(xte).argmax(1) == yte).float().mean().item()
steady = rates[1:] if len(rates) > 1 else rates
print(json.dumps({"model": a.model, "samplesPerSec": statistics.median(steady), "rates": rates, "testAccuracy": acc, "epochs": a.epochs, "batch": a.batch, "threads": torch.get_num_threads()}))
