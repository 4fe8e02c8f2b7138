// `moelab advise` as a process: bad flags exit 2 before any work with the
// flag and value named, a good run's figures match an independent reading
// of the file, --out writes the page, and the real traces of ../shared/data
// go through it where present.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cli, root } from "./_cli.ts";

const LONG = join(root, "data/fixtures/loads_long.csv");

/** `[steps][layers][experts]` of a long CSV (step, layer, expert, load), read with split. */
function readLong(path: string): number[][][] {
  const lines = readFileSync(path, "utf8").trim().split("\n").slice(1);
  const rec: number[][][] = [];
  for (const line of lines) {
    const [s, l, e, x] = line.split(",").map(Number);
    ((rec[s] ??= [])[l] ??= [])[e] = x;
  }
  return rec;
}

/** Static EP max/mean, averaged over the given steps and every layer. */
function staticMaxOverMean(rec: number[][][], gpus: number, from: number) {
  let sum = 0, n = 0;
  for (const step of rec.slice(from)) {
    for (const row of step) {
      const per = row.length / gpus;
      const g = Array.from(
        { length: gpus },
        (_, i) => row.slice(i * per, (i + 1) * per).reduce((a, b) => a + b),
      );
      sum += Math.max(...g) / (g.reduce((a, b) => a + b) / gpus);
      n++;
    }
  }
  return sum / n;
}

