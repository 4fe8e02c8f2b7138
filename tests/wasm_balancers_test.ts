// The WebAssembly SIMD kernels of the price-based balancers (BIP rounds,
// the Quantile step, Sinkhorn steps) against their TypeScript kernels,
// bit for bit: kernel by kernel over runs of batches (prices, bounds and
// row filter carried), balancer by balancer, and whole simulations, whose
// every figure must be the same under `"wasm"` and `"cpu"`. Sizes are odd
// (3, 7, 33, 257 experts: not multiples of the SIMD widths), scores have
// ties, -Infinity, groups and biases.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { kernelFor } from "../lib/ops/registry.ts";
import {
  bipRoundCpu,
  bipRoundOp,
  columnBounds,
  dualScratch,
} from "../lib/ops/bip_round.ts";
import { bipRoundWasm } from "../lib/ops/bip_round_wasm.ts";
import {
  quantileStepCpu,
  quantileStepOp,
  routeKeepingNext,
} from "../lib/ops/quantile_step.ts";
import {
  quantileStepWasm,
  routeKeepingNextOnWasm,
} from "../lib/ops/quantile_step_wasm.ts";
import { createRouting } from "../lib/select/routing.ts";
import { sinkhornCpu, sinkhornOp } from "../lib/ops/sinkhorn.ts";
import { sinkhornWasm } from "../lib/ops/sinkhorn_wasm.ts";
import { fdlibmExp } from "../lib/numeric/fdlibm.ts";
import { wasmRuntime, wasmRuntimeOn } from "../lib/wasm/runtime.ts";
import { sharedScoreData } from "../lib/ops/route_threads.ts";
import { createBalancer } from "../lib/route/registry.ts";
import { runSimulationOn } from "../lib/sim/run_backend.ts";
import { capacityOf } from "../lib/select/capacity.ts";
import { Rng } from "../lib/scores/rng.ts";
import type { ScoreMatrix } from "../lib/types.ts";
import type { SimResult } from "../lib/sim/run.ts";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli, root } from "./_cli.ts";
import { spawnSync } from "node:child_process";
import { prepareRun } from "../lib/sim/prepare_run.ts";
import { runSimulation } from "../lib/sim/run.ts";

const skip = wasmRuntime() ? false : "no WebAssembly SIMD in this engine";

/**
 * Scores with ties (a few levels) in some rows, a masked run of experts
 * (-Infinity) in one token of four, and one expert of `hot` tokens in
 * ten raised (an unbalanced batch, so prices move).
 */
function batch(rng: Rng, N: number, E: number, levels: number): ScoreMatrix {
  const data = new Float32Array(N * E);
  const hot = rng.int(E);
  for (let i = 0; i < N; i++) {
    const tied = rng.uniform() < 0.5;
    for (let j = 0; j < E; j++) {
      const u = rng.uniform();
      data[i * E + j] = tied ? Math.floor(u * levels) / levels : u;
    }
    if (rng.uniform() < 0.1) data[i * E + hot] += 1;
    if (rng.uniform() < 0.25 && E >= 3) {
      const from = rng.int(E), to = Math.min(E, from + 1 + rng.int(E >> 1));
      data.fill(-Infinity, i * E + from, i * E + to);
    }
  }
  return { data, tokens: N, experts: E };
}

/**
 * The same scores in the shared WebAssembly heap, where the wasm kernels
 * read them in place (the threads module's instance on the heap).
 */
function inHeap(s: ScoreMatrix): ScoreMatrix {
  const data = sharedScoreData(s.data.length);
  data.set(s.data);
  assert.ok(wasmRuntimeOn(data)?.holds(data.buffer), "read in place");
  return { ...s, data };
}

/** Same bits, NaN and signed zeros included. */
function sameBits(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  what: string,
) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(
      Object.is(got[i], want[i]),
      `${what}[${i}]: ${got[i]} vs ${want[i]}`,
    );
  }
}

const SHAPES = [
  [40, 3, 1],
  [90, 7, 2],
  [333, 33, 4],
  [1030, 257, 8],
  [2048, 64, 6],
] as const;

