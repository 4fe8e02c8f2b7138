// Reads a per-batch load table file for `schedule` and `place`: wide
// (`step?, layer?`, then one column per expert) or long (`step, layer,
// expert, load`), through the trace loaders of lib/workload.
import { readTable } from "../workload/read_table.ts";
import { loadTable } from "../workload/load_table.ts";
import { loadVectors } from "../workload/load_vectors.ts";
import { UsageError } from "./args.ts";

/** One batch and layer of a load file. */
export interface LoadRow {
  step: number;
  layer: number;
  loads: Int32Array;
}

/** Reads `path` into load rows, in file order; loads must be non-negative integers. */
export function readLoadRows(
  path: string,
): { experts: number; rows: LoadRow[] } {
  let frame;
  try {
    frame = readTable(path);
  } catch (e) {
    if (
      e instanceof TypeError || e instanceof RangeError ||
      e instanceof SyntaxError
    ) throw e;
    throw new UsageError(
      `--loads cannot be read: ${path} (${(e as Error).message})`,
    );
  }
  const long = frame.columns.includes("expert") &&
    frame.columns.includes("load");
  const table = loadTable(frame, long ? {} : { experts: "rest" });
  const vectors = loadVectors(table);
  if (vectors.length === 0) {
    throw new RangeError(`--loads has no rows: ${path}`);
  }
  const experts = vectors[0].loads.length;
  const rows = vectors.map((v) => {
    const loads = new Int32Array(experts);
    v.loads.forEach((x, e) => {
      if (!Number.isInteger(x)) {
        throw new RangeError(
          `--loads must hold integer token counts: step ${v.step}, layer ${v.layer}, expert ${e} is ${x}`,
        );
      }
      loads[e] = x;
    });
    return { step: v.step, layer: v.layer, loads };
  });
  return { experts, rows };
}
