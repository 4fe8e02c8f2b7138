import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { route } from "./route.ts";
import {
  routeParallel,
  type RouteParallelOptions,
  sharedRouting,
  sharedScores,
} from "./route_parallel.ts";
import { Rng } from "../scores/rng.ts";
import { sharedWasmHeap } from "../wasm/runtime.ts";
import type { ScoreMatrix } from "../types.ts";

function fill(data: Float32Array, rng: Rng, ties: boolean, masked: number) {
  for (let i = 0; i < data.length; i++) {
    data[i] = ties ? Math.floor(rng.uniform() * 4) / 4 : rng.uniform();
    if (rng.uniform() < masked) data[i] = -Infinity;
  }
}

describe("routeParallel", () => {
  test("gives route()'s answers bit for bit, on shared and plain scores, with the wasm and TypeScript rows", () => {
    const rng = new Rng(5);
    // 2101 x 37 = 77737 scores: above the parallel threshold, rows not a
    // multiple of the thread count.
    const cases = [
      { ties: true, masked: 0.2, k: 3, bias: undefined, threads: 2 },
      { ties: false, masked: 0, k: 8, bias: "add", threads: 3 },
      { ties: true, masked: 0.5, k: 1, bias: "multiply", threads: 2 },
      { ties: false, masked: 0.1, k: 37, bias: "add", threads: 1 },
    ] as const;
    for (const c of cases) {
      const s = sharedScores(2101, 37);
      fill(s.data, rng, c.ties, c.masked);
      const bias = c.bias === undefined ? undefined : Array.from(
        { length: 37 },
        () =>
          Math.floor(rng.uniform() * 5) / 8 +
          (c.bias === "multiply" ? 0.5 : -0.25),
      );
      const options = {
        k: c.k,
        bias,
        biasMode: c.bias ?? "add",
        normalize: c.ties,
        scale: c.ties ? 2.5 : 1,
      } as const;
      // The reference: the TypeScript kernel on one thread.
      const want = route(s, { ...options, host: "cpu" });
      for (const scores of [s, { ...s, data: Float32Array.from(s.data) }]) {
        for (const host of ["wasm", "cpu"] as const) {
          const got = routeParallel(scores, {
            ...options,
            threads: c.threads,
            host,
          });
          assert.deepEqual(got.experts, want.experts, host);
          assert.deepEqual(got.weights, want.weights, host);
          assert.deepEqual(got.loads, want.loads, host);
        }
      }
    }
  });

  test("group-limited routing and small batches match route()", () => {
    const rng = new Rng(6);
    const s = sharedScores(3000, 32);
    fill(s.data, rng, false, 0);
    const bias = Array.from({ length: 32 }, () => rng.uniform() * 0.01);
    for (
      const options of [
        { k: 4, groups: 8, topGroups: 2 },
        { k: 3, groups: 4, topGroups: 1, bias, normalize: true, scale: 2.5 },
        { k: 4, groups: 8, topGroups: 2, bias, groupScore: "v2" as const },
        { k: 4, groups: 4, topGroups: 3, groupScore: "v3" as const },
      ]
    ) {
      const want = route(s, { ...options, host: "cpu" });
      for (const host of ["wasm", "cpu"] as const) {
        const got = routeParallel(s, { ...options, threads: 2, host });
        assert.deepEqual(got.experts, want.experts, host);
        assert.deepEqual(got.weights, want.weights, host);
        assert.deepEqual(got.loads, want.loads, host);
      }
    }
    const small = { data: s.data.slice(0, 10 * 32), tokens: 10, experts: 32 };
    assert.deepEqual(
      routeParallel(small, { k: 2 }).loads,
      route(small, { k: 2 }).loads,
    );
  });

  test("rejects bad input like route()", () => {
    const s = sharedScores(2, 3);
    assert.throws(() => routeParallel(s, { k: 4 }), RangeError);
    assert.throws(() => routeParallel(s, { k: 1, threads: 0 }), RangeError);
    assert.throws(() => routeParallel(s, { k: 1, bias: [0] }), TypeError);
    assert.throws(() => sharedScores(-1, 3), RangeError);
  });
});

