// The expert-parallel stage of the simulator: every method's per-step
// loads, placed on GPUs (in nodes) by the configured strategies, with
// per-GPU tokens, max/mean, the all-to-all traffic over NVLink and the
// network, and the modelled step time.
import { asymmetricPlacement } from "../placement/asymmetric.ts";
import { rebalanceExperts } from "../placement/eplb.ts";
import { hardwarePreset } from "../placement/hardware.ts";
import {
  groupsStayOnNodes,
  NodeLocality,
  nodeTraffic,
} from "../placement/node_traffic.ts";
import {
  type Placement,
  placementFromPhy2log,
  staticPlacement,
} from "../placement/placement.ts";
import { exactScheduler } from "../placement/exact_scheduler.ts";
import { localFirstScheduler } from "../placement/local_scheduler.ts";
import type { Scheduler } from "../placement/types.ts";
import {
  type MultiNodeModel,
  multiNodeStepTimeMs,
  throughputGain,
} from "../placement/step_time.ts";
import type { SimConfig } from "./config.ts";
import { checkInteger } from "../validate.ts";
import {
  EP_STRATEGY,
  type EpConfig,
  epGpusPerNode,
  epSlots,
  type EpStrategy,
  type EpStrategySummary,
  epSymmetricPlacement,
} from "./ep_config.ts";
import { evalStart } from "./eval_window.ts";

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
 * Splits each expert's load equally over its replicas (remainder to the
 * first ones): GPU loads into `out`, slot loads into `slotOut`.
 */
