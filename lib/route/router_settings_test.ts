// Loss-Free's micro-batch accumulation, rate schedules and emulated
// precisions, and the capacity balancer's minimum, against hand-worked values.
import { test } from "node:test";
import assert from "node:assert/strict";
import { lossFree, scheduledRate } from "./loss_free.ts";
import {
  lossFreeUpdateCpu,
  lossFreeUpdateOp,
} from "../ops/loss_free_update.ts";

const update = (o: Partial<Parameters<typeof lossFreeUpdateOp.validate>[0]>) =>
  lossFreeUpdateCpu(lossFreeUpdateOp.validate({
    bias: new Float64Array(4),
    loads: new Int32Array(4),
    rate: 1e-3,
    rule: "sign",
    center: false,
    ...o,
  }));

// bfloat16(1e-3) = 131 / 128 * 2^-10.
const BF16_RATE = 0.00099945068359375;

test("bfloat16 counts lose the signs of experts within 256 of the mean (Megatron-LM PR 7081)", () => {
  // Exact counts around 40960 (mean 40960): signs +, +, -, -.
  const loads = new Int32Array([40840, 40900, 41000, 41100]);
  const f32 = update({
    loads,
    countPrecision: "float32",
    biasPrecision: "float32",
  });
  const u = Math.fround(1e-3);
  assert.deepEqual([...f32], [u, u, -u, -u]);
  // bfloat16 counts: 40960, 40960, 40960, 41216; sum 163840 (164096 rounded
  // to the spacing 1024), mean 40960: only the last expert moves, by
  // bfloat16(1e-3).
  const bf = update({
    loads,
    countPrecision: "bfloat16",
    biasPrecision: "float32",
  });
  assert.deepEqual([...bf], [0, 0, 0, -BF16_RATE]);
});

test("a bfloat16 bias at 0.5 no longer moves by 1e-3 (Megatron-LM issue 1482)", () => {
  const loads = new Int32Array([0, 10, 10, 20]); // mean 10: +, 0, 0, -
  const bias = new Float64Array([0.5, 0, 0, -0.5]);
  update({ bias, loads, biasPrecision: "bfloat16" });
  // Past 0.5 the bfloat16 spacing is 2^-8: 0.5 + 0.001 and -0.5 - 0.001
  // round back to +-0.5. In float32 both move.
  assert.equal(bias[0], 0.5);
  assert.equal(bias[3], -0.5);
  const f32 = new Float64Array([0.5, 0, 0, -0.5]);
  update({ bias: f32, loads, biasPrecision: "float32" });
  assert.equal(f32[0], Math.fround(0.501));
  assert.equal(f32[3], Math.fround(-0.501));
});

test("token counters stop: bfloat16 at 256, float32 at 2^24", () => {
  const counts = new Float64Array([250, 0, 0, 0]);
  update({
    counts,
    loads: new Int32Array([100, 1, 1, 1]),
    countPrecision: "bfloat16",
    countAdd: "token",
    apply: false,
  });
  assert.deepEqual([...counts], [256, 1, 1, 1]);
  const big = new Float64Array([2 ** 24 - 2, 0, 0, 0]);
  update({
    counts: big,
    loads: new Int32Array([5, 0, 0, 0]),
    countPrecision: "float32",
    countAdd: "token",
    apply: false,
  });
  assert.equal(big[0], 2 ** 24);
});

test("microBatches: counts of the micro-batches summed, one update per global batch", () => {
  const b = lossFree({ layers: 1, experts: 2, k: 1 }, {
    rate: 0.01,
    microBatches: 2,
  });
  const toZero = {
    data: new Float32Array([0.9, 0.1, 0.8, 0.2]),
    tokens: 2,
    experts: 2,
  };
  const split = {
    data: new Float32Array([0.9, 0.1, 0.2, 0.8]),
    tokens: 2,
    experts: 2,
  };
  b.update(0, toZero, b.route(0, toZero)); // loads [2, 0]
  assert.deepEqual([...b.biases(0)], [0, 0]);
  b.update(0, split, b.route(0, split)); // loads [1, 1]; summed [3, 1]
  assert.deepEqual([...b.biases(0)], [-0.01, 0.01]);
  // The next global batch starts from zero counts.
  b.update(0, split, b.route(0, split));
  assert.deepEqual([...b.biases(0)], [-0.01, 0.01]);
});

