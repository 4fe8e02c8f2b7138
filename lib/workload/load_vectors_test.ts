import { describe, test } from "node:test";
import assert from "node:assert/strict";
import pl from "nodejs-polars";
import { loadVectors } from "./load_vectors.ts";
import { loadImbalance } from "./load_imbalance.ts";

describe("loadVectors and loadImbalance", () => {
  const table = pl.DataFrame({
    dataset: ["a", "a", "b", "a"],
    step: [0, 0, 0, 0],
    layer: [1, 1, 1, 1],
    expert: [0, 2, 1, 0],
    load: [2, 1, 6, 3],
  });

  test("ids split vectors; repeated experts add up; absent ones are 0", () => {
    const v = loadVectors(table);
    assert.equal(v.length, 2);
    assert.deepEqual(v[0].ids, { dataset: "a" });
    assert.deepEqual([...v[0].loads], [5, 0, 1]);
    assert.deepEqual([...v[1].loads], [0, 6, 0]);
    assert.equal(loadVectors(table, { experts: 5 })[0].loads.length, 5);
  });

  test("imbalance by hand: [5, 0, 1] -> 5 / 2; [0, 6, 0] -> 6 / 2", () => {
    const m = loadImbalance(table);
    assert.deepEqual(m.toRecords(), [
      {
        dataset: "a",
        step: 0,
        layer: 1,
        totalLoad: 6,
        maxOverMean: 2.5,
        maxVio: 1.5,
      },
      {
        dataset: "b",
        step: 0,
        layer: 1,
        totalLoad: 6,
        maxOverMean: 3,
        maxVio: 2,
      },
    ]);
  });

  test("bad input", () => {
    assert.throws(() => loadVectors(table, { experts: 2 }), RangeError);
    assert.throws(
      () => loadVectors(pl.DataFrame({ step: [0], layer: [0], expert: [0] })),
      /table must have a column "load"/,
    );
  });
});
