#!/usr/bin/env python3
"""PyTorch side of bench/ctr.js: the news CTR model trained on the click log Loom wrote
(--data FILE, the format of packages/data/src/clicks/file.ts), one thread, and its samples/s,
validation AUC and log loss on the held-out later impressions.

The model (issue #12): user, article, category and subcategory embeddings of dim 32, the user's
history as an EmbeddingBag mean that shares the article table, the 4 dense features through a
Linear(4, 32), an MLP 6*32 -> 128 -> 64 -> 1, BCE with logits. Tables are sparse=True with
SparseAdam (or sparse Adagrad, --sparse adagrad); the dense part uses Adam. Row ids are used as
table indices directly (the tables are sized by the file's user and article counts).
Prints one JSON line.
"""
import argparse, json, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--batch", type=int, default=512)
p.add_argument("--epochs", type=int, default=1)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--sparse", default="sparse-adam", choices=["sparse-adam", "adagrad"])
p.add_argument("--sparse-lr", type=float, default=None)
p.add_argument("--warmup", type=int, default=20, help="steps not timed")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--init", help="start from these weights (Loom's DIR/init.safetensors from --save-init), by PyTorch name")
a = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(a.seed)

raw = open(a.data, "rb").read()
assert raw[:8] == b"LOOMCLK1", f"{a.data}: not a Loom click log"
n = int.from_bytes(raw[8:12], "little")
h = json.loads(raw[12:12 + n])
def col(name):
    c = h["columns"][name]
    count = int(np.prod(c["shape"]))
    return np.frombuffer(raw, dtype=np.dtype(c["dtype"]), count=count, offset=c["offset"]).reshape(c["shape"])
user, art, cat, sub = (torch.from_numpy(col(k).astype(np.int64)) for k in ("user", "article", "category", "subcategory"))
hist = torch.from_numpy(col("history").astype(np.int64))
dense = torch.from_numpy(col("dense").copy())
label = torch.from_numpy(col("label").copy())
V = h["validStart"]
D = 32

class CTR(nn.Module):
    def __init__(s):
        super().__init__()
        s.user = nn.Embedding(h["numUsers"], D, sparse=True)
        s.article = nn.Embedding(h["numArticles"], D, sparse=True)
        s.category = nn.Embedding(18, D, sparse=True)
        s.subcategory = nn.Embedding(270, D, sparse=True)
        s.dense = nn.Linear(4, D)
        s.mlp = nn.Sequential(nn.Linear(6 * D, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1))
    def forward(s, u, a_, c, b, hi, d):
        history = F.embedding_bag(hi, s.article.weight, mode="mean", sparse=True)
        z = torch.cat([s.user(u), s.article(a_), s.category(c), s.subcategory(b), history, s.dense(d)], 1)
        return s.mlp(z).squeeze(1)

m = CTR()
if a.init:
    # safetensors: u64 header length, a JSON header of {name: {dtype, shape, data_offsets}}, the data.
    blob = open(a.init, "rb").read()
    hn = int.from_bytes(blob[:8], "little")
    meta = json.loads(blob[8:8 + hn])
    state = {}
    for name, t in meta.items():
        if name == "__metadata__": continue
        assert t["dtype"] == "F32", f"{a.init}: {name} is {t['dtype']}, expected F32"
        b, e = t["data_offsets"]
        state[name] = torch.from_numpy(np.frombuffer(blob, dtype=np.float32, count=(e - b) // 4, offset=8 + hn + b).reshape(t["shape"]).copy())
    m.load_state_dict(state, strict=True)
tables = [m.user.weight, m.article.weight, m.category.weight, m.subcategory.weight]
rest = [q for q in m.parameters() if not any(q is t for t in tables)]
if a.sparse == "sparse-adam":
    o1 = torch.optim.SparseAdam(tables, lr=a.sparse_lr or a.lr)
else:
    o1 = torch.optim.Adagrad(tables, lr=a.sparse_lr or 0.05)
o2 = torch.optim.Adam(rest, lr=a.lr)

steps = 0
timed_rows = 0
timed = 0.0
for epoch in range(a.epochs):
    for i in range(0, V, a.batch):
        j = min(V, i + a.batch)
        t0 = time.perf_counter()
        o1.zero_grad(); o2.zero_grad()
        loss = F.binary_cross_entropy_with_logits(m(user[i:j], art[i:j], cat[i:j], sub[i:j], hist[i:j], dense[i:j]), label[i:j])
        loss.backward(); o1.step(); o2.step()
        if steps >= a.warmup:
            timed += time.perf_counter() - t0
            timed_rows += j - i
        steps += 1

with torch.no_grad():
    scores = []
    for i in range(V, len(label), 4096):
        j = min(len(label), i + 4096)
        scores.append(m(user[i:j], art[i:j], cat[i:j], sub[i:j], hist[i:j], dense[i:j]))
    s = torch.cat(scores).numpy().astype(np.float64)
y = label[V:].numpy()
# AUC as the Mann-Whitney statistic over average ranks (ties count half), as Loom's auc().
order = np.argsort(s, kind="mergesort")
ranks = np.empty(len(s)); sorted_s = s[order]
i = 0
while i < len(s):
    j = i
    while j < len(s) and sorted_s[j] == sorted_s[i]: j += 1
    ranks[order[i:j]] = (i + 1 + j) / 2
    i = j
pos = y > 0.5
P, N = pos.sum(), (~pos).sum()
auc = (ranks[pos].sum() - P * (P + 1) / 2) / (P * N)
prob = np.clip(1 / (1 + np.exp(-s)), 1e-7, 1 - 1e-7)
logloss = float(-np.mean(np.where(pos, np.log(prob), np.log(1 - prob))))
print(json.dumps({
    "samplesPerSec": timed_rows / timed if timed > 0 else None,
    "validAuc": float(auc), "validLogLoss": logloss,
    "params": sum(q.numel() for q in m.parameters()), "steps": steps, "sparse": a.sparse, "init": "loom" if a.init else "torch",
}))
