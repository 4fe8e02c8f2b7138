// The transformer trains to the same loss curve on the CPU and on WebGPU:
// same seed, same batches, the step's kernels on each backend (the WebGPU
// ones through the op registry, counted), losses within float32 tolerance.
// Loss-Free training routes with its bias and moves it by the route and
// lossFreeUpdate ops' WebGPU kernels: the same curve and biases.
// Skipped without an adapter unless MOELAB_REQUIRE_GPU=1 (CI: lavapipe);
// Bun has no WebGPU, so under Bun it is skipped even then.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { acquireGpu, releaseGpu } from "../../../kernels/device.ts";
// Registers the WebGPU kernels before the tests list them.
import "../../../kernels/mod.ts";
import { registeredKernels } from "../../ops/registry.ts";
import { Rng } from "../../scores/rng.ts";
import { trainTransformer } from "./train.ts";

const { gpu, reason } = await acquireGpu();
// The device is destroyed once this module's tests are done.
after(releaseGpu);
const isBun = "Bun" in globalThis;
const required = process.env.MOELAB_REQUIRE_GPU === "1" && !isBun;

/** The ops of the model's layers (lib/ops), forward and backward, and its routing. */
const MODEL_OPS = new Set([
  "route",
  "matmul",
  "attention",
  "attentionBackward",
  "rmsNorm",
  "rmsNormBackward",
  "moeDispatch",
  "moeCombine",
  "moeCombineBackward",
  "moeDispatchBackward",
]);

/** Tokens of a noisy counting sequence over `vocab` symbols: learnable in a few steps. */
function tokens(seed: number, count: number, vocab: number): Int32Array {
  const rng = new Rng(seed);
  const out = new Int32Array(count);
  for (let i = 1; i < count; i++) {
    out[i] = rng.uniform() < 0.8 ? (out[i - 1] + 1) % vocab : rng.int(vocab);
  }
  return out;
}

/** A two-block model small enough for the software adapter. */
const TINY = {
  vocab: 32,
  seqLen: 16,
  dim: 16,
  heads: 2,
  layers: 2,
  experts: 4,
  topK: 2,
  hidden: 16,
  batchSeqs: 4,
  lr: 1e-2,
};

/** The registered kernel of `op` on `backend`. */
function kernel(op: string, backend: string) {
  const k = registeredKernels().find((k) =>
    k.op.name === op && k.backend === backend
  );
  assert.ok(k, `no ${op}/${backend} kernel`);
  return k;
}

/** Loss curves equal within float32 tolerance, step by step. */
function assertSameCurve(a: ArrayLike<number>, b: ArrayLike<number>): void {
  assert.equal(b.length, a.length);
  for (let s = 0; s < a.length; s++) {
    assert.ok(
      Math.abs(a[s] - b[s]) <= 1e-5 * Math.abs(a[s]),
      `step ${s + 1}: CPU loss ${a[s]}, WebGPU loss ${b[s]}`,
    );
  }
}

/**
 * Trains the tiny model with a balancing `method` on the CPU, then on
 * WebGPU, and checks that each run routed and updated by its own backend's
 * kernels of `route` and `updateOp`, one update per MoE block and step, with
 * the same loss curve. Returns both runs' final biases.
 */
