// A worker of runSweep: runs one cell's simulation on this thread and posts
// back the result (its tables transferred, not copied); the sweep's main
// thread writes the files.
import { prepareRun } from "../sim/prepare_run.ts";
import { runSimulation, type SimResult } from "../sim/run.ts";
import { tableBuffers } from "../sim/tables.ts";

/** A request: a cell's preset, already checked. */
export interface CellRequest {
  preset: Record<string, unknown>;
}

/** A reply: the result, or an error to rethrow as its class. */
export type CellReply =
  | { kind: "done"; result: SimResult }
  | { kind: "error"; name: string; message: string };

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<CellRequest>) => void) | null;
  postMessage(message: CellReply, transfer?: Transferable[]): void;
};

scope.onmessage = (e) => {
  try {
    const result = runSimulation(prepareRun(e.data.preset));
    scope.postMessage({ kind: "done", result }, [
      ...new Set(tableBuffers(result.tables)),
    ]);
  } catch (err) {
    const error = err as Error;
    scope.postMessage({
      kind: "error",
      name: error?.name ?? "Error",
      message: error?.message ?? String(err),
    });
  }
};
