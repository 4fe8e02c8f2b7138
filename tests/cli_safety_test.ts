// Bad input to every command: exit 2, one stderr line naming the flag and
// the value, nothing written, and no work done first (the run ends within
// the start-up time, its output folder untouched). Also the exact load
// path (counts above 2^31 read exactly, above 2^53 refused), whole-folder
// replacement of outputs and a closed standard output.
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
import { cli, root } from "./_cli.ts";
import { readLoadRows } from "../lib/cli/_loads.ts";

const work = mkdtempSync(join(tmpdir(), "moelab-safety-"));
after(() => rmSync(work, { recursive: true, force: true }));

/** A start-up of deno with Polars takes ~1 s; a run that does work takes far longer. */
const FAST_MS = 8000;

const SMALL = ["--steps", "2", "--layers", "1", "--tokens", "32"];

function file(name: string, text: string): string {
  const p = join(work, name);
  writeFileSync(p, text);
  return p;
}

/** Every path under `dir` with its size and mtime, to prove nothing changed. */
function snapshot(dir: string): string {
  if (!existsSync(dir)) return "absent";
  return readdirSync(dir, { recursive: true }).map(String).sort().map((n) => {
    const s = statSync(join(dir, n));
    return `${n}:${s.size}:${s.mtimeMs}`;
  }).join("\n");
}

/**
 * Runs `args`, asserting exit 2, exactly one stderr line that matches
 * `message`, a fast end, and `watch` (a folder) left as it was.
 */
function refused(args: string[], message: RegExp, watch = work): string {
  const before = snapshot(watch);
  const t0 = performance.now();
  const r = cli(args);
  const ms = performance.now() - t0;
  assert.equal(r.code, 2, `${args.join(" ")}\n${r.stderr}`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^error: /);
  assert.match(lines[0], message);
  assert.doesNotMatch(r.stderr, /\n\s+at /); // no stack trace
  assert.equal(r.stdout, "");
  assert.ok(ms < FAST_MS, `${args.join(" ")} took ${ms.toFixed(0)} ms`);
  assert.equal(snapshot(watch), before, "the command wrote something");
  return lines[0];
}

describe("sim refuses bad output paths before any work", () => {
  test("--out is an existing file", () => {
    const f = file("results.txt", "mine\n");
    refused(
      ["sim", ...SMALL, "--out", f],
      /^error: --out must be a folder, but it is an existing file: current value is ".*results\.txt"$/,
    );
    assert.equal(readFileSync(f, "utf8"), "mine\n");
  });
  test("--out lies under a file", () => {
    const f = file("plain", "x");
    refused(
      ["sim", ...SMALL, "--out", join(f, "a", "b")],
      /--out lies under ".*plain", which is a file/,
    );
  });
  test("--out in /proc cannot be written", () => {
    refused(
      ["sim", ...SMALL, "--out", "/proc/self/moelab-run"],
      /^error: --out cannot be written \(.*\): current value is "\/proc\/self\/moelab-run"$/,
    );
  });
  test("--out= (empty) and --out followed by a flag", () => {
    refused(
      ["sim", ...SMALL, "--out="],
      /--out must name a folder: current value is ""/,
    );
    refused(
      ["sim", ...SMALL, "--out", "--json"],
      /flag --out needs a value: the next argument is the flag --json/,
    );
    assert.ok(!existsSync(join(root, "--json")));
  });
  test("--out a folder holding other files", () => {
    const dir = join(work, "notes");
    mkdirSync(dir);
    writeFileSync(join(dir, "notes.md"), "keep me");
    refused(
      ["sim", ...SMALL, "--out", dir],
      /--out holds "notes\.md", which this run does not write/,
      dir,
    );
  });
});