test("rate schedules by hand", () => {
  const o = { rate: 1e-3, scheduleSteps: 10, finalRate: 1e-4 };
  assert.equal(scheduledRate({ ...o, schedule: "constant" }, 7), 1e-3);
  assert.ok(
    Math.abs(scheduledRate({ ...o, schedule: "linear" }, 10) - 1e-4) < 1e-18,
  );
  assert.ok(
    Math.abs(scheduledRate({ ...o, schedule: "linear" }, 5) - 5.5e-4) < 1e-18,
  );
  assert.ok(
    Math.abs(scheduledRate({ ...o, schedule: "cosine" }, 5) - 5.5e-4) < 1e-18,
  );
  assert.ok(
    scheduledRate({ ...o, schedule: "cosine" }, 2) >
      scheduledRate({ ...o, schedule: "linear" }, 2),
  );
  assert.equal(
    scheduledRate({ ...o, schedule: "step", stepFactor: 0.5 }, 19),
    5e-4,
  );
  assert.equal(
    scheduledRate({ ...o, schedule: "step", stepFactor: 0.5 }, 20),
    2.5e-4,
  );
  assert.throws(
    () => scheduledRate({ schedule: "linear" }, 1),
    /scheduleSteps/,
  );
  assert.throws(() =>
    lossFree({ layers: 1, experts: 2, k: 1 }, {
      // deno-lint-ignore no-explicit-any
      biasPrecision: "float16" as any,
    }), /biasPrecision must be one of/);
});

test("the schedule's rate is the one applied", () => {
  const b = lossFree({ layers: 1, experts: 2, k: 1 }, {
    rate: 0.02,
    schedule: "step",
    scheduleSteps: 1,
    stepFactor: 0.5,
  });
  const s = {
    data: new Float32Array([0.9, 0.1, 0.8, 0.2]),
    tokens: 2,
    experts: 2,
  };
  b.update(0, s, b.route(0, s)); // rate 0.02
  b.update(0, s, b.route(0, s)); // rate 0.01
  assert.deepEqual([...b.biases(0)], [-0.03, 0.03]);
});

test("the capacity balancer's minCapacity (get_capacity's min_capacity) keeps more tokens", async () => {
  const { capacity } = await import("./capacity.ts");
  // 4 tokens all on expert 0, k = 1, 4 experts: capacity ceil(4 / 4) = 1.
  const scores = {
    data: new Float32Array([
      0.9,
      0,
      0,
      0,
      0.8,
      0,
      0,
      0,
      0.7,
      0,
      0,
      0,
      0.6,
      0,
      0,
      0,
    ]),
    tokens: 4,
    experts: 4,
  };
  const ctx = { layers: 1, experts: 4, k: 1 };
  const plain = capacity(ctx, { capacityFactor: 1 }).route(0, scores);
  assert.deepEqual([...plain.loads], [1, 0, 0, 0]);
  const floor3 = capacity(ctx, { capacityFactor: 1, minCapacity: 3 }).route(
    0,
    scores,
  );
  assert.deepEqual([...floor3.loads], [3, 0, 0, 0]);
  assert.deepEqual([...floor3.experts], [0, 0, 0, -1]);
});

test("topkRouting refuses what Megatron-Core's config refuses, naming the option", async () => {
  const { topkRouting } = await import("./topk_router.ts");
  const logits = {
    data: new Float32Array([1, 2, 3, 4]),
    tokens: 1,
    experts: 4,
  };
  assert.throws(
    () => topkRouting(logits, { topk: 2, expertBias: [0, 0, 0, 0] }),
    /expertBias needs scoreFunction sigmoid or sqrtsoftplus/,
  );
  assert.throws(
    () =>
      topkRouting(logits, {
        topk: 2,
        scoreFunction: "sigmoid",
        preSoftmax: true,
      }),
    /preSoftmax applies to the softmax score function only/,
  );
  assert.throws(
    () => topkRouting(logits, { topk: 2, numGroups: 2 }),
    /numGroups and groupTopk go together/,
  );
  assert.throws(
    () => topkRouting(logits, { topk: 2, padToCapacity: true }),
    /padToCapacity needs capacityFactor/,
  );
  assert.throws(
    () => topkRouting(logits, { topk: 5 }),
    /topk must be an integer in \[1, 4\]/,
  );
  // Post-softmax, k = 2 of logits 3 and 4: weights softmax([4, 3]).
  const r = topkRouting(logits, { topk: 2 });
  assert.deepEqual([...r.routing.experts], [3, 2]);
  const e = Math.exp(-1);
  assert.ok(Math.abs(r.routing.weights[0] - 1 / (1 + e)) < 1e-7);
  assert.ok(Math.abs(r.routing.weights[1] - e / (1 + e)) < 1e-7);
});

test("router replay: the bias moves on the replayed routing's loads, not on its own selection", () => {
  // The rollout engine routed both tokens to expert 1; training replays
  // that routing (Megatron-Core's moe_enable_routing_replay) and updates
  // the bias from it, while its own top-1 would pick expert 0.
  const b = lossFree({ layers: 1, experts: 2, k: 1 }, { rate: 0.01 });
  const scores = {
    data: new Float32Array([0.9, 0.1, 0.8, 0.2]),
    tokens: 2,
    experts: 2,
  };
  assert.deepEqual([...b.route(0, scores).loads], [2, 0]);
  const replayed = {
    k: 1,
    experts: new Int32Array([1, 1]),
    weights: new Float32Array([0.1, 0.2]),
    loads: new Int32Array([0, 2]),
  };
  b.update(0, scores, replayed);
  assert.deepEqual([...b.biases(0)], [0.01, -0.01]);
});
