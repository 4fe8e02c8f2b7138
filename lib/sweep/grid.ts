// A parameter sweep's grid: a base simulation preset and, per key, the
// values to try; the cells are the cartesian product, numbered in a fixed
// order so that every machine of a sharded sweep agrees on them.
import { resolveSimConfig, SIM_DEFAULTS } from "../sim/config.ts";
import { withMessage } from "../validate.ts";

/** A sweep file: `{ "preset": {...}, "grid": { key: [values...] } }`. */
export interface SweepGrid {
  /** The base simulation preset every cell starts from. */
  preset: Record<string, unknown>;
  /**
   * Values per key, keys in the order written. A dotted key
   * (`"workload.drift"`, `"ep.gpus"`) reaches into a nested object of the
   * preset; a missing parent starts from the simulator's default.
   */
  grid: Record<string, unknown[]>;
}

/** One cell of a sweep: its number, its id, its values and its preset. */
export interface SweepCell {
  /** Position in the sweep's order, from 0. */
  index: number;
  /** `index` zero-padded to the width of the last cell's number: `"007"`. */
  id: string;
  /** The value of every grid key, keys in the grid's order. */
  values: Record<string, unknown>;
  /** The base preset with the cell's values set. */
  preset: Record<string, unknown>;
}

/** The grid's keys, in the order written. */
export function gridKeys(grid: SweepGrid): string[] {
  return Object.keys(grid.grid);
}

/** The number of cells: the product of the value counts (1 for an empty grid). */
export function cellCount(grid: SweepGrid): number {
  return gridKeys(grid).reduce((n, k) => n * grid.grid[k].length, 1);
}

/**
 * Checks a parsed sweep file and every cell's configuration, without
 * running anything. Errors name the offending key: `grid key "topK"` for a
 * value that fails alone, the cell's values for a combination that fails
 * (`topK` above `experts`), `preset` for the base preset.
 *
 * @throws {TypeError | RangeError} With a one-line message naming the key.
 */
export function checkGrid(value: unknown): SweepGrid {
  if (!isObject(value)) {
    throw new TypeError(
      `grid file must hold an object { "preset": {...}, "grid": {...} }: current value is ${
        short(value)
      }`,
    );
  }
  for (const key of Object.keys(value)) {
    if (key !== "preset" && key !== "grid") {
      throw new RangeError(
        `grid file has an unknown key "${key}" (keys: preset, grid)`,
      );
    }
  }
  const preset = value.preset ?? {};
  if (!isObject(preset)) {
    throw new TypeError(
      `preset must be an object: current value is ${short(preset)}`,
    );
  }
  if (!isObject(value.grid)) {
    throw new TypeError(
      `grid must be an object of value lists: current value is ${
        short(value.grid)
      }`,
    );
  }
  const keys = Object.keys(value.grid);
  for (const key of keys) {
    const values = value.grid[key];
    if (!Array.isArray(values) || values.length === 0) {
      throw new TypeError(
        `grid key "${key}" must list at least one value: current value is ${
          short(values)
        }`,
      );
    }
    // A value twice makes two identical cells: their rows would count
    // twice in any figure taken over the sweep's table.
    const seen = values.map((v) => JSON.stringify(v));
    const twice = seen.findIndex((v, i) => seen.indexOf(v) !== i);
    if (twice >= 0) {
      throw new RangeError(
        `grid key "${key}" must list distinct values: ${
          short(values[twice])
        } appears twice`,
      );
    }
    const path = key.split(".");
    if (path.some((p) => p === "")) {
      throw new RangeError(`grid key "${key}" has an empty part`);
    }
    if (!Object.hasOwn(SIM_DEFAULTS, path[0])) {
      throw new RangeError(
        `grid key "${key}" names no preset field (fields: ${
          Object.keys(SIM_DEFAULTS).join(", ")
        })`,
      );
    }
    if (keys.some((other) => other !== key && other.startsWith(`${key}.`))) {
      throw new RangeError(
        `grid key "${key}" overlaps grid key "${
          keys.find((o) => o.startsWith(`${key}.`))
        }"`,
      );
    }
  }
  const grid: SweepGrid = {
    preset,
    grid: value.grid as Record<string, unknown[]>,
  };
  try {
    resolveSimConfig(preset);
  } catch (e) {
    throw rethrow(e, "preset");
  }
  // A value that fails on its own is the key's fault; only then try the
  // combinations, so that the message names the key wherever it can.
  for (const key of keys) {
    for (const v of grid.grid[key]) {
      try {
        resolveSimConfig(withValue(preset, key, v));
      } catch (e) {
        throw rethrow(e, `grid key "${key}" value ${short(v)}`);
      }
    }
  }
  for (const cell of sweepCells(grid)) {
    try {
      resolveSimConfig(cell.preset);
    } catch (e) {
      throw cellError(e, cell);
    }
  }
  return grid;
}

/**
 * `e` with the cell named before its message, `grid cell 1 (gate="softmax"):
 * ...`, its class kept where it is a TypeError, RangeError or SyntaxError
 * (input at fault); any other error as it is.
 */
export function cellError(e: unknown, cell: SweepCell): Error {
  return rethrow(e, cellName(cell));
}

/** How messages name a cell: `grid cell 1 (gate="softmax")`. */
export function cellName(cell: SweepCell): string {
  return `grid cell ${cell.id} (${
    Object.entries(cell.values).map(([k, v]) => `${k}=${short(v)}`).join(", ")
  })`;
}

/**
 * The cells of a grid, in the sweep's order: keys in the order written,
 * the last key varying fastest (as nested loops, the first key outermost).
 * Cell `i` has id `i` zero-padded to the width of the largest index.
 */
export function sweepCells(grid: SweepGrid): SweepCell[] {
  const keys = gridKeys(grid);
  const count = cellCount(grid);
  const width = String(Math.max(count - 1, 0)).length;
  const cells: SweepCell[] = [];
  for (let index = 0; index < count; index++) {
    const values: Record<string, unknown> = {};
    let preset = grid.preset;
    let rest = index;
    // Mixed radix, last key least significant.
    const picks = new Array<number>(keys.length);
    for (let k = keys.length - 1; k >= 0; k--) {
      const n = grid.grid[keys[k]].length;
      picks[k] = rest % n;
      rest = Math.floor(rest / n);
    }
    keys.forEach((key, k) => {
      const v = grid.grid[key][picks[k]];
      values[key] = v;
      preset = withValue(preset, key, v);
    });
    cells.push({
      index,
      id: String(index).padStart(width, "0"),
      values,
      preset,
    });
  }
  return cells;
}

/** A copy of `preset` with the dotted `key` set to `value`. */
export function withValue(
  preset: Record<string, unknown>,
  key: string,
  value: unknown,
): Record<string, unknown> {
  const path = key.split(".");
  const root = { ...preset };
  let node = root;
  let defaults: unknown = SIM_DEFAULTS;
  for (let i = 0; i < path.length - 1; i++) {
    const part = path[i];
    defaults = isObject(defaults) ? defaults[part] : undefined;
    const child = Object.hasOwn(node, part) ? node[part] : defaults;
    if (!isObject(child)) {
      throw new TypeError(
        `${
          path.slice(0, i + 1).join(".")
        } is not an object in the preset: current value is ${short(child)}`,
      );
    }
    node[part] = { ...child };
    node = node[part] as Record<string, unknown>;
  }
  node[path[path.length - 1]] = value;
  return root;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function short(v: unknown): string {
  const s = v === undefined ? "undefined" : JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function rethrow(e: unknown, where: string): Error {
  return withMessage(e, (m) => `${where}: ${m}`) as Error;
}
