// Column access for the trace loaders: every read names the column, and
// every malformed value names its row (data rows counted from 0), so that a
// user can find the cell in a file of thousands of rows.
import pl from "nodejs-polars";
import { checkInteger, show } from "../validate.ts";

const NUMERIC = new Set([
  "Int8",
  "Int16",
  "Int32",
  "Int64",
  "UInt8",
  "UInt16",
  "UInt32",
  "UInt64",
  "Float32",
  "Float64",
]);

function listNames(names: string[]): string {
  const shown = names.slice(0, 12).map((n) => JSON.stringify(n)).join(", ");
  return names.length > 12 ? `${shown}, ... (${names.length} in all)` : shown;
}

/** The series of column `name`, or a TypeError naming the mapping key. */
export function column(
  frame: pl.DataFrame,
  name: string,
  key: string,
): pl.Series {
  if (typeof name !== "string") {
    throw new TypeError(
      `mapping.${key} must be a column name: current value is ${show(name)}`,
    );
  }
  if (!frame.columns.includes(name)) {
    throw new TypeError(
      `mapping.${key} names column ${
        JSON.stringify(name)
      }, which the table lacks: its columns are ${listNames(frame.columns)}`,
    );
  }
  return frame.getColumn(name);
}

/** Column `name` of a table made by the loaders, named `owner` in errors. */
export function tableColumn(
  frame: pl.DataFrame,
  name: string,
  owner: string,
): pl.Series {
  if (!frame.columns.includes(name)) {
    throw new TypeError(
      `${owner} must have a column ${JSON.stringify(name)}: its columns are ${
        listNames(frame.columns)
      }`,
    );
  }
  return frame.getColumn(name);
}

/**
 * The name in `value` when given, `fallback` when it is a column of the
 * frame, else null (the optional column is absent).
 */
export function optionalName(
  frame: pl.DataFrame,
  value: string | null | undefined,
  fallback: string,
): string | null {
  if (value === null) return null;
  if (value !== undefined) return value;
  return frame.columns.includes(fallback) ? fallback : null;
}

function firstNull(series: pl.Series): number {
  return (series.isNull().toArray() as boolean[]).indexOf(true);
}

/** Finite numbers of a numeric (or numeric-text) column, as Float64Array. */
export function numbers(series: pl.Series, what: string): Float64Array {
  const name = JSON.stringify(series.name);
  if (series.nullCount() > 0) {
    throw new RangeError(
      `column ${name} must hold ${what}: row ${firstNull(series)} is empty`,
    );
  }
  let variant: string;
  try {
    variant = series.dtype.variant;
  } catch {
    // A type that JavaScript cannot take (Int128: integers beyond 64 bits),
    // read as text below.
    series = series.cast(pl.Utf8);
    variant = "String";
  }
  if (NUMERIC.has(variant)) {
    const v = series.cast(pl.Float64).toTypedArray() as Float64Array;
    for (let i = 0; i < v.length; i++) {
      if (!Number.isFinite(v[i])) {
        throw new RangeError(
          `column ${name} must hold ${what}: row ${i} holds ${v[i]}`,
        );
      }
    }
    return v;
  }
  if (variant !== "String" && variant !== "Utf8") {
    throw new TypeError(
      `column ${name} must hold ${what}: its type is ${variant}`,
    );
  }
  // A numeric column read as text: one bad cell made the reader fall back
  // to strings, so find that cell.
  const text = series.toArray() as string[];
  const out = new Float64Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const v = text[i].trim() === "" ? NaN : Number(text[i]);
    if (!Number.isFinite(v)) {
      throw new RangeError(
        `column ${name} must hold ${what}: row ${i} holds ${show(text[i])}`,
      );
    }
    out[i] = v;
  }
  return out;
}

/** Non-negative integers of a column (ids: step, layer, expert, token). */
export function ids(series: pl.Series): Int32Array {
  const v = numbers(series, "non-negative integers");
  const out = new Int32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (!Number.isInteger(x) || x < 0 || x > 0x7fffffff) {
      throw new RangeError(
        `column ${
          JSON.stringify(series.name)
        } must hold non-negative integers: row ${i} holds ${x}`,
      );
    }
    out[i] = x;
  }
  return out;
}

/** Non-negative finite loads of a column. */
export function loads(series: pl.Series): Float64Array {
  const v = numbers(series, "non-negative loads");
  for (let i = 0; i < v.length; i++) {
    if (!(v[i] >= 0)) {
      throw new RangeError(
        `column ${
          JSON.stringify(series.name)
        } must hold non-negative loads: row ${i} holds ${v[i]}`,
      );
    }
  }
  return v;
}

