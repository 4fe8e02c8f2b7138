import { checkInteger, checkNumber } from "../validate.ts";
import { maxVio } from "../metrics/load_metrics.ts";
import type { Balancer } from "../route/balancer.ts";
import { createBalancer } from "../route/registry.ts";
import { routeInto } from "../route/route.ts";
import { Rng } from "../scores/rng.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import { Adam } from "./adam.ts";
import { fillSequences, randomStarts } from "./batch.ts";
import { checkText, evaluateWith, type Evaluation } from "./evaluate.ts";
import { parseTrainMethod, type TrainMethod } from "./method.ts";
import { createMoeModel, type MoeModel, type MoeModelConfig } from "./model.ts";
import { createWorkspace, modelStep, type RouterObjective } from "./step.ts";

/** Options of {@linkcode trainMoe}: the model's shape and the run's. */
export interface TrainOptions extends MoeModelConfig {
  /** Balancing method, see {@linkcode parseTrainMethod}. Default `"none"`. */
  method?: string | TrainMethod;
  /** Seed of the initial weights and of the batch order. Default `1`. */
  seed?: number;
  /** Optimizer steps. Default `300`. */
  steps?: number;
  /** Sequences per batch. Default `8`. */
  batchSeqs?: number;
  /** Consecutive positions per sequence (the unit of the sequence-wise loss). Default `32`. */
  seqLen?: number;
  /** Adam learning rate. Default `3e-3`. */
  lr?: number;
  /** Global gradient-norm clip. Default `1`. */
  clip?: number;
  /** Validation positions (rounded down to whole sequences). Default `8192`. */
  validTokens?: number;
  /** Called after every step with its number (from 1) and training loss. */
  onStep?: (step: number, loss: number) => void;
}

/** The outcome of one training run. */
export interface TrainRun extends Evaluation {
  /** The method's label. */
  method: string;
  /** The seed. */
  seed: number;
  /** Per step: training cross-entropy, router objective, MaxVio_batch. */
  curve: { loss: Float64Array; aux: Float64Array; maxVioBatch: Float64Array };
  /** Mean MaxVio_batch over the training steps. */
  maxVioBatch: number;
  /** Wall time of the training steps, seconds. */
  seconds: number;
  /** The trained model. */
  model: MoeModel;
  /** The expert biases the validation was routed with (zeros without a bias method). */
  bias: Float64Array;
}

/**
 * Tokens per micro-batch of an aux-loss method split into `microBatches`
 * (`undefined` without), checked to divide the batch's `n` tokens.
 */
function microBatchLen(
  method: { microBatches?: number },
  n: number,
): number | undefined {
  const m = method.microBatches;
  if (m === undefined) return undefined;
  if (n % m !== 0) {
    throw new RangeError(
      `microBatches must divide the batch's tokens (${n}): current value is ${m}`,
    );
  }
  return n / m;
}

/** The most validation tokens a run evaluates (2^20). */
const MAX_VALID_TOKENS = 2 ** 20;

/**
 * Trains a small MoE language model on a character text and measures it on
 * a validation text. Each step draws `batchSeqs` random sequences of
 * `seqLen` positions, routes them with the method's selection rule, takes
 * one Adam step on the cross-entropy plus the method's router loss, then
 * lets a bias method update its biases from the loads just routed
 * (`Balancer.update`). Auxiliary losses (`aux`, `seq-aux`, `global-aux`, `z-loss`) enter
 * the router's gradient; bias methods (`loss-free`, `bip`, `quantile`, ...)
 * change only which experts are selected. Same seed, same numbers.
 *
 * @param corpus `train` and `valid` symbol ids (e.g. from {@linkcode loadBrown}).
 * @param options See {@linkcode TrainOptions}.
 * @returns The run: validation figures, per-step curves, time, the model.
 * @throws {RangeError} If an option is out of range or a text too short.
 *
 * @example
 * ```ts
 * import { trainMoe } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const text = Uint8Array.from({ length: 3000 }, (_, i) => 1 + (i % 5));
 * const run = trainMoe({ train: text, valid: text }, {
 *   experts: 4, topK: 1, steps: 30, batchSeqs: 2, seqLen: 16, validTokens: 256,
 *   lr: 1e-2, method: "loss-free(rate=0.01)",
 * });
 * assert.ok(run.perplexity < 3); // a period-5 text is easy to predict
 * assert.equal(run.curve.loss.length, 30);
 * ```
 */
