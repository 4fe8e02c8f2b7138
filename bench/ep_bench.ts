// One MicroMoE micro-batch schedule at 64 GPUs x 256 experts, 2 replicas
// each: the exact combinatorial scheduler against HiGHS (persistent model,
// warm-started) and glpk.js (rebuilt each call), on the same micro-batches
// in the same run. Every scheduler is reused across micro-batches, as a
// training loop would.
import {
  createScheduler,
  loadLpSolvers,
  randomPlacement,
  symmetricPlacement,
} from "../mod.ts";
import type { Placement } from "../mod.ts";
import { Rng } from "../lib/scores/rng.ts";
import { printTable } from "./_timing.ts";

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
}
