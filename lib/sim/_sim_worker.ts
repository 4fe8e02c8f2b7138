// A worker of runSimulationParallel: runs the simulator on its share of the
// layers and posts back the filled rows' tables (transferred, not copied).
import { createBalancer, parseMethodSpec } from "../route/registry.ts";
import { balancerContext, type LayerRun, simulateLayers } from "./_simulate.ts";
import { loadWorkload } from "./run.ts";
import type { SimConfig } from "./config.ts";

/** A request: the resolved configuration and the layers to run. */
export interface WorkerRequest {
  config: SimConfig;
  layers: number[];
}

/** A reply: progress, the result, or an error to rethrow as its class. */
export type WorkerReply =
  | { kind: "progress"; done: number }
  | {
    kind: "done";
    run: LayerRun;
    causal: boolean[];
    workload: Record<string, unknown>;
  }
  | { kind: "error"; name: string; message: string };

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerReply, transfer?: Transferable[]): void;
};

scope.onmessage = (e) => {
  try {
    const { workload, config } = loadWorkload(e.data.config);
    const specs = config.methods.map(parseMethodSpec);
    const ctx = balancerContext(config);
    const balancers = specs.map((s) => createBalancer(s, ctx));
    const run = simulateLayers(
      config,
      workload,
      specs,
      balancers,
      e.data.layers,
      (done) => scope.postMessage({ kind: "progress", done }),
    );
    const t = run.tables;
    const transfer = [
      ...Object.values(t.loads),
      ...Object.values(t.biases),
      ...Object.values(t.metrics),
      run.wallMs,
      run.gaps,
    ].map((a) => (a as ArrayBufferView).buffer as ArrayBuffer);
    scope.postMessage({
      kind: "done",
      run,
      causal: balancers.map((b) => b.causal),
      workload: workload.describe(),
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
