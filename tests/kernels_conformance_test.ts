// Every WebGPU kernel against its CPU twin in lib/ on random inputs with
// ties, -Infinity (masked groups of experts) and sizes that are not
// multiples of the workgroup size; chunking forced by a small binding
// limit. Without an adapter the GPU tests are skipped with the reason,
// unless MOELAB_REQUIRE_GPU=1 (set by .ci/run): then they fail. Bun has no
// WebGPU, so under Bun they are skipped even then.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { acquireGpu, type Gpu } from "../kernels/device.ts";
import { routeOnGpu } from "../kernels/route_topk.ts";
import { lossFreeUpdateOnGpu } from "../kernels/bias_update.ts";
import { bipIterationOnGpu } from "../kernels/bip_iteration.ts";
import { sinkhornIterationOnGpu } from "../kernels/sinkhorn_iteration.ts";
import { readBack, storage } from "../kernels/program.ts";
import { routeF32 } from "../lib/route/_topk_f32.ts";
import { lossFreeUpdateF32 } from "../lib/route/_bias_update_f32.ts";
import { bipIterationF32 } from "../lib/route/_bip_iteration.ts";
import { sinkhornIteration } from "../lib/route/_sinkhorn_iteration.ts";
import { route } from "../lib/route/route.ts";
import { bipPrices } from "../lib/route/bip.ts";
import { Rng } from "../lib/scores/rng.ts";
import type { ScoreMatrix } from "../lib/types.ts";

const { gpu, reason } = await acquireGpu();
const isBun = "Bun" in globalThis;
const required = process.env.MOELAB_REQUIRE_GPU === "1" && !isBun;
if (!gpu) {
  console.log(
    `GPU conformance tests skipped: ${reason}${
      isBun && process.env.MOELAB_REQUIRE_GPU === "1"
        ? " (MOELAB_REQUIRE_GPU=1 does not apply under Bun)"
        : ""
    }`,
  );
}

/** Scores with ties (quantised values) and, per token, masked groups. */
function scores(rng: Rng, N: number, E: number, levels: number): ScoreMatrix {
  const data = new Float32Array(N * E);
  const group = Math.max(1, E >> 2);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < E; j++) {
      const u = rng.uniform();
      data[i * E + j] = levels ? Math.floor(u * levels) / levels : u;
    }
    // One token in five loses a group of experts (group-limited routing).
    if (rng.uniform() < 0.2 && E >= 4) {
      const g = rng.int(4);
      data.fill(-Infinity, i * E + g * group, i * E + (g + 1) * group);
    }
  }
  return { data, tokens: N, experts: E };
}

/** The device with a small binding limit, so inputs go in several chunks. */
function chunked(g: Gpu, bytes: number): Gpu {
  return { ...g, maxBinding: bytes };
}

function close(a: Float32Array, b: Float32Array, tol: number, what: string) {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    assert.ok(
      d <= tol * Math.max(1, Math.abs(b[i])),
      `${what}[${i}]: ${a[i]} vs ${b[i]}`,
    );
  }
}

describe("kernel twins", () => {
  test("the float32 routing twin equals route() when there is no bias", () => {
    const s = scores(new Rng(1), 300, 24, 8);
    const a = routeF32(s, 5, { normalize: true, scale: 2.5 });
    const b = route(s, { k: 5, normalize: true, scale: 2.5 });
    assert.deepEqual(a.experts, b.experts);
    assert.deepEqual(a.loads, b.loads);
    close(a.weights, b.weights, 1e-6, "weights");
  });

  test("the BIP twin equals bipPrices (one round) where float32 is exact", () => {
    // Dyadic scores and prices: s - q and s - p are exact in float32.
    const rng = new Rng(2);
    const s = scores(rng, 200, 16, 64);
    const q0 = new Float32Array(16).map(() => rng.int(8) / 64);
    const C = Math.ceil((200 * 3) / 16);
    const twin = bipIterationF32(s, q0, 3, C);
    const ref = bipPrices(s, { k: 3, capacity: C, T: 1, expertPrices: q0 });
    assert.deepEqual([...twin.q], [...ref.expertPrices]);
    assert.deepEqual([...twin.p], [...ref.tokenPrices]);
  });
});

