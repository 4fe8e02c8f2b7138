// One MicroMoE micro-batch schedule at 64 GPUs x 256 experts, 2 replicas
// each: the exact combinatorial scheduler against HiGHS (persistent model,
// warm-started) and glpk.js (rebuilt each call), on the same micro-batches
// in the same run. Every scheduler is reused across micro-batches, as a
// training loop would. Then the sim's EP stage at DeepSeek-V3's sizes (64
// GPUs in 8 nodes, 320 slots, 4 methods): its cost per layer and step, each
// strategy beside static EP alone, and the local-first scheduler against
// the exact one.
import {
  createEpStage,
  createScheduler,
  exactScheduler,
  loadLpSolvers,
  localFirstScheduler,
  placementFromPhy2log,
  randomPlacement,
  rebalanceExperts,
  resolveSimConfig,
  symmetricPlacement,
} from "../mod.ts";
import type { Placement } from "../mod.ts";
import { Rng } from "../lib/scores/rng.ts";
import { medianMs, printTable } from "./_timing.ts";

const G = 64, E = 256, TOKENS = 16384 * 8, BATCHES = 24;

/** Zipf micro-batches (exponent s) with a random hot-expert order. */
function batches(s: number, seed: number): Int32Array[] {
  const rng = new Rng(seed);
  const rank = rng.shuffle(Int32Array.from({ length: E }, (_, i) => i));
  return Array.from({ length: BATCHES }, () => {
    const loads = new Int32Array(E);
    for (let t = 0; t < TOKENS; t++) loads[rank[rng.zipf(E, s) - 1]]++;
    return loads;
  });
}

/** Median microseconds per schedule over the batches (after one warm-up pass). */
function median(
  p: Placement,
  solver: "exact" | "glpk" | "highs",
  data: Int32Array[],
): { us: number; optimum: number } {
  const s = createScheduler(p, { solver });
  for (const b of data) s.schedule(b);
  const times: number[] = [];
  let optimum = 0;
  for (const b of data) {
    const t0 = performance.now();
    optimum = s.schedule(b).optimum;
    times.push((performance.now() - t0) * 1e3);
  }
  s.dispose?.();
  times.sort((a, b) => a - b);
  return { us: times[times.length >> 1], optimum };
}

/** Runs the suite. */
export async function run(): Promise<void> {
  await loadLpSolvers();
  const rows: (string | number)[][] = [];
  const cases: [string, Placement, number][] = [
    ["complete Cayley, s=1.0", symmetricPlacement(E, G), 1.0],
    ["complete Cayley, s=1.5", symmetricPlacement(E, G), 1.5],
    ["random shuffle, s=1.0", randomPlacement(E, G, { seed: 1 }), 1.0],
  ];
  for (const [name, p, s] of cases) {
    const data = batches(s, 7);
    const exact = median(p, "exact", data);
    const highs = median(p, "highs", data);
    const glpk = median(p, "glpk", data);
    if (Math.abs(highs.optimum - exact.optimum) > 1e-6 * exact.optimum) {
      throw new Error(
        `HiGHS and exact disagree: ${highs.optimum} vs ${exact.optimum}`,
      );
    }
    rows.push([
      name,
      exact.us.toFixed(0),
      highs.us.toFixed(0),
      glpk.us.toFixed(0),
      (highs.us / exact.us).toFixed(1),
      (glpk.us / exact.us).toFixed(1),
    ]);
  }
  printTable(
    [
      "64 GPUs x 256 experts, d=2",
      "exact us",
      "HiGHS us",
      "glpk.js us",
      "HiGHS / exact",
      "glpk / exact",
    ],
    rows,
  );
  runStage();
}

