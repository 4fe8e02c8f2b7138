import { checkInteger, checkNumber, show } from "../validate.ts";
import { fdlibmExp, fdlibmLog } from "../numeric/fdlibm.ts";

/** One batch of router output: scores (or logits) and the selected experts. */
export interface RouterBatch {
  /** Scores after the gate (for z-loss: logits), `Float64Array (tokens x experts)`, row-major. */
  scores: Float64Array;
  /** Number of tokens `N`. */
  tokens: number;
  /** Number of routed experts `E`. */
  experts: number;
  /** Selected experts, `Int32Array (tokens x k)`; not read by z-loss. */
  selected?: Int32Array;
  /** Experts per token `K`. */
  k?: number;
}

/** Options of {@linkcode auxLoss}. */
export interface AuxLossOptions {
  /** Coefficient `alpha`. */
  alpha: number;
  /**
   * Tokens per sequence for the sequence-wise loss (DeepSeek-V3): the
   * batch is cut into consecutive sequences of this length, the loss is
   * computed on each and averaged. Default: the whole batch (the
   * batch-wise loss of the Loss-Free paper's baseline).
   */
  seqLen?: number;
  /**
   * Normalise each token's scores to sum 1 before averaging them into
   * `P_j` (DeepSeek-V3 for sigmoid gates). Default `false`.
   */
  normalize?: boolean;
  /** When given, `d loss / d scores` is added here (tokens x experts). */
  grad?: Float64Array;
  /**
   * Padding tokens (1) to leave out, one entry per token: Megatron-Core's
   * `padding_mask`. Their selections and scores count nowhere, and `N` is
   * the number of valid tokens (per sequence: the valid tokens over the
   * number of sequences, as Megatron-Core's sequence-wise loss takes it).
   * Default: none.
   */
  padding?: Uint8Array;
}

/** Checks a padding mask of `n` tokens and counts its valid tokens. */
function validTokens(padding: Uint8Array | undefined, n: number): number {
  if (padding === undefined) return n;
  if (!(padding instanceof Uint8Array) || padding.length !== n) {
    throw new TypeError(
      `padding must be a Uint8Array with one entry per token (${n}): current value is ${
        show(padding)
      }`,
    );
  }
  let valid = 0;
  for (let i = 0; i < n; i++) if (padding[i] === 0) valid++;
  return valid;
}

function checkBatch(batch: RouterBatch, needsSelection: boolean): void {
  if (batch === null || typeof batch !== "object") {
    throw new TypeError(
      `batch must be an object: current value is ${show(batch)}`,
    );
  }
  const n = checkInteger("batch.tokens", batch.tokens, 1);
  const e = checkInteger("batch.experts", batch.experts, 1);
  if (
    !(batch.scores instanceof Float64Array) || batch.scores.length !== n * e
  ) {
    throw new TypeError(
      `batch.scores must be a Float64Array of tokens x experts = ${
        n * e
      }: current value is ${show(batch.scores)}`,
    );
  }
  if (needsSelection) {
    const k = checkInteger("batch.k", batch.k, 1, e);
    if (
      !(batch.selected instanceof Int32Array) || batch.selected.length !== n * k
    ) {
      throw new TypeError(
        `batch.selected must be an Int32Array of tokens x k = ${
          n * k
        }: current value is ${show(batch.selected)}`,
      );
    }
  }
}

/**
 * The auxiliary load-balancing loss in the DeepSeek form (DeepSeekMoE;
 * Loss-Free paper baseline, arXiv 2408.15664; docs/algorithms.md section 3):
 * `L = alpha * sum_j f_j * P_j` with `f_j = E / (K * N) * c_j` (`c_j` the
 * number of tokens that selected `j`, a constant for the gradient) and
 * `P_j = (1/N) * sum_i s'_ij` (`s' = s`, or `s` normalised to sum 1 per
 * token). The sequence-wise form (DeepSeek-V3) computes the same on each
 * sequence of `seqLen` tokens and averages over sequences. Its gradient is
 * `dL/ds'_ij = alpha * f_j / N` (per sequence: `f` of the sequence, `N` its
 * length, divided by the number of sequences).
 *
 * @param batch Scores `s` (tokens x experts) and the selection.
 * @param options `alpha`, `seqLen`, `normalize`, `grad`.
 * @returns The loss.
 * @throws {TypeError} If the shapes disagree.
 * @throws {RangeError} If `seqLen` does not divide the tokens or `alpha` is negative.
 *
 * @example Balanced routing gives `alpha` (f = P = 1 per expert on average)
 * ```ts
 * import { auxLoss } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const scores = new Float64Array([0.5, 0.5, 0.5, 0.5]);
 * const selected = new Int32Array([0, 1]);
 * const loss = auxLoss({ scores, tokens: 2, experts: 2, selected, k: 1 }, { alpha: 0.1 });
 * assert.equal(loss, 0.1 * (1 * 0.5 + 1 * 0.5));
 * ```
 */
