// The exact balanced assignment: the specialised solver against glpk.js,
// HiGHS and a brute-force twin, with every answer's constraints and price
// certificate checked here rather than trusted.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  type BalancedAssignment,
  Rng,
  type ScoreMatrix,
  sharedScores,
  solveBalancedAssignment,
  solveBalancedAssignmentSync,
} from "../mod.ts";
import { sharedWasmHeap } from "../lib/wasm/runtime.ts";

function randomScores(
  rng: Rng,
  tokens: number,
  experts: number,
  ties: boolean,
): ScoreMatrix {
  const data = new Float32Array(tokens * experts);
  for (let i = 0; i < data.length; i++) {
    const u = rng.uniform();
    data[i] = ties ? Math.round(u * 10) / 10 : u * u;
  }
  return { data, tokens, experts };
}

/** Checks constraints and recomputes `D(p, q) - objective` naively. */
function checkAnswer(s: ScoreMatrix, a: BalancedAssignment): void {
  const { data, tokens, experts } = s;
  const { k, capacity } = a;
  const loads = new Int32Array(experts);
  let objective = 0;
  for (let i = 0; i < tokens; i++) {
    const row = a.experts.subarray(i * k, (i + 1) * k);
    assert.equal(new Set(row).size, k, `token ${i} has repeated experts`);
    for (let r = 0; r < k; r++) {
      loads[row[r]]++;
      objective += data[i * experts + row[r]];
      if (r > 0) {
        assert.ok(data[i * experts + row[r - 1]] >= data[i * experts + row[r]]);
      }
    }
  }
  assert.deepEqual([...a.loads], [...loads]);
  for (const c of loads) assert.ok(c <= capacity);
  assert.ok(Math.abs(objective - a.objective) <= 1e-12 * Math.abs(objective));
  const p = a.tokenPrices, q = a.expertPrices;
  let dual = 0;
  for (let j = 0; j < experts; j++) {
    assert.ok(q[j] >= 0);
    dual += capacity * q[j];
  }
  for (let i = 0; i < tokens; i++) {
    dual += k * p[i];
    for (let j = 0; j < experts; j++) {
      dual += Math.max(0, data[i * experts + j] - p[i] - q[j]);
    }
  }
  const tol = 1e-9 * Math.abs(a.objective);
  assert.ok(a.dualityGap >= 0 && a.dualityGap <= tol, `gap ${a.dualityGap}`);
  assert.ok(Math.abs(dual - objective - a.dualityGap) <= tol);
}

/** The best objective over every assignment (tiny instances only). */
function bruteForce(s: ScoreMatrix, k: number, capacity: number): number {
  const subsets: number[][] = [];
  for (let m = 0; m < 1 << s.experts; m++) {
    const set = [...Array(s.experts).keys()].filter((j) => m & (1 << j));
    if (set.length === k) subsets.push(set);
  }
  const loads = new Int32Array(s.experts);
  let best = -Infinity;
  const visit = (i: number, sum: number): void => {
    if (i === s.tokens) {
      best = Math.max(best, sum);
      return;
    }
    for (const set of subsets) {
      if (set.some((j) => loads[j] === capacity)) continue;
      let add = 0;
      for (const j of set) {
        loads[j]++;
        add += s.data[i * s.experts + j];
      }
      visit(i + 1, sum + add);
      for (const j of set) loads[j]--;
    }
  };
  visit(0, 0);
  return best;
}

