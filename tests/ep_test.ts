import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli } from "./_cli.ts";
import {
  closedFormOptimum,
  runSimulation,
  symmetricPlacement,
} from "../mod.ts";

// The EPLB README example, one row per layer.
const EPLB = [
  [90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
  [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27],
];

describe("schedule and place (command line)", () => {
  const work = mkdtempSync(join(tmpdir(), "moelab-ep-"));
  const header = ["step", "layer", ...EPLB[0].map((_, e) => String(e))].join(
    ",",
  );
  const wide = join(work, "wide.csv"), long = join(work, "long.csv");
  writeFileSync(
    wide,
    [header, ...EPLB.map((r, l) => [0, l, ...r].join(","))].join("\n") + "\n",
  );
  writeFileSync(
    long,
    [
      "step,layer,expert,load",
      ...EPLB.flatMap((r, l) => r.map((x, e) => `0,${l},${e},${x}`)),
    ]
      .join("\n") + "\n",
  );

  test("schedule --json: one row per layer, optimum = closed form, same for wide and long tables", () => {
    const runs = [wide, long].map((f) =>
      cli([
        "schedule",
        "--loads",
        f,
        "--gpus",
        "4",
        "--placement",
        "ring",
        "--json",
      ])
    );
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const [a, b] = runs.map((r) => JSON.parse(r.stdout));
    assert.deepEqual(a, b);
    const p = symmetricPlacement(12, 4, { graph: "ring" });
    assert.equal(a.placement.length, 4);
    assert.deepEqual(a.placement[0], [...p.slots.subarray(0, 6)]);
    a.rows.forEach(
      (
        row: {
          layer: number;
          optimum: number;
          maxLoad: number;
          gpuLoads: number[];
        },
        l: number,
      ) => {
        assert.equal(row.layer, l);
        assert.equal(row.optimum, closedFormOptimum(EPLB[l], p).optimum);
        assert.equal(row.maxLoad, Math.max(...row.gpuLoads));
      },
    );
  });

  test("place --json reproduces EPLB's README example", () => {
    const r = cli([
      "place",
      "--loads",
      wide,
      "--replicas",
      "16",
      "--gpus",
      "8",
      "--nodes",
      "2",
      "--groups",
      "4",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).phy2log, [
      [5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
      [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1],
    ]);
  });

  test("bad input: exit 2 with one line", () => {
    for (
      const args of [
        ["place", "--loads", wide, "--replicas", "10", "--gpus", "8"],
        ["schedule", "--loads", join(work, "missing.csv")],
        ["schedule", "--loads", wide, "--solver", "cplex"],
      ]
    ) {
      const r = cli(args);
      assert.equal(r.code, 2, args.join(" "));
      assert.match(r.stderr, /^error: [^\n]+\n$/);
    }
  });

  test("cleans up", () => rmSync(work, { recursive: true, force: true }));
});

describe("the sim's expert-parallel stage", () => {
  const r = runSimulation({
    steps: 6,
    layers: 2,
    tokens: 256,
    experts: 16,
    topK: 2,
    gapSteps: 0,
  });

  test("gpu_loads: every strategy places every token of every batch", () => {
    const t = r.ep!.table, G = 8, K = 4;
    assert.equal(t.tokens.length, 6 * 2 * 2 * K * G);
    for (let row = 0; row < t.tokens.length; row += G) {
      let sum = 0;
      for (let g = 0; g < G; g++) sum += t.tokens[row + g];
      assert.equal(sum, 256 * 2);
    }
  });

  test("summaries: the LP strategies are never worse than static EP", () => {
    for (const m of r.methods) {
      const ep = m.ep!;
      assert.deepEqual(Object.keys(ep), [
        "static",
        "eplb",
        "symmetric-lp",
        "asymmetric-lp",
      ]);
      assert.ok(
        ep["symmetric-lp"].gpuMaxOverMean <= ep.static.gpuMaxOverMean + 1e-12,
      );
      assert.ok(ep["symmetric-lp"].stepTimeMs <= ep.static.stepTimeMs + 1e-12);
      assert.equal(ep.static.throughputGain, 0);
    }
  });

  test("ep: null turns the stage off; sizes that do not fit are errors when asked for", () => {
    assert.equal(
      runSimulation({
        steps: 2,
        layers: 1,
        tokens: 64,
        experts: 8,
        topK: 2,
        ep: null,
      }).ep,
      null,
    );
    assert.throws(
      () =>
        runSimulation({
          steps: 2,
          layers: 1,
          tokens: 64,
          experts: 12,
          topK: 2,
          ep: { gpus: 5 },
        }),
      RangeError,
    );
  });
});
