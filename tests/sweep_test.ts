import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { cli, root } from "./_cli.ts";
import { encodeNpy, resolveSimConfig } from "../mod.ts";
import { checkGrid, sweepCells } from "../lib/sweep/grid.ts";
import { runSweep } from "../lib/sweep/run_sweep.ts";
import { mergeSweep } from "../lib/sweep/merge.ts";
import { K8S_SHARDS_VAR, resolveShard } from "../lib/sweep/shard.ts";

const PRESET = {
  steps: 8,
  layers: 2,
  tokens: 64,
  experts: 8,
  topK: 2,
  gapSteps: 1,
};
const GRID = {
  preset: PRESET,
  grid: {
    seed: [1, 2],
    "workload.drift": [0, 0.05],
    methods: [["greedy", "loss-free"], ["loss-free(rate=1e-2)"]],
  },
};

const work = mkdtempSync(join(tmpdir(), "moelab-sweep-"));
let serial = 0;
const fresh = (name: string) => join(work, `${name}-${serial++}`);

function writeGrid(grid: unknown): string {
  const path = fresh("grid") + ".json";
  writeFileSync(path, JSON.stringify(grid));
  return path;
}

describe("sweep grid", () => {
  test("cells: keys in the order written, the last fastest, ids zero-padded", () => {
    const grid = checkGrid({
      preset: PRESET,
      grid: { seed: [5, 6, 7], topK: [1, 2], gate: ["sigmoid", "softmax"] },
    });
    const expected: unknown[] = [];
    for (const seed of [5, 6, 7]) {
      for (const topK of [1, 2]) {
        for (const gate of ["sigmoid", "softmax"]) {
          expected.push({ seed, topK, gate });
        }
      }
    }
    const cells = sweepCells(grid);
    assert.deepEqual(cells.map((c) => c.values), expected);
    assert.deepEqual(
      cells.map((c) => c.id),
      expected.map((_, i) => String(i).padStart(2, "0")),
    );
    assert.equal(cells[7].preset.seed, 6);
    assert.equal(cells[7].preset.gate, "softmax");
    assert.equal(cells[7].preset.experts, 8);
  });

  test("a dotted key sets a nested field, keeping the preset's other fields", () => {
    const withWorkload = checkGrid({
      preset: { ...PRESET, workload: { kind: "synthetic", clusters: 3 } },
      grid: { "workload.drift": [0.1], "ep.gpus": [4] },
    });
    const [cell] = sweepCells(withWorkload);
    const config = resolveSimConfig(cell.preset);
    assert.deepEqual(config.workload, {
      kind: "synthetic",
      clusters: 3,
      drift: 0.1,
    });
    assert.equal(config.ep?.gpus, 4);
    // Without the parent in the preset, the default's fields are kept.
    const [bare] = sweepCells(
      checkGrid({ preset: PRESET, grid: { "workload.drift": [0.2] } }),
    );
    assert.deepEqual(bare.preset.workload, { kind: "synthetic", drift: 0.2 });
    assert.equal(resolveSimConfig(bare.preset).ep?.replicas, 2);
  });

  test("resolveShard: flag, then Slurm, then Kubernetes, then local", () => {
    const slurm = {
      SLURM_ARRAY_TASK_ID: "7",
      SLURM_ARRAY_TASK_MIN: "5",
      SLURM_ARRAY_TASK_COUNT: "4",
    };
    const k8s = { JOB_COMPLETION_INDEX: "2", [K8S_SHARDS_VAR]: "3" };
    assert.deepEqual(resolveShard("1/3", { ...slurm, ...k8s }), {
      index: 1,
      count: 3,
      from: "--shard",
    });
    assert.deepEqual(resolveShard(undefined, { ...slurm, ...k8s }), {
      index: 2,
      count: 4,
      from: "slurm",
    });
    assert.deepEqual(resolveShard(undefined, k8s), {
      index: 2,
      count: 3,
      from: "kubernetes",
    });
    assert.deepEqual(resolveShard(undefined, {}), {
      index: 0,
      count: 1,
      from: "local",
    });
    assert.throws(() => resolveShard("3/3", {}), /--shard.*3\/3/);
    assert.throws(() => resolveShard("a/b", {}), /--shard/);
    assert.throws(
      () => resolveShard(undefined, { JOB_COMPLETION_INDEX: "0" }),
      new RegExp(K8S_SHARDS_VAR),
    );
  });
});

