import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { tokenizerFromMerges, trainBpe } from "./tokenizer.ts";
import { trainTransformer } from "./train.ts";
import {
  checkTransformerPreset,
  formatTransformerTable,
  runTransformerExperiment,
} from "./experiment.ts";
import { loadBrownTokens } from "./tokenizer.ts";
import { requireKernel } from "../../ops/registry.ts";
import { matmulOp } from "../../ops/matmul.ts";

// A stream with structure: period-5 runs of tokens, with noise.
const STREAM = Int32Array.from(
  { length: 6000 },
  (_, i) => (i * 7919) % 13 === 0 ? (i * 31) % 12 : i % 5,
);
const TINY = {
  vocab: 12,
  seqLen: 8,
  dim: 8,
  heads: 2,
  layers: 2,
  experts: 4,
  topK: 2,
  hidden: 8,
  steps: 12,
  batchSeqs: 4,
  validTokens: 64,
};

describe("byte-level BPE", () => {
  test("merges the most frequent pair first, counted over word types", () => {
    // Words "ab" once and " ab" twice: pair (97,98) occurs 3 times and
    // beats (32,97) at 2; then " " + "ab" (32,256) occurs twice.
    const bpe = trainBpe("ab ab ab", 258);
    assert.deepEqual(bpe.merges, [[97, 98], [32, 256]]);
    assert.deepEqual([...bpe.encode("ab ab")], [256, 257]);
    assert.equal(bpe.decode(bpe.encode("ab ab ba")), "ab ab ba");
  });
  test("stops when no pair occurs twice", () => {
    assert.equal(trainBpe("abc", 300).vocab, 256);
  });
  test("round-trips Brown text and compresses it", () => {
    const c = loadBrownTokens({ maxFiles: 4, validEvery: 4, vocab: 320 });
    const bpe = tokenizerFromMerges(c.tokenizer.merges);
    const text = c.tokenizer.decode(c.valid);
    assert.deepEqual(bpe.encode(text), c.valid);
    assert.ok(c.valid.length < text.length * 0.7, "fewer tokens than bytes");
  });
  test("bad input names the argument", () => {
    assert.throws(() => trainBpe("a", 100), /vocab/);
    assert.throws(() => tokenizerFromMerges([[1, 300]]), /merges\[0\]\.b/);
    assert.throws(() => trainBpe("ab", 260).decode([999]), /ids\[0\]/);
  });
});

