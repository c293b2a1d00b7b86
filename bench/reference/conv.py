#!/usr/bin/python3
"""PyTorch's side of bench/conv.js: conv2d forward + backward GFLOP/s on one thread, and the forward
GEMM of each layer alone (torch.mm of (O, C·kh·kw)·(C·kh·kw, N·OH·OW)), on the same cases.

Usage: conv.py CASES_JSON BUDGET_MS
  CASES_JSON: [[label, N, C, H, W, O, k, padding], ...] as bench/conv.js builds it (stride 1)
Prints one JSON line: {"torch": version, "threads": 1, "results": {label: {"conv": gflops, "gemm": gflops}}}
GFLOP/s from the fastest sample, as bench/matmul.js explains; flops counted as in conv.js
(6·N·O·OH·OW·C·k·k for forward, input gradient and weight gradient).
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(1)


def best(step, budget_s):
    for _ in range(3):
        step()
    low, samples, start = float('inf'), 0, time.perf_counter()
    while samples < 5 or (time.perf_counter() - start < budget_s and samples < 1000):
        t = time.perf_counter()
        step()
        low = min(low, time.perf_counter() - t)
        samples += 1
    return low


def measure(n, c, h, w, o, k, pad, budget_s):
    x = torch.rand(n, c, h, w, requires_grad=True)
    wt = (torch.rand(o, c, k, k) * 0.2 - 0.1).requires_grad_(True)
    b = (torch.rand(o) * 0.2 - 0.1).requires_grad_(True)
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    dy = torch.rand(n, o, oh, ow)
    macs = n * o * oh * ow * c * k * k

    def step():
        y = F.conv2d(x, wt, b, padding=pad)
        torch.autograd.grad(y, (x, wt, b), dy)

    conv = best(step, budget_s)
    a, bm, out = torch.rand(o, c * k * k), torch.rand(c * k * k, n * oh * ow), torch.empty(o, n * oh * ow)
    gemm = best(lambda: torch.mm(a, bm, out=out), budget_s / 2)
    return {"conv": 6 * macs / conv / 1e9, "gemm": 2 * macs / gemm / 1e9}


def main():
    cases = json.loads(sys.argv[1])
    budget_s = float(sys.argv[2]) / 1e3 if len(sys.argv) > 2 else 1.0
    results = {c[0]: measure(*c[1:], budget_s) for c in cases}
    print(json.dumps(dict(torch=torch.__version__, threads=torch.get_num_threads(), results=results)))


if __name__ == '__main__':
    main()
