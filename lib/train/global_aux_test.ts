// The aux-loss methods of trainMoe split into micro-batches, and the
// global-batch loss, against the forms they reduce to.
import { test } from "node:test";
import assert from "node:assert/strict";
import { trainMoe } from "./train.ts";
import { parseTrainMethod } from "./method.ts";
import { auxLoss, createGlobalAuxTracker, globalAuxLoss } from "./aux_loss.ts";

const text = Uint8Array.from({ length: 4000 }, (_, i) => 1 + ((i * 7) % 11));
const corpus = { train: text, valid: text };
const SMALL = {
  dim: 8,
  hidden: 16,
  experts: 4,
  topK: 2,
  steps: 6,
  batchSeqs: 4,
  seqLen: 8,
  validTokens: 64,
  lr: 1e-2,
};

test("parseTrainMethod reads global-aux and microBatches", () => {
  assert.deepEqual(parseTrainMethod("global-aux(alpha=1e-2,microBatches=4)"), {
    label: "global-aux(alpha=1e-2,microBatches=4)",
    kind: "global-aux",
    alpha: 0.01,
    microBatches: 4,
  });
  assert.equal(parseTrainMethod("global-aux").kind, "global-aux");
  assert.throws(
    () => parseTrainMethod("seq-aux(microBatches=2)"),
    /options: alpha/,
  );
  assert.throws(() => parseTrainMethod("aux(microBatches=0)"), /microBatches/);
});

test("aux with one micro-batch per sequence is the sequence-wise loss", () => {
  const a = trainMoe(corpus, {
    ...SMALL,
    method: "aux(alpha=0.1,microBatches=4)",
  });
  const s = trainMoe(corpus, { ...SMALL, method: "seq-aux(alpha=0.1)" });
  assert.deepEqual(a.curve.aux, s.curve.aux);
  assert.deepEqual(a.curve.loss, s.curve.loss);
});

test("global-aux over micro-batches is the batch-wise loss on the global batch", () => {
  const g = trainMoe(corpus, {
    ...SMALL,
    method: "global-aux(alpha=0.1,microBatches=4)",
  });
  const b = trainMoe(corpus, { ...SMALL, method: "aux(alpha=0.1)" });
  const m = trainMoe(corpus, {
    ...SMALL,
    method: "aux(alpha=0.1,microBatches=4)",
  });
  assert.deepEqual(g.curve.aux, b.curve.aux);
  assert.notDeepEqual(g.curve.aux, m.curve.aux);
  assert.throws(
    () => trainMoe(corpus, { ...SMALL, method: "global-aux(microBatches=3)" }),
    /microBatches must divide the batch's tokens \(32\): current value is 3/,
  );
});

test("the global loss of one micro-batch is the batch-wise loss; its counts average over micro-batches", () => {
  const scores = new Float64Array([0.6, 0.3, 0.1, 0.2, 0.5, 0.3]);
  const selected = new Int32Array([0, 1]);
  const batch = { scores, tokens: 2, experts: 3, selected, k: 1 };
  const tracker = createGlobalAuxTracker(3);
  const g = globalAuxLoss(batch, { alpha: 0.5, tracker });
  assert.ok(Math.abs(g - auxLoss(batch, { alpha: 0.5 })) < 1e-15);
  // A second micro-batch routed all to expert 2: counts [1, 1, 2] / 2.
  const next = { ...batch, selected: new Int32Array([2, 2]) };
  const h = globalAuxLoss(next, { alpha: 0.5, tracker });
  // 0.5 * 3 / (1 * 4) * (0.5 * 0.8 + 0.5 * 0.8 + 1 * 0.4) = 0.45.
  assert.ok(Math.abs(h - 0.45) < 1e-15);
  assert.deepEqual([...tracker.counts], [1, 1, 2]);
});
