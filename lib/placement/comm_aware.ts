import { checkNumber } from "../validate.ts";
import { ScheduleFlow } from "./_maxflow.ts";
import { loadedHighs } from "../solve/lp_solvers.ts";
import { roundLp } from "./lp_scheduler.ts";
import { checkPlacement, type Placement } from "./placement.ts";
import type { Schedule } from "./types.ts";
import { checkInput } from "./_checks.ts";

/** A communication-aware schedule: the schedule plus the LP's terms. */
export interface CommAwareSchedule extends Schedule {
  /** LP value of `comp + alpha * comm`. */
  objective: number;
  /** LP value of `comm = max_g max(send_g, recv_g)`, tokens. */
  comm: number;
}

/**
 * The communication-aware MicroMoE schedule: minimise
 * `comp + alpha * comm` with `comp = max_g` tokens computed on `g` and
 * `comm = max_g max(send_g, recv_g)` under locality routing (tokens kept
 * on their GPU up to the local replica's share, {@linkcode dispatchTokens}).
 * An LP with, per replica `r` of expert `e` on GPU `g`, its tokens `x_r`
 * and the tokens it keeps locally `k_r <= min(x_r, input[e][g])`:
 * `send_g = sum_e input[e][g] - sum_{r on g} k_r`,
 * `recv_g = sum_{r on g} (x_r - k_r)`. Solved by HiGHS (after
 * {@linkcode loadLpSolvers}); integer replica loads as in
 * {@linkcode scheduleTokens}. With `alpha = 0` it is the plain LP.
 * Assumes an expert has at most one replica per GPU.
 *
 * @param input `[experts][gpus]`: tokens routed to expert `e` that start on GPU `g`.
 * @param placement Where the replicas are.
 * @param options `alpha` (default 1): the weight of communication, in
 * compute-token units (the ratio of one token's all-to-all time to its
 * compute time).
 * @returns The {@linkcode CommAwareSchedule}.
 * @throws {TypeError} If a shape is wrong.
 * @throws {RangeError} If `alpha` is negative or an input is not a non-negative integer.
 * @throws {Error} If HiGHS is not loaded.
 *
 * @example Communication expensive: the hot expert stays where its tokens are
 * ```ts
 * import { commAwareSchedule, loadLpSolvers } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * await loadLpSolvers();
 * const p = { gpus: 2, experts: 2, slotsPerGpu: 2, slots: new Int32Array([0, 1, 0, 1]) };
 * const input = [[8, 0], [0, 2]]; // expert 0's tokens all start on GPU 0
 * assert.equal(commAwareSchedule(input, p, { alpha: 0 }).optimum, 5);
 * const s = commAwareSchedule(input, p, { alpha: 10 });
 * assert.equal(s.comm, 0);
 * assert.equal(s.maxLoad, 8);
 * ```
 */
export function commAwareSchedule(
  input: ArrayLike<ArrayLike<number>>,
  placement: Placement,
  options: { alpha?: number } = {},
): CommAwareSchedule {
  const h = loadedHighs();
  const p = checkPlacement("placement", placement);
  const alpha = checkNumber("alpha", options.alpha ?? 1, 0);
  const E = p.experts, G = p.gpus;
  const loads = checkInput(input, E, G), perGpu = new Float64Array(G);
  for (let e = 0; e < E; e++) {
    for (let g = 0; g < G; g++) perGpu[g] += input[e][g];
  }
  const flow = new ScheduleFlow(p);
  const R = flow.replicas;
  // Rows: experts [0, E), keep <= x [E, E+R), compute, send, receive.
  const KX = E, CMP = E + R, SND = CMP + G, RCV = SND + G, rows = RCV + G;
  const starts: number[] = [], idx: number[] = [], val: number[] = [];
  const col = (entries: [number, number][]) => {
    starts.push(idx.length);
    for (const [i, v] of entries) idx.push(i), val.push(v);
  };
  for (let r = 0; r < R; r++) {
    const g = flow.replicaGpu[r];
    col([[flow.replicaExpert[r], 1], [KX + r, -1], [CMP + g, 1], [RCV + g, 1]]);
  }
  for (let r = 0; r < R; r++) {
    const g = flow.replicaGpu[r];
    col([[KX + r, 1], [SND + g, -1], [RCV + g, -1]]);
  }
  col(Array.from({ length: G }, (_, g) => [CMP + g, -1]));
  col(
    Array.from(
      { length: 2 * G },
      (_, i) => [i < G ? SND + i : RCV + i - G, -1],
    ),
  );
  starts.push(idx.length);
  const n = 2 * R + 2;
  const colCost = new Float64Array(n);
  colCost[2 * R] = 1, colCost[2 * R + 1] = alpha;
  const colUpper = new Float64Array(n).fill(h.infinity);
  for (let r = 0; r < R; r++) {
    colUpper[R + r] = input[flow.replicaExpert[r]][flow.replicaGpu[r]];
  }
  const rowLower = new Float64Array(rows).fill(-h.infinity);
  const rowUpper = new Float64Array(rows);
  for (let e = 0; e < E; e++) rowLower[e] = rowUpper[e] = loads[e];
  for (let g = 0; g < G; g++) rowUpper[SND + g] = -perGpu[g];
  const model = h.createModel({
    numCols: n,
    numRows: rows,
    colCost,
    colLower: new Float64Array(n),
    colUpper,
    rowLower,
    rowUpper,
    matrix: {
      format: "csc",
      numRows: rows,
      numCols: n,
      starts: Int32Array.from(starts),
      indices: Int32Array.from(idx),
      values: Float64Array.from(val),
    },
  });
  try {
    model.options.set({ output_flag: false });
    const run = model.run();
    if (run.modelStatus !== h.constants.modelStatus.optimal) {
      throw new Error(`HiGHS ended with model status ${run.modelStatus}`);
    }
    const x = model.getSolution().colValue;
    const s = roundLp(flow, p, loads, x, x[2 * R], "highs");
    return { ...s, objective: model.getObjectiveValue(), comm: x[2 * R + 1] };
  } finally {
    model.dispose();
  }
}
