// `moelab place` on serving-engine recordings, and the maps it writes for
// SGLang, vLLM and TensorRT-LLM.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { cli, root } from "./_cli.ts";

const FIXTURES = join(root, "data/fixtures");
const EXPECTED: Record<
  string,
  { steps: number[]; layers: number[]; experts: number; counts: number[][][] }
> = JSON.parse(readFileSync(join(FIXTURES, "serving_fixtures.json"), "utf8"));

/** The fixture's loads as a wide CSV (summed over steps): the table reader's path. */
function wideCsv(name: string, dir: string): string {
  const { layers, experts, counts } = EXPECTED[name];
  const header = ["layer", ...Array.from({ length: experts }, (_, e) => e)];
  const rows = layers.map((layer, l) => {
    const sum = new Array(experts).fill(0);
    for (const step of counts) step[l].forEach((x, e) => sum[e] += x);
    return [layer, ...sum].join(",");
  });
  const path = join(dir, `${name.replaceAll("/", "_")}.csv`);
  writeFileSync(path, [header.join(","), ...rows].join("\n") + "\n");
  return path;
}

function covers(row: number[], experts: number): boolean {
  return new Set(row).size === experts &&
    row.every((e) => e >= 0 && e < experts);
}

describe("place --loads <engine recording> --format", () => {
  const work = mkdtempSync(join(tmpdir(), "moelab-serving-"));
  const place = ["place", "--replicas", "12", "--gpus", "4"];

  test("SGLang stat recording -> --init-expert-location JSON: EPLB of the loads summed over steps", () => {
    const out = join(work, "sglang.json");
    const run = cli([
      ...place,
      "--loads",
      join(FIXTURES, "sglang_stat.pt"),
      "--format",
      "sglang",
      "--out",
      out,
    ]);
    assert.equal(run.code, 0, run.stderr);
    const map = JSON.parse(readFileSync(out, "utf8")).physical_to_logical_map;
    // The same loads through the CSV reader give the same EPLB answer.
    const csv = cli([
      ...place,
      "--loads",
      wideCsv("sglang_stat.pt", work),
      "--json",
    ]);
    assert.equal(csv.code, 0, csv.stderr);
    assert.deepEqual(map, JSON.parse(csv.stdout).phy2log);
    assert.equal(map.length, 2);
    for (const row of map) assert.ok(covers(row, 8));
  });

  test("the format is told by content: a torch.save file named .csv still reads", () => {
    const renamed = join(work, "recording.csv");
    copyFileSync(join(FIXTURES, "sglang_per_pass.pt"), renamed);
    const a = cli([...place, "--loads", renamed, "--json"]);
    const b = cli([
      ...place,
      "--loads",
      wideCsv("sglang_per_pass.pt", work),
      "--json",
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.deepEqual(
      JSON.parse(a.stdout).phy2log,
      JSON.parse(b.stdout).phy2log,
    );
  });

  test("TensorRT-LLM ranks -> moe_load_balancer.yaml keyed by layer id, the ranks summed", () => {
    const out = join(work, "eplb.yaml");
    const run = cli([
      ...place,
      "--loads",
      join(FIXTURES, "trtllm"),
      "--format",
      "trtllm",
      "--out",
      out,
    ]);
    assert.equal(run.code, 0, run.stderr);
    const yaml = readFileSync(out, "utf8");
    const csv = JSON.parse(
      cli([...place, "--loads", wideCsv("trtllm", work), "--json"]).stdout,
    );
    assert.deepEqual(yaml.split("\n"), [
      "num_slots: 12",
      "initial_global_assignments:",
      `  3: [${csv.phy2log[0].join(", ")}]`,
      `  4: [${csv.phy2log[1].join(", ")}]`,
      "layer_updates_per_iter: 0",
      "",
    ]);
  });

  test("--format sglang fills the layers before the first MoE layer, as SGLang's map counts them", () => {
    const run = cli([
      ...place,
      "--loads",
      join(FIXTURES, "trtllm"),
      "--format",
      "sglang",
    ]);
    assert.equal(run.code, 0, run.stderr);
    const map = JSON.parse(run.stdout).physical_to_logical_map;
    assert.equal(map.length, 5); // layers 0..4; 0..2 hold no loads
    for (const row of map) assert.ok(covers(row, 8));
  });

  /** place on the routed-experts fixture, 12 slots on 4 GPUs. */
  const placeRouted = (...args: string[]) =>
    cli([
      "place",
      "--replicas",
      "12",
      "--gpus",
      "4",
      "--loads",
      join(FIXTURES, "routed_experts.npy"),
      ...args,
    ]);

  test("routed experts -> vLLM's per-layer map, --experts counting experts never picked", () => {
    const run = placeRouted("--experts", "10", "--format", "vllm");
    assert.equal(run.code, 0, run.stderr);
    const map = JSON.parse(run.stdout);
    assert.equal(map.length, 2);
    for (const row of map) assert.ok(covers(row, 10));
  });

  test("--experts below the recording's largest id names --experts (it said '--loads options.experts')", () => {
    const run = placeRouted("--experts", "4");
    assert.equal(run.code, 2);
    assert.equal(
      run.stderr,
      "error: --experts must be an integer of at least 8 (the largest expert id in --loads plus 1): current value is 4\n",
    );
  });
});

describe("advise --loads <engine recording>", () => {
  const work = mkdtempSync(join(tmpdir(), "moelab-serving-advise-"));
  for (const name of ["trtllm", "sglang_per_pass.pt"]) {
    test(`${name}: the same advice as for its steps written as a long CSV`, () => {
      const { steps, layers, experts, counts } = EXPECTED[name];
      const lines = ["step,layer,expert,load"];
      counts.forEach((byLayer, s) =>
        byLayer.forEach((row, l) =>
          row.forEach((x, e) =>
            lines.push(`${steps[s]},${layers[l]},${e},${x}`)
          )
        )
      );
      assert.equal(lines.length, 1 + steps.length * layers.length * experts);
      const csv = join(work, `${name.replace(/\W/g, "_")}.csv`);
      writeFileSync(csv, lines.join("\n") + "\n");
      const args = ["advise", "--gpus", "4", "--replicas", "12", "--json"];
      const a = cli([...args, "--loads", join(FIXTURES, name)]);
      const b = cli([...args, "--loads", csv]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      assert.deepEqual(JSON.parse(a.stdout), JSON.parse(b.stdout));
    });
  }
});

describe("bad recordings and flags: one line, exit 2, nothing written", () => {
  const work = mkdtempSync(join(tmpdir(), "moelab-serving-bad-"));
  const out = join(work, "map.json");
  const base = [
    "place",
    "--replicas",
    "12",
    "--gpus",
    "4",
    "--format",
    "sglang",
    "--out",
    out,
  ];
  const cases: [string, string[], RegExp][] = [
    [
      "a pickle calling os.system",
      ["--loads", join(FIXTURES, "bad_pickle.pt")],
      /posix\.system.*refused/,
    ],
    [
      "a 2-D logical_count",
      ["--loads", join(FIXTURES, "bad_logical_count.pt")],
      /logical_count must be/,
    ],
    [
      "a dict of neither mode",
      ["--loads", join(FIXTURES, "bad_no_counts.pt")],
      /its keys are "rank", "counts"/,
    ],
    ["an unknown format", [
      "--loads",
      join(FIXTURES, "sglang_stat.pt"),
      "--format",
      "deepspeed",
    ], /--format must be one of/],
    [
      "a --loads file that does not exist",
      ["--loads", join(FIXTURES, "no_such_recording.pt")],
      /^error: --loads must name an existing file/m,
    ],
    [
      "a --loads table that does not exist",
      ["--loads", join(FIXTURES, "no_such_loads.csv")],
      /^error: --loads must name an existing file/m,
    ],
    ["an --out in a missing folder", [
      "--loads",
      join(FIXTURES, "sglang_stat.pt"),
      "--out",
      join(work, "no/map.json"),
    ], /--out must be a file in an existing folder/],
  ];
  for (const [what, args, message] of cases) {
    test(what, () => {
      const run = cli([...base, ...args]);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, message);
      assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
      assert.equal(existsSync(out), false);
      assert.deepEqual(readdirSync(work), []);
    });
  }

  test("a text file named .pt is no torch file", () => {
    const fake = join(work, "..", `fake-${process.pid}.pt`);
    writeFileSync(fake, "step,layer,expert,load\n0,0,0,1\n");
    const run = cli([...base, "--loads", fake]);
    assert.equal(run.code, 2);
    assert.match(
      run.stderr,
      /--loads .*fake-\d+\.pt is not a torch\.save, safetensors or \.npy file/,
    );
    assert.equal(existsSync(out), false);
  });
});