describe(
  "WebGPU kernels against their CPU twins",
  { skip: !gpu && !required },
  () => {
    const need = (): Gpu => {
      if (!gpu) {
        throw new Error(
          `MOELAB_REQUIRE_GPU=1 but there is no adapter: ${reason}`,
        );
      }
      return gpu;
    };

    test("top-K routing: indices and loads identical, weights within 1e-6", async () => {
      const g = need();
      const rng = new Rng(3);
      const cases = [
        [1, 1, 1],
        [63, 7, 2],
        [65, 64, 6],
        [1000, 256, 8],
        [257, 37, 8],
        [130, 300, 12],
      ];
      for (const [N, E, k] of cases) {
        for (const mode of ["none", "add", "multiply"] as const) {
          const s = scores(rng, N, E, N % 2 ? 4 : 0);
          const bias = mode === "none" ? undefined : Array.from(
            { length: E },
            () => mode === "add" ? (rng.int(5) - 2) / 16 : 0.5 + rng.int(4) / 4,
          );
          const settings = {
            bias,
            multiply: mode === "multiply",
            normalize: mode !== "add",
            scale: mode === "add" ? 1 : 2.5,
          };
          const want = routeF32(s, k, settings);
          // Whole, and in chunks of 64 rows (bindings of 64 x E floats).
          for (const dev of [g, chunked(g, 4 * 64 * E)]) {
            const got = await routeOnGpu(dev, s, k, settings);
            const what = `${N}x${E} k=${k} ${mode}`;
            assert.deepEqual(got.experts, want.experts, what);
            assert.deepEqual(got.loads, want.loads, what);
            close(got.weights, want.weights, 1e-6, what);
          }
        }
      }
    });

    test("Loss-Free bias update: sign exact, proportional within 1e-6", async () => {
      const g = need();
      const rng = new Rng(4);
      for (const E of [1, 7, 256, 300]) {
        for (const rule of ["sign", "proportional"] as const) {
          const loads = Int32Array.from({ length: E }, () => rng.int(50));
          loads[0] = 10; // an expert exactly at the mean when E = 1
          const bias = new Float32Array(E).map(() => (rng.int(9) - 4) * 1e-3);
          const buf = storage(g, "test bias", 4 * E, bias);
          lossFreeUpdateOnGpu(g, buf, loads, 1e-3, rule);
          const got = new Float32Array(await readBack(g, buf, 4 * E));
          g.pool.release(buf);
          lossFreeUpdateF32(bias, loads, 1e-3, rule);
          if (rule === "sign") assert.deepEqual(got, bias);
          else close(got, bias, 1e-6, `proportional E=${E}`);
        }
      }
    });

    test("BIP iteration: token and expert prices bit for bit", async () => {
      const g = need();
      const rng = new Rng(5);
      for (
        const [N, E, k, cf] of [[1001, 37, 3, 1], [130, 64, 8, 1.5], [
          65,
          8,
          8,
          1,
        ], [50, 16, 2, 9]]
      ) {
        const s = scores(rng, N, E, N % 2 ? 16 : 0);
        let q: Float32Array = new Float32Array(E).map(() => rng.int(4) / 64);
        const C = Math.ceil((N * k * cf) / E);
        for (let t = 0; t < 2; t++) {
          const want = bipIterationF32(s, q, k, C);
          for (const dev of [g, chunked(g, 4 * 64 * E)]) {
            const got = await bipIterationOnGpu(dev, s, q, k, C);
            assert.deepEqual(got.p, want.p, `p ${N}x${E}`);
            assert.deepEqual(got.q, want.q, `q ${N}x${E}`);
          }
          q = want.q;
        }
      }
    });

    test("Sinkhorn iteration: scalings within 1e-5 relative", async () => {
      const g = need();
      const rng = new Rng(6);
      for (const [N, E] of [[1, 3], [300, 64], [1000, 256]]) {
        const s = scores(rng, N, E, 0);
        let d1: Float32Array = new Float32Array(E).fill(1);
        for (let t = 0; t < 3; t++) {
          const want = sinkhornIteration(s, d1);
          for (const dev of [g, chunked(g, 4 * 256 * E)]) {
            const got = await sinkhornIterationOnGpu(dev, s, d1);
            close(got.d0, want.d0, 1e-5, `d0 ${N}x${E}`);
            close(got.d1, want.d1, 1e-5, `d1 ${N}x${E}`);
            // A difference of near-equal numbers: absolute, on the scale of d1.
            const scale = want.d1.reduce((a, b) => a + b, 0) / E;
            assert.ok(
              Math.abs(got.error - want.error) <= 1e-5 * scale,
              `error ${N}x${E}`,
            );
          }
          d1 = want.d1;
        }
      }
    });
  },
);
