"""PyTorch and NumPy CPU baselines of a float32 matrix product, for
bench/train_ops_bench.ts.

Times out = op(a) @ op(b) (op: a transpose when asked, a view as in the
moelab matmul op) with a fixed number of threads (torch.set_num_threads;
NumPy's BLAS through OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, which the
caller sets), and prints one JSON line: {"torch": version, "numpy": version,
"threads": n, "torchMs": median, "numpyMs": median}.
Usage: matmul_torch.py M N K TRANS_A TRANS_B THREADS REPEATS
"""
import json
import sys
import time

import numpy as np
import torch

m, n, k, trans_a, trans_b, threads, repeats = (int(a) for a in sys.argv[1:8])
torch.set_num_threads(threads)
g = torch.Generator().manual_seed(7)
a = torch.rand(k, m, generator=g) if trans_a else torch.rand(m, k, generator=g)
b = torch.rand(n, k, generator=g) if trans_b else torch.rand(k, n, generator=g)
ta = a.t() if trans_a else a
tb = b.t() if trans_b else b
na, nb = ta.numpy(), tb.numpy()
out = torch.empty(m, n)


def median(fn):
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


torch_ms = median(lambda: torch.mm(ta, tb, out=out))
numpy_ms = median(lambda: np.matmul(na, nb))
assert abs(float(out.sum()) - float(np.matmul(na, nb).sum())) < 1e-3 * abs(float(out.sum()))
print(json.dumps({
    "torch": torch.__version__,
    "numpy": np.__version__,
    "threads": threads,
    "torchMs": torch_ms,
    "numpyMs": numpy_ms,
}))