async function trainBalancedBoth(
  method: string,
  updateOp: string,
  seed: number,
  corpusSeed: number,
): Promise<{ cpu: Float64Array[]; gpu: Float64Array[]; blocks: number }> {
  const corpus = {
    train: tokens(corpusSeed, 4096, 32),
    valid: tokens(corpusSeed + 1, 512, 32),
  };
  const options = { ...TINY, steps: 6, validTokens: 128, seed, method };
  const [routeCpu, routeGpu, updateCpu, updateGpu] = [
    kernel("route", "cpu"),
    kernel("route", "webgpu"),
    kernel(updateOp, "cpu"),
    kernel(updateOp, "webgpu"),
  ];
  // On the CPU an update may run on its "wasm" kernel (the same bits).
  const updateWasm = registeredKernels().find((k) =>
    k.op.name === updateOp && k.backend === "wasm"
  );
  const calls = () =>
    [routeCpu, routeGpu, updateCpu, updateGpu].map((k) =>
      k.calls + (k === updateCpu ? updateWasm?.calls ?? 0 : 0)
    );
  const start = calls();
  const onCpu = await trainTransformer(corpus, { ...options, backend: "cpu" });
  const afterCpu = calls();
  const onGpu = await trainTransformer(corpus, {
    ...options,
    backend: "webgpu",
  });
  const afterGpu = calls();
  const [ROUTE_CPU, ROUTE_GPU, UPDATE_CPU, UPDATE_GPU] = [0, 1, 2, 3];
  const updates = options.steps * options.layers;
  // The CPU run: one update per MoE block and step, on the CPU kernels.
  assert.equal(afterCpu[UPDATE_CPU] - start[UPDATE_CPU], updates);
  assert.equal(
    afterCpu[UPDATE_GPU],
    start[UPDATE_GPU],
    `the CPU run used ${updateOp}/webgpu`,
  );
  assert.equal(
    afterCpu[ROUTE_GPU],
    start[ROUTE_GPU],
    "the CPU run used route/webgpu",
  );
  // The WebGPU run: routes and updates on the WebGPU kernels alone.
  assert.equal(
    afterGpu[ROUTE_CPU],
    afterCpu[ROUTE_CPU],
    "the WebGPU run used route/cpu",
  );
  assert.equal(
    afterGpu[UPDATE_CPU],
    afterCpu[UPDATE_CPU],
    `the WebGPU run used ${updateOp}/cpu`,
  );
  assert.equal(afterGpu[UPDATE_GPU] - afterCpu[UPDATE_GPU], updates);
  assert.ok(
    afterGpu[ROUTE_GPU] - afterCpu[ROUTE_GPU] >= updates,
    "the WebGPU run did not route every block by route/webgpu",
  );
  assertSameCurve(onCpu.curve.loss, onGpu.curve.loss);
  assert.ok(Math.abs(onCpu.loss - onGpu.loss) <= 1e-5 * onCpu.loss);
  assert.ok(onCpu.biases && onGpu.biases);
  assert.equal(onGpu.biases.length, onCpu.biases.length);
  return { cpu: onCpu.biases, gpu: onGpu.biases, blocks: options.layers };
}

test(
  "transformer: the same loss curve on the CPU and on WebGPU",
  { skip: !gpu && !required ? `no WebGPU adapter: ${reason}` : false },
  async () => {
    assert.ok(gpu, `MOELAB_REQUIRE_GPU=1 but there is no adapter: ${reason}`);
    const corpus = { train: tokens(1, 4096, 32), valid: tokens(2, 512, 32) };
    const options = { ...TINY, steps: 8, validTokens: 256, seed: 3 };
    const all = registeredKernels();
    const counts = () => new Map(all.map((k) => [k, k.calls]));
    const start = counts();
    const onCpu = await trainTransformer(corpus, {
      ...options,
      backend: "cpu",
    });
    const afterCpu = counts();
    const onGpu = await trainTransformer(corpus, {
      ...options,
      backend: "webgpu",
    });
    const afterGpu = counts();
    // Every model op the CPU run computed through the registry (with its
    // TypeScript or WebAssembly kernel), the WebGPU run computed with its
    // WebGPU kernel and never with those.
    const used = all.filter((k) =>
      (k.backend === "cpu" || k.backend === "wasm") &&
      MODEL_OPS.has(k.op.name) &&
      afterCpu.get(k)! > start.get(k)!
    );
    const names = used.map((k) => k.op.name);
    for (const name of MODEL_OPS) {
      assert.ok(names.includes(name), `the step does not call ${name}`);
    }
    for (const cpu of used) {
      const gpuKernel = all.find((k) =>
        k.op === cpu.op && k.backend === "webgpu"
      );
      if (!gpuKernel) continue; // an op without a WebGPU kernel
      assert.ok(
        afterGpu.get(gpuKernel)! > afterCpu.get(gpuKernel)!,
        `the WebGPU run did not use ${cpu.op.name}/webgpu`,
      );
      assert.equal(
        afterGpu.get(cpu),
        afterCpu.get(cpu),
        `the WebGPU run used ${cpu.op.name}/${cpu.backend}`,
      );
    }
    for (const k of all.filter((k) => k.backend === "webgpu")) {
      assert.equal(
        afterCpu.get(k),
        start.get(k),
        `the CPU run used ${k.op.name}/webgpu`,
      );
    }
    const a = onCpu.curve.loss, b = onGpu.curve.loss;
    assert.equal(b.length, a.length);
    // Learning: the loss falls (the comparison is not between two flat curves).
    assert.ok(
      a[a.length - 1] < a[0] - 0.05,
      `loss ${a[0]} -> ${a[a.length - 1]}`,
    );
    assertSameCurve(a, b);
    assert.ok(Math.abs(onCpu.loss - onGpu.loss) <= 1e-5 * onCpu.loss);
  },
);

