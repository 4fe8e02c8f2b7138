import pl from "nodejs-polars";
import { existsSync, readFileSync } from "node:fs";
import type { Buffer } from "node:buffer";
import { extname } from "node:path";
import { show } from "../validate.ts";

/**
 * Parses JSON lines into a DataFrame, one column per key (absent keys are
 * empty cells). Parsed here rather than by Polars so that a bad line is a
 * SyntaxError naming its line.
 */
function jsonLines(text: string, path: string): pl.DataFrame {
  const columns = new Map<string, unknown[]>();
  let row = 0;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (e) {
      throw new SyntaxError(
        `${path} line ${i + 1} is not valid JSON: ${(e as Error).message}`,
      );
    }
    if (
      record === null || typeof record !== "object" || Array.isArray(record)
    ) {
      throw new SyntaxError(
        `${path} line ${i + 1} must hold a JSON object: it holds ${
          show(record)
        }`,
      );
    }
    for (const [key, value] of Object.entries(record)) {
      let col = columns.get(key);
      if (col === undefined) {
        col = new Array(row).fill(null);
        columns.set(key, col);
      }
      col[row] = value;
    }
    row++;
    for (const col of columns.values()) if (col.length < row) col.push(null);
  }
  // JSON has one number type: keep whole-number columns integer, as a CSV
  // or parquet reader would.
  return pl.DataFrame(
    [...columns].map(([key, values]) =>
      values.every((v) => v === null || Number.isSafeInteger(v)) &&
        values.some((v) => v !== null)
        ? pl.Series(key, values, pl.Int64)
        : pl.Series(key, values)
    ),
  );
}

/**
 * Reads CSV or TSV, inferring each column's type from every row: Polars'
 * default looks at the first 100 rows only and then fails on a bad cell
 * further down, where a text column lets the loaders name that cell.
 */
function delimited(path: string, sep: string): pl.DataFrame {
  const bytes = readFileSync(path);
  let lines = 1;
  for (let at = bytes.indexOf(10); at !== -1; at = bytes.indexOf(10, at + 1)) {
    lines++;
  }
  try {
    return pl.readCSV(bytes, { sep, inferSchemaLength: lines });
  } catch {
    // A cell Polars cannot parse as the type it inferred (an integer beyond
    // 128 bits): read every column as text, so that the loaders name it.
  }
  try {
    return pl.readCSV(bytes, { sep, inferSchemaLength: 0 });
  } catch (e) {
    throw new SyntaxError(
      `${path} is not a valid ${sep === "\t" ? "TSV" : "CSV"} table: ${
        String((e as Error).message).split("\n")[0]
      }`,
    );
  }
}

/**
 * Reads a table file into a Polars DataFrame, by extension: `.csv`, `.tsv`,
 * `.parquet`, `.jsonl` / `.ndjson` (one JSON object a line) or `.json` (an
 * array of row objects); under any other name, by content (`PAR1`: parquet,
 * `[`: a JSON array, `{`: JSON lines).
 *
 * @param path The file.
 * @returns The table, columns as in the file.
 * @throws {RangeError} If the file does not exist, or neither its extension
 * nor its content is one of the above.
 * @throws {SyntaxError} If a JSON file or line, or a CSV, TSV or parquet
 * file, does not parse.
 *
 * @example
 * ```ts
 * import { readTable } from "@moelab/balance/workload";
 * import assert from "node:assert/strict";
 *
 * const trace = readTable("data/fixtures/token_trace.jsonl");
 * assert.ok(trace.columns.includes("experts"));
 * ```
 */
export function readTable(path: string): pl.DataFrame {
  if (typeof path !== "string") {
    throw new TypeError(
      `path must be a string: current value is ${show(path)}`,
    );
  }
  if (!existsSync(path)) {
    throw new RangeError(
      `path must name an existing file: current value is ${show(path)}`,
    );
  }
  const ext = extname(path).toLowerCase();
  switch (ext) {
    case ".csv":
    case ".tsv":
      return delimited(path, ext === ".tsv" ? "\t" : ",");
    case ".parquet":
      return parquet(path, path);
    case ".jsonl":
    case ".ndjson":
      return jsonLines(readFileSync(path, "utf8"), path);
    case ".json":
      return jsonRows(path);
    default:
      return byContent(path);
  }
}

/** Reads a parquet file, or a SyntaxError naming it. */
function parquet(path: string, source: string | Buffer): pl.DataFrame {
  try {
    return pl.readParquet(source);
  } catch (e) {
    throw new SyntaxError(
      `${path} is not a valid parquet file: ${
        String((e as Error).message).split("\n")[0]
      }`,
    );
  }
}

/** Reads a JSON array of row objects. */
function jsonRows(path: string): pl.DataFrame {
  let rows: unknown;
  try {
    rows = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new SyntaxError(
      `${path} is not valid JSON: ${(e as Error).message}`,
    );
  }
  if (!Array.isArray(rows)) {
    throw new SyntaxError(`${path} must hold an array of row objects`);
  }
  return pl.readRecords(rows as Record<string, unknown>[]);
}

/**
 * Reads a table whose name does not say its format, by its first bytes:
 * `PAR1` is parquet, `[` a JSON array of rows, `{` JSON lines.
 */
function byContent(path: string): pl.DataFrame {
  const bytes = readFileSync(path);
  if (bytes.subarray(0, 4).toString() === "PAR1") return parquet(path, bytes);
  const text = bytes.subarray(0, 64).toString("utf8").trimStart();
  if (text.startsWith("[")) return jsonRows(path);
  if (text.startsWith("{")) return jsonLines(bytes.toString("utf8"), path);
  throw new RangeError(
    `path must end in .csv, .tsv, .parquet, .jsonl, .ndjson or .json, or hold parquet or JSON: current value is ${
      show(path)
    }`,
  );
}
