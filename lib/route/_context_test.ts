import { test } from "node:test";
import assert from "node:assert/strict";
import { createBalancer } from "./registry.ts";
import { lossFree } from "./loss_free.ts";
import { bip } from "./bip.ts";
import { quantile } from "./quantile.ts";
import { BALANCERS } from "./registry.ts";
import type { ScoreMatrix } from "../types.ts";

function scores(tokens: number, experts: number): ScoreMatrix {
  const data = new Float32Array(tokens * experts);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 37) % 11) / 11;
  return { data, tokens, experts };
}

const ctx = { layers: 2, experts: 8, k: 2 };

test("balancers built for 8 experts refuse a 4-expert batch, naming the count", () => {
  for (const b of [lossFree(ctx), bip(ctx), quantile(ctx)]) {
    assert.throws(
      () => b.route(0, scores(16, 4)),
      (e: Error) =>
        e instanceof RangeError &&
        /scores must have the 8 experts/.test(e.message) &&
        /current value has 4/.test(e.message),
      b.name,
    );
    // The right width still routes: the check refuses only what is wrong.
    const r = b.route(1, scores(16, 8));
    assert.equal(r.loads.length, 8);
    assert.equal(r.loads.reduce((a, x) => a + x, 0), 16 * 2);
  }
});

test("every registered balancer refuses a layer out of range in route, update and biases", () => {
  for (const name of Object.keys(BALANCERS)) {
    const b = createBalancer(name, ctx);
    const s = scores(16, 8);
    const r = b.route(0, s);
    for (const layer of [2, -1, 0.5, NaN]) {
      const re = (e: Error) =>
        e instanceof RangeError &&
        new RegExp(
          `^layer must be an integer in \\[0, 2\\).*current value is ${layer}$`,
        ).test(e.message);
      assert.throws(() => b.route(layer, s), re, `${name} route ${layer}`);
      assert.throws(() => b.update(layer, s, r), re, `${name} update ${layer}`);
      assert.throws(() => b.biases(layer), re, `${name} biases ${layer}`);
    }
    // The last layer in range works.
    assert.equal(b.biases(1).length, 8, name);
  }
});

test("update refuses a routing of another expert count", () => {
  const b = lossFree(ctx);
  const small = lossFree({ layers: 1, experts: 4, k: 2 });
  const r4 = small.route(0, scores(8, 4));
  assert.throws(
    () => b.update(0, scores(8, 8), r4),
    /routing must count the 8 experts.*current value has 4/,
  );
  // Biases are untouched by the refused update.
  assert.deepEqual([...b.biases(0)], new Array(8).fill(0));
});
