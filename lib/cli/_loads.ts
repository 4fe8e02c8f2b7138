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
import { withMessage } from "../validate.ts";
import pl from "nodejs-polars";

/** One batch and layer of a load file: loads exact up to 2^53 - 1. */
export interface LoadRow {
  step: number;
  layer: number;
  loads: Float64Array;
}

/**
 * The most load values (rows x experts) a load file may expand to: 2^27
 * float64 values, 1 GiB. A row naming expert 2e9 would need 16 GB each.
 */
export const MAX_LOAD_VALUES = 2 ** 27;

/** The most experts `--experts` may give a recording of routed experts: 2^20. */
const MAX_EXPERTS = 2 ** 20;

/** Throws unless `x` is a token count held exactly (an integer below 2^53). */
function checkCount(
  x: number,
  step: number,
  layer: number,
  e: number,
): number {
  if (!Number.isInteger(x) || x < 0 || x > Number.MAX_SAFE_INTEGER) {
    throw new RangeError(
      `--loads must hold non-negative integer token counts up to 2^53 - 1 (${Number.MAX_SAFE_INTEGER}), exact in float64: step ${step}, layer ${layer}, expert ${e} is ${x}`,
    );
  }
  return x;
}

/** Throws when `rows` rows of `experts` loads exceed {@linkcode MAX_LOAD_VALUES}. */
function checkSize(rows: number, experts: number, why: string): void {
  if (rows * experts > MAX_LOAD_VALUES) {
    const bytes = rows * experts * 8;
    throw new RangeError(
      `--loads ${why}: ${rows} rows x ${experts} experts = ${
        (rows * experts).toExponential(2)
      } loads (${
        (bytes / 2 ** 30).toFixed(1)
      } GiB), above the bound of ${MAX_LOAD_VALUES} loads (1 GiB)`,
    );
  }
}

/** The columns a load table may hold besides those `--where` selects on. */
const LONG_COLUMNS = ["step", "layer", "expert", "load"];

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
  return withMessage(
    e,
    (m) => /^path\b/.test(m) ? m.replace(/^path\b/, flag) : `${flag} ${m}`,
  );
}

function engineRows(
  path: string,
  experts: number | undefined,
): { experts: number; rows: LoadRow[] } {
  let loads;
  try {
    loads = readEngineLoads(path, { experts });
  } catch (e) {
    // The expert count is --experts' error, the recording's id its bound.
    if (e instanceof RangeError && /^options\.experts\b/.test(e.message)) {
      throw withMessage(
        e,
        (m) =>
          m.replace(/^options\.experts\b/, "--experts").replace(
            "(the largest expert id plus 1)",
            "(the largest expert id in --loads plus 1)",
          ),
      );
    }
    throw flagged(e, "--loads");
  }
  const { steps, layers, counts } = loads;
  const rows: LoadRow[] = [];
  steps.forEach((step, s) =>
    layers.forEach((layer, l) => {
      const at = (s * layers.length + l) * loads.experts;
      const row = new Float64Array(loads.experts);
      for (let e = 0; e < loads.experts; e++) {
        row[e] = checkCount(counts[at + e], step, layer, e);
      }
      rows.push({ step, layer, loads: row });
    })
  );
  return { experts: loads.experts, rows };
}

/** `--where` conditions: column name and value (compared as text). */
export type Where = [column: string, value: string][];

/** Parses `--where COLUMN=VALUE` flags. */
export function parseWhere(values: string[] | undefined): Where {
  return (values ?? []).map((text) => {
    const eq = text.indexOf("=");
    if (eq <= 0) {
      throw new UsageError(
        `--where must be COLUMN=VALUE, e.g. method=loss-free: current value is ${
          JSON.stringify(text)
        }`,
      );
    }
    return [text.slice(0, eq), text.slice(eq + 1)];
  });
}

function listValues(frame: pl.DataFrame, name: string): string {
  const v = [...new Set(frame.getColumn(name).toArray().map(String))];
  return v.slice(0, 5).map((x) => JSON.stringify(x)).join(", ") +
    (v.length > 5 ? `, ... (${v.length} values)` : "");
}

/**
 * Keeps the rows that `where` selects and drops its columns; then refuses
 * a long table whose columns the command does not use (rows of several
 * runs would be added up), and a long table missing its load column.
 */
