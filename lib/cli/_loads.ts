// Reads a load file for `schedule`, `place` and `advise`, telling the format
// by content: a serving engine's recording (torch.save, safetensors, .npy,
// or a directory of per-rank files) through lib/serving, else a table
// (wide: `step?, layer?`, then one column per expert; long: `step, layer,
// expert, load`) through the trace loaders of lib/workload.
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { readTable } from "../workload/read_table.ts";
import { loadTable } from "../workload/load_table.ts";
import { loadVectors } from "../workload/load_vectors.ts";
import { engineFileKind } from "../serving/engine_file_kind.ts";
import { readEngineLoads } from "../serving/read_engine_loads.ts";
import { UsageError } from "./args.ts";

/** One batch and layer of a load file. */
export interface LoadRow {
  step: number;
  layer: number;
  loads: Int32Array;
}

/** Whether `path` is a directory or starts like a serving engine's file. */
function isEngineRecording(path: string): boolean {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    return false; // readTable names the missing file
  }
  if (stat.isDirectory()) return true;
  const head = new Uint8Array(Math.min(64, stat.size));
  const fd = openSync(path, "r");
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  if (engineFileKind(head) !== null) return true;
  // A safetensors header length is judged against the whole file.
  if (head.length >= 10 && head[8] === 0x7b) {
    const n = new DataView(head.buffer).getBigUint64(0, true);
    if (n >= 2n && n <= BigInt(stat.size - 8)) return true;
  }
  // Named as a tensor file but not one: let the engine reader say why.
  return /\.(pt|pth|bin|safetensors|npy)$/i.test(path);
}

/**
 * Names the flag in an error message, keeping its class: a message about
 * the argument `path` speaks of the flag instead; any other is prefixed.
 */
function flagged(e: unknown, flag: string): unknown {
  if (
    e instanceof TypeError || e instanceof RangeError ||
    e instanceof SyntaxError
  ) {
    const Cls = e.constructor as new (m: string) => Error;
    return new Cls(
      /^path\b/.test(e.message)
        ? e.message.replace(/^path\b/, flag)
        : `${flag} ${e.message}`,
    );
  }
  return e;
}

function engineRows(
  path: string,
  experts: number | undefined,
): { experts: number; rows: LoadRow[] } {
  let loads;
  try {
    loads = readEngineLoads(path, { experts });
  } catch (e) {
    throw flagged(e, "--loads");
  }
  const { steps, layers, counts } = loads;
  const rows: LoadRow[] = [];
  steps.forEach((step, s) =>
    layers.forEach((layer, l) => {
      const at = (s * layers.length + l) * loads.experts;
      const row = new Int32Array(loads.experts);
      for (let e = 0; e < loads.experts; e++) {
        const x = counts[at + e];
        if (!Number.isInteger(x) || x > 0x7fffffff) {
          throw new RangeError(
            `--loads must hold integer token counts below 2^31: step ${step}, layer ${layer}, expert ${e} is ${x}`,
          );
        }
        row[e] = x;
      }
      rows.push({ step, layer, loads: row });
    })
  );
  return { experts: loads.experts, rows };
}

/**
 * Reads `path` into load rows, in file order (engine recordings: by step,
 * then layer); loads must be non-negative integers. `experts` sets the
 * expert count of recordings that do not hold it (routed experts).
 */
export function readLoadRows(
  path: string,
  options: { experts?: number } = {},
): { experts: number; rows: LoadRow[] } {
  if (isEngineRecording(path)) return engineRows(path, options.experts);
  let frame;
  try {
    frame = readTable(path);
  } catch (e) {
    if (
      e instanceof TypeError || e instanceof RangeError ||
      e instanceof SyntaxError
    ) throw flagged(e, "--loads");
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
