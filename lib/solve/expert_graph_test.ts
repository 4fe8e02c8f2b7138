// The table of cheapest moves against a brute-force twin, through random
// token moves: every known cost and second cost is the true one, every
// stale cost and unknown second is a lower bound of the true one, and the
// token behind a known cost can make that move.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../scores/rng.ts";
import {
  buildExpertGraph,
  type ExpertGraph,
  moveCost,
  moveToken,
} from "./_expert_graph.ts";
import { selectRows } from "./_row_select.ts";

/** The two cheapest moves a -> b over the current holders, by brute force. */
function twin(g: ExpertGraph, a: number, b: number): [number, number] {
  const E = g.experts;
  const holds = (i: number, j: number) =>
    g.slots.subarray(i * g.k, (i + 1) * g.k).includes(j);
  let first = Infinity, second = Infinity;
  for (let i = 0; i < g.tokens; i++) {
    if (!holds(i, a) || holds(i, b) || g.s[i * E + b] === -Infinity) continue;
    const c = g.s[i * E + a] - g.s[i * E + b];
    if (c < first) [first, second] = [c, first];
    else if (c < second) second = c;
  }
  return [first, second];
}

function checkTable(g: ExpertGraph): void {
  const E = g.experts;
  for (let a = 0; a < E; a++) {
    for (let b = 0; b < E; b++) {
      const pair = a * E + b;
      const [first, second] = twin(g, a, b);
      if (g.stale[pair]) {
        assert.ok(g.cost[pair] <= first, `stale bound of ${a} -> ${b}`);
        continue;
      }
      assert.equal(g.cost[pair], first, `cost of ${a} -> ${b}`);
      if (first < Infinity) {
        const i = g.arg[pair];
        assert.equal(g.s[i * E + a] - g.s[i * E + b], first);
      }
      if (g.arg2[pair] >= 0) {
        assert.equal(g.cost2[pair], second, `second cost of ${a} -> ${b}`);
      } else {
        assert.ok(g.cost2[pair] <= second, `second bound of ${a} -> ${b}`);
      }
      assert.ok(g.cost2[pair] >= g.cost[pair]);
    }
  }
}

/** Random scores with ties and masked pairs, and a random starting price. */
function randomGraph(rng: Rng, tokens: number, E: number, k: number) {
  const s = new Float32Array(tokens * E);
  for (let x = 0; x < s.length; x++) {
    const u = rng.uniform();
    s[x] = rng.uniform() < 0.05 ? -Infinity : Math.round(u * 16) / 16;
  }
  // Every token keeps k + 1 unmasked experts.
  for (let i = 0; i < tokens; i++) {
    for (let j = 0; j <= k; j++) {
      if (s[i * E + j] === -Infinity) s[i * E + j] = 0.5;
    }
  }
  const q = Float64Array.from({ length: E }, () => rng.uniform() * 0.3);
  const capacity = Math.ceil((tokens * k) / E) + tokens;
  return buildExpertGraph(
    s,
    tokens,
    E,
    k,
    selectRows(s, tokens, E, k, q),
    capacity,
    q,
  );
}

describe("expert graph", () => {
  test("the pruned build is exact or a lower bound, pair by pair", () => {
    const rng = new Rng(3);
    for (const [tokens, E, k] of [[40, 6, 2], [120, 9, 3], [200, 12, 4]]) {
      checkTable(randomGraph(rng, tokens, E, k));
    }
  });

  test("stays exact or a lower bound through 300 random moves", () => {
    const rng = new Rng(4);
    const g = randomGraph(rng, 60, 7, 3);
    const E = g.experts;
    for (let step = 0; step < 300; step++) {
      const i = rng.int(g.tokens);
      const a = g.slots[i * g.k + rng.int(g.k)];
      const b = rng.int(E);
      const held = g.slots.subarray(i * g.k, (i + 1) * g.k).includes(b);
      if (held || g.s[i * E + b] === -Infinity) continue;
      moveToken(g, i, a, b);
      // Recompute a few pairs, as the solver does where a bound is short.
      for (let r = 0; r < 3; r++) moveCost(g, rng.int(E), rng.int(E));
      checkTable(g);
    }
    // The holder lists follow the moves.
    for (let j = 0; j < E; j++) {
      const mine = g.holders.subarray(g.first[j], g.first[j] + g.loads[j]);
      const held = [...mine].sort((x, y) => x - y);
      const twinHeld = [];
      for (let i = 0; i < g.tokens; i++) {
        if (g.slots.subarray(i * g.k, (i + 1) * g.k).includes(j)) {
          twinHeld.push(i);
        }
      }
      assert.deepEqual(held, twinHeld);
      for (let h = g.first[j]; h < g.first[j] + g.loads[j]; h++) {
        assert.equal(g.held[h], g.s[g.holders[h] * E + j]);
      }
      // Each slot's place among its expert's holders.
      for (let x = 0; x < g.slots.length; x++) {
        const e = g.slots[x];
        assert.equal(g.holders[g.first[e] + g.where[x]], Math.floor(x / g.k));
      }
    }
  });
});
