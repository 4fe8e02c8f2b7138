import pl from "nodejs-polars";
import { show } from "../validate.ts";
import {
  checkFrame,
  column,
  ids,
  numberLists,
  optionalName,
} from "./_columns.ts";
import { groupRows } from "./_groups.ts";
import { readTable } from "./read_table.ts";

/**
 * Where the fields of a per-token expert trace lie: one row per token and
 * layer, the selected experts as a list column or as text such as
 * `"[8, 29, 42]"`.
 */
export interface TokenTraceMapping {
  /** Column of the selected expert ids. Default `"experts"`. */
  experts?: string;
  /**
   * Column of the gate probabilities, a list as long as the experts' list.
   * Default `"probs"`; when the table has no column of the default name,
   * or with `null`, the trace has no probabilities.
   */
  probs?: string | null;
  /** Column of the layer. Default `"layer"`; absent or `null`: layer 0. */
  layer?: string | null;
  /** Column of the step (batch). Default `"step"`; absent or `null`: 0. */
  step?: string | null;
  /**
   * Column of the token index. Default `"token"`; absent or `null`: the
   * row's position among the rows of the same ids, step and layer.
   */
  token?: string | null;
  /**
   * Extra id columns carried unchanged, before `step`: they split the trace
   * into independent groups (prompts, datasets). Default none.
   */
  ids?: string[];
}

function checkMapping(mapping: unknown): TokenTraceMapping {
  if (mapping === null || typeof mapping !== "object") {
    throw new TypeError(
      `mapping must be an object: current value is ${show(mapping)}`,
    );
  }
  const m = mapping as TokenTraceMapping;
  if (
    m.ids !== undefined &&
    (!Array.isArray(m.ids) || m.ids.some((x) => typeof x !== "string"))
  ) {
    throw new TypeError(
      `mapping.ids must be an array of column names: current value is ${
        show(m.ids)
      }`,
    );
  }
  return m;
}

function lists(
  offsets: Int32Array,
  values: ArrayLike<number>,
): number[][] {
  const out = new Array<number[]>(offsets.length - 1);
  for (let i = 0; i < out.length; i++) {
    out[i] = Array.prototype.slice.call(values, offsets[i], offsets[i + 1]);
  }
  return out;
}

/**
 * Normalises a per-token expert trace to the schema `...ids, step, layer,
 * token, experts, probs` (`step, layer, token`: Int32; `experts`:
 * List(Int32); `probs`: List(Float64), only when mapped), rows in table
 * order. Aggregate it to loads with {@linkcode traceLoads}.
 *
 * @param frame The trace as read, for example by {@linkcode readTable}.
 * @param mapping Where each field lies (see {@linkcode TokenTraceMapping}).
 * Default `{}`: columns `experts`, and where present `probs`, `layer`,
 * `step`, `token`.
 * @returns The per-token trace.
 * @throws {TypeError} If the mapping names a column that the table lacks,
 * or a column has the wrong type; the message names the column.
 * @throws {SyntaxError} If a text cell of the experts or probabilities is
 * not a list such as `"[8, 29, 42]"`; the message names column and row.
 * @throws {RangeError} If an id is not a non-negative integer, a
 * probability is negative, or a row's probabilities do not match its
 * experts in number; the message names column and row (from 0).
 *
 * @example Expert ids as text, as in the MoE-Beyond CSVs
 * ```ts
 * import { tokenTrace } from "@moelab/balance/workload";
 * import pl from "nodejs-polars";
 * import assert from "node:assert/strict";
 *
 * const csv = pl.readCSV('Layer ID,Token,Activated Expert IDs\n1,Hi,"[3, 0]"\n1,there,"[3, 1]"\n');
 * const trace = tokenTrace(csv, { layer: "Layer ID", experts: "Activated Expert IDs" });
 * assert.deepEqual(trace.columns, ["step", "layer", "token", "experts"]);
 * assert.deepEqual([...trace.getColumn("token")], [0, 1]);
 * assert.throws(
 *   () => tokenTrace(csv, { layer: "Layer ID", experts: "Token" }),
 *   /column "Token" must hold lists of numbers such as "\[8, 29, 42\]": row 0 holds "Hi"/,
 * );
 * ```
 */
