import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Rng, zipfCdf } from "./rng.ts";

describe("Rng", () => {
  test("same seed, same sequence; other seed, other sequence", () => {
    const a = new Rng(123), b = new Rng(123), c = new Rng(124);
    const xa = Array.from({ length: 5 }, () => a.nextU32());
    assert.deepEqual(xa, Array.from({ length: 5 }, () => b.nextU32()));
    assert.notDeepEqual(xa, Array.from({ length: 5 }, () => c.nextU32()));
  });

  test("distinct seeds start distinct sequences: negative, fractional and past 2^32 too", () => {
    // These all folded onto seed 0 or 1 (low word XOR high word, the
    // fraction dropped).
    const seeds = [
      0,
      1,
      -1,
      1.5,
      2 ** 32,
      2 ** 32 + 1,
      2 ** 33 + 2,
      -(2 ** 32),
    ];
    const firsts = seeds.map((s) => {
      const r = new Rng(s);
      return Array.from({ length: 4 }, () => r.nextU32()).join(",");
    });
    assert.equal(new Set(firsts).size, seeds.length, firsts.join(" | "));
    // Integer seeds below 2^32 keep their sequences: SplitMix32 from the
    // seed, whose second output is the state's second word, and
    // xoshiro128**'s first draw rotl(b * 5, 7) * 9 of it (seed 0, by hand).
    let z = (0x9e3779b9 * 2) | 0;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    const second = (z ^ (z >>> 16)) | 0;
    const m = Math.imul(second, 5);
    assert.equal(
      new Rng(0).nextU32(),
      Math.imul((m << 7) | (m >>> 25), 9) >>> 0,
    );
  });
  test("uniform draws have mean 1/2 and variance 1/12", () => {
    const r = new Rng(1);
    const n = 200_000;
    let s = 0, ss = 0;
    for (let i = 0; i < n; i++) {
      const u = r.uniform();
      assert.ok(u >= 0 && u < 1);
      s += u;
      ss += u * u;
    }
    const mean = s / n, variance = ss / n - mean * mean;
    // standard error of the mean: sqrt(1/12/n) = 6.5e-4
    assert.ok(Math.abs(mean - 0.5) < 4e-3, `mean ${mean}`);
    assert.ok(Math.abs(variance - 1 / 12) < 2e-3, `variance ${variance}`);
  });

  test("normal draws have mean 0, variance 1 and 95% inside 1.96", () => {
    const r = new Rng(2);
    const n = 200_000;
    let s = 0, ss = 0, inside = 0;
    for (let i = 0; i < n; i++) {
      const z = r.normal();
      s += z;
      ss += z * z;
      if (Math.abs(z) < 1.959964) inside++;
    }
    assert.ok(Math.abs(s / n) < 0.01);
    assert.ok(Math.abs(ss / n - 1) < 0.015);
    assert.ok(Math.abs(inside / n - 0.95) < 0.003);
  });

  test("int is uniform over [0, n)", () => {
    const r = new Rng(3);
    const counts = new Array(7).fill(0);
    for (let i = 0; i < 70_000; i++) counts[r.int(7)]++;
    for (const c of counts) assert.ok(Math.abs(c - 10_000) < 500, `count ${c}`);
    assert.throws(() => r.int(0), RangeError);
  });

  test("zipf frequencies follow i^-s", () => {
    const r = new Rng(4);
    const n = 100_000;
    const counts = new Array(5).fill(0);
    for (let i = 0; i < n; i++) counts[r.zipf(5, 1) - 1]++;
    const h = 1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5;
    counts.forEach((c, i) => {
      const p = 1 / (i + 1) / h;
      assert.ok(Math.abs(c / n - p) < 0.006, `rank ${i + 1}: ${c / n} vs ${p}`);
    });
    const cdf = zipfCdf(3, 2);
    const z = 1 + 1 / 4 + 1 / 9;
    assert.ok(Math.abs(cdf[0] - 1 / z) < 1e-15);
    assert.equal(cdf[2], 1);
  });

  test("shuffle is a permutation", () => {
    const a = new Rng(5).shuffle(Int32Array.from({ length: 50 }, (_, i) => i));
    assert.deepEqual(
      [...a].sort((x, y) => x - y),
      Array.from({ length: 50 }, (_, i) => i),
    );
  });
});
