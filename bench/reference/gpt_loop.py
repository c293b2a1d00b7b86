#!/usr/bin/env python3
"""PyTorch side of bench/gpt.js: train the nanoGPT-shaped model of Loom's `gpt:L,C,H,T` (token and
position embeddings, L pre-LayerNorm blocks of causal self-attention and a GELU MLP, a final
LayerNorm, a head without bias; nanoGPT's init, head not tied to wte, as packages/worker/src/gpt.ts)
written plainly with torch.nn, with Adam 1e-3 on --threads intra-op threads, and report tokens/s
(predicted positions: T per window) of every epoch.

Data: the windows bench/gpt.js wrote as `loom train --task lm` builds them (--data FILE: a JSON
header line {rows, width = T + 1, vocab}, then int32 token ids (rows, T + 1)); a window's first T
tokens are the input and its last T the targets. Each epoch visits them in a fresh random order.

Usage: gpt_loop.py --data FILE --layers 2 --embed 64 --heads 4 --batch 32 --epochs 4 [--threads 1]
Prints one JSON line.
"""
import argparse, json, math, statistics, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--layers", type=int, default=2)
p.add_argument("--embed", type=int, default=64)
p.add_argument("--heads", type=int, default=4)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--epochs", type=int, default=4)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)

with open(a.data, "rb") as f:
    header = json.loads(f.readline())
    rows, width, vocab = header["rows"], header["width"], header["vocab"]
    windows = torch.from_numpy(np.frombuffer(f.read(rows * width * 4), dtype=np.int32).reshape(rows, width).astype(np.int64))
T = width - 1


class CausalSelfAttention(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        self.register_buffer("bias", torch.tril(torch.ones(T, T)).view(1, 1, T, T))

    def forward(self, x):
        B, t, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (z.view(B, t, self.H, C // self.H).transpose(1, 2) for z in (q, k, v))  # (B, H, t, D)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = F.softmax(att.masked_fill(self.bias[:, :, :t, :t] == 0, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, t, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.c_fc = nn.Linear(C, 4 * C)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C)
        self.attn = CausalSelfAttention(C, H)
        self.ln_2 = nn.LayerNorm(C)
        self.mlp = MLP(C)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, L, C, H, V):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(V, C), wpe=nn.Embedding(T, C),
            h=nn.ModuleList([Block(C, H) for _ in range(L)]), ln_f=nn.LayerNorm(C)))
        self.lm_head = nn.Linear(C, V, bias=False)
        for name, w in self.named_parameters():  # nanoGPT's _init_weights and scaled c_proj
            if w.dim() == 2:
                nn.init.normal_(w, 0.0, 0.02 / math.sqrt(2 * L) if name.endswith("c_proj.weight") else 0.02)
            elif "ln_" not in name:
                nn.init.zeros_(w)

    def forward(self, idx):
        t = idx.size(1)
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(t))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))  # (B, t, V)


model = GPT(a.layers, a.embed, a.heads, vocab)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
rates, losses = [], []
for epoch in range(a.epochs):
    perm = torch.randperm(rows)
    loss_sum, t0 = 0.0, time.perf_counter()
    for s in range(0, rows, a.batch):
        w = windows[perm[s:s + a.batch]]
        opt.zero_grad()
        logits = model(w[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab), w[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        loss_sum += loss.item() * len(w)
    rates.append(rows * T / (time.perf_counter() - t0))
    losses.append(loss_sum / rows)
steady = rates[1:] if len(rates) > 1 else rates
print(json.dumps({"tokensPerSec": statistics.median(steady), "rates": rates, "trainLoss": losses, "threads": torch.get_num_threads(),
                  "rows": rows, "context": T, "vocab": vocab, "batch": a.batch,
                  "parameters": sum(w.numel() for w in model.parameters())}))
