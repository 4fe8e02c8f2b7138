// The training ops' CPU matmul: the "cpu" kernel (one thread) and the
// "cpu-threads" kernel (two threads), and the "webgpu" kernel when there is
// an adapter (with its upload and readback), against a naive triple loop and
// against PyTorch's and NumPy's float32 products with the same thread
// counts (bench/matmul_torch.py), all measured in the same run, in GFLOP/s
// (2 m n k per product) and as ratios to the one-thread kernel.
import { spawnSync } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { Rng } from "../lib/scores/rng.ts";
import { type MatmulArgs, matmulCpu, matmulOp } from "../lib/ops/matmul.ts";
import { matmulThreads } from "../lib/ops/matmul_threads.ts";
import { requireKernel } from "../lib/ops/registry.ts";
import { acquireGpu, describeGpu } from "../kernels/mod.ts";
import { medianMs, medianMsAsync, printTable } from "./_timing.ts";

/** The textbook loop: one float64 sum per entry, b read down its columns. */
function naive(args: MatmulArgs): void {
  const { a, b, out, m, n, k, transA, transB } = args;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        s += (transA ? a[p * m + i] : a[i * k + p]) *
          (transB ? b[j * k + p] : b[p * n + j]);
      }
      out[i * n + j] = s;
    }
  }
}

interface Baseline {
  torch: string;
  numpy: string;
  torchMs: number;
  numpyMs: number;
}

/** PyTorch's and NumPy's medians, or why they are missing. */
function python(
  [m, n, k]: number[],
  transA: boolean,
  transB: boolean,
  threads: number,
): Baseline | string {
  const script = fileURLToPath(new URL("./matmul_torch.py", import.meta.url));
  let why = "python3 not found";
  const env = {
    ...process.env,
    OMP_NUM_THREADS: `${threads}`,
    OPENBLAS_NUM_THREADS: `${threads}`,
    MKL_NUM_THREADS: `${threads}`,
  };
  // The Debian python3-torch lives in the system interpreter, which a
  // pyenv or venv python3 on PATH may hide.
  for (const py of ["python3", "/usr/bin/python3"]) {
    const r = spawnSync(py, [
      script,
      `${m}`,
      `${n}`,
      `${k}`,
      transA ? "1" : "0",
      transB ? "1" : "0",
      `${threads}`,
      "5",
    ], { encoding: "utf8", env });
    if (r.status === 0) return JSON.parse(r.stdout.trim().split("\n").pop()!);
    if (r.stderr) why = r.stderr.trim().split("\n").pop()!;
  }
  return why;
}

function operands(
  [m, n, k]: number[],
  shared: boolean,
): { a: Float32Array; b: Float32Array; out: Float32Array } {
  const rng = new Rng(7);
  const make = (len: number) => {
    const x = shared
      ? new Float32Array(new SharedArrayBuffer(4 * len))
      : new Float32Array(len);
    for (let i = 0; i < len; i++) x[i] = rng.uniform() - 0.5;
    return x;
  };
  return { a: make(m * k), b: make(k * n), out: make(m * n) };
}

/** Runs the suite. */
export async function run(): Promise<void> {
  const { gpu, reason } = await acquireGpu();
  console.log(
    `machine: ${navigator.hardwareConcurrency} logical cores (shared: timings are noisy; ratios are within one run); ${
      gpu ? describeGpu(gpu.info) : `no WebGPU (${reason})`
    }`,
  );
  const rows: (string | number)[][] = [];
  let versions = "";
  const cases: [number[], boolean, boolean, string][] = [
    [[256, 256, 256], false, false, "square"],
    [[512, 512, 512], false, false, "square"],
    [[1024, 512, 128], false, true, "X Wᵀ (forward)"],
    [[128, 512, 1024], true, false, "dYᵀ X (weight grad)"],
  ];
  for (const [size, transA, transB, what] of cases) {
    const [m, n, k] = size;
    const flop = 2 * m * n * k;
    const gflops = (ms: number) => (flop / ms / 1e6).toFixed(2);
    const plain = operands(size, false);
    const shared = operands(size, true);
    const args = (x: typeof plain) =>
      matmulOp.validate({ ...x, m, n, k, transA, transB });
    const one = medianMs(() => void matmulCpu(args(plain)), 5, 1);
    const two = medianMs(() => void matmulThreads(args(shared), 2), 5, 2);
    const twoCopied = medianMs(() => void matmulThreads(args(plain), 2), 5, 2);
    const slow = medianMs(() => naive(args(plain)), 1, 0);
    const py1 = python(size, transA, transB, 1);
    const py2 = python(size, transA, transB, 2);
    const label = `${m}x${n}x${k} ${what}`;
    rows.push([
      label,
      "cpu kernel, 1 thread",
      one.toFixed(1),
      gflops(one),
      "1.00",
    ]);
    rows.push([
      label,
      "cpu-threads, 2 threads (shared buffers)",
      two.toFixed(1),
      gflops(two),
      (one / two).toFixed(2),
    ]);
    rows.push([
      label,
      "cpu-threads, 2 threads (copied in and out)",
      twoCopied.toFixed(1),
      gflops(twoCopied),
      (one / twoCopied).toFixed(2),
    ]);
    if (gpu) {
      const kernel = requireKernel(matmulOp, "webgpu");
      const ms = await medianMsAsync(
        async () => void await kernel.run(args(plain), { gpu }),
        3,
        1,
      );
      rows.push([
        label,
        "webgpu kernel (upload, run, read back)",
        ms.toFixed(1),
        gflops(ms),
        (one / ms).toFixed(2),
      ]);
    }
    rows.push([
      label,
      "naive triple loop",
      slow.toFixed(1),
      gflops(slow),
      (one / slow).toFixed(2),
    ]);
    for (const [threads, py] of [[1, py1], [2, py2]] as const) {
      if (typeof py === "string") {
        rows.push([
          label,
          `PyTorch / NumPy, ${threads} thread(s)`,
          "-",
          "-",
          py,
        ]);
        continue;
      }
      versions = `torch ${py.torch}, numpy ${py.numpy}`;
      rows.push([
        label,
        `torch.mm, ${threads} thread(s)`,
        py.torchMs.toFixed(1),
        gflops(py.torchMs),
        (one / py.torchMs).toFixed(2),
      ]);
      rows.push([
        label,
        `numpy.matmul, ${threads} thread(s)`,
        py.numpyMs.toFixed(1),
        gflops(py.numpyMs),
        (one / py.numpyMs).toFixed(2),
      ]);
    }
  }
  printTable(
    [
      "m x n x k",
      "implementation",
      "ms",
      "GFLOP/s",
      "speed vs 1-thread kernel",
    ],
    rows,
  );
  if (versions) console.log(`\nbaselines: ${versions} (Debian builds)`);
}

if (import.meta.main) await run();
