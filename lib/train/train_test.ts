import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { loadBrown, stripBrownTags } from "./brown.ts";
import { evaluateMoe } from "./evaluate.ts";
import { trainMoe } from "./train.ts";
import { createMoeModel } from "./model.ts";
import { decodeText } from "./vocab.ts";

const corpus = loadBrown({ maxFiles: 20 });
const SMALL = {
  dim: 16,
  hidden: 32,
  experts: 4,
  topK: 2,
  steps: 80,
  batchSeqs: 4,
  seqLen: 16,
  validTokens: 1024,
  lr: 1e-2,
};

describe("Brown corpus", () => {
  test("split by file, tags stripped", () => {
    assert.deepEqual(corpus.validFiles, ["ca10", "ca20"]);
    assert.equal(corpus.trainFiles.length, 18);
    assert.equal(
      decodeText(corpus.train.subarray(0, 40)),
      "the fulton county grand jury said friday",
    );
    assert.equal(stripBrownTags("a/at b/c/nn"), "a b/c");
  });
});

describe("trainMoe", () => {
  test("training lowers the validation loss", () => {
    const before = evaluateMoe(createMoeModel(SMALL, 1), corpus.valid, {
      tokens: 1024,
      batchSeqs: 4,
      seqLen: 16,
    });
    const run = trainMoe(corpus, SMALL);
    assert.ok(run.loss < before.loss - 0.5, `${run.loss} vs ${before.loss}`);
    assert.ok(run.curve.loss[79] < run.curve.loss[0]);
  });

  test("same seed, same numbers; another seed, other numbers", () => {
    const opts = { ...SMALL, steps: 20, method: "aux(alpha=0.01)" };
    const a = trainMoe(corpus, opts), b = trainMoe(corpus, opts);
    assert.deepEqual(a.curve.loss, b.curve.loss);
    assert.deepEqual(a.model.params, b.model.params);
    assert.equal(a.perplexity, b.perplexity);
    const c = trainMoe(corpus, { ...opts, seed: 2 });
    assert.notDeepEqual(a.curve.loss, c.curve.loss);
  });

  test("Loss-Free biases balance the validation load that plain top-K leaves skewed", () => {
    const opts = { ...SMALL, steps: 60 };
    const none = trainMoe(corpus, opts);
    const lf = trainMoe(corpus, { ...opts, method: "loss-free(rate=0.02)" });
    assert.ok(
      lf.maxVioGlobal < none.maxVioGlobal,
      `${lf.maxVioGlobal} vs ${none.maxVioGlobal}`,
    );
    assert.ok(lf.bias.some((b) => b !== 0));
    assert.ok(none.bias.every((b) => b === 0));
    // Loss-free changes selection only: its router objective stays zero.
    assert.ok(lf.curve.aux.every((v) => v === 0));
  });

  test("rejects bad options", () => {
    assert.throws(() => trainMoe(corpus, { steps: 0 }), RangeError);
    assert.throws(() => trainMoe(corpus, { method: "no-such" }), RangeError);
    assert.throws(
      () => trainMoe({ train: new Uint8Array(5), valid: corpus.valid }),
      RangeError,
    );
  });
});
