import { checkInteger, show } from "../validate.ts";
import { maxVio } from "../metrics/load_metrics.ts";
import { routeInto } from "../route/route.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import { evenStarts, fillSequences } from "./batch.ts";
import type { MoeModel } from "./model.ts";
import { createWorkspace, modelStep, type Workspace } from "./step.ts";
import { fdlibmExp } from "../numeric/fdlibm.ts";

/** Validation figures of a model, see {@linkcode evaluateMoe}. */
export interface Evaluation {
  /** Mean cross-entropy, nats per character. */
  loss: number;
  /** `exp(loss)`. */
  perplexity: number;
  /** `loss / ln 2`. */
  bitsPerChar: number;
  /** Tokens per expert summed over the validation set. */
  loads: Int32Array;
  /** MaxVio of `loads` (MaxVio_global). */
  maxVioGlobal: number;
}

/** Options of {@linkcode evaluateMoe}. */
export interface EvaluateOptions {
  /** Expert biases added to the scores for selection. Default: none. */
  bias?: Float64Array;
  /** Validation positions. Default `8192`. */
  tokens?: number;
  /** Sequences per forward pass. Default `8`. */
  batchSeqs?: number;
  /** Positions per sequence. Default `32`. */
  seqLen?: number;
}

/**
 * Validation perplexity and load of a model on a text: `tokens` positions
 * in sequences spread evenly over the text, experts selected by top-K of
 * `score + bias` (the biases frozen at their last training value, as a
 * deployed model would route), loads summed over all of them.
 *
 * @param model The model.
 * @param text Symbol ids of the validation text.
 * @param options See {@linkcode EvaluateOptions}.
 * @returns Loss, perplexity, bits per character, loads and MaxVio_global.
 * @throws {RangeError} If the text is shorter than one sequence plus context.
 *
 * @example
 * ```ts
 * import { createMoeModel, evaluateMoe } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const model = createMoeModel({ experts: 4, topK: 1 });
 * const text = Uint8Array.from({ length: 600 }, (_, i) => (i * 7) % 27);
 * const e = evaluateMoe(model, text, { tokens: 256 });
 * assert.ok(Math.abs(e.bitsPerChar - Math.log2(e.perplexity)) < 1e-12);
 * assert.equal(e.loads.reduce((a, b) => a + b, 0), 256);
 * ```
 */
export function evaluateMoe(
  model: MoeModel,
  text: Uint8Array,
  options: EvaluateOptions = {},
): Evaluation {
  const batchSeqs = checkInteger("batchSeqs", options.batchSeqs ?? 8, 1);
  const seqLen = checkInteger("seqLen", options.seqLen ?? 32, 1);
  const tokens = checkInteger("tokens", options.tokens ?? 8192, seqLen);
  const ws = createWorkspace(model, batchSeqs * seqLen);
  return evaluateWith(model, ws, text, options.bias, tokens, batchSeqs, seqLen);
}

export function checkText(name: string, text: Uint8Array, need: number): void {
  if (!(text instanceof Uint8Array)) {
    throw new TypeError(
      `${name} must be a Uint8Array: current value is ${show(text)}`,
    );
  }
  if (text.length < need) {
    throw new RangeError(
      `${name} must hold at least ${need} symbols (one sequence plus its context): current length is ${text.length}`,
    );
  }
}

export function evaluateWith(
  model: MoeModel,
  ws: Workspace,
  text: Uint8Array,
  bias: Float64Array | undefined,
  tokens: number,
  batchSeqs: number,
  seqLen: number,
): Evaluation {
  const c = model.config;
  checkText("text", text, seqLen + c.context + 1);
  const seqs = Math.floor(tokens / seqLen);
  const starts = evenStarts(text, c.context, seqLen, seqs);
  const loads = new Int32Array(c.experts);
  const select = (s: ScoreMatrix): Routing => {
    routeInto(s, c.topK, ws.routing, bias ? { bias } : {});
    return ws.routing;
  };
  let total = 0;
  for (let b0 = 0; b0 < seqs; b0 += batchSeqs) {
    const nb = Math.min(batchSeqs, seqs - b0);
    fillSequences(
      text,
      c.context,
      nb,
      seqLen,
      (b) => starts(b0 + b),
      ws.ctx,
      ws.targets,
    );
    const n = nb * seqLen;
    const r = modelStep(model, ws, n, select, undefined, false);
    total += r.ce * n;
    for (let j = 0; j < c.experts; j++) loads[j] += r.routing.loads[j];
  }
  const loss = total / (seqs * seqLen);
  return {
    loss,
    perplexity: fdlibmExp(loss),
    bitsPerChar: loss / Math.LN2,
    loads,
    maxVioGlobal: maxVio(loads),
  };
}
