// rowTop against a sort-based twin, with and without its pre-filter, on
// rows whose scale jumps (so the running guess is sometimes far off and
// the full scan takes over), ties and -Infinity.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../scores/rng.ts";
import { rowFilter, rowTop } from "./top.ts";

/** The `rank` largest of `row - shift`, ties to the lowest index, by sorting. */
function twin(row: Float32Array, shift: Float64Array, rank: number): number[] {
  return [...row.keys()]
    .map((j) => ({ j, v: row[j] - shift[j] }))
    .sort((a, b) => (b.v > a.v ? 1 : b.v < a.v ? -1 : a.j - b.j))
    .slice(0, rank)
    .map((e) => e.j);
}

describe("rowTop", () => {
  test("with and without the filter, equals the sorting twin row by row", () => {
    const rng = new Rng(21);
    for (const [E, rank] of [[8, 3], [64, 7], [256, 9], [5, 5]]) {
      const filter = rowFilter(E);
      const shift = Float64Array.from({ length: E }, () => rng.uniform() * 0.1);
      const topV = new Float64Array(rank), topI = new Int32Array(rank);
      const plainV = new Float64Array(rank), plainI = new Int32Array(rank);
      let row = new Float32Array(E);
      for (let i = 0; i < 400; i++) {
        // Every 50 rows the scale jumps, and some rows are tied or masked.
        const scale = 10 ** ((i / 50) % 4 - 2);
        row = Float32Array.from({ length: E }, () => {
          const u = rng.uniform();
          if (i % 7 === 3 && u < 0.3) return -Infinity;
          return i % 5 === 0 ? Math.round(u * 4) / 4 : u * scale;
        });
        const want = twin(row, shift, rank);
        const v = rowTop(row, 0, E, shift, rank, topV, topI, filter);
        const w = rowTop(row, 0, E, shift, rank, plainV, plainI);
        assert.deepEqual([...topI], want, `row ${i}, E = ${E}, filtered`);
        assert.deepEqual([...plainI], want, `row ${i}, E = ${E}, plain`);
        assert.equal(v, w);
        assert.equal(v, row[want[rank - 1]] - shift[want[rank - 1]]);
      }
    }
  });
});
