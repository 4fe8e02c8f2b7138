// Long tables, read a slice of rows at a time: as Polars DataFrames (the
// whole table, for notebooks), or streamed to parquet one row group at a
// time by the project's own writer (_parquet.ts), so that a large run never
// holds a whole table as a dataframe.
import pl from "nodejs-polars";
import { type ParquetColumn, ParquetWriter } from "./_parquet.ts";

/** A column of a long table: Int32 or Float64 values, or labels by index. */
export type TableColumn = ParquetColumn;

/** A long table, read a range of rows at a time. */
export interface TableSource {
  /** Rows of the table. */
  rows: number;
  /** Its columns, in order. */
  columns: readonly TableColumn[];
  /** Each column's values at rows `[from, to)`, label columns as Int32 indices. */
  slice(from: number, to: number): (Int32Array | Float64Array)[];
}

/**
 * Rows per row group of {@linkcode writeTableParquet}: 2^18 (Polars' own
 * default; about 6 MiB of columns).
 */
export const GROUP_ROWS = 1 << 18;

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

/** Rows `[from, to)` as a DataFrame, label columns decoded. */
function frameOf(source: TableSource, from: number, to: number): pl.DataFrame {
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
  return decode.length === 0 ? frame : frame.withColumns(...decode);
}

/** The whole table as a DataFrame, labels decoded. */
export function tableFrame(source: TableSource): pl.DataFrame {
  return frameOf(source, 0, source.rows);
}

/**
 * Writes the table to the parquet file `path` as row groups of `groupRows`
 * rows, each built from a slice of the source, encoded, written and let go
 * before the next: what it holds at once is one row group, whatever the
 * table's size. Read back, the file is {@linkcode tableFrame}'s frame:
 * the same columns, types and values.
 */
export function writeTableParquet(
  path: string,
  source: TableSource,
  groupRows: number = GROUP_ROWS,
): void {
  const writer = new ParquetWriter(path, source.columns);
  try {
    for (let from = 0; from < source.rows; from += groupRows) {
      writer.writeRowGroup(
        source.slice(from, Math.min(source.rows, from + groupRows)),
      );
    }
  } catch (e) {
    writer.abandon();
    throw e;
  }
  writer.close();
}
