// The WebGPU kernels of every op, timed on the device over resident
// buffers (timestamp queries around their passes, no upload or readback),
// with the bytes each must move at least (its reads and writes of global
// memory, counted per op below) over that time: GB/s, and, given the
// adapter's peak memory bandwidth (`--peak-gbs`, e.g. 4800 for an H200),
// the fraction of it. A device balancer's whole step (route, update,
// metrics) is timed the same way, per method.
//
// `deno run -A bench/device_bench.ts [--peak-gbs G] [--size NxE/k ...]`
import process from "node:process";
import { acquireGpu, describeGpu, type Gpu } from "../kernels/mod.ts";
import { GpuTimer, storage, uniformSet } from "../kernels/program.ts";
import { releaseScores, uploadScores } from "../kernels/resident_scores.ts";
import { recordRoute } from "../kernels/route_topk.ts";
import { recordLossFreeUpdate } from "../kernels/bias_update.ts";
import {
  dualScratchOnGpu,
  recordDualRounds,
  recordQuantileStep,
} from "../kernels/dual_round.ts";
import {
  recordSinkhorn,
  releaseSinkhornScratch,
  sinkhornScratchOnGpu,
} from "../kernels/sinkhorn_scaling.ts";
import {
  expertChoiceScratchOnGpu,
  recordExpertChoice,
} from "../kernels/expert_choice.ts";
import {
  capacityScratchOnGpu,
  recordCapacityDrop,
} from "../kernels/capacity_drop.ts";
import {
  METRIC_WORDS,
  metricPartialBytes,
  recordBatchMetrics,
} from "../kernels/batch_metrics.ts";
import { createDeviceBalancer } from "../lib/route/device_balancer.ts";
import { releaseBatch, uploadBatch } from "../lib/route/device_batch.ts";
import { capacityOf } from "../lib/select/capacity.ts";
import { syntheticWorkload } from "../lib/workload/synthetic.ts";
import { printTable } from "./_timing.ts";

/** One op's figures at one size. */
export interface DeviceOpTiming {
  op: string;
  size: string;
  /** Median GPU time of the op's passes, ms. */
  ms: number;
  /** Bytes it moves at least, per call. */
  bytes: number;
  /** bytes / time, GB/s (1e9 bytes per second). */
  gbs: number;
}

type Size = { tokens: number; experts: number; k: number };

const DEFAULT_SIZES: Size[] = [
  { tokens: 4096, experts: 64, k: 6 },
  { tokens: 16384, experts: 256, k: 8 },
];