describe("sim names flags and bounds memory", () => {
  test("an EP setting names --gpus, not ep.gpus", () => {
    refused(
      ["sim", ...SMALL, "--gpus", "7", "--out", join(work, "g")],
      /^error: --gpus must divide the number of experts \(64\): current value is 7$/,
    );
  });
  test("--gpus below the default replicas names --replicas, its default and --gpus", () => {
    // It said "ep.replicas must be an integer in [1, 1]: current value is 2".
    refused(
      ["sim", ...SMALL, "--gpus", "1", "--out", join(work, "g1")],
      /^error: --replicas must be at most --gpus \(1: each replica of an expert on its own GPU\): current value is 2 \(the default\)$/,
    );
    refused(
      ["sim", ...SMALL, "--replicas", "9", "--out", join(work, "g9")],
      /^error: --replicas must be at most --gpus \(8: .*\): current value is 9$/,
    );
    // schedule said "--replicas must be an integer in [1, 1]: current value is 2".
    const loads = file("ep1.csv", "step,layer,e0,e1\n0,0,3,1\n");
    refused(
      ["schedule", "--loads", loads, "--gpus", "1"],
      /^error: --replicas must be at most --gpus \(1: each replica of an expert on its own GPU\): current value is 2 \(the default\)$/,
    );
    const p = file("ep1.json", JSON.stringify({ ep: { gpus: 1 } }));
    refused(
      ["sim", "--preset", p, ...SMALL, "--out", join(work, "g2")],
      /^error: --replicas must be at most ep\.gpus \(1: .*\): current value is 2 \(the default\)$/,
    );
  });
  test("a range prints in words, not [5e-324, Infinity]", () => {
    const line = refused(
      [
        "sim",
        ...SMALL,
        "--methods",
        "capacity(capacityFactor=-2)",
        "--out",
        join(work, "c"),
      ],
      /capacityFactor must be a positive number: current value is -2/,
    );
    assert.doesNotMatch(line, /e-324|Infinity/);
  });
  test("a method's bad option names the --methods entry", () => {
    refused(
      [
        "sim",
        ...SMALL,
        "--methods",
        "greedy,quantile,loss-free(rate=-3)",
        "--out",
        join(work, "r"),
      ],
      /^error: --methods loss-free\(rate=-3\): rate must be a number of at least 0: current value is -3$/,
    );
    refused(
      [
        "train",
        "--methods",
        "none,seq-aux(alpha=-1)",
        "--out",
        join(work, "r"),
      ],
      /^error: --methods seq-aux\(alpha=-1\): alpha must be a number of at least 0: current value is -1$/,
    );
  });
  test("expert-choice under a group limit is refused (it would be shown as keeping it)", () => {
    const p = file(
      "ec-groups.json",
      JSON.stringify({ groups: 8, topGroups: 4, methods: ["expert-choice"] }),
    );
    const why = "expert-choice takes no group limit \\(each expert picks " +
      "its tokens, so no token's experts are confined to its best groups\\): " +
      "current value is topGroups 4 of groups 8";
    refused(
      ["sim", "--preset", p, ...SMALL, "--out", join(work, "ec")],
      new RegExp(`^error: ${why}$`),
    );
    refused(
      [
        "sim",
        "--preset",
        p,
        ...SMALL,
        "--methods",
        "greedy,expert-choice(capacityFactor=2)",
        "--out",
        join(work, "ec"),
      ],
      new RegExp(
        `^error: --methods expert-choice\\(capacityFactor=2\\): ${why}$`,
      ),
    );
    // Without a limit (every group kept) it runs.
    const ok = cli([
      "sim",
      "--preset",
      file("ec-all.json", JSON.stringify({ groups: 8, topGroups: 8 })),
      ...SMALL,
      "--methods",
      "expert-choice",
      "--quiet",
      "--out",
      join(work, "ec-ok"),
    ]);
    assert.equal(ok.code, 0, ok.stderr);
  });
  test("a preset with 3e6 experts says how much memory it needs", () => {
    const p = file("wide.json", JSON.stringify({ experts: 3e6, topK: 2 }));
    refused(
      ["sim", "--preset", p, "--out", join(work, "m")],
      /experts 3000000, .* make the run need about \d+\.\d GiB .* above the bound of 8 GiB/,
    );
  });
});

describe("train refuses before training", () => {
  test("--out an existing file, and a flag as its value", () => {
    const f = file("train.txt", "x");
    refused(["train", "--steps", "1", "--out", f], /--out must be a folder/);
    refused(["train", "--out", "--quiet"], /flag --out needs a value/);
  });
  test("a seed twice (the same run counted twice in mean and std)", () => {
    refused(
      ["train", "--seeds", "1,2,1", "--out", join(work, "s")],
      /^error: seeds must be distinct: 1 appears twice$/,
    );
  });
  test("a seed past 2^53 - 1 names --seeds and its bound", () => {
    refused(
      ["train", "--seeds", "1,1e20", "--out", join(work, "s")],
      /^error: --seeds must list integers in \[0, 2\^53 - 1\]: current value is "1,1e20"$/,
    );
  });
  test("validTokens 5e8 is above the stated bound", () => {
    const p = file(
      "t.json",
      JSON.stringify({
        methods: ["none"],
        seeds: [1],
        steps: 1,
        validTokens: 5e8,
      }),
    );
    refused(
      ["train", "--preset", p, "--out", join(work, "t")],
      /^error: validTokens must be an integer in \[32, 1048576\]: current value is 500000000$/,
    );
  });
});

