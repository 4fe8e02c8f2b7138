// Route throughput on the CPU: route() (the TypeScript kernel) against a
// plain sort-based top-K baseline; then, near the memory limit, routing
// (TypeScript and WebAssembly SIMD kernels) and the balancers' ops
// (a BIP round, a Quantile step, a Sinkhorn step) as multiples of one
// streaming pass over the same scores: a one-thread TypeScript sum and
// numpy's `sum` (bench/stream_sum.py), measured in the same run.
import { spawnSync } from "node:child_process";
import process from "node:process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { route } from "../lib/route/route.ts";
import {
  routeParallel,
  sharedRouting,
  sharedScores,
} from "../lib/route/route_parallel.ts";
import { createBalancer } from "../lib/route/registry.ts";
import { requireKernel } from "../lib/ops/registry.ts";
import { bipRoundOp, columnBounds, dualScratch } from "../lib/ops/bip_round.ts";
import { sinkhornOp, sinkhornScratch } from "../lib/ops/sinkhorn.ts";
import { capacityOf } from "../lib/select/capacity.ts";
import { syntheticWorkload } from "../lib/workload/synthetic.ts";
import { Rng } from "../lib/scores/rng.ts";
import type { ScoreMatrix } from "../lib/types.ts";
import { medianMs, printTable } from "./_timing.ts";
import { hostKernel } from "../lib/ops/host.ts";
import { wasmRuntime } from "../lib/wasm/runtime.ts";
import "../lib/ops/bip_round_wasm.ts";
import "../lib/ops/sinkhorn_wasm.ts";

function sortTopK(
  data: Float32Array,
  tokens: number,
  experts: number,
  k: number,
): Int32Array {
  const out = new Int32Array(tokens * k);
  const idx = Array.from({ length: experts }, (_, j) => j);
  for (let i = 0; i < tokens; i++) {
    const base = i * experts;
    idx.sort((a, b) => data[base + b] - data[base + a] || a - b);
    for (let r = 0; r < k; r++) out[i * k + r] = idx[r];
  }
  return out;
}

/**
 * Median ms of each function, measured in alternation (one call of each
 * per round) so that a burst of load on a shared machine falls on all.
 */
function alternating(
  fns: Record<string, () => void>,
  rounds: number,
): Record<string, number> {
  const names = Object.keys(fns);
  const times: Record<string, number[]> = {};
  for (const n of names) {
    fns[n]();
    fns[n]();
    times[n] = [];
  }
  for (let r = 0; r < rounds; r++) {
    for (const n of names) {
      const t0 = performance.now();
      fns[n]();
      times[n].push(performance.now() - t0);
    }
  }
  const out: Record<string, number> = {};
  for (const n of names) {
    const t = times[n].sort((a, b) => a - b);
    out[n] = t[Math.floor(t.length / 2)];
  }
  return out;
}

/**
 * `b`'s time over `a`'s, call by call: each round times one call of each,
 * adjacent (in turn first), so that the machine's swings, which move a
 * median of one against a median of the other taken seconds apart, fall on
 * both; the median of the rounds' ratios and the lowest and highest.
 */
function pairedRatio(
  a: () => void,
  b: () => void,
  rounds: number,
): { median: number; low: number; high: number } {
  a();
  b();
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let ta = 0, tb = 0;
    for (const first of r % 2 ? [false, true] : [true, false]) {
      const t0 = performance.now();
      (first ? a : b)();
      const ms = performance.now() - t0;
      if (first) ta = ms;
      else tb = ms;
    }
    ratios.push(tb / ta);
  }
  ratios.sort((x, y) => x - y);
  return {
    median: ratios[Math.floor(rounds / 2)],
    low: ratios[0],
    high: ratios[rounds - 1],
  };
}

/**
 * Median CPU ms of one call, all threads of the process together
 * (`process.cpuUsage`): on a machine whose cores other work shares, half
 * of it is what two threads would take on two free cores.
 */
function cpuMs(fn: () => void, rounds: number): number {
  fn();
  const t: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = process.cpuUsage();
    fn();
    const used = process.cpuUsage(start);
    t.push((used.user + used.system) / 1e3);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}

