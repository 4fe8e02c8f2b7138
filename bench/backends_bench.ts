// CPU against WebGPU against PyTorch, in one run: biased top-K routing
// (scores/s and GB/s of scores read), routeParallel against PyTorch's
// torch.topk(s + b, k) + torch.bincount on the same threads (ratio), and
// one BIP round on both backends. The WebGPU kernels are the registered
// kernels of the route and bipRound ops. measureRoute() returns the data
// notebooks/05-webgpu.ipynb plots.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { acquireGpu, describeGpu, type Gpu } from "../kernels/mod.ts";
import { GpuTimer } from "../kernels/program.ts";
import { requireKernel } from "../lib/ops/registry.ts";
import { routeOp } from "../lib/ops/route.ts";
import { bipRoundOp } from "../lib/ops/bip_round.ts";
import { route } from "../lib/route/route.ts";
import { routeParallel, sharedScores } from "../lib/route/route_parallel.ts";
import { bipPrices } from "../lib/route/bip.ts";
import { Rng } from "../lib/scores/rng.ts";
import type { ScoreMatrix } from "../lib/types.ts";
import { medianMs, medianMsAsync, printTable } from "./_timing.ts";

/** One size measured on both backends. */
export interface RouteTiming {
  tokens: number;
  experts: number;
  k: number;
  /** routeParallel on all cores, ms (median). */
  cpuMs: number;
  /** WebGPU, upload to readback, ms (median); NaN without an adapter. */
  gpuMs: number;
  /** WebGPU kernel time from timestamp queries, ms; NaN without them. */
  gpuKernelMs: number;
}

function uniformScores(
  tokens: number,
  experts: number,
  seed: number,
): ScoreMatrix {
  const s = sharedScores(tokens, experts);
  const rng = new Rng(seed);
  for (let i = 0; i < s.data.length; i++) s.data[i] = rng.uniform();
  return s;
}

function smallBias(experts: number): Float64Array {
  const rng = new Rng(99);
  return Float64Array.from(
    { length: experts },
    () => (rng.uniform() - 0.5) * 1e-2,
  );
}

/** The route op's WebGPU kernel on `scores`, timed by `timer` when given. */
function gpuRoute(
  gpu: Gpu,
  scores: ScoreMatrix,
  k: number,
  bias: Float64Array,
  timer?: GpuTimer,
): Promise<unknown> {
  const args = routeOp.validate({ scores, options: { k, bias } });
  return requireKernel(routeOp, "webgpu").run(args, { gpu, timer });
}

/**
 * Times biased top-K routing on the CPU (routeParallel) and on the WebGPU
 * adapter, if any, at each size. Small sizes run in milliseconds.
 */
export async function measureRoute(
  sizes: [number, number, number][],
  repeats = 5,
): Promise<RouteTiming[]> {
  const { gpu } = await acquireGpu();
  const rows: RouteTiming[] = [];
  for (const [tokens, experts, k] of sizes) {
    const s = uniformScores(tokens, experts, 7);
    const bias = smallBias(experts);
    const cpuMs = medianMs(
      () => void routeParallel(s, { k, bias }),
      repeats,
      1,
    );
    let gpuMs = NaN, gpuKernelMs = NaN;
    if (gpu) {
      gpuMs = await medianMsAsync(
        async () => void await gpuRoute(gpu, s, k, bias),
        repeats,
        1,
      );
      const timer = new GpuTimer(gpu);
      await gpuRoute(gpu, s, k, bias, timer);
      gpuKernelMs = await timer.readMs();
      timer.destroy();
    }
    rows.push({ tokens, experts, k, cpuMs, gpuMs, gpuKernelMs });
  }
  return rows;
}

/** PyTorch's result for the same routing. */
interface TorchTiming {
  /** Median ms. */
  ms: number;
  /** `torch.__version__`. */
  torch: string;
}

/** PyTorch's median ms and version, or the reason they are missing. */
function torchMs(
  tokens: number,
  experts: number,
  k: number,
  threads: number,
): TorchTiming | string {
  const script = fileURLToPath(new URL("./route_torch.py", import.meta.url));
  let why = "python3 not found";
  // The Debian python3-torch lives in the system interpreter, which a
  // pyenv or venv python3 on PATH may hide.
  for (const python of ["python3", "/usr/bin/python3"]) {
    const r = spawnSync(python, [
      script,
      `${tokens}`,
      `${experts}`,
      `${k}`,
      `${threads}`,
      "5",
    ], {
      encoding: "utf8",
    });
    if (r.status === 0) {
      return JSON.parse(r.stdout.trim().split("\n").pop()!);
    }
    if (r.stderr) why = r.stderr.trim().split("\n").pop()!;
  }
  return why;
}

const gbps = (n: number, e: number, ms: number) =>
  ((4 * n * e) / ms / 1e6).toFixed(2);
const mscores = (n: number, e: number, ms: number) =>
  ((n * e) / ms / 1e3).toFixed(0);

