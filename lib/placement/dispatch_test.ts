import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { dispatchTokens } from "./locality.ts";
import { commAwareSchedule } from "./comm_aware.ts";
import { loadLpSolvers } from "../solve/lp_solvers.ts";
import { scheduleTokens } from "./schedule.ts";
import { symmetricPlacement } from "./cayley.ts";
import { H100_NVLINK, stepTimeMs, throughputGain } from "./step_time.ts";
import { Rng } from "../scores/rng.ts";

/** Random input[e][g] for E experts over G GPUs. */
function randomInput(E: number, G: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from(
    { length: E },
    (_, e) => Array.from({ length: G }, () => rng.int(e === 0 ? 200 : 40)),
  );
}

describe("dispatchTokens", () => {
  test("hand-worked: ring on 4 GPUs", () => {
    // Expert 0 on GPUs 0, 1 (slot 0 of both); 10 tokens computed 5 + 5.
    // Its tokens start 7 on GPU 0, 3 on GPU 2: GPU 0 keeps 5, sends 2 to
    // GPU 1; GPU 2 sends 3 to GPU 1.
    const p = symmetricPlacement(4, 4, { graph: "ring" });
    const input = [[7, 0, 3, 0], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]];
    const replicaLoads = new Int32Array(8);
    replicaLoads[0] = 5, replicaLoads[2] = 5; // GPU 0 slot 0, GPU 1 slot 0
    replicaLoads[4] = 1, replicaLoads[6] = 1; // expert 1 on GPUs 2, 3
    const d = dispatchTokens(input, replicaLoads, p);
    assert.deepEqual(d.transfers, [
      { from: 0, to: 1, expert: 0, tokens: 2 },
      { from: 2, to: 1, expert: 0, tokens: 3 },
    ]);
    assert.equal(d.volume, 5);
    assert.equal(d.local, 7);
    assert.deepEqual([...d.send], [2, 0, 3, 0]);
    assert.deepEqual([...d.recv], [0, 5, 0, 0]);
  });

  test("transfers deliver every replica its scheduled tokens", () => {
    const p = symmetricPlacement(32, 8);
    const input = randomInput(32, 8, 4);
    const loads = input.map((row) => row.reduce((a, b) => a + b));
    const s = scheduleTokens(loads, p);
    const d = dispatchTokens(input, s.replicaLoads, p);
    const computed = new Array(8).fill(0);
    input.forEach((row) => row.forEach((x, g) => computed[g] += x));
    for (const t of d.transfers) {
      computed[t.from] -= t.tokens, computed[t.to] += t.tokens;
    }
    assert.deepEqual(computed, [...s.gpuLoads]);
    assert.equal(d.local + d.volume, loads.reduce((a, b) => a + b));
  });

  test("mismatched sums are RangeErrors", () => {
    const p = symmetricPlacement(4, 4, { graph: "ring" });
    assert.throws(
      () =>
        dispatchTokens(
          [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
          new Int32Array(8),
          p,
        ),
      RangeError,
    );
    assert.throws(
      () => dispatchTokens([[1, 0, 0, 0]], new Int32Array(8), p),
      TypeError,
    );
  });
});

describe("commAwareSchedule", () => {
  before(() => loadLpSolvers());

  test("alpha = 0 gives the plain LP optimum", () => {
    const p = symmetricPlacement(32, 8);
    const input = randomInput(32, 8, 9);
    const loads = input.map((row) => row.reduce((a, b) => a + b));
    const s = commAwareSchedule(input, p, { alpha: 0 });
    assert.ok(Math.abs(s.optimum - scheduleTokens(loads, p).optimum) < 1e-6);
  });

  test("comm is what locality routing sends; raising alpha trades compute for communication", () => {
    const p = symmetricPlacement(32, 8);
    const input = randomInput(32, 8, 5);
    let lastComm = Infinity, lastComp = 0;
    for (const alpha of [0.01, 0.5, 5]) {
      const s = commAwareSchedule(input, p, { alpha });
      const d = dispatchTokens(input, s.replicaLoads, p);
      // Rounding moves at most a token per replica; the LP value is a lower bound.
      assert.ok(Math.max(...d.send, ...d.recv) >= s.comm - 1e-6);
      assert.ok(s.comm <= lastComm + 1e-6 && s.optimum >= lastComp - 1e-6);
      lastComm = s.comm, lastComp = s.optimum;
    }
  });
});

describe("stepTimeMs", () => {
  test("FasterMoE formula by hand", () => {
    const model = {
      hidden: 1000,
      ffnFactor: 2,
      bytesPerElement: 4,
      flops: 1e12,
      bandwidth: 1e9,
    };
    // compute 3 * 4 * 2 * 1e6 / 1e12 * 100 = 2.4e-3 s; a2a 4 * 4000 / 1e9 * 50 = 8e-4 s
    assert.ok(
      Math.abs(stepTimeMs(100, { commTokens: 50, model }) - 3.2) < 1e-12,
    );
    assert.equal(stepTimeMs(0), 0);
  });

  test("preset and gains", () => {
    assert.equal(H100_NVLINK.bandwidth, 360e9);
    assert.ok(
      Math.abs(throughputGain(stepTimeMs(2000), stepTimeMs(1000)) - 1) < 1e-12,
    );
    assert.throws(() => stepTimeMs(-1), RangeError);
    assert.throws(() => stepTimeMs(1, { model: { flops: 0 } }), RangeError);
  });
});
