import { checkInteger } from "../validate.ts";
import {
  allocateTables,
  tablesOf,
  type TableValues,
  tableValues,
} from "./tables.ts";
import { BATCH_METRICS } from "../metrics/batch_metrics.ts";
import { LOOP_STAGES, processCpuMs } from "./profile.ts";
import { type PreparedRun, prepareRun } from "./prepare_run.ts";
import { finishSimulation, runSimulation, type SimResult } from "./run.ts";
import type { HostBackend } from "../ops/host.ts";
import type { LayerRun } from "./_simulate.ts";
import type { WorkerReply, WorkerRequest } from "./_sim_worker.ts";
import type { EpWorkerReply, EpWorkerRequest } from "./_ep_worker.ts";
import { WorkerGroup } from "./_workers.ts";
import { EP_TABLE_ROWS } from "./ep_stage.ts";

/** Options of {@linkcode runSimulationParallel}. */
export interface ParallelRunOptions {
  /**
   * Worker threads, each running a share of the layers. Default: the
   * number of logical cores (`navigator.hardwareConcurrency`), at most the
   * number of layers. `1` runs {@linkcode runSimulation} on this thread, as
   * does a prepared run of a workload object (which cannot travel).
   */
  threads?: number;
  /** Called as steps complete on every thread, with `(stepsDone, steps)`. */
  onProgress?: (done: number, steps: number) => void;
  /** The CPU kernels, as {@linkcode runSimulation}'s `host`. Default `"wasm"`. */
  host?: HostBackend;
}

/**
 * {@linkcode runSimulation} with the layers spread over worker threads.
 * Layers are independent (every balancer keeps per-layer state, and the
 * scores of a layer depend only on the seed, step and layer), so the
 * result is identical to the sequential run's, row for row, except the
 * wall times, which are summed over the threads. The run is prepared here,
 * once; each worker rebuilds the workload from the prepared run's source
 * (a recording's logits are shared, not read again) and holds the rows of
 * its own layers only. The expert-parallel stage (`ep`) then runs on as
 * many threads, each placing the same layers in a worker of its own as
 * soon as their loop is done; its parts are merged in layer order, so its
 * result is the sequential run's too.
 *
 * @param config A partial configuration (see {@linkcode resolveSimConfig}),
 * or a {@linkcode PreparedRun}.
 * @param options Threads and a progress callback.
 * @returns The same {@linkcode SimResult} as {@linkcode runSimulation}.
 * @throws {TypeError | RangeError | SyntaxError} If the configuration or
 * its recording is invalid (checked before any worker starts).
 *
 * @example Two threads, the same numbers
 * ```ts
 * import { runSimulation, runSimulationParallel } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const config = { steps: 6, layers: 2, tokens: 256, experts: 8, topK: 2 };
 * const a = await runSimulationParallel(config, { threads: 2 });
 * const b = runSimulation(config);
 * assert.deepEqual(a.tables.loads.load, b.tables.loads.load);
 * assert.equal(a.methods[1].maxVioGlobal, b.methods[1].maxVioGlobal);
 * ```
 */
export async function runSimulationParallel(
  config: unknown,
  options: ParallelRunOptions = {},
): Promise<SimResult> {
  // Everything is checked here, before a worker starts, so that bad input
  // fails with its own error class and nothing runs.
  const run = prepareRun(config);
  const cfg = run.config;
  const cores = typeof navigator !== "undefined" &&
      navigator.hardwareConcurrency > 0
    ? navigator.hardwareConcurrency
    : 1;
  const threads = Math.min(
    cfg.layers,
    checkInteger("threads", options.threads ?? cores, 1),
  );
  if (threads === 1 || run.source.kind === "given") {
    return runSimulation(run, {
      onProgress: options.onProgress,
      host: options.host,
    });
  }
  // Workers fill one set of full tables on shared memory where the runtime
  // has it (no copy of every row at the end); else they send their rows.
  const M = run.specs.length;
  const shared = typeof SharedArrayBuffer === "function"
    ? sharedTables(cfg.steps, cfg.layers, M, cfg.experts)
    : null;
  const groups = Array.from({ length: threads }, () => [] as number[]);
  for (let l = 0; l < cfg.layers; l++) groups[l % threads].push(l);
  const done = new Int32Array(threads);
  let reported = 0;
  const t0 = performance.now(), cpu0 = processCpuMs();
  // When each thread's loop is done, and the process's CPU time then.
  const loopEnd = new Float64Array(threads);
  let loopCpuMs = NaN;
  let loopsLeft = threads;
  // Each thread's layers: the loop in one worker, then, as soon as that
  // worker is gone (with its memory), the EP stage's part for the same
  // layers in a fresh worker that loads the placement modules only, their
  // loads read from the shared table. A thread whose layers finish first
  // (61 layers on 2 threads: 31 and 30) places them while the other one
  // still routes. Without shared tables the EP stage runs on this thread
  // (finishSimulation).
  const epOnThreads = cfg.ep !== null && shared !== null;
  // Where one worker fails, the others are stopped with it.
  const pool = new WorkerGroup();
  const chains = await Promise.all(
    groups.map(async (layers, w) => {
      const loop = await pool.run<WorkerRequest, WorkerReply, "done">(
        "./_sim_worker.ts",
        {
          config: cfg,
          specs: run.specs,
          source: run.source,
          layers,
          shared,
          host: options.host ?? "wasm",
        },
        "done",
        (reply) => {
          if (reply.kind !== "progress") return;
          done[w] = reply.done;
          const least = Math.min(...done);
          if (least > reported) {
            reported = least;
            options.onProgress?.(least, cfg.steps);
          }
        },
      );
      loopEnd[w] = performance.now();
      if (--loopsLeft === 0) loopCpuMs = processCpuMs() - cpu0;
      if (!epOnThreads) return { loop, end: loopEnd[w] };
      const { part } = await pool.run<EpWorkerRequest, EpWorkerReply, "part">(
        "./_ep_worker.ts",
        {
          config: cfg,
          methods: M,
          layers,
          loads: shared!.values.load,
          tableRows: EP_TABLE_ROWS,
        },
        "part",
      );
      return { loop, part, end: performance.now() };
    }),
  ).finally(() => pool.close());
  const runs = chains.map((c) => c.loop);
  const loopDone = Math.max(...loopEnd);
  const loopMs = loopDone - t0;
  // The EP stage's wall time after the loop: until its last part is done.
  const ep = epOnThreads
    ? {
      parts: chains.map((c) => c.part!),
      ms: Math.max(0, ...chains.map((c) => c.end - loopDone)),
      threads,
    }
    : undefined;
  return finishSimulation(
    run,
    runs[0].causal,
    shared ? sharedRun(run, shared, runs) : mergeRuns(run, runs),
    { threads, loopMs, loopCpuMs },
    ep,
  );
}