describe(
  "WebAssembly kernels of the dual rounds, bit for bit",
  { skip },
  () => {
    for (const [N, E, k] of SHAPES) {
      for (const clip of [true, "experts"] as const) {
        test(`BIP rounds ${N}x${E} k=${k} clip=${clip}, 5 batches`, () => {
          const rng = new Rng(N + E);
          const start = Float64Array.from(
            { length: E },
            (_, j) => (j % 4) / 32,
          );
          const qa = Float64Array.from(start), qb = Float64Array.from(start);
          const qc = Float64Array.from(start);
          const sa = dualScratch(N, E, k), sb = dualScratch(N, E, k);
          const sc = dualScratch(N, E, k);
          const ba = columnBounds(E), bb = columnBounds(E);
          const bc = columnBounds(E);
          for (let step = 0; step < 5; step++) {
            const scores = batch(rng, N, E, 8);
            const cf = step === 3 ? 1.5 : 1;
            const args = {
              scores,
              k,
              capacity: capacityOf(N, k, E, cf),
              rounds: step === 0 ? 1 : 2,
              clip,
            };
            const a = bipRoundCpu({
              ...args,
              prices: qa,
              scratch: sa,
              bounds: ba,
            });
            const b = bipRoundWasm({
              ...args,
              prices: qb,
              scratch: sb,
              bounds: bb,
            });
            // The same batch read in place in the shared heap.
            const c = bipRoundWasm({
              ...args,
              scores: inHeap(scores),
              prices: qc,
              scratch: sc,
              bounds: bc,
            });
            const what = `step ${step}`;
            sameBits(b.prices, a.prices, `${what} q`);
            sameBits(b.tokenPrices, a.tokenPrices, `${what} p`);
            sameBits(bb.last, ba.last, `${what} bounds.last`);
            sameBits(bb.slack, ba.slack, `${what} bounds.slack`);
            sameBits(sb.filter.stats, sa.filter.stats, `${what} filter`);
            sameBits(c.prices, a.prices, `${what} q in the heap`);
            sameBits(c.tokenPrices, a.tokenPrices, `${what} p in the heap`);
            sameBits(bc.last, ba.last, `${what} bounds.last in the heap`);
            sameBits(sc.filter.stats, sa.filter.stats, `${what} filter, heap`);
          }
        });
      }
      test(`Quantile steps ${N}x${E} k=${k}, 5 batches`, () => {
        const rng = new Rng(7 * N + E);
        const qa = new Float64Array(E), qb = new Float64Array(E);
        const qc = new Float64Array(E);
        const sa = dualScratch(N, E, k), sb = dualScratch(N, E, k);
        const sc = dualScratch(N, E, k);
        const ba = columnBounds(E), bb = columnBounds(E);
        const bc = columnBounds(E);
        for (let step = 0; step < 5; step++) {
          const scores = batch(rng, N, E, 4);
          // Every other step, the token values come from the route.
          const given = step % 2 === 1;
          const values = given
            ? bipRoundCpu({
              scores,
              k,
              capacity: N,
              prices: Float64Array.from(qa),
              rounds: 1,
              clip: "experts",
            }).tokenPrices
            : undefined;
          quantileStepCpu({
            scores,
            k,
            prices: qa,
            scratch: sa,
            bounds: ba,
            tokenValues: values && Float64Array.from(values),
          });
          quantileStepWasm({
            scores,
            k,
            prices: qb,
            scratch: sb,
            bounds: bb,
            tokenValues: values && Float64Array.from(values),
          });
          quantileStepWasm({
            scores: inHeap(scores),
            k,
            prices: qc,
            scratch: sc,
            bounds: bc,
            tokenValues: values && Float64Array.from(values),
          });
          sameBits(qb, qa, `step ${step} q`);
          sameBits(bb.last, ba.last, `step ${step} bounds.last`);
          sameBits(qc, qa, `step ${step} q in the heap`);
          sameBits(bc.last, ba.last, `step ${step} bounds.last in the heap`);
        }
        assert.ok(qa.some((v) => v !== 0), "the prices moved");
      });
    }

    test("start prices with -Infinity and NaN take the TypeScript steps", () => {
      const rng = new Rng(3);
      const N = 300, E = 33, k = 3;
      const scores = batch(rng, N, E, 8);
      const start = Float64Array.from({ length: E }, (_, j) => j / 64);
      start[4] = -Infinity;
      start[9] = NaN;
      start[20] = Infinity;
      for (const clip of [true, "experts"] as const) {
        const qa = Float64Array.from(start), qb = Float64Array.from(start);
        const args = {
          scores,
          k,
          capacity: capacityOf(N, k, E, 1),
          rounds: 2,
          clip,
        };
        const a = bipRoundCpu({ ...args, prices: qa });
        const b = bipRoundWasm({ ...args, prices: qb });
        sameBits(b.prices, a.prices, `clip=${clip} q`);
        sameBits(b.tokenPrices, a.tokenPrices, `clip=${clip} p`);
      }
    });

    test("zeros of both signs: the same zero as TypeScript's", () => {
      const rng = new Rng(5);
      for (const [N, E, k] of [[300, 7, 2], [700, 33, 4]] as const) {
        // Most scores are +0 or -0: the order statistics are zeros, and
        // which zero depends on the order the kernel meets them.
        const scores = batch(rng, N, E, 2);
        for (let i = 0; i < scores.data.length; i++) {
          if (scores.data[i] === 0 && rng.uniform() < 0.5) scores.data[i] = -0;
        }
        const qa = new Float64Array(E), qb = new Float64Array(E);
        const sa = dualScratch(N, E, k), sb = dualScratch(N, E, k);
        const ba = columnBounds(E), bb = columnBounds(E);
        for (let step = 0; step < 3; step++) {
          quantileStepCpu({ scores, k, prices: qa, scratch: sa, bounds: ba });
          quantileStepWasm({ scores, k, prices: qb, scratch: sb, bounds: bb });
          sameBits(qb, qa, `${N}x${E} step ${step} q`);
          sameBits(bb.slack, ba.slack, `${N}x${E} step ${step} slack`);
          const args = {
            scores,
            k,
            capacity: capacityOf(N, k, E, 1),
            rounds: 2,
          };
          const pa = Float64Array.from(qa), pb = Float64Array.from(qa);
          const a = bipRoundCpu({ ...args, clip: "experts", prices: pa });
          const b = bipRoundWasm({ ...args, clip: "experts", prices: pb });
          sameBits(b.tokenPrices, a.tokenPrices, `${N}x${E} step ${step} p`);
        }
      }
    });

    for (
      const [N, E, k, levels] of [
        [300, 7, 2, 3],
        [700, 33, 4, 2],
        [1030, 257, 8, 2],
        // Rows of equal scores: more than 24 candidates, ranked by insertion.
        [1030, 257, 8, 1],
        [2048, 64, 6, 0],
      ] as const
    ) {
      test(`the Quantile route that keeps a[i], ${N}x${E} k=${k} levels ${levels}`, () => {
        const rng = new Rng(11 * N + E);
        for (const normalize of [true, false]) {
          const sa = dualScratch(N, E, k), sb = dualScratch(N, E, k);
          const sc = dualScratch(N, E, k);
          for (let step = 0; step < 3; step++) {
            const scores = batch(rng, N, E, levels || 1024);
            const q = Float64Array.from({ length: E }, () => rng.int(8) / 64);
            // The last step's prices are not all finite: dual.c's route
            // takes them (the route kernel, the finite ones).
            if (step === 2) [q[0], q[E - 1]] = [Infinity, -Infinity];
            const a = createRouting(N, k, E), b = createRouting(N, k, E);
            const c = createRouting(N, k, E);
            routeKeepingNext(scores, k, q, a, sa, normalize);
            routeKeepingNextOnWasm(scores, k, q, b, sb, normalize);
            // The same batch read in place in the shared heap.
            routeKeepingNextOnWasm(inHeap(scores), k, q, c, sc, normalize);
            const what = `normalize=${normalize} step ${step}`;
            for (
              const [r, t, where] of [[b, sb, ""], [c, sc, ", heap"]] as const
            ) {
              sameBits(r.experts, a.experts, `${what} experts${where}`);
              sameBits(r.weights, a.weights, `${what} weights${where}`);
              sameBits(r.loads, a.loads, `${what} loads${where}`);
              sameBits(t.p, sa.p, `${what} a[i]${where}`);
              sameBits(
                t.filter.stats,
                sa.filter.stats,
                `${what} filter${where}`,
              );
            }
          }
        }
        const scores = inHeap(batch(rng, N, E, 4));
        scores.data[(N >> 1) * E + E - 1] = Infinity;
        const q = new Float64Array(E);
        const message = (f: () => void) => {
          try {
            f();
          } catch (e) {
            assert.ok(e instanceof RangeError);
            return e.message;
          }
          assert.fail("no error");
        };
        assert.equal(
          message(() =>
            routeKeepingNextOnWasm(
              scores,
              k,
              q,
              createRouting(N, k, E),
              dualScratch(N, E, k),
              true,
            )
          ),
          message(() =>
            routeKeepingNext(
              scores,
              k,
              q,
              createRouting(N, k, E),
              dualScratch(N, E, k),
              true,
            )
          ),
        );
      });
    }

    test("a column of -Infinity keeps its Quantile price", () => {
      const rng = new Rng(4);
      const N = 200, E = 7, k = 2;
      const scores = batch(rng, N, E, 8);
      for (let i = 0; i < N; i++) scores.data[i * E + 5] = -Infinity;
      const qa = Float64Array.from({ length: E }, (_, j) => j / 8);
      const qb = Float64Array.from(qa);
      quantileStepCpu({ scores, k, prices: qa });
      quantileStepWasm({ scores, k, prices: qb });
      sameBits(qb, qa, "q");
    });
  },
);

