import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pl from "nodejs-polars";
import { readTable } from "./read_table.ts";

describe("readTable under a name that does not say the format", () => {
  const work = mkdtempSync(join(tmpdir(), "moelab-read-table-"));
  const rows = [{ step: 0, layer: 1, expert: 2, load: 3 }, {
    step: 1,
    layer: 1,
    expert: 0,
    load: 5,
  }];

  test("parquet, a JSON array and JSON lines read by content", () => {
    const parquet = join(work, "loads.dat");
    pl.DataFrame(rows).writeParquet(parquet);
    const array = join(work, "loads.txt");
    writeFileSync(array, JSON.stringify(rows));
    const lines = join(work, "loads");
    writeFileSync(lines, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
    for (const path of [parquet, array, lines]) {
      const t = readTable(path);
      assert.deepEqual(t.columns, ["step", "layer", "expert", "load"], path);
      assert.deepEqual([...t.getColumn("load")], [3, 5], path);
    }
  });

  test("anything else is a RangeError naming the path", () => {
    const text = join(work, "loads.bin");
    writeFileSync(text, "step layer expert load\n");
    assert.throws(
      () => readTable(text),
      (e: Error) => e instanceof RangeError && e.message.includes(text),
    );
  });

  test("cleanup", () => rmSync(work, { recursive: true, force: true }));
});
