import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../scores/rng.ts";
import { createMoeModel, type MoeModelConfig, paramViews } from "./model.ts";
import { embedBackward, embedForward } from "./_embed.ts";
import {
  gateBackward,
  gateForward,
  routerBackward,
  routerForward,
} from "./_router.ts";
import { expertBuffers, expertsBackward, expertsForward } from "./_experts.ts";
import { outputLoss } from "./_output.ts";
import { dot, gradError, randomize } from "./_gradcheck.ts";

// A tiny model in float64, with weights large enough that every path
// carries gradient; ReLU kinks are far from the probed points for this seed.
const SHAPE: MoeModelConfig = {
  vocab: 7,
  context: 3,
  embed: 3,
  dim: 4,
  experts: 5,
  topK: 2,
  hidden: 5,
  sharedHidden: 3,
};
const N = 6;
const TOL = 1e-6;

function setup(config: MoeModelConfig = SHAPE) {
  const model = createMoeModel(config, 3);
  const rng = new Rng(5);
  randomize(model.params, rng, 0.7);
  const grads = new Float64Array(model.params.length);
  const g = paramViews(grads, model.config);
  return { model, c: model.config, p: model.views, grads, g, rng };
}

describe("finite-difference gradient checks, float64", () => {
  test("embedding and mixing layer", () => {
    const { c, p, g, rng, model, grads } = setup();
    const ctx = Int32Array.from(
      { length: N * c.context },
      () => rng.int(c.vocab),
    );
    const h0 = new Float64Array(N * c.context * c.embed);
    const x = new Float64Array(N * c.dim);
    const w = randomize(new Float64Array(N * c.dim), rng);
    const f = () => (embedForward(p, c, N, ctx, h0, x), dot(w, x));
    f();
    embedBackward(
      p,
      g,
      c,
      N,
      ctx,
      h0,
      w,
      new Float64Array(c.context * c.embed),
    );
    assert.ok(gradError(f, model.params, grads) < TOL);
    assert.ok(g.emb.some((v) => v !== 0) && g.mixW.some((v) => v !== 0));
  });

  for (const gate of ["sigmoid", "softmax"] as const) {
    test(`router (${gate}): weights and input, through scores and logits`, () => {
      const { c, p, g, rng, grads } = setup({ ...SHAPE, gate });
      const x = randomize(new Float64Array(N * c.dim), rng);
      const r = new Float64Array(N * c.experts),
        s = new Float64Array(N * c.experts);
      const ws = randomize(new Float64Array(N * c.experts), rng);
      const wr = randomize(new Float64Array(N * c.experts), rng);
      const f =
        () => (routerForward(p, c, N, x, r, s), dot(ws, s) + dot(wr, r));
      f();
      const dx = new Float64Array(N * c.dim);
      routerBackward(p, g, c, N, x, s, Float64Array.from(ws), wr, dx);
      assert.ok(gradError(f, p.router, g.router) < TOL);
      assert.ok(gradError(f, x, dx) < TOL);
      void grads;
    });
  }

  for (const normalize of [true, false]) {
    test(`gate weights of the selected experts (normalize ${normalize})`, () => {
      const { c, rng } = setup({ ...SHAPE, normalize });
      const s = Float64Array.from(
        { length: N * c.experts },
        () => 0.1 + rng.uniform(),
      );
      const sel = Int32Array.from(
        { length: N * c.topK },
        (_, q) => (q * 3 + (q >> 1)) % c.experts,
      );
      for (let i = 0; i < N; i++) {
        if (sel[2 * i] === sel[2 * i + 1]) {
          sel[2 * i + 1] = (sel[2 * i] + 1) % c.experts;
        }
      }
      const gate = new Float64Array(N * c.topK);
      const w = randomize(new Float64Array(N * c.topK), rng);
      const f = () => (gateForward(c, N, s, sel, gate), dot(w, gate));
      f();
      const ds = new Float64Array(N * c.experts);
      gateBackward(c, N, s, sel, gate, w, ds);
      assert.ok(gradError(f, s, ds) < TOL);
      // Unselected experts get no gradient through the gate.
      for (let i = 0; i < N; i++) {
        for (let j = 0; j < c.experts; j++) {
          if (sel[2 * i] !== j && sel[2 * i + 1] !== j) {
            assert.equal(ds[i * c.experts + j], 0);
          }
        }
      }
    });
  }

  for (const sharedHidden of [0, 3]) {
    test(`routed experts${sharedHidden ? " and the shared expert" : ""}: weights, input, gates`, () => {
      const { c, p, g, rng, model, grads } = setup({ ...SHAPE, sharedHidden });
      const x = randomize(new Float64Array(N * c.dim), rng);
      const sel = Int32Array.from(
        { length: N * c.topK },
        (_, q) => (q * 2 + (q & 1)) % c.experts,
      );
      const gate = Float64Array.from(
        { length: N * c.topK },
        () => 0.2 + rng.uniform(),
      );
      const buf = expertBuffers(c, N);
      const y = new Float64Array(N * c.dim);
      const w = randomize(new Float64Array(N * c.dim), rng);
      const f =
        () => (expertsForward(p, c, N, x, sel, gate, buf, y), dot(w, y));
      f();
      const dx = new Float64Array(N * c.dim),
        dgate = new Float64Array(N * c.topK);
      expertsBackward(p, g, c, N, x, sel, gate, buf, w, dx, dgate);
      assert.ok(gradError(f, model.params, grads) < TOL);
      assert.ok(gradError(f, x, dx) < TOL);
      assert.ok(gradError(f, gate, dgate) < TOL);
      assert.equal(g.sw1.some((v) => v !== 0), sharedHidden > 0);
    });
  }

  test("output softmax and cross-entropy", () => {
    const { c, p, g, rng, model, grads } = setup();
    const y = randomize(new Float64Array(N * c.dim), rng);
    const targets = Int32Array.from({ length: N }, () => rng.int(c.vocab));
    const logits = new Float64Array(c.vocab);
    const f = () => outputLoss(p, c, N, y, targets, logits);
    const dy = new Float64Array(N * c.dim);
    const loss = outputLoss(p, c, N, y, targets, logits, g, dy);
    assert.equal(loss, f());
    assert.ok(gradError(f, model.params, grads) < TOL);
    assert.ok(gradError(f, y, dy) < TOL);
  });

  test("cross-entropy of uniform logits is ln(vocab)", () => {
    const { c, p } = setup();
    p.outW.fill(0);
    p.outB.fill(0);
    const loss = outputLoss(
      p,
      c,
      1,
      new Float64Array(c.dim),
      new Int32Array([2]),
      new Float64Array(c.vocab),
    );
    assert.ok(Math.abs(loss - Math.log(c.vocab)) < 1e-15);
  });
});
