// A worker of runSweep: runs one cell's simulation on this thread and posts
// back the result (its tables transferred, not copied); the sweep's main
// thread writes the files.
import { prepareRun } from "../sim/prepare_run.ts";
import { runSimulation, type SimResult } from "../sim/run.ts";
import { tableBuffers } from "../sim/tables.ts";
import { type ErrorReply, serveRequests } from "../worker_reply.ts";

/** A request: a cell's preset, already checked. */
export interface CellRequest {
  preset: Record<string, unknown>;
}

/** A reply: the result, or an error to rethrow as its class. */
export type CellReply = { kind: "done"; result: SimResult } | ErrorReply;

serveRequests<CellRequest, CellReply>((request, post) => {
  const result = runSimulation(prepareRun(request.preset));
  post({ kind: "done", result }, [...new Set(tableBuffers(result.tables))]);
});
