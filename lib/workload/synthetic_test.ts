import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  normalQuantile,
  type SyntheticOptions,
  syntheticWorkload,
} from "./synthetic.ts";
import { GATES } from "../scores/gate.ts";
import { wasmRuntime } from "../wasm/runtime.ts";
import { replayWorkload } from "./replay.ts";
import { route } from "../route/route.ts";
import { maxVio } from "../metrics/load_metrics.ts";

describe("syntheticWorkload", () => {
  test("same seed gives identical scores, in any access order", () => {
    const a = syntheticWorkload({
      steps: 5,
      layers: 2,
      tokens: 64,
      experts: 8,
      seed: 7,
    });
    const b = syntheticWorkload({
      steps: 5,
      layers: 2,
      tokens: 64,
      experts: 8,
      seed: 7,
    });
    const late = Float32Array.from(a.scores(4, 1).data);
    b.scores(0, 0);
    assert.deepEqual(Float32Array.from(b.scores(4, 1).data), late);
    assert.deepEqual(
      Float32Array.from(a.scores(0, 0).data),
      Float32Array.from(b.scores(0, 0).data),
    );
    const c = syntheticWorkload({
      steps: 5,
      layers: 2,
      tokens: 64,
      experts: 8,
      seed: 8,
    });
    assert.notDeepEqual(Float32Array.from(c.scores(4, 1).data), late);
  });

  test("scores are sigmoid outputs in (0, 1), softmax rows sum to 1", () => {
    const s = syntheticWorkload({
      steps: 1,
      layers: 1,
      tokens: 32,
      experts: 16,
    }).scores(0, 0);
    assert.ok(s.data.every((v) => v > 0 && v < 1));
    const p = syntheticWorkload({
      steps: 1,
      layers: 1,
      tokens: 32,
      experts: 16,
      gate: "softmax",
    })
      .scores(0, 0);
    for (let i = 0; i < 32; i++) {
      const row = p.data.subarray(i * 16, i * 16 + 16).reduce(
        (a, b) => a + b,
        0,
      );
      assert.ok(Math.abs(row - 1) < 1e-5);
    }
  });

  test("defaults make greedy top-6 of 64 clearly imbalanced; no skew makes it balanced", () => {
    const skewed = syntheticWorkload({ steps: 1, layers: 2, tokens: 4096 });
    const flat = syntheticWorkload({
      steps: 1,
      layers: 2,
      tokens: 4096,
      zipf: 0,
      popularity: 0,
      affinity: 0,
    });
    for (let l = 0; l < 2; l++) {
      assert.ok(maxVio(route(skewed.scores(0, l), { k: 6 }).loads) > 0.5);
      assert.ok(maxVio(route(flat.scores(0, l), { k: 6 }).loads) < 0.3);
    }
  });

  test("drift changes the token mix over steps; zero drift keeps its distribution", () => {
    const loads = (drift: number, step: number) => {
      const w = syntheticWorkload({
        steps: 400,
        layers: 1,
        tokens: 8192,
        drift,
        seed: 3,
      });
      return route(w.scores(step, 0), { k: 6 }).loads;
    };
    const dist = (a: Int32Array, b: Int32Array) =>
      a.reduce((s, v, j) => s + Math.abs(v - b[j]), 0) / (8192 * 6);
    const still = dist(loads(0, 0), loads(0, 399));
    const moving = dist(loads(0.1, 0), loads(0.1, 399));
    assert.ok(moving > 3 * still, `drift 0.1: ${moving}, drift 0: ${still}`);
  });

  test("normal quantiles match published values", () => {
    assert.ok(Math.abs(normalQuantile(0.975) - 1.959963985) < 1e-8);
    assert.ok(Math.abs(normalQuantile(0.5)) < 1e-12);
    assert.ok(Math.abs(normalQuantile(0.001) + 3.090232306) < 1e-8);
  });

  test("rejects bad sizes", () => {
    assert.throws(() => syntheticWorkload({ tokens: -5 }), {
      name: "RangeError",
      message: /tokens must be an integer of at least 1: current value is -5/,
    });
    assert.throws(() => syntheticWorkload({ experts: 2.5 }), RangeError);
    const w = syntheticWorkload({ steps: 2, layers: 1, tokens: 4, experts: 4 });
    assert.throws(() => w.scores(2, 0), RangeError);
  });

  test("a seed must be an integer: 1.5 gave seed 1's scores (the hash drops fractions)", () => {
    const sizes = { steps: 1, layers: 1, tokens: 16, experts: 8 };
    assert.throws(() => syntheticWorkload({ ...sizes, seed: 1.5 }), {
      name: "RangeError",
      message:
        "seed must be an integer in [-(2^53 - 1), 2^53 - 1]: current value is 1.5",
    });
    assert.throws(
      () => syntheticWorkload({ ...sizes, seed: 2 ** 53 }),
      RangeError,
    );
    // Negative and large integer seeds are seeds of their own.
    const first = (seed: number) =>
      [...syntheticWorkload({ ...sizes, seed }).scores(0, 0).data].join();
    const all = [1, -1, 0, 2 ** 32, 2 ** 53 - 1].map(first);
    assert.equal(new Set(all).size, all.length);
  });
});

