import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pl from "nodejs-polars";
import {
  encodeNpy,
  exact,
  formatSummaryTable,
  groupLimitedBounds,
  runSimulation,
  runSimulationOn,
  runSimulationParallel,
  simSummary,
  solveBalancedAssignmentSync,
} from "../mod.ts";
import { prepareRun } from "../lib/sim/prepare_run.ts";
import { writeSimOutputs } from "../lib/report/mod.ts";
import { cli, root } from "./_cli.ts";

const small = {
  steps: 30,
  layers: 2,
  tokens: 512,
  experts: 16,
  topK: 2,
  methods: ["greedy", "loss-free(rate=0.01)"],
};

describe("runSimulation", () => {
  test("summary agrees with an independent Polars computation from the parquet files", () => {
    const dir = mkdtempSync(join(tmpdir(), "moelab-sim-"));
    try {
      const result = runSimulation(small);
      writeSimOutputs(result, dir);
      const loads = pl.readParquet(join(dir, "loads.parquet"));
      const metrics = pl.readParquet(join(dir, "metrics.parquet"));
      const start = 15; // last half of 30 steps
      const perLayer = loads.filter(pl.col("step").gtEq(start))
        .groupBy(["method", "layer", "expert"]).agg(
          pl.col("load").sum().alias("total"),
        )
        .groupBy(["method", "layer"]).agg(
          pl.col("total").max().alias("max"),
          pl.col("total").mean().alias("mean"),
        )
        .withColumns(
          pl.col("max").minus(pl.col("mean")).div(pl.col("mean")).alias("vio"),
        )
        .groupBy("method").agg(pl.col("vio").mean())
        .sort("method");
      const batch = metrics.filter(
        pl.col("metric").eq(pl.lit("maxVio")).and(pl.col("step").gtEq(start)),
      ).groupBy("method").agg(pl.col("value").mean()).sort("method");
      const summary = JSON.parse(
        readFileSync(join(dir, "summary.json"), "utf8"),
      );
      assert.equal(summary.backend, "cpu");
      const byName = Object.fromEntries(
        summary.methods.map((m: { method: string }) => [m.method, m]),
      );
      const names = perLayer.getColumn("method").toArray() as string[];
      const vio = perLayer.getColumn("vio").toArray() as number[];
      const bvio = batch.getColumn("value").toArray() as number[];
      names.forEach((name, i) => {
        assert.ok(Math.abs(byName[name].maxVioGlobal - vio[i]) < 1e-12, name);
        assert.ok(Math.abs(byName[name].maxVioBatch - bvio[i]) < 1e-12, name);
      });
      assert.equal(byName["greedy"].scoreRetention, 1);
      assert.ok(byName["loss-free(rate=0.01)"].scoreRetention < 1);
      assert.equal(byName["loss-free(rate=0.01)"].causal, true);
      // every batch routes tokens x k slots
      const sums = loads.groupBy(["step", "layer", "method"]).agg(
        pl.col("load").sum(),
      );
      assert.ok(
        (sums.getColumn("load").toArray() as number[]).every((s) =>
          s === 512 * 2
        ),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("stepsToBalance is the first step from which the layer-mean MaxVio stays below the threshold", () => {
    const r = runSimulation({ ...small, balanceThreshold: 0.45 });
    for (let m = 0; m < 2; m++) {
      const mean = new Float64Array(small.steps);
      const t = r.tables.metrics;
      for (let row = 0; row < t.step.length; row++) {
        if (t.method[row] === m && t.metric[row] === 0) {
          mean[t.step[row]] += t.value[row] / 2;
        }
      }
      let want: number | null = null;
      for (let s = 0; s < small.steps; s++) {
        if (mean.slice(s).every((v) => v < 0.45)) {
          want = s;
          break;
        }
      }
      assert.equal(r.methods[m].stepsToBalance, want);
    }
    assert.equal(
      r.methods[0].stepsToBalance,
      null,
      "greedy never balances here",
    );
    assert.notEqual(r.methods[1].stepsToBalance, null, "loss-free does");
  });

  test("the same seed writes identical files; another seed does not", () => {
    const dirs = [0, 1, 2].map(() =>
      mkdtempSync(join(tmpdir(), "moelab-det-"))
    );
    try {
      writeSimOutputs(runSimulation(small), dirs[0]);
      writeSimOutputs(runSimulation(small), dirs[1]);
      writeSimOutputs(runSimulation({ ...small, seed: 2 }), dirs[2]);
      for (const f of ["loads.parquet", "metrics.parquet", "biases.parquet"]) {
        assert.deepEqual(
          readFileSync(join(dirs[0], f)),
          readFileSync(join(dirs[1], f)),
          f,
        );
      }
      assert.notDeepEqual(
        readFileSync(join(dirs[0], "loads.parquet")),
        readFileSync(join(dirs[2], "loads.parquet")),
      );
      const strip = (d: string) => {
        const s = JSON.parse(readFileSync(join(d, "summary.json"), "utf8"));
        for (const m of s.methods) delete m.wallMs;
        return s;
      };
      assert.deepEqual(strip(dirs[0]), strip(dirs[1]));
    } finally {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  });

  test("replays a .npy recording with its own sizes", () => {
    const dir = mkdtempSync(join(tmpdir(), "moelab-npy-"));
    try {
      // 3 steps, 2 layers, 4 tokens, 3 experts: every token prefers expert 2.
      const data = new Float32Array(3 * 2 * 4 * 3);
      for (let i = 0; i < data.length; i += 3) data.set([0, 1, 2], i);
      const path = join(dir, "logits.npy");
      writeFileSync(path, encodeNpy(data, [3, 2, 4, 3]));
      const r = runSimulation({
        topK: 1,
        methods: ["greedy"],
        workload: { kind: "npy", path },
      });
      assert.equal(r.config.steps, 3);
      assert.equal(r.config.layers, 2);
      assert.equal(r.config.experts, 3);
      assert.deepEqual([...r.tables.loads.load.subarray(0, 3)], [0, 0, 4]);
      assert.ok(Math.abs(r.methods[0].maxVioGlobal - 2) < 1e-12);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("rejects bad configurations", () => {
    assert.throws(() => runSimulation({ ...small, topK: 17 }), RangeError);
    assert.throws(
      () => runSimulation({ ...small, methods: ["nope"] }),
      RangeError,
    );
    assert.throws(() => runSimulation({ ...small, methods: [] }), TypeError);
    assert.throws(
      () => runSimulation({ ...small, stepz: 3 }),
      /unknown key "stepz"/,
    );
    assert.throws(
      () =>
        runSimulation({ ...small, workload: { kind: "synthetic", zipff: 1 } }),
      RangeError,
    );
    assert.throws(
      () => runSimulation({ ...small, methods: ["greedy", "greedy"] }),
      RangeError,
    );
  });
});

describe("the optimality gap under a group limit", () => {
  const base = {
    steps: 4,
    layers: 2,
    tokens: 256,
    experts: 32,
    topK: 4,
    groups: 8,
    topGroups: 2,
    gapSteps: 2,
    ep: null,
  };
  const limit = { k: 4, groups: 8, topGroups: 2 };
  test("is against the upper end of the group-limited optimum's bracket (exact's where it runs), against the relaxation where exact routes it", () => {
    const withExact = runSimulation({
      ...base,
      methods: ["greedy", "bip", "exact"],
    });
    const without = runSimulation({ ...base, methods: ["greedy", "bip"] });
    const relaxed = runSimulation({
      ...base,
      methods: ["greedy", "bip", "exact(groupLimit=relax)"],
    });
    for (const r of [withExact, without, relaxed]) {
      assert.deepEqual(r.optimumSteps, [2, 3]);
    }
    // A twin of the sim's exact method: the same batches, in the same
    // order, through the public balancer, gives each batch's bracket.
    const { workload } = prepareRun({ ...base, methods: ["greedy"] });
    const twin = exact({ layers: 2, experts: 32, normalize: true, ...limit });
    let width = 0;
    for (let step = 0; step < base.steps; step++) {
      for (let layer = 0; layer < base.layers; layer++) {
        const scores = workload.scores(step, layer);
        twin.route(layer, scores);
        if (step < 2) continue;
        const b = twin.bounds(layer);
        const relaxation = solveBalancedAssignmentSync(scores, { k: 4 })
          .objective;
        const cell = step * base.layers + layer;
        // Without exact: groupLimitedBounds from BIP's prices (the sim
        // starts the gap's solve from the non-causal method's prices).
        const bip = without.tables.biases.bias.subarray(
          (cell * 2 + 1) * 32,
          (cell * 2 + 2) * 32,
        );
        const upper = groupLimitedBounds(scores, {
          ...limit,
          expertPrices: Float64Array.from(bip, (v) => -v),
        }).upperBound;
        for (const u of [b.upperBound, upper]) {
          assert.ok(u < relaxation && b.lowerBound <= u, `${u}`);
        }
        // Each method's score sum, from each run's gap and its reference.
        for (let m = 0; m < 2; m++) {
          const sums = [
            (1 - withExact.optimalityGaps[cell * 3 + m]) * b.upperBound,
            (1 - without.optimalityGaps[cell * 2 + m]) * upper,
            (1 - relaxed.optimalityGaps[cell * 3 + m]) * relaxation,
          ];
          for (const x of sums.slice(1)) {
            assert.ok(
              Math.abs(x - sums[0]) <= 1e-9 * relaxation,
              `step ${step} layer ${layer} method ${m}: ${sums}`,
            );
          }
        }
        // exact routes the bracket's lower end: its gap is the width.
        const own = withExact.optimalityGaps[cell * 3 + 2];
        assert.ok(Math.abs(own - (1 - b.lowerBound / b.upperBound)) < 1e-9);
        width = Math.max(width, own);
      }
    }
    // The lower end is below the upper one somewhere: gaps against it
    // (the routed sum) would have understated every method's.
    assert.ok(width > 1e-4, `${width}`);
    const caption = (r: typeof without) =>
      formatSummaryTable(r).split("\n")[0].replace(/^.*; optimality gap /, "");
    const bracket =
      "on 2 of them against the upper end of the bracket of the group-limited optimum (at or above it: the gaps are upper bounds";
    assert.equal(
      caption(withExact),
      `${bracket}; exact routes the lower end, so its gap is the bracket's width)`,
    );
    assert.equal(caption(without), `${bracket})`);
    assert.equal(
      caption(relaxed),
      "on 2 of them against the exact optimum without the group limit (a relaxation, above the group-limited optimum: the gaps are upper bounds)",
    );
    // summary.json names the same reference.
    assert.match(
      String(simSummary(withExact).config.optimum),
      /^the upper end of the bracket of the group-limited optimum \(.*exact routes the lower end/,
    );
    assert.match(
      String(simSummary(without).config.optimum),
      /^the upper end of the bracket of the group-limited optimum \(at or above it: the gaps are upper bounds\)$/,
    );
    assert.match(
      String(simSummary(relaxed).config.optimum),
      /^the exact optimum without the group limit/,
    );
  });
});

describe("runSimulationParallel", () => {
  const config = {
    ...small,
    layers: 3,
    methods: ["greedy", "loss-free(rate=0.01)", "bip", "exact"],
  };

  test("gives the sequential run's tables and summaries on two threads", async () => {
    const seq = runSimulation(config);
    let last = 0;
    const par = await runSimulationParallel(config, {
      threads: 2,
      onProgress: (done) => (last = done),
    });
    assert.equal(last, small.steps);
    for (const part of ["loads", "biases", "metrics"] as const) {
      const a = seq.tables[part] as unknown as Record<
        string,
        ArrayLike<number>
      >;
      const b = par.tables[part] as unknown as Record<
        string,
        ArrayLike<number>
      >;
      for (const column of Object.keys(a)) {
        assert.deepEqual(b[column], a[column], `${part}.${column}`);
      }
    }
    assert.deepEqual(par.optimalityGaps, seq.optimalityGaps);
    const strip = (r: typeof seq) =>
      r.methods.map(({ wallMs: _wallMs, ...rest }) => rest);
    assert.deepEqual(strip(par), strip(seq));
  });

  test("rejects bad input with its own error class before any work", async () => {
    await assert.rejects(
      runSimulationParallel({ ...config, topK: 99 }, { threads: 2 }),
      RangeError,
    );
    await assert.rejects(
      runSimulationParallel(config, { threads: 0 }),
      RangeError,
    );
  });
});

describe("prepareRun", () => {
  test("a run reads its .npy once and no runner resolves or reads it again", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moelab-prep-"));
    try {
      // 4 steps, 3 layers, 8 tokens, 4 experts of distinct logits.
      const data = Float32Array.from(
        { length: 4 * 3 * 8 * 4 },
        (_, i) => Math.sin(i * 12.9898) * 3,
      );
      const path = join(dir, "logits.npy");
      writeFileSync(path, encodeNpy(data, [4, 3, 8, 4]));
      let reads = 0;
      const run = prepareRun({
        topK: 2,
        methods: ["greedy", "loss-free(rate=0.1)"],
        workload: { kind: "npy", path },
      }, {
        readFile: (p) => {
          reads++;
          return readFileSync(p);
        },
      });
      assert.equal(reads, 1);
      assert.deepEqual(
        [run.config.steps, run.config.layers, run.config.experts],
        [4, 3, 4],
      );
      // Gone: a runner that read the recording again would fail.
      rmSync(path);
      const results = [
        runSimulation(run),
        await runSimulationParallel(run, { threads: 2 }),
        await runSimulationParallel(run, { threads: 1 }),
        await runSimulationOn(run, { backend: "cpu" }),
      ];
      assert.equal(reads, 1);
      for (const r of results) {
        // The prepared configuration itself: nothing resolved it again.
        assert.equal(r.config, run.config);
        assert.deepEqual(r.tables.loads.load, results[0].tables.loads.load);
        assert.deepEqual(
          r.tables.metrics.value,
          results[0].tables.metrics.value,
        );
      }
      assert.equal(prepareRun(run), run);
      assert.throws(
        () => runSimulation(run, { workload: run.workload }),
        TypeError,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a key typo fails before the recording is read", () => {
    let reads = 0;
    assert.throws(
      () =>
        prepareRun({ stepz: 3, workload: { kind: "npy", path: "x.npy" } }, {
          readFile: () => {
            reads++;
            return new Uint8Array(0);
          },
        }),
      /unknown key "stepz"/,
    );
    assert.equal(reads, 0);
  });

  test("runs on the recording's sizes, as the unprepared run does", () => {
    const dir = mkdtempSync(join(tmpdir(), "moelab-prep-"));
    try {
      const data = Float32Array.from({ length: 2 * 5 * 6 }, (_, i) => i % 7);
      const path = join(dir, "logits.npy");
      writeFileSync(path, encodeNpy(data, [2, 5, 6]));
      const config = {
        topK: 2,
        methods: ["greedy"],
        workload: { kind: "npy", path },
      };
      const run = prepareRun(config);
      assert.deepEqual(
        [run.config.steps, run.config.layers, run.config.tokens],
        [2, 1, 5],
      );
      assert.deepEqual(
        runSimulation(config).tables.loads.load,
        runSimulation(run).tables.loads.load,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the DeepSeek-V3 preset", () => {
  const path = join(root, "data/presets/deepseek-v3.json");
  const preset = JSON.parse(readFileSync(path, "utf8"));

  // DeepSeek-V3 (arXiv:2412.19437): 61 layers, 256 routed experts, 8 per
  // token, sigmoid gate, 8 groups of which 4 are kept; the prefill
  // deployment's expert parallelism over 64 GPUs in 8 nodes.
  test("has DeepSeek-V3's shape at full scale", () => {
    assert.equal(preset.layers, 61);
    assert.equal(preset.experts, 256);
    assert.equal(preset.topK, 8);
    assert.equal(preset.gate, "sigmoid");
    assert.equal(preset.groups, 8);
    assert.equal(preset.topGroups, 4);
    assert.ok(preset.tokens >= 16384, `tokens ${preset.tokens}`);
    assert.ok(preset.steps >= 200, `steps ${preset.steps}`);
    assert.ok(preset.gapSteps > 0);
    for (const m of ["greedy", "loss-free", "bip", "quantile"]) {
      assert.ok(preset.methods.includes(m), m);
    }
    assert.equal(preset.ep.gpus, 64);
    // With the EP stage's nodes: 8 nodes of 8 GPUs, and one redundant
    // expert per GPU as in V3's prefill deployment (8 + 1 experts a GPU
    // there: 32 redundant on 32 GPUs; 64 here).
    if (preset.ep.gpusPerNode !== undefined) {
      assert.equal(preset.ep.gpus / preset.ep.gpusPerNode, 8);
      assert.equal(preset.ep.redundant, preset.ep.gpus);
    }
  });

  test(
    "runs cut down from the command line: 2 layers x 3 steps x 2048 tokens",
    {
      timeout: 300_000,
    },
    () => {
      const dir = mkdtempSync(join(tmpdir(), "moelab-v3-"));
      const [L, S, N] = [2, 3, 2048];
      try {
        const out = join(dir, "out");
        const r = cli([
          "sim",
          "--preset",
          path,
          "--layers",
          String(L),
          "--steps",
          String(S),
          "--tokens",
          String(N),
          "--out",
          out,
          "--quiet",
          "--json",
        ]);
        assert.equal(r.code, 0, r.stderr);
        const summary = JSON.parse(
          readFileSync(join(out, "summary.json"), "utf8"),
        );
        const c = summary.config;
        assert.deepEqual(
          [c.experts, c.topK, c.groups, c.topGroups, c.layers, c.steps],
          [256, 8, 8, 4, L, S],
        );
        // The exact optimum ignores the group limit: the gaps are upper bounds.
        assert.match(c.optimum, /upper bound/);
        const M = preset.methods.length;
        assert.equal(summary.methods.length, M);
        for (const m of summary.methods) {
          // The window is the last 2 steps, both sampled for the gap.
          assert.equal(typeof m.optimalityGap, "number", m.method);
          assert.ok(m.ep && Object.keys(m.ep).length > 0, m.method);
        }
        // Every method gives each of the N tokens its 8 experts, every batch.
        const loads = pl.readParquet(join(out, "loads.parquet"));
        assert.equal(loads.height, S * L * M * 256);
        const totals = loads.groupBy(["step", "layer", "method"])
          .agg(pl.col("load").sum().alias("total"));
        assert.equal(totals.height, S * L * M);
        assert.deepEqual(
          [...new Set(totals.getColumn("total").toArray())],
          [N * 8],
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
