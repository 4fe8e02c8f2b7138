// `deno task figures`: regenerates the README's picture, data/convergence.svg:
// MaxVio_batch over steps on the default preset of `deno task sim`, for
// greedy top-K and Loss-Free Balancing at three update rates. Deterministic:
// the same code gives the same file.
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runSimulation } from "@moelab/balance";
import { convergencePlot } from "@moelab/balance/report";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const preset = JSON.parse(
  readFileSync(join(root, "data/presets/default.json"), "utf8"),
);
const result = runSimulation({
  ...preset,
  methods: [
    "greedy",
    "loss-free(rate=1e-4)",
    "loss-free(rate=1e-3)",
    "loss-free(rate=1e-2)",
  ],
});
const c = result.config;
const path = convergencePlot(result, {
  title:
    `MaxVio_batch over steps, mean over ${c.layers} layers (${c.experts} experts, top-${c.topK}, ${c.tokens} tokens a batch)`,
  width: 760,
}).save(join(root, "data/convergence.svg"));
console.log(`figures: wrote ${path}`);
