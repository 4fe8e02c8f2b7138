/**
 * Real traces as Polars tables (`nodejs-polars`): read a CSV, JSON,
 * JSON-lines or parquet file ({@linkcode readTable}); turn a table of
 * expert loads, wide or long, into the long table `step, layer, expert,
 * load` ({@linkcode loadTable}); turn a per-token routing trace into loads
 * per batch ({@linkcode tokenTrace}, {@linkcode traceLoads}); read the
 * published OLMoE and MoE-Beyond counts ({@linkcode olmoeExpertCounts},
 * {@linkcode moeBeyondBatches}); turn a serving engine's recording into a
 * load table ({@linkcode engineLoadTable}); and measure how unbalanced they are
 * ({@linkcode loadImbalance}).
 *
 * This entry point loads Polars (a native addon) when imported. The
 * synthetic and `.npy` workloads the simulator runs on need no Polars and
 * live in the core, `@moelab/balance`.
 *
 * @example Loads per step of a long CSV, and their imbalance
 * ```ts
 * import { loadImbalance, readLoadTable } from "@moelab/balance/workload";
 * import assert from "node:assert/strict";
 *
 * // Step 0: layer 0 has loads 1, 2, 3, 4 (max 4 over mean 2.5), layer 1 four 4s.
 * const loads = readLoadTable("data/fixtures/loads_long.csv");
 * const [layer0, layer1] = loadImbalance(loads).toRecords();
 * assert.equal(layer0.maxOverMean, 4 / 2.5);
 * assert.equal(layer1.maxOverMean, 1);
 * ```
 *
 * @module
 */
export { readTable } from "./read_table.ts";
export {
  loadTable,
  type LoadTableMapping,
  readLoadTable,
} from "./load_table.ts";
export {
  readTokenTrace,
  tokenTrace,
  type TokenTraceMapping,
} from "./token_trace.ts";
export { traceLoads, type TraceLoadsOptions } from "./trace_loads.ts";
export { type LoadVector, loadVectors } from "./load_vectors.ts";
export { loadImbalance } from "./load_imbalance.ts";
export { olmoeExpertCounts } from "./olmoe_counts.ts";
export { moeBeyondBatches } from "./moe_beyond_batches.ts";
export { engineLoadTable } from "./engine_load_table.ts";
