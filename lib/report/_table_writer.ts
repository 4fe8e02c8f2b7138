// Long tables written to parquet a slice of rows at a time, so that a large
// run never holds a whole table as a dataframe: each slice goes to an Arrow
// IPC part beside the file (label columns as integer codes), and Polars
// streams the parts into the one parquet file, decoding the labels on the
// way. A table of one slice is written directly.
import pl from "nodejs-polars";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";

/** A column of a long table: Int32 or Float64 values, or labels by index. */
export type TableColumn =
  | { name: string; kind: "int32" | "float64" }
  | { name: string; kind: "label"; labels: readonly string[] };

/** A long table, read a range of rows at a time. */
export interface TableSource {
  /** Rows of the table. */
  rows: number;
  /** Its columns, in order. */
  columns: readonly TableColumn[];
  /** Each column's values at rows `[from, to)`, label columns as Int32 indices. */
  slice(from: number, to: number): (Int32Array | Float64Array)[];
}

/** Rows per slice of {@linkcode writeTableParquet}: 2^21 (about 48 MiB of columns). */
export const SLICE_ROWS = 1 << 21;

/** The label columns of `columns` decoded from their indices (Polars expressions). */
function decoders(columns: readonly TableColumn[]): pl.Expr[] {
  return columns.flatMap((c) =>
    c.kind === "label"
      ? [
        pl.col(c.name).replaceStrict(
          c.labels.map((_, i) => i),
          [...c.labels],
          undefined,
          pl.Utf8,
        ).alias(c.name),
      ]
      : []
  );
}

/** Rows `[from, to)` as a DataFrame, label columns decoded unless `coded`. */
function frameOf(
  source: TableSource,
  from: number,
  to: number,
  coded = false,
): pl.DataFrame {
  const values = source.slice(from, to);
  const frame = pl.DataFrame(
    Object.fromEntries(source.columns.map((c, i) => [
      c.name,
      pl.Series(
        c.name,
        values[i],
        c.kind === "float64" ? pl.Float64 : pl.Int32,
      ),
    ])),
  );
  const decode = decoders(source.columns);
  return coded || decode.length === 0 ? frame : frame.withColumns(...decode);
}

/** The whole table as a DataFrame, labels decoded. */
export function tableFrame(source: TableSource): pl.DataFrame {
  return frameOf(source, 0, source.rows);
}

/**
 * Writes the table to the parquet file `path`, `sliceRows` rows at a time
 * (parts in `path.parts/`, removed after): what it holds at once is one
 * slice, whatever the table's size. The file's content is the same as
 * writing {@linkcode tableFrame} in one go.
 */
export function writeTableParquet(
  path: string,
  source: TableSource,
  sliceRows: number = SLICE_ROWS,
): void {
  if (source.rows <= sliceRows) {
    tableFrame(source).writeParquet(path);
    return;
  }
  const parts = `${path}.parts`;
  mkdirSync(parts);
  try {
    const files: string[] = [];
    for (let from = 0, i = 0; from < source.rows; from += sliceRows, i++) {
      const to = Math.min(source.rows, from + sliceRows);
      const file = join(parts, `${String(i).padStart(8, "0")}.arrow`);
      frameOf(source, from, to, true).writeIPC(file);
      files.push(file);
    }
    pl.scanIPC(join(parts, "*.arrow"))
      .withColumns(...decoders(source.columns))
      .sinkParquet(path)
      .collectSync();
  } finally {
    rmSync(parts, { recursive: true, force: true });
  }
}
