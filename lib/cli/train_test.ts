import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "./main.ts";
import { loadBrown } from "../train/brown.ts";
import { runTrainExperiment } from "../train/experiment.ts";
import { formatTrainTable } from "../train/output.ts";

const TINY = {
  corpus: { maxFiles: 10 },
  dim: 8,
  hidden: 8,
  experts: 4,
  topK: 1,
  steps: 5,
  batchSeqs: 2,
  seqLen: 16,
  validTokens: 128,
};

describe("cli train", () => {
  const dir = mkdtempSync(join(tmpdir(), "moelab-train-"));
  const preset = join(dir, "preset.json");
  writeFileSync(preset, JSON.stringify(TINY));

  /** `moelab train` on the tiny preset, quiet, into `out`. */
  const train = (
    out: string,
    methods: string,
    seeds: string,
    ...more: string[]
  ) =>
    main([
      "train",
      "--preset",
      preset,
      "--methods",
      methods,
      "--seeds",
      seeds,
      "--out",
      out,
      "--quiet",
      ...more,
    ]);

  test("writes the tables and a summary with mean and std per method", async () => {
    const out = join(dir, "ok");
    const code = await train(out, "none,aux(alpha=1e-2)", "1,2", "--json");
    assert.equal(code, 0);
    const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
    assert.deepEqual(summary.methods.map((m: { method: string }) => m.method), [
      "none",
      "aux(alpha=1e-2)",
    ]);
    for (
      const key of ["perplexity", "maxVioGlobal", "maxVioBatch", "seconds"]
    ) {
      assert.deepEqual(Object.keys(summary.methods[0][key]), ["mean", "std"]);
    }
    for (const f of ["curves.parquet", "runs.parquet", "loads.parquet"]) {
      assert.ok(existsSync(join(out, f)));
    }
  });

  for (
    const [name, args] of [
      ["an unknown method", ["--methods", "none,nope"]],
      ["a bad seed list", ["--seeds", "1,x"]],
      ["zero steps", ["--steps", "0"]],
      ["an unknown preset key", ["--preset", join(dir, "bad.json")]],
    ] as const
  ) {
    test(`exits 2 and writes nothing on ${name}`, async () => {
      writeFileSync(
        join(dir, "bad.json"),
        JSON.stringify({ ...TINY, dims: 3 }),
      );
      const out = join(dir, `bad-${name.replaceAll(" ", "-")}`);
      const code = await main([
        "train",
        "--preset",
        preset,
        ...args,
        "--out",
        out,
        "--quiet",
      ]);
      assert.equal(code, 2);
      assert.equal(existsSync(out), false);
    });
  }

  test("one seed: the mean alone, std null (its spread is unknown, not 0)", async () => {
    const out = join(dir, "one-seed");
    const code = await train(out, "none", "3");
    assert.equal(code, 0);
    const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
    for (
      const key of ["perplexity", "maxVioGlobal", "maxVioBatch", "seconds"]
    ) {
      assert.equal(summary.methods[0][key].std, null);
      assert.equal(typeof summary.methods[0][key].mean, "number");
    }
    const corpus = loadBrown({ maxFiles: 10 });
    const one = runTrainExperiment({ ...TINY, methods: ["none"], seeds: [3] }, {
      corpus,
    });
    const table = formatTrainTable(one);
    assert.doesNotMatch(table, /±/);
    assert.match(table, /, 1 seed;/);
    assert.match(
      table,
      new RegExp(` ${one.runs[0].perplexity.toFixed(3)} `),
    );
    // Two seeds: the sample deviation (n - 1), worked out from the runs.
    const two = runTrainExperiment({
      ...TINY,
      methods: ["none"],
      seeds: [3, 4],
    }, {
      corpus,
    });
    const [a, b] = two.runs.map((r) => r.perplexity);
    const std = two.summary[0].perplexity.std;
    assert.ok(a !== b);
    assert.ok(Math.abs(std - Math.abs(a - b) / Math.SQRT2) <= 1e-12 * std);
    assert.match(formatTrainTable(two), /2 seeds \(mean ± std\)/);
  });

  test("cleans up", () => rmSync(dir, { recursive: true, force: true }));
});