describe("trainTransformer", () => {
  const corpus = { train: STREAM, valid: STREAM.subarray(0, 2000) };
  test("same seed, same curve; another seed, another curve", async () => {
    const a = await trainTransformer(corpus, { ...TINY, seed: 3 });
    const b = await trainTransformer(corpus, { ...TINY, seed: 3 });
    const c = await trainTransformer(corpus, { ...TINY, seed: 4 });
    assert.deepEqual(a.curve.loss, b.curve.loss);
    assert.equal(a.perplexity, b.perplexity);
    assert.notDeepEqual(a.curve.loss, c.curve.loss);
  });
  test("worker threads give the one-thread curve bit for bit", async () => {
    // 256 tokens x 64 x 64 projections: above the size the threaded
    // matmul hands to the calling thread alone.
    const opts = {
      ...TINY,
      dim: 64,
      hidden: 64,
      batchSeqs: 8,
      seqLen: 32,
      steps: 4,
    };
    const threaded = requireKernel(matmulOp, "cpu-threads");
    const before = threaded.calls;
    const one = await trainTransformer(corpus, { ...opts, backend: "cpu" });
    const two = await trainTransformer(corpus, {
      ...opts,
      backend: "cpu-threads",
      threads: 2,
    });
    assert.ok(threaded.calls > before);
    assert.deepEqual(two.curve.loss, one.curve.loss);
    assert.equal(two.perplexity, one.perplexity);
  });
  test("learns: validation perplexity far below the vocabulary", async () => {
    const r = await trainTransformer(corpus, {
      ...TINY,
      steps: 80,
      lr: 1e-2,
    });
    assert.ok(r.perplexity < 4, `perplexity ${r.perplexity}`);
    assert.ok(r.curve.loss[79] < r.curve.loss[0]);
  });
  test("Expert Choice loads every expert exactly; chunks route apart", async () => {
    const r = await trainTransformer(corpus, {
      ...TINY,
      method: "expert-choice",
      routeChunk: 8,
      leakyValidation: true,
    });
    // C = ceil(8 * 2 / 4) = 4 tokens per expert in every chunk.
    for (const mv of r.curve.maxVioBatch) assert.equal(mv, 0);
    assert.ok(r.methodRouted !== undefined);
    assert.equal(r.methodRouted.maxVioGlobal, 0);
  });
  test("every balancing method and router loss trains", async () => {
    for (
      const method of [
        "none",
        "aux(alpha=1e-2)",
        "seq-aux(alpha=1e-2)",
        "global-aux(alpha=1e-2,microBatches=2)",
        "z-loss",
        "loss-free(rate=1e-2)",
        "bip",
        "quantile",
        "expert-choice",
      ]
    ) {
      const r = await trainTransformer(corpus, { ...TINY, steps: 3, method });
      assert.ok(Number.isFinite(r.perplexity), method);
      assert.equal(r.loads.length, 2, method);
    }
  });
  test("global-batch aux is the batch-wise loss; micro-batch aux is not", async () => {
    const run = (method: string) =>
      trainTransformer(corpus, { ...TINY, steps: 4, method });
    const batch = await run("aux(alpha=1e-1)");
    const global = await run("global-aux(alpha=1e-1,microBatches=4)");
    const micro = await run("aux(alpha=1e-1,microBatches=4)");
    assert.deepEqual(global.curve.aux, batch.curve.aux);
    assert.deepEqual(global.curve.loss, batch.curve.loss);
    assert.notDeepEqual(micro.curve.aux, batch.curve.aux);
    assert.ok(batch.curve.aux[0] > 0);
  });
  test("Loss-Free balances the batches better than none", async () => {
    const opts = { ...TINY, steps: 60, lr: 1e-2 };
    const none = await trainTransformer(corpus, { ...opts, method: "none" });
    const lf = await trainTransformer(corpus, {
      ...opts,
      method: "loss-free(rate=5e-2)",
    });
    const late = (r: typeof none) => {
      let s = 0;
      for (let i = 40; i < 60; i++) s += r.curve.maxVioBatch[i] / 20;
      return s;
    };
    assert.ok(late(lf) < late(none), `${late(lf)} vs ${late(none)}`);
  });
  test("bad options name the option and show the value", async () => {
    await assert.rejects(
      trainTransformer(corpus, { ...TINY, routeChunk: 7 }),
      (e) => e instanceof RangeError && /routeChunk.*7/.test(e.message),
    );
    await assert.rejects(
      trainTransformer(corpus, { ...TINY, heads: 3 }),
      (e) => e instanceof RangeError && /heads.*3/.test(e.message),
    );
    await assert.rejects(
      trainTransformer({ train: STREAM, valid: Int32Array.of(1, 2, 99) }, TINY),
      RangeError,
    );
    await assert.rejects(
      trainTransformer(corpus, { ...TINY, method: "nope" }),
      /method must be one of/,
    );
  });
});

describe("runTransformerExperiment", () => {
  test("summaries over seeds and leakage rows", async () => {
    const corpus = loadBrownTokens({ maxFiles: 4, validEvery: 4, vocab: 300 });
    const { vocab: _v, ...shape } = TINY;
    const x = await runTransformerExperiment({
      ...shape,
      methods: ["none", "loss-free(rate=1e-2)"],
      seeds: [1, 2],
      steps: 3,
      leakage: { chunks: [32, 8] },
    }, { corpus });
    assert.equal(x.runs.length, 4);
    const none = x.summary[0];
    const ppl = x.runs.filter((r) => r.method === "none").map((r) =>
      r.perplexity
    );
    assert.equal(none.perplexity.mean, (ppl[0] + ppl[1]) / 2);
    assert.equal(x.leakage.length, 2);
    assert.match(formatTransformerTable(x), /\| loss-free\(rate=1e-2\) \|/);
  });
  test("bad presets name the key", () => {
    assert.throws(() => checkTransformerPreset({ nope: 1 }), /nope/);
    assert.throws(() => checkTransformerPreset({ seeds: [] }), /seeds/);
    assert.throws(() => checkTransformerPreset({ seeds: [3, 1, 3] }), {
      name: "RangeError",
      message: "seeds must be distinct: 3 appears twice",
    });
    assert.throws(
      () => checkTransformerPreset({ leakage: { chunks: [0] } }),
      /leakage\.chunks\[0\]/,
    );
    assert.throws(() => checkTransformerPreset({ model: "mlp" }), /model/);
  });
});
