// The row selection against a brute-force twin (each row sorted): the
// top-k with ties to the lowest expert, the best value left out, and lists
// that hold every other expert at or above their floor, with the right
// values and scores; the TypeScript and WebAssembly kernels alike.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../scores/rng.ts";
import { reselectRows, type RowSelection, selectRows } from "./_row_select.ts";

function check(
  s: Float32Array,
  tokens: number,
  E: number,
  k: number,
  q: Float64Array,
  given?: RowSelection,
): void {
  // Both kernels of the rowSelect op against the twin.
  if (given === undefined) {
    check(s, tokens, E, k, q, selectRows(s, tokens, E, k, q, "cpu"));
    check(s, tokens, E, k, q, selectRows(s, tokens, E, k, q, "wasm"));
    return;
  }
  const sel = given;
  for (let i = 0; i < tokens; i++) {
    const v = Array.from({ length: E }, (_, j) => s[i * E + j] - q[j]);
    // Best first, ties to the lowest expert.
    const order = [...v.keys()].sort((a, b) => v[b] - v[a] || a - b);
    const slots = [...sel.slots.subarray(i * k, (i + 1) * k)];
    assert.deepEqual(slots, order.slice(0, k), `top-k of token ${i}`);
    for (let r = 0; r < k; r++) {
      assert.equal(sel.vals[i * k + r], v[slots[r]]);
      assert.equal(sel.held[i * k + r], s[i * E + slots[r]]);
    }
    assert.equal(sel.free[i], k < E ? v[order[k]] : -Infinity);
    const listed = new Map<number, number>();
    for (let x = sel.start[i]; x < sel.start[i + 1]; x++) {
      const j = sel.list[x];
      assert.ok(!slots.includes(j), `token ${i} lists held expert ${j}`);
      assert.ok(!listed.has(j), `token ${i} lists expert ${j} twice`);
      assert.equal(sel.listV[x], v[j]);
      assert.equal(sel.listS[x], s[i * E + j]);
      listed.set(j, v[j]);
    }
    for (let j = 0; j < E; j++) {
      if (!slots.includes(j) && v[j] >= sel.floor[i]) {
        assert.ok(listed.has(j), `token ${i} misses expert ${j}`);
      }
    }
  }
}

/** Scores and prices on a coarse grid (many ties), some pairs masked. */
function instance(rng: Rng, tokens: number, E: number, k: number) {
  const s = new Float32Array(tokens * E);
  for (let x = 0; x < s.length; x++) {
    s[x] = rng.uniform() < 0.05 ? -Infinity : Math.round(rng.uniform() * 8) / 8;
  }
  // Every token keeps k unmasked experts.
  for (let i = 0; i < tokens; i++) {
    for (let j = 0; j < k; j++) {
      if (s[i * E + j] === -Infinity) s[i * E + j] = 0.5;
    }
  }
  // Prices on the grid too: s - q ties within a row.
  const q = Float64Array.from(
    { length: E },
    () => Math.round(rng.uniform() * 4) / 16,
  );
  return { s, q };
}

describe("selectRows", () => {
  test("matches sorted rows, with ties, masks and odd sizes", () => {
    const rng = new Rng(11);
    for (
      const [tokens, E, k] of [
        [50, 5, 2],
        [200, 13, 4],
        [300, 64, 8],
        [120, 70, 30],
        [40, 6, 6],
      ]
    ) {
      const { s, q } = instance(rng, tokens, E, k);
      check(s, tokens, E, k, q);
    }
  });

  test("rows of continuous scores after a change of scale", () => {
    // The running guess of the first rows misleads the later ones: the
    // rows that collect too few candidates are collected whole.
    const rng = new Rng(12);
    const tokens = 400, E = 40, k = 5;
    const s = new Float32Array(tokens * E);
    for (let x = 0; x < s.length; x++) {
      s[x] = rng.normal() * (x < (tokens / 2) * E ? 1 : 0.01) + 3;
    }
    check(s, tokens, E, k, new Float64Array(E));
  });

  test("selecting again from the lists after a price change is exact", () => {
    const rng = new Rng(13);
    for (
      const [tokens, E, k, size] of [
        [200, 13, 4, 0.05],
        [300, 64, 8, 0.02],
        [300, 64, 8, 0.5],
        [120, 70, 30, 0.1],
      ]
    ) {
      const { s, q } = instance(rng, tokens, E, k);
      let sel = selectRows(s, tokens, E, k, q);
      // Three rounds of random moves, some large (the lists grow stale).
      for (let round = 0; round < 3; round++) {
        const old = q.slice();
        for (let j = 0; j < E; j++) {
          // Steps on the score grid make ties with the old values.
          q[j] += Math.round((rng.uniform() - 0.5) * size * 16) / 16;
        }
        sel = reselectRows(s, tokens, E, k, sel, old, q);
        check(s, tokens, E, k, q, sel);
      }
    }
  });
});