test(
  "transformer: Loss-Free trains to the same curve and biases on the CPU and on WebGPU",
  { skip: !gpu && !required ? `no WebGPU adapter: ${reason}` : false },
  async () => {
    assert.ok(gpu, `MOELAB_REQUIRE_GPU=1 but there is no adapter: ${reason}`);
    // A rate far above the float32 rounding of the bias (1e-9 at these
    // values): routing decisions on s + b agree between float64 and float32
    // biases unless a score gap falls below that rounding.
    const biases = await trainBalancedBoth(
      "loss-free(rate=0.01)",
      "lossFreeUpdate",
      7,
      4,
    );
    // The sign rule moves each bias by -rate, 0 or +rate per step: a
    // multiple of 0.01 of magnitude at most the number of steps.
    let moved = 0;
    for (let l = 0; l < biases.blocks; l++) {
      for (let j = 0; j < TINY.experts; j++) {
        const x = biases.cpu[l][j], y = biases.gpu[l][j];
        moved = Math.max(moved, Math.abs(x));
        assert.ok(
          Math.abs(x - y) <= 1e-6,
          `block ${l} expert ${j}: CPU bias ${x}, WebGPU bias ${y}`,
        );
        const steps = Math.round(x / 0.01);
        assert.ok(Math.abs(x - steps * 0.01) <= 1e-9 && Math.abs(steps) <= 6);
      }
    }
    assert.ok(moved >= 0.01, "the biases never moved");
  },
);

test(
  "transformer: BIP trains to the same curve and prices on the CPU and on WebGPU",
  { skip: !gpu && !required ? `no WebGPU adapter: ${reason}` : false },
  async () => {
    assert.ok(gpu, `MOELAB_REQUIRE_GPU=1 but there is no adapter: ${reason}`);
    // One dual solve per MoE block and step (no routeChunk: one chunk).
    const biases = await trainBalancedBoth("bip", "bipRound", 11, 6);
    // The biases are the negated expert prices: at most 0, some below.
    let lowest = 0;
    for (let l = 0; l < biases.blocks; l++) {
      for (let j = 0; j < TINY.experts; j++) {
        const x = biases.cpu[l][j], y = biases.gpu[l][j];
        lowest = Math.min(lowest, x);
        assert.ok(x <= 0);
        assert.ok(
          Math.abs(x - y) <= 1e-5,
          `block ${l} expert ${j}: CPU bias ${x}, WebGPU bias ${y}`,
        );
      }
    }
    assert.ok(lowest < 0, "no expert was ever priced");
  },
);