function selectRows(frame: pl.DataFrame, where: Where): pl.DataFrame {
  for (const [name, value] of where) {
    if (!frame.columns.includes(name)) {
      throw new RangeError(
        `--where ${name}=${value} names a column --loads lacks: its columns are ${
          frame.columns.map((c) => JSON.stringify(c)).join(", ")
        }`,
      );
    }
    const picked = frame.filter(
      pl.col(name).cast(pl.Utf8).eq(pl.lit(value)),
    );
    if (picked.height === 0) {
      throw new RangeError(
        `--where ${name}=${value} matches no row of --loads: ${
          JSON.stringify(name)
        } holds ${listValues(frame, name)}`,
      );
    }
    frame = picked.drop(name);
  }
  const cols = frame.columns;
  const long = cols.includes("expert") || cols.includes("load");
  if (long) {
    for (const need of ["expert", "load"]) {
      if (!cols.includes(need)) {
        throw new TypeError(
          `--loads is a long table (one row per expert: step, layer, expert, load) but has no ${
            JSON.stringify(need)
          } column: its columns are ${
            cols.map((c) => JSON.stringify(c)).join(", ")
          }`,
        );
      }
    }
  }
  const extra = long
    ? cols.filter((c) => c !== "" && !LONG_COLUMNS.includes(c))
    : cols.filter((c) => {
      // A wide table's text column is a label (method, data set) when
      // some cell holds text and none reads as a number; else (a number
      // among its cells, or every cell empty) it is an expert column with
      // a bad cell, which the load reader names.
      const t = frame.getColumn(c).dtype.variant;
      if (c === "" || !(t === "String" || t === "Utf8" || t === "Bool")) {
        return false;
      }
      const cells = frame.getColumn(c).toArray() as unknown[];
      const text = (v: unknown) =>
        (typeof v === "string" && v.trim() !== "") || typeof v === "boolean";
      return cells.some(text) &&
        cells.every((v) =>
          typeof v !== "string" || v.trim() === "" ||
          !Number.isFinite(Number(v))
        );
    });
  if (extra.length > 0) {
    const c = extra[0];
    throw new RangeError(
      `--loads has a column the command does not use, ${
        JSON.stringify(c)
      } (holding ${
        listValues(frame, c)
      }); rows that differ only there would be added up: pick rows with --where ${c}=VALUE`,
    );
  }
  return frame;
}

/**
 * Reads `path` into load rows, in file order (engine recordings: by step,
 * then layer); loads must be non-negative integers up to 2^53 - 1, held
 * exactly. `experts` sets the expert count where the file lists fewer
 * (routed experts that never picked the last ones, a table without their
 * columns or rows): at least the file's, the others with no load; `where`
 * selects the rows of a table.
 */
export function readLoadRows(
  path: string,
  options: { experts?: number; where?: Where } = {},
): { experts: number; rows: LoadRow[] } {
  const where = options.where ?? [];
  if (options.experts !== undefined && options.experts > MAX_EXPERTS) {
    throw new RangeError(
      `--experts must be an integer in [1, ${MAX_EXPERTS}] (a count per expert, step and layer is held in memory): current value is ${options.experts}`,
    );
  }
  if (isEngineRecording(path)) {
    if (where.length > 0) {
      throw new UsageError(
        `--where selects rows of a table, but --loads is a serving engine's recording: ${path}`,
      );
    }
    return engineRows(path, options.experts);
  }
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
  frame = selectRows(frame, where);
  const long = frame.columns.includes("expert");
  let table;
  try {
    table = loadTable(frame, long ? {} : { experts: "rest" });
  } catch (e) {
    throw flagged(e, "--loads");
  }
  if (long) {
    const expert = table.getColumn("expert");
    const maxId = expert.length === 0 ? 0 : Number(expert.max());
    const keys = new Set<string>();
    const step = table.getColumn("step").toArray();
    const layer = table.getColumn("layer").toArray();
    for (let r = 0; r < step.length; r++) keys.add(`${step[r]},${layer[r]}`);
    checkSize(
      keys.size,
      maxId + 1,
      `names expert ${maxId}`,
    );
  }
  const vectors = loadVectors(table);
  if (vectors.length === 0) {
    throw new RangeError(`--loads has no rows: ${path}`);
  }
  const named = vectors[0].loads.length;
  // --experts counts experts the table does not list (never loaded), as
  // for routed experts: at least the table's, the rest with no load.
  const experts = options.experts ?? named;
  if (experts < named) {
    throw new RangeError(
      `--experts must be an integer of at least ${named} (the experts of --loads): current value is ${experts}`,
    );
  }
  checkSize(vectors.length, experts, `with --experts ${experts}`);
  const rows = vectors.map((v) => {
    v.loads.forEach((x, e) => checkCount(x, v.step, v.layer, e));
    const loads = experts === named ? v.loads : new Float64Array(experts);
    if (loads !== v.loads) loads.set(v.loads);
    return { step: v.step, layer: v.layer, loads };
  });
  return { experts, rows };
}