describe("NaN and +Infinity scores, found while routing", () => {
  // Rows late in the batch go through the kernel's candidate filter, early
  // ones through the full scan: plant bad values in both, at the start of
  // a row (inside the first k) and later in it, with and without a bias.
  const tokens = 4096, experts = 64, k = 6;
  const rng = new Rng(17);
  const base = sharedScores(tokens, experts);
  for (let i = 0; i < base.data.length; i++) base.data[i] = rng.uniform();
  const bias = Array.from({ length: experts }, () => rng.uniform() * 0.01);
  const cases: [number, number, number][] = [];
  for (const token of [0, 3, 2000, 4095]) {
    for (const expert of [0, 2, 40, 63]) {
      for (const value of [NaN, Infinity]) cases.push([token, expert, value]);
    }
  }
  test("route() and routeParallel() name the token and expert", () => {
    for (const [token, expert, value] of cases) {
      const s = sharedScores(tokens, experts);
      s.data.set(base.data);
      s.data[token * experts + expert] = value;
      const message = new RegExp(
        `value at token ${token}, expert ${expert} is ${value}`,
      );
      for (
        const options of [
          { k },
          { k, bias },
          {
            k,
            bias: bias.map((b) => 1 + b),
            biasMode: "multiply" as const,
          },
          { k, groups: 8, topGroups: 2 },
          {
            k,
            bias,
            groups: 4,
            topGroups: 3,
          },
        ]
      ) {
        assert.throws(() => route(s, options), { name: "RangeError", message });
        assert.throws(() => routeParallel(s, { ...options, threads: 2 }), {
          name: "RangeError",
          message,
        });
      }
    }
  });

  test("-Infinity stays allowed", () => {
    const s = sharedScores(tokens, experts);
    s.data.set(base.data);
    for (let i = 0; i < tokens; i += 7) s.data[i * experts + 5] = -Infinity;
    const a = route(s, { k, bias });
    const b = routeParallel(s, { k, bias, threads: 2 });
    assert.deepEqual(b.experts, a.experts);
  });
});

