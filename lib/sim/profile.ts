// Where a simulation's time goes: the inner loop's stages per thread, each
// method's route and update, and the stages after the loop.

/**
 * The stages of the simulator's inner loop, besides the methods' own
 * `route` and `update`: drawing the batch's scores, the greedy reference
 * (when no method is greedy), the per-batch metrics (on the CPU backends
 * one pass over the scores for every method, which also gives the
 * selected score sums of the retention and the gap), recording the rows
 * of the long tables, the optimality gap (on its sampled steps: the
 * exact optimum, and on the WebGPU backend the CPU methods' sums), and on
 * the WebGPU backend the wait for the step's GPU work and its report
 * (`device`; 0 on the CPU backends).
 */
export const LOOP_STAGES: readonly LoopStage[] = [
  "scores",
  "reference",
  "metrics",
  "record",
  "gap",
  "device",
];

/**
 * A stage of the simulator's step loop besides the methods' own `route`
 * and `update`: drawing the scores, the retention reference, the batch
 * metrics, recording the table rows, the optimality gap's optima and sums,
 * waiting for the GPU (WebGPU backend).
 */
export type LoopStage =
  | "scores"
  | "reference"
  | "metrics"
  | "record"
  | "gap"
  | "device";

/** The position of each stage in {@linkcode LOOP_STAGES}. */
export const LOOP_STAGE: Readonly<Record<LoopStage, number>> = Object.freeze(
  Object.fromEntries(LOOP_STAGES.map((s, i) => [s, i])) as Record<
    LoopStage,
    number
  >,
);

/**
 * Where a run's time went, in milliseconds. Loop stages and methods are
 * summed over the threads that ran the layers (thread-milliseconds: with
 * two threads they add up to about twice the loop's wall time).
 */
export interface SimProfile {
  /** Worker threads the layers ran on (1: the calling thread). */
  threads: number;
  /** Wall time of the step loop, all threads at once. */
  loopMs: number;
  /**
   * CPU time of the process during the step loop, all threads (NaN where
   * the runtime does not say): on a machine shared with other work, the
   * thread-milliseconds of the stages include time waiting for a core, and
   * their shares of this are the stages' CPU time. With the EP stage on
   * several threads, it includes the parts that started before the last
   * thread's loop was done.
   */
  loopCpuMs: number;
  /** Thread-milliseconds per loop stage ({@linkcode LOOP_STAGES}). */
  stages: Record<LoopStage, number>;
  /** Thread-milliseconds per method: its `route` and its `update`. */
  methods: { method: string; routeMs: number; updateMs: number }[];
  /** Summaries from the tables. */
  summarizeMs: number;
  /**
   * The expert-parallel stage, wall time after the step loop: on this
   * thread alone, or on `epThreads` threads, each placing the layers its
   * loop thread ran as soon as that loop is done (so a part may start
   * while another thread still routes: what it did then is not counted
   * here), then merged on this thread.
   */
  epMs: number;
  /** Threads the expert-parallel stage ran on. */
  epThreads: number;
  /**
   * Bytes of routing scores the step loop went through: steps x layers x
   * tokens x experts float32 values, each batch counted once (however many
   * methods read it). Over `loopMs`, the run's throughput in scores.
   */
  scoreBytes: number;
  /**
   * The process's peak resident memory in MiB once the loop, summaries
   * and EP stage are done (before any output is written; NaN where the
   * runtime does not say).
   */
  peakRssMiB: number;
}

/** The process's CPU time so far in milliseconds (user + system), or NaN. */
export function processCpuMs(): number {
  const p = (globalThis as {
    process?: { cpuUsage?: () => { user: number; system: number } };
  }).process;
  const u = p?.cpuUsage?.();
  return u ? (u.user + u.system) / 1000 : NaN;
}

/** The process's peak resident memory so far in MiB (getrusage's maxrss), or NaN. */
export function processPeakRssMiB(): number {
  const p = (globalThis as {
    process?: { resourceUsage?: () => { maxRSS: number } };
  }).process;
  const kb = p?.resourceUsage?.().maxRSS;
  return typeof kb === "number" && kb > 0 ? kb / 1024 : NaN;
}

/**
 * Formats a profile as a fixed-width text table: seconds per stage, their
 * share of the loop, and their estimated CPU seconds (the share of the
 * loop's CPU time).
 */
export function formatProfile(
  p: SimProfile,
  extra: [name: string, ms: number][] = [],
): string {
  const rows: [string, number][] = [
    ...p.methods.flatMap((m): [string, number][] => [
      [`route: ${m.method}`, m.routeMs],
      [`update: ${m.method}`, m.updateMs],
    ]),
    ...LOOP_STAGES.map((s): [string, number] => [s, p.stages[s]]),
  ];
  const loopSum = rows.reduce((a, [, ms]) => a + ms, 0);
  const after: [string, number][] = [
    ["summaries", p.summarizeMs],
    [
      p.epThreads > 1 ? `ep stage (${p.epThreads} threads)` : "ep stage",
      p.epMs,
    ],
    ...extra,
  ];
  const width = Math.max(...[...rows, ...after].map(([n]) => n.length), 24);
  const cpu = Number.isFinite(p.loopCpuMs) && loopSum > 0;
  const line = (name: string, ms: number, share?: number) =>
    `${name.padEnd(width)}  ${(ms / 1000).toFixed(2).padStart(9)} s${
      share === undefined
        ? ""
        : `  ${(100 * share).toFixed(1).padStart(5)}%${
          cpu
            ? `  ${(share * p.loopCpuMs / 1000).toFixed(2).padStart(9)} CPU s`
            : ""
        }`
    }`;
  return [
    `step loop: ${(p.loopMs / 1000).toFixed(2)} s wall on ${p.threads} thread${
      p.threads === 1 ? "" : "s"
    }, ${(loopSum / 1000).toFixed(2)} thread-seconds, ${
      (p.loopCpuMs / 1000).toFixed(2)
    } CPU seconds (per stage: thread-seconds, share, CPU seconds by share):`,
    ...rows.map(([n, ms]) => line(n, ms, loopSum > 0 ? ms / loopSum : 0)),
    `scores: ${(p.scoreBytes / 1e9).toPrecision(3)} GB through the loop, ${
      (p.scoreBytes / 1e6 / p.loopMs).toPrecision(3)
    } GB/s of its wall time`,
    "after the loop (wall):",
    ...after.map(([n, ms]) => line(n, ms)),
    ...(Number.isFinite(p.peakRssMiB)
      ? [
        `peak RSS once the loop, summaries and EP stage were done: ${
          p.peakRssMiB.toFixed(0)
        } MiB`,
      ]
      : []),
  ].join("\n");
}