describe("WebAssembly Sinkhorn steps, bit for bit", { skip }, () => {
  for (
    const [N, E, tau, cap, warm] of [
      [1, 3, 1, 100, false],
      [13, 7, 0.5, 100, true],
      [333, 33, 0.1, 100, false],
      [1030, 257, 0.05, 25, true],
      [2048, 64, 1, 100, true],
    ] as const
  ) {
    test(`${N}x${E} tau=${tau} cap=${cap}${warm ? " warm" : ""}`, () => {
      const scores = batch(new Rng(N * E), N, E, 8);
      const make = () =>
        sinkhornOp.validate({
          scores,
          options: { temperature: tau, maxIterations: cap },
          logScale: warm
            ? Array.from({ length: E }, (_, j) => (j % 5) / 16)
            : undefined,
        });
      const a = make(), b = make();
      const ra = sinkhornCpu(a), rb = sinkhornWasm(b);
      assert.equal(rb.iterations, ra.iterations);
      assert.ok(Object.is(rb.error, ra.error), `${rb.error} vs ${ra.error}`);
      sameBits(b.logScale, a.logScale, "log scale");
      if (N > 1) assert.ok(ra.iterations > 1);
    });
  }
});

describe(
  "the Sinkhorn kernel's exp on WebAssembly, bit for bit",
  { skip },
  () => {
    // Every entry of the tiles against fdlibmExp((s - max) / tau), the CPU
    // kernel's: e_exp.c's every branch (k = 0, k = +-1, the general
    // reduction, 1 + x below 2^-28, subnormal results, underflow to 0, the
    // -Infinity scores), odd expert counts (the scalar tail) and a row
    // count that is not a whole number of tiles (zero rows after it).
    const TILE = 8;
    // |x| at e_exp.c's branch points (the high words 0x3FD62E43, 0x3FF0A2B2,
    // 0x3E300000 and 0x40862E42 of |x|, as doubles) and the float32 values
    // next to each, below and above.
    const view = new DataView(new ArrayBuffer(8));
    const fromHigh = (hi: number) => {
      view.setUint32(0, hi);
      view.setUint32(4, 0);
      return view.getFloat64(0);
    };
    const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
    const near = (v: number) => {
      f32[0] = v;
      const out = [f32[0]];
      u32[0]--;
      out.push(f32[0]);
      u32[0] += 2;
      out.push(f32[0]);
      return out;
    };
    const edges = [0x3fd62e42, 0x3fd62e43, 0x3ff0a2b2, 0x3e300000, 0x40862e42]
      .flatMap((hi) => near(fromHigh(hi)));
    for (
      const [N, E, tau, spread] of [
        [13, 7, 1, 1],
        [40, 64, 0.5, 3],
        [17, 33, 3.7, 1e3],
        [24, 10, 0.01, 8], // x down to -800: subnormal results and zeros
        [16, 256, 1, 1e-9], // |x| below 2^-28
        [16, 256, 0.7, 1e-9], // the same, x with all 53 bits
        [16, 256, 1e-3, 1],
        [11, 48, 1, 0], // rows of the branch points, each row's largest 0
        // x = -0.35 / tau between 0.5 ln 2 and the first |x| e_exp.c
        // reduces (high word 0x3FD62E43), less than 1e-9 wide: k = 1 there.
        [
          64,
          16,
          Math.fround(0.35) / ((Math.LN2 / 2 + fromHigh(0x3fd62e43)) / 2),
          -1,
        ],
      ] as const
    ) {
      test(`${N}x${E} tau=${tau} spread=${spread}`, () => {
        const rt = wasmRuntime()!;
        const rng = new Rng(N + E);
        const data = new Float32Array(N * E);
        for (let i = 0; i < N; i++) {
          for (let j = 0; j < E; j++) {
            data[i * E + j] = spread === 0
              ? j === 0 ? 0 : -edges[(i * E + j) % edges.length]
              : spread === -1 // each row's largest i 2^-38: 64 values of x
              ? j === 0 ? i * 2 ** -38 : -0.35
              : spread * rng.uniform() * (spread < 1e-6 ? -1 : 1);
          }
          if (spread > 0 && i % 5 === 3) data[i * E + (i % E)] = -Infinity;
        }
        data.fill(-Infinity, 2 * E, 3 * E); // a row of -Infinity
        const rows = Math.ceil(N / TILE) * TILE;
        const ps = rt.reserve("test.scores", N * E * 4);
        const pk = rt.reserve("test.kernel", rows * E * 8);
        rt.f32(ps, N * E).set(data);
        rt.f64(pk, rows * E).fill(NaN);
        rt.exports.moelab_sinkhorn_kernel(ps, N, E, tau, pk);
        const k = rt.f64(pk, rows * E);
        for (let i = 0; i < rows; i++) {
          let max = -Infinity;
          for (let j = 0; j < E && i < N; j++) {
            if (data[i * E + j] > max) max = data[i * E + j];
          }
          if (max === -Infinity) max = 0;
          for (let j = 0; j < E; j++) {
            const want = i < N ? fdlibmExp((data[i * E + j] - max) / tau) : 0;
            const got = k[(i - (i % TILE)) * E + j * TILE + (i % TILE)];
            assert.ok(Object.is(got, want), `(${i}, ${j}): ${got} vs ${want}`);
          }
        }
      });
    }
  },
);

