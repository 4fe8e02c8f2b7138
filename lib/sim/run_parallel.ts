import { checkInteger } from "../_validate.ts";
import { parseMethodSpec } from "../route/registry.ts";
import { resolveSimConfig } from "./config.ts";
import { allocateTables, type LayerRun } from "./_simulate.ts";
import {
  finishSimulation,
  loadWorkload,
  runSimulation,
  type SimResult,
} from "./run.ts";
import type { WorkerReply, WorkerRequest } from "./_sim_worker.ts";

/** Options of {@linkcode runSimulationParallel}. */
export interface ParallelRunOptions {
  /**
   * Worker threads, each running a share of the layers. Default: the
   * number of logical cores (`navigator.hardwareConcurrency`), at most the
   * number of layers. `1` runs {@linkcode runSimulation} on this thread.
   */
  threads?: number;
  /** Called as steps complete on every thread, with `(stepsDone, steps)`. */
  onProgress?: (done: number, steps: number) => void;
}

const ERRORS: Record<string, new (message: string) => Error> = {
  TypeError,
  RangeError,
  SyntaxError,
};

/**
 * {@linkcode runSimulation} with the layers spread over worker threads.
 * Layers are independent (every balancer keeps per-layer state, and the
 * scores of a layer depend only on the seed, step and layer), so the
 * result is identical to the sequential run's, row for row, except the
 * wall times, which are summed over the threads.
 *
 * @param config A partial configuration (see {@linkcode resolveSimConfig}).
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
  const loaded = loadWorkload(resolveSimConfig(config));
  const cfg = loaded.config;
  const cores = typeof navigator !== "undefined" &&
      navigator.hardwareConcurrency > 0
    ? navigator.hardwareConcurrency
    : 1;
  const threads = Math.min(
    cfg.layers,
    checkInteger("threads", options.threads ?? cores, 1),
  );
  if (threads === 1) {
    return runSimulation(cfg, {
      workload: loaded.workload,
      onProgress: options.onProgress,
    });
  }
  const groups = Array.from({ length: threads }, () => [] as number[]);
  for (let l = 0; l < cfg.layers; l++) groups[l % threads].push(l);
  const done = new Int32Array(threads);
  let reported = 0;
  const runs = await Promise.all(
    groups.map((layers, w) =>
      new Promise<Extract<WorkerReply, { kind: "done" }>>((resolve, reject) => {
        const worker = new Worker(
          new URL("./_sim_worker.ts", import.meta.url).href,
          { type: "module" },
        );
        worker.onmessage = (e: MessageEvent<WorkerReply>) => {
          const reply = e.data;
          if (reply.kind === "progress") {
            done[w] = reply.done;
            const least = Math.min(...done);
            if (least > reported) {
              reported = least;
              options.onProgress?.(least, cfg.steps);
            }
            return;
          }
          worker.terminate();
          if (reply.kind === "done") resolve(reply);
          else reject(new (ERRORS[reply.name] ?? Error)(reply.message));
        };
        worker.onerror = (e: ErrorEvent) => {
          e.preventDefault();
          worker.terminate();
          reject(new Error(`simulation worker failed: ${e.message}`));
        };
        worker.postMessage({ config: cfg, layers } satisfies WorkerRequest);
      })
    ),
  );
  return finishSimulation(
    cfg,
    runs[0].workload,
    cfg.methods.map(parseMethodSpec),
    runs[0].causal,
    mergeRuns(cfg, groups, runs.map((r) => r.run)),
  );
}

/** Copies each worker's layers into one set of full tables. */
function mergeRuns(
  cfg: { steps: number; layers: number; methods: unknown[]; experts: number },
  groups: number[][],
  runs: LayerRun[],
): LayerRun {
  const { steps, layers, experts: E } = cfg;
  const M = cfg.methods.length;
  const tables = allocateTables(steps, layers, M, E);
  const Q = tables.metrics.value.length / (steps * layers * M);
  const gaps = new Float64Array(steps * layers * M);
  const wallMs = new Float64Array(M);
  runs.forEach((run, w) => {
    for (let m = 0; m < M; m++) wallMs[m] += run.wallMs[m];
    for (let step = 0; step < steps; step++) {
      for (const layer of groups[w]) {
        const cell = step * layers + layer;
        copyRows(tables.loads, run.tables.loads, cell * M * E, M * E);
        copyRows(tables.biases, run.tables.biases, cell * M * E, M * E);
        copyRows(tables.metrics, run.tables.metrics, cell * M * Q, M * Q);
        gaps.set(run.gaps.subarray(cell * M, (cell + 1) * M), cell * M);
      }
    }
  });
  return { tables, wallMs, gaps, optimumSteps: runs[0].optimumSteps };
}

function copyRows<T extends Record<string, Int32Array | Float64Array>>(
  to: T,
  from: T,
  start: number,
  count: number,
): void {
  for (const key of Object.keys(to)) {
    to[key].set(from[key].subarray(start, start + count), start);
  }
}