function equalSplit(
  p: Placement,
  loads: Int32Array,
  out: Int32Array,
  slotOut: Int32Array,
): void {
  const count = new Int32Array(p.experts), seen = new Int32Array(p.experts);
  for (const e of p.slots) if (e >= 0) count[e]++;
  out.fill(0);
  slotOut.fill(0);
  for (let i = 0; i < p.slots.length; i++) {
    const e = p.slots[i];
    if (e < 0) continue;
    const share = Math.floor(loads[e] / count[e]);
    const x = share + (seen[e]++ < loads[e] - share * count[e] ? 1 : 0);
    out[Math.floor(i / p.slotsPerGpu)] += x;
    slotOut[i] = x;
  }
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
  const { steps, layers, experts: E, topK, tokens } = config;
  const G = c.gpus, M = methods, names = c.strategies, K = names.length;
  const gpn = epGpusPerNode(c), N = G / gpn, slots = epSlots(c, E);
  const hw = hardwarePreset(c.hardware);
  const model: MultiNodeModel = {
    hidden: c.hidden,
    ffnFactor: c.ffnFactor,
    dispatchBytes: c.dispatchBytes,
    combineBytes: c.combineBytes,
    flops: hw.flops,
    nvlink: hw.nvlink,
    network: hw.network,
    overlap: c.overlap,
  };
  // Bytes of one token's four all-to-alls (dispatch and combine, forward and backward).
  const tokenBytes = 2 * (c.dispatchBytes + c.combineBytes) * c.hidden;
  const grouped = config.groups > 1 && config.topGroups < config.groups;
  const eplbGroups = config.groups > 1 ? config.groups : N;
  const nodeLimit = (p: Placement) =>
    grouped && N > 1 && groupsStayOnNodes(p, config.groups, gpn)
      ? config.topGroups
      : null;
  const start = evalStart(config);
  // Rows of the table: every step's, else the sampled steps', else none.
  const perStep = layers * M * K * G;
  const sampledSteps = Math.max(0, Math.ceil((steps - start) / c.sampleEvery));
  const everyStep = steps * perStep <= tableRows;
  const keep = everyStep
    ? steps * perStep
    : sampledSteps * perStep <= tableRows
    ? sampledSteps * perStep
    : 0;
  const table = {
    step: new Int32Array(keep),
    layer: new Int32Array(keep),
    method: new Int32Array(keep),
    strategy: new Int32Array(keep),
    gpu: new Int32Array(keep),
    tokens: new Int32Array(keep),
  };
  const want = new Set(names);
  const fixed = staticPlacement(E, G);
  const fixedLimit = nodeLimit(fixed);
  const sym = want.has("symmetric-lp")
    ? epSymmetricPlacement(c, E, config.seed)
    : fixed;
  // MicroMoE's LP; across nodes, each node's tokens to its own replicas first.
  const lp = (p: Placement): Scheduler =>
    N > 1 ? localFirstScheduler(p, gpn) : exactScheduler(p);
  const symScheduler = want.has("symmetric-lp") ? lp(sym) : null;
  const symLimit = nodeLimit(sym);
  // Per (layer, method): the re-placed placements, their schedulers and node limits.
  const LM = layers * M;
  const moved: Placement[] = new Array(LM), movedLimit = new Array(LM);
  const hier: Placement[] = new Array(LM), hierLimit = new Array(LM);
  const hierScheduler: Scheduler[] = new Array(LM);
  const asym: Placement[] = new Array(LM), asymLimit = new Array(LM);
  const asymScheduler: Scheduler[] = new Array(LM);
  const movedLocality: (NodeLocality | null)[] = new Array(LM);
  const hierLocality: (NodeLocality | null)[] = new Array(LM);
  const asymLocality: (NodeLocality | null)[] = new Array(LM);
  const history = new Float64Array(LM * E).fill(1);
  const exact = c.scheduler === "exact";
  const replace = (lm: number) => {
    const weight = Array.from(history.subarray(lm * E, lm * E + E));
    if (want.has("eplb")) {
      moved[lm] = placementFromPhy2log(
        rebalanceExperts([weight], {
          replicas: slots,
          groups: 1,
          nodes: 1,
          gpus: G,
        }).phy2log[0],
        E,
        G,
      );
      movedLimit[lm] = nodeLimit(moved[lm]);
      movedLocality[lm] = local(moved[lm]);
    }
    if (want.has("eplb-hierarchical") || want.has("hierarchical-lp")) {
      hier[lm] = placementFromPhy2log(
        rebalanceExperts([weight], {
          replicas: slots,
          groups: eplbGroups,
          nodes: N,
          gpus: G,
        }).phy2log[0],
        E,
        G,
      );
      hierLimit[lm] = nodeLimit(hier[lm]);
      hierLocality[lm] = local(hier[lm]);
      if (want.has("hierarchical-lp") && exact) {
        hierScheduler[lm] = exactScheduler(hier[lm]);
      }
    }
    if (want.has("asymmetric-lp")) {
      asym[lm] = asymmetricPlacement(weight.map(Math.round), G, {
        slots,
        iterations: 64,
        seed: config.seed,
      });
      asymLimit[lm] = nodeLimit(asym[lm]);
      asymLocality[lm] = local(asym[lm]);
      if (exact) asymScheduler[lm] = lp(asym[lm]);
    }
    history.fill(0, lm * E, lm * E + E);
  };
  // How each strategy splits a batch's loads over the GPUs (GPU loads
  // into `out`, slot loads into `slotOut`), and its placement's node limit
  // and locality; `lm` is the (layer, method) of the batch.
  type Split = (
    lm: number,
    batch: Int32Array,
    out: Int32Array,
    slotOut: Int32Array,
  ) => void;
  interface Strategy {
    split: Split;
    limit: (lm: number) => number | null;
    locality: (lm: number) => NodeLocality | null;
  }
  const schedule = (
    s: Scheduler,
    batch: Int32Array,
    out: Int32Array,
    slotOut: Int32Array,
  ) => {
    const r = s.schedule(batch);
    out.set(r.gpuLoads);
    slotOut.set(r.replicaLoads);
  };
  const local = (p: Placement) => N > 1 ? new NodeLocality(p, gpn) : null;
  const fixedLocality = local(fixed), symLocality = local(sym);
  const split: Record<EpStrategy, Strategy> = {
    static: {
      split: (_, batch, out, so) => equalSplit(fixed, batch, out, so),
      limit: () => fixedLimit,
      locality: () => fixedLocality,
    },
    eplb: {
      split: (lm, batch, out, so) => equalSplit(moved[lm], batch, out, so),
      limit: (lm) => movedLimit[lm],
      locality: (lm) => movedLocality[lm],
    },
    "symmetric-lp": {
      split: symScheduler && exact
        ? (_, batch, out, so) => schedule(symScheduler, batch, out, so)
        : (_, batch, out, so) => equalSplit(sym, batch, out, so),
      limit: () => symLimit,
      locality: () => symLocality,
    },
    "asymmetric-lp": {
      split: exact
        ? (lm, batch, out, so) => schedule(asymScheduler[lm], batch, out, so)
        : (lm, batch, out, so) => equalSplit(asym[lm], batch, out, so),
      limit: (lm) => asymLimit[lm],
      locality: (lm) => asymLocality[lm],
    },
    "eplb-hierarchical": {
      split: (lm, batch, out, so) => equalSplit(hier[lm], batch, out, so),
      limit: (lm) => hierLimit[lm],
      locality: (lm) => hierLocality[lm],
    },
    "hierarchical-lp": {
      split: exact
        ? (lm, batch, out, so) => schedule(hierScheduler[lm], batch, out, so)
        : (lm, batch, out, so) => equalSplit(hier[lm], batch, out, so),
      limit: (lm) => hierLimit[lm],
      locality: (lm) => hierLocality[lm],
    },
  };
  const strategies = names.map((name) => split[name]);
  // Slots of each strategy's placement (the length of its slot loads).
  const placementOf: Record<EpStrategy, (lm: number) => Placement> = {
    static: () => fixed,
    eplb: (lm) => moved[lm],
    "symmetric-lp": () => sym,
    "asymmetric-lp": (lm) => asym[lm],
    "eplb-hierarchical": (lm) => hier[lm],
    "hierarchical-lp": (lm) => hier[lm],
  };
  const strategySlots = names.map((name) => (lm: number) =>
    placementOf[name](lm).slots.length
  );
  const index = names.map((name) => EP_STRATEGY[name]);
  const ratio = new Float64Array(M * K), time = new Float64Array(M * K);
  const intra = new Float64Array(M * K), inter = new Float64Array(M * K);
  const reach = new Float64Array(M * K);
  const stepTime = new Float64Array(M * K);
  const rankProfile = new Float64Array(M * K * G);
  const gpuTokens = new Int32Array(G), sorted = new Float64Array(G);
  const slotTokens = new Int32Array(
    Math.max(fixed.slots.length, slots, sym.slots.length),
  );
  const remote = new Float64Array(N);
  let row = 0, next = 0, batches = 0;
  return {
    addStep(s: number, loads: Int32Array): void {
      if (s !== next || s >= steps) {
        throw new RangeError(
          `step must be the next step (${next}) of ${steps}: current value is ${s}`,
        );
      }
      if (loads.length !== LM * E) {
        throw new RangeError(
          `loads must hold layers x methods x experts (${
            LM * E
          }) values: current length is ${loads.length}`,
        );
      }
      next++;
      // Summaries count the sampled steps of the window; a step outside
      // them is placed only for the table, and not at all without one.
      const inWindow = s >= start && (s - start) % c.sampleEvery === 0;
      const placed = inWindow || everyStep;
      const recorded = everyStep || (inWindow && keep > 0);
      if (inWindow) batches += layers;
      stepTime.fill(0);
      for (let l = 0; l < layers; l++) {
        for (let m = 0; m < M; m++) {
          const lm = l * M + m;
          if (s % c.rebalanceEvery === 0) replace(lm);
          const batch = loads.subarray(lm * E, lm * E + E);
          for (let j = 0; j < E; j++) history[lm * E + j] += batch[j];
          for (let k = 0; k < K && placed; k++) {
            const strategy = strategies[k];
            const slotOut = slotTokens.subarray(0, strategySlots[k](lm));
            strategy.split(lm, batch, gpuTokens, slotOut);
            let max = 0, total = 0;
            for (let g = 0; g < G; g++) {
              if (recorded) {
                table.step[row] = s, table.layer[row] = l;
                table.method[row] = m, table.strategy[row] = index[k];
                table.gpu[row] = g, table.tokens[row++] = gpuTokens[g];
              }
              total += gpuTokens[g];
              if (gpuTokens[g] > max) max = gpuTokens[g];
            }
            if (!inWindow) continue;
            const mk = m * K + k;
            const mean = total / G;
            ratio[mk] += total === 0 ? 1 : max / mean;
            sorted.set(gpuTokens);
            sorted.sort();
            for (let g = 0; g < G; g++) {
              rankProfile[mk * G + g] += mean > 0
                ? sorted[G - 1 - g] / mean
                : 1;
            }
            const locality = strategy.locality(lm);
            locality?.remote(slotOut, remote);
            const t = nodeTraffic(gpuTokens, {
              gpusPerNode: gpn,
              tokens,
              topK,
              experts: E,
              nodeLimit: strategy.limit(lm),
              remotePairs: locality ? remote : undefined,
            });
            stepTime[mk] += multiNodeStepTimeMs(max, t, model);
            intra[mk] += t.nvlinkPairs * tokenBytes;
            inter[mk] += t.networkTokens * tokenBytes;
            reach[mk] += t.nodesPerToken;
          }
        }
      }
      if (inWindow) { for (let i = 0; i < M * K; i++) time[i] += stepTime[i]; }
    },
    finish(): EpResult {
      if (next !== steps) {
        throw new RangeError(
          `every step must be added before finish: ${next} of ${steps} were`,
        );
      }
      const window = Math.ceil((steps - start) / c.sampleEvery);
      if (batches > 0) {
        for (let i = 0; i < rankProfile.length; i++) {
          rankProfile[i] /= batches;
        }
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
          };
        });
        return out;
      });
      return { config: c, table, rankProfile, summaries };
    },
  };
}
