import type { ScoreMatrix } from "../types.ts";

/**
 * A source of routing scores, addressed by step and layer. The same
 * `(step, layer)` always gives the same scores. The returned matrix may
 * share a buffer that the next call overwrites: copy it to keep it.
 */
export interface Workload {
  /** Number of steps (batches) available. */
  readonly steps: number;
  /** Number of MoE layers. */
  readonly layers: number;
  /** Tokens per batch. */
  readonly tokens: number;
  /** Routed experts. */
  readonly experts: number;
  /** Scores of batch `step` at layer `layer`, after the gate. */
  scores(step: number, layer: number): ScoreMatrix;
  /** A JSON description of where the scores come from. */
  describe(): Record<string, unknown>;
}