/** Runs the suite. */
export async function run(): Promise<void> {
  const { gpu, reason } = await acquireGpu();
  const threads = navigator.hardwareConcurrency ?? 1;
  console.log(
    `machine: ${threads} logical cores; ${
      gpu ? describeGpu(gpu.info) : `no WebGPU (${reason})`
    }`,
  );
  const [N, E, k] = [262144, 256, 8];
  const s = uniformScores(N, E, 7);
  const plain = { ...s, data: Float32Array.from(s.data) };
  const bias = smallBias(E);
  const single = medianMs(() => void route(s, { k, bias }), 3, 1);
  // Two calls to warm up: the first starts the workers, and in the second
  // their copy of the kernel is still being compiled.
  const par = medianMs(() => void routeParallel(s, { k, bias, threads }), 7, 2);
  const copied = medianMs(
    () => void routeParallel(plain, { k, bias, threads }),
    5,
    1,
  );
  const torch = torchMs(N, E, k, threads);
  const rows: (string | number)[][] = [
    [
      `route(), 1 thread`,
      single.toFixed(1),
      mscores(N, E, single),
      gbps(N, E, single),
      "-",
    ],
    [
      `routeParallel, ${threads} threads, shared scores`,
      par.toFixed(1),
      mscores(N, E, par),
      gbps(N, E, par),
      "-",
    ],
    [
      `routeParallel, ${threads} threads, scores copied`,
      copied.toFixed(1),
      mscores(N, E, copied),
      gbps(N, E, copied),
      "-",
    ],
  ];
  if (typeof torch === "object") {
    rows.push([
      `torch ${torch.torch} topk + bincount, ${threads} threads`,
      torch.ms.toFixed(1),
      mscores(N, E, torch.ms),
      gbps(N, E, torch.ms),
      (torch.ms / par).toFixed(2),
    ]);
  }
  let gpuMs = NaN;
  if (gpu) {
    gpuMs = await medianMsAsync(
      async () => void await gpuRoute(gpu, s, k, bias),
      3,
      1,
    );
    const timer = new GpuTimer(gpu);
    await gpuRoute(gpu, s, k, bias, timer);
    const kernel = await timer.readMs();
    timer.destroy();
    rows.push([
      `WebGPU, upload to readback`,
      gpuMs.toFixed(1),
      mscores(N, E, gpuMs),
      gbps(N, E, gpuMs),
      (gpuMs / par).toFixed(2),
    ]);
    if (Number.isFinite(kernel)) {
      rows.push([
        `WebGPU, kernel only (timestamps)`,
        kernel.toFixed(1),
        mscores(N, E, kernel),
        gbps(N, E, kernel),
        (kernel / par).toFixed(2),
      ]);
    }
  }
  console.log(
    `\nbiased top-K routing, ${N} tokens x ${E} experts, k = ${k} (speed-up of routeParallel, shared scores, over each row)\n`,
  );
  printTable(
    ["path", "ms", "Mscores/s", "GB/s read", "routeParallel speed-up"],
    rows,
  );
  if (typeof torch === "string") {
    console.log(`\nPyTorch baseline skipped: ${torch}`);
  }
  if (gpu) {
    console.log(
      `\nCPU/GPU throughput ratio (end to end): ${(gpuMs / par).toFixed(2)}`,
    );
  }

  const [bn, be, bk] = [65536, 256, 8];
  const bs = uniformScores(bn, be, 8);
  const C = Math.ceil((bn * bk) / be);
  const cpuBip = medianMs(
    () => void bipPrices(bs, { k: bk, capacity: C, T: 1 }),
    3,
    1,
  );
  const bipRows: (string | number)[][] = [[
    "CPU, bipPrices T = 1 (float64, quickselect)",
    cpuBip.toFixed(1),
  ]];
  if (gpu) {
    const round = requireKernel(bipRoundOp, "webgpu");
    const checked = bipRoundOp.validate({
      scores: bs,
      options: { k: bk, capacity: C, T: 1 },
    });
    // Each round starts from zero prices, as the CPU's bipPrices does.
    const args = () => (checked.prices.fill(0), checked);
    const gpuBip = await medianMsAsync(
      async () => void await round.run(args(), { gpu }),
      3,
      1,
    );
    const timer = new GpuTimer(gpu);
    await round.run(args(), { gpu, timer });
    const kernel = await timer.readMs();
    timer.destroy();
    bipRows.push([
      "WebGPU, upload to readback (radix select)",
      gpuBip.toFixed(1),
    ]);
    if (Number.isFinite(kernel)) {
      bipRows.push(["WebGPU, kernels only (timestamps)", kernel.toFixed(1)]);
    }
  }
  console.log(
    `\none BIP iteration, ${bn} tokens x ${be} experts, k = ${bk}, C = ${C}\n`,
  );
  printTable(["path", "ms"], bipRows);
  console.log(
    "\nNot measured: 1M tokens x 256 experts on an H100 (no GPU was lent to this run; the WebGPU figures above are from the adapter named at the top).",
  );
}
