// Offline advice on a recorded expert-load trace: how static expert
// parallelism, EPLB (offline, colocation-free, re-planned every W steps)
// and MicroMoE scheduling would balance it, under the step-time model.
import { checkInteger, checkNumber, show } from "../validate.ts";
import { asymmetricPlacement } from "./asymmetric.ts";
import { symmetricPlacement } from "./cayley.ts";
import { colocatedReplicas } from "./colocation.ts";
import {
  gpuLoadsEqualSplit,
  sglangUtilizationRate,
  trtllmImbalanceRatio,
  vllmBalancedness,
} from "./engine_balance.ts";
import { type EplbPolicy, eplbPolicy, rebalanceExperts } from "./eplb.ts";
import { migrationVolume, shouldReplan } from "./migration.ts";
import type { Placement } from "./placement.ts";
import { scheduleTokens } from "./schedule.ts";
import { H100_NVLINK, type StepTimeModel, stepTimeMs } from "./step_time.ts";

/** Options of {@linkcode adviseRecording}. */
export interface AdviseOptions {
  /** GPUs `G`, a divisor of the experts. */
  gpus: number;
  /** Physical expert slots for EPLB (`num_replicas`), a multiple of `gpus`. */
  replicas: number;
  /** Server nodes for EPLB's hierarchical policy (default 1). */
  nodes?: number;
  /** Expert groups for EPLB (default 1). */
  groups?: number;
  /**
   * Re-plan intervals `W` in steps (default: 1, 2, 5, 10, 20, 50, 100, ...
   * up to half the steps): plan on the past `W` steps, run the next `W`.
   * An interval of the recording's steps or more has no step to run and
   * gives no strategy row.
   */
  intervals?: number[];
  /** Re-plan only when the predicted gain exceeds this (default 0; {@linkcode shouldReplan}). */
  threshold?: number;
  /** Replicas per expert of the MicroMoE placements (default 2). */
  microReplicas?: number;
  /** Bytes of one expert's weights (default: the step-time model's `2 * ffnFactor * hidden^2 * bytesPerElement`). */
  expertBytes?: number;
  /** Overrides of the step-time model ({@linkcode H100_NVLINK}). */
  model?: Partial<StepTimeModel>;
  /** Smallest gain worth recommending a change (default 0.05). */
  minGain?: number;
  /** Monte Carlo swaps of the asymmetric placement (default 50). */
  iterations?: number;
}

/** Keys of the strategies {@linkcode adviseRecording} compares. */
export type StrategyKey =
  | "static"
  | "eplb"
  | "eplb-distinct"
  | "eplb-replan"
  | "micromoe-symmetric"
  | "micromoe-asymmetric";

/** The figures of one strategy on the steps it is evaluated on. */
export interface StrategyFigures {
  /** Which strategy. */
  key: StrategyKey;
  /** Human name, with the interval for re-planned EPLB. */
  name: string;
  /** Re-plan interval `W` (re-planned EPLB only). */
  interval?: number;
  /** How it is planned: on the first half of the steps, on the past window, per step, or not at all. */
  planning: "none" | "first half" | "past window" | "per step";
  /** First evaluated step (index into the recording); evaluation runs to the end. */
  from: number;
  /** Expert slots on each GPU (memory for expert weights). */
  slotsPerGpu: number;
  /** Mean over steps and layers of the busiest GPU's tokens over the mean GPU's. */
  maxOverMean: number;
  /** Mean step time of the MoE layers, ms (sum over layers of {@linkcode stepTimeMs}). */
  stepMs: number;
  /** Throughput gain over static EP on the same steps. */
  gain: number;
  /** Re-plans made (re-planned EPLB only). */
  replans?: number;
  /** Mean experts received per re-plan, over all GPUs and layers. */
  migrationExperts?: number;
  /** Mean bytes moved per re-plan. */
  migrationBytes?: number;
  /** Mean transfer time per re-plan, ms: per layer the busiest receiver's bytes over the bandwidth, summed. */
  migrationMs?: number;
  /** `stepMs` plus the transfer time spread over the steps. */
  netStepMs: number;
  /** Gain over static EP with the transfer time included. */
  netGain: number;
  /** Replicas placed on a GPU that already holds the expert (EPLB placements). */
  colocated?: number;
  /** vLLM's balancedness, mean over steps ({@linkcode vllmBalancedness}). */
  vllmBalancedness: number;
  /** SGLang's utilisation rate, mean over steps ({@linkcode sglangUtilizationRate}). */
  sglangUtilizationRate: number;
  /** TensorRT-LLM's imbalance ratio ({@linkcode trtllmImbalanceRatio}). */
  trtllmImbalanceRatio: number;
  /** GPU loads sorted from busiest, mean over steps and layers. */
  sortedGpuLoads: number[];
}