describe("balancers on wasm and cpu route alike", { skip }, () => {
  for (const method of ["bip", "quantile", "sinkhorn"]) {
    for (
      const [N, E, k, groups, topGroups] of [
        [64, 3, 1, 1, 1],
        [200, 7, 2, 1, 1],
        [333, 33, 4, 3, 2],
        [1030, 257, 8, 1, 1],
        [1024, 64, 6, 8, 4],
      ] as const
    ) {
      test(`${method} ${N}x${E} k=${k} groups ${topGroups}/${groups}`, () => {
        const ctx = {
          layers: 2,
          experts: E,
          k,
          normalize: true,
          groups,
          topGroups,
        };
        const a = createBalancer(method, { ...ctx, host: "cpu" });
        const b = createBalancer(method, { ...ctx, host: "wasm" });
        const rng = new Rng(N + k);
        for (let step = 0; step < 4; step++) {
          for (let layer = 0; layer < 2; layer++) {
            const scores = batch(rng, N, E, 8);
            const ra = a.route(layer, scores), rb = b.route(layer, scores);
            sameBits(rb.experts, ra.experts, `${step}/${layer} experts`);
            sameBits(rb.weights, ra.weights, `${step}/${layer} weights`);
            sameBits(rb.loads, ra.loads, `${step}/${layer} loads`);
            a.update(layer, scores, ra);
            b.update(layer, scores, rb);
            sameBits(b.biases(layer), a.biases(layer), `${step}/${layer} bias`);
          }
        }
      });
    }
    test(`${method}: a NaN score is a RangeError on both`, () => {
      for (const host of ["cpu", "wasm"] as const) {
        const b = createBalancer(method, { layers: 1, experts: 7, k: 2, host });
        const scores = batch(new Rng(1), 50, 7, 8);
        scores.data[17 * 7 + 3] = NaN;
        assert.throws(
          () => b.update(0, scores, b.route(0, scores)),
          (e: Error) => e instanceof RangeError && /NaN/.test(e.message),
          host,
        );
      }
    });
  }
});

