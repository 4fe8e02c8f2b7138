// The expert-parallel stage of the simulator: every method's per-step
// loads, placed on GPUs (in nodes) by the configured strategies, with
// per-GPU tokens, max/mean, the all-to-all traffic over NVLink and the
// network, and the modelled step time. The work is done per layer
// (_ep_parts.ts); the parts' sums are merged here in layer order.
import { throughputGain } from "../placement/step_time.ts";
import type { SimConfig } from "./config.ts";
import { checkInteger } from "../validate.ts";
import type { EpConfig, EpStrategySummary } from "./ep_config.ts";
import {
  epLayerStage,
  type EpPart,
  epStepPlan,
  epStrategyIndex,
} from "./_ep_parts.ts";

/** What the EP stage produces. */
export interface EpResult {
  /** The configuration it ran with. */
  config: EpConfig;
  /**
   * `gpu_loads(step, layer, method, strategy, gpu, tokens)`, strategy an
   * index into {@linkcode EP_STRATEGIES}. Every step's rows; when those
   * would exceed the stage's table limit ({@linkcode EP_TABLE_ROWS} by
   * default), the rows of the steps the summaries sample (`sampleEvery`
   * steps of the evaluation window), which it places anyway; empty (every
   * column of length 0) when even those would.
   */
  table: {
    step: Int32Array;
    layer: Int32Array;
    method: Int32Array;
    strategy: Int32Array;
    gpu: Int32Array;
    tokens: Int32Array;
  };
  /**
   * Per method, strategy (position in `config.strategies`) and GPU rank
   * (0 = the busiest GPU of the batch): the rank's tokens over the batch's
   * mean GPU load, averaged over the layers and the evaluation window.
   * `rankProfile[(method * strategies + strategy) * gpus + rank]`.
   */
  rankProfile: Float64Array;
  /** Per method, per strategy (by name). */
  summaries: Record<string, EpStrategySummary>[];
}

/** Most rows the stage keeps in its `gpu_loads` table by default (about 48 MiB). */
export const EP_TABLE_ROWS = 1 << 21;

/** The EP stage fed one step at a time ({@linkcode createEpStage}). */
export interface EpStage {
  /**
   * Adds step `step` (steps in order from 0): `loads` holds that step's
   * rows of the loads table, ordered layer, method, expert.
   */
  addStep(step: number, loads: Int32Array): void;
  /** The result, once every step was added. */
  finish(): EpResult;
}

/**
 * Runs the EP stage on the loads table of a run (rows ordered step,
 * layer, method, expert). See {@linkcode createEpStage}.
 *
 * @param config A resolved configuration (its `ep` null: no stage).
 * @param loads The loads table, `steps x layers x methods x experts`.
 * @param methods Number of methods.
 * @param tableRows Most rows of the `gpu_loads` table (see {@linkcode EpResult}).
 * @returns The {@linkcode EpResult}, or null when `config.ep` is null.
 * @throws {RangeError} If `loads` has the wrong length.
 *
 * @example Greedy routing's loads on 2 nodes of 2 GPUs
 * ```ts
 * import { resolveSimConfig, runEpStage } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const config = resolveSimConfig({ steps: 2, layers: 1, tokens: 8, experts: 4, topK: 1,
 *   evalFraction: 1, ep: { gpus: 4, gpusPerNode: 2, redundant: 0,
 *     strategies: ["static", "eplb-hierarchical"] } });
 * // Expert 0 takes all 8 tokens on both steps.
 * const r = runEpStage(config, new Int32Array([8, 0, 0, 0, 8, 0, 0, 0]), 1)!;
 * assert.equal(r.summaries[0].static.gpuMaxOverMean, 4);
 * // 6 of the 8 tokens start on the other node: 3 per NIC of node 0.
 * assert.ok(r.summaries[0].static.interNodeGB > 0);
 * ```
 */