/** What {@linkcode adviseRecording} returns. */
export interface Advice {
  /** Steps of the recording. */
  steps: number;
  /** Layers of the recording. */
  layers: number;
  /** Logical experts. */
  experts: number;
  /** GPUs. */
  gpus: number;
  /** Nodes. */
  nodes: number;
  /** Expert groups given to EPLB. */
  groups: number;
  /**
   * The policy EPLB's plans took: `"hierarchical"` where the nodes divide
   * the groups, else `"global"` (DeepSeek's `rebalance_experts`).
   */
  eplbPolicy: EplbPolicy;
  /** EPLB's physical slots. */
  replicas: number;
  /** Bytes of one expert's weights used for the transfers. */
  expertBytes: number;
  /** Static EP first, then EPLB, EPLB without colocation, EPLB per interval, MicroMoE. */
  strategies: StrategyFigures[];
  /** The strategy to adopt, and why (one sentence per reason). */
  recommendation: {
    key: StrategyKey;
    name: string;
    interval?: number;
    reasons: string[];
  };
}

type Gpu = ArrayLike<number>;

function checkRecording(loads: unknown): ArrayLike<number>[][] {
  if (!Array.isArray(loads) || loads.length === 0) {
    throw new TypeError(
      `loads must be a non-empty array of steps: current value is ${
        show(loads)
      }`,
    );
  }
  const L = Array.isArray(loads[0]) ? loads[0].length : 0;
  const E = L ? (loads[0][0] as ArrayLike<number>)?.length : 0;
  loads.forEach((step, s) => {
    if (!Array.isArray(step) || step.length !== L || !L) {
      throw new TypeError(
        `loads must be [steps][layers][experts]: step ${s} is ${
          show(step)
        }, step 0 has ${L} layers`,
      );
    }
    step.forEach((row: ArrayLike<number>, l: number) => {
      if (row === null || typeof row !== "object" || row.length !== E || !E) {
        throw new TypeError(
          `loads must be [steps][layers][experts]: step ${s}, layer ${l} is ${
            show(row)
          }, step 0 layer 0 has ${E} experts`,
        );
      }
      for (let e = 0; e < E; e++) {
        checkNumber(`loads[${s}][${l}][${e}]`, row[e], 0);
      }
    });
  });
  return loads;
}

function scheduled(loads: Gpu, p: Placement): Float64Array {
  return Float64Array.from(scheduleTokens(loads, p).gpuLoads);
}

function maxOf(v: Gpu): number {
  let m = 0;
  for (let i = 0; i < v.length; i++) m = Math.max(m, v[i]);
  return m;
}

/** Figures of per-step per-layer GPU loads `[steps][layers][gpus]`. */
function figures(
  gpuLoads: Gpu[][],
  staticMs: number[],
  from: number,
  model: Partial<StepTimeModel>,
): Omit<
  StrategyFigures,
  "key" | "name" | "planning" | "from" | "slotsPerGpu" | "netStepMs" | "netGain"
