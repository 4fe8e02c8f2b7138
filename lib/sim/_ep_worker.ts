// A worker of runSimulationParallel's expert-parallel stage: the stage on
// a share of the layers (_ep_parts.ts), their loads read from the run's
// shared loads table, its part posted back (transferred, not copied). It
// loads the placement modules only, none of the simulator's kernels.
import type { SimConfig } from "./config.ts";
import { epLayerStage, type EpPart } from "./_ep_parts.ts";
import { type ErrorReply, serveRequests } from "../worker_reply.ts";

/** A request: the run's configuration, its loads table and the layers. */
export interface EpWorkerRequest {
  config: SimConfig;
  methods: number;
  layers: number[];
  /** The loads table on shared memory (step, layer, method, expert). */
  loads: Int32Array;
  tableRows: number;
}

/** A reply: the part, or an error to rethrow as its class. */
export type EpWorkerReply = { kind: "part"; part: EpPart } | ErrorReply;

serveRequests<EpWorkerRequest, EpWorkerReply>((request, post) => {
  const { config, methods, layers, loads, tableRows } = request;
  if (!config.ep) throw new TypeError("the run has no EP stage");
  const stage = epLayerStage(config, config.ep, methods, layers, tableRows);
  const per = config.layers * methods * config.experts;
  for (let s = 0; s < config.steps; s++) {
    stage.addStep(s, loads.subarray(s * per, (s + 1) * per));
  }
  const part = stage.finish();
  const { layers: _layers, ...sums } = part;
  post(
    { kind: "part", part },
    Object.values(sums).map((a) => a.buffer as ArrayBuffer),
  );
});