export function trainMoe(
  corpus: { train: Uint8Array; valid: Uint8Array },
  options: TrainOptions = {},
): TrainRun {
  const seed = checkNumber("seed", options.seed ?? 1);
  const steps = checkInteger("steps", options.steps ?? 300, 1);
  const batchSeqs = checkInteger("batchSeqs", options.batchSeqs ?? 8, 1);
  const seqLen = checkInteger("seqLen", options.seqLen ?? 32, 1);
  // Validation costs a forward pass per token: a bound keeps a typo
  // (1e9) from running for hours before the first figure.
  const validTokens = checkInteger(
    "validTokens",
    options.validTokens ?? 8192,
    seqLen,
    MAX_VALID_TOKENS,
  );
  const method =
    typeof options.method === "object" && options.method !== null &&
      "kind" in options.method
      ? options.method as TrainMethod
      : parseTrainMethod(options.method ?? "none");
  const model = createMoeModel(options, seed);
  const c = model.config;
  checkText("corpus.train", corpus?.train, seqLen + c.context + 1);
  const adam = new Adam(model.params.length, {
    lr: options.lr,
    clip: options.clip,
  });
  const n = batchSeqs * seqLen;
  const ws = createWorkspace(model, n);
  const balancer: Balancer | undefined = method.kind === "bias"
    ? createBalancer(method.balancer, {
      layers: 1,
      experts: c.experts,
      k: c.topK,
    })
    : undefined;
  const objective: RouterObjective | undefined = method.kind === "aux"
    ? { kind: "aux", alpha: method.alpha, seqLen: microBatchLen(method, n) }
    : method.kind === "global-aux"
    // The counts of all micro-batches balance each: the batch-wise loss.
    ? {
      kind: "aux",
      alpha: method.alpha,
      seqLen: microBatchLen(method, n) && n,
    }
    : method.kind === "seq-aux"
    ? { kind: "aux", alpha: method.alpha, seqLen }
    : method.kind === "z-loss"
    ? { kind: "z-loss", coef: method.coef }
    : undefined;
  let batchScores: ScoreMatrix | undefined;
  const select = balancer
    ? (s: ScoreMatrix): Routing => balancer.route(0, batchScores = s)
    : (s: ScoreMatrix): Routing => {
      routeInto(s, c.topK, ws.routing);
      return ws.routing;
    };
  const rng = new Rng(seed + 0x51ed);
  const starts = randomStarts(corpus.train, c.context, seqLen, rng);
  const curve = {
    loss: new Float64Array(steps),
    aux: new Float64Array(steps),
    maxVioBatch: new Float64Array(steps),
  };
  const t0 = performance.now();
  for (let step = 0; step < steps; step++) {
    fillSequences(
      corpus.train,
      c.context,
      batchSeqs,
      seqLen,
      starts,
      ws.ctx,
      ws.targets,
    );
    const r = modelStep(model, ws, n, select, objective);
    adam.step(model.params, ws.grads);
    if (balancer && batchScores) balancer.update(0, batchScores, r.routing);
    curve.loss[step] = r.ce;
    curve.aux[step] = r.aux;
    curve.maxVioBatch[step] = maxVio(r.routing.loads);
    options.onStep?.(step + 1, r.ce);
  }
  const seconds = (performance.now() - t0) / 1000;
  const bias = balancer ? balancer.biases(0) : new Float64Array(c.experts);
  const ev = evaluateWith(
    model,
    ws,
    corpus.valid,
    balancer ? bias : undefined,
    validTokens,
    batchSeqs,
    seqLen,
  );
  let mv = 0;
  for (let i = 0; i < steps; i++) mv += curve.maxVioBatch[i];
  return {
    ...ev,
    method: method.label,
    seed,
    curve,
    maxVioBatch: mv / steps,
    seconds,
    model,
    bias,
  };
}
