#!/usr/bin/env python3
"""PyTorch side of bench/model.js: forward + backward steps per second of an MLP on one thread.

Usage: model_step.py --sizes 100,50,10 --batch 64 --seconds 2
Prints one JSON line: {"stepsPerSec": ..., "batch": ..., "sizes": [...]}.
"""
import argparse, json, time
import torch
from mlp import mlp

p = argparse.ArgumentParser()
p.add_argument("--sizes", default="100,50,10")
p.add_argument("--batch", type=int, default=64)
p.add_argument("--seconds", type=float, default=2.0)
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
sizes = [int(s) for s in a.sizes.split(",")]
model = mlp(sizes)
x = torch.randn(a.batch, sizes[0])
y = torch.randint(0, sizes[-1], (a.batch,))

def step():
    model.zero_grad(set_to_none=False)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()

for _ in range(20):
    step()
best = 0.0
for _ in range(3):  # best of three windows: the machine is shared and noisy
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < a.seconds / 3:
        step()
        n += 1
    best = max(best, n / (time.perf_counter() - t0))
print(json.dumps({"stepsPerSec": best, "batch": a.batch, "sizes": sizes, "torch": torch.__version__, "threads": torch.get_num_threads()}))
