// Per-batch cost of each balancer (route, then update), on the default
// preset's workload, as a ratio to greedy top-K measured in the same run.
import { readFileSync } from "node:fs";
import { createBalancer } from "../lib/route/registry.ts";
import { syntheticWorkload } from "../lib/workload/synthetic.ts";
import type { ScoreMatrix } from "../lib/types.ts";
import { medianMs, printTable } from "./_timing.ts";

const METHODS = [
  "greedy",
  "loss-free",
  "bip",
  "bip(T=1)",
  "bip(T=4)",
  "bip(clipTokenPrices=false)",
  "quantile",
  "sinkhorn",
  "sinkhorn(temperature=0.1)",
  "expert-choice",
  "capacity",
  "capacity(drop=position)",
  "exact",
];

/** Runs the suite. */
export function run(): Promise<void> {
  const preset = JSON.parse(
    readFileSync(
      new URL("../data/presets/default.json", import.meta.url),
      "utf8",
    ),
  );
  const { kind: _kind, ...shape } = preset.workload;
  const steps = 12;
  const workload = syntheticWorkload({
    ...shape,
    seed: preset.seed,
    steps,
    layers: 1,
    tokens: preset.tokens,
    experts: preset.experts,
    gate: preset.gate,
  });
  const batches: ScoreMatrix[] = [];
  for (let s = 0; s < steps; s++) batches.push(workload.scores(s, 0));
  const ctx = {
    layers: 1,
    experts: preset.experts,
    k: preset.topK,
    normalize: preset.normalize,
  };
  const times = METHODS.map((spec) => {
    const b = createBalancer(spec, ctx);
    let step = 0;
    // Stateful methods keep warming up across calls: each call is the next batch.
    return medianMs(
      () => {
        const scores = batches[step++ % steps];
        b.update(0, scores, b.route(0, scores));
      },
      spec === "exact" ? 5 : 24,
      4,
    );
  });
  printTable(
    ["method", "ms per batch", "x greedy"],
    METHODS.map((m, i) => [
      m,
      times[i].toFixed(2),
      (times[i] / times[0]).toFixed(1),
    ]),
  );
  console.log(
    `\n${preset.tokens} tokens x ${preset.experts} experts, top-${preset.topK}, one layer; median over successive batches.`,
  );
  return Promise.resolve();
}
