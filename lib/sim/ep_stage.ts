// The expert-parallel stage of the simulator: every method's per-step
// loads, placed on GPUs by four strategies, with per-GPU tokens, max/mean
// and the modelled step time.
import { asymmetricPlacement } from "../placement/asymmetric.ts";
import { rebalanceExperts } from "../placement/eplb.ts";
import {
  type Placement,
  placementFromPhy2log,
  staticPlacement,
} from "../placement/placement.ts";
import { exactScheduler } from "../placement/exact_scheduler.ts";
import { stepTimeMs, throughputGain } from "../placement/step_time.ts";
import type { SimConfig } from "./config.ts";
import {
  EP_STRATEGIES,
  EP_STRATEGY,
  type EpConfig,
  type EpStrategy,
  type EpStrategySummary,
  epSymmetricPlacement,
} from "./ep_config.ts";
import { evalStart } from "./eval_window.ts";

/** What the EP stage produces. */
export interface EpResult {
  /** The configuration it ran with. */
  config: EpConfig;
  /** `gpu_loads(step, layer, method, strategy, gpu, tokens)`, strategy an index into {@linkcode EP_STRATEGIES}. */
  table: {
    step: Int32Array;
    layer: Int32Array;
    method: Int32Array;
    strategy: Int32Array;
    gpu: Int32Array;
    tokens: Int32Array;
  };
  /** Per method, per strategy (by name). */
  summaries: Record<string, EpStrategySummary>[];
}

/** Splits each expert's load equally over its replicas (remainder to the first ones). */
function equalSplit(p: Placement, loads: Int32Array, out: Int32Array): void {
  const count = new Int32Array(p.experts), seen = new Int32Array(p.experts);
  for (const e of p.slots) if (e >= 0) count[e]++;
  out.fill(0);
  for (let i = 0; i < p.slots.length; i++) {
    const e = p.slots[i];
    if (e < 0) continue;
    const share = Math.floor(loads[e] / count[e]);
    out[Math.floor(i / p.slotsPerGpu)] += share +
      (seen[e]++ < loads[e] - share * count[e] ? 1 : 0);
  }
}

/**
 * Runs the EP stage on the loads table of a run (rows ordered step,
 * layer, method, expert): static EP; EPLB (global policy, `E * d` slots)
 * with equal split; the symmetric placement and the asymmetric placement
 * with MicroMoE scheduling. EPLB and the asymmetric placement are
 * recomputed every `rebalanceEvery` steps from the loads since the last
 * re-placement (causal; uniform before the first).
 */
export function runEpStage(
  config: SimConfig,
  loads: Int32Array,
  methods: number,
): EpResult | null {
  const c = config.ep;
  if (!c) return null;
  const sizes = config;
  const { steps, layers, experts: E } = sizes;
  const G = c.gpus, M = methods, K = EP_STRATEGIES.length;
  const start = evalStart(config);
  const rows = steps * layers * M * K * G;
  const table = {
    step: new Int32Array(rows),
    layer: new Int32Array(rows),
    method: new Int32Array(rows),
    strategy: new Int32Array(rows),
    gpu: new Int32Array(rows),
    tokens: new Int32Array(rows),
  };
  const fixed = staticPlacement(E, G);
  const sym = epSymmetricPlacement(c, E, sizes.seed);
  const symScheduler = exactScheduler(sym);
  const moved: Placement[] = [], asym: Placement[] = [];
  const asymScheduler: ReturnType<typeof exactScheduler>[] = [];
  const history = new Float64Array(layers * M * E).fill(1);
  const ratio = new Float64Array(M * K), time = new Float64Array(M * K);
  const stepTime = new Float64Array(M * K);
  const gpuTokens = new Int32Array(G);
  // How each strategy splits a batch's loads over the GPUs, by name; `lm`
  // is the (layer, method) whose placements the re-placing ones use.
  type Split = (lm: number, batch: Int32Array, out: Int32Array) => void;
  const exact = c.scheduler === "exact";
  const split: Record<EpStrategy, Split> = {
    static: (_, batch, out) => equalSplit(fixed, batch, out),
    eplb: (lm, batch, out) => equalSplit(moved[lm], batch, out),
    "symmetric-lp": exact
      ? (_, batch, out) => out.set(symScheduler.schedule(batch).gpuLoads)
      : (_, batch, out) => equalSplit(sym, batch, out),
    "asymmetric-lp": exact
      ? (lm, batch, out) => out.set(asymScheduler[lm].schedule(batch).gpuLoads)
      : (lm, batch, out) => equalSplit(asym[lm], batch, out),
  };
  const strategies = EP_STRATEGIES.map((name) => split[name]);
  let row = 0;
  for (let s = 0; s < steps; s++) {
    stepTime.fill(0);
    for (let l = 0; l < layers; l++) {
      for (let m = 0; m < M; m++) {
        const lm = l * M + m;
        const w = history.subarray(lm * E, lm * E + E);
        if (s % c.rebalanceEvery === 0) {
          const weight = Array.from(w);
          moved[lm] = placementFromPhy2log(
            rebalanceExperts([weight], {
              replicas: E * c.replicas,
              groups: 1,
              nodes: 1,
              gpus: G,
            }).phy2log[0],
            E,
            G,
          );
          asym[lm] = asymmetricPlacement(weight.map(Math.round), G, {
            replicas: c.replicas,
            iterations: 64,
            seed: sizes.seed,
          });
          asymScheduler[lm] = exactScheduler(asym[lm]);
          w.fill(0);
        }
        const base = ((s * layers + l) * M + m) * E;
        const batch = loads.subarray(base, base + E);
        for (let j = 0; j < E; j++) w[j] += batch[j];
        for (let k = 0; k < K; k++) {
          strategies[k](lm, batch, gpuTokens);
          let max = 0, total = 0;
          for (let g = 0; g < G; g++, row++) {
            table.step[row] = s, table.layer[row] = l, table.method[row] = m;
            table.strategy[row] = k, table.gpu[row] = g;
            table.tokens[row] = gpuTokens[g];
            total += gpuTokens[g];
            if (gpuTokens[g] > max) max = gpuTokens[g];
          }
          if (s >= start) {
            ratio[m * K + k] += total === 0 ? 1 : max / (total / G);
            stepTime[m * K + k] += stepTimeMs(max);
          }
        }
      }
    }
    if (s >= start) { for (let i = 0; i < M * K; i++) time[i] += stepTime[i]; }
  }
  const window = steps - start;
  const summaries = Array.from({ length: M }, (_, m) => {
    const out: Record<string, EpStrategySummary> = {};
    EP_STRATEGIES.forEach((name, k) => {
      const ms = time[m * K + k] / window;
      const base = time[m * K + EP_STRATEGY.static] / window;
      out[name] = {
        gpuMaxOverMean: ratio[m * K + k] / (window * layers),
        stepTimeMs: ms,
        throughputGain: base > 0 && ms > 0 ? throughputGain(base, ms) : 0,
      };
    });
    return out;
  });
  return { config: c, table, summaries };
}
