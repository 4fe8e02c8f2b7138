// One forward and backward pass of the whole model over a batch.
import type { Routing, ScoreMatrix } from "../types.ts";
import { createRouting } from "../route/route.ts";
import { auxLoss, zLoss } from "./aux_loss.ts";
import { embedBackward, embedForward } from "./_embed.ts";
import {
  type ExpertBuffers,
  expertBuffers,
  expertsBackward,
  expertsForward,
} from "./_experts.ts";
import { outputLoss } from "./_output.ts";
import {
  gateBackward,
  gateForward,
  routerBackward,
  routerForward,
} from "./_router.ts";
import {
  type MoeModel,
  type MoeParams,
  paramViews,
  type ResolvedModelConfig,
} from "./model.ts";

/** Buffers for batches of up to `capacity` tokens, allocated once per run. */
export interface Workspace {
  readonly capacity: number;
  /** Context symbols, `(N x context)`. */
  readonly ctx: Int32Array;
  /** Next symbol to predict, `(N)`. */
  readonly targets: Int32Array;
  readonly h0: Float64Array;
  readonly x: Float64Array;
  /** Router logits `(N x E)`. */
  readonly r: Float64Array;
  /** Router scores `(N x E)`. */
  readonly s: Float64Array;
  /** The scores in float32, as the balancers take them. */
  readonly s32: Float32Array;
  readonly gate: Float64Array;
  readonly experts: ExpertBuffers;
  readonly y: Float64Array;
  readonly logits: Float64Array;
  readonly dy: Float64Array;
  readonly dx: Float64Array;
  readonly dgate: Float64Array;
  readonly ds: Float64Array;
  readonly dr: Float64Array;
  readonly dh0: Float64Array;
  /** Plain top-K routing buffer. */
  readonly routing: Routing;
  /** Gradient of every parameter, laid out as the model's `params`. */
  readonly grads: Float64Array;
  readonly gradViews: MoeParams;
}

/** Allocates a {@linkcode Workspace} for `model` and batches of `capacity` tokens. */
export function createWorkspace(model: MoeModel, capacity: number): Workspace {
  const c = model.config, n = capacity;
  const grads = new Float64Array(model.params.length);
  return {
    capacity,
    ctx: new Int32Array(n * c.context),
    targets: new Int32Array(n),
    h0: new Float64Array(n * c.context * c.embed),
    x: new Float64Array(n * c.dim),
    r: new Float64Array(n * c.experts),
    s: new Float64Array(n * c.experts),
    s32: new Float32Array(n * c.experts),
    gate: new Float64Array(n * c.topK),
    experts: expertBuffers(c, n),
    y: new Float64Array(n * c.dim),
    logits: new Float64Array(c.vocab),
    dy: new Float64Array(n * c.dim),
    dx: new Float64Array(n * c.dim),
    dgate: new Float64Array(n * c.topK),
    ds: new Float64Array(n * c.experts),
    dr: new Float64Array(n * c.experts),
    dh0: new Float64Array(c.context * c.embed),
    routing: createRouting(n, c.topK, c.experts),
    grads,
    gradViews: paramViews(grads, c),
  };
}

/** A loss added to the language-model loss to shape the router. */
export type RouterObjective =
  | { kind: "aux"; alpha: number; seqLen?: number }
  | { kind: "z-loss"; coef: number };

/** What {@linkcode modelStep} measured. */
export interface StepResult {
  /** Mean cross-entropy over the batch, nats per character. */
  ce: number;
  /** The router objective's value (0 without one). */
  aux: number;
  /** The routing used (selected experts and loads). */
  routing: Routing;
}

/**
 * Forward pass over the first `n` tokens of the workspace (`ctx`,
 * `targets` filled by the caller) and, when `backward` is set, the
 * backward pass of `ce + objective` into `ws.grads` (overwritten).
 * `select` chooses the experts from the router scores (float32,
 * `n x E`): a balancer's `route`, or plain top-K. The selection is a
 * constant for the gradient; the gate weights of the selected experts carry
 * the router's gradient from the language-model loss.
 */
export function modelStep(
  model: MoeModel,
  ws: Workspace,
  n: number,
  select: (scores: ScoreMatrix) => Routing,
  objective?: RouterObjective,
  backward = true,
): StepResult {
  const c: ResolvedModelConfig = model.config, p = model.views;
  const E = c.experts, K = c.topK;
  embedForward(p, c, n, ws.ctx, ws.h0, ws.x);
  routerForward(p, c, n, ws.x, ws.r, ws.s);
  const ne = n * E;
  for (let i = 0; i < ne; i++) ws.s32[i] = ws.s[i];
  const routing = select({
    data: ws.s32.subarray(0, ne),
    tokens: n,
    experts: E,
  });
  const sel = routing.experts;
  gateForward(c, n, ws.s, sel, ws.gate);
  expertsForward(p, c, n, ws.x, sel, ws.gate, ws.experts, ws.y);
  if (!backward) {
    const ce = outputLoss(p, c, n, ws.y, ws.targets, ws.logits);
    return { ce, aux: 0, routing };
  }
  const g = ws.gradViews;
  ws.grads.fill(0);
  const ce = outputLoss(p, c, n, ws.y, ws.targets, ws.logits, g, ws.dy);
  expertsBackward(
    p,
    g,
    c,
    n,
    ws.x,
    sel,
    ws.gate,
    ws.experts,
    ws.dy,
    ws.dx,
    ws.dgate,
  );
  const ds = ws.ds.subarray(0, ne);
  ds.fill(0);
  gateBackward(c, n, ws.s, sel, ws.gate, ws.dgate, ds);
  let aux = 0, dr: Float64Array | undefined;
  if (objective?.kind === "aux") {
    aux = auxLoss(
      {
        scores: ws.s.subarray(0, ne),
        tokens: n,
        experts: E,
        selected: sel.subarray(0, n * K),
        k: K,
      },
      {
        alpha: objective.alpha,
        seqLen: objective.seqLen,
        normalize: c.gate === "sigmoid",
        grad: ds,
      },
    );
  } else if (objective?.kind === "z-loss") {
    dr = ws.dr.subarray(0, ne);
    dr.fill(0);
    aux = zLoss({ scores: ws.r.subarray(0, ne), tokens: n, experts: E }, {
      coef: objective.coef,
      grad: dr,
    });
  }
  routerBackward(p, g, c, n, ws.x, ws.s, ds, dr, ws.dx);
  embedBackward(p, g, c, n, ws.ctx, ws.h0, ws.dx, ws.dh0);
  return { ce, aux, routing };
}