export function tokenTrace(
  frame: pl.DataFrame,
  mapping: TokenTraceMapping = {},
): pl.DataFrame {
  checkFrame("frame", frame);
  const m = checkMapping(mapping);
  const rows = frame.height;
  const idSeries = (m.ids ?? []).map((n, i) => column(frame, n, `ids[${i}]`));
  const ints: Record<string, Int32Array | null> = {};
  for (const key of ["step", "layer", "token"] as const) {
    const name = optionalName(frame, m[key], key);
    ints[key] = name === null ? null : ids(column(frame, name, key));
  }
  const step = ints.step ?? new Int32Array(rows);
  const layer = ints.layer ?? new Int32Array(rows);
  const expertSeries = column(frame, m.experts ?? "experts", "experts");
  const experts = numberLists(expertSeries);
  const ev = experts.values;
  for (let r = 0; r < rows; r++) {
    for (let k = experts.offsets[r]; k < experts.offsets[r + 1]; k++) {
      if (!Number.isInteger(ev[k]) || ev[k] < 0 || ev[k] > 0x7fffffff) {
        throw new RangeError(
          `column ${
            JSON.stringify(expertSeries.name)
          } must hold lists of non-negative integer expert ids: row ${r} holds ${
            ev[k]
          }`,
        );
      }
    }
  }
  const out: pl.Series[] = [...idSeries];
  out.push(pl.Series("step", step, pl.Int32));
  out.push(pl.Series("layer", layer, pl.Int32));
  const token = ints.token ?? tokenOrdinals(idSeries, step, layer);
  out.push(pl.Series("token", token, pl.Int32));
  out.push(
    pl.Series("experts", lists(experts.offsets, ev), pl.List(pl.Int32)),
  );
  const probsName = optionalName(frame, m.probs, "probs");
  if (probsName !== null) {
    const probsSeries = column(frame, probsName, "probs");
    const probs = numberLists(probsSeries);
    for (let r = 0; r < rows; r++) {
      const n = probs.offsets[r + 1] - probs.offsets[r];
      if (n !== experts.offsets[r + 1] - experts.offsets[r]) {
        throw new RangeError(
          `column ${
            JSON.stringify(probsSeries.name)
          } must hold one probability per expert: row ${r} holds ${n} for ${
            experts.offsets[r + 1] - experts.offsets[r]
          } experts`,
        );
      }
      for (let k = probs.offsets[r]; k < probs.offsets[r + 1]; k++) {
        if (!(probs.values[k] >= 0)) {
          throw new RangeError(
            `column ${
              JSON.stringify(probsSeries.name)
            } must hold non-negative probabilities: row ${r} holds ${
              probs.values[k]
            }`,
          );
        }
      }
    }
    out.push(
      pl.Series(
        "probs",
        lists(probs.offsets, probs.values),
        pl.List(pl.Float64),
      ),
    );
  }
  return pl.DataFrame(out);
}

/** Position of each row among the rows of its ids, step and layer. */
function tokenOrdinals(
  idSeries: pl.Series[],
  step: Int32Array,
  layer: Int32Array,
): Int32Array {
  const { group } = groupRows(idSeries, step.length);
  const next = new Map<number, number>();
  let maxStep = 0;
  let maxLayer = 0;
  for (let r = 0; r < step.length; r++) {
    maxStep = Math.max(maxStep, step[r]);
    maxLayer = Math.max(maxLayer, layer[r]);
  }
  const out = new Int32Array(step.length);
  for (let r = 0; r < step.length; r++) {
    const key = (group[r] * (maxStep + 1) + step[r]) * (maxLayer + 1) +
      layer[r];
    const t = next.get(key) ?? 0;
    out[r] = t;
    next.set(key, t + 1);
  }
  return out;
}

/**
 * Reads per-token expert traces from one or more files (CSV, TSV, parquet,
 * JSON lines; see {@linkcode readTable}), stacked in the order given, and
 * normalises them with {@linkcode tokenTrace}.
 *
 * @param paths A file or files with the same columns.
 * @param mapping Where each field lies. Default `{}`.
 * @returns The per-token trace `...ids, step, layer, token, experts[, probs]`.
 * @throws {RangeError} If a file does not exist or has an unknown extension.
 * @throws {TypeError} If the files' columns differ, or as
 * {@linkcode tokenTrace}.
 * @throws {SyntaxError} As {@linkcode tokenTrace}.
 *
 * @example
 * ```ts
 * import { readTokenTrace } from "@moelab/balance/workload";
 * import assert from "node:assert/strict";
 *
 * const trace = readTokenTrace("data/fixtures/token_trace.jsonl", {
 *   ids: ["problem_id"], token: "token_idx", probs: "gating_probs",
 * });
 * assert.equal(trace.height, 32);
 * ```
 */
export function readTokenTrace(
  paths: string | string[],
  mapping: TokenTraceMapping = {},
): pl.DataFrame {
  const list = typeof paths === "string" ? [paths] : paths;
  if (!Array.isArray(list) || list.length === 0) {
    throw new TypeError(
      `paths must be a file or a non-empty array of files: current value is ${
        show(paths)
      }`,
    );
  }
  const frames = list.map((p) => readTable(p));
  for (let i = 1; i < frames.length; i++) {
    if (frames[i].columns.join("\n") !== frames[0].columns.join("\n")) {
      throw new TypeError(
        `paths must name files with the same columns: ${
          show(list[i])
        } differs from ${show(list[0])}`,
      );
    }
  }
  const frame = frames.length === 1
    ? frames[0]
    : pl.concat(frames, { how: "verticalRelaxed" });
  return tokenTrace(frame, mapping);
}
