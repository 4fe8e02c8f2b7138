// The simulator with every method but the exact oracle on the device
// against the same run on the CPU. What must hold:
// - every batch of a method with a bias (Loss-Free, BIP, Quantile,
//   Sinkhorn) is routed on the device exactly as the CPU's route() routes
//   it given the bias the device recorded (selection identical given
//   identical biases);
// - methods without a bias (greedy, Expert Choice, capacity) give the
//   CPU's loads on every batch;
// - where a method's loads agree with the CPU run's on every batch, its
//   summary figures agree within 1e-6 (float32 rounding of the sums; the
//   device's state is float32), and its biases within 1e-6 per step;
// - BIP alone may route a boundary token the other way: its prices put
//   that token exactly at a tie, which float32 prices break by their last
//   bit; it stays balanced as the CPU's does.
// Without an adapter the tests are skipped with the reason, unless
// MOELAB_REQUIRE_GPU=1 (set by .ci/run): then they fail. Bun has no WebGPU.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { acquireGpu, releaseGpu } from "../kernels/device.ts";
import { route } from "../lib/route/route.ts";
import { runSimulation, type SimResult } from "../lib/sim/run.ts";
import { runSimulationOn } from "../lib/sim/run_backend.ts";
import { LOOP_STAGES, type LoopStage } from "../lib/sim/profile.ts";
import { prepareRun } from "../lib/sim/prepare_run.ts";
import type { Workload } from "../lib/workload/workload.ts";

const { gpu, reason } = await acquireGpu();
// The device is destroyed once this module's tests are done.
after(releaseGpu);
const isBun = "Bun" in globalThis;
const required = process.env.MOELAB_REQUIRE_GPU === "1" && !isBun;
if (!gpu) console.log(`device simulator tests skipped: ${reason}`);

/** Absolute tolerance on summary figures and biases: float32 rounding of sums of O(1) values. */
const TOL = 1e-6;

const BIASED = new Set(["loss-free", "bip", "quantile", "sinkhorn"]);

/** The (step, layer) batches of method `m` whose loads differ between two runs. */
function differingBatches(a: SimResult, b: SimResult, m: number): number {
  const { steps, layers, experts: E } = a.config;
  const M = a.labels.length;
  let n = 0;
  for (let cell = 0; cell < steps * layers; cell++) {
    const at = (cell * M + m) * E;
    for (let j = 0; j < E; j++) {
      if (a.tables.loads.load[at + j] !== b.tables.loads.load[at + j]) {
        n++;
        break;
      }
    }
  }
  return n;
}

/**
 * Checks that every batch of biased method `m` in the device run `g` is
 * what route() gives with the recorded bias.
 */
function checkSelectionGivenBias(g: SimResult, m: number): void {
  const run = prepareRun(g.config);
  const { steps, layers, experts: E, topK: k } = g.config;
  const M = g.labels.length;
  for (let step = 0; step < steps; step++) {
    for (let layer = 0; layer < layers; layer++) {
      const at = ((step * layers + layer) * M + m) * E;
      const bias = g.tables.biases.bias.subarray(at, at + E);
      const want = route(run.workload.scores(step, layer), {
        k,
        bias,
        normalize: g.config.normalize,
        groups: g.config.groups,
        topGroups: g.config.topGroups,
      });
      assert.deepEqual(
        [...g.tables.loads.load.subarray(at, at + E)],
        [...want.loads],
        `${
          g.labels[m]
        } step ${step} layer ${layer}: device loads differ from route() with the device's bias`,
      );
    }
  }
}

function largestBiasGap(a: SimResult, b: SimResult, m: number): number {
  const { steps, layers, experts: E } = a.config;
  const M = a.labels.length;
  let worst = 0;
  for (let cell = 0; cell < steps * layers; cell++) {
    const at = (cell * M + m) * E;
    for (let j = 0; j < E; j++) {
      const d = Math.abs(
        a.tables.biases.bias[at + j] - b.tables.biases.bias[at + j],
      );
      if (d > worst) worst = d;
    }
  }
  return worst;
}

const FIGURES = [
  "maxVioBatch",
  "maxVioGlobal",
  "scoreRetention",
  "cv",
  "maxOverMean",
  "droppedFraction",
  "tokensWithoutExpert",
  "optimalityGap",
] as const;