describe("moelab sweep: bad grids", () => {
  const cases: [string, unknown, string][] = [
    ["an unknown preset field", {
      preset: PRESET,
      grid: { topk: [2] },
    }, '"topk"'],
    ["a value out of range", {
      preset: PRESET,
      grid: { seed: [1], topK: [2, 9] },
    }, '"topK"'],
    ["an unknown nested field", {
      preset: PRESET,
      grid: { "workload.drfit": [0.1] },
    }, '"workload.drfit"'],
    ["a key with no values", {
      preset: PRESET,
      grid: { seed: [] },
    }, '"seed"'],
    ["cells that fail only together", {
      preset: { ...PRESET, ep: null },
      grid: { experts: [2, 8], topK: [2, 3] },
    }, "experts=2, topK=3"],
    ["a value listed twice (two identical cells)", {
      preset: PRESET,
      grid: { seed: [1, 2, 1] },
    }, 'grid key "seed" must list distinct values: 1 appears twice'],
    ["a bad base preset", {
      preset: { ...PRESET, steps: 0 },
      grid: { seed: [1] },
    }, "preset: steps"],
  ];
  for (const [what, grid, named] of cases) {
    test(`${what}: one line naming it, exit 2, nothing written`, () => {
      const out = fresh("bad");
      const r = cli(["sweep", "--grid", writeGrid(grid), "--out", out]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
      assert.ok(r.stderr.includes(named), r.stderr);
      assert.equal(existsSync(out), false);
    });
  }
});

describe("moelab sweep: cells that replay a recording are checked against it first", () => {
  // 4 batches x 32 tokens x 16 experts; one logit +Infinity (batch 2,
  // token 17, expert 3): the sigmoid maps it to 1, softmax would make its
  // row NaN.
  const logits = new Float32Array(4 * 32 * 16).map((_, i) => Math.sin(i));
  logits[(2 * 32 + 17) * 16 + 3] = Infinity;
  const npy = fresh("inf") + ".npy";
  writeFileSync(npy, encodeNpy(logits, [4, 32, 16]));
  const preset = {
    topK: 4,
    methods: ["greedy"],
    gapSteps: 0,
    ep: null,
    workload: { kind: "npy", path: npy },
  };
  const cases: [string, unknown, RegExp][] = [
    [
      "a gate the recording's logits fail",
      { preset, grid: { gate: ["sigmoid", "softmax"] } },
      /^error: grid cell 1 \(gate="softmax"\): scores must not hold \+Infinity with the softmax gate .*: value at batch 2, token 17, expert 3 is Infinity$/,
    ],
    [
      "a topK above the recording's 16 experts (the preset's own 64 allow it)",
      { preset, grid: { topK: [4, 32] } },
      /^error: grid cell 1 \(topK=32\): topK must be at most the number of experts \(16\): current value is 32$/,
    ],
  ];
  for (const [what, grid, line] of cases) {
    for (const threads of ["1", "2"]) {
      test(`${what}: refused before any cell runs, nothing written (--threads ${threads})`, () => {
        checkGrid(grid); // the configurations alone pass
        const out = fresh("rec");
        const r = cli([
          "sweep",
          "--grid",
          writeGrid(grid),
          "--out",
          out,
          "--threads",
          threads,
        ]);
        assert.equal(r.code, 2, r.stderr);
        // One line: the error (no progress before it).
        assert.match(r.stderr.trimEnd(), line);
        assert.equal(existsSync(out), false);
      });
    }
  }
  test("the sigmoid cell alone runs, and replays the recording", async () => {
    const out = fresh("rec-ok");
    const ran = await runSweep(
      checkGrid({ preset, grid: { seed: [1] } }),
      out,
      { threads: 1 },
    );
    assert.deepEqual(ran.ran, ["0"]);
    const summary = JSON.parse(
      readFileSync(join(out, "cells", "0", "summary.json"), "utf8"),
    );
    assert.equal(summary.config.experts, 16);
    assert.equal(summary.config.steps, 4);
  });
  for (const threads of [1, 2]) {
    test(`a cell that fails while it runs (its recording gone) stops the sweep, naming the cell, writing no cell (threads ${threads})`, async () => {
      // The recording passes the check, then goes before any cell runs
      // (the first progress report): every cell's run fails, on this
      // thread or on a worker, with the reader's error.
      const gone = fresh("gone") + ".npy";
      writeFileSync(gone, readFileSync(npy));
      const grid = checkGrid({
        preset: { ...preset, workload: { kind: "npy", path: gone } },
        grid: { seed: [1, 2] },
      });
      const out = fresh("gone-out");
      let reports = 0;
      await assert.rejects(
        runSweep(grid, out, {
          threads,
          onProgress: () => {
            if (reports++ === 0) rmSync(gone);
          },
        }),
        (e: Error) =>
          e instanceof RangeError &&
          /^grid cell [01] \(seed=[12]\): scores file cannot be read: /.test(
            e.message,
          ),
      );
      assert.ok(reports >= 1);
      assert.deepEqual(readdirSync(out), ["grid.json"]);
    });
  }
});

describe("moelab sweep: run, resume, shards, merge", () => {
  const grid = checkGrid(GRID);
  const ids = sweepCells(grid).map((c) => c.id);
  const full = fresh("full");
  after(() => rmSync(work, { recursive: true, force: true }));

  test("a full run writes every cell; a re-run skips them all", async () => {
    const first = await runSweep(grid, full, { threads: 1 });
    assert.deepEqual(first.ran, ids);
    const files = readdirSync(join(full, "cells", ids[3])).sort();
    assert.deepEqual(files.filter((f) => f.endsWith(".json")), [
      "cell.json",
      "summary.json",
    ]);
    const before = statSync(join(full, "cells", ids[3], "summary.json"))
      .mtimeMs;
    const again = await runSweep(grid, full, { threads: 1 });
    assert.deepEqual(again, { ran: [], skipped: ids });
    assert.equal(
      statSync(join(full, "cells", ids[3], "summary.json")).mtimeMs,
      before,
    );
    mergeSweep(full);
  });

  test("a killed cell (temp folder left, no cell folder) is re-run alone", async () => {
    const dir = fresh("killed");
    await runSweep(grid, dir, { threads: 1 });
    rmSync(join(dir, "cells", ids[5]), { recursive: true });
    const leftover = join(dir, "cells", `.${ids[5]}.tmp-dead`);
    mkdirSync(leftover);
    writeFileSync(join(leftover, "loads.parquet"), "half");
    const r = await runSweep(grid, dir, { threads: 1 });
    assert.deepEqual(r.ran, [ids[5]]);
    assert.equal(r.skipped.length, ids.length - 1);
    assert.equal(existsSync(leftover), false);
    mergeSweep(dir);
    for (const f of ["sweep.parquet", "sweep.json"]) {
      assert.deepEqual(readFileSync(join(dir, f)), readFileSync(join(full, f)));
    }
  });

  test("three shards run disjoint cells whose merge equals the full run's, byte for byte", async () => {
    const dir = fresh("shards");
    const ran: string[][] = [];
    for (let index = 0; index < 3; index++) {
      const r = await runSweep(grid, dir, {
        shard: { index, count: 3, from: "--shard" },
        threads: index === 0 ? 2 : 1,
      });
      ran.push(r.ran);
    }
    assert.deepEqual(
      ran,
      [0, 1, 2].map((s) => ids.filter((_, i) => i % 3 === s)),
    );
    mergeSweep(dir);
    for (const f of ["sweep.parquet", "sweep.json"]) {
      assert.deepEqual(readFileSync(join(dir, f)), readFileSync(join(full, f)));
    }
  });

  test("the table: one row per cell, method and figure, a column per grid key", () => {
    const merged = JSON.parse(readFileSync(join(full, "sweep.json"), "utf8"));
    assert.equal(merged.cells.length, 8);
    const cell6 = merged.cells[6];
    assert.deepEqual(cell6.values, {
      seed: 2,
      "workload.drift": 0.05,
      methods: ["greedy", "loss-free"],
    });
    const summary = JSON.parse(
      readFileSync(join(full, "cells", ids[6], "summary.json"), "utf8"),
    );
    assert.equal(
      cell6.methods[1].maxVioGlobal,
      summary.methods[1].maxVioGlobal,
    );
    assert.equal("wallMs" in cell6.methods[1], false);
    // Rows: per cell, its methods times the figures of each.
    const rows = merged.cells.reduce(
      (n: number, c: { methods: object[] }) =>
        n + c.methods.reduce((k, m) => k + Object.keys(m).length - 1, 0),
      0,
    );
    const r = spawnSync("deno", [
      "eval",
      `import pl from "nodejs-polars";
       const f = pl.readParquet(${JSON.stringify(join(full, "sweep.parquet"))});
       console.log(JSON.stringify({ height: f.height, columns: f.columns }));`,
    ], { cwd: root, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      height: rows,
      columns: [
        "cell",
        "seed",
        "workload.drift",
        "methods",
        "method",
        "figure",
        "value",
      ],
    });
  });

  test("under a group limit sweep.json says per cell what its gaps are measured against", async () => {
    const dir = fresh("groups");
    await runSweep(
      checkGrid({
        preset: { ...PRESET, groups: 4, topGroups: 2 },
        grid: { methods: [["greedy"], ["greedy", "exact"]] },
      }),
      dir,
      { threads: 1 },
    );
    mergeSweep(dir);
    const merged = JSON.parse(readFileSync(join(dir, "sweep.json"), "utf8"));
    const optimum = merged.cells.map((c: { optimum: string }) => c.optimum);
    // Each cell's own summary.json names the same reference.
    merged.cells.forEach((c: { cell: string }, i: number) => {
      const summary = JSON.parse(
        readFileSync(join(dir, "cells", c.cell, "summary.json"), "utf8"),
      );
      assert.equal(optimum[i], summary.config.optimum);
    });
    assert.match(optimum[0], /^the upper end of the bracket/);
    assert.doesNotMatch(optimum[0], /exact routes/);
    assert.match(optimum[1], /exact routes the lower end/);
    // Without a group limit there is nothing to say.
    const plain = JSON.parse(readFileSync(join(full, "sweep.json"), "utf8"));
    assert.equal("optimum" in plain.cells[0], false);
  });

  test("merge refuses an incomplete sweep, naming the missing cells, unless told", () => {
    const dir = fresh("incomplete");
    const r0 = cli([
      "sweep",
      "--grid",
      writeGrid(GRID),
      "--out",
      dir,
      "--shard",
      "0/4",
      "--quiet",
    ]);
    assert.equal(r0.code, 0, r0.stderr);
    const missing = ids.filter((_, i) => i % 4 !== 0);
    const r = cli(["sweep", "merge", dir]);
    assert.equal(r.code, 2);
    assert.ok(r.stderr.includes(missing.join(", ")), r.stderr);
    assert.equal(existsSync(join(dir, "sweep.parquet")), false);
    const ok = cli(["sweep", "merge", dir, "--allow-incomplete"]);
    assert.equal(ok.code, 0, ok.stderr);
    const merged = JSON.parse(readFileSync(join(dir, "sweep.json"), "utf8"));
    assert.deepEqual(merged.missing, missing);
    assert.deepEqual(
      merged.cells.map((c: { cell: string }) => c.cell),
      ids.filter((_, i) => i % 4 === 0),
    );
  });

  test("progress on stderr: cells done, running, left and an ETA; --quiet silences it", () => {
    const gridFile = writeGrid({ ...GRID, grid: { seed: [1, 2, 3] } });
    const loud = cli(["sweep", "--grid", gridFile, "--out", fresh("loud")]);
    assert.equal(loud.code, 0, loud.stderr);
    assert.match(
      loud.stderr,
      /^sweep: 3 cells; shard 0\/1 \(local\)\nsweep: 0\/3 cells done, 0 running, 3 left, ETA -$/m,
    );
    assert.match(
      loud.stderr,
      /^sweep: 3\/3 cells done, 0 running, 0 left, ETA 0s$/m,
    );
    const quiet = cli([
      "sweep",
      "--grid",
      gridFile,
      "--out",
      fresh("quiet"),
      "--quiet",
    ]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stderr, "");
  });

  test("a folder holding another grid is refused", () => {
    const r = cli([
      "sweep",
      "--grid",
      writeGrid({ ...GRID, grid: { seed: [3] } }),
      "--out",
      full,
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /holds another sweep/);
  });

  test("slurm: the array tasks of shards.sbatch, run as Slurm would, then merge.sbatch, give the full table", () => {
    const dir = fresh("slurm");
    const gridFile = writeGrid(GRID);
    const r = cli([
      "sweep",
      "slurm",
      "--grid",
      gridFile,
      "--out",
      dir,
      "--array",
      "3",
      "--partition",
      "debug",
      "--time",
      "5",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const script = join(dir, "slurm", "shards.sbatch");
    const text = readFileSync(script, "utf8");
    assert.match(text, /^#SBATCH --array=0-2$/m);
    assert.match(text, /^#SBATCH --partition=debug$/m);
    assert.match(
      readFileSync(join(dir, "slurm", "submit.sh"), "utf8"),
      /--dependency=afterok:"\$shards"/,
    );
    // bash reads #SBATCH lines as comments: each task runs its shard.
    for (const task of [2, 0, 1]) {
      const t = spawnSync("bash", [script], {
        env: { ...process.env, SLURM_ARRAY_TASK_ID: String(task) },
        encoding: "utf8",
      });
      assert.equal(t.status, 0, t.stderr);
    }
    const m = spawnSync("bash", [join(dir, "slurm", "merge.sbatch")], {
      encoding: "utf8",
    });
    assert.equal(m.status, 0, m.stderr);
    for (const f of ["sweep.parquet", "sweep.json"]) {
      assert.deepEqual(readFileSync(join(dir, f)), readFileSync(join(full, f)));
    }
  });

  test("k8s: an Indexed Job with a completion per shard and the shard count beside the index", () => {
    const dir = fresh("k8s");
    const r = cli([
      "sweep",
      "k8s",
      "--grid",
      writeGrid(GRID),
      "--out",
      dir,
      "--completions",
      "4",
      "--pvc",
      "sweeps",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const yaml = readFileSync(join(dir, "k8s", "job.yaml"), "utf8");
    assert.match(yaml, /^ {2}completionMode: Indexed$/m);
    assert.match(yaml, /^ {2}completions: 4$/m);
    assert.match(yaml, new RegExp(`name: ${K8S_SHARDS_VAR}\\n\\s+value: "4"`));
    assert.match(yaml, /claimName: "sweeps"/);
    assert.match(yaml, /sweep merge/);
    // The grid travels in a ConfigMap of the same manifest, as grid.json.
    const configMap = yaml.slice(
      yaml.indexOf("grid.json: |"),
      yaml.indexOf("---"),
    );
    assert.deepEqual(
      JSON.parse(configMap.split("\n").slice(1).join("\n")),
      GRID,
    );
    assert.match(yaml, /--grid \/etc\/moelab-sweep\/grid\.json/);
    const tooMany = cli([
      "sweep",
      "k8s",
      "--grid",
      writeGrid(GRID),
      "--out",
      dir,
      "--completions",
      "9",
    ]);
    assert.equal(tooMany.code, 2);
    assert.match(tooMany.stderr, /--completions must be between 1 and .*8/);
  });
});
