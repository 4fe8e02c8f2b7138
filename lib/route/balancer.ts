import type { Routing, ScoreMatrix } from "../types.ts";
import type { HostBackend } from "../ops/host.ts";

/**
 * A load-balancing method: per-layer state (expert prices or biases) plus a
 * policy. `route` selects experts for one batch of one layer; `update`
 * moves the state after the batch. A method is *causal* when the routing
 * of a batch never depends on that batch's other tokens (its prices were
 * set before it saw the batch); Expert Choice and BIP are not.
 *
 * The simulator calls, for every step and layer: `route(layer, scores)`,
 * then `update(layer, scores, routing)`.
 */
export interface Balancer {
  /** Method name as given to {@linkcode createBalancer}, e.g. `"loss-free"`. */
  readonly name: string;
  /** Whether a batch's routing depends only on earlier batches. */
  readonly causal: boolean;
  /** Routes one batch of one layer. The result may reuse internal buffers. */
  route(layer: number, scores: ScoreMatrix): Routing;
  /** Updates the layer's state from the batch just routed. */
  update(layer: number, scores: ScoreMatrix, routing: Routing): void;
  /** A copy of the layer's current expert biases (zeros for stateless methods). */
  biases(layer: number): Float64Array;
}

/** What every balancer is told about the model it balances. */
export interface BalancerContext {
  /** Number of MoE layers (each keeps its own state). */
  layers: number;
  /** Routed experts per layer. */
  experts: number;
  /** Experts per token. */
  k: number;
  /** Normalise gate weights over the selected experts (sigmoid gates). */
  normalize?: boolean;
  /** Group-limited routing: number of groups. */
  groups?: number;
  /** Group-limited routing: groups kept. */
  topGroups?: number;
  /**
   * Where the balancer's ops run on the calling thread: `"wasm"`
   * (WebAssembly SIMD kernels where an op has one; the default) or
   * `"cpu"` (TypeScript, the reference). The same numbers either way.
   */
  host?: HostBackend;
}
