"""One streaming pass over a score matrix with numpy, for bench/route_bench.ts.

Reads TOKENS x EXPERTS float32 scores from a raw little-endian file (the
scores the TypeScript benchmark routes), times numpy's `sum` over them on
one thread, and prints one JSON line: {"numpy": version, "ms": median}.
Usage: stream_sum.py FILE TOKENS EXPERTS REPEATS
"""
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

path, tokens, experts, repeats = sys.argv[1], *(int(a) for a in sys.argv[2:5])
s = np.fromfile(path, dtype="<f4").reshape(tokens, experts)
for _ in range(2):
    s.sum()
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    s.sum()
    times.append((time.perf_counter() - t0) * 1e3)
times.sort()
print(json.dumps({"numpy": np.__version__, "ms": times[len(times) // 2]}))
