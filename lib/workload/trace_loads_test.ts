import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pl from "nodejs-polars";
import { readTokenTrace, tokenTrace } from "./token_trace.ts";
import { traceLoads } from "./trace_loads.ts";
import { loadVectors } from "./load_vectors.ts";
import { Rng } from "../scores/rng.ts";

const FIXTURES = join(
  dirname(fileURLToPath(import.meta.url)),
  "../../data/fixtures",
);
const JSONL = join(FIXTURES, "token_trace.jsonl");

/** Brute-force twin: loads per (batch, layer) from the raw JSON lines. */
function twin(batch: number, experts: number): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const seen = new Map<number, number>();
  for (const line of readFileSync(JSONL, "utf8").trim().split("\n")) {
    const r = JSON.parse(line);
    const i = seen.get(r.layer) ?? 0;
    seen.set(r.layer, i + 1);
    const key = `${Math.floor(i / batch)},${r.layer}`;
    if (!out.has(key)) out.set(key, new Array(experts).fill(0));
    for (const e of r.experts) out.get(key)![e]++;
  }
  return out;
}

describe("traceLoads", () => {
  test("per prompt and layer: values pinned by a Python count", () => {
    const t = readTokenTrace(JSONL, { ids: ["problem_id"] });
    const v = loadVectors(traceLoads(t));
    assert.equal(v.length, 4);
    assert.deepEqual(v.map((x) => [x.ids.problem_id, x.layer]), [
      [0, 0],
      [0, 1],
      [1, 0],
      [1, 1],
    ]);
    assert.deepEqual([...v[0].loads], [1, 3, 3, 2, 1, 2, 2, 2]);
    assert.deepEqual([...v[3].loads], [2, 2, 1, 3, 3, 2, 1, 2]);
  });

  test("batches of B tokens match the brute-force twin", () => {
    const t = readTokenTrace(JSONL);
    for (const batch of [1, 3, 4, 16, 100]) {
      const expect = twin(batch, 8);
      const got = loadVectors(traceLoads(t, { batchTokens: batch }));
      assert.equal(got.length, expect.size);
      for (const x of got) {
        assert.deepEqual([...x.loads], expect.get(`${x.step},${x.layer}`));
      }
    }
    // Python: batch 0 of layer 1, batches of 4 tokens.
    const b4 = loadVectors(traceLoads(t, { batchTokens: 4 }));
    assert.deepEqual([...b4[1].loads], [0, 1, 3, 1, 1, 0, 1, 1]);
  });

  test("random traces: loads sum to tokens x K in every batch", () => {
    const rng = new Rng(7);
    const experts: number[][] = [];
    const layer: number[] = [];
    for (let i = 0; i < 500; i++) {
      experts.push([rng.int(16), 16 + rng.int(16)]);
      layer.push(rng.int(3));
    }
    const t = tokenTrace(pl.DataFrame({ layer, experts }));
    const table = traceLoads(t, { batchTokens: 32, experts: 40 });
    let total = 0;
    for (const v of loadVectors(table)) {
      const sum = v.loads.reduce((a, b) => a + b, 0);
      assert.ok(sum <= 64 && sum % 2 === 0);
      assert.equal(v.loads.length, 40);
      total += sum;
    }
    assert.equal(total, 1000);
  });

  test("bad options are RangeErrors", () => {
    const t = tokenTrace(pl.DataFrame({ experts: [[0, 5]] }));
    assert.throws(() => traceLoads(t, { batchTokens: 0 }), RangeError);
    assert.throws(
      () => traceLoads(t, { experts: 5 }),
      /options.experts must exceed every expert id in the trace \(5\): current value is 5/,
    );
    assert.throws(
      () => traceLoads(pl.DataFrame({ layer: [0] })),
      /trace must have a column "experts": its columns are "layer"/,
    );
  });
});