/** A run's figures without its timings and labels. */
function figures(r: SimResult) {
  return {
    methods: r.methods.map(({ wallMs: _w, ...m }) => m),
    loads: r.tables.loads.load,
    biases: r.tables.biases.bias,
    metrics: r.tables.metrics.value,
    gaps: r.optimalityGaps,
    ep: r.ep ? { summaries: r.ep.summaries, tokens: r.ep.table.tokens } : null,
  };
}

describe("a simulation on wasm and on cpu", { skip }, () => {
  test("a grouped run with every price-based method: the same figures", async () => {
    const config = {
      seed: 3,
      experts: 33,
      topK: 4,
      groups: 3,
      topGroups: 2,
      tokens: 500,
      layers: 2,
      steps: 6,
      methods: ["greedy", "loss-free", "bip", "quantile", "sinkhorn", "exact"],
      gapSteps: 2,
    };
    const ops = [bipRoundOp, quantileStepOp, sinkhornOp];
    const calls = () => ops.map((op) => kernelFor(op, "wasm")!.calls);
    const before = calls();
    const c = await runSimulationOn(config, { backend: "cpu" });
    assert.deepEqual(calls(), before, "cpu ran no wasm kernel");
    const w = await runSimulationOn(config, { backend: "wasm" });
    calls().forEach((n, o) => assert.ok(n > before[o], ops[o].name));
    assert.equal(c.backend, "cpu");
    assert.equal(w.backend, "wasm");
    assert.deepEqual(figures(w), figures(c));
  });

  test("cpu runs no WebAssembly, the workload's scores included: the same figures", () => {
    const config = {
      seed: 5,
      experts: 24,
      topK: 3,
      groups: 4,
      topGroups: 2,
      tokens: 300,
      layers: 2,
      steps: 4,
      methods: ["greedy", "loss-free", "bip", "quantile"],
    };
    // Its own process, where instantiating WebAssembly throws.
    const r = spawnSync("deno", [
      "run",
      "-A",
      join(root, "tests/_no_wasm_sim.ts"),
      JSON.stringify(config),
    ], { cwd: root, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const cpu = JSON.parse(r.stdout);
    const run = prepareRun(config);
    const w = runSimulation(run, { host: "wasm" });
    const methods = w.methods.map(({ wallMs: _w, ...m }) => m);
    assert.deepEqual(cpu.a, JSON.parse(JSON.stringify(methods)));
    assert.deepEqual(cpu.b, cpu.a);
    const last = run.workload.scores(3, 1).data.subarray(0, 64);
    assert.deepEqual(cpu.last, Array.from(last));
    assert.ok(methods.some((m) => m.maxVioBatch > 0));
  });

  test("the default preset, cut short: the same figures", async () => {
    const preset = JSON.parse(
      readFileSync(
        new URL("../data/presets/default.json", import.meta.url),
        "utf8",
      ),
    );
    const config = { ...preset, layers: 2, steps: 5, tokens: 1024 };
    const c = await runSimulationOn(config, { backend: "cpu" });
    const w = await runSimulationOn(config, { backend: "wasm" });
    assert.deepEqual(figures(w), figures(c));
    assert.ok(c.methods.some((m) => m.maxVioBatch > 0));
  });
});

describe("moelab sim --backend", () => {
  test("wasm (the default) and cpu print the same summary", () => {
    const dir = mkdtempSync(join(tmpdir(), "moelab-backend-"));
    try {
      const args = [
        "sim",
        "--steps",
        "4",
        "--layers",
        "2",
        "--tokens",
        "300",
        "--experts",
        "12",
        "--top-k",
        "3",
        "--methods",
        "greedy,bip,quantile,sinkhorn",
        "--json",
        "--quiet",
      ];
      const summaries = [[], ["--backend", "wasm"], ["--backend", "cpu"]].map(
        (extra, n) => {
          const r = cli([...args, ...extra, "--out", join(dir, `${n}`)]);
          assert.equal(r.code, 0, r.stderr);
          const s = JSON.parse(r.stdout);
          return s.methods.map(({ wallMs: _w, ...m }: { wallMs: number }) => m);
        },
      );
      assert.deepEqual(summaries[0], summaries[1]);
      assert.deepEqual(summaries[2], summaries[1]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an unknown backend: exit 2 naming --backend and the value", () => {
    const r = cli(["sim", "--backend", "simd", "--quiet"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--backend/);
    assert.match(r.stderr, /simd/);
    assert.match(r.stderr, /wasm/);
  });
});
