"""PyTorch CPU baseline of MoE transformer training, for bench/train_bench.ts.

The model of lib/train/transformer/ (pre-norm RMSNorm blocks, causal
multi-head attention with learned positions, top-K sigmoid-gated SiLU
experts normalised over the selected ones, tied output) in float32, trained
by Adam on random tokens with a fixed number of threads. Prints one JSON
line: {"torch": version, "threads": n, "tokensPerSecond": median}.

Usage: train_torch.py CONFIG_JSON THREADS STEPS
(CONFIG_JSON: vocab, seqLen, dim, heads, layers, experts, topK, hidden,
batchSeqs).
"""
import json
import math
import sys
import time

import torch


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d, E, h = c["dim"], c["experts"], c["hidden"]
        self.c = c
        self.norm1 = torch.nn.Parameter(torch.ones(d))
        self.wq = torch.nn.Linear(d, d, bias=False)
        self.wk = torch.nn.Linear(d, d, bias=False)
        self.wv = torch.nn.Linear(d, d, bias=False)
        self.wo = torch.nn.Linear(d, d, bias=False)
        self.norm2 = torch.nn.Parameter(torch.ones(d))
        self.router = torch.nn.Linear(d, E, bias=False)
        self.w1 = torch.nn.Parameter(torch.randn(E, h, d) / math.sqrt(d))
        self.w2 = torch.nn.Parameter(torch.randn(E, d, h) / math.sqrt(h))

    def forward(self, x, B, T):
        c = self.c
        d, H, E, K = c["dim"], c["heads"], c["experts"], c["topK"]
        D = d // H
        a = rms(x, self.norm1)
        heads = lambda y: y.view(B, T, H, D).transpose(1, 2)
        q, k, v = heads(self.wq(a)), heads(self.wk(a)), heads(self.wv(a))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        o = (torch.softmax(s.masked_fill(mask, float("-inf")), -1) @ v)
        x = x + self.wo(o.transpose(1, 2).reshape(B * T, d))
        a = rms(x, self.norm2)
        sc = torch.sigmoid(self.router(a))
        sel = torch.topk(sc.detach(), K, dim=-1).indices
        g = torch.gather(sc, 1, sel)
        g = g / g.sum(-1, keepdim=True)
        flat = sel.reshape(-1)
        order = torch.argsort(flat, stable=True)
        tok = order // K
        counts = torch.bincount(flat, minlength=E).tolist()
        xe = a[tok]
        outs = []
        at = 0
        for e in range(E):
            n = counts[e]
            if n:
                he = torch.nn.functional.silu(xe[at : at + n] @ self.w1[e].T)
                outs.append(he @ self.w2[e].T)
            at += n
        ye = torch.cat(outs) * g.reshape(-1)[order].unsqueeze(1)
        return x + torch.zeros_like(x).index_add(0, tok, ye)


def rms(x, gain):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5) * gain


class Model(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.tok = torch.nn.Embedding(c["vocab"], c["dim"])
        self.pos = torch.nn.Parameter(torch.zeros(c["seqLen"], c["dim"]))
        self.blocks = torch.nn.ModuleList(Block(c) for _ in range(c["layers"]))
        self.norm = torch.nn.Parameter(torch.ones(c["dim"]))

    def forward(self, tokens):
        B, T = tokens.shape
        x = (self.tok(tokens) + self.pos[:T]).reshape(B * T, -1)
        for b in self.blocks:
            x = b(x, B, T)
        return rms(x, self.norm) @ self.tok.weight.T


def main():
    c = json.loads(sys.argv[1])
    threads, steps = int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model = Model(c)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    B, T = c["batchSeqs"], c["seqLen"]
    g = torch.Generator().manual_seed(2)

    def step():
        tokens = torch.randint(0, c["vocab"], (B, T + 1), generator=g)
        logits = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits, tokens[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(2):
        step()
    rates = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        rates.append(B * T / (time.perf_counter() - t0))
    rates.sort()
    print(json.dumps({
        "torch": torch.__version__.split("+")[0],
        "threads": threads,
        "tokensPerSecond": rates[len(rates) // 2],
    }))


if __name__ == "__main__":
    main()