export function auxLoss(batch: RouterBatch, options: AuxLossOptions): number {
  checkBatch(batch, true);
  const { scores: s, tokens: n, experts: E } = batch;
  const K = batch.k as number, sel = batch.selected as Int32Array;
  const alpha = checkNumber("alpha", options.alpha, 0);
  const T = checkInteger("seqLen", options.seqLen ?? n, 1, n);
  if (n % T !== 0) {
    throw new RangeError(
      `seqLen must divide the number of tokens (${n}): current value is ${T}`,
    );
  }
  const normalize = options.normalize ?? false;
  const grad = options.grad;
  const pad = options.padding;
  const seqs = n / T;
  // Tokens per sequence that normalise f and P: T, or the valid tokens
  // spread evenly over the sequences.
  const valid = validTokens(pad, n);
  if (valid === 0) return 0;
  const Tn = pad === undefined ? T : valid / seqs;
  const f = new Float64Array(E), P = new Float64Array(E);
  let loss = 0;
  for (let b = 0; b < seqs; b++) {
    f.fill(0);
    P.fill(0);
    for (let i = b * T; i < (b + 1) * T; i++) {
      if (pad !== undefined && pad[i] !== 0) continue;
      for (let k = 0; k < K; k++) {
        const j = sel[i * K + k];
        if (j >= 0) f[j] += E / (K * Tn);
      }
      let z = 1;
      if (normalize) {
        z = 0;
        for (let j = 0; j < E; j++) z += s[i * E + j];
      }
      for (let j = 0; j < E; j++) P[j] += s[i * E + j] / z / Tn;
    }
    for (let j = 0; j < E; j++) loss += alpha * f[j] * P[j] / seqs;
    if (grad === undefined) continue;
    for (let i = b * T; i < (b + 1) * T; i++) {
      if (pad !== undefined && pad[i] !== 0) continue;
      const scale = alpha / (Tn * seqs);
      if (!normalize) {
        for (let j = 0; j < E; j++) grad[i * E + j] += scale * f[j];
        continue;
      }
      // s'_j = s_j / Z: dL/ds_j = (dL/ds'_j - sum_m dL/ds'_m s'_m) / Z.
      let z = 0, dot = 0;
      for (let j = 0; j < E; j++) z += s[i * E + j];
      for (let j = 0; j < E; j++) dot += scale * f[j] * s[i * E + j] / z;
      for (let j = 0; j < E; j++) grad[i * E + j] += (scale * f[j] - dot) / z;
    }
  }
  return loss;
}

/**
 * Token counts of the global batch for {@linkcode globalAuxLoss}:
 * Megatron-Core's `global_tokens_per_expert` and `ga_steps`, summed over
 * the micro-batches of one global batch. Start each global batch with a
 * new one (Megatron's `reset_global_aux_loss_tracker`).
 */
export interface GlobalAuxTracker {
  /** Counts per expert summed over the micro-batches so far. */
  counts: Float64Array;
  /** Micro-batches so far. */
  steps: number;
}

/**
 * A zeroed {@linkcode GlobalAuxTracker} for `experts` experts.
 *
 * @example
 * ```ts
 * import { createGlobalAuxTracker } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const t = createGlobalAuxTracker(4);
 * assert.equal(t.steps, 0);
 * assert.deepEqual([...t.counts], [0, 0, 0, 0]);
 * ```
 */
export function createGlobalAuxTracker(experts: number): GlobalAuxTracker {
  return {
    counts: new Float64Array(checkInteger("experts", experts, 1)),
    steps: 0,
  };
}

/**
 * Megatron-Core's global-batch auxiliary loss (`global_aux_loss`;
 * Qiu et al., "Demons in the Detail", arXiv 2501.11873): the balance term
 * `f` comes from the counts of the global batch, averaged over the
 * micro-batches seen so far, instead of this micro-batch's. The batch's
 * counts are added to `tracker`, then
 * `L = alpha * E / (K * N^2) * sum_j (counts_j / steps) * sum_i s'_ij`
 * with `N` the batch's valid tokens (`s' = s` or normalised per token);
 * the gradient `dL/ds'_ij = alpha * E * counts_j / (steps * K * N^2)`.
 * With one micro-batch it is the batch-wise {@linkcode auxLoss}.
 *
 * @param batch Scores and the selection of one micro-batch.
 * @param options `alpha`, `normalize`, `padding`, `grad` as for
 * {@linkcode auxLoss} (no `seqLen`), and the global batch's `tracker`.
 * @returns The loss of this micro-batch.
 * @throws {TypeError} If the shapes disagree.
 * @throws {RangeError} If `alpha` is negative.
 *
 * @example The second micro-batch is balanced against the first one's counts too
 * ```ts
 * import { createGlobalAuxTracker, globalAuxLoss } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const tracker = createGlobalAuxTracker(2);
 * const scores = new Float64Array([0.5, 0.5]);
 * const a = globalAuxLoss({ scores, tokens: 1, experts: 2, selected: new Int32Array([0]), k: 1 }, { alpha: 1, tracker });
 * assert.equal(a, 2 * 1 * 0.5); // E/(K N^2) * counts . P = 2 * (1 * 0.5)
 * const b = globalAuxLoss({ scores, tokens: 1, experts: 2, selected: new Int32Array([1]), k: 1 }, { alpha: 1, tracker });
 * assert.equal(b, 2 * (0.5 * 0.5 + 0.5 * 0.5)); // counts averaged: [0.5, 0.5]
 * ```
 */