async function compare(config: Record<string, unknown>) {
  const g = await runSimulationOn(config, { backend: "webgpu" });
  const c = runSimulation(config);
  assert.match(g.backend, /^webgpu: .*; GPU state in float32$/);
  g.methods.forEach((s, m) => {
    const device = s.name !== "exact";
    assert.equal(s.backend, device ? "webgpu" : "cpu", s.method);
    assert.equal(s.state, device ? "float32" : "float64", s.method);
    assert.equal(c.methods[m].backend, "cpu");
    assert.equal(s.causal, c.methods[m].causal, s.method);
    if (BIASED.has(s.name)) checkSelectionGivenBias(g, m);
    const differ = differingBatches(g, c, m);
    if (s.name !== "bip") {
      assert.equal(differ, 0, `${s.method}: batches whose loads differ`);
    }
    if (differ > 0) {
      // A tie moved a token or two: the method stays as balanced.
      assert.ok(s.maxVioBatch <= c.methods[m].maxVioBatch + 0.05, s.method);
      return;
    }
    for (const f of FIGURES) {
      const a = s[f], b = c.methods[m][f];
      assert.ok(
        a === b || Math.abs((a as number) - (b as number)) <= TOL,
        `${s.method} ${f}: ${a} on the device, ${b} on the CPU`,
      );
    }
    assert.ok(largestBiasGap(g, c, m) <= TOL, `${s.method}: biases`);
  });
  // Every loop stage timed; no wait for a GPU on the CPU.
  for (const stage of LOOP_STAGES) {
    const ms = g.profile.stages[stage];
    assert.ok(Number.isFinite(ms) && ms >= 0, `${stage}: ${ms} ms`);
  }
  assert.equal(c.profile.stages.device, 0);
  return { g, c };
}

describe("the simulator on the device", { skip: !gpu && !required }, () => {
  test("runs all seven methods with the CPU's figures", async () => {
    if (!gpu) throw new Error(`MOELAB_REQUIRE_GPU=1 but no adapter: ${reason}`);
    const { g } = await compare({
      seed: 5,
      steps: 6,
      layers: 2,
      // Not a multiple of the workgroup or of the 256-row chunks.
      tokens: 700,
      experts: 16,
      topK: 3,
      gate: "sigmoid",
      normalize: true,
      gapSteps: 2,
      methods: [
        "greedy",
        "loss-free(rate=0.01)",
        "bip",
        "quantile",
        "sinkhorn(temperature=0.1)",
        "expert-choice",
        "capacity",
        "capacity(drop=position,capacityFactor=1)",
        "exact",
      ],
    });
    // The scores drawn, rows recorded, the CPU method's (exact) metrics,
    // the gap on its two steps, the wait for the GPU: each took time.
    for (const stage of ["scores", "metrics", "record", "gap", "device"]) {
      assert.ok(g.profile.stages[stage as LoopStage] > 0, stage);
    }
  });

  test("routes group-limited as the CPU does, with a softmax gate", async () => {
    if (!gpu) throw new Error(`MOELAB_REQUIRE_GPU=1 but no adapter: ${reason}`);
    await compare({
      seed: 9,
      steps: 5,
      layers: 1,
      tokens: 300,
      experts: 32,
      topK: 4,
      groups: 8,
      topGroups: 2,
      gate: "softmax",
      normalize: false,
      gapSteps: 2,
      // exact brackets the group-limited optimum: the gaps on both runs
      // are against its upper end.
      methods: [
        "greedy",
        "loss-free(rate=0.005,rule=proportional,center=true)",
        "quantile",
        "capacity",
        "exact",
      ],
    });
  });

  test("a NaN score is the same RangeError as on the CPU", async () => {
    if (!gpu) throw new Error(`MOELAB_REQUIRE_GPU=1 but no adapter: ${reason}`);
    const E = 8, N = 64;
    const workload: Workload = {
      steps: 2,
      layers: 1,
      tokens: N,
      experts: E,
      scores(step) {
        const data = new Float32Array(N * E).fill(0.5);
        if (step === 1) data[3 * E + 5] = NaN;
        return { data, tokens: N, experts: E };
      },
      describe: () => ({ kind: "test" }),
    };
    const config = { steps: 2, layers: 1, methods: ["loss-free"] };
    const message = /value at token 3, expert 5 is NaN/;
    assert.throws(() => runSimulation(config, { workload }), message);
    await assert.rejects(
      runSimulationOn(config, { workload, backend: "webgpu" }),
      (e: Error) => e instanceof RangeError && message.test(e.message),
    );
  });
});
