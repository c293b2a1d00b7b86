#!/usr/bin/python3
"""PyTorch's side of bench/matmul.js: GFLOP/s of torch.mm on one thread, on the same cases.

Usage: matmul.py CASES_JSON BUDGET_MS
  CASES_JSON: [[label, M, K, N, transA, transB], ...] as bench/matmul.js builds it
Prints one JSON line: {"torch": version, "threads": 1, "results": {label: gflops}}
GFLOP/s come from the fastest sample, as in bench/matmul.js (which says why).

op(a) is (M, K): a is stored (M, K), or (K, M) and read through .t() when transA; likewise b is
(K, N) or (N, K). torch.mm on a transposed view passes the transpose flag to sgemm, so this is the
same BLAS call nn.Linear makes (its forward is x·Wᵀ). The output is preallocated (out=), as Loom's is.
"""
import json
import sys
import time

import torch

torch.set_num_threads(1)


def gflops(m, k, n, trans_a, trans_b, budget_s):
    a = torch.rand((k, m) if trans_a else (m, k))
    b = torch.rand((n, k) if trans_b else (k, n))
    a_op = a.t() if trans_a else a
    b_op = b.t() if trans_b else b
    out = torch.empty(m, n)
    flops = 2.0 * m * k * n
    # Enough calls per sample that a sample lasts ≥ 0.5 ms, so the timer's resolution does not matter.
    inner = max(1, int(0.5e-3 * 5e9 / flops))
    for _ in range(3 * inner):
        torch.mm(a_op, b_op, out=out)
    best = float('inf')
    samples = 0
    start = time.perf_counter()
    while samples < 5 or (time.perf_counter() - start < budget_s and samples < 1000):
        t = time.perf_counter()
        for _ in range(inner):
            torch.mm(a_op, b_op, out=out)
        best = min(best, (time.perf_counter() - t) / inner)
        samples += 1
    return flops / best / 1e9


def main():
    cases = json.loads(sys.argv[1])
    budget_s = float(sys.argv[2]) / 1e3 if len(sys.argv) > 2 else 0.25
    results = {label: gflops(m, k, n, ta, tb, budget_s) for label, m, k, n, ta, tb in cases}
    print(json.dumps(dict(torch=torch.__version__, threads=torch.get_num_threads(), results=results)))


if __name__ == '__main__':
    main()