describe("moelab advise (command line)", () => {
  const work = mkdtempSync(join(tmpdir(), "moelab-advise-"));
  /** `moelab advise` on the long fixture, 2 GPUs, 6 slots, and `more`. */
  const advise = (more: string[]) =>
    cli(["advise", "--loads", LONG, "--gpus", "2", "--replicas", "6", ...more]);

  // A dozen CLI processes, one after the other: more than Bun's default
  // 5 s per test on a busy 2-core machine.
  test("bad flags exit 2 naming the flag and value, and write nothing", {
    timeout: 120_000,
  }, () => {
    const out = join(work, "never");
    const cases: [string[], RegExp][] = [
      [["--gpus", "2", "--replicas", "6"], /--loads FILE is required/],
      [["--loads", LONG, "--replicas", "6"], /--gpus is required/],
      [["--loads", LONG, "--gpus", "0", "--replicas", "6"], /--gpus .*0/],
      [
        ["--loads", LONG, "--gpus", "2", "--replicas", "5"],
        /--replicas must be a multiple of --gpus \(2\): current value is 5/,
      ],
      [
        ["--loads", LONG, "--gpus", "3", "--replicas", "6"],
        /--gpus must divide the number of experts \(4\): current value is 3/,
      ],
      [
        // One GPU leaves no room for the MicroMoE placements' default 2.
        ["--loads", LONG, "--gpus", "1", "--replicas", "4"],
        /^error: --micro-replicas must be at most --gpus \(1\): current value is 2 \(the default\)\n$/,
      ],
      [
        [
          "--loads",
          LONG,
          "--gpus",
          "2",
          "--replicas",
          "6",
          "--interval",
          "1,x",
        ],
        /--interval .*"1,x"/,
      ],
      [
        ["--loads", LONG, "--gpus", "2", "--replicas", "6", "--interval", "0"],
        /--interval .*"0"/,
      ],
      [
        // 3 steps: a re-plan every 3 would have no step to run (no row).
        [
          "--loads",
          LONG,
          "--gpus",
          "2",
          "--replicas",
          "6",
          "--interval",
          "1,3",
        ],
        /^error: --interval must be below the steps of --loads \(3\): current value is 3\n$/,
      ],
      [
        [
          "--loads",
          LONG,
          "--gpus",
          "2",
          "--replicas",
          "6",
          "--threshold",
          "-1",
        ],
        /--threshold .*-1/,
      ],
      [
        ["--loads", LONG, "--gpus", "2", "--replicas", "6", "--nodes", "3"],
        /--nodes must divide --gpus \(2\): current value is 3/,
      ],
      [[
        "--loads",
        LONG,
        "--gpus",
        "2",
        "--replicas",
        "6",
        "--micro-replicas",
        "3",
      ], /--micro-replicas .*3/],
      [
        [
          "--loads",
          join(work, "missing.csv"),
          "--gpus",
          "2",
          "--replicas",
          "6",
        ],
        /missing\.csv/,
      ],
      [
        ["--loads", LONG, "--gpus", "2", "--replicas", "6", "--out", LONG],
        /--out must be a folder/,
      ],
      [
        ["--loads", LONG, "--gpus", "2", "--bogus", "1"],
        /unknown flag --bogus/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = cli([
        "advise",
        ...args,
        ...(args.includes("--out") ? [] : ["--out", out]),
      ]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.equal(existsSync(out), false);
    }
  });

  test("--json: static EP max/mean as read from the file; --out writes the page", () => {
    const out = join(work, "ok");
    const r = advise(["--interval", "1", "--json", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    const a = JSON.parse(r.stdout);
    const rec = readLong(LONG);
    assert.equal(a.steps, rec.length);
    assert.equal(a.layers, rec[0].length);
    const half = Math.ceil(rec.length / 2);
    assert.equal(a.strategies[0].from, half);
    assert.ok(
      Math.abs(a.strategies[0].maxOverMean - staticMaxOverMean(rec, 2, half)) <
        1e-12,
    );
    assert.deepEqual(
      a.strategies.map((s: { key: string }) => s.key),
      [
        "static",
        "eplb",
        "eplb-distinct",
        "eplb-replan",
        "micromoe-symmetric",
        "micromoe-asymmetric",
      ],
    );
    assert.deepEqual(readdirSync(out).sort(), ["advice.html", "advice.json"]);
    const html = readFileSync(join(out, "advice.html"), "utf8");
    assert.match(html, /<h2>Per-GPU load<\/h2><figure><svg/);
    assert.match(html, /<h2>Gain against re-plan interval<\/h2>/);
    assert.deepEqual(
      JSON.parse(readFileSync(join(out, "advice.json"), "utf8")),
      a,
    );
  });

  test("the table names the recommendation and its reasons", () => {
    const r = advise([]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^strategy +slots\/GPU/m);
    assert.match(r.stdout, /Recommendation: /);
    assert.match(r.stdout, /static EP: the busiest GPU computes/);
  });

  test("the first line says which EPLB policy the plans took", () => {
    const first = (...more: string[]) => {
      const r = advise(more);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.split("\n")[0];
    };
    const head = "3 steps x 2 layers, 4 experts on 2 GPUs";
    assert.equal(first(), `${head} (1 node), EPLB with 6 slots`);
    assert.equal(
      first("--nodes", "2", "--groups", "2"),
      `${head} (2 nodes), EPLB with 6 slots (its hierarchical policy: 2 groups packed onto 2 nodes)`,
    );
    assert.equal(
      first("--nodes", "2"),
      `${head} (2 nodes), EPLB with 6 slots (its global policy: 1 group is no multiple of 2 nodes)`,
    );
    const json = JSON.parse(advise(["--nodes", "2", "--json"]).stdout);
    assert.deepEqual([json.groups, json.eplbPolicy], [1, "global"]);
    const page = join(work, "policy");
    assert.equal(advise(["--nodes", "2", "--out", page]).code, 0);
    assert.ok(
      readFileSync(join(page, "advice.html"), "utf8").includes(
        "(its global policy: 1 group is no multiple of 2 nodes)",
      ),
    );
  });

  test("steps without tokens: no re-plan on a window without tokens (it stopped the command)", () => {
    // Steps 0 and 2 hold no tokens. Re-planned every step from the trivial
    // map (GPU 0: experts 0 and 1, GPU 1: experts 2 and 3), only the
    // window of step 1 (loads 3, 1, 0, 0: GPU 0 takes all 4) can gain.
    const f = join(work, "zero_steps.csv");
    writeFileSync(
      f,
      "step,layer,e0,e1,e2,e3\n0,0,0,0,0,0\n1,0,3,1,0,0\n2,0,0,0,0,0\n3,0,2,2,1,1\n",
    );
    const r = cli([
      "advise",
      "--loads",
      f,
      "--gpus",
      "2",
      "--replicas",
      "4",
      "--interval",
      "1",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const a = JSON.parse(r.stdout);
    const replan = a.strategies.find((s: { key: string }) =>
      s.key === "eplb-replan"
    );
    assert.equal(replan.replans, 1);
    // Static EP on step 3 (step 2 has no tokens): GPU loads 4 and 2.
    assert.equal(a.strategies[0].maxOverMean, 4 / 3);
  });

  test("engine recordings by content: SGLang stat mode and TensorRT-LLM ranks", () => {
    // What make_serving_fixtures.py says each file holds.
    const truth = JSON.parse(
      readFileSync(join(root, "data/fixtures/serving_fixtures.json"), "utf8"),
    );
    for (const name of ["sglang_stat.pt", "trtllm"]) {
      const r = cli([
        "advise",
        "--loads",
        join(root, "data/fixtures", name),
        "--gpus",
        "2",
        "--replicas",
        "8",
        "--json",
      ]);
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      const a = JSON.parse(r.stdout);
      const counts: number[][][] = truth[name].counts;
      assert.equal(a.steps, counts.length);
      assert.equal(a.experts, truth[name].experts);
      const half = Math.ceil(counts.length / 2);
      assert.ok(
        Math.abs(
          a.strategies[0].maxOverMean - staticMaxOverMean(counts, 2, half),
        ) < 1e-12,
        name,
      );
    }
  });

  const DATA = join(
    dirname(fileURLToPath(import.meta.url)),
    "../../shared/data",
  );
  const QWEN = join(
    DATA,
    "harmoeny/data_processed_expert_freq_qwen_policy_datasets.csv",
  );
  const skip = existsSync(QWEN)
    ? false
    : `real traces not found at ${DATA} (a clean clone has no ../shared/data)`;
  test("HarMoEny's Qwen trace (wikitext): 20 steps x 12 layers of 60 experts", {
    skip,
  }, () => {
    // The wide HarMoEny table (,dataset,iteration,layer_idx,0..59) as a long
    // table of one data set, written here with string splitting alone.
    const lines = readFileSync(QWEN, "utf8").trim().split("\n");
    const long = ["step,layer,expert,load"];
    for (const line of lines.slice(1)) {
      const [, dataset, step, layer, ...loads] = line.split(",");
      if (dataset !== "wikitext") continue;
      loads.forEach((x, e) => long.push(`${step},${layer},${e},${x}`));
    }
    const path = join(work, "qwen_wikitext.csv");
    writeFileSync(path, long.join("\n") + "\n");
    const r = cli([
      "advise",
      "--loads",
      path,
      "--gpus",
      "4",
      "--replicas",
      "64",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const a = JSON.parse(r.stdout);
    assert.equal(a.steps, 20);
    assert.equal(a.layers, 12);
    assert.equal(a.experts, 60);
    const rec = readLong(path);
    const stat = a.strategies[0];
    assert.ok(
      Math.abs(stat.maxOverMean - staticMaxOverMean(rec, 4, 10)) < 1e-12,
    );
    const distinct = a.strategies.find((s: { key: string }) =>
      s.key === "eplb-distinct"
    );
    assert.equal(distinct.colocated, 0);
    assert.ok(distinct.maxOverMean < stat.maxOverMean);
    assert.ok(a.recommendation.reasons.length >= 3);
  });

  test("cleanup", () => rmSync(work, { recursive: true, force: true }));
});