export function runEpStage(
  config: SimConfig,
  loads: Int32Array,
  methods: number,
  tableRows: number = EP_TABLE_ROWS,
): EpResult | null {
  const stage = createEpStage(config, methods, tableRows);
  if (!stage) return null;
  const per = config.layers * methods * config.experts;
  for (let s = 0; s < config.steps; s++) {
    stage.addStep(s, loads.subarray(s * per, s * per + per));
  }
  return stage.finish();
}

/**
 * The EP stage, fed step by step so that a run need not hold its loads
 * table. Strategies (`config.ep.strategies`): static EP; EPLB's global
 * policy with `experts + redundant` slots and equal split; EPLB's
 * hierarchical policy (routing groups, or one per node when routing is
 * not grouped, packed onto nodes; replicas inside nodes; packed onto the
 * node's GPUs) with equal split; the same placement with MicroMoE
 * scheduling (`hierarchical-lp`: an expert's replicas share its node, so
 * the LP moves tokens only inside nodes); the symmetric placement and the
 * asymmetric placement with MicroMoE scheduling (on several nodes,
 * {@linkcode localFirstScheduler}: the same balance, each node's tokens
 * to its own replicas first). EPLB and the asymmetric
 * placement are recomputed every `rebalanceEvery` steps from the loads
 * since the last re-placement (causal; uniform before the first). Each
 * batch's all-to-all is split into NVLink and network traffic
 * ({@linkcode nodeTraffic}: node-limited dispatch when the placement keeps
 * every routing group on one node and routing keeps `topGroups` groups)
 * and timed by {@linkcode multiNodeStepTimeMs} on the configured hardware.
 *
 * @param config A resolved configuration.
 * @param methods Number of methods of the run.
 * @param tableRows Most rows of the `gpu_loads` table (see {@linkcode EpResult}).
 * @returns The stage, or null when `config.ep` is null.
 *
 * @example Streaming one step at a time
 * ```ts
 * import { createEpStage, resolveSimConfig } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const config = resolveSimConfig({ steps: 1, layers: 1, tokens: 8, experts: 4, topK: 1,
 *   ep: { gpus: 2, replicas: 1, strategies: ["static", "eplb"] } });
 * const stage = createEpStage(config, 1)!;
 * stage.addStep(0, new Int32Array([2, 2, 2, 2]));
 * const r = stage.finish();
 * assert.equal(r.summaries[0].eplb.gpuMaxOverMean, 1);
 * assert.equal(r.summaries[0].static.interNodeGB, 0); // one node
 * ```
 */
export function createEpStage(
  config: SimConfig,
  methods: number,
  tableRows: number = EP_TABLE_ROWS,
): EpStage | null {
  checkInteger("tableRows", tableRows, 0);
  const c = config.ep;
  if (!c) return null;
  const all = Array.from({ length: config.layers }, (_, l) => l);
  const stage = epLayerStage(config, c, methods, all, tableRows);
  return {
    addStep: (step, loads) => stage.addStep(step, loads),
    finish: () => mergeEpParts(config, methods, [stage.finish()], tableRows),
  };
}

/**
 * The stage's result from parts that together cover every layer once
 * (each from the per-layer stage of lib/sim/_ep_parts.ts, with the same
 * `tableRows`): the sums added layer by layer in layer order, the table's
 * rows put in step, layer order. The same result however the layers were
 * split.
 *
 * @param config The run's resolved configuration (its `ep` set).
 * @param methods Number of methods of the run.
 * @param parts The parts.
 * @param tableRows The parts' table limit.
 * @returns The {@linkcode EpResult}.
 * @throws {RangeError} If `config.ep` is null or the parts do not cover
 * every layer exactly once.
 */
