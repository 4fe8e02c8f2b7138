// Route throughput on the CPU: route() against a plain sort-based top-K
// baseline measured in the same run.
import { route } from "../lib/route/route.ts";
import { Rng } from "../lib/scores/rng.ts";
import { medianMs, printTable } from "./_timing.ts";

function sortTopK(
  data: Float32Array,
  tokens: number,
  experts: number,
  k: number,
): Int32Array {
  const out = new Int32Array(tokens * k);
  const idx = Array.from({ length: experts }, (_, j) => j);
  for (let i = 0; i < tokens; i++) {
    const base = i * experts;
    idx.sort((a, b) => data[base + b] - data[base + a] || a - b);
    for (let r = 0; r < k; r++) out[i * k + r] = idx[r];
  }
  return out;
}

/** Runs the suite. */
export function run(): Promise<void> {
  const rows: (string | number)[][] = [];
  for (const [tokens, experts, k] of [[4096, 64, 6], [16384, 256, 8]]) {
    const rng = new Rng(7);
    const data = new Float32Array(tokens * experts);
    for (let i = 0; i < data.length; i++) data[i] = rng.uniform();
    const scores = { data, tokens, experts };
    const fast = medianMs(() => void route(scores, { k }));
    const slow = medianMs(() => void sortTopK(data, tokens, experts, k), 3, 1);
    rows.push([
      `${tokens} x ${experts}, k=${k}`,
      fast.toFixed(2),
      ((tokens * experts) / fast / 1e3).toFixed(1),
      slow.toFixed(2),
      (slow / fast).toFixed(1),
    ]);
  }
  printTable(
    ["size", "route ms", "Mscores/s", "sort baseline ms", "speed-up"],
    rows,
  );
  return Promise.resolve();
}
