import type pl from "nodejs-polars";
import { show } from "../validate.ts";
import {
  checkFrame,
  column,
  ids,
  loads,
  longTable,
  optionalName,
} from "./_columns.ts";
import { readTable } from "./read_table.ts";

/**
 * Where the fields of a per-batch load table lie. A table is wide (one
 * column per expert: give `experts`) or long (one row per expert: give
 * `expert` and `load`, or rely on their default names).
 */
export interface LoadTableMapping {
  /**
   * Column of the step (batch, iteration). Default `"step"`; when the
   * table has no column of the default name, or with `null`, every row is
   * step 0.
   */
  step?: string | null;
  /** Column of the layer. Default `"layer"`, absent or `null` as for `step`. */
  layer?: string | null;
  /**
   * Extra id columns carried to the output unchanged, before `step`, for
   * example `["dataset"]`. Default none.
   */
  ids?: string[];
  /**
   * Wide layout: the expert columns, expert `j` being the `j`-th name, or
   * `"rest"`: every column not named by `step`, `layer`, `ids` or `ignore`
   * (nor named `""`, the unnamed index column that pandas writes), in table
   * order.
   */
  experts?: string[] | "rest";
  /** With `experts: "rest"`: columns that are neither ids nor experts. */
  ignore?: string[];
  /** Long layout: column of the expert index. Default `"expert"`. */
  expert?: string;
  /** Long layout: column of the load. Default `"load"`. */
  load?: string;
}

function checkMapping(mapping: unknown): LoadTableMapping {
  if (mapping === null || typeof mapping !== "object") {
    throw new TypeError(
      `mapping must be an object: current value is ${show(mapping)}`,
    );
  }
  const m = mapping as LoadTableMapping;
  for (const key of ["ids", "ignore"] as const) {
    const v = m[key];
    if (
      v !== undefined &&
      (!Array.isArray(v) || v.some((x) => typeof x !== "string"))
    ) {
      throw new TypeError(
        `mapping.${key} must be an array of column names: current value is ${
          show(v)
        }`,
      );
    }
  }
  if (m.experts !== undefined) {
    if (
      m.experts !== "rest" &&
      (!Array.isArray(m.experts) || m.experts.length === 0 ||
        m.experts.some((x) => typeof x !== "string"))
    ) {
      throw new TypeError(
        `mapping.experts must be "rest" or a non-empty array of column names: current value is ${
          show(m.experts)
        }`,
      );
    }
    if (m.expert !== undefined || m.load !== undefined) {
      throw new TypeError(
        `mapping must name either experts (wide table) or expert and load (long table), not both`,
      );
    }
  }
  return m;
}

/** Step and layer per row: the mapped columns, or zeros where absent. */
function stepLayer(
  frame: pl.DataFrame,
  m: LoadTableMapping,
): [Int32Array, Int32Array, string[]] {
  const out: Int32Array[] = [];
  const used: string[] = [];
  for (const key of ["step", "layer"] as const) {
    const name = optionalName(frame, m[key], key);
    if (name === null) out.push(new Int32Array(frame.height));
    else {
      out.push(ids(column(frame, name, key)));
      used.push(name);
    }
  }
  return [out[0], out[1], used];
}