describe("load tables: exact counts, extra columns, --where", () => {
  const out = join(work, "unused");
  test("3000000000 is refused by schedule by its true value, not a wrapped one", () => {
    const f = file(
      "three.csv",
      "step,layer,expert,load\n0,0,0,3000000000\n0,0,1,1\n",
    );
    const line = refused(
      ["schedule", "--loads", f],
      /holds 3000000001 tokens at step 0, layer 0/,
    );
    assert.doesNotMatch(line, /-1294967296/);
  });
  test("2^53 + 2 and 1e300 are refused naming the value", () => {
    const f = file(
      "p53.csv",
      "step,layer,expert,load\n0,0,0,9007199254740994\n0,0,1,1\n",
    );
    refused(
      ["place", "--loads", f, "--replicas", "2", "--gpus", "2"],
      /up to 2\^53 - 1 .*expert 0 is 9007199254740994$/,
    );
    const g = file("e300.csv", "step,layer,expert,load\n0,0,1,1e300\n");
    refused(
      ["place", "--loads", g, "--replicas", "2", "--gpus", "2"],
      /expert 1 is 1e\+300$/,
    );
  });
  test("counts above 2^31 are read exactly (readLoadRows)", () => {
    const f = file(
      "exact.csv",
      "step,layer,expert,load\n0,0,0,4294967296\n0,0,1,9007199254740991\n0,0,2,2147483648\n",
    );
    const { experts, rows } = readLoadRows(f);
    assert.equal(experts, 3);
    assert.deepEqual([...rows[0].loads], [2 ** 32, 2 ** 53 - 1, 2 ** 31]);
    assert.throws(
      () => readLoadRows(file("over.csv", "expert,load\n0,9007199254740994\n")),
      (e: Error) =>
        e instanceof RangeError && /9007199254740994/.test(e.message),
    );
  });
  test("a long table without its load column says so", () => {
    const f = file("noload.csv", "step,layer,expert,tokens\n0,0,0,5\n");
    const line = refused(
      ["schedule", "--loads", f],
      /--loads is a long table .* has no "load" column/,
    );
    assert.doesNotMatch(line, /GPU/);
  });
  test("a column the command does not use is refused unless --where picks rows", () => {
    const f = file(
      "runs.csv",
      "run,step,layer,expert,load\na,0,0,0,6\na,0,0,1,2\nb,0,0,0,1\nb,0,0,1,9\n",
    );
    refused(
      ["schedule", "--loads", f, "--gpus", "2", "--replicas", "1"],
      /column the command does not use, "run" \(holding "a", "b"\).*--where run=VALUE/,
    );
    refused(
      ["schedule", "--loads", f, "--where", "run"],
      /--where must be COLUMN=VALUE/,
    );
    refused(
      ["schedule", "--loads", f, "--where", "run=c"],
      /--where run=c matches no row/,
    );
    // The rows of run b alone, against the same rows written without the column.
    const picked = cli([
      "schedule",
      "--loads",
      f,
      "--where",
      "run=b",
      "--gpus",
      "2",
      "--replicas",
      "1",
      "--placement",
      "static",
      "--json",
    ]);
    const alone = cli([
      "schedule",
      "--loads",
      file("b.csv", "step,layer,expert,load\n0,0,0,1\n0,0,1,9\n"),
      "--gpus",
      "2",
      "--replicas",
      "1",
      "--placement",
      "static",
      "--json",
    ]);
    assert.equal(picked.code, 0, picked.stderr);
    assert.equal(picked.stdout, alone.stdout);
    // Static placement of 2 experts on 2 GPUs: loads 1 and 9, never 7 and 11.
    assert.deepEqual(JSON.parse(picked.stdout).rows[0].gpuLoads, [1, 9]);
  });
  test("a wide table's expert column with every cell empty is named as such, not as a label", () => {
    const f = file(
      "empty_col.csv",
      "step,layer,e0,e1,e2\n0,0,5,,3\n1,0,4,,2\n",
    );
    const line = refused(
      ["schedule", "--loads", f, "--gpus", "3"],
      /--loads column "e1" must hold non-negative loads: row 0 is empty$/,
    );
    assert.doesNotMatch(line, /--where/);
    // A text column is still a label: refused with --where's advice.
    const g = file(
      "label_col.csv",
      "method,step,layer,e0,e1\ngreedy,0,0,5,3\n,1,0,4,2\n",
    );
    refused(
      ["schedule", "--loads", g, "--gpus", "2"],
      /column the command does not use, "method" .*--where method=VALUE/,
    );
  });
  test("--experts counts experts a table does not list (it was ignored for tables)", () => {
    const f = file("four.csv", "step,layer,e0,e1,e2,e3\n0,0,6,2,1,1\n");
    const r = cli([
      "place",
      "--loads",
      f,
      "--gpus",
      "2",
      "--replicas",
      "6",
      "--experts",
      "6",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const { logcnt, phy2log } = JSON.parse(r.stdout);
    // Six logical experts, each with one slot: experts 4 and 5 (no load)
    // included.
    assert.deepEqual(logcnt, [[1, 1, 1, 1, 1, 1]]);
    assert.deepEqual([...phy2log[0]].sort(), [0, 1, 2, 3, 4, 5]);
    refused(
      [
        "place",
        "--loads",
        f,
        "--gpus",
        "2",
        "--replicas",
        "4",
        "--experts",
        "3",
      ],
      /^error: --experts must be an integer of at least 4 \(the experts of --loads\): current value is 3$/,
    );
  });
  test("an expert id of 1.5e9 is refused with the memory it needs, at once", () => {
    const f = file("id.csv", "step,layer,expert,load\n0,0,1500000000,1\n");
    refused(
      ["place", "--loads", f, "--replicas", "2", "--gpus", "2"],
      /--loads names expert 1500000000: .* GiB\), above the bound/,
    );
  });
  test("--experts beyond the stated bound, and library errors named by flag", () => {
    refused(
      [
        "advise",
        "--loads",
        join(root, "data/fixtures/routed_experts.npy"),
        "--experts",
        "3000000",
        "--gpus",
        "2",
        "--replicas",
        "4",
      ],
      /^error: --experts must be an integer in \[1, 1048576\].*current value is 3000000$/,
    );
    const f = file("four.csv", "step,layer,expert,load\n0,0,0,1\n0,0,3,2\n");
    refused(
      ["place", "--loads", f, "--replicas", "3", "--gpus", "1"],
      /^error: --replicas must be an integer of at least 4: current value is 3$/,
    );
    refused(
      ["place", "--loads", f, "--replicas", "8", "--gpus", "4", "--nodes", "3"],
      /^error: --nodes must divide --gpus \(4\): current value is 3$/,
    );
  });
  test("place --out is checked before the loads are read", () => {
    const f = file(
      "place_ok.csv",
      "step,layer,expert,load\n0,0,0,1\n0,0,1,2\n",
    );
    const dir = join(work, "a-folder");
    mkdirSync(dir, { recursive: true });
    refused(
      [
        "place",
        "--loads",
        f,
        "--replicas",
        "2",
        "--gpus",
        "2",
        "--format",
        "vllm",
        "--out",
        dir,
      ],
      /--out must be a file, not a folder/,
    );
    refused(
      [
        "place",
        "--loads",
        f,
        "--replicas",
        "2",
        "--gpus",
        "2",
        "--format",
        "vllm",
        "--out",
        "/proc/map.json",
      ],
      /--out cannot be written/,
    );
    refused(
      [
        "place",
        "--loads",
        f,
        "--replicas",
        "2",
        "--gpus",
        "2",
        "--format",
        "vllm",
        "--out=",
      ],
      /--out must name a file/,
    );
    void out;
  });
});

describe("advise and sweep check --out first", () => {
  const loads = join(root, "data/fixtures/loads_long.csv");
  test("advise --out an existing file or a folder of other files", () => {
    const f = file("advice.txt", "x");
    refused(
      [
        "advise",
        "--loads",
        loads,
        "--gpus",
        "2",
        "--replicas",
        "4",
        "--out",
        f,
      ],
      /--out must be a folder, but it is an existing file/,
    );
    const dir = join(work, "adv");
    mkdirSync(dir);
    writeFileSync(join(dir, "mine.csv"), "x");
    refused(
      [
        "advise",
        "--loads",
        loads,
        "--gpus",
        "2",
        "--replicas",
        "4",
        "--out",
        dir,
      ],
      /--out holds "mine\.csv"/,
      dir,
    );
  });
  test("sweep --out a file, or under one", () => {
    const grid = file(
      "grid.json",
      JSON.stringify({ preset: { steps: 2 }, grid: { seed: [1, 2] } }),
    );
    const f = file("sweep.txt", "x");
    refused(
      ["sweep", "--grid", grid, "--out", join(f, "x")],
      /--out lies under/,
    );
    refused(
      ["sweep", "slurm", "--grid", grid, "--out", "", "--array", "2"],
      /--out (is required|must name a folder)/,
    );
  });
});

describe("outputs are replaced as a whole", () => {
  test("a run without the EP stage leaves no gpu_loads.parquet of an earlier run", () => {
    const dir = join(work, "swap");
    const a = cli([
      "sim",
      ...SMALL,
      "--experts",
      "8",
      "--top-k",
      "2",
      "--quiet",
      "--out",
      dir,
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.ok(existsSync(join(dir, "gpu_loads.parquet")));
    const p = file("noep.json", JSON.stringify({ ep: null }));
    const b = cli([
      "sim",
      "--preset",
      p,
      ...SMALL,
      "--experts",
      "8",
      "--top-k",
      "2",
      "--quiet",
      "--out",
      dir,
    ]);
    assert.equal(b.code, 0, b.stderr);
    assert.deepEqual(readdirSync(dir).sort(), [
      "biases.parquet",
      "loads.parquet",
      "metrics.parquet",
      "report.html",
      "summary.json",
    ]);
    // No temporary folder is left beside it.
    assert.deepEqual(
      readdirSync(work).filter((n) => n.startsWith(".swap")),
      [],
    );
  });
});

describe("a closed standard output ends a command quietly", () => {
  test("schedule | head -1", () => {
    const rows = ["step,layer,0,1,2,3"];
    for (let s = 0; s < 4000; s++) rows.push(`${s},0,${s % 7},3,1,${s % 5}`);
    const f = file("many.csv", rows.join("\n") + "\n");
    const r = spawnSync("bash", [
      "-c",
      `deno run -A lib/cli/main.ts schedule --loads '${f}' --solver auto 2>'${work}/err' | head -1; echo "\${PIPESTATUS[0]}"`,
    ], { cwd: root, encoding: "utf8" });
    const [first, code] = r.stdout.trimEnd().split("\n");
    assert.match(first, /^4000 schedules, 4 experts on 8 GPUs/);
    assert.equal(code, "0");
    assert.equal(readFileSync(join(work, "err"), "utf8"), "");
  });
});

describe("a disk that cannot take the run", () => {
  // Needs mount (root in a container that allows it); skipped elsewhere.
  const full = join(work, "full"), ro = join(work, "ro");
  mkdirSync(full);
  mkdirSync(ro);
  const mounted = (dir: string, opts: string) =>
    spawnSync("mount", ["-t", "tmpfs", "-o", opts, "tmpfs", dir]).status === 0;
  const canMount = mounted(full, "size=64k") && mounted(ro, "size=64k,ro");
  after(() => {
    for (const dir of [full, ro]) spawnSync("umount", [dir]);
  });
  const skip = canMount ? false : "mount of a tmpfs is not allowed here";

  test("a read-only mount is refused before any work", { skip }, () => {
    refused(
      ["sim", ...SMALL, "--out", join(ro, "run")],
      /^error: --out cannot be written \(EROFS in ".*ro"\)/,
    );
  });
  test("a full disk ends in one line, leaving nothing behind", { skip }, () => {
    const r = cli([
      "sim",
      ...SMALL,
      "--experts",
      "8",
      "--top-k",
      "2",
      "--quiet",
      "--out",
      join(full, "run"),
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /^error: cannot write ".*run" \(ENOSPC: .*\); it is left as it was\n$/,
    );
    assert.deepEqual(readdirSync(full), []);
  });
});