/** Median of the GPU time of `record`'s passes over `repeats` submissions. */
async function gpuMs(
  gpu: Gpu,
  record: (enc: GPUCommandEncoder, timer: GpuTimer) => void,
  repeats: number,
): Promise<number> {
  const times: number[] = [];
  for (let r = 0; r < repeats + 1; r++) {
    const timer = new GpuTimer(gpu, 2048);
    const enc = gpu.device.createCommandEncoder({ label: "bench" });
    record(enc, timer);
    gpu.device.queue.submit([enc.finish()]);
    const ms = await timer.readMs();
    timer.destroy();
    if (r > 0) times.push(ms); // the first compiles the pipelines
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/**
 * Times every op's WebGPU kernel at `size` on resident inputs. Bytes:
 * route reads the scores and writes k experts and weights per token; a
 * dual round reads the scores five times (token prices, four radix
 * passes); Sinkhorn twice per iteration plus once for the row maxima;
 * Expert Choice six times (four radix passes, the tie counts, the slots)
 * and writes E slots per token; capacity dropping reads each routed slot
 * and its score five times and rewrites the slots; the metrics read each
 * slot and its score.
 */
export async function measureOps(
  gpu: Gpu,
  size: Size,
  repeats = 5,
): Promise<DeviceOpTiming[]> {
  const { tokens: N, experts: E, k } = size;
  const w = syntheticWorkload({
    seed: 1,
    steps: 1,
    layers: 1,
    tokens: N,
    experts: E,
    gate: "sigmoid",
  });
  const s = uploadScores(gpu, w.scores(0, 0));
  const params = uniformSet(gpu, "bench params");
  const u = params.make;
  const label = `${N}x${E}/${k}`;
  const S = 4 * N * E; // bytes of the scores
  const buf = (name: string, bytes: number) => storage(gpu, name, bytes);
  const experts = buf("experts", 4 * N * E);
  const weights = buf("weights", 4 * N * E);
  const loads = buf("loads", 4 * E);
  const bad = buf("bad", 4);
  const bias = storage(gpu, "bias", 4 * E, new Float32Array(E));
  const out: DeviceOpTiming[] = [];
  const add = (op: string, ms: number, bytes: number) =>
    out.push({ op, size: label, ms, bytes, gbs: bytes / (ms * 1e6) });
  const routeSpec = {
    experts: E,
    k,
    bias: "add" as const,
    normalize: true,
    groups: 1,
    topGroups: 1,
  };
  const route = (enc: GPUCommandEncoder, t?: GpuTimer) =>
    recordRoute(
      gpu,
      enc,
      routeSpec,
      {
        scores: s,
        bias,
        experts,
        weights,
        loads,
        bad,
      },
      1,
      u,
      t,
    );
  add(
    "route (top-K + bias)",
    await gpuMs(gpu, (e, t) => route(e, t), repeats),
    S + 4 * E + 8 * N * k + 4 * E,
  );
  const grouped = { ...routeSpec, groups: 8, topGroups: 4 };
  if (E % 8 === 0 && k >= 4) {
    add(
      "route, 4 of 8 groups",
      await gpuMs(gpu, (e, t) =>
        recordRoute(
          gpu,
          e,
          grouped,
          {
            scores: s,
            bias,
            experts,
            weights,
            loads,
            bad,
          },
          1,
          u,
          t,
        ), repeats),
      S + 4 * E + 8 * N * k + 4 * E,
    );
  }
  add(
    "lossFreeUpdate",
    await gpuMs(gpu, (e, t) =>
      recordLossFreeUpdate(
        gpu,
        e,
        bias,
        loads,
        E,
        {
          rate: 1e-3,
          rule: "sign",
          center: false,
        },
        u,
        t,
      ), repeats),
    12 * E,
  );
  const dual = {
    scores: s,
    q: buf("q", 4 * E),
    ...dualScratchOnGpu(gpu, N, E),
  };
  const C = capacityOf(N, k, E, 1);
  add(
    "bipRound (1 round)",
    await gpuMs(gpu, (e, t) =>
      recordDualRounds(
        gpu,
        e,
        {
          k,
          capacity: C,
          clipP: true,
          clipQ: true,
        },
        dual,
        1,
        u,
        t,
      ), repeats),
    5 * S + 8 * N,
  );
  add(
    "quantileStep",
    await gpuMs(
      gpu,
      (e, t) => recordQuantileStep(gpu, e, k, dual, u, t),
      repeats,
    ),
    5 * S + 8 * N,
  );
  const sk = sinkhornScratchOnGpu(gpu, s);
  const settings = { temperature: 1, tolerance: 0, maxIterations: 10 };
  add(
    "sinkhorn (10 iterations)",
    await gpuMs(
      gpu,
      (e, t) => recordSinkhorn(gpu, e, settings, s, bias, sk, u, t),
      repeats,
    ),
    (1 + 2 * settings.maxIterations) * S,
  );
  const ec = {
    scores: s,
    experts,
    weights,
    loads,
    ...expertChoiceScratchOnGpu(gpu, N, E),
  };
  add(
    "expertChoice",
    await gpuMs(
      gpu,
      (e, t) => recordExpertChoice(gpu, e, Math.min(N, C), true, ec, u, t),
      repeats,
    ),
    6 * S + 8 * N * E,
  );
  const cap = {
    scores: s,
    experts,
    weights,
    loads,
    ...capacityScratchOnGpu(gpu, N, E),
  };
  add(
    "capacityDrop (probs)",
    await gpuMs(gpu, (e, t) => {
      route(e); // a fresh top-K routing to drop from, not timed
      recordCapacityDrop(
        gpu,
        e,
        k,
        capacityOf(N, k, E, 1.25),
        "probs",
        cap,
        u,
        t,
      );
    }, repeats),
    5 * 8 * N * k + 8 * N * k,
  );
  const metrics = buf("metrics", 4 * METRIC_WORDS);
  const partial = buf("partial", metricPartialBytes(N));
  add(
    "batchMetrics",
    await gpuMs(gpu, (e, t) =>
      recordBatchMetrics(
        gpu,
        e,
        k,
        k,
        {
          scores: s,
          experts,
          loads,
          metrics,
          partial,
        },
        u,
        t,
      ), repeats),
    8 * N * k + 4 * E,
  );
  gpu.pool.release(experts, weights, loads, bad, bias, metrics, partial);
  const { scores: _s, ...dualBuffers } = dual;
  gpu.pool.release(...Object.values(dualBuffers));
  const { scores: _e, experts: _x, weights: _w, loads: _l, ...ecScratch } = ec;
  const { scores: _c, experts: _y, weights: _v, loads: _m, ...capScratch } =
    cap;
  gpu.pool.release(...Object.values(ecScratch), ...Object.values(capScratch));
  releaseSinkhornScratch(gpu, sk);
  releaseScores(gpu, s);
  gpu.pool.release(...params.buffers);
  return out;
}

/** A device balancer's whole step (route, update, metrics), GPU time per batch. */
export async function measureMethods(
  gpu: Gpu,
  size: Size,
  repeats = 5,
): Promise<{ method: string; ms: number }[]> {
  const { tokens: N, experts: E, k } = size;
  const w = syntheticWorkload({
    seed: 1,
    steps: 1,
    layers: 1,
    tokens: N,
    experts: E,
    gate: "sigmoid",
  });
  const ctx = { layers: 1, experts: E, k, normalize: true };
  const reference = createDeviceBalancer("greedy", ctx, gpu);
  const rows = [];
  for (
    const m of [
      "greedy",
      "loss-free",
      "bip",
      "quantile",
      "sinkhorn",
      "expert-choice",
      "capacity",
    ]
  ) {
    const b = createDeviceBalancer(m, ctx, gpu);
    const batch = uploadBatch(gpu, w.scores(0, 0));
    const params = uniformSet(gpu, "bench");
    const times: number[] = [];
    for (let r = 0; r < repeats + 1; r++) {
      const enc = gpu.device.createCommandEncoder({ label: "bench step" });
      batch.reference = undefined;
      if (m !== "greedy") reference.record(0, batch, enc, params.make);
      gpu.device.queue.submit([enc.finish()]);
      const enc2 = gpu.device.createCommandEncoder({ label: "bench step" });
      b.record(0, batch, enc2, params.make);
      gpu.device.queue.submit([enc2.finish()]);
      const ms = await b.timer!.readMs();
      if (r > 0) times.push(ms);
    }
    times.sort((a, b) => a - b);
    rows.push({ method: m, ms: times[Math.floor(times.length / 2)] });
    releaseBatch(gpu, batch);
    gpu.pool.release(...params.buffers);
    b.release();
  }
  reference.release();
  return rows;
}

function parse(args: string[]): { peak: number; sizes: Size[] } {
  let peak = NaN;
  const sizes: Size[] = [];
  for (let a = 0; a < args.length; a++) {
    if (args[a] === "--peak-gbs") {
      peak = Number(args[++a]);
      if (!(peak > 0)) {
        console.error(
          `error: --peak-gbs must be a positive number: current value is ${
            args[a]
          }`,
        );
        process.exit(2);
      }
    } else if (args[a] === "--size") {
      const m = /^(\d+)x(\d+)\/(\d+)$/.exec(args[++a] ?? "");
      if (!m) {
        console.error(
          `error: --size must look like 4096x64/6: current value is ${args[a]}`,
        );
        process.exit(2);
      }
      sizes.push({ tokens: +m[1], experts: +m[2], k: +m[3] });
    } else {
      console.error(`error: unknown argument ${args[a]}`);
      process.exit(2);
    }
  }
  return { peak, sizes: sizes.length ? sizes : DEFAULT_SIZES };
}

/** Runs the benchmark and prints its tables (`peak`: the adapter's GB/s). */
export async function run(
  peak = NaN,
  sizes: Size[] = DEFAULT_SIZES,
): Promise<void> {
  const { gpu, reason } = await acquireGpu();
  if (!gpu) {
    console.log(`WebGPU kernels: skipped (${reason})`);
    return;
  }
  if (!gpu.timestamps) {
    console.log(
      "WebGPU kernels: skipped (the adapter has no timestamp queries)",
    );
    return;
  }
  console.log(`WebGPU kernels on ${describeGpu(gpu.info)}`);
  const rows: (string | number)[][] = [];
  for (const size of sizes) {
    for (const t of await measureOps(gpu, size)) {
      rows.push([
        t.op,
        t.size,
        t.ms.toFixed(3),
        (t.bytes / 1e6).toFixed(2),
        t.gbs.toFixed(1),
        peak > 0 ? `${(100 * t.gbs / peak).toFixed(1)}%` : "-",
      ]);
    }
  }
  printTable(
    ["op", "tokens x experts / k", "GPU ms", "MB moved", "GB/s", "of peak"],
    rows,
  );
  const steps: (string | number)[][] = [];
  for (const size of sizes) {
    for (const r of await measureMethods(gpu, size)) {
      steps.push([
        r.method,
        `${size.tokens}x${size.experts}/${size.k}`,
        r.ms.toFixed(3),
      ]);
    }
  }
  console.log(
    "\nA device balancer's step (route, update, metrics), GPU time per batch:",
  );
  printTable(["method", "tokens x experts / k", "GPU ms"], steps);
}

if (import.meta.main) {
  const { peak, sizes } = parse(process.argv.slice(2));
  await run(peak, sizes);
}
