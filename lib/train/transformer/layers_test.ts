// Finite-difference checks of the transformer's backward passes, in float32:
// each check compares the analytic directional derivative g·v with the
// central difference (f(x + h v) - f(x - h v)) / 2h along a random unit
// direction v (h = 1e-2; SiLU experts keep every path smooth). Float32
// rounding and the h^2 term keep the agreement near 1e-3; a wrong
// backward pass misses by far more. PyTorch pins the same gradients to
// 1e-5 in torch_test.ts.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../../scores/rng.ts";
import { createRouting, routeInto } from "../../route/route.ts";
import type { Routing, ScoreMatrix } from "../../types.ts";
import { lmKernels } from "./_kernels.ts";
import { createTransformer, type TransformerConfig } from "./model.ts";
import {
  createTransformerWorkspace,
  type LmRouterObjective,
  transformerStep,
} from "./step.ts";

const H = 1e-2;
const TOL = 5e-3;

function direction(rng: Rng, size: number): Float32Array {
  const v = new Float32Array(size);
  let ss = 0;
  for (let i = 0; i < size; i++) ss += (v[i] = rng.normal()) ** 2;
  for (let i = 0; i < size; i++) v[i] /= Math.sqrt(ss);
  return v;
}

/** Relative error of the directional derivative of `f` at `x` along a random unit direction. */
async function fdError(
  f: () => number | Promise<number>,
  x: Float32Array,
  grad: ArrayLike<number>,
  rng: Rng,
): Promise<number> {
  const v = direction(rng, x.length);
  let gv = 0;
  for (let i = 0; i < x.length; i++) gv += grad[i] * v[i];
  const keep = x.slice();
  for (let i = 0; i < x.length; i++) x[i] = keep[i] + H * v[i];
  const up = await f();
  for (let i = 0; i < x.length; i++) x[i] = keep[i] - H * v[i];
  const down = await f();
  x.set(keep);
  const fd = (up - down) / (2 * H);
  return Math.abs(fd - gv) / Math.max(1e-2, Math.abs(fd) + Math.abs(gv));
}

function randomF32(rng: Rng, size: number, std = 1): Float32Array {
  return Float32Array.from({ length: size }, () => std * rng.normal());
}

const dot = (w: Float32Array, y: Float32Array) => {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += w[i] * y[i];
  return s;
};

describe("finite-difference checks of the layers, float32", () => {
  test("RMSNorm: input and gain", async () => {
    const rng = new Rng(1), rows = 5, dim = 7, K = lmKernels("cpu");
    const x = randomF32(rng, rows * dim), gain = randomF32(rng, dim);
    const w = randomF32(rng, rows * dim);
    const out = new Float32Array(rows * dim), rstd = new Float32Array(rows);
    const f = async () => {
      await K.rmsNorm({ x, gain, out, rstd, rows, dim, eps: 1e-5 });
      return dot(w, out);
    };
    await f();
    const dx = new Float32Array(rows * dim), dGain = new Float32Array(dim);
    await K.rmsNormBackward({
      x,
      gain,
      rstd,
      dOut: w,
      dx,
      accumulate: false,
      dGain,
      rows,
      dim,
    });
    assert.ok((await fdError(f, x, dx, rng)) < TOL);
    assert.ok((await fdError(f, gain, dGain, rng)) < TOL);
  });

  test("causal attention core: q, k, v", async () => {
    const rng = new Rng(2), K = lmKernels("cpu");
    const batch = 2, heads = 2, seq = 5, headDim = 3;
    const size = batch * heads * seq * headDim;
    const q = randomF32(rng, size), k = randomF32(rng, size);
    const v = randomF32(rng, size), w = randomF32(rng, size);
    const out = new Float32Array(size);
    const probs = new Float32Array(batch * heads * seq * seq);
    const f = async () => {
      await K.attention({ q, k, v, out, probs, batch, heads, seq, headDim });
      return dot(w, out);
    };
    await f();
    const dq = new Float32Array(size), dk = new Float32Array(size);
    const dv = new Float32Array(size);
    await K.attentionBackward({
      q,
      k,
      v,
      probs,
      dOut: w,
      dq,
      dk,
      dv,
      batch,
      heads,
      seq,
      headDim,
    });
    for (const [x, g] of [[q, dq], [k, dk], [v, dv]]) {
      assert.ok((await fdError(f, x, g, rng)) < TOL);
    }
  });
});

const SHAPES: [string, TransformerConfig][] = [
  ["sigmoid gate, dense first block, shared expert, tied output", {
    vocab: 20,
    seqLen: 6,
    dim: 8,
    heads: 2,
    layers: 3,
    denseLayers: 1,
    denseHidden: 12,
    experts: 4,
    topK: 2,
    hidden: 6,
    sharedHidden: 5,
  }],
  ["softmax gate, untied output", {
    vocab: 20,
    seqLen: 6,
    dim: 8,
    heads: 2,
    layers: 2,
    experts: 4,
    topK: 2,
    hidden: 6,
    gate: "softmax",
    tied: false,
  }],
];
const OBJECTIVES: [string, LmRouterObjective | undefined][] = [
  ["no router loss", undefined],
  ["aux loss", { kind: "aux", alpha: 0.1 }],
  ["sequence-wise aux loss", { kind: "aux", alpha: 0.1, seqLen: 6 }],
  ["z-loss", { kind: "z-loss", coef: 0.1 }],
];

describe("finite-difference checks of every parameter tensor, whole model", () => {
  for (const [name, shape] of SHAPES) {
    for (const [oname, objective] of OBJECTIVES) {
      test(`${name}; ${oname}`, async () => {
        const m = createTransformer(shape, 3);
        const rng = new Rng(4);
        // Weights off their initial scale, so every path carries gradient.
        for (let i = 0; i < m.params.length; i++) {
          m.params[i] += 0.3 * rng.normal();
        }
        const seqs = 3, c = m.config;
        const ws = createTransformerWorkspace(m, seqs);
        for (let i = 0; i < ws.tokens.length; i++) {
          ws.tokens[i] = rng.int(c.vocab);
          ws.targets[i] = rng.int(c.vocab);
        }
        // The selection of the first pass, held fixed (it is a constant for
        // the gradient; a perturbation must not flip it).
        const n = seqs * c.seqLen;
        const fixed: Int32Array[] = [];
        const routings: Routing[] = [];
        const select = (l: number, s: ScoreMatrix) => {
          const r = routings[l] ??= createRouting(n, c.topK, c.experts);
          routeInto(s, c.topK, r);
          if (fixed[l]) r.experts.set(fixed[l]);
          else fixed[l] = r.experts.slice();
          return r;
        };
        await transformerStep(m, ws, seqs, select, objective);
        const g = ws.grads.slice();
        const loss = async () => {
          const r = await transformerStep(m, ws, seqs, select, objective);
          return r.ce + r.aux;
        };
        let checked = 0;
        for (const t of m.tensors) {
          const size = t.shape.reduce((a, b) => a * b, 1);
          if (size === 0) continue;
          const x = m.params.subarray(t.offset, t.offset + size);
          const err = await fdError(
            loss,
            x,
            g.subarray(t.offset, t.offset + size),
            rng,
          );
          assert.ok(err < TOL, `${t.name}: relative error ${err}`);
          checked++;
        }
        assert.ok(checked >= 10);
      });
    }
  }
});