describe("routeParallel on scores in the shared WebAssembly heap", () => {
  const heap = sharedWasmHeap();

  /** routeParallel against the TypeScript kernel on one thread, bit for bit. */
  function same(s: ScoreMatrix, options: RouteParallelOptions, note: string) {
    const want = route(s, { ...options, host: "cpu" });
    const got = routeParallel(s, { ...options, host: "wasm" });
    assert.deepEqual(got.experts, want.experts, note);
    assert.deepEqual(got.weights, want.weights, note);
    assert.deepEqual(got.loads, want.loads, note);
  }

  test("sharedScores allocates there, routed in place like route()", () => {
    assert.ok(heap, "Deno and Bun have shared WebAssembly memory");
    const rng = new Rng(23);
    // Rows not a multiple of the blocks claimed (1024), experts not of
    // the SIMD width; ties and -Infinity.
    for (const [tokens, experts] of [[5003, 37], [2500, 64], [1031, 256]]) {
      const s = sharedScores(tokens, experts);
      assert.ok(heap.holds(s.data.buffer), "in the heap");
      assert.ok(s.data.byteOffset > 0 && s.data.buffer.byteLength > 0);
      fill(s.data, rng, tokens === 2500, 0.05);
      const bias = Array.from({ length: experts }, () => rng.uniform() * 0.02);
      const factor = bias.map((b) => 1 + b);
      const size = `${tokens} x ${experts}`;
      for (const threads of [2, 3]) {
        same(s, { k: 8, bias, threads }, `${size} add, ${threads} threads`);
        same(
          s,
          { k: 5, bias: factor, biasMode: "multiply", threads },
          `${size} multiply`,
        );
        same(
          s,
          { k: 3, normalize: true, scale: 2.5, threads },
          `${size} unbiased, normalized`,
        );
      }
      if (experts % 8 === 0) {
        same(s, { k: 8, bias, groups: 8, topGroups: 4, threads: 2 }, size);
        same(s, { k: 4, groups: 4, topGroups: 1, threads: 2 }, size);
        same(
          s,
          { k: 6, bias, groups: 8, topGroups: 3, groupScore: "v2", threads: 2 },
          size,
        );
      }
    }
  });

  test("calls reuse the heap and free their regions; a later matrix shares nothing with a live one", () => {
    const rng = new Rng(29);
    const first = sharedScores(3000, 48);
    fill(first.data, rng, false, 0);
    const copy = Float32Array.from(first.data);
    const options = { k: 6, bias: Array(48).fill(0.01), threads: 2 };
    same(first, options, "before");
    const used = heap!.used();
    routeParallel(first, options);
    assert.equal(heap!.used(), used, "a call's regions are freed");
    assert.deepEqual(first.data, copy, "the scores are read, not written");
    same(first, { ...options, groups: 8, topGroups: 2 }, "grouped");
    // A later matrix reuses nothing of the earlier ones while they live.
    const later = sharedScores(3000, 48);
    later.data.set(first.data);
    later.data[7] = Infinity;
    assert.throws(() => routeParallel(later, options), {
      name: "RangeError",
      message: /value at token 0, expert 7 is Infinity/,
    });
    same(first, options, "the first, unchanged");
  });

  test("an out from sharedRouting is written in place, route()'s answers, batch after batch", () => {
    const rng = new Rng(37);
    const tokens = 4100, experts = 64;
    const out = sharedRouting(tokens, 8, experts);
    assert.ok(
      heap!.holds(out.experts.buffer) && heap!.holds(out.weights.buffer),
    );
    const { experts: e, weights: w } = out;
    const used = heap!.used();
    for (
      const [b, options] of [
        [0, { k: 8, threads: 2 }],
        [1, { k: 8, groups: 8, topGroups: 4, threads: 3 }],
        [2, { k: 8, normalize: true, threads: 2 }],
      ] as const
    ) {
      const s = sharedScores(tokens, experts);
      fill(s.data, rng, b === 1, 0.05);
      const bias = Array.from({ length: experts }, () => rng.uniform() * 0.02);
      const want = route(s, { ...options, bias, host: "cpu" });
      // Stale numbers from the batch before must all be overwritten.
      const got = routeParallel(s, { ...options, bias, out });
      assert.equal(got, out);
      assert.equal(out.experts, e, "the same arrays");
      assert.equal(out.weights, w);
      assert.deepEqual(got.experts, want.experts, `batch ${b}`);
      assert.deepEqual(got.weights, want.weights, `batch ${b}`);
      assert.deepEqual(got.loads, want.loads, `batch ${b}`);
      // The batches' scores are the only regions the calls leave.
      assert.equal(heap!.used(), used + (b + 1) * 4 * tokens * experts);
    }
    // On plain scores the same out is filled by copies.
    const plain = { data: new Float32Array(tokens * experts), tokens, experts };
    fill(plain.data, rng, false, 0);
    const want = route(plain, { k: 8, host: "cpu" });
    routeParallel(plain, { k: 8, threads: 2, out });
    assert.deepEqual(out.experts, want.experts);
    assert.deepEqual(out.weights, want.weights);
  });

  test("the lowest bad index of the first bad row, whichever thread meets it", () => {
    const rng = new Rng(31);
    const s = sharedScores(8192, 32);
    fill(s.data, rng, false, 0);
    // Two bad rows in different blocks of 1024 rows, two bad entries in
    // the first: the lowest of row 5000 is reported.
    s.data[7000 * 32 + 1] = NaN;
    s.data[5000 * 32 + 30] = Infinity;
    s.data[5000 * 32 + 9] = NaN;
    for (const options of [{ k: 4 }, { k: 4, groups: 4, topGroups: 2 }]) {
      assert.throws(() => routeParallel(s, { ...options, threads: 2 }), {
        name: "RangeError",
        message: /value at token 5000, expert 9 is NaN/,
      });
    }
  });
});
