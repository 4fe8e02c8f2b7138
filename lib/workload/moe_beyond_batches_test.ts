import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { moeBeyondBatches } from "./moe_beyond_batches.ts";
import { loadImbalance } from "./load_imbalance.ts";

const FIXTURE = join(
  dirname(fileURLToPath(import.meta.url)),
  "../../data/fixtures/moe_beyond_batches.json",
);

describe("moeBeyondBatches", () => {
  test("fixture: batches become steps, moe_layers the layer ids", () => {
    const t = moeBeyondBatches(JSON.parse(readFileSync(FIXTURE, "utf8")));
    assert.deepEqual(t.columns, [
      "batchTokens",
      "step",
      "layer",
      "expert",
      "load",
    ]);
    assert.equal(t.height, 3 * 2 * 4);
    const m = loadImbalance(t);
    // batch 2, layer 2: [0, 0, 0, 8] -> 8 / 2; batch 1, layer 1: [1,2,3,4] -> 4 / 2.5
    assert.deepEqual(
      [...m.getColumn("maxOverMean")],
      [1, 2, 1.6, 2, 1, 4],
    );
    assert.deepEqual([...m.getColumn("layer")], [1, 2, 1, 2, 1, 2]);
    assert.deepEqual([...m.getColumn("batchTokens")], [6, 6, 5, 5, 4, 4]);
  });

  test("malformed shapes are TypeErrors naming the path", () => {
    assert.throws(() => moeBeyondBatches({ batches: [] }), /moe_layers/);
    assert.throws(
      () =>
        moeBeyondBatches({
          moe_layers: [1],
          batches: [{ tokens: 1, counts: [[1, "2"]] }],
        }),
      /batches\[0\].counts\[0\]\[1\] must be a non-negative count: current value is "2"/,
    );
    assert.throws(
      () =>
        moeBeyondBatches({
          moe_layers: [1, 2],
          batches: [{ tokens: 1, counts: [[1]] }],
        }),
      /batches\[0\].counts must hold one array per MoE layer \(2\)/,
    );
  });
});
