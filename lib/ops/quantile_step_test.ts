import { test } from "node:test";
import assert from "node:assert/strict";
import { routeKeepingNext } from "./quantile_step.ts";
import { dualScratch } from "./_dual.ts";
import { createRouting } from "../select/routing.ts";
import { Rng } from "../scores/rng.ts";

// The definition row by row: keys s - q sorted by value, ties to the lower
// expert; the first k routed, the (k+1)-th kept (its own zero's sign).
function expected(
  data: Float32Array,
  N: number,
  E: number,
  k: number,
  q: Float64Array,
) {
  const experts: number[] = [], next: number[] = [];
  for (let i = 0; i < N; i++) {
    const keys = Array.from({ length: E }, (_, j) => data[i * E + j] - q[j]);
    const order = keys.map((_, j) => j).sort((a, b) =>
      keys[a] === keys[b] ? a - b : keys[b] - keys[a]
    );
    experts.push(...order.slice(0, k));
    next.push(keys[order[k]]);
  }
  return { experts, next };
}

test("routeKeepingNext: the top k and the (k+1)-th key of s - q, ties to the lower expert", () => {
  const rng = new Rng(21);
  for (const [N, E, k] of [[300, 7, 2], [500, 64, 8], [200, 33, 6]]) {
    const scratch = dualScratch(N, E, k);
    for (let step = 0; step < 3; step++) {
      // Few levels: many ties, zeros of both signs, some -Infinity.
      const data = Float32Array.from({ length: N * E }, () => {
        const u = rng.int(9);
        return u === 0 ? -Infinity : u === 1 ? -0 : (u - 4) / 8;
      });
      const q = Float64Array.from({ length: E }, () => (rng.int(5) - 2) / 8);
      if (step === 2) {
        // Prices that are not finite (rowTop's steps, not the route op's
        // rows): keys of -Infinity and +Infinity, the latter on a column
        // without -Infinity scores (no NaN key).
        q[0] = Infinity;
        q[E - 1] = -Infinity;
        for (let i = 0; i < N; i++) {
          if (data[i * E + E - 1] === -Infinity) data[i * E + E - 1] = 0;
        }
      }
      const out = createRouting(N, k, E);
      const stats = Float64Array.from(scratch.filter.stats);
      routeKeepingNext(
        { data, tokens: N, experts: E },
        k,
        q,
        out,
        scratch,
        true,
      );
      const want = expected(data, N, E, k, q);
      assert.deepEqual([...out.experts], want.experts);
      for (let i = 0; i < N; i++) {
        assert.ok(Object.is(scratch.p[i], want.next[i]), `row ${i}`);
      }
      const loads = new Array(E).fill(0);
      for (const j of want.experts) loads[j]++;
      assert.deepEqual([...out.loads], loads);
      // The row filter's numbers follow the (k+1)-th keys (finite ones),
      // mean and mean deviation at rate 1/16.
      for (const v of want.next) {
        if (!Number.isFinite(v)) continue;
        if (Number.isNaN(stats[0])) stats[0] = v;
        const d = v - stats[0];
        stats[0] += d / 16;
        stats[1] += (Math.abs(d) - stats[1]) / 16;
      }
      assert.deepEqual([...scratch.filter.stats], [...stats]);
    }
  }
});

test("routeKeepingNext: a NaN score is a RangeError naming its index", () => {
  const N = 50, E = 9, k = 3;
  const data = Float32Array.from({ length: N * E }, (_, i) => (i % 7) / 7);
  data[20 * E + 6] = NaN;
  data[20 * E + 4] = Infinity;
  assert.throws(
    () =>
      routeKeepingNext(
        { data, tokens: N, experts: E },
        k,
        new Float64Array(E),
        createRouting(N, k, E),
        dualScratch(N, E, k),
        false,
      ),
    (e: Error) =>
      e instanceof RangeError &&
      e.message.endsWith("token 20, expert 4 is Infinity"),
  );
});
