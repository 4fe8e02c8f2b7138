import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { olmoeExpertCounts } from "./olmoe_counts.ts";
import { loadImbalance } from "./load_imbalance.ts";

const FIXTURE = join(
  dirname(fileURLToPath(import.meta.url)),
  "../../data/fixtures/olmoe_counts.json",
);

describe("olmoeExpertCounts", () => {
  test("fixture: one row per model, kind, domain, layer and expert", () => {
    const t = olmoeExpertCounts(JSON.parse(readFileSync(FIXTURE, "utf8")));
    // 3 (kind, domain) pairs x 2 layers x 4 experts
    assert.equal(t.height, 24);
    const m = loadImbalance(t);
    assert.equal(m.height, 6);
    // "code", layer 0: [0, 0, 0, 100] -> max/mean = 100 / 25
    assert.deepEqual(m.row(2), [
      "tiny",
      "expert_counts",
      "code",
      0,
      0,
      100,
      4,
      3,
    ]);
  });

  test("malformed shapes are TypeErrors naming the path", () => {
    assert.throws(() => olmoeExpertCounts({}), /counts must be an object/);
    assert.throws(
      () =>
        olmoeExpertCounts({ counts: { m: { k: { d: { "0": [1, -1] } } } } }),
      {
        name: "TypeError",
        message:
          'counts.m.k.d["0"][1] must be a non-negative count: current value is -1',
      },
    );
    assert.throws(
      () => olmoeExpertCounts({ counts: { m: { k: { d: { x: [1] } } } } }),
      /counts.m.k.d\["x"\] must be keyed by a layer number/,
    );
  });
});
