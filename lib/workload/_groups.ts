// Rows that share the values of the id columns (dataset, prompt, ...) form
// one group: the trace loaders number tokens and batches within a group.
import type pl from "nodejs-polars";

/** Group index of every row, numbered by first appearance. */
export interface Groups {
  /** `Int32Array` (rows): the group of each row. */
  group: Int32Array;
  /** The first row of each group, to carry its id values. */
  first: number[];
}

/** Groups the rows of a table by the values of `idSeries`. */
export function groupRows(idSeries: pl.Series[], rows: number): Groups {
  const group = new Int32Array(rows);
  const first: number[] = [];
  if (idSeries.length === 0) {
    if (rows > 0) first.push(0);
    return { group, first };
  }
  const values = idSeries.map((s) => s.toArray() as unknown[]);
  const index = new Map<string, number>();
  for (let r = 0; r < rows; r++) {
    const key = values.length === 1
      ? String(values[0][r])
      : JSON.stringify(values.map((v) => v[r]));
    let g = index.get(key);
    if (g === undefined) {
      g = first.length;
      index.set(key, g);
      first.push(r);
    }
    group[r] = g;
  }
  return { group, first };
}