export function mergeEpParts(
  config: SimConfig,
  methods: number,
  parts: readonly EpPart[],
  tableRows: number = EP_TABLE_ROWS,
): EpResult {
  const c = config.ep;
  if (!c) throw new RangeError("config.ep must be set to merge EP parts");
  const { layers } = config;
  const G = c.gpus, M = methods, names = c.strategies, K = names.length;
  const MK = M * K;
  // Where each layer's sums are: its part and its place there.
  const owner = new Int32Array(layers).fill(-1);
  const place = new Int32Array(layers);
  parts.forEach((part, i) => {
    part.layers.forEach((l, h) => {
      if (!(l >= 0 && l < layers) || owner[l] >= 0) {
        throw new RangeError(
          `EP parts must cover each layer once: layer ${l} is ${
            l >= 0 && l < layers ? "in two parts" : "not a layer of the run"
          }`,
        );
      }
      owner[l] = i;
      place[l] = h;
    });
  });
  const missing = owner.indexOf(-1);
  if (missing >= 0) {
    throw new RangeError(
      `EP parts must cover each layer once: layer ${missing} is in none`,
    );
  }
  const ratio = new Float64Array(MK), time = new Float64Array(MK);
  const intra = new Float64Array(MK), inter = new Float64Array(MK);
  const reach = new Float64Array(MK);
  const limited = new Float64Array(MK);
  const rankProfile = new Float64Array(MK * G);
  for (let l = 0; l < layers; l++) {
    const part = parts[owner[l]], h = place[l];
    for (let i = 0; i < MK; i++) {
      ratio[i] += part.ratio[h * MK + i];
      time[i] += part.time[h * MK + i];
      intra[i] += part.intra[h * MK + i];
      inter[i] += part.inter[h * MK + i];
      reach[i] += part.reach[h * MK + i];
      limited[i] += part.limited[h * MK + i];
    }
    for (let i = 0; i < MK * G; i++) {
      rankProfile[i] += part.rankProfile[h * MK * G + i];
    }
  }
  // The table: per recorded step, every layer's rows in order.
  const plan = epStepPlan(config, c, M, tableRows);
  const keep = plan.recorded.length * plan.perStep;
  const table = {
    step: new Int32Array(keep),
    layer: new Int32Array(keep),
    method: new Int32Array(keep),
    strategy: new Int32Array(keep),
    gpu: new Int32Array(keep),
    tokens: new Int32Array(keep),
  };
  const index = epStrategyIndex(c);
  const block = MK * G;
  let row = 0;
  plan.recorded.forEach((s, r) => {
    for (let l = 0; l < layers; l++) {
      const part = parts[owner[l]];
      const from = (r * part.layers.length + place[l]) * block;
      table.tokens.set(part.tokens.subarray(from, from + block), row);
      for (let m = 0; m < M; m++) {
        for (let k = 0; k < K; k++) {
          for (let g = 0; g < G; g++, row++) {
            table.step[row] = s, table.layer[row] = l;
            table.method[row] = m, table.strategy[row] = index[k];
            table.gpu[row] = g;
          }
        }
      }
    }
  });
  const window = plan.window;
  const batches = window * layers;
  if (batches > 0) {
    for (let i = 0; i < rankProfile.length; i++) rankProfile[i] /= batches;
  }
  const summaries = Array.from({ length: M }, (_, m) => {
    const out: Record<string, EpStrategySummary> = {};
    names.forEach((name, k) => {
      const mk = m * K + k;
      const ms = time[mk] / window;
      const base = time[m * K] / window;
      out[name] = {
        gpuMaxOverMean: ratio[mk] / (window * layers),
        stepTimeMs: ms,
        throughputGain: base > 0 && ms > 0 ? throughputGain(base, ms) : 0,
        intraNodeGB: intra[mk] / window / 1e9,
        interNodeGB: inter[mk] / window / 1e9,
        nodesPerToken: reach[mk] / (window * layers),
        nodeLimited: limited[mk] / (window * layers),
      };
    });
    return out;
  });
  return { config: c, table, rankProfile, summaries };
}
