"""PyTorch CPU baseline of biased top-K routing, for bench/backends_bench.ts.

Times torch.topk(s + b, k) plus torch.bincount of the selected experts on
uniform random scores (tokens x experts, float32), with a fixed number of
threads, and prints one JSON line: {"torch": version, "threads": n,
"ms": median}. Usage: route_torch.py TOKENS EXPERTS K THREADS REPEATS
"""
import json
import sys
import time

import torch

tokens, experts, k, threads, repeats = (int(a) for a in sys.argv[1:6])
torch.set_num_threads(threads)
g = torch.Generator().manual_seed(7)
s = torch.rand(tokens, experts, generator=g, dtype=torch.float32)
b = (torch.rand(experts, generator=g) - 0.5) * 1e-2


def step():
    _, idx = torch.topk(s + b, k, dim=1)
    return torch.bincount(idx.flatten(), minlength=experts)


for _ in range(2):
    step()
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    loads = step()
    times.append((time.perf_counter() - t0) * 1e3)
assert int(loads.sum()) == tokens * k
times.sort()
print(json.dumps({"torch": torch.__version__, "threads": threads, "ms": times[len(times) // 2]}))
