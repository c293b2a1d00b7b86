#!/usr/bin/python3
"""PyTorch's side of bench/optimizer.js: milliseconds per optimizer step on one thread.

Usage: optimizer_step.py SIZE [SIZE ...]
Prints one JSON line: {"torch": version, "threads": 1, "results": {name: {size: {"single": ms, "foreach": ms}}}}
Each optimizer runs both of torch.optim's CPU implementations: the single-tensor for-loop (the default
in 1.13) and foreach=True; the benchmark compares Loom against the faster of the two.
"""
import json
import sys
import time

import torch

torch.set_num_threads(1)

# Must match CONFIGS in bench/optimizer.js.
CONFIGS = [
    ('SGD', torch.optim.SGD, dict(lr=0.01)),
    ('Momentum', torch.optim.SGD, dict(lr=0.01, momentum=0.9)),
    ('Nesterov', torch.optim.SGD, dict(lr=0.01, momentum=0.9, nesterov=True)),
    ('RMSprop', torch.optim.RMSprop, dict(lr=0.01)),
    ('Adam', torch.optim.Adam, dict(lr=1e-3)),
    ('AdamW', torch.optim.AdamW, dict(lr=1e-3)),
    ('Adagrad', torch.optim.Adagrad, dict(lr=0.01)),
]


def time_steps(opt, budget_s=0.4, min_steps=5, max_steps=200):
    for _ in range(3):  # warm-up: allocates state, faults in pages
        opt.step()
    times = []
    start = time.perf_counter()
    while len(times) < min_steps or (time.perf_counter() - start < budget_s and len(times) < max_steps):
        t = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1e3


def main():
    sizes = [int(s) for s in sys.argv[1:]] or [1_000_000, 10_000_000]
    results = {}
    for name, cls, kw in CONFIGS:
        results[name] = {}
        for n in sizes:
            row = {}
            for impl, foreach in (('single', False), ('foreach', True)):
                p = torch.randn(n, requires_grad=True)
                p.grad = torch.randn(n) * 1e-2
                row[impl] = time_steps(cls([p], foreach=foreach, **kw))
                del p
            results[name][str(n)] = row
    print(json.dumps(dict(torch=torch.__version__, threads=torch.get_num_threads(), results=results)))


if __name__ == '__main__':
    main()
