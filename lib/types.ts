/**
 * The shared data types of moelab: score matrices and routings.
 *
 * @module
 */

/**
 * Routing scores of one batch for one MoE layer, after the gate function.
 *
 * `data` is row-major `tokens x experts`: `data[i * experts + j]` is the
 * affinity of token `i` for expert `j`.
 */
export interface ScoreMatrix {
  /** Scores, `Float32Array` of length `tokens * experts`, row-major. */
  readonly data: Float32Array;
  /** Number of tokens (rows). */
  readonly tokens: number;
  /** Number of routed experts (columns). */
  readonly experts: number;
}

/**
 * The result of routing one batch: which experts each token uses, with
 * which gate weight, and the resulting load of every expert.
 *
 * A slot that holds no expert (a token dropped by a capacity limit, or a
 * token that Expert Choice left without an expert) has expert index `-1`
 * and weight `0`.
 */
export interface Routing {
  /** Selected expert indices, `Int32Array` (tokens x k), row-major, best first. */
  readonly experts: Int32Array;
  /** Gate weights from the unbiased scores, `Float32Array` (tokens x k). */
  readonly weights: Float32Array;
  /** Tokens per expert, `Int32Array` (experts). Exact integers. */
  readonly loads: Int32Array;
  /** Number of slots per token (`k`). */
  readonly k: number;
}
