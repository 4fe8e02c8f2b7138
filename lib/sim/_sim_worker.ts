// A worker of runSimulationParallel: rebuilds the prepared run's workload
// from its source (no file read, no configuration resolved), runs the
// simulator on its share of the layers, holding only their rows, and posts
// back the tables' value columns (transferred, not copied).
import { createBalancer, type MethodSpec } from "../route/registry.ts";
import type { SimConfig } from "./config.ts";
import { workloadFromSource, type WorkloadSource } from "./prepare_run.ts";
import { type TableValues, tableValues } from "./tables.ts";
import { balancerContext, type LayerRun, simulateLayers } from "./_simulate.ts";

/** A request: the prepared run's parts and the layers to run. */
export interface WorkerRequest {
  config: SimConfig;
  specs: readonly MethodSpec[];
  source: WorkloadSource;
  layers: number[];
}

/** A reply: progress, the result, or an error to rethrow as its class. */
export type WorkerReply =
  | { kind: "progress"; done: number }
  | {
    kind: "done";
    run: Omit<LayerRun, "tables">;
    values: TableValues;
    causal: boolean[];
  }
  | { kind: "error"; name: string; message: string };

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerReply, transfer?: Transferable[]): void;
};

scope.onmessage = (e) => {
  try {
    const { config, specs, source, layers } = e.data;
    const workload = workloadFromSource(source);
    const ctx = balancerContext(config);
    const balancers = specs.map((s) => createBalancer(s, ctx));
    const run = simulateLayers(
      { config, specs, workload },
      balancers,
      layers,
      (done) => scope.postMessage({ kind: "progress", done }),
    );
    // The value columns only: the index columns follow from the layers.
    const { tables, ...rest } = run;
    const values = tableValues(tables);
    const transfer = [
      ...Object.values(values),
      rest.wallMs,
      rest.routeMs,
      rest.stageMs,
      rest.gaps,
    ].map((a) => a.buffer as ArrayBuffer);
    scope.postMessage({
      kind: "done",
      run: rest,
      values,
      causal: balancers.map((b) => b.causal),
    }, transfer);
  } catch (err) {
    const error = err as Error;
    scope.postMessage({
      kind: "error",
      name: error?.name ?? "Error",
      message: error?.message ?? String(err),
    });
  }
};
