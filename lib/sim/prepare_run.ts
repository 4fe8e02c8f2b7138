import { readFileSync } from "node:fs";
import { withMessage } from "../validate.ts";
import type { Gate } from "../scores/gate.ts";
import { type NpyArray, parseNpy } from "../workload/npy.ts";
import { replayWorkload } from "../workload/replay.ts";
import {
  type SyntheticOptions,
  syntheticWorkload,
} from "../workload/synthetic.ts";
import type { Workload } from "../workload/workload.ts";
import type { HostBackend } from "../ops/host.ts";
import type { MethodSpec } from "../route/registry.ts";
import {
  resolveConfigWith,
  type SimConfig,
  type WorkloadSizes,
} from "./config.ts";

/**
 * How a worker thread rebuilds a prepared run's workload without reading
 * a file or resolving the configuration again: the synthetic generator's
 * options; a recording's logits (on a `SharedArrayBuffer` where the runtime
 * has one, so that every worker reads the same memory); or `"given"`, a
 * workload object handed to {@linkcode prepareRun}, which cannot travel.
 */
export type WorkloadSource =
  | { kind: "synthetic"; options: SyntheticOptions }
  | { kind: "npy"; logits: NpyArray; gate: Gate }
  | { kind: "given" };

/**
 * A simulation resolved, checked and loaded once: what every runner
 * ({@linkcode runSimulation}, `runSimulationParallel`, `runSimulationOn`)
 * takes instead of a configuration. Frozen.
 */
export interface PreparedRun {
  /** The configuration, resolved, with the sizes of the workload. */
  readonly config: SimConfig;
  /** The methods of `config.methods`, parsed, in order. */
  readonly specs: readonly MethodSpec[];
  /** The scores, by step and layer. */
  readonly workload: Workload;
  /** How a worker rebuilds `workload` ({@linkcode WorkloadSource}). */
  readonly source: WorkloadSource;
}

/** Options of {@linkcode prepareRun}. */
export interface PrepareOptions {
  /**
   * Use this workload instead of the one the configuration describes; the
   * configuration takes its sizes. A run of it cannot be spread over
   * worker threads (a workload object does not travel).
   */
  workload?: Workload;
  /**
   * Reads a `.npy` recording (default: `node:fs`'s `readFileSync`). It is
   * called at most once per prepared run.
   */
  readFile?: (path: string) => Uint8Array;
}

const PREPARED = new WeakSet<object>();

/** Whether `value` is a {@linkcode PreparedRun} made by {@linkcode prepareRun}. */
export function isPreparedRun(value: unknown): value is PreparedRun {
  return typeof value === "object" && value !== null && PREPARED.has(value);
}

/**
 * Resolves and checks a simulation configuration and loads its workload,
 * once: the synthetic generator, or a `.npy` recording of router logits
 * (read once; the configuration then takes the recording's steps, layers,
 * tokens and experts). Keys and the workload are checked before the file
 * is read. A prepared run passed in comes back as it is.
 *
 * @param config A partial configuration (see `resolveSimConfig`), or a
 * {@linkcode PreparedRun}.
 * @param options A workload to use instead, or a file reader.
 * @returns The {@linkcode PreparedRun}.
 * @throws {TypeError} If a field has the wrong type, or `options.workload`
 * comes with a prepared run.
 * @throws {RangeError} If a value is out of range or the recording cannot
 * be read or does not fit the configuration.
 * @throws {SyntaxError} If the `.npy` file is malformed.
 *
 * @example Prepare once, run twice
 * ```ts
 * import { prepareRun, runSimulation } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const run = prepareRun({ steps: 4, layers: 1, tokens: 256, experts: 8, topK: 2 });
 * assert.equal(run.config.steps, 4);
 * assert.deepEqual(run.specs.map((s) => s.label), ["greedy", "loss-free"]);
 * const a = runSimulation(run), b = runSimulation(run);
 * assert.equal(a.config, run.config);
 * assert.deepEqual(a.tables.loads.load, b.tables.loads.load);
 * ```
 */
export function prepareRun(
  config: unknown,
  options: PrepareOptions = {},
): PreparedRun {
  const given = options.workload;
  if (isPreparedRun(config)) {
    if (given !== undefined) {
      throw new TypeError(
        "workload must be given to prepareRun, not with a prepared run",
      );
    }
    return config;
  }
  let recording: { logits: NpyArray; workload: Workload } | undefined;
  const { config: cfg, specs } = resolveConfigWith(config, (w, gate) => {
    if (given !== undefined) return sizesOf(given);
    if (w.kind !== "npy") return undefined;
    const logits = shared(readLogits(w.path, options.readFile));
    recording = { logits, workload: replayWorkload(logits, gate) };
    return sizesOf(recording.workload);
  });
  let workload: Workload, source: WorkloadSource;
  if (given !== undefined) {
    workload = given;
    source = { kind: "given" };
  } else if (recording) {
    workload = recording.workload;
    source = { kind: "npy", logits: recording.logits, gate: cfg.gate };
  } else {
    const { kind: _kind, ...rest } = cfg.workload;
    const synthetic: SyntheticOptions = {
      ...rest,
      seed: cfg.seed,
      steps: cfg.steps,
      layers: cfg.layers,
      tokens: cfg.tokens,
      experts: cfg.experts,
      gate: cfg.gate,
    };
    workload = syntheticWorkload(synthetic);
    source = { kind: "synthetic", options: synthetic };
  }
  const run: PreparedRun = Object.freeze({
    config: Object.freeze(cfg),
    specs: Object.freeze(specs),
    workload,
    source,
  });
  PREPARED.add(run);
  return run;
}

