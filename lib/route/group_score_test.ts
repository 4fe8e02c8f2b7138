// Group scorings of group-limited routing against hand-worked cases:
// Megatron-Core's sum of the top floor(k / M), DeepSeek-V3's top 2 and
// DeepSeek-V2's maximum pick different groups on these rows.
import { test } from "node:test";
import assert from "node:assert/strict";
import { route } from "./route.ts";

const m = (data: number[], experts: number) => ({
  data: new Float32Array(data),
  tokens: data.length / experts,
  experts,
});

test("v2 keeps the group with the largest expert, megatron and v3 the larger top-2 sum", () => {
  // Groups {0, 1} and {2, 3}; k = 2 of 1 group: floor(2 / 1) = 2.
  // Top-2 sums 0.9 and 1.0; maxima 0.9 and 0.5.
  const s = m([0.9, 0, 0.5, 0.5], 4);
  const opts = { k: 2, groups: 2, topGroups: 1 } as const;
  assert.deepEqual([...route(s, opts).experts], [2, 3]);
  assert.deepEqual([...route(s, { ...opts, groupScore: "v3" }).experts], [
    2,
    3,
  ]);
  assert.deepEqual([...route(s, { ...opts, groupScore: "v2" }).experts], [
    0,
    1,
  ]);
});

test("v3 sums the top 2 where megatron sums the top floor(k / M) = 4", () => {
  // Groups of 4; top-4 sums 1.5 and 1.1, top-2 sums 1.0 and 1.1.
  const s = m([0.5, 0.5, 0.5, 0, 0.9, 0.2, 0, 0], 8);
  const opts = { k: 4, groups: 2, topGroups: 1 } as const;
  assert.deepEqual([...route(s, opts).experts], [0, 1, 2, 3]);
  assert.deepEqual(
    [...route(s, { ...opts, groupScore: "v3" }).experts],
    [4, 5, 6, 7],
  );
});

test("the group score sees the biased keys", () => {
  // Bias +0.5 on expert 0 lifts group 0's maximum to 1.4 over 1.0.
  const s = m([0.9, 0, 1.0, 0], 4);
  const opts = { k: 1, groups: 2, topGroups: 1, groupScore: "v2" } as const;
  assert.deepEqual([...route(s, opts).experts], [2]);
  assert.deepEqual([...route(s, { ...opts, bias: [0.5, 0, 0, 0] }).experts], [
    0,
  ]);
});

test("an unknown group score is a RangeError naming it", () => {
  assert.throws(
    () =>
      route(m([1, 0], 2), {
        k: 1,
        // deno-lint-ignore no-explicit-any
        groupScore: "v4" as any,
      }),
    /groupScore/,
  );
});
