import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { localFirstScheduler } from "./local_scheduler.ts";
import { exactScheduler } from "./exact_scheduler.ts";
import { createScheduler, scheduleTokens } from "./schedule.ts";
import { remotePairs } from "./node_traffic.ts";
import { randomPlacement } from "./random.ts";
import { symmetricPlacement } from "./cayley.ts";
import { Rng } from "../scores/rng.ts";
import type { Placement } from "./placement.ts";

const total = (a: ArrayLike<number>) => Array.from(a).reduce((x, y) => x + y);

/** Random skewed loads of `E` experts. */
function loads(rng: Rng, E: number): number[] {
  return Array.from(
    { length: E },
    () => Math.round(200 * Math.exp(rng.normal())),
  );
}

describe("localFirstScheduler", () => {
  const cases: { p: Placement; gpn: number }[] = [];
  for (let seed = 0; seed < 10; seed++) {
    cases.push({ p: randomPlacement(32, 16, { replicas: 2, seed }), gpn: 4 });
  }
  cases.push({
    p: symmetricPlacement(32, 8, { replicas: 2, graph: "ring" }),
    gpn: 2,
  });
  cases.push({
    p: symmetricPlacement(64, 16, { replicas: 2, graph: "complete" }),
    gpn: 8,
  });

  test("the exact scheduler's most loaded GPU, every expert's tokens placed, fewer tokens across nodes", () => {
    const rng = new Rng(4);
    let before = 0, after = 0;
    for (const { p, gpn } of cases) {
      const exact = exactScheduler(p), local = localFirstScheduler(p, gpn);
      for (let i = 0; i < 5; i++) {
        const l = loads(rng, p.experts);
        const a = exact.schedule(l), b = local.schedule(l);
        assert.equal(b.maxLoad, a.maxLoad);
        assert.equal(b.optimum, a.optimum);
        const perExpert = new Array(p.experts).fill(0);
        b.replicaLoads.forEach((x, s) => perExpert[p.slots[s]] += x);
        assert.deepEqual(perExpert, l);
        const ra = total(remotePairs(p, a.replicaLoads, gpn));
        const rb = total(remotePairs(p, b.replicaLoads, gpn));
        assert.ok(rb <= ra + 1e-9, `${rb} > ${ra}`);
        before += ra, after += rb;
      }
    }
    console.log(`remote pairs: exact ${before}, local-first ${after}`);
    assert.ok(after < before);
  });
});

describe("createScheduler and scheduleTokens with gpusPerNode", () => {
  test("the exact solver prefers intra-node replicas; the LP solvers refuse", () => {
    const p = randomPlacement(32, 16, { replicas: 2, seed: 1 });
    const l = loads(new Rng(2), 32);
    const s = createScheduler(p, { gpusPerNode: 4 });
    assert.equal(s.solver, "exact-local");
    assert.deepEqual(
      [...s.schedule(l).replicaLoads],
      [...localFirstScheduler(p, 4).schedule(l).replicaLoads],
    );
    assert.equal(
      scheduleTokens(l, p, { gpusPerNode: 4 }).solver,
      "exact-local",
    );
    assert.equal(scheduleTokens(l, p).solver, "exact");
    assert.throws(
      () => createScheduler(p, { solver: "highs", gpusPerNode: 4 }),
      /gpusPerNode needs the exact solver: current solver is "highs"/,
    );
    assert.throws(
      () => createScheduler(p, { gpusPerNode: 5 }),
      /gpusPerNode must divide the GPUs \(16\): current value is 5/,
    );
  });
});