/**
 * The workload a {@linkcode WorkloadSource} describes, built without
 * reading a file (a worker's copy of a prepared run's workload). `host`
 * says where a synthetic workload computes its scores (`"cpu"`: the
 * TypeScript path; default the source's own choice, WebAssembly SIMD);
 * the scores are the same bit for bit.
 *
 * @throws {TypeError} If the source is `"given"`.
 */
export function workloadFromSource(
  source: WorkloadSource,
  host?: HostBackend,
): Workload {
  if (source.kind === "synthetic") {
    return syntheticWorkload(
      host === undefined ? source.options : { ...source.options, host },
    );
  }
  if (source.kind === "npy") return replayWorkload(source.logits, source.gate);
  throw new TypeError(
    "a given workload cannot be rebuilt on another thread: run it on this one",
  );
}

/**
 * The prepared run's workload with its scores computed on `host`: the
 * run's own where that is where they are computed already (WebAssembly
 * SIMD, the default, or a workload given or replayed, whose gate runs in
 * TypeScript), else a synthetic workload rebuilt on the TypeScript path
 * (`"cpu"`: a run on the reference kernels touches no WebAssembly). The
 * same scores either way.
 */
export function workloadOn(run: PreparedRun, host?: HostBackend): Workload {
  if (host !== "cpu" || run.source.kind !== "synthetic") return run.workload;
  return workloadFromSource(run.source, host);
}

/**
 * Builds the workload a configuration describes and returns it with the
 * configuration taking the workload's sizes: {@linkcode prepareRun}'s
 * `workload` and `config`.
 *
 * @throws {RangeError} If the recording does not fit the configuration
 * (for example `topK` larger than its experts).
 * @throws {SyntaxError} If the `.npy` file is malformed.
 */
export function loadWorkload(
  config: unknown,
): { workload: Workload; config: SimConfig } {
  const run = prepareRun(config);
  return { workload: run.workload, config: run.config };
}

/**
 * Checks many configurations as {@linkcode prepareRun} would check each
 * (a sweep's cells, before any runs), recordings included: a `.npy`
 * recording's logits are checked once per gate, and the configuration
 * takes its sizes (`topK` against its experts, say). Builds nothing. The
 * last recording read is kept (one at a time in memory): configurations
 * that name the same recording one after another read it once.
 *
 * @param readFile Reads a recording (default: `node:fs`'s `readFileSync`).
 * @returns `check(config)`: returns the resolved configuration, or throws
 * what `prepareRun(config)` throws.
 */
export function configChecker(
  readFile: (path: string) => Uint8Array = readFileSync,
): (config: unknown) => SimConfig {
  let last: { path: string; logits: NpyArray } | undefined;
  const checked = new Map<string, WorkloadSizes>();
  return (config) =>
    resolveConfigWith(config, (w, gate) => {
      if (w.kind !== "npy") return undefined;
      const key = `${gate}\0${w.path}`;
      let sizes = checked.get(key);
      if (sizes === undefined) {
        if (last?.path !== w.path) {
          last = undefined;
          last = { path: w.path, logits: readLogits(w.path, readFile) };
        }
        sizes = sizesOf(replayWorkload(last.logits, gate));
        checked.set(key, sizes);
      }
      return sizes;
    }).config;
}

function sizesOf(w: Workload): WorkloadSizes {
  return {
    steps: w.steps,
    layers: w.layers,
    tokens: w.tokens,
    experts: w.experts,
  };
}

function readLogits(
  path: string,
  readFile: (path: string) => Uint8Array = readFileSync,
): NpyArray {
  let bytes: Uint8Array;
  try {
    bytes = readFile(path);
  } catch (e) {
    throw new RangeError(
      `scores file cannot be read: ${path} (${(e as Error).message})`,
    );
  }
  try {
    return parseNpy(
      new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length),
    );
  } catch (e) {
    // The same class, the file named: "scores file PATH: .npy dtype ...".
    throw withMessage(e, (m) => `scores file ${path}: ${m}`);
  }
}

/** The logits on shared memory where the runtime has it, for worker threads. */
function shared(array: NpyArray): NpyArray {
  if (typeof SharedArrayBuffer !== "function") return array;
  const data = new Float32Array(new SharedArrayBuffer(array.data.byteLength));
  data.set(array.data);
  return { shape: array.shape, data };
}