/** One streaming pass in TypeScript: the sum of the scores, one thread. */
function streamSum(data: Float32Array): number {
  let a = 0;
  for (let i = 0; i < data.length; i++) a += data[i];
  return a;
}

/** numpy's median ms for `sum` over the scores, or why it is missing. */
function numpyMs(scores: ScoreMatrix, repeats: number): number | string {
  const script = fileURLToPath(new URL("./stream_sum.py", import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), "moelab-sum-"));
  const file = join(dir, "scores.f32");
  try {
    const d = scores.data;
    writeFileSync(file, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    let why = "python3 not found";
    for (const python of ["python3", "/usr/bin/python3"]) {
      const r = spawnSync(python, [
        script,
        file,
        `${scores.tokens}`,
        `${scores.experts}`,
        `${repeats}`,
      ], { encoding: "utf8" });
      if (r.status === 0) {
        return JSON.parse(r.stdout.trim().split("\n").pop()!).ms;
      }
      if (r.stderr) why = r.stderr.trim().split("\n").pop()!;
    }
    return why;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Synthetic sigmoid scores (the default preset's workload, 256 experts). */
function workloadScores(
  tokens: number,
  experts: number,
  batches: number,
): ScoreMatrix[] {
  const w = syntheticWorkload({
    seed: 1,
    steps: batches,
    layers: 1,
    tokens,
    experts,
    gate: "sigmoid",
    clusters: 48,
    zipf: 1,
    preferred: 6,
    affinity: 1,
    popularity: 0.2,
    noise: 1,
    drift: 0.02,
    offset: -3.5,
  });
  return Array.from({ length: batches }, (_, s) => {
    const shared = sharedScores(tokens, experts);
    shared.data.set(w.scores(s, 0).data);
    return shared;
  });
}

const GROUPS = { groups: 8, topGroups: 4 } as const;

/**
 * Routing at V3's shape: grouped against ungrouped, threads against a
 * streaming pass, the TypeScript kernel (host "cpu", the reference) and
 * the WebAssembly SIMD kernel (host "wasm") measured in the same rounds.
 */
function nearTheLimit(): void {
  const E = 256, k = 8;
  const ts: (string | number)[][] = [];
  const wasm: (string | number)[][] = [];
  for (const N of [16384, 262144]) {
    const [s] = workloadScores(N, E, 1);
    // The same scores on a plain SharedArrayBuffer: each worker copies
    // blocks of rows into its own WebAssembly memory.
    const plain: ScoreMatrix = {
      ...s,
      data: new Float32Array(new SharedArrayBuffer(s.data.byteLength)),
    };
    plain.data.set(s.data);
    const rng = new Rng(3);
    const bias = Float64Array.from(
      { length: E },
      () => (rng.uniform() - 0.5) * 1e-2,
    );
    const rounds = N > 100000 ? 5 : 9;
    // The wasm threads write into a routing in the same shared memory,
    // reused from call to call (as a stream of batches would).
    const out = sharedRouting(N, k, E);
    const np1 = numpyMs(s, rounds);
    const cpu = { k, bias, host: "cpu" } as const;
    const simd = { k, bias, host: "wasm" } as const;
    const t = alternating({
      sum: () => void streamSum(s.data),
      route: () => void route(s, cpu),
      grouped: () => void route(s, { ...cpu, ...GROUPS }),
      parallel: () => void routeParallel(s, { ...cpu, threads: 2 }),
      parallelGrouped: () =>
        void routeParallel(s, { ...cpu, threads: 2, ...GROUPS }),
      wasmRoute: () => void route(s, simd),
      wasmGrouped: () => void route(s, { ...simd, ...GROUPS }),
      wasmParallel: () => void routeParallel(s, { ...simd, threads: 2, out }),
      wasmParallelCopied: () =>
        void routeParallel(plain, { ...simd, threads: 2 }),
      wasmParallelGrouped: () =>
        void routeParallel(s, { ...simd, threads: 2, ...GROUPS, out }),
    }, rounds);
    // Grouped against ungrouped on the WebAssembly kernel, call by call.
    const groupedRatio = pairedRatio(
      () => void route(s, simd),
      () => void route(s, { ...simd, ...GROUPS }),
      N > 100000 ? 21 : 41,
    );
    // The same on routeParallel's two threads, into the same shared routing.
    const parallelGroupedRatio = pairedRatio(
      () => void routeParallel(s, { ...simd, threads: 2, out }),
      () => void routeParallel(s, { ...simd, threads: 2, ...GROUPS, out }),
      N > 100000 ? 21 : 41,
    );
    const parallelCpu = cpuMs(
      () => void routeParallel(s, { ...simd, threads: 2, out }),
      rounds,
    );
    const np2 = numpyMs(s, rounds);
    const np = typeof np1 === "number" && typeof np2 === "number"
      ? Math.min(np1, np2)
      : typeof np1 === "number"
      ? np1
      : np2;
    const vsNumpy = (ms: number) =>
      typeof np === "number" ? (ms / np).toFixed(1) : "n/a";
    const size = `${N} x ${E}`;
    const npCell = typeof np === "number" ? np.toFixed(1) : `n/a (${np})`;
    ts.push([
      size,
      t.sum.toFixed(1),
      npCell,
      t.route.toFixed(1),
      t.grouped.toFixed(1),
      (t.grouped / t.route).toFixed(2),
      t.parallel.toFixed(1),
      t.parallelGrouped.toFixed(1),
      vsNumpy(t.parallel),
      vsNumpy(t.parallelGrouped),
      (t.parallel / t.sum).toFixed(2),
    ]);
    wasm.push([
      size,
      npCell,
      t.wasmRoute.toFixed(1),
      t.wasmGrouped.toFixed(1),
      (t.wasmGrouped / t.wasmRoute).toFixed(2),
      `${groupedRatio.median.toFixed(2)} [${groupedRatio.low.toFixed(2)}-${
        groupedRatio.high.toFixed(2)
      }]`,
      (t.wasmRoute / t.route).toFixed(2),
      (t.wasmGrouped / t.grouped).toFixed(2),
      t.wasmParallel.toFixed(1),
      t.wasmParallelGrouped.toFixed(1),
      `${parallelGroupedRatio.median.toFixed(2)} [${
        parallelGroupedRatio.low.toFixed(2)
      }-${parallelGroupedRatio.high.toFixed(2)}]`,
      vsNumpy(t.wasmParallel),
      vsNumpy(t.wasmParallelGrouped),
      t.wasmParallelCopied.toFixed(1),
      vsNumpy(t.wasmParallelCopied),
      parallelCpu.toFixed(1),
      vsNumpy(parallelCpu / 2),
    ]);
  }
  console.log(
    "\nRouting near the memory limit: k = 8, biased, synthetic sigmoid scores; " +
      "grouped = 8 groups, 4 kept; parallel = routeParallel on 2 threads; " +
      "sum = one streaming pass on one thread (TypeScript; numpy `sum`). " +
      'TypeScript kernels (host "cpu", the reference).\n',
  );
  printTable([
    "size",
    "TS sum ms",
    "numpy sum ms",
    "route ms",
    "grouped ms",
    "grouped / route",
    "parallel ms",
    "parallel grouped ms",
    "parallel / numpy",
    "parallel grouped / numpy",
    "parallel / TS sum",
  ], ts);
  console.log(
    "\nThe same batches, same rounds, WebAssembly SIMD kernel (host " +
      '"wasm": the same answers bit for bit); routeParallel\'s threads each ' +
      "run it on their own instance, on scores from sharedScores (a shared " +
      "WebAssembly memory every instance reads in place), writing the " +
      "experts and weights in place into a routing from sharedRouting " +
      "(the same memory), reused from call to call; copied = the same " +
      "scores on a plain SharedArrayBuffer, which each thread copies into " +
      "its instance's memory block by block, and a fresh routing, copied " +
      "out at the end; vs TS = against the " +
      "TypeScript kernel above. grouped / route, paired: the median of " +
      "the ratios of adjacent calls (21 rounds at 262144 x 256, 41 at " +
      "16384 x 256), in brackets the lowest and highest; parallel grouped " +
      "/ parallel, paired: the same for routeParallel on 2 threads. " +
      "parallel CPU = CPU time of one call, both " +
      "threads together: half of it over numpy is the ratio two free cores " +
      "would give where other work shares this machine's cores.\n",
  );
  printTable([
    "size",
    "numpy sum ms",
    "wasm route ms",
    "wasm grouped ms",
    "grouped / route",
    "grouped / route, paired",
    "route vs TS",
    "grouped vs TS",
    "parallel ms",
    "parallel grouped ms",
    "parallel grouped / parallel, paired",
    "parallel / numpy",
    "parallel grouped / numpy",
    "parallel copied ms",
    "parallel copied / numpy",
    "parallel CPU ms",
    "parallel CPU / 2 / numpy",
  ], wasm);
}

/**
 * Times the balancers' ops on `host`'s kernels at N x 256, k = 8, per
 * batch, alternating with a one-thread TypeScript streaming pass (`sum`)
 * and the `extra` cases, in one run: a BIP round (steady state, prices
 * carried), a Quantile batch (route + step; grouped too), one and six
 * Sinkhorn iterations.
 */
function timeBalancerOps(
  N: number,
  host: "cpu" | "wasm",
  extra: (batches: ScoreMatrix[]) => Record<string, () => void> = () => ({}),
): Record<string, number> {
  const E = 256, k = 8;
  const batches = workloadScores(N, E, 4);
  const C = capacityOf(N, k, E, 1);
  const bipRound = host === "cpu"
    ? requireKernel(bipRoundOp, "cpu")
    : hostKernel(bipRoundOp, "wasm");
  const sinkhorn = host === "cpu"
    ? requireKernel(sinkhornOp, "cpu")
    : hostKernel(sinkhornOp, "wasm");
  const scratch = dualScratch(N, E, k);
  const bounds = columnBounds(E);
  const prices = new Float64Array(E);
  const skScratch = host === "cpu" ? sinkhornScratch(N, E) : undefined;
  const ctx = { layers: 1, experts: E, k, normalize: true, host };
  const quantile = createBalancer("quantile", ctx);
  const quantileG = createBalancer("quantile", { ...ctx, ...GROUPS });
  let step = 0;
  const next = () => batches[step++ % batches.length];
  const round = () =>
    void bipRound.run({
      scores: next(),
      k,
      capacity: C,
      prices,
      rounds: 1,
      clip: true,
      scratch,
      bounds,
    }, {});
  // The prices carry from batch to batch, as in the balancers, so the
  // rounds are timed in their steady state.
  for (let w = 0; w < 8; w++) round();
  const sinkhornRun = (iterations: number) => () =>
    void sinkhorn.run({
      scores: batches[0],
      tolerance: 0,
      maxIterations: iterations,
      temperature: 1,
      logScale: new Float64Array(E),
      ...(skScratch ? { scratch: skScratch } : {}),
    }, {});
  return alternating({
    sum: () => void streamSum(batches[0].data),
    ...extra(batches),
    bip: round,
    quantile: () => {
      const s = next();
      quantile.update(0, s, quantile.route(0, s));
    },
    quantileGrouped: () => {
      const s = next();
      quantileG.update(0, s, quantileG.route(0, s));
    },
    sinkhorn1: sinkhornRun(1),
    sinkhorn6: sinkhornRun(6),
  }, N > 100000 ? 3 : 7);
}

/** Per-batch cost of the balancers' ops as multiples of a streaming pass. */
function balancerOps(): void {
  const E = 256;
  const rows: (string | number)[][] = [];
  for (const N of [16384, 262144]) {
    const t = timeBalancerOps(N, "cpu");
    const perStep = (t.sinkhorn6 - t.sinkhorn1) / 5;
    const x = (ms: number) => (ms / t.sum).toFixed(1);
    rows.push([
      `${N} x ${E}`,
      t.sum.toFixed(1),
      `${t.bip.toFixed(1)} (${x(t.bip)})`,
      `${t.quantile.toFixed(1)} (${x(t.quantile)})`,
      `${t.quantileGrouped.toFixed(1)} (${x(t.quantileGrouped)})`,
      `${perStep.toFixed(1)} (${x(perStep)})`,
      `${t.sinkhorn1.toFixed(1)} (${x(t.sinkhorn1)})`,
    ]);
  }
  console.log(
    "\nBalancer ops per batch, ms (multiple of one TypeScript streaming pass " +
      "over the same scores): a BIP round (steady state, prices carried), a " +
      "Quantile batch (route + step; grouped: 8 groups, 4 kept), a Sinkhorn " +
      "step, and Sinkhorn's setup (exp of the scores) with its first step.\n",
  );
  printTable([
    "size",
    "TS sum ms",
    "BIP round",
    "Quantile route + step",
    "Quantile grouped",
    "Sinkhorn step",
    "Sinkhorn setup + 1 step",
  ], rows);
}

/**
 * The balancers' ops on the WebAssembly SIMD kernels (backend "wasm", the
 * same prices bit for bit), per batch, as multiples of a one-thread
 * TypeScript streaming pass and of a WebAssembly one (`moelab_sum_f32`,
 * scores already in the instance's memory), measured in the same run.
 */
function wasmBalancerOps(): void {
  const rt = wasmRuntime();
  if (rt === undefined) {
    console.log("\nWebAssembly balancer ops: skipped (no WebAssembly SIMD).");
    return;
  }
  const E = 256;
  const rows: (string | number)[][] = [];
  for (const N of [16384, 262144]) {
    const t = timeBalancerOps(N, "wasm", (batches) => {
      const sumAt = rt.reserve("bench.sum", N * E * 4);
      rt.f32(sumAt, N * E).set(batches[0].data);
      return {
        wasmSum: () => void rt.exports.moelab_sum_f32(sumAt, N * E),
      };
    });
    const perStep = (t.sinkhorn6 - t.sinkhorn1) / 5;
    const x = (ms: number) =>
      `${ms.toFixed(1)} (${(ms / t.sum).toFixed(1)}; ${
        (ms / t.wasmSum).toFixed(0)
      })`;
    rows.push([
      `${N} x ${E}`,
      t.sum.toFixed(1),
      t.wasmSum.toFixed(2),
      x(t.bip),
      x(t.quantile),
      x(t.quantileGrouped),
      x(perStep),
      x(t.sinkhorn1),
    ]);
  }
  console.log(
    '\nThe same ops on the WebAssembly SIMD kernels (host "wasm"; the same ' +
      "prices bit for bit), ms (multiple of one TypeScript streaming pass; " +
      "of one WebAssembly SIMD pass over scores in its memory). Ungrouped, " +
      "Quantile's route is its WebAssembly route that keeps a[i]; grouped, " +
      "the route op's on that host.\n",
  );
  printTable([
    "size",
    "TS sum ms",
    "wasm sum ms",
    "BIP round",
    "Quantile route + step",
    "Quantile grouped",
    "Sinkhorn step",
    "Sinkhorn setup + 1 step",
  ], rows);
}

/** Runs the suite. */
export function run(): Promise<void> {
  const rows: (string | number)[][] = [];
  for (const [tokens, experts, k] of [[4096, 64, 6], [16384, 256, 8]]) {
    const rng = new Rng(7);
    const data = new Float32Array(tokens * experts);
    for (let i = 0; i < data.length; i++) data[i] = rng.uniform();
    const scores = { data, tokens, experts };
    const fast = medianMs(() => void route(scores, { k, host: "cpu" }));
    const slow = medianMs(() => void sortTopK(data, tokens, experts, k), 3, 1);
    rows.push([
      `${tokens} x ${experts}, k=${k}`,
      fast.toFixed(2),
      ((tokens * experts) / fast / 1e3).toFixed(1),
      slow.toFixed(2),
      (slow / fast).toFixed(1),
    ]);
  }
  printTable(
    ["size", "route ms", "Mscores/s", "sort baseline ms", "speed-up"],
    rows,
  );
  nearTheLimit();
  balancerOps();
  wasmBalancerOps();
  return Promise.resolve();
}