export function globalAuxLoss(
  batch: RouterBatch,
  options: Omit<AuxLossOptions, "seqLen"> & { tracker: GlobalAuxTracker },
): number {
  checkBatch(batch, true);
  const { scores: s, tokens: n, experts: E } = batch;
  const K = batch.k as number, sel = batch.selected as Int32Array;
  const alpha = checkNumber("alpha", options.alpha, 0);
  const tracker = options.tracker;
  if (
    tracker === null || typeof tracker !== "object" ||
    !(tracker.counts instanceof Float64Array) || tracker.counts.length !== E
  ) {
    throw new TypeError(
      `tracker must be a GlobalAuxTracker for ${E} experts: current value is ${
        show(tracker)
      }`,
    );
  }
  const pad = options.padding;
  const valid = validTokens(pad, n);
  const normalize = options.normalize ?? false;
  for (let i = 0; i < n; i++) {
    if (pad !== undefined && pad[i] !== 0) continue;
    for (let k = 0; k < K; k++) {
      const j = sel[i * K + k];
      if (j >= 0) tracker.counts[j]++;
    }
  }
  tracker.steps++;
  if (valid === 0) return 0;
  const c = alpha * E / (K * valid * valid * tracker.steps);
  let loss = 0;
  const grad = options.grad;
  for (let i = 0; i < n; i++) {
    if (pad !== undefined && pad[i] !== 0) continue;
    let z = 1;
    if (normalize) {
      z = 0;
      for (let j = 0; j < E; j++) z += s[i * E + j];
    }
    let dot = 0;
    for (let j = 0; j < E; j++) {
      const g = c * tracker.counts[j];
      loss += g * s[i * E + j] / z;
      dot += g * s[i * E + j] / z;
    }
    if (grad === undefined) continue;
    for (let j = 0; j < E; j++) {
      const g = c * tracker.counts[j];
      grad[i * E + j] += normalize ? (g - dot) / z : g;
    }
  }
  return loss;
}

/** Options of {@linkcode zLoss}. */
export interface ZLossOptions {
  /** Coefficient. ST-MoE uses `1e-3`. */
  coef: number;
  /** When given, `d loss / d logits` is added here (tokens x experts). */
  grad?: Float64Array;
  /**
   * Padding tokens (1) to leave out (Megatron-Core's `padding_mask` of
   * `z_loss_func`): the mean runs over the valid tokens. Default: none.
   */
  padding?: Uint8Array;
}

/**
 * The router z-loss (ST-MoE, Zoph et al. 2022; docs/algorithms.md section 3):
 * `L = coef * (1/N) * sum_i (logsumexp_j r_ij)^2` on the router logits; it
 * keeps the logits small rather than balancing load. Gradient
 * `dL/dr_ij = coef * 2 * lse_i * softmax(r_i)_j / N`.
 *
 * @param batch Router logits in `scores` (tokens x experts).
 * @param options `coef`, `grad`.
 * @returns The loss.
 * @throws {TypeError} If the shapes disagree.
 * @throws {RangeError} If `coef` is negative.
 *
 * @example
 * ```ts
 * import { zLoss } from "@moelab/balance/train";
 * import assert from "node:assert/strict";
 *
 * const logits = new Float64Array([0, 0]); // logsumexp = ln 2
 * const loss = zLoss({ scores: logits, tokens: 1, experts: 2 }, { coef: 1 });
 * assert.ok(Math.abs(loss - Math.LN2 ** 2) < 1e-15);
 * ```
 */
export function zLoss(batch: RouterBatch, options: ZLossOptions): number {
  checkBatch(batch, false);
  const { scores: r, tokens: n, experts: E } = batch;
  const coef = checkNumber("coef", options.coef, 0);
  const grad = options.grad;
  const pad = options.padding;
  // Megatron-Core divides by max(valid tokens, 1).
  const valid = Math.max(1, validTokens(pad, n));
  let loss = 0;
  for (let i = 0; i < n; i++) {
    if (pad !== undefined && pad[i] !== 0) continue;
    let max = -Infinity;
    for (let j = 0; j < E; j++) max = Math.max(max, r[i * E + j]);
    let z = 0;
    for (let j = 0; j < E; j++) z += fdlibmExp(r[i * E + j] - max);
    const lse = max + fdlibmLog(z);
    loss += coef * lse * lse / valid;
    if (grad === undefined) continue;
    for (let j = 0; j < E; j++) {
      grad[i * E + j] += coef * 2 * lse * fdlibmExp(r[i * E + j] - lse) / valid;
    }
  }
  return loss;
}
