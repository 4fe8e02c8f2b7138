import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../scores/rng.ts";
import { routeInto } from "../route/route.ts";
import { createMoeModel } from "./model.ts";
import { createWorkspace, modelStep, type RouterObjective } from "./step.ts";
import { gradError, randomize } from "./_gradcheck.ts";
import type { Routing, ScoreMatrix } from "../types.ts";

// The whole model, every parameter, against central differences of
// cross-entropy plus each router objective. The selection is computed once
// and held fixed, as it is a constant for the gradient.
describe("modelStep: whole-model gradient, float64", () => {
  const objectives: [string, RouterObjective | undefined][] = [
    ["no objective", undefined],
    ["aux loss", { kind: "aux", alpha: 0.5 }],
    ["sequence-wise aux loss", { kind: "aux", alpha: 0.5, seqLen: 3 }],
    ["z-loss", { kind: "z-loss", coef: 0.5 }],
  ];
  for (const gate of ["sigmoid", "softmax"] as const) {
    for (const [name, objective] of objectives) {
      test(`${gate} gate, ${name}`, () => {
        const model = createMoeModel({
          vocab: 7,
          context: 3,
          embed: 3,
          dim: 4,
          experts: 5,
          topK: 2,
          hidden: 5,
          sharedHidden: 3,
          gate,
        }, 4);
        const rng = new Rng(8);
        randomize(model.params, rng, 0.7);
        const n = 6, c = model.config;
        const ws = createWorkspace(model, n);
        for (let i = 0; i < n * c.context; i++) ws.ctx[i] = rng.int(c.vocab);
        for (let i = 0; i < n; i++) ws.targets[i] = rng.int(c.vocab);
        let fixed: Routing | undefined;
        const select = (s: ScoreMatrix): Routing => {
          if (!fixed) {
            fixed = {
              ...ws.routing,
              experts: new Int32Array(n * c.topK),
              loads: new Int32Array(c.experts),
            };
            routeInto(s, c.topK, fixed);
          }
          return fixed;
        };
        const first = modelStep(model, ws, n, select, objective);
        const grads = Float64Array.from(ws.grads);
        const f = () => {
          const r = modelStep(model, ws, n, select, objective, false);
          if (!objective) return r.ce;
          // The forward pass alone does not evaluate the objective: do it
          // with a backward pass, whose gradient is discarded.
          const b = modelStep(model, ws, n, select, objective);
          return b.ce + b.aux;
        };
        assert.ok(objective === undefined || first.aux > 0);
        assert.ok(gradError(f, model.params, grads) < 1e-6);
      });
    }
  }
});
