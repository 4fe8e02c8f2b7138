// The expert-parallel stage over some of the layers: each (layer, method)
// keeps its own placements and history, so a set of layers is a part of
// the stage on its own. Its sums are kept per layer and merged in layer
// order (mergeEpParts in ep_stage.ts), so the result does not depend on
// how the layers were split between threads.
import { isGrouped } from "../ops/route.ts";
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
} from "../placement/step_time.ts";
import type { SimConfig } from "./config.ts";
import { checkInteger } from "../validate.ts";
import {
  EP_STRATEGY,
  type EpConfig,
  epGpusPerNode,
  epSlots,
  type EpStrategy,
  epSymmetricPlacement,
} from "./ep_config.ts";
import { evalStart, sampledCount } from "./eval_window.ts";

/**
 * Which steps the stage samples and which it records: the summaries take
 * every `sampleEvery`-th step of the evaluation window; the `gpu_loads`
 * table keeps every step's rows when they fit in `tableRows`, else the
 * sampled steps', else none.
 */
export interface EpStepPlan {
  /** Whether the summaries take step `s`. */
  sampled: (s: number) => boolean;
  /** How many steps the summaries take. */
  window: number;
  /** Every step's rows fit: every step is placed and recorded. */
  everyStep: boolean;
  /** The steps whose rows the table keeps, ascending. */
  recorded: number[];
  /** Rows of one recorded step, every layer. */
  perStep: number;
}

/** The step plan of a run (see {@linkcode EpStepPlan}). */
export function epStepPlan(
  config: SimConfig,
  c: EpConfig,
  methods: number,
  tableRows: number,
): EpStepPlan {
  const { steps, layers } = config;
  const perStep = layers * methods * c.strategies.length * c.gpus;
  const start = evalStart(config);
  const sampled = (s: number) =>
    s >= start && (s - start) % c.sampleEvery === 0;
  const window = sampledCount(config, c.sampleEvery);
  const all = Array.from({ length: steps }, (_, s) => s);
  const everyStep = steps * perStep <= tableRows;
  const inWindow = all.filter(sampled);
  const recorded = everyStep
    ? all
    : inWindow.length * perStep <= tableRows
    ? inWindow
    : [];
  return { sampled, window, everyStep, recorded, perStep };
}

/**
 * The sums of the stage over some layers, each layer's on its own:
 * `ratio`, `time`, `intra`, `inter`, `reach`, `limited` hold
 * `layers.length x methods x strategies` sums over the sampled steps (GPU
 * max/mean, step time, NVLink and network bytes, nodes a token reaches,
 * batches whose dispatch was node-limited), `rankProfile`
 * `layers.length x methods x strategies x gpus`; `tokens` the part's rows
 * of the `gpu_loads` table, per recorded step its layers' rows in order.
 */
export interface EpPart {
  layers: number[];
  ratio: Float64Array;
  time: Float64Array;
  intra: Float64Array;
  inter: Float64Array;
  reach: Float64Array;
  limited: Float64Array;
  rankProfile: Float64Array;
  tokens: Int32Array;
}

