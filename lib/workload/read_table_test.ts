import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pl from "nodejs-polars";
import { readTable } from "./read_table.ts";
import { readLoadTable } from "./load_table.ts";

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

describe("CSV cells beyond what Polars or JavaScript hold", () => {
  const work = mkdtempSync(join(tmpdir(), "moelab-read-table-"));
  const csv = (text: string) => {
    const path = join(work, "loads.csv");
    writeFileSync(path, text);
    return path;
  };

  test("an integer beyond 64 or 128 bits is named by column and row", () => {
    for (const big of ["18446744073709551616", "-1" + "0".repeat(40)]) {
      const path = csv(`step,layer,expert,load\n0,0,0,1\n${big},0,0,1\n`);
      assert.throws(() => readLoadTable(path), {
        name: "RangeError",
        message: /^column "step" must hold non-negative integers: row 1 holds /,
      });
    }
  });

  test("an infinite load is refused", () => {
    const path = csv("step,layer,expert,load\n0,0,0,1e400\n");
    assert.throws(() => readLoadTable(path), {
      name: "RangeError",
      message:
        'column "load" must hold non-negative loads: row 0 holds Infinity',
    });
  });

  test("a malformed parquet file is a SyntaxError naming the file", () => {
    for (const name of ["loads.parquet", "loads"]) {
      const path = join(work, name);
      writeFileSync(path, "PAR1 and nothing else");
      assert.throws(() => readTable(path), {
        name: "SyntaxError",
        message: new RegExp(`^${path} is not a valid parquet file: `),
      });
    }
  });

  test("a malformed CSV is a SyntaxError naming the file", () => {
    const path = csv('a,b\n1,2,3\n"x\n');
    assert.throws(() => readTable(path), {
      name: "SyntaxError",
      message: new RegExp(`^${path} is not a valid CSV table: `),
    });
  });

  test("cleanup", () => rmSync(work, { recursive: true, force: true }));
});