> {
  const G = gpuLoads[0][0].length;
  let ratio = 0, count = 0, ms = 0, base = 0, vllm = 0, sglang = 0;
  const sorted = new Float64Array(G);
  const perStepMs: number[] = [];
  for (const [s, step] of gpuLoads.entries()) {
    let t = 0;
    for (const g of step) {
      const m = maxOf(g);
      let sum = 0;
      for (let i = 0; i < G; i++) sum += g[i];
      if (sum > 0) ratio += m / (sum / G), count++;
      t += stepTimeMs(m, { model });
      const desc = Array.from(g).sort((a, b) => b - a);
      desc.forEach((x, i) => sorted[i] += x / (gpuLoads.length * step.length));
    }
    perStepMs.push(t);
    ms += t;
    base += staticMs[from + s];
    vllm += vllmBalancedness(step as number[][]);
    sglang += sglangUtilizationRate(step as number[][]);
  }
  const T = gpuLoads.length;
  return {
    maxOverMean: count ? ratio / count : 1,
    stepMs: ms / T,
    gain: ms > 0 ? base / ms - 1 : 0,
    vllmBalancedness: vllm / T,
    sglangUtilizationRate: sglang / T,
    trtllmImbalanceRatio: trtllmImbalanceRatio(gpuLoads as number[][][]),
    sortedGpuLoads: [...sorted],
  };
}

const DEFAULT_INTERVALS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

function pct(x: number): string {
  return `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)} %`;
}

function mb(bytes: number): string {
  return bytes >= 1e9
    ? `${(bytes / 1e9).toFixed(2)} GB`
    : `${(bytes / 1e6).toFixed(1)} MB`;
}

/**
 * The recording's sizes and EPLB's policy in words, the first line of
 * the advice's table and page: "24 steps x 4 layers, 256 experts on 64
 * GPUs (8 nodes), EPLB with 320 slots", and on several nodes which of
 * EPLB's policies its plans took.
 *
 * @example
 * ```ts
 * import { adviceHeadline, adviseRecording } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const rec = [[[4, 1, 1, 2]], [[3, 2, 1, 2]]]; // steps x layers x experts
 * const a = adviseRecording(rec, { gpus: 2, replicas: 6, nodes: 2 });
 * assert.equal(a.eplbPolicy, "global"); // 1 group, 2 nodes
 * assert.equal(
 *   adviceHeadline(a),
 *   "2 steps x 1 layers, 4 experts on 2 GPUs (2 nodes), EPLB with 6 slots (its global policy: 1 group is no multiple of 2 nodes)",
 * );
 * ```
 */
export function adviceHeadline(advice: Advice): string {
  const { nodes, groups } = advice;
  const policy = nodes === 1
    ? ""
    : advice.eplbPolicy === "hierarchical"
    ? ` (its hierarchical policy: ${groups} groups packed onto ${nodes} nodes)`
    : ` (its global policy: ${groups} group${
      groups === 1 ? " is" : "s are"
    } no multiple of ${nodes} nodes)`;
  return `${advice.steps} steps x ${advice.layers} layers, ${advice.experts} experts on ${advice.gpus} GPUs (${nodes} node${
    nodes === 1 ? "" : "s"
  }), EPLB with ${advice.replicas} slots${policy}`;
}

/**
 * Offline advice for a recording of expert loads (`[steps][layers][experts]`
 * tokens, as the serving engines record them): the balance and estimated
 * step time of
 *
 * - static EP (expert `j` on GPU `floor(j / (E / G))`, the baseline),
 * - EPLB ({@linkcode rebalanceExperts}) planned on the first half of the
 *   steps and evaluated on the second (on all steps when there is one),
 *   as it is and without colocated replicas (where a GPU's slots fit in
 *   distinct experts of its node),
 * - EPLB re-planned every `W` steps: planned on the past `W` steps (from
 *   the trivial map, physical slot `i` holding expert `i mod E`), used for
 *   the next `W`, re-planning only when the
 *   predicted gain exceeds `threshold`, with the weights moved per re-plan
 *   ({@linkcode migrationVolume}),
 * - MicroMoE scheduling ({@linkcode scheduleTokens}, per step) on the
 *   symmetric placement and on an asymmetric one planned on the first half,
 *
 * each evaluated on the second half of the steps (plans use only the steps
 * before the ones they run; a re-plan interval past the half is evaluated
 * from its first plan on), with GPU max/mean, the engines' own balance
 * figures, the gain over static EP on the same steps, and a recommendation
 * with its reasons: the largest gain net of transfers among the strategies
 * that fit in EPLB's slots per GPU (`replicas / gpus`, the memory budget),
 * static EP when none reaches `minGain`.
 * EPLB rows split an expert's tokens equally over its replicas, as EPLB
 * assumes; MicroMoE rows take the LP schedule of each step.
 *
 * @param loads `[steps][layers][experts]` non-negative token counts.
 * @param options GPUs, EPLB's sizes, intervals, threshold, model.
 * @returns The {@linkcode Advice}.
 * @throws {TypeError} If `loads` is not rectangular.
 * @throws {RangeError} If a size does not divide as the placements need.
 *
 * @example A hot expert on GPU 0: every strategy beats static EP
 * ```ts
 * import { adviseRecording } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const step = [[40, 4, 4, 4, 4, 4, 4, 4]];
 * const a = adviseRecording([step, step, step, step], {
 *   gpus: 4, replicas: 12, intervals: [1], iterations: 5,
 * });
 * assert.equal(a.strategies[0].key, "static");
 * assert.equal(a.strategies[0].maxOverMean, 44 / 17); // GPU 0 holds experts 0 and 1
 * assert.ok(a.strategies.slice(1).every((s) => s.gain > 0));
 * assert.notEqual(a.recommendation.key, "static");
 * ```
 */
