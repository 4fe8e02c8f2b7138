// The rows of the route op's CPU kernels on one thread or many: a range of
// rows, or blocks of rows claimed from a shared counter, routed by the
// ungrouped row kernel (_route_rows.ts) or the group-limited one
// (_route_groups.ts), or by the WebAssembly SIMD kernel of this thread
// (_route_wasm_rows.ts), which routes both.
import {
  routeRows,
  type RowRouterMaker,
  type RowSettings,
  rowState,
} from "./_route_rows.ts";
import { groupState, routeGroupedRows } from "./_route_groups.ts";
import { groupArgs, wasmRowRouter } from "./_route_wasm_rows.ts";

/** Rows per block that a thread claims at a time in {@linkcode routeBlocks}. */
export const BLOCK_ROWS = 1024;

/** Whether the settings ask for group-limited routing. */
export function groupLimited(s: RowSettings): boolean {
  const groups = s.groups ?? 1;
  return groups > 1 && (s.topGroups ?? groups) < groups;
}

/**
 * A router of row ranges for one batch shape and settings: its scratch
 * and running threshold carry from one range to the next. Each call routes
 * rows `[from, to)` and returns the flat index of the first NaN or
 * `+Infinity` score met, or -1.
 */
export function rowRouter(
  ...[data, E, k, s, outE, outW, loads]: Parameters<RowRouterMaker>
): (from: number, to: number) => number {
  const topV = new Float64Array(k), topI = new Int32Array(k);
  if (groupLimited(s)) {
    const [groups, topGroups, perGroup] = groupArgs(E, k, s);
    const state = groupState(E, groups, topGroups, perGroup);
    return (from, to) =>
      routeGroupedRows(
        data,
        E,
        k,
        s,
        from,
        to,
        outE,
        outW,
        loads,
        topV,
        topI,
        state,
      );
  }
  const state = rowState(E);
  return (from, to) =>
    routeRows(
      data,
      E,
      k,
      s,
      from,
      to,
      outE,
      outW,
      loads,
      topV,
      topI,
      state,
    );
}

/**
 * Routes blocks of rows `[0, tokens)` claimed one at a time from the shared
 * counter `counter[cell]` (Atomics.add) until none are left. Threads that
 * get less of a core (cores shared with other work) simply claim fewer
 * blocks, so no thread waits for a slow one. `host` `"wasm"` routes them
 * with this thread's WebAssembly SIMD kernel where the engine runs it,
 * `"cpu"` in TypeScript: the same answers. Returns the flat index of a
 * NaN or `+Infinity` score met (the lowest of its row), or -1.
 */
export function routeBlocks(
  counter: Int32Array,
  cell: number,
  data: Float32Array,
  E: number,
  k: number,
  s: RowSettings,
  tokens: number,
  outE: Int32Array,
  outW: Float32Array,
  loads: Int32Array,
  host: "cpu" | "wasm" = "wasm",
): number {
  const run =
    (host === "wasm"
      ? wasmRowRouter(data, E, k, s, outE, outW, loads)
      : undefined) ?? rowRouter(data, E, k, s, outE, outW, loads);
  for (;;) {
    const lo = Atomics.add(counter, cell, 1) * BLOCK_ROWS;
    if (lo >= tokens) return -1;
    const bad = run(lo, Math.min(tokens, lo + BLOCK_ROWS));
    if (bad >= 0) return bad;
  }
}
