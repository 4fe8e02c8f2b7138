import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pl from "nodejs-polars";
import { readTokenTrace, tokenTrace } from "./token_trace.ts";

const FIXTURES = join(
  dirname(fileURLToPath(import.meta.url)),
  "../../data/fixtures",
);
const JSONL = join(FIXTURES, "token_trace.jsonl");
const CSV = join(FIXTURES, "token_trace.csv");

describe("tokenTrace", () => {
  test("JSON lines with list columns and gate probabilities", () => {
    const t = readTokenTrace(JSONL, {
      ids: ["problem_id"],
      token: "token_idx",
      probs: "gating_probs",
    });
    assert.deepEqual(t.columns, [
      "problem_id",
      "step",
      "layer",
      "token",
      "experts",
      "probs",
    ]);
    assert.equal(t.height, 32);
    // Line 6 of the fixture: {"layer": 0, "experts": [7, 2], "token_idx": 5}
    const row = t.row(5);
    assert.deepEqual(row.slice(0, 4), [0, 0, 0, 5]);
    assert.deepEqual(t.getColumn("experts").toArray()[5], [7, 2]);
    assert.deepEqual(t.getColumn("probs").toArray()[5], [0.5, 0.5]);
  });

  test("expert ids as text; tokens numbered per layer in row order", () => {
    const t = readTokenTrace(CSV, {
      layer: "Layer ID",
      experts: "Activated Expert IDs",
    });
    assert.equal(t.height, 30);
    assert.deepEqual([...t.getColumn("token")].slice(8, 12), [8, 9, 0, 1]);
    // Row 4 of the CSV (the token "fox") reads "[0, 8, 9]".
    assert.deepEqual(t.getColumn("experts").toArray()[3], [0, 8, 9]);
    assert.equal(t.columns.includes("probs"), false);
  });

  test("several files stack, numbering tokens on", () => {
    const t = readTokenTrace([CSV, CSV], {
      layer: "Layer ID",
      experts: "Activated Expert IDs",
    });
    assert.equal(t.height, 60);
    assert.equal(t.getColumn("token").max(), 19);
  });

  test("ids split the numbering of tokens", () => {
    const f = pl.DataFrame({ p: ["a", "b", "a"], experts: [[1], [2], [3]] });
    const t = tokenTrace(f, { ids: ["p"] });
    assert.deepEqual([...t.getColumn("token")], [0, 0, 1]);
  });

  test("a missing column is a TypeError naming it", () => {
    const f = pl.DataFrame({ layer: [0], ids: [[1, 2]] });
    assert.throws(() => tokenTrace(f), {
      name: "TypeError",
      message:
        'mapping.experts names column "experts", which the table lacks: its columns are "layer", "ids"',
    });
    assert.throws(
      () => tokenTrace(f, { experts: "ids", probs: "gating_probs" }),
      /mapping.probs names column "gating_probs"/,
    );
  });

  test("malformed cells name column and row", () => {
    const csv = pl.readCSV('layer,e\n0,"[1, 2]"\n0,"[1; 2]"\n');
    assert.throws(() => tokenTrace(csv, { experts: "e" }), {
      name: "SyntaxError",
      message:
        'column "e" must hold lists of numbers such as "[8, 29, 42]": row 1 holds "[1; 2]"',
    });
    const neg = pl.DataFrame({ experts: [[1, 2], [3, -1]] });
    assert.throws(
      () => tokenTrace(neg),
      /column "experts" must hold lists of non-negative integer expert ids: row 1 holds -1/,
    );
    const probs = pl.DataFrame({ experts: [[1, 2]], probs: [[0.5]] });
    assert.throws(
      () => tokenTrace(probs),
      /column "probs" must hold one probability per expert: row 0 holds 1 for 2 experts/,
    );
    const num = pl.DataFrame({ experts: [1, 2] });
    assert.throws(() => tokenTrace(num), TypeError);
    const layer = pl.DataFrame({ layer: [0, -3], experts: [[1], [2]] });
    assert.throws(() => tokenTrace(layer), /"layer" .*row 1 holds -3/);
  });

  test("a bad JSON line is a SyntaxError naming the line", () => {
    const dir = mkdtempSync(join(tmpdir(), "moelab-"));
    const path = join(dir, "bad.jsonl");
    writeFileSync(path, '{"experts": [1]}\n{"experts": [2\n');
    try {
      assert.throws(
        () => readTokenTrace(path),
        /bad.jsonl line 2 is not valid JSON/,
      );
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
