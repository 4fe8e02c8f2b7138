// Time limits on the exact solvers (options.timeLimit, `solve --time-limit`):
// a limit too short for the instance is an error on every solver, never a
// non-optimal answer; a generous one changes nothing.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli } from "./_cli.ts";
import {
  encodeNpy,
  type ScoreMatrix,
  solveBalancedAssignment,
  solveBalancedAssignmentSync,
} from "../mod.ts";
import { Rng } from "../lib/scores/rng.ts";

function skewed(tokens: number, experts: number, seed: number): ScoreMatrix {
  const rng = new Rng(seed);
  const data = new Float32Array(tokens * experts);
  for (let i = 0; i < tokens; i++) {
    for (let j = 0; j < experts; j++) {
      data[i * experts + j] = rng.uniform() + 2 / (j + 1);
    }
  }
  return { data, tokens, experts };
}

const isTimeLimit = (e: unknown) =>
  e instanceof Error && e.name === "TimeLimitError" &&
  /timeLimit of 0\.001 s reached/.test(e.message);

describe("options.timeLimit", () => {
  test("is checked, naming the option and the value", () => {
    const s = skewed(8, 4, 1);
    for (const bad of [0, -1, NaN, Infinity, 3e6]) {
      assert.throws(
        () => solveBalancedAssignmentSync(s, { k: 1, timeLimit: bad }),
        (e: Error) =>
          e instanceof RangeError && e.message.includes("options.timeLimit") &&
          e.message.includes(String(bad)),
      );
    }
    assert.throws(
      () =>
        solveBalancedAssignmentSync(s, {
          k: 1,
          timeLimit: "1" as unknown as number,
        }),
      TypeError,
    );
  });

  test("ssp stops with a TimeLimitError, not an answer", () => {
    // About 0.1 s of shortest-path phases on this machine class; 1 ms is
    // spent before the first phase starts (the warm start alone).
    const s = skewed(8192, 128, 2);
    assert.throws(
      () => solveBalancedAssignmentSync(s, { k: 4, timeLimit: 0.001 }),
      isTimeLimit,
    );
  });

  for (const solver of ["glpk", "highs"] as const) {
    test(`${solver} stops with a TimeLimitError, not an answer`, async () => {
      const s = skewed(3000, 32, 3);
      await assert.rejects(
        solveBalancedAssignment(s, { k: 2, solver, timeLimit: 0.001 }),
        isTimeLimit,
      );
    });
  }

  test("a generous limit gives the optimum unchanged", async () => {
    const s = skewed(200, 8, 4);
    const free = solveBalancedAssignmentSync(s, { k: 2 });
    for (const solver of ["ssp", "glpk", "highs"] as const) {
      const a = await solveBalancedAssignment(s, {
        k: 2,
        solver,
        timeLimit: 600,
      });
      assert.ok(Math.abs(a.objective - free.objective) <= 1e-9 * a.objective);
      assert.ok(a.dualityGap <= 1e-9 * a.objective, solver);
    }
  });
});

describe("moelab solve --time-limit", () => {
  const dir = mkdtempSync(join(tmpdir(), "moelab-solve-limit-"));
  const file = join(dir, "scores.npy");
  const s = skewed(3000, 32, 5);
  writeFileSync(file, encodeNpy(s.data, [s.tokens, s.experts]));

  test("a bad value exits 2 naming the flag, before any work", () => {
    for (const bad of ["0", "-2", "1e9", "soon"]) {
      const r = cli([
        "solve",
        "--scores",
        file,
        "--top-k",
        "2",
        "--time-limit",
        bad,
      ]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--time-limit/);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.equal(r.stdout, "");
    }
  });

  test("a limit reached exits 1 with one line and no figures", () => {
    const r = cli([
      "solve",
      "--scores",
      file,
      "--top-k",
      "2",
      "--solver",
      "glpk",
      "--time-limit",
      "0.001",
      "--json",
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^error: --time-limit 0\.001 reached: .*glpk/);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.equal(r.stdout, "");
  });
});