export function adviseRecording(
  loads: ArrayLike<number>[][],
  options: AdviseOptions,
): Advice {
  const rec = checkRecording(loads);
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `options must be an object: current value is ${show(options)}`,
    );
  }
  const T = rec.length, L = rec[0].length, E = rec[0][0].length;
  const G = checkInteger("gpus", options.gpus, 1);
  const R = checkInteger("replicas", options.replicas, E);
  const nodes = checkInteger("nodes", options.nodes ?? 1, 1);
  const groups = checkInteger("groups", options.groups ?? 1, 1);
  const threshold = checkNumber("threshold", options.threshold ?? 0, 0);
  const d = checkInteger("microReplicas", options.microReplicas ?? 2, 1, G);
  const minGain = checkNumber("minGain", options.minGain ?? 0.05, 0);
  const iterations = checkInteger("iterations", options.iterations ?? 50, 0);
  const model = { ...H100_NVLINK, ...options.model };
  stepTimeMs(0, { model });
  const expertBytes = checkNumber(
    "expertBytes",
    options.expertBytes ??
      2 * model.ffnFactor * model.hidden ** 2 * model.bytesPerElement,
    0,
  );
  if (E % G !== 0) {
    throw new RangeError(
      `gpus must divide the number of experts (${E}): current value is ${G}`,
    );
  }
  if ((E * d) % G !== 0) {
    throw new RangeError(
      `microReplicas x experts (${d} x ${E}) must be a multiple of gpus (${G}): current value is ${d}`,
    );
  }
  const intervals = options.intervals ??
    DEFAULT_INTERVALS.filter((w) => w <= T / 2);
  if (!Array.isArray(intervals)) {
    throw new TypeError(
      `intervals must be an array: current value is ${show(intervals)}`,
    );
  }
  intervals.forEach((w, i) => checkInteger(`intervals[${i}]`, w, 1));
  const eplb = { replicas: R, groups, nodes, gpus: G };
  // Validate EPLB's sizes before any work.
  rebalanceExperts([new Array(E).fill(1)], eplb);

  const sumSteps = (a: number, b: number) =>
    Array.from({ length: L }, (_, l) => {
      const w = new Array<number>(E).fill(0);
      for (let s = a; s < b; s++) {
        for (let e = 0; e < E; e++) w[e] += rec[s][l][e];
      }
      return w;
    });
  const split = (phy2log: number[][], a: number, b = T) =>
    rec.slice(a, b).map((step) =>
      step.map((row, l) => gpuLoadsEqualSplit(row, phy2log[l], G))
    );
  const ms = (gpuLoads: Gpu[]) =>
    gpuLoads.reduce((t, g) => t + stepTimeMs(maxOf(g), { model }), 0);
  const perStep = (gpuLoads: Gpu[][]) => gpuLoads.map(ms);

  const staticMap = Array.from(
    { length: L },
    () => Array.from({ length: E }, (_, i) => i),
  );
  const staticLoads = split(staticMap, 0);
  const staticMs = perStep(staticLoads);
  const out: StrategyFigures[] = [];
  const push = (
    head: Pick<
      StrategyFigures,
      "key" | "name" | "planning" | "from" | "slotsPerGpu" | "interval"
    >,
    gpuLoads: Gpu[][],
    extra: Partial<StrategyFigures> = {},
    netMs?: number,
  ) => {
    const f = figures(gpuLoads, staticMs, head.from, model);
    const base = staticMs.slice(head.from).reduce((a, b) => a + b, 0) /
      (T - head.from);
    const netStepMs = netMs ?? f.stepMs;
    out.push({
      ...head,
      ...f,
      ...extra,
      netStepMs,
      netGain: netStepMs > 0 ? base / netStepMs - 1 : 0,
    });
  };
  // Every strategy is evaluated on the second half of the steps (all of
  // them when there is one), planned on steps before it.
  const half = T >= 2 ? Math.ceil(T / 2) : 0;
  push({
    key: "static",
    name: "static EP",
    planning: "none",
    from: half,
    slotsPerGpu: E / G,
  }, staticLoads.slice(half));

  const planned = sumSteps(0, half || T);
  // Without colocation a GPU holds distinct experts of its node.
  const perNode = E /
    (eplbPolicy(groups, nodes) === "hierarchical" ? nodes : 1);
  const distinctFits = R / G <= perNode;
  for (const colocation of distinctFits ? [true, false] : [true]) {
    const r = rebalanceExperts(planned, { ...eplb, colocation });
    push(
      {
        key: colocation ? "eplb" : "eplb-distinct",
        name: colocation ? "EPLB" : "EPLB, no colocation",
        planning: "first half",
        from: half,
        slotsPerGpu: R / G,
      },
      split(r.phy2log, half),
      {
        colocated: colocatedReplicas(r.phy2log, G).reduce(
          (n, c) => n + c.copies - 1,
          0,
        ),
      },
    );
  }

  const bandwidth = model.bandwidth;
  for (const W of intervals) {
    if (W >= T) continue;
    let current = Array.from(
      { length: L },
      () => Array.from({ length: R }, (_, i) => i % E),
    );
    const gpuLoads: Gpu[][] = [];
    let replans = 0, moved = 0, bytes = 0, transferMs = 0, colocated = 0;
    for (let start = W; start < T; start += W) {
      const next = rebalanceExperts(sumSteps(start - W, start), eplb).phy2log;
      const past = (p: number[][]) =>
        split(p, start - W, start).reduce((t, g) => t + ms(g), 0);
      // A window without tokens predicts no gain (and no step time).
      const was = past(current);
      if (was > 0 && shouldReplan(was, past(next), threshold)) {
        const m = migrationVolume(current, next, G, expertBytes);
        replans++;
        moved += m.experts;
        bytes += m.bytes;
        transferMs += m.received.reduce(
          (t, row) => t + maxOf(row) * expertBytes / bandwidth * 1e3,
          0,
        );
        current = next;
      }
      colocated = Math.max(
        colocated,
        colocatedReplicas(current, G).reduce((n, c) => n + c.copies - 1, 0),
      );
      gpuLoads.push(...split(current, start, Math.min(start + W, T)));
    }
    // Evaluated from the common first step, or from W when W is later;
    // the transfers are spread over every step after the first plan.
    const from = Math.max(half, W);
    const kept = gpuLoads.slice(from - W);
    const stepMs = kept.reduce((t, g) => t + ms(g), 0) / kept.length;
    push(
      {
        key: "eplb-replan",
        name: `EPLB every ${W} steps`,
        interval: W,
        planning: "past window",
        from,
        slotsPerGpu: R / G,
      },
      kept,
      {
        replans,
        migrationExperts: replans ? moved / replans : 0,
        migrationBytes: replans ? bytes / replans : 0,
        migrationMs: replans ? transferMs / replans : 0,
        colocated,
      },
      stepMs + transferMs / (T - W),
    );
  }

  const sym = symmetricPlacement(E, G, { replicas: d });
  push({
    key: "micromoe-symmetric",
    name: `MicroMoE, symmetric (${d} replicas)`,
    planning: "per step",
    from: half,
    slotsPerGpu: sym.slotsPerGpu,
  }, rec.slice(half).map((step) => step.map((row) => scheduled(row, sym))));
  const asym = planned.map((w) =>
    asymmetricPlacement(w.map((x) => Math.round(x)), G, {
      replicas: d,
      iterations,
    })
  );
  push(
    {
      key: "micromoe-asymmetric",
      name: `MicroMoE, asymmetric (${d} replicas)`,
      planning: "first half",
      from: half,
      slotsPerGpu: asym[0].slotsPerGpu,
    },
    rec.slice(half).map((step) =>
      step.map((row, l) => scheduled(row, asym[l]))
    ),
  );
  return {
    steps: T,
    layers: L,
    experts: E,
    gpus: G,
    nodes,
    groups,
    eplbPolicy: eplbPolicy(groups, nodes),
    replicas: R,
    expertBytes,
    strategies: out,
    recommendation: recommend(
      out,
      minGain,
      R / G,
      distinctFits
        ? ""
        : `EPLB without colocation is impossible here: ${
          R / G
        } slots per GPU exceed the ${perNode} experts of a node`,
    ),
  };
}

