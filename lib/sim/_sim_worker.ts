// A worker of runSimulationParallel: rebuilds the prepared run's workload
// from its source (no file read, no configuration resolved), runs the
// simulator on its share of the layers, holding only their rows, and posts
// back the tables' value columns (transferred, not copied).
import { createBalancer, type MethodSpec } from "../route/registry.ts";
import type { SimConfig } from "./config.ts";
import type { HostBackend } from "../ops/host.ts";
import { workloadFromSource, type WorkloadSource } from "./prepare_run.ts";
import { tablesOf, type TableValues, tableValues } from "./tables.ts";
import { balancerContext, type LayerRun, simulateLayers } from "./_simulate.ts";
import { type ErrorReply, serveRequests } from "../worker_reply.ts";

/** A request: the prepared run's parts and the layers to run. */
export interface WorkerRequest {
  config: SimConfig;
  specs: readonly MethodSpec[];
  source: WorkloadSource;
  layers: number[];
  /** Full tables on shared memory to fill in place, or null to send rows back. */
  shared: { values: TableValues; gaps: Float64Array } | null;
  /** The CPU kernels: `"wasm"` or `"cpu"`. */
  host: HostBackend;
}

/** A reply: progress, the result, or an error to rethrow as its class. */
export type WorkerReply =
  | { kind: "progress"; done: number }
  | {
    kind: "done";
    run: Omit<LayerRun, "tables">;
    values: TableValues | null;
    causal: boolean[];
  }
  | ErrorReply;

serveRequests<WorkerRequest, WorkerReply>((request, post) => {
  const { config, specs, source, layers, shared, host } = request;
  const workload = workloadFromSource(source, host);
  const ctx = balancerContext(config, host);
  const balancers = specs.map((s) => createBalancer(s, ctx));
  const run = simulateLayers(
    { config, specs, workload, host },
    balancers,
    layers,
    (done) => post({ kind: "progress", done }),
    shared
      ? {
        tables: tablesOf(
          config.steps,
          Array.from({ length: config.layers }, (_, l) => l),
          specs.length,
          config.experts,
          shared.values,
        ),
        gaps: shared.gaps,
      }
      : undefined,
  );
  // The value columns only (none when they are shared): the index
  // columns follow from the layers.
  const { tables, ...rest } = run;
  const values = shared ? null : tableValues(tables);
  if (shared) rest.gaps = new Float64Array(0);
  const transfer = [
    ...Object.values(values ?? {}),
    rest.wallMs,
    rest.routeMs,
    rest.stageMs,
    rest.gaps,
  ].map((a) => a.buffer as ArrayBuffer);
  post({
    kind: "done",
    run: rest,
    values,
    causal: balancers.map((b) => b.causal),
  }, transfer);
});