/** The EP stage's loads: `steps` steps of `layers x methods` Zipf batches. */
function stageLoads(
  steps: number,
  layers: number,
  methods: number,
  seed: number,
): Int32Array[] {
  const rng = new Rng(seed), tokens = 16384 * 8;
  // Per (layer, method): a hot-expert order and a Zipf exponent; the
  // methods from balanced (s = 0.3) to greedy-like (s = 1.2).
  const order = Array.from(
    { length: layers * methods },
    () => rng.shuffle(Int32Array.from({ length: E }, (_, i) => i)),
  );
  return Array.from({ length: steps }, () => {
    const a = new Int32Array(layers * methods * E);
    for (let lm = 0; lm < layers * methods; lm++) {
      const s = 0.3 + 0.3 * (lm % methods);
      // Expected loads with 2 % noise: a Zipf draw per token is too slow here.
      let norm = 0;
      for (let r = 1; r <= E; r++) norm += r ** -s;
      let left = tokens;
      for (let r = 1; r <= E; r++) {
        const x = r === E ? left : Math.min(
          left,
          Math.round(tokens * r ** -s / norm * (0.98 + 0.04 * rng.uniform())),
        );
        a[lm * E + order[lm][r - 1]] = x;
        left -= x;
      }
    }
    return a;
  });
}

/** The EP stage's milliseconds per layer and step (all methods) for `strategies`. */
function stageMs(strategies: string[], data: Int32Array[], layers: number) {
  const config = resolveSimConfig({
    steps: data.length,
    layers,
    experts: E,
    topK: 8,
    tokens: 16384,
    groups: 8,
    topGroups: 4,
    methods: ["greedy", "loss-free", "bip", "quantile"],
    ep: {
      gpus: 64,
      gpusPerNode: 8,
      redundant: 64,
      strategies,
      hardware: "h800",
      hidden: 7168,
      ffnFactor: 2048 / 7168,
      dispatchBytes: 1,
      combineBytes: 2,
      rebalanceEvery: 50,
    },
  });
  return medianMs(
    () => {
      const stage = createEpStage(config, 4)!;
      data.forEach((a, s) => stage.addStep(s, a));
      stage.finish();
    },
    3,
    1,
  ) / (data.length * layers);
}

/** The EP stage at DeepSeek-V3's sizes, and local-first scheduling. */
export function runStage(): void {
  const layers = 2, data = stageLoads(100, layers, 4, 11);
  const base = stageMs(["static"], data, layers);
  const rows: (string | number)[][] = [[
    "static",
    base.toFixed(3),
    "1.0",
    (base * 61 * 200 / 1e3).toFixed(1),
  ]];
  for (
    const s of [
      "eplb",
      "eplb-hierarchical",
      "hierarchical-lp",
      "asymmetric-lp",
    ]
  ) {
    const ms = stageMs(["static", s], data, layers);
    rows.push([
      `static + ${s}`,
      ms.toFixed(3),
      (ms / base).toFixed(1),
      (ms * 61 * 200 / 1e3).toFixed(1),
    ]);
  }
  const all = stageMs(
    [
      "static",
      "eplb",
      "eplb-hierarchical",
      "hierarchical-lp",
      "asymmetric-lp",
    ],
    data,
    layers,
  );
  rows.push([
    "all five",
    all.toFixed(3),
    (all / base).toFixed(1),
    (all * 61 * 200 / 1e3).toFixed(1),
  ]);
  printTable(
    [
      "EP stage, 64 GPUs in 8 nodes, 320 slots, 4 methods (re-placement every 50 steps)",
      "ms per layer-step",
      "/ static",
      "s for 61 layers x 200 steps",
    ],
    rows,
  );
  // Local-first against exact scheduling on a hierarchical and a random
  // 8-node placement.
  const loads = data[0].subarray(0, E);
  const hier = placementFromPhy2log(
    rebalanceExperts([Array.from(loads)], {
      replicas: 320,
      groups: 8,
      nodes: 8,
      gpus: 64,
    }).phy2log[0],
    E,
    G,
  );
  const out: (string | number)[][] = [];
  for (
    const [name, p] of [
      ["hierarchical EPLB, 320 slots", hier],
      ["random, 2 replicas", randomPlacement(E, G, { seed: 3 })],
    ] as [string, Placement][]
  ) {
    const batch = data.slice(0, 24).map((a) => a.subarray(0, E));
    const exact = exactScheduler(p), local = localFirstScheduler(p, 8);
    const a = medianMs(() => batch.forEach((b) => exact.schedule(b)));
    const b = medianMs(() => batch.forEach((b) => local.schedule(b)));
    out.push([
      name,
      (a / 24 * 1e3).toFixed(0),
      (b / 24 * 1e3).toFixed(0),
      (b / a).toFixed(1),
    ]);
  }
  printTable(
    ["64 GPUs in 8 nodes", "exact us", "local-first us", "local / exact"],
    out,
  );
}