function recommend(
  rows: StrategyFigures[],
  minGain: number,
  budget: number,
  note: string,
): Advice["recommendation"] {
  const stat = rows[0];
  const reasons = [
    `static EP: the busiest GPU computes ${
      stat.maxOverMean.toFixed(2)
    }x the mean (vLLM balancedness ${
      stat.vllmBalancedness.toFixed(3)
    }, SGLang utilisation ${
      stat.sglangUtilizationRate.toFixed(3)
    }, TensorRT-LLM imbalance ratio ${stat.trtllmImbalanceRatio.toFixed(3)})`,
  ];
  // Only strategies within the memory of EPLB's slots are recommended.
  let best = stat;
  for (const r of rows.slice(1)) {
    if (r.slotsPerGpu <= budget && r.netGain > best.netGain) best = r;
  }
  const over = rows.filter((r) => r.slotsPerGpu > budget);
  const eplb = rows.find((r) => r.key === "eplb");
  const distinct = rows.find((r) => r.key === "eplb-distinct");
  if (eplb && distinct) {
    reasons.push(
      eplb.colocated
        ? `EPLB puts ${eplb.colocated} replica(s) on a GPU that already holds the expert; without colocation the gain is ${
          pct(distinct.gain)
        } against ${pct(eplb.gain)}`
        : `EPLB puts no two replicas of an expert on one GPU here (gain ${
          pct(eplb.gain)
        })`,
    );
  }
  if (note) reasons.push(note);
  const replan = rows.filter((r) => r.key === "eplb-replan");
  if (replan.length) {
    reasons.push(
      `re-planned EPLB, net of transfers: ${
        replan.map((r) => `every ${r.interval} steps ${pct(r.netGain)}`).join(
          ", ",
        )
      }`,
    );
  }
  for (const r of over) {
    reasons.push(
      `${r.name} would reach ${
        pct(r.netGain)
      } but needs ${r.slotsPerGpu} expert slots per GPU, over the ${budget} of replicas / gpus`,
    );
  }
  if (best === stat || best.netGain < minGain) {
    reasons.push(
      `no strategy gains ${pct(minGain)} or more (best: ${best.name}, ${
        pct(best.netGain)
      }): keep static EP`,
    );
    return { key: "static", name: stat.name, reasons };
  }
  let why = `${best.name}: estimated ${pct(best.netGain)} throughput (${
    best.stepMs.toFixed(3)
  } ms per step against ${
    (best.stepMs * (1 + best.gain)).toFixed(3)
  } for static EP), busiest GPU at ${best.maxOverMean.toFixed(2)}x the mean`;
  if (best.key === "eplb-replan") {
    why += `, moving ${best.migrationExperts!.toFixed(1)} experts (${
      mb(best.migrationBytes!)
    }) per re-plan`;
  }
  if (best.slotsPerGpu !== stat.slotsPerGpu) {
    why +=
      `, with ${best.slotsPerGpu} expert slots per GPU against ${stat.slotsPerGpu}`;
  }
  if (best.planning === "first half") {
    why += "; planned on the first half of the recording";
  }
  reasons.push(why);
  return {
    key: best.key,
    name: best.name,
    ...(best.interval ? { interval: best.interval } : {}),
    reasons,
  };
}
