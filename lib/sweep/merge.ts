// Merges a sweep's cells into one long table: sweep.parquet (Polars) and
// sweep.json, the same bytes however the cells were sharded.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pl from "nodejs-polars";
import { checkGrid, gridKeys, sweepCells, type SweepGrid } from "./grid.ts";
import { CELL_FILE, cellDir, GRID_FILE } from "./run_sweep.ts";

/** Options of {@linkcode mergeSweep}. */
export interface MergeOptions {
  /** Merge the complete cells even when some are missing (default false). */
  allowIncomplete?: boolean;
}

/** What {@linkcode mergeSweep} wrote. */
export interface MergeReport {
  /** Rows of `sweep.parquet`. */
  rows: number;
  /** Ids of the cells merged. */
  cells: string[];
  /** Ids of the cells missing (not complete). */
  missing: string[];
  /** Paths written. */
  files: string[];
}

/** Summary fields that are not figures: labels, and wall time, which no two runs share. */
const NOT_FIGURES = new Set([
  "method",
  "name",
  "options",
  "causal",
  "backend",
  "state",
  "wallMs",
]);

/**
 * Reads `dir/grid.json` and every complete cell's `summary.json` and writes
 * `dir/sweep.parquet`, one row per cell, method and summary figure
 * (columns: `cell`, one per grid key, `method`, `figure`, `value`), and
 * `dir/sweep.json` (the grid, and per cell its values, under a group
 * limit what its optimality gaps are measured against (`optimum`, as in
 * its `summary.json`), and its methods' figures). Figures are the fields of the method summaries but wall time
 * (so that the table depends on the grid alone, not on how it was run),
 * with the expert-parallel ones flattened as `ep.<strategy>.<field>`. A grid
 * key holding numbers gives a float column, strings a string column, and
 * anything else (method lists) its JSON text.
 *
 * @throws {RangeError} If `dir` holds no sweep, or cells are missing and
 * `allowIncomplete` is not set (the message lists them).
 */
export function mergeSweep(
  dir: string,
  options: MergeOptions = {},
): MergeReport {
  const gridPath = join(dir, GRID_FILE);
  if (!existsSync(gridPath)) {
    throw new RangeError(
      `${dir} holds no sweep: ${gridPath} is missing (run moelab sweep --out ${dir} first)`,
    );
  }
  const grid = checkGrid(JSON.parse(readFileSync(gridPath, "utf8")));
  const cells = sweepCells(grid);
  const missing = cells.filter((c) =>
    !existsSync(join(cellDir(dir, c), CELL_FILE))
  ).map((c) => c.id);
  if (missing.length > 0 && !options.allowIncomplete) {
    throw new RangeError(
      `sweep in ${dir} is incomplete: ${missing.length} of ${cells.length} cells missing (${
        listIds(missing)
      }); run their shards again, or merge with --allow-incomplete`,
    );
  }
  const keys = gridKeys(grid);
  const cellCol: string[] = [], methodCol: string[] = [];
  const figureCol: string[] = [], valueCol: (number | null)[] = [];
  const keyCols = keys.map(() => [] as unknown[]);
  const jsonCells: unknown[] = [];
  const present = cells.filter((c) => !missing.includes(c.id));
  for (const cell of present) {
    const summary = JSON.parse(
      readFileSync(join(cellDir(dir, cell), "summary.json"), "utf8"),
    ) as {
      config?: { optimum?: unknown };
      methods: Record<string, unknown>[];
    };
    const methods = summary.methods.map((m) => {
      const figures = flattenFigures(m);
      for (const [figure, value] of figures) {
        cellCol.push(cell.id);
        keys.forEach((k, j) => keyCols[j].push(cell.values[k]));
        methodCol.push(String(m.method));
        figureCol.push(figure);
        valueCol.push(value);
      }
      return { method: m.method, ...Object.fromEntries(figures) };
    });
    // Under a group limit, what the cell's gaps are measured against: cells
    // of one grid may differ (with an exact method, without one).
    const optimum = summary.config?.optimum;
    jsonCells.push({
      cell: cell.id,
      values: cell.values,
      ...(typeof optimum === "string" ? { optimum } : {}),
      methods,
    });
  }
  const frame = pl.DataFrame([
    pl.Series("cell", cellCol, pl.Utf8),
    ...keys.map((k, j) => keySeries(k, keyCols[j], grid)),
    pl.Series("method", methodCol, pl.Utf8),
    pl.Series("figure", figureCol, pl.Utf8),
    pl.Series("value", valueCol, pl.Float64),
  ]);
  const parquet = join(dir, "sweep.parquet");
  const json = join(dir, "sweep.json");
  frame.writeParquet(`${parquet}.tmp`);
  renameSync(`${parquet}.tmp`, parquet);
  writeFileSync(
    `${json}.tmp`,
    JSON.stringify(
      {
        grid: { preset: grid.preset, grid: grid.grid },
        missing,
        cells: jsonCells,
      },
      null,
      2,
    ) + "\n",
  );
  renameSync(`${json}.tmp`, json);
  return {
    rows: frame.height,
    cells: present.map((c) => c.id),
    missing,
    files: [parquet, json],
  };
}

/** Ids as a short list: the first twenty, then a count. */
export function listIds(ids: string[]): string {
  return ids.length <= 20
    ? ids.join(", ")
    : `${ids.slice(0, 20).join(", ")} and ${ids.length - 20} more`;
}

function flattenFigures(
  summary: Record<string, unknown>,
): [string, number | null][] {
  const out: [string, number | null][] = [];
  const walk = (prefix: string, obj: Record<string, unknown>) => {
    for (const [key, value] of Object.entries(obj)) {
      if (prefix === "" && NOT_FIGURES.has(key)) continue;
      const name = prefix === "" ? key : `${prefix}.${key}`;
      if (typeof value === "number" || value === null) out.push([name, value]);
      else if (typeof value === "object" && !Array.isArray(value)) {
        walk(name, value as Record<string, unknown>);
      }
    }
  };
  walk("", summary);
  return out;
}

function keySeries(name: string, values: unknown[], grid: SweepGrid) {
  const all = grid.grid[name];
  if (all.every((v) => typeof v === "number")) {
    return pl.Series(name, values as number[], pl.Float64);
  }
  if (all.every((v) => typeof v === "string")) {
    return pl.Series(name, values as string[], pl.Utf8);
  }
  if (all.every((v) => typeof v === "boolean")) {
    return pl.Series(name, values as boolean[], pl.Bool);
  }
  return pl.Series(name, values.map((v) => JSON.stringify(v)), pl.Utf8);
}