/** A list column flattened: row `i` holds `values[offsets[i]..offsets[i+1]]`. */
export interface FlatList {
  offsets: Int32Array;
  values: Float64Array;
}

/**
 * A column of number lists, either a list column (JSON lines, parquet) or
 * text such as `"[8, 29, 42]"` (CSV).
 */
export function numberLists(series: pl.Series): FlatList {
  const name = JSON.stringify(series.name);
  if (series.nullCount() > 0) {
    throw new RangeError(
      `column ${name} must hold lists of numbers: row ${
        firstNull(series)
      } is empty`,
    );
  }
  const variant = series.dtype.variant;
  if (variant === "String" || variant === "Utf8") {
    return parseLists(series.toArray() as string[], name);
  }
  if (variant !== "List") {
    throw new TypeError(
      `column ${name} must hold lists of numbers such as [8, 29, 42] or "[8, 29, 42]": its type is ${variant}`,
    );
  }
  let lengths: Int32Array;
  let flat: (number | null)[];
  try {
    lengths = series.list.lengths().cast(pl.Int32).toTypedArray() as Int32Array;
    flat = series.cast(pl.List(pl.Float64)).explode().toArray() as (
      | number
      | null
    )[];
  } catch {
    throw new TypeError(
      `column ${name} must hold lists of numbers: its type is ${series.dtype}`,
    );
  }
  const offsets = new Int32Array(lengths.length + 1);
  const values = new Float64Array(flat.length);
  let at = 0; // position in the exploded series: an empty list leaves a null
  let n = 0;
  for (let i = 0; i < lengths.length; i++) {
    if (lengths[i] === 0) at++;
    for (let k = 0; k < lengths[i]; k++, at++) {
      const v = flat[at];
      if (v === null || !Number.isFinite(v)) {
        throw new RangeError(
          `column ${name} must hold lists of numbers: row ${i} holds ${v} at position ${k}`,
        );
      }
      values[n++] = v;
    }
    offsets[i + 1] = n;
  }
  return { offsets, values: values.subarray(0, n) };
}

function parseLists(text: string[], name: string): FlatList {
  const offsets = new Int32Array(text.length + 1);
  const parts: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const s = text[i].trim();
    const bad = () =>
      new SyntaxError(
        `column ${name} must hold lists of numbers such as "[8, 29, 42]": row ${i} holds ${
          show(text[i])
        }`,
      );
    if (s[0] !== "[" || s[s.length - 1] !== "]") throw bad();
    const body = s.slice(1, -1).trim();
    if (body !== "") {
      for (const item of body.split(",")) {
        const t = item.trim();
        const v = t === "" ? NaN : Number(t);
        if (!Number.isFinite(v)) throw bad();
        parts.push(v);
      }
    }
    offsets[i + 1] = parts.length;
  }
  return { offsets, values: Float64Array.from(parts) };
}

/** Throws unless `value` is a Polars DataFrame. */
export function checkFrame(name: string, value: unknown): pl.DataFrame {
  if (typeof (value as { getColumn?: unknown })?.getColumn !== "function") {
    throw new TypeError(
      `${name} must be a Polars DataFrame: current value is ${show(value)}`,
    );
  }
  return value as pl.DataFrame;
}

/**
 * The number of experts: `requested` when given (it must exceed every id),
 * else the largest id plus 1 (at least 1).
 */
export function expertCount(
  expertIds: ArrayLike<number>,
  requested: number | undefined,
  where: string,
): number {
  let max = -1;
  for (let k = 0; k < expertIds.length; k++) max = Math.max(max, expertIds[k]);
  if (requested === undefined) return Math.max(max + 1, 1);
  checkInteger("options.experts", requested, 1);
  if (max >= requested) {
    throw new RangeError(
      `options.experts must exceed every expert id in the ${where} (${max}): current value is ${requested}`,
    );
  }
  return requested;
}

/**
 * The long load table `...ids, step, layer, expert, load`, id values taken
 * from the rows `gather` of the id series (as they are when null).
 */
export function longTable(
  idSeries: pl.Series[],
  gather: number[] | null,
  step: Int32Array,
  layer: Int32Array,
  expert: Int32Array,
  load: Float64Array,
): pl.DataFrame {
  return pl.DataFrame([
    ...idSeries.map((s) => gather === null ? s : s.gather(gather)),
    pl.Series("step", step, pl.Int32),
    pl.Series("layer", layer, pl.Int32),
    pl.Series("expert", expert, pl.Int32),
    pl.Series("load", load, pl.Float64),
  ]);
}
