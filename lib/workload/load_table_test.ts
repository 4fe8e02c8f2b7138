import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pl from "nodejs-polars";
import { loadTable, readLoadTable } from "./load_table.ts";

const FIXTURES = join(
  dirname(fileURLToPath(import.meta.url)),
  "../../data/fixtures",
);
const HARMOENY_LIKE = {
  ids: ["dataset"],
  step: "iteration",
  layer: "layer_idx",
  experts: "rest" as const,
};

describe("loadTable", () => {
  test("wide fixture: 12 rows x 8 experts, values pinned by awk", () => {
    const t = readLoadTable(join(FIXTURES, "loads_wide.csv"), HARMOENY_LIKE);
    assert.deepEqual(t.columns, ["dataset", "step", "layer", "expert", "load"]);
    assert.equal(t.height, 96);
    // awk -F, 'NR>1{for(i=5;i<=12;i++)s+=$i}END{print s}' loads_wide.csv
    assert.equal(t.getColumn("load").sum(), 417);
    // Row 3 (alpha, iteration 1, layer 1): 2,9,1,4,7,3,6,2
    const row = t.filter(
      pl.col("dataset").eq(pl.lit("alpha")).and(pl.col("step").eq(1)).and(
        pl.col("layer").eq(1),
      ),
    );
    assert.deepEqual([...row.getColumn("load")], [2, 9, 1, 4, 7, 3, 6, 2]);
    assert.deepEqual([...row.getColumn("expert")], [0, 1, 2, 3, 4, 5, 6, 7]);
  });

  test("wide with explicit expert columns numbers them by position", () => {
    const f = pl.DataFrame({ a: [1, 2], b: [5, 6], c: [0, 9] });
    const t = loadTable(f, { experts: ["c", "a"] });
    assert.deepEqual([...t.getColumn("expert")], [0, 1, 0, 1]);
    assert.deepEqual([...t.getColumn("load")], [0, 1, 9, 2]);
    assert.deepEqual([...t.getColumn("step")], [0, 0, 0, 0]);
  });

  test("long fixture keeps its rows", () => {
    const t = readLoadTable(join(FIXTURES, "loads_long.csv"));
    assert.equal(t.height, 24);
    // awk -F, 'NR>1{s+=$4}END{print s}' loads_long.csv
    assert.equal(t.getColumn("load").sum(), 138);
  });

  test("long with renamed columns", () => {
    const f = pl.DataFrame({ it: [4, 4], l: [2, 2], e: [0, 1], n: [7, 3] });
    const t = loadTable(f, { step: "it", layer: "l", expert: "e", load: "n" });
    assert.deepEqual(t.toRecords(), [
      { step: 4, layer: 2, expert: 0, load: 7 },
      { step: 4, layer: 2, expert: 1, load: 3 },
    ]);
  });

  test("a missing column is a TypeError naming it", () => {
    const f = pl.DataFrame({ step: [0], expert: [0], count: [1] });
    assert.throws(
      () => loadTable(f),
      {
        name: "TypeError",
        message:
          'mapping.load names column "load", which the table lacks: its columns are "step", "expert", "count"',
      },
    );
    assert.throws(() => loadTable(f, { layer: "layer_idx" }), /"layer_idx"/);
  });

  test("a malformed cell is an error naming column and row", () => {
    const f = pl.readCSV("step,layer,e0,e1\n0,0,1,2\n1,0,3,x\n");
    assert.throws(
      () => loadTable(f, { experts: ["e0", "e1"] }),
      {
        name: "RangeError",
        message: 'column "e1" must hold non-negative loads: row 1 holds "x"',
      },
    );
    const g = pl.DataFrame({ step: [0, 1.5], expert: [0, 0], load: [1, 1] });
    assert.throws(
      () => loadTable(g),
      /column "step" must hold non-negative integers: row 1 holds 1.5/,
    );
    const h = pl.DataFrame({ expert: [0, 1], load: [1, -2] });
    assert.throws(() => loadTable(h), /"load" .*row 1 holds -2/);
    const n = pl.DataFrame({ expert: [0, 1], load: [1, null] });
    assert.throws(() => loadTable(n), /column "load" .*row 1 is empty/);
  });

  test("a bad mapping is a TypeError", () => {
    const f = pl.DataFrame({ expert: [0], load: [1] });
    assert.throws(() => loadTable(f, { experts: [] }), TypeError);
    assert.throws(
      () => loadTable(f, { experts: ["load"], load: "load" }),
      TypeError,
    );
    assert.throws(
      // deno-lint-ignore no-explicit-any
      () => loadTable(f, null as any),
      TypeError,
    );
  });

  test("a missing file is a RangeError", () => {
    assert.throws(() => readLoadTable(join(FIXTURES, "nope.csv")), RangeError);
  });
});