/**
 * Normalises a per-batch load table, wide or long, to the long schema
 * `...ids, step, layer, expert, load` (`step`, `layer`, `expert`: Int32;
 * `load`: Float64), rows in table order (wide: a row's experts in order).
 *
 * @param frame The table as read, for example by `pl.readCSV`.
 * @param mapping Where each field lies (see {@linkcode LoadTableMapping}).
 * Default `{}`: a long table with columns `step, layer, expert, load`.
 * @returns The long load table.
 * @throws {TypeError} If the mapping names a column that the table lacks,
 * or a column has the wrong type; the message names the column.
 * @throws {RangeError} If a step, layer or expert is not a non-negative
 * integer, or a load is negative or empty; the message names the column
 * and the row (data rows counted from 0).
 *
 * @example A wide table, as HarMoEny's expert-frequency CSVs
 * ```ts
 * import { loadTable } from "@moelab/balance/workload";
 * import pl from "nodejs-polars";
 * import assert from "node:assert/strict";
 *
 * const wide = pl.readCSV(",dataset,iteration,layer_idx,0,1,2\n0,wiki,0,0,5,1,0\n1,wiki,1,0,2,2,2\n");
 * const long = loadTable(wide, {
 *   ids: ["dataset"], step: "iteration", layer: "layer_idx", experts: "rest",
 * });
 * assert.deepEqual(long.columns, ["dataset", "step", "layer", "expert", "load"]);
 * assert.deepEqual([...long.getColumn("load")], [5, 1, 0, 2, 2, 2]);
 * assert.throws(() => loadTable(wide, { step: "iter", experts: "rest" }), TypeError);
 * ```
 */
export function loadTable(
  frame: pl.DataFrame,
  mapping: LoadTableMapping = {},
): pl.DataFrame {
  checkFrame("frame", frame);
  const m = checkMapping(mapping);
  const idNames = m.ids ?? [];
  const idSeries = idNames.map((n, i) => column(frame, n, `ids[${i}]`));
  const [step, layer, used] = stepLayer(frame, m);
  const rows = frame.height;
  if (m.experts === undefined) {
    const expert = ids(column(frame, m.expert ?? "expert", "expert"));
    const load = loads(column(frame, m.load ?? "load", "load"));
    return longTable(idSeries, null, step, layer, expert, load);
  }
  const skip = new Set(["", ...used, ...idNames, ...(m.ignore ?? [])]);
  const names = m.experts === "rest"
    ? frame.columns.filter((c) => !skip.has(c))
    : m.experts;
  if (names.length === 0) {
    throw new TypeError(
      `mapping.experts is "rest" but every column is an id or ignored: columns are ${
        frame.columns.map((c) => JSON.stringify(c)).join(", ")
      }`,
    );
  }
  const e = names.length;
  const outStep = new Int32Array(rows * e);
  const outLayer = new Int32Array(rows * e);
  const outExpert = new Int32Array(rows * e);
  const outLoad = new Float64Array(rows * e);
  const gather = new Array<number>(rows * e);
  for (let j = 0; j < e; j++) {
    const col = loads(column(frame, names[j], `experts[${j}]`));
    for (let r = 0; r < rows; r++) outLoad[r * e + j] = col[r];
  }
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < e; j++) {
      const at = r * e + j;
      outStep[at] = step[r];
      outLayer[at] = layer[r];
      outExpert[at] = j;
      gather[at] = r;
    }
  }
  return longTable(idSeries, gather, outStep, outLayer, outExpert, outLoad);
}

/**
 * Reads a per-batch load table file (CSV, TSV, parquet, JSON lines or a
 * JSON array of rows; see {@linkcode readTable}) and normalises it with
 * {@linkcode loadTable}.
 *
 * @param path The file.
 * @param mapping Where each field lies. Default `{}` (long, default names).
 * @returns The long load table `...ids, step, layer, expert, load`.
 * @throws {RangeError} If the file does not exist or its extension is not
 * one of the above.
 * @throws {SyntaxError} If a JSON line does not parse.
 * @throws {TypeError} As {@linkcode loadTable}.
 *
 * @example
 * ```ts
 * import { readLoadTable } from "@moelab/balance/workload";
 * import assert from "node:assert/strict";
 *
 * const long = readLoadTable("data/fixtures/loads_long.csv");
 * assert.deepEqual(long.columns, ["step", "layer", "expert", "load"]);
 * ```
 */
export function readLoadTable(
  path: string,
  mapping: LoadTableMapping = {},
): pl.DataFrame {
  return loadTable(readTable(path), mapping);
}
