import { describe, test } from "node:test";
import assert from "node:assert/strict";
import pl from "nodejs-polars";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TableSource, writeTableParquet } from "./_table_writer.ts";

// A table of 1000 rows whose every column is a known function of the row.
const ROWS = 1000;
const LABELS = ["greedy", "loss-free", "bip"];
const source: TableSource = {
  rows: ROWS,
  columns: [
    { name: "row", kind: "int32" },
    { name: "method", kind: "label", labels: LABELS },
    { name: "half", kind: "float64" },
  ],
  slice(from, to) {
    const row = new Int32Array(to - from), code = new Int32Array(to - from);
    const half = new Float64Array(to - from);
    for (let r = from; r < to; r++) {
      row[r - from] = r, code[r - from] = r % 3, half[r - from] = r / 2;
    }
    return [row, code, half];
  },
};

describe("writeTableParquet", () => {
  test("slices, streamed into one file, give every row in order with labels decoded", () => {
    const dir = mkdtempSync(join(tmpdir(), "moelab-table-"));
    try {
      for (const slice of [ROWS, 128, 7]) {
        const path = join(dir, `t${slice}.parquet`);
        writeTableParquet(path, source, slice);
        const back = pl.readParquet(path);
        assert.deepEqual(back.columns, ["row", "method", "half"]);
        assert.ok(back.getColumn("method").dtype.equals(pl.String));
        assert.ok(back.getColumn("row").dtype.equals(pl.Int32));
        const rows = back.toRecords();
        assert.equal(rows.length, ROWS);
        rows.forEach((r, i) => {
          assert.equal(r.row, i);
          assert.equal(r.method, LABELS[i % 3]);
          assert.equal(r.half, i / 2);
        });
        assert.ok(!existsSync(`${path}.parts`), "the parts are removed");
      }
      assert.equal(readdirSync(dir).length, 3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