describe("syntheticWorkload: WebAssembly and TypeScript hosts", () => {
  // The presets with a synthetic workload, as the simulator builds it
  // (lib/sim/prepare_run.ts), at fewer tokens; DeepSeek-V3's also at full
  // size for one batch.
  const presets = [
    "deepseek-v3",
    "default",
    "microbatch-balance",
    "precision-pitfalls",
  ].map((name) => {
    const p = JSON.parse(
      readFileSync(
        new URL(`../../data/presets/${name}.json`, import.meta.url),
        "utf8",
      ),
    );
    const { kind: _kind, ...workload } = p.workload ?? {};
    return {
      name,
      options: {
        ...workload,
        seed: p.seed ?? 1,
        experts: p.experts ?? 64,
        gate: p.gate ?? "sigmoid",
        tokens: Math.min(p.tokens ?? 4096, 777),
        layers: 3,
        steps: 6,
      } as SyntheticOptions,
    };
  });

  /** Both hosts' scores at `cells` (step, layer), compared bit for bit. */
  function same(options: SyntheticOptions, cells: number[][], what: string) {
    const cpu = syntheticWorkload({ ...options, host: "cpu" });
    const wasm = syntheticWorkload({ ...options, host: "wasm" });
    for (const [step, layer] of cells) {
      const a = cpu.scores(step, layer).data;
      const b = wasm.scores(step, layer).data;
      assert.equal(a.length, b.length);
      for (let i = 0; i < a.length; i++) {
        if (!Object.is(a[i], b[i])) {
          assert.fail(
            `${what}, step ${step}, layer ${layer}, entry ${i}: cpu ${
              a[i]
            }, wasm ${b[i]}`,
          );
        }
      }
    }
    assert.deepEqual(cpu.describe(), wasm.describe());
  }

  test("every preset, every gate, several seeds: identical scores", () => {
    assert.ok(wasmRuntime(), "this engine runs WebAssembly SIMD");
    const cells = [[0, 0], [0, 2], [3, 1], [5, 2], [1, 0]];
    for (const { name, options } of presets) {
      for (const gate of GATES) {
        for (const seed of [options.seed ?? 1, 7, 4294967295, -3, 2 ** 40]) {
          same(
            { ...options, gate, seed },
            cells,
            `${name}, ${gate}, seed ${seed}`,
          );
        }
      }
    }
  });

  test("odd widths and heights, no noise, large noise", () => {
    for (
      const [tokens, experts, noise] of [
        [1, 1, 1],
        [3, 5, 1],
        [65, 7, 1],
        [200, 250, 1],
        [90, 513, 0],
        [64, 16, 40],
        // Products with 53 significant bits: centre + product rounds.
        [130, 64, 0.3],
        [33, 9, 0.7],
      ]
    ) {
      for (const gate of GATES) {
        same(
          { tokens, experts, noise, gate, steps: 2, layers: 2, seed: 3 },
          [[0, 0], [1, 1]],
          `${tokens} x ${experts}, noise ${noise}, ${gate}`,
        );
      }
    }
  });

  test("DeepSeek-V3's full batch (16384 x 256, sigmoid)", () => {
    const v3 = presets[0].options;
    same(
      { ...v3, tokens: 16384, steps: 2, layers: 2 },
      [[1, 1]],
      "deepseek-v3",
    );
  });

  test("rejects an unknown host", () => {
    assert.throws(
      () => syntheticWorkload({ host: "gpu" as "cpu" }),
      (e: unknown) => e instanceof RangeError && /host/.test(String(e)),
    );
  });
});

describe("replayWorkload", () => {
  test("reads [steps, tokens, experts] and [steps, layers, tokens, experts]", () => {
    const three = replayWorkload({
      shape: [2, 1, 3],
      data: new Float32Array([0, 0, 0, 1, 2, 3]),
    });
    assert.equal(three.layers, 1);
    assert.ok(
      Math.abs(three.scores(1, 0).data[2] - 1 / (1 + Math.exp(-3))) < 1e-7,
    );
    const four = replayWorkload({
      shape: [1, 2, 1, 2],
      data: new Float32Array([0, 0, 5, 5]),
    }, "softmax");
    assert.equal(four.layers, 2);
    assert.deepEqual([...four.scores(0, 1).data], [0.5, 0.5]);
  });

  test("rejects other shapes and NaN", () => {
    assert.throws(
      () => replayWorkload({ shape: [4], data: new Float32Array(4) }),
      RangeError,
    );
    assert.throws(
      () =>
        replayWorkload({ shape: [1, 1, 2], data: new Float32Array([0, NaN]) }),
      { name: "RangeError", message: /NaN/ },
    );
  });

  test("+Infinity: a score of 1 by the sigmoid, an error naming it by the others", () => {
    const data = new Float32Array([0, 0, 1, -1, 2, Infinity]);
    const sig = replayWorkload({ shape: [3, 1, 2], data }, "sigmoid");
    assert.deepEqual([...sig.scores(2, 0).data], [
      Math.fround(1 / (1 + Math.exp(-2))),
      1,
    ]);
    for (const gate of ["softmax", "sqrtsoftplus"] as const) {
      assert.throws(() => replayWorkload({ shape: [3, 1, 2], data }, gate), {
        name: "RangeError",
        message: new RegExp(
          `^scores must not hold \\+Infinity with the ${gate} gate .*` +
            "value at batch 2, token 0, expert 1 is Infinity$",
        ),
      });
    }
    // -Infinity is a logit every gate takes (a score of 0).
    const minus = new Float32Array([0, -Infinity]);
    for (const gate of ["sigmoid", "softmax", "sqrtsoftplus"] as const) {
      const w = replayWorkload({ shape: [1, 1, 2], data: minus }, gate);
      assert.equal(w.scores(0, 0).data[1], 0);
    }
  });
});
