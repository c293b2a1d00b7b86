#!/usr/bin/env python3
"""PyTorch side of bench/threads.js: data-parallel training with DistributedDataParallel over gloo
on 127.0.0.1, P processes x T intra-op threads (default 1), against the same global batch.
Reports samples/s. With --procs 1 --threads 2 it is PyTorch's own way to use both cores.

Usage: ddp.py --procs 2 [--threads 1] --sizes 784,256,128,10 --batch 128 --steps 300 [--fmnist DIR]
Prints one JSON line.
"""
import argparse, json, os, socket, time
import torch
from mlp import mlp
import torch.distributed as dist
import torch.multiprocessing as mp

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def worker(rank, a, port, out):
    torch.set_num_threads(a.threads)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    if a.procs > 1:
        dist.init_process_group("gloo", rank=rank, world_size=a.procs)
    torch.manual_seed(0)
    sizes = [int(s) for s in a.sizes.split(",")]
    model = mlp(sizes)
    if a.procs > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    local = a.batch // a.procs
    g = torch.Generator().manual_seed(rank)
    x = torch.rand(local * 16, sizes[0], generator=g)  # a pool of distinct batches
    y = torch.randint(0, sizes[-1], (local * 16,), generator=g)
    def step(i):
        s = (i % 16) * local
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[s:s + local]), y[s:s + local]).backward()
        opt.step()
    for i in range(20):
        step(i)
    if a.procs > 1:
        dist.barrier()
    t0 = time.perf_counter()
    for i in range(a.steps):
        step(i)
    if a.procs > 1:
        dist.barrier()
    if rank == 0:
        out.put(a.steps * a.batch / (time.perf_counter() - t0))
    if a.procs > 1:
        dist.destroy_process_group()

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sizes", default="100,50,10")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=300)
    a = p.parse_args()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=worker, args=(r, a, port, out)) for r in range(a.procs)]
    for pr in procs:
        pr.start()
    rate = out.get(timeout=600)
    for pr in procs:
        pr.join()
    print(json.dumps({"samplesPerSec": rate, "procs": a.procs, "batch": a.batch, "sizes": a.sizes}))