describe("solveBalancedAssignment", () => {
  test("matches glpk.js and HiGHS on 210 random instances", async () => {
    const rng = new Rng(2024);
    const sizes = [[8, 4], [16, 4], [16, 8], [32, 8], [48, 16], [64, 16]];
    for (let t = 0; t < 210; t++) {
      const [tokens, experts] = t === 0
        ? [512, 64]
        : t < 6
        ? [128 * t, 32]
        : sizes[t % sizes.length];
      const k = 1 + Math.floor(rng.uniform() * Math.min(8, experts));
      const capacityFactor = 1 + Math.round(rng.uniform() * 5) / 10;
      const s = randomScores(rng, tokens, experts, t % 2 === 0);
      const options = { k, capacityFactor };
      const ssp = solveBalancedAssignmentSync(s, options);
      checkAnswer(s, ssp);
      for (const solver of ["glpk", "highs"] as const) {
        if (solver === "glpk" && tokens * experts > 1024) continue;
        const lp = await solveBalancedAssignment(s, { ...options, solver });
        checkAnswer(s, lp);
        const rel = Math.abs(lp.objective - ssp.objective) /
          Math.abs(lp.objective);
        assert.ok(rel <= 1e-9, `${solver} ${tokens}x${experts} k=${k}: ${rel}`);
      }
    }
  });

  test("matches a brute-force twin on tiny instances", () => {
    const rng = new Rng(7);
    for (let t = 0; t < 60; t++) {
      const tokens = 1 + (t % 5), experts = 2 + (t % 3);
      const k = 1 + (t % experts === experts - 1 ? 0 : t % 2);
      const s = randomScores(rng, tokens, experts, t % 3 === 0);
      const capacity = Math.ceil(tokens * k / experts) + (t % 4 === 0 ? 1 : 0);
      const a = solveBalancedAssignmentSync(s, { k, capacity });
      checkAnswer(s, a);
      const best = bruteForce(s, k, capacity);
      assert.ok(Math.abs(a.objective - best) <= 1e-9 * Math.abs(best));
    }
  });

  test("all-equal scores: any balanced assignment, exact objective", () => {
    const s = {
      data: new Float32Array(40 * 8).fill(0.5),
      tokens: 40,
      experts: 8,
    };
    const a = solveBalancedAssignmentSync(s, { k: 3 });
    assert.deepEqual([...a.loads], Array(8).fill(15));
    assert.equal(a.objective, 40 * 3 * 0.5);
    assert.equal(a.dualityGap, 0);
  });

  test("masked pairs (-Infinity) are never chosen and match HiGHS", async () => {
    const rng = new Rng(11);
    const s = randomScores(rng, 64, 8, false);
    for (let i = 0; i < 64; i++) s.data[i * 8 + (i % 8)] = -Infinity;
    const a = solveBalancedAssignmentSync(s, { k: 2 });
    checkAnswer(s, a);
    for (let i = 0; i < 64; i++) {
      assert.ok(![...a.experts.subarray(i * 2, i * 2 + 2)].includes(i % 8));
    }
    const b = await solveBalancedAssignment(s, { k: 2, solver: "highs" });
    assert.ok(Math.abs(a.objective - b.objective) <= 1e-9 * b.objective);
  });

  test("large masked, tied batches (sampled warm start, pruned table) match HiGHS", async () => {
    // Sizes where the warm start samples tokens and the move table is
    // built from the tokens near the margin only.
    const rng = new Rng(12);
    for (
      const [tokens, experts, k, factor] of [[1536, 24, 4, 1], [
        2048,
        32,
        6,
        1.2,
      ]]
    ) {
      const s = randomScores(rng, tokens, experts, true);
      for (let x = 0; x < s.data.length; x++) {
        if (x % experts > k + 1 && rng.uniform() < 0.1) s.data[x] = -Infinity;
      }
      const a = solveBalancedAssignmentSync(s, { k, capacityFactor: factor });
      checkAnswer(s, a);
      const b = await solveBalancedAssignment(s, {
        k,
        capacityFactor: factor,
        solver: "highs",
      });
      assert.ok(Math.abs(a.objective - b.objective) <= 1e-9 * b.objective);
    }
  });

  test("capacity defaults to ceil(tokens * k / experts * factor)", () => {
    const s = randomScores(new Rng(1), 10, 4, false);
    assert.equal(solveBalancedAssignmentSync(s, { k: 1 }).capacity, 3);
    const f = solveBalancedAssignmentSync(s, { k: 2, capacityFactor: 1.2 });
    assert.equal(f.capacity, 6);
    const g = solveBalancedAssignmentSync(s, { k: 2, capacityFactor: 1.1 });
    assert.equal(g.capacity, 6); // 5.5 rounds up
    const h = solveBalancedAssignmentSync(s, { k: 4, capacityFactor: 1.1 });
    assert.equal(h.capacity, 11); // 10 * 1.1 is 11, not 12
  });

  test("rejects bad input with TypeError or RangeError", async () => {
    const s = randomScores(new Rng(1), 6, 3, false);
    assert.throws(() => solveBalancedAssignmentSync(s, { k: 4 }), RangeError);
    assert.throws(() => solveBalancedAssignmentSync(s, { k: 0 }), RangeError);
    assert.throws(
      () => solveBalancedAssignmentSync(s, { k: 2, capacity: 3 }),
      /infeasible/,
    );
    assert.throws(
      () =>
        solveBalancedAssignmentSync(s, {
          k: 1,
          capacity: 2,
          capacityFactor: 1,
        }),
      TypeError,
    );
    assert.throws(
      () => solveBalancedAssignmentSync(s, { k: 1, solver: "glpk" }),
      RangeError,
    );
    await assert.rejects(
      // @ts-expect-error: an unknown solver
      solveBalancedAssignment(s, { k: 1, solver: "cplex" }),
      RangeError,
    );
    assert.throws(
      // @ts-expect-error: an unknown host
      () => solveBalancedAssignmentSync(s, { k: 1, host: "gpu" }),
      /options\.host must be one of .*current value is "gpu"/,
    );
    const nan = { ...s, data: s.data.slice() };
    nan.data[4] = NaN;
    assert.throws(() => solveBalancedAssignmentSync(nan, { k: 1 }), RangeError);
    const short = { ...s, data: s.data.subarray(1) };
    assert.throws(
      () => solveBalancedAssignmentSync(short, { k: 1 }),
      TypeError,
    );
    // Token 0 keeps one unmasked expert, fewer than k = 2.
    const few = { ...s, data: s.data.slice() };
    few.data[0] = few.data[1] = -Infinity;
    assert.throws(() => solveBalancedAssignmentSync(few, { k: 2 }), /fewer/);
    // Both tokens can only use expert 0, which takes one.
    const crowd = {
      data: new Float32Array([1, -Infinity, 2, -Infinity]),
      tokens: 2,
      experts: 2,
    };
    assert.throws(() => solveBalancedAssignmentSync(crowd, { k: 1 }), /mask/);
    await assert.rejects(
      solveBalancedAssignment(crowd, { k: 1, solver: "highs" }),
      /mask/,
    );
  });
});