/** The stage over `layers`, fed one step at a time. */
export interface EpLayerStage {
  /**
   * Adds step `step` (steps in order from 0): `loads` holds that step's
   * rows of the loads table for every layer of the run, ordered layer,
   * method, expert; the part reads its own layers' rows.
   */
  addStep(step: number, loads: Int32Array): void;
  /** The part's sums, once every step was added. */
  finish(): EpPart;
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
 * The EP stage (see createEpStage in ep_stage.ts) over the run's layers
 * `layers` (distinct, in ascending order), `methods` methods, with the
 * table plan of `tableRows`.
 */
export function epLayerStage(
  config: SimConfig,
  c: EpConfig,
  methods: number,
  layers: readonly number[],
  tableRows: number,
): EpLayerStage {
  checkInteger("tableRows", tableRows, 0);
  const { steps, experts: E, topK, tokens } = config;
  for (let h = 0; h < layers.length; h++) {
    if (
      !Number.isInteger(layers[h]) || layers[h] < 0 ||
      layers[h] >= config.layers || (h > 0 && layers[h] <= layers[h - 1])
    ) {
      throw new RangeError(
        `layers must be distinct layers of the run in ascending order: current value is [${
          layers.join(", ")
        }]`,
      );
    }
  }
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
  const grouped = isGrouped(config);
  const eplbGroups = eplbGroupsOf(config.groups, N);
  const nodeLimit = (p: Placement) =>
    grouped && N > 1 && groupsStayOnNodes(p, config.groups, gpn)
      ? config.topGroups
      : null;
  const plan = epStepPlan(config, c, M, tableRows);
  const recordedStep = new Uint8Array(steps);
  for (const s of plan.recorded) recordedStep[s] = 1;
  const H = layers.length, MK = M * K;
  // The part's rows of the table: per recorded step, its layers'.
  const tokenRows = new Int32Array(plan.recorded.length * H * MK * G);
  const want = new Set(names);
  const exact = c.scheduler === "exact";
  // MicroMoE's LP; across nodes, each node's tokens to its own replicas first.
  const lp = (p: Placement): Scheduler =>
    N > 1 ? localFirstScheduler(p, gpn) : exactScheduler(p);
  // A placement with its node limit, its node locality and, where a
  // strategy schedules on it by LP, its scheduler.
  interface Placed {
    placement: Placement;
    limit: number | null;
    locality: NodeLocality | null;
    scheduler: Scheduler | null;
  }
  const place = (
    p: Placement,
    scheduler?: (p: Placement) => Scheduler,
  ): Placed => ({
    placement: p,
    limit: nodeLimit(p),
    locality: N > 1 ? new NodeLocality(p, gpn) : null,
    scheduler: scheduler && exact ? scheduler(p) : null,
  });
  const fixed = place(staticPlacement(E, G));
  const sym = want.has("symmetric-lp")
    ? place(epSymmetricPlacement(c, E, config.seed), lp)
    : fixed;
  // Per (part layer, method): the re-placed placements.
  const HM = H * M;
  const moved: Placed[] = new Array(HM), hier: Placed[] = new Array(HM);
  const asym: Placed[] = new Array(HM);
  const history = new Float64Array(HM * E).fill(1);
  const replace = (hm: number) => {
    const weight = Array.from(history.subarray(hm * E, hm * E + E));
    if (want.has("eplb")) {
      moved[hm] = place(placementFromPhy2log(
        rebalanceExperts([weight], {
          replicas: slots,
          groups: 1,
          nodes: 1,
          gpus: G,
        }).phy2log[0],
        E,
        G,
      ));
    }
    if (want.has("eplb-hierarchical") || want.has("hierarchical-lp")) {
      hier[hm] = place(
        placementFromPhy2log(
          rebalanceExperts([weight], {
            replicas: slots,
            groups: eplbGroups,
            nodes: N,
            gpus: G,
          }).phy2log[0],
          E,
          G,
        ),
        want.has("hierarchical-lp") ? exactScheduler : undefined,
      );
    }
    if (want.has("asymmetric-lp")) {
      asym[hm] = place(
        asymmetricPlacement(weight.map(Math.round), G, {
          slots,
          iterations: 64,
          seed: config.seed,
        }),
        lp,
      );
    }
    history.fill(0, hm * E, hm * E + E);
  };
  // A batch's loads over the GPUs (GPU loads into `out`, slot loads into
  // `slotOut`): by the LP where the strategy schedules and its placement
  // has a scheduler, else equally over each expert's replicas.
  const split = (
    p: Placed,
    scheduled: boolean,
    batch: Int32Array,
    out: Int32Array,
    slotOut: Int32Array,
  ) => {
    if (!scheduled || p.scheduler === null) {
      equalSplit(p.placement, batch, out, slotOut);
      return;
    }
    const r = p.scheduler.schedule(batch);
    out.set(r.gpuLoads);
    slotOut.set(r.replicaLoads);
  };
  // Each strategy's placement of a (part layer, method) `hm`, and whether
  // it schedules by LP.
  const one = (p: Placed) => () => p;
  const each = (ps: Placed[]) => (hm: number) => ps[hm];
  const strategy: Record<
    EpStrategy,
    { at: (hm: number) => Placed; scheduled: boolean }
  > = {
    static: { at: one(fixed), scheduled: false },
    eplb: { at: each(moved), scheduled: false },
    "symmetric-lp": { at: one(sym), scheduled: true },
    "asymmetric-lp": { at: each(asym), scheduled: true },
    "eplb-hierarchical": { at: each(hier), scheduled: false },
    "hierarchical-lp": { at: each(hier), scheduled: true },
  };
  const strategies = names.map((name) => strategy[name]);
  const ratio = new Float64Array(H * MK), time = new Float64Array(H * MK);
  const intra = new Float64Array(H * MK), inter = new Float64Array(H * MK);
  const reach = new Float64Array(H * MK);
  const limited = new Float64Array(H * MK);
  const rankProfile = new Float64Array(H * MK * G);
  const gpuTokens = new Int32Array(G), sorted = new Float64Array(G);
  const slotTokens = new Int32Array(
    Math.max(fixed.placement.slots.length, slots, sym.placement.slots.length),
  );
  const remote = new Float64Array(N);
  const perLayer = M * E;
  let row = 0, next = 0;
  return {
    addStep(s: number, loads: Int32Array): void {
      if (s !== next || s >= steps) {
        throw new RangeError(
          `step must be the next step (${next}) of ${steps}: current value is ${s}`,
        );
      }
      if (loads.length !== config.layers * perLayer) {
        throw new RangeError(
          `loads must hold layers x methods x experts (${
            config.layers * perLayer
          }) values: current length is ${loads.length}`,
        );
      }
      next++;
      // Summaries count the sampled steps of the window; a step outside
      // them is placed only for the table, and not at all without one.
      const inWindow = plan.sampled(s);
      const placed = inWindow || plan.everyStep;
      const recorded = recordedStep[s] === 1;
      for (let h = 0; h < H; h++) {
        const at = layers[h] * perLayer;
        for (let m = 0; m < M; m++) {
          const hm = h * M + m;
          if (s % c.rebalanceEvery === 0) replace(hm);
          const batch = loads.subarray(at + m * E, at + m * E + E);
          for (let j = 0; j < E; j++) history[hm * E + j] += batch[j];
          for (let k = 0; k < K && placed; k++) {
            const p = strategies[k].at(hm);
            const slotOut = slotTokens.subarray(0, p.placement.slots.length);
            split(p, strategies[k].scheduled, batch, gpuTokens, slotOut);
            let max = 0, total = 0;
            for (let g = 0; g < G; g++) {
              if (recorded) tokenRows[row++] = gpuTokens[g];
              total += gpuTokens[g];
              if (gpuTokens[g] > max) max = gpuTokens[g];
            }
            if (!inWindow) continue;
            const hk = hm * K + k;
            const mean = total / G;
            ratio[hk] += total === 0 ? 1 : max / mean;
            sorted.set(gpuTokens);
            sorted.sort();
            for (let g = 0; g < G; g++) {
              rankProfile[hk * G + g] += mean > 0
                ? sorted[G - 1 - g] / mean
                : 1;
            }
            const locality = p.locality;
            locality?.remote(slotOut, remote);
            const t = nodeTraffic(gpuTokens, {
              gpusPerNode: gpn,
              tokens,
              topK,
              experts: E,
              nodeLimit: p.limit,
              remotePairs: locality ? remote : undefined,
            });
            time[hk] += multiNodeStepTimeMs(max, t, model);
            intra[hk] += t.nvlinkPairs * tokenBytes;
            inter[hk] += t.networkTokens * tokenBytes;
            reach[hk] += t.nodesPerToken;
            if (p.limit !== null) limited[hk]++;
          }
        }
      }
    },
    finish(): EpPart {
      if (next !== steps) {
        throw new RangeError(
          `every step must be added before finish: ${next} of ${steps} were`,
        );
      }
      return {
        layers: [...layers],
        ratio,
        time,
        intra,
        inter,
        reach,
        limited,
        rankProfile,
        tokens: tokenRows,
      };
    },
  };
}

/**
 * The expert groups the stage hands EPLB's hierarchical strategies: the
 * routing groups, or one group a node without them.
 */
export function eplbGroupsOf(groups: number, nodes: number): number {
  return groups > 1 ? groups : nodes;
}

/** The strategy numbers of the `strategy` column, in configuration order. */
export function epStrategyIndex(c: EpConfig): number[] {
  return c.strategies.map((name) => EP_STRATEGY[name]);
}
