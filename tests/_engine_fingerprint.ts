// Prints, as JSON, the bits of what moelab computes from a seed where an
// engine's own Math functions could show: a small character-model
// training and a small transformer training (losses every step,
// perplexity), a synthetic workload's scores on both hosts, Rng's normal
// draws, and the Megatron router's weights. tests/engines_test.ts runs it
// on Deno and on Bun and compares.
import { Rng, syntheticWorkload, topkRouting } from "../mod.ts";
import {
  loadBrown,
  runTrainExperiment,
  trainTransformer,
} from "../lib/train/mod.ts";

/** FNV-1a over the float64 bits of `values`, as hex. */
function digest(values: ArrayLike<number>): string {
  const f = new Float64Array(1), w = new Uint32Array(f.buffer);
  let h = 0x811c9dc5;
  for (let i = 0; i < values.length; i++) {
    f[0] = values[i];
    for (const x of [w[0], w[1]]) h = Math.imul(h ^ x, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

const out: Record<string, string> = {};
const char = runTrainExperiment({
  methods: ["none", "loss-free(rate=0.02)", "aux(alpha=1e-2)"],
  seeds: [1],
  steps: 20,
  dim: 8,
  hidden: 8,
  experts: 4,
  topK: 1,
  batchSeqs: 2,
  seqLen: 16,
  validTokens: 256,
}, { corpus: loadBrown({ maxFiles: 10 }) });
for (const r of char.runs) {
  out[`char ${r.method} loss`] = digest(r.curve.loss);
  out[`char ${r.method} perplexity`] = digest([r.perplexity]);
}
const text = Int32Array.from({ length: 4000 }, (_, i) => (i * i + 3 * i) % 11);
for (const method of ["loss-free(rate=0.01)", "aux(alpha=1e-2)"]) {
  const run = await trainTransformer({ train: text, valid: text }, {
    vocab: 11,
    seqLen: 16,
    dim: 16,
    heads: 2,
    layers: 1,
    experts: 4,
    topK: 2,
    steps: 12,
    warmup: 2,
    batchSeqs: 4,
    lr: 1e-2,
    validTokens: 256,
    method,
  });
  out[`transformer ${method} loss`] = digest(run.curve.loss);
  out[`transformer ${method} perplexity`] = digest([run.perplexity]);
}
for (const host of ["cpu", "wasm"] as const) {
  const w = syntheticWorkload({
    seed: 3,
    steps: 4,
    layers: 1,
    tokens: 512,
    experts: 16,
    drift: 0.05,
    host,
  });
  out[`synthetic ${host}`] = digest(w.scores(3, 0).data);
}
const rng = new Rng(5);
out["normal"] = digest(Array.from({ length: 20000 }, () => rng.normal()));
const logits = new Float32Array(64 * 8).map((_, i) => Math.sin(i) * 4);
out["topkRouting softmax"] = digest(
  topkRouting(
    { data: logits, tokens: 64, experts: 8 },
    { topk: 2, scoreFunction: "softmax" },
  ).routing.weights,
);
console.log(JSON.stringify(out));
