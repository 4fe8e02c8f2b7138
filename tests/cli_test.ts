import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli } from "./_cli.ts";
import { encodeNpy } from "../mod.ts";

const SMALL = [
  "--steps",
  "4",
  "--layers",
  "1",
  "--tokens",
  "64",
  "--experts",
  "8",
  "--top-k",
  "2",
];

describe("moelab sim (command line)", () => {
  const work = mkdtempSync(join(tmpdir(), "moelab-cli-"));

  test("--json prints summary.json and writes the files", () => {
    const out = join(work, "ok");
    const r = cli(["sim", ...SMALL, "--json", "--quiet", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.deepEqual(summary.methods.map((m: { method: string }) => m.method), [
      "greedy",
      "loss-free",
    ]);
    assert.equal(summary.config.experts, 8);
    for (
      const key of [
        "maxVioBatch",
        "maxVioGlobal",
        "scoreRetention",
        "stepsToBalance",
        "wallMs",
      ]
    ) {
      assert.ok(key in summary.methods[0], key);
    }
    assert.deepEqual(
      readdirSync(out).filter((f) => !f.endsWith(".html")).sort(),
      [
        "biases.parquet",
        "gpu_loads.parquet",
        "loads.parquet",
        "metrics.parquet",
        "summary.json",
      ],
    );
  });

  test("prints the table, with progress on stderr", () => {
    const r = cli([
      "sim",
      ...SMALL,
      "--out",
      join(work, "table"),
      "--methods",
      "greedy,loss-free(rate=1e-2,rule=proportional)",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /MaxVio_global/);
    assert.match(r.stdout, /loss-free\(rate=1e-2,rule=proportional\)/);
    assert.match(r.stderr, /step 4\/4/);
  });

  test("--help exits 0", () => {
    const r = cli(["sim", "--help"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /--top-k/);
  });

  const badNpy = join(work, "bad.npy");
  writeFileSync(badNpy, "not a numpy file");
  const nanNpy = join(work, "nan.npy");
  writeFileSync(nanNpy, encodeNpy(new Float32Array([0, NaN, 1, 2]), [1, 2, 2]));
  const badPreset = join(work, "bad.json");
  writeFileSync(badPreset, "{ experts: 8 ");
  const typoPreset = join(work, "typo.json");
  writeFileSync(typoPreset, JSON.stringify({ expertz: 8 }));

  const cases: [string, string[], RegExp][] = [
    [
      "top-k larger than experts",
      ["--top-k", "9"],
      /at most the number of experts \(8\): current value is 9/,
    ],
    [
      "an unknown method",
      ["--methods", "greedy,magic"],
      /method must be one of .*"magic"/,
    ],
    [
      "a negative size",
      ["--tokens", "-5"],
      /--tokens must be a positive integer: current value is -5/,
    ],
    [
      "a non-integer size",
      ["--layers", "2.5"],
      /--layers must be an integer: current value is 2.5/,
    ],
    [
      "a size that is not a number",
      ["--steps", "ten"],
      /--steps must be a number/,
    ],
    ["a malformed preset", ["--preset", badPreset], /is not valid JSON/],
    [
      "a preset with an unknown key",
      ["--preset", typoPreset],
      /unknown key "expertz"/,
    ],
    [
      "a missing preset",
      ["--preset", join(work, "none.json")],
      /preset cannot be read/,
    ],
    ["a malformed .npy file", ["--scores", badNpy], /not a \.npy file/],
    ["NaN scores", ["--scores", nanNpy], /must not hold NaN/],
    ["an unknown flag", ["--colour", "red"], /unknown flag --colour/],
    [
      "an unknown method option",
      ["--methods", "loss-free(speed=2)"],
      /^error: --methods loss-free\(speed=2\): loss-free has no option "speed"/,
    ],
    [
      "--groups that do not divide the experts",
      ["--groups", "3"],
      /^error: --groups must divide the number of experts \(8\): current value is 3$/,
    ],
    [
      "--top-groups above --groups",
      ["--groups", "4", "--top-groups", "5"],
      /^error: --top-groups must be an integer in \[1, 4\]: current value is 5$/,
    ],
    [
      "--top-groups that leave fewer experts than --top-k",
      ["--groups", "8", "--top-groups", "1"],
      /^error: --top-groups x group size must be at least topK \(2\): current value is 1 x 1$/,
    ],
    [
      "--nodes that do not divide the GPUs",
      ["--nodes", "3"],
      /^error: --nodes must divide the number of GPUs \(8\): current value is 3$/,
    ],
    [
      "--nodes 0",
      ["--nodes", "0"],
      /^error: --nodes must be a positive integer: current value is 0$/,
    ],
    [
      "an unknown --strategies entry",
      ["--strategies", "eplb,magic"],
      /^error: --strategies must be one of "static", "eplb", .*: current value is "magic"$/,
    ],
    [
      "a strategy twice",
      ["--strategies", "eplb,eplb"],
      /^error: --strategies must not repeat a strategy: current value is eplb,eplb$/,
    ],
    [
      "an unknown --hardware",
      ["--hardware", "a100"],
      /^error: --hardware must be one of "h100", "h800", "h200": current value is "a100"$/,
    ],
    [
      "--redundant slots that leave the GPUs unevenly filled",
      ["--redundant", "3"],
      /^error: --redundant must make experts \+ redundant \(8 \+ 3\) a multiple of --gpus \(8\): current value is 3$/,
    ],
    [
      "expert-choice under --top-groups (the flags named)",
      ["--groups", "4", "--top-groups", "2", "--methods", "expert-choice"],
      /: current value is --top-groups 2 of --groups 4$/,
    ],
    [
      "a method option its schedule needs, missing (the entry named)",
      ["--methods", "greedy,loss-free(schedule=cosine)"],
      /^error: --methods loss-free\(schedule=cosine\): scheduleSteps must be set for the cosine schedule/,
    ],
  ];
  for (const [what, args, message] of cases) {
    test(`rejects ${what}: exit 2, one line, nothing written`, () => {
      const out = join(work, "never");
      // A recording fixes the sizes: --scores runs without SMALL's.
      const sizes = args[0] === "--scores" ? ["--top-k", "2"] : SMALL;
      const r = cli(["sim", ...sizes, ...args, "--out", out]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, /^error: /);
      assert.match(r.stderr.trimEnd(), message);
      assert.equal(existsSync(out), false);
      assert.deepEqual(
        readdirSync(work).filter((f) => f.includes(".tmp-")),
        [],
      );
    });
  }

  /** summary.json of a small run with `args`, wall time left out. */
  const summaryOf = (args: string[]) => {
    const r = cli([
      "sim",
      ...SMALL,
      ...args,
      "--json",
      "--quiet",
      "--out",
      join(work, "flags"),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    for (const m of summary.methods) delete m.wallMs;
    return summary;
  };

  test("--groups, --top-groups and --nodes set what the preset's groups, topGroups and ep.gpusPerNode set", () => {
    const run = summaryOf;
    const flags = run(["--groups", "4", "--top-groups", "2", "--nodes", "2"]);
    assert.equal(flags.config.groups, 4);
    assert.equal(flags.config.topGroups, 2);
    assert.equal(flags.config.ep.gpus, 8);
    assert.equal(flags.config.ep.gpusPerNode, 4);
    const preset = join(work, "groups.json");
    writeFileSync(
      preset,
      JSON.stringify({ groups: 4, topGroups: 2, ep: { gpusPerNode: 4 } }),
    );
    assert.deepEqual(flags, run(["--preset", preset]));
    // The limit binds: the same run without it routes otherwise.
    assert.notDeepEqual(flags.methods, run(["--nodes", "2"]).methods);
    // A flag overrides the preset's key; --nodes takes --gpus' GPUs.
    const over = run([
      "--preset",
      preset,
      "--groups",
      "2",
      "--gpus",
      "4",
      "--nodes",
      "4",
    ]);
    assert.equal(over.config.groups, 2);
    assert.equal(over.config.topGroups, 2);
    assert.equal(over.config.ep.gpusPerNode, 1);
  });

  test("--redundant, --strategies and --hardware set the preset's ep.redundant, ep.strategies and ep.hardware", () => {
    const run = (args: string[]) =>
      summaryOf(["--gpus", "4", "--nodes", "2", ...args]);
    const flags = run([
      "--redundant",
      "4",
      "--strategies",
      "hierarchical-lp,eplb-hierarchical",
      "--hardware",
      "h800",
    ]);
    // Static EP first, then the listed ones in their order.
    assert.deepEqual(flags.config.ep.strategies, [
      "static",
      "hierarchical-lp",
      "eplb-hierarchical",
    ]);
    assert.equal(flags.config.ep.redundant, 4);
    assert.equal(flags.config.ep.hardware, "h800");
    assert.deepEqual(Object.keys(flags.methods[0].ep), [
      "static",
      "hierarchical-lp",
      "eplb-hierarchical",
    ]);
    const preset = join(work, "ep.json");
    writeFileSync(
      preset,
      JSON.stringify({
        ep: {
          redundant: 4,
          strategies: ["static", "hierarchical-lp", "eplb-hierarchical"],
          hardware: "h800",
        },
      }),
    );
    assert.deepEqual(flags, run(["--preset", preset]));
    // Another hardware preset times the same schedules otherwise.
    const h100 = run([
      "--redundant",
      "4",
      "--strategies",
      "hierarchical-lp,eplb-hierarchical",
    ]);
    assert.notEqual(
      h100.methods[0].ep.static.stepTimeMs,
      flags.methods[0].ep.static.stepTimeMs,
    );
  });

  test("an unknown command exits 2", () => {
    assert.equal(cli(["simulate"]).code, 2);
  });

  test("cleans up", () => {
    rmSync(work, { recursive: true, force: true });
  });
});