/** Value columns and gaps of full tables on shared memory, gaps NaN. */
function sharedTables(
  steps: number,
  layers: number,
  methods: number,
  experts: number,
): { values: TableValues; gaps: Float64Array } {
  const loadRows = steps * layers * methods * experts;
  const metricRows = steps * layers * methods * BATCH_METRICS.length;
  const on = <T>(
    Array: { new (b: SharedArrayBuffer): T; BYTES_PER_ELEMENT: number },
    n: number,
  ) => new Array(new SharedArrayBuffer(n * Array.BYTES_PER_ELEMENT));
  const gaps = on(Float64Array, steps * layers * methods).fill(NaN);
  return {
    values: {
      load: on(Int32Array, loadRows),
      bias: on(Float64Array, loadRows),
      value: on(Float64Array, metricRows),
    },
    gaps,
  };
}

/** The run of workers that filled the shared tables: their times, summed. */
function sharedRun(
  run: PreparedRun,
  shared: { values: TableValues; gaps: Float64Array },
  parts: { run: Omit<LayerRun, "tables"> }[],
): LayerRun {
  const { steps, layers, experts: E } = run.config;
  const M = run.specs.length;
  const wallMs = new Float64Array(M), routeMs = new Float64Array(M);
  const stageMs = new Float64Array(LOOP_STAGES.length);
  for (const { run: part } of parts) {
    for (let m = 0; m < M; m++) {
      wallMs[m] += part.wallMs[m];
      routeMs[m] += part.routeMs[m];
    }
    for (let i = 0; i < stageMs.length; i++) stageMs[i] += part.stageMs[i];
  }
  const all = Array.from({ length: layers }, (_, l) => l);
  return {
    layers: all,
    tables: tablesOf(steps, all, M, E, shared.values),
    wallMs,
    routeMs,
    stageMs,
    gaps: shared.gaps,
    optimumSteps: parts[0].run.optimumSteps,
  };
}

/** Copies each worker's layers into one set of full tables. */
function mergeRuns(
  run: PreparedRun,
  parts: { run: Omit<LayerRun, "tables">; values: TableValues | null }[],
): LayerRun {
  const { steps, layers, experts: E } = run.config;
  const M = run.specs.length;
  const tables = allocateTables(steps, layers, M, E);
  const target = tableValues(tables);
  const Q = target.value.length / (steps * layers * M);
  const gaps = new Float64Array(steps * layers * M);
  const wallMs = new Float64Array(M), routeMs = new Float64Array(M);
  const stageMs = new Float64Array(LOOP_STAGES.length);
  for (const { run: part, values } of parts) {
    if (!values) throw new TypeError("a worker kept its rows on shared memory");
    for (let m = 0; m < M; m++) {
      wallMs[m] += part.wallMs[m];
      routeMs[m] += part.routeMs[m];
    }
    for (let i = 0; i < stageMs.length; i++) stageMs[i] += part.stageMs[i];
    const held = part.layers.length;
    for (let step = 0; step < steps; step++) {
      for (let h = 0; h < held; h++) {
        const from = step * held + h;
        const to = step * layers + part.layers[h];
        copyCell(target.load, values.load, from, to, M * E);
        copyCell(target.bias, values.bias, from, to, M * E);
        copyCell(target.value, values.value, from, to, M * Q);
        gaps.set(part.gaps.subarray(from * M, (from + 1) * M), to * M);
      }
    }
  }
  return {
    layers: Array.from({ length: layers }, (_, l) => l),
    tables,
    wallMs,
    routeMs,
    stageMs,
    gaps,
    optimumSteps: parts[0].run.optimumSteps,
  };
}

/** Copies the `size` rows of cell `from` of `source` to cell `to` of `target`. */
function copyCell<T extends Int32Array | Float64Array>(
  target: T,
  source: T,
  from: number,
  to: number,
  size: number,
): void {
  target.set(source.subarray(from * size, (from + 1) * size), to * size);
}
