// The balancers through the registry and the simulator: option parsing,
// causal flags in the summary, and the optimality gap against the exact
// optimum.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  BALANCERS,
  createBalancer,
  parseMethodSpec,
  runSimulation,
  simSummary,
} from "../mod.ts";

const ALL = [
  "greedy",
  "loss-free(rate=0.01)",
  "bip",
  "bip(T=1,capacityFactor=1.1)",
  "quantile",
  "sinkhorn(maxIterations=30)",
  "expert-choice",
  "capacity(capacityFactor=1)",
  "capacity(drop=position)",
  "exact",
];

const CAUSAL: Record<string, boolean> = {
  "greedy": true,
  "loss-free(rate=0.01)": true,
  "bip": false,
  "bip(T=1,capacityFactor=1.1)": false,
  "quantile": true,
  "sinkhorn(maxIterations=30)": false,
  "expert-choice": false,
  "capacity(capacityFactor=1)": false,
  "capacity(drop=position)": true,
  "exact": false,
};

describe("registry", () => {
  test("parses each balancer's options with their types", () => {
    assert.deepEqual(parseMethodSpec("bip(T=4,capacityFactor=1.25)").options, {
      T: 4,
      capacityFactor: 1.25,
    });
    assert.deepEqual(
      parseMethodSpec("capacity(capacityFactor=1.5,drop=position)").options,
      { capacityFactor: 1.5, drop: "position" },
    );
    assert.deepEqual(
      parseMethodSpec("sinkhorn(tolerance=1e-6,maxIterations=50)").options,
      { tolerance: 1e-6, maxIterations: 50 },
    );
    assert.deepEqual(
      parseMethodSpec({ name: "expert-choice", options: { capacityFactor: 2 } })
        .options,
      { capacityFactor: 2 },
    );
    assert.throws(() => parseMethodSpec("bip(T=many)"), RangeError);
    assert.throws(() => parseMethodSpec("quantile(rate=1)"), RangeError);
    assert.throws(() => parseMethodSpec("capacity(drop=1)"), RangeError);
    const ctx = { layers: 1, experts: 8, k: 2 };
    assert.throws(
      () => createBalancer("capacity(drop=random)", ctx),
      RangeError,
    );
    assert.throws(() => createBalancer("bip(T=1.5)", ctx), RangeError);
    assert.throws(
      () => createBalancer("sinkhorn(maxIterations=0)", ctx),
      RangeError,
    );
  });

  test("every method declares whether it is causal", () => {
    const ctx = { layers: 1, experts: 8, k: 2 };
    for (const spec of ALL) {
      assert.equal(createBalancer(spec, ctx).causal, CAUSAL[spec], spec);
    }
    for (const name of Object.keys(BALANCERS)) {
      assert.equal(typeof createBalancer(name, ctx).causal, "boolean", name);
    }
  });
});

describe("simulator with every balancer", () => {
  const tokens = 256, experts = 16, topK = 2;
  const C = Math.ceil((tokens * topK) / experts);
  const shape = {
    experts,
    topK,
    tokens,
    layers: 2,
    steps: 12,
    evalFraction: 0.5,
    gapSteps: 3,
  };
  const result = runSimulation({ ...shape, methods: ALL });

  test("summary shows causal flags and the sampled optimum steps", () => {
    const s = simSummary(result);
    assert.deepEqual(
      s.methods.map((m) => [m.method, m.causal]),
      ALL.map((m) => [m, CAUSAL[m]]),
    );
    // The exact method solves every batch: the gap covers the whole window.
    assert.deepEqual(result.optimumSteps, [6, 7, 8, 9, 10, 11]);
    assert.equal(s.config.gapSteps, 3);
  });

  test("optimality gap: 0 for exact, >= 0 wherever a routing is within capacity", () => {
    const M = ALL.length, layers = 2;
    const gaps = result.optimalityGaps;
    let checked = 0;
    for (let step = 0; step < 12; step++) {
      for (let layer = 0; layer < layers; layer++) {
        for (let m = 0; m < M; m++) {
          const g = gaps[(step * layers + layer) * M + m];
          if (!result.optimumSteps.includes(step)) {
            assert.ok(Number.isNaN(g));
            continue;
          }
          if (ALL[m] === "exact") assert.ok(Math.abs(g) < 1e-12);
          // Expert Choice may give a token more than K experts: its sum is
          // not bounded by the optimum.
          if (ALL[m] === "expert-choice") continue;
          const row = ((step * layers + layer) * M + m) * experts;
          const loads = result.tables.loads.load.subarray(row, row + experts);
          if (Math.max(...loads) <= C) {
            assert.ok(g >= -1e-9, `${ALL[m]} step ${step}: gap ${g}`);
            checked++;
          }
        }
      }
    }
    assert.ok(checked >= 12, `only ${checked} feasible batches checked`);
    const byName = Object.fromEntries(result.methods.map((m) => [m.method, m]));
    assert.ok(Math.abs(byName["exact"].optimalityGap!) < 1e-12);
    // Greedy overloads experts and keeps more score than the optimum.
    assert.ok(byName["greedy"].optimalityGap! < 0);
    assert.ok(byName["capacity(capacityFactor=1)"].optimalityGap! > 0);
  });

  test("the exact method's score sum is the solver's optimum", () => {
    // Without an exact method the simulator solves the optimum itself,
    // starting from a method's prices (BIP's, set from the same batch;
    // else a causal method's, from the batches before; else its own): the
    // gaps of the other methods must not change.
    for (
      const methods of [
        ["greedy", "bip"],
        ["greedy", "loss-free(rate=0.01)", "quantile"],
        ["greedy", "capacity(capacityFactor=1)"],
      ]
    ) {
      const alone = runSimulation({ ...shape, methods });
      // Without it, gapSteps = 3 steps of the window are sampled.
      assert.deepEqual(alone.optimumSteps, [6, 8, 10]);
      const M = methods.length;
      for (const [i, name] of methods.entries()) {
        const m = ALL.indexOf(name);
        for (const step of alone.optimumSteps) {
          for (let layer = 0; layer < 2; layer++) {
            const a = alone.optimalityGaps[(step * 2 + layer) * M + i];
            const b =
              result.optimalityGaps[(step * 2 + layer) * ALL.length + m];
            assert.ok(
              Math.abs(a - b) < 1e-12,
              `${name} step ${step}: ${a} vs ${b}`,
            );
          }
        }
      }
    }
  });

  test("dropped fraction and tokens without expert", () => {
    const byName = Object.fromEntries(result.methods.map((m) => [m.method, m]));
    for (const name of ["greedy", "bip", "quantile", "exact"]) {
      assert.equal(byName[name].droppedFraction, 0, name);
      assert.equal(byName[name].tokensWithoutExpert, 0, name);
    }
    assert.ok(byName["capacity(capacityFactor=1)"].droppedFraction > 0);
    // Expert Choice: exact balance, some tokens left without an expert.
    assert.equal(byName["expert-choice"].maxVioBatch, 0);
    assert.ok(byName["expert-choice"].tokensWithoutExpert > 0);
    assert.ok(byName["expert-choice"].droppedFraction > 0);
  });
});