describe("solveBalancedAssignmentSync with starting prices", () => {
  test("any start reaches the same certified optimum as the default start", () => {
    const rng = new Rng(21);
    for (let trial = 0; trial < 40; trial++) {
      const experts = 4 + rng.int(29);
      const tokens = experts * (2 + rng.int(20));
      const k = 1 + rng.int(Math.min(6, experts - 1));
      const s = randomScores(rng, tokens, experts, trial % 2 === 0);
      const cold = solveBalancedAssignmentSync(s, { k });
      const start = Array.from({ length: experts }, () => rng.uniform() - 0.5);
      const warm = solveBalancedAssignmentSync(s, { k, expertPrices: start });
      checkAnswer(s, warm);
      assert.ok(
        Math.abs(warm.objective - cold.objective) <=
          1e-9 * Math.abs(cold.objective),
      );
      // Restarting from the optimum's own prices changes nothing.
      const again = solveBalancedAssignmentSync(s, {
        k,
        expertPrices: cold.expertPrices,
      });
      checkAnswer(s, again);
      assert.ok(
        Math.abs(again.objective - cold.objective) <=
          1e-9 * Math.abs(cold.objective),
      );
    }
  });

  test("scores times a power of two (2^-100, 2^100): the same optimum, times it, on every solver", async () => {
    // Multiplying every score by 2^e is exact (no score leaves float32's
    // normal range here) and multiplies the optimum by 2^e: a tolerance
    // that is absolute, not relative to the scores, breaks this (at 2^-100
    // every reduced cost would count as zero).
    const rng = new Rng(23);
    for (let trial = 0; trial < 6; trial++) {
      const tokens = 64, experts = 8, k = 1 + (trial % 3);
      const base = randomScores(rng, tokens, experts, trial % 2 === 0);
      base.data.forEach((v, i) => base.data[i] = Math.max(v, 2 ** -20));
      const want = solveBalancedAssignmentSync(base, { k });
      checkAnswer(base, want);
      for (const e of [-100, 100]) {
        const f = 2 ** e;
        const s = { ...base, data: base.data.map((v) => v * f) };
        s.data.forEach((v, i) => assert.equal(v / f, base.data[i]));
        for (const solver of ["ssp", "highs", "glpk"] as const) {
          const a = await solveBalancedAssignment(s, { k, solver });
          checkAnswer(s, a);
          const rel = Math.abs(a.objective - want.objective * f) /
            (want.objective * f);
          assert.ok(rel <= 1e-9, `${solver} at 2^${e}: ${rel}`);
        }
      }
    }
  });

  test("both hosts of the row selection give the same assignment and prices", () => {
    // Warm starts, continuous and masked scores: the same steps on either
    // kernel, so the same optimum bit for bit (not only the same value).
    const rng = new Rng(22);
    for (let trial = 0; trial < 12; trial++) {
      const experts = 4 + rng.int(61);
      const tokens = experts * (8 + rng.int(40));
      const k = 1 + rng.int(Math.min(8, experts - 1));
      const s = randomScores(rng, tokens, experts, trial % 3 === 0);
      const start = trial % 2
        ? Array.from({ length: experts }, () => rng.uniform() * 0.1)
        : undefined;
      const cpu = solveBalancedAssignmentSync(s, {
        k,
        expertPrices: start,
        host: "cpu",
      });
      const wasm = solveBalancedAssignmentSync(s, {
        k,
        expertPrices: start,
        host: "wasm",
      });
      checkAnswer(s, wasm);
      assert.deepEqual(wasm.experts, cpu.experts);
      assert.deepEqual(wasm.expertPrices, cpu.expertPrices);
      assert.equal(wasm.objective, cpu.objective);
    }
  });

  test("scores copied once into the shared heap: the same answers, the copy freed", async () => {
    // The solver reads scores outside the shared heap from a copy there,
    // freed when the solve ends, however it ends: the heap's bytes in use
    // come back to what they were, and scores already in the heap (read in
    // place) give the same optimum bit for bit.
    const heap = sharedWasmHeap();
    if (heap === undefined) return; // no shared memory: no copy is made
    const rng = new Rng(23);
    const s = randomScores(rng, 640, 32, false);
    const inHeap = sharedScores(640, 32);
    inHeap.data.set(s.data);
    const before = heap.used();
    const plain = solveBalancedAssignmentSync(s, { k: 4 });
    assert.equal(heap.used(), before);
    const read = solveBalancedAssignmentSync(inHeap, { k: 4 });
    assert.deepEqual(read.experts, plain.experts);
    assert.deepEqual(read.expertPrices, plain.expertPrices);
    const viaAsync = await solveBalancedAssignment(s, { k: 4 });
    assert.deepEqual(viaAsync.experts, plain.experts);
    assert.equal(heap.used(), before);
    // Errors after the copy was made: an infeasible capacity, a solver the
    // synchronous entry point does not run, a time limit reached.
    assert.throws(
      () => solveBalancedAssignmentSync(s, { k: 4, capacity: 10 }),
      RangeError,
    );
    assert.throws(
      () => solveBalancedAssignmentSync(s, { k: 4, solver: "glpk" }),
      RangeError,
    );
    const bad = { ...s, data: s.data.slice() };
    bad.data[77] = NaN;
    assert.throws(() => solveBalancedAssignmentSync(bad, { k: 4 }), RangeError);
    assert.equal(heap.used(), before);
  });

  test("a capacity far above the tokens solves at once, with zero prices", () => {
    // 4 x (2^53 - 1) unused units cannot be counted exactly in a double:
    // counting them made the solver loop forever.
    const scores = {
      data: new Float32Array([0.5, 0.25, 1, 0, 0.75, 0.5, 0.25, 1]),
      tokens: 2,
      experts: 4,
    };
    for (const capacity of [3, 2 ** 31, 1e10, 2 ** 53 - 1]) {
      const start = performance.now();
      const a = solveBalancedAssignmentSync(scores, { k: 2, capacity });
      assert.ok(performance.now() - start < 1000);
      assert.equal(a.capacity, capacity);
      assert.deepEqual([...a.experts], [2, 0, 3, 0]); // each token's top 2
      assert.deepEqual([...a.expertPrices], [0, 0, 0, 0]);
      assert.equal(a.dualityGap, 0);
    }
  });

  test("rejects starting prices of the wrong shape or value", () => {
    const s = randomScores(new Rng(2), 8, 4, false);
    assert.throws(
      () => solveBalancedAssignmentSync(s, { k: 1, expertPrices: [0, 0] }),
      TypeError,
    );
    assert.throws(
      () =>
        solveBalancedAssignmentSync(s, { k: 1, expertPrices: [0, NaN, 0, 0] }),
      /entry 1 is NaN/,
    );
  });
});
