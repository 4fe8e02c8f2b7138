import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli, type CliRun } from "./_cli.ts";
import {
  closedFormOptimum,
  EP_STRATEGIES,
  formatSummaryTable,
  runEpStage,
  runSimulation,
  symmetricPlacement,
} from "../mod.ts";
import { simReportHtml } from "../lib/report/mod.ts";

/** A command's first line of output, once it exited 0. */
function firstLine(r: CliRun): string {
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split("\n")[0];
}

// The EPLB README example, one row per layer.
const EPLB = [
  [90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
  [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27],
];

describe("schedule and place (command line)", () => {
  const work = mkdtempSync(join(tmpdir(), "moelab-ep-"));
  const header = ["step", "layer", ...EPLB[0].map((_, e) => String(e))].join(
    ",",
  );
  const wide = join(work, "wide.csv"), long = join(work, "long.csv");
  /** `moelab <command> --loads wide.csv` and the rest of its flags. */
  const onWide = (command: string, ...more: string[]) =>
    cli([command, "--loads", wide, ...more]);
  /** `schedule` of the wide table's layer 0 on EPLB's hierarchical placement. */
  const hierarchicalSchedule = (...more: string[]) =>
    onWide(
      "schedule",
      "--where",
      "layer=0",
      "--gpus",
      "8",
      "--top-k",
      "2",
      "--redundant",
      "4",
      "--placement",
      "hierarchical",
      ...more,
    );
  writeFileSync(
    wide,
    [header, ...EPLB.map((r, l) => [0, l, ...r].join(","))].join("\n") + "\n",
  );
  writeFileSync(
    long,
    [
      "step,layer,expert,load",
      ...EPLB.flatMap((r, l) => r.map((x, e) => `0,${l},${e},${x}`)),
    ]
      .join("\n") + "\n",
  );

  test("schedule --json: one row per layer, optimum = closed form, same for wide and long tables", () => {
    const runs = [wide, long].map((f) =>
      cli([
        "schedule",
        "--loads",
        f,
        "--gpus",
        "4",
        "--placement",
        "ring",
        "--json",
      ])
    );
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const [a, b] = runs.map((r) => JSON.parse(r.stdout));
    assert.deepEqual(a, b);
    const p = symmetricPlacement(12, 4, { graph: "ring" });
    assert.equal(a.placement.length, 4);
    assert.deepEqual(a.placement[0], [...p.slots.subarray(0, 6)]);
    a.rows.forEach(
      (
        row: {
          layer: number;
          optimum: number;
          maxLoad: number;
          gpuLoads: number[];
        },
        l: number,
      ) => {
        assert.equal(row.layer, l);
        assert.equal(row.optimum, closedFormOptimum(EPLB[l], p).optimum);
        assert.equal(row.maxLoad, Math.max(...row.gpuLoads));
      },
    );
  });

  test("place --json reproduces EPLB's README example", () => {
    const r = cli([
      "place",
      "--loads",
      wide,
      "--replicas",
      "16",
      "--gpus",
      "8",
      "--nodes",
      "2",
      "--groups",
      "4",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).phy2log, [
      [5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
      [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1],
    ]);
  });

  test("place says EPLB's policy: hierarchical where the nodes divide the groups, else global", () => {
    const place = (...more: string[]) =>
      onWide("place", "--replicas", "16", "--gpus", "8", ...more);
    assert.equal(
      firstLine(place("--nodes", "2", "--groups", "4")),
      "EPLB's hierarchical policy: 4 groups packed onto 2 nodes, replicas placed within each node",
    );
    const json = (...more: string[]) =>
      JSON.parse(place(...more, "--json").stdout);
    assert.equal(json("--nodes", "2", "--groups", "4").policy, "hierarchical");
    // 3 groups on 2 nodes: EPLB falls back to its global policy, which is
    // its hierarchical one with 1 group on 1 node.
    assert.equal(
      firstLine(place("--nodes", "2", "--groups", "3")),
      "EPLB's global policy: --groups 3 is not a multiple of --nodes 2, so groups are not kept on nodes",
    );
    const g = json("--nodes", "2", "--groups", "3");
    assert.equal(g.policy, "global");
    assert.deepEqual(g.phy2log, json().phy2log);
    assert.notDeepEqual(
      g.phy2log,
      json("--nodes", "2", "--groups", "4").phy2log,
    );
  });

  test("schedule --nodes: the network tokens of static EP by hand", () => {
    // Experts 0, 1 on GPU 0 (node 0), 2, 3 on GPU 1 (node 1); top-1, 16
    // tokens starting half on each node: node 0 gets 10, 5 from node 1.
    const tiny = join(work, "tiny.csv");
    writeFileSync(tiny, "0,1,2,3\n10,0,0,6\n");
    const r = cli([
      "schedule",
      "--loads",
      tiny,
      "--gpus",
      "2",
      "--placement",
      "static",
      "--nodes",
      "2",
      "--top-k",
      "1",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const row = JSON.parse(r.stdout).rows[0];
    assert.equal(row.networkTokens, 8);
    assert.equal(row.maxNicTokens, 5);
    assert.equal(row.nodesPerToken, 1);
  });

  test("schedule --placement hierarchical is EPLB's hierarchical policy; its experts stay on their node", () => {
    const r = hierarchicalSchedule(
      "--nodes",
      "2",
      "--groups",
      "4",
      "--top-groups",
      "2",
      "--json",
    );
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(
      out.placement.flat(),
      [5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
    );
    // Node-limited: groups of 3 experts, 2 groups kept, one group per node.
    assert.ok(out.rows[0].nodesPerToken <= 2 + 1e-12);
    assert.ok(out.rows[0].networkTokens > 0);
  });

  test("schedule --top-groups: applied where groups stay on nodes, said where they cannot", () => {
    // Experts 0-3 in 2 groups (0-1, 2-3). Static EP on 4 GPUs, 2 per node:
    // group 0 on node 0, group 1 on node 1, so a token of top-2 within 1
    // group reaches 1 node. The complete placement (2 replicas) puts each
    // expert on two GPUs, its groups across both nodes: no limit there.
    const tiny = join(work, "groups.csv");
    writeFileSync(tiny, "0,1,2,3\n6,2,4,4\n");
    const base = [
      "schedule",
      "--loads",
      tiny,
      "--gpus",
      "4",
      "--nodes",
      "2",
      "--top-k",
      "2",
      "--groups",
      "2",
      "--top-groups",
      "1",
    ];
    const stat = cli([...base, "--placement", "static", "--json"]);
    assert.equal(stat.code, 0, stat.stderr);
    const s = JSON.parse(stat.stdout);
    assert.equal(s.nodeLimit, 1);
    assert.equal(s.rows[0].nodesPerToken, 1);
    assert.match(
      firstLine(cli([...base, "--placement", "static"])),
      /; node-limited dispatch: a token reaches at most 1 node$/,
    );
    const all = cli([...base, "--placement", "complete", "--json"]);
    assert.equal(all.code, 0, all.stderr);
    const c = JSON.parse(all.stdout);
    assert.equal(c.nodeLimit, null);
    assert.ok(c.rows[0].nodesPerToken > 1);
    assert.match(
      firstLine(cli([...base, "--placement", "complete"])),
      /; --top-groups 1 does not limit dispatch: the complete placement puts a group's experts on more than one node$/,
    );
    // 4 groups of one expert, 2 kept, on 2 nodes: a token's 2 groups can
    // sit on both nodes, so the limit is the node count, no limit at all.
    const each = [...base.slice(0, -4), "--groups", "4", "--top-groups", "2"];
    const wide = cli([...each, "--placement", "static", "--json"]);
    assert.equal(wide.code, 0, wide.stderr);
    assert.equal(JSON.parse(wide.stdout).nodeLimit, 2);
    assert.match(
      firstLine(cli([...each, "--placement", "static"])),
      /; --top-groups 2 does not limit dispatch: a token's 2 groups can cover all 2 nodes$/,
    );
  });

  test("schedule --placement hierarchical with groups no multiple of the nodes: EPLB's global policy, said", () => {
    const run = hierarchicalSchedule;
    assert.equal(
      firstLine(run("--nodes", "2", "--groups", "3")),
      "1 schedules, 12 experts on 8 GPUs in 2 nodes (hierarchical: EPLB's global policy, --groups 3 is not a multiple of --nodes 2, 16 slots), solver exact-local",
    );
    // The global policy is the hierarchical one with 1 group on 1 node.
    const held = (...more: string[]) =>
      JSON.parse(run(...more, "--json").stdout).placement;
    assert.deepEqual(
      held("--nodes", "2", "--groups", "3"),
      held("--groups", "1"),
    );
    assert.doesNotMatch(
      firstLine(run("--nodes", "2", "--groups", "4")),
      /global policy/,
    );
  });

  test("bad input: exit 2 with one line", () => {
    for (
      const args of [
        ["place", "--loads", wide, "--replicas", "10", "--gpus", "8"],
        ["schedule", "--loads", join(work, "missing.csv")],
        ["schedule", "--loads", wide, "--solver", "cplex"],
        ["schedule", "--loads", wide, "--nodes", "3"],
        ["schedule", "--loads", wide, "--nodes", "2"],
        ["schedule", "--loads", wide, "--groups", "5"],
        [
          "schedule",
          "--loads",
          wide,
          "--nodes",
          "2",
          "--top-k",
          "2",
          "--solver",
          "highs",
        ],
        [
          "schedule",
          "--loads",
          wide,
          "--placement",
          "hierarchical",
          "--redundant",
          "3",
        ],
      ]
    ) {
      const r = cli(args);
      assert.equal(r.code, 2, args.join(" "));
      assert.match(r.stderr, /^error: [^\n]+\n$/);
    }
  });

  test("the slots' default that --gpus does not divide: the default named, not null", () => {
    // 12 experts, 2 replicas: 12 redundant slots by default, 24 slots,
    // which 5 GPUs do not divide.
    const r = cli([
      "schedule",
      "--loads",
      wide,
      "--where",
      "layer=0",
      "--gpus",
      "5",
      "--placement",
      "asymmetric",
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(
      r.stderr,
      "error: --redundant must make the slots (12 experts + 12) a multiple of --gpus (5): current value is 12, the default (12 experts x (--replicas 2 - 1)): give --redundant\n",
    );
  });

  test("cleans up", () => rmSync(work, { recursive: true, force: true }));
});

describe("the sim's expert-parallel stage", () => {
  const r = runSimulation({
    steps: 6,
    layers: 2,
    tokens: 256,
    experts: 16,
    topK: 2,
    gapSteps: 0,
  });

  test("gpu_loads: every strategy places every token of every batch", () => {
    const t = r.ep!.table, G = 8, K = 4;
    assert.equal(t.tokens.length, 6 * 2 * 2 * K * G);
    for (let row = 0; row < t.tokens.length; row += G) {
      let sum = 0;
      for (let g = 0; g < G; g++) sum += t.tokens[row + g];
      assert.equal(sum, 256 * 2);
    }
  });

  test("summaries: the LP strategies are never worse than static EP", () => {
    for (const m of r.methods) {
      const ep = m.ep!;
      assert.deepEqual(Object.keys(ep), [
        "static",
        "eplb",
        "symmetric-lp",
        "asymmetric-lp",
      ]);
      assert.ok(
        ep["symmetric-lp"].gpuMaxOverMean <= ep.static.gpuMaxOverMean + 1e-12,
      );
      assert.ok(ep["symmetric-lp"].stepTimeMs <= ep.static.stepTimeMs + 1e-12);
      assert.equal(ep.static.throughputGain, 0);
    }
  });

  test("ep: null turns the stage off; sizes that do not fit are errors when asked for", () => {
    assert.equal(
      runSimulation({
        steps: 2,
        layers: 1,
        tokens: 64,
        experts: 8,
        topK: 2,
        ep: null,
      }).ep,
      null,
    );
    assert.throws(
      () =>
        runSimulation({
          steps: 2,
          layers: 1,
          tokens: 64,
          experts: 12,
          topK: 2,
          ep: { gpus: 5 },
        }),
      RangeError,
    );
  });
});

describe("the EP stage on nodes (DeepSeek-V3's layout, scaled down)", () => {
  // 64 experts in 8 groups, 4 kept, top-8; 16 GPUs in 8 nodes of 2, so
  // static EP puts group g on node g; 16 redundant slots (5 per GPU).
  const T = 1024, k = 8, E = 64, G = 16, gpn = 2, N = 8, keep = 4;
  const ep = {
    gpus: G,
    gpusPerNode: gpn,
    redundant: 16,
    strategies: [...EP_STRATEGIES],
    hardware: "h800",
    hidden: 7168,
    ffnFactor: 2048 / 7168,
    dispatchBytes: 1,
    combineBytes: 2,
    rebalanceEvery: 4,
  };
  const base = {
    steps: 12,
    layers: 2,
    tokens: T,
    experts: E,
    topK: k,
    groups: 8,
    topGroups: keep,
    methods: ["greedy", "loss-free(rate=0.01)"],
    gapSteps: 0,
  };
  const r = runSimulation({ ...base, ep });
  const one = runSimulation({ ...base, ep: { ...ep, gpusPerNode: null } });
  const window = [6, 7, 8, 9, 10, 11]; // the last half of 12 steps

  /** The EP table's first line in a run's printed summary. */
  const epLine = (res: typeof r) =>
    formatSummaryTable(res).split("\n").find((l) =>
      l.startsWith("Expert parallelism:")
    )!;

  /** Static EP's GPU loads of one batch, from the loads table. */
  const staticLoads = (res: typeof r, s: number, l: number, m: number) => {
    const M = res.labels.length, base = ((s * 2 + l) * M + m) * E;
    const g = new Array(G).fill(0);
    for (let e = 0; e < E; e++) {
      g[Math.floor(e / (E / G))] += res.tables.loads.load[base + e];
    }
    return g;
  };

  const sampled = runSimulation({ ...base, ep: { ...ep, sampleEvery: 2 } });

  for (
    const [name, res, steps] of [
      ["every window step", r, window],
      ["sampleEvery 2: steps 6, 8, 10", sampled, [6, 8, 10]],
    ] as const
  ) {
    test(`static EP's step time and network bytes, recomputed by hand from the loads table (${name})`, () => {
      checkStatic(res, steps);
    });
  }

  test("a table over the limit keeps the sampled steps' rows, then none; the summaries stay", () => {
    const M = 2, perStep = base.layers * M * ep.strategies.length * G;
    const loads = sampled.tables.loads.load;
    const full = sampled.ep!.table;
    assert.equal(full.tokens.length, base.steps * perStep);
    const keepSteps = new Set([6, 8, 10]);
    const want = Array.from(full.tokens.keys()).filter((row) =>
      keepSteps.has(full.step[row])
    );
    for (const limit of [base.steps * perStep - 1, 3 * perStep]) {
      const cut = runEpStage(sampled.config, loads, M, limit)!;
      for (const col of Object.keys(full) as (keyof typeof full)[]) {
        assert.deepEqual(
          Array.from(cut.table[col]),
          want.map((row) => full[col][row]),
          `${col}, limit ${limit}`,
        );
      }
      assert.deepEqual(cut.summaries, sampled.ep!.summaries);
      assert.deepEqual(cut.rankProfile, sampled.ep!.rankProfile);
    }
    const none = runEpStage(sampled.config, loads, M, 3 * perStep - 1)!;
    assert.equal(none.table.tokens.length, 0);
    assert.equal(none.table.step.length, 0);
    assert.deepEqual(none.summaries, sampled.ep!.summaries);
    assert.throws(
      () => runEpStage(sampled.config, loads, M, -1),
      /tableRows .*-1/,
    );
  });

  test("sampleEvery keeps the table and every placement; only the summaries sample", () => {
    assert.equal(sampled.ep!.table.tokens.length, r.ep!.table.tokens.length);
    assert.deepEqual(sampled.ep!.table.tokens, r.ep!.table.tokens);
    assert.notEqual(
      sampled.methods[0].ep!.static.stepTimeMs,
      r.methods[0].ep!.static.stepTimeMs,
    );
  });

  function checkStatic(
    r: ReturnType<typeof runSimulation>,
    window: readonly number[],
  ) {
    const hw = { flops: 0.6 * 989e12, nvlink: 153e9, network: 50e9 };
    for (let m = 0; m < 2; m++) {
      let ms = 0, bytes = 0;
      for (const s of window) {
        for (let l = 0; l < 2; l++) {
          const g = staticLoads(r, s, l, m);
          const B = Math.max(...g);
          let R = 0, net = 0;
          for (let n = 0; n < N; n++) {
            const P = g[2 * n] + g[2 * n + 1];
            // One group per node: a token reaching a node brings k / 4 pairs.
            const D = Math.min(P, T, P * keep / k);
            net += D * (N - 1) / N;
            R = Math.max(R, D * (N - 1) / N / gpn);
          }
          const compute = 3 * 4 * (2048 / 7168) * 7168 ** 2 / hw.flops * B;
          const link = (b: number) =>
            Math.max(b * 7168 * B / hw.nvlink, b * 7168 * R / hw.network);
          ms += 1e3 * (compute + 2 * (link(1) + link(2)));
          bytes += net * 2 * (1 + 2) * 7168;
        }
      }
      const got = r.methods[m].ep!.static, n = window.length;
      assert.ok(Math.abs(got.stepTimeMs / (ms / n) - 1) < 1e-12);
      assert.ok(Math.abs(got.interNodeGB / (bytes / n / 1e9) - 1) < 1e-12);
      assert.ok(Math.abs(got.nodesPerToken - keep) < 1e-12);
    }
  }

  test("node-limited dispatch holds for the group-preserving placements, not for EPLB's global policy", () => {
    for (const m of r.methods) {
      const s = m.ep!;
      for (const name of ["static", "eplb-hierarchical", "hierarchical-lp"]) {
        assert.ok(s[name].nodesPerToken <= keep + 1e-12, name);
      }
      assert.ok(s.eplb.nodesPerToken > keep);
      assert.ok(s.eplb.interNodeGB > s["eplb-hierarchical"].interNodeGB);
      // Every sampled batch's placement keeps the groups on their nodes
      // under these, on none under EPLB's global policy; on one node the
      // limit has no nodes to limit.
      for (const name of ["static", "eplb-hierarchical", "hierarchical-lp"]) {
        assert.equal(s[name].nodeLimited, 1, name);
      }
      assert.equal(s.eplb.nodeLimited, 0);
      // The hierarchical placement keeps each expert's replicas on its node.
      assert.equal(
        s["eplb-hierarchical"].interNodeGB,
        s["hierarchical-lp"].interNodeGB,
      );
    }
  });

  test("the EP table's first line says which strategies' dispatch was node-limited", () => {
    const line = epLine(r);
    const limited = EP_STRATEGIES.filter((k) =>
      r.methods.every((m) => m.ep![k].nodeLimited === 1)
    );
    const not = EP_STRATEGIES.filter((k) =>
      r.methods.every((m) => m.ep![k].nodeLimited === 0)
    );
    assert.ok(limited.includes("static") && not.includes("eplb"));
    assert.equal(limited.length + not.length, EP_STRATEGIES.length);
    assert.ok(
      line.includes(
        `; node-limited dispatch (at most 4 nodes a token) under ${
          limited.join(", ")
        }; not under ${not.join(", ")} (a group's experts on several nodes);`,
      ),
      line,
    );
    for (const m of one.methods) {
      for (const k of EP_STRATEGIES) assert.equal(m.ep![k].nodeLimited, 0);
    }
    assert.doesNotMatch(formatSummaryTable(one), /node-limited/);
  });

  test("4 of 8 groups kept on 4 nodes: the limit confines no token, and the line says so", () => {
    const wide = runSimulation({
      ...base,
      methods: ["greedy"],
      ep: { ...ep, gpusPerNode: 4, strategies: ["static", "eplb"] },
    });
    // Static EP keeps each group on one node, yet a token's 4 groups can
    // sit on all 4 nodes: at most 4 nodes a token is no limit.
    assert.equal(wide.methods[0].ep!.static.nodeLimited, 1);
    const line = epLine(wide);
    assert.ok(
      line.includes(
        "; no node-limited dispatch (a token's 4 groups can cover all 4 nodes);",
      ),
      line,
    );
    assert.doesNotMatch(line, /at most/);
  });

  test("4 groups on 8 nodes: the hierarchical strategies take EPLB's global policy, and say so", () => {
    const four = runSimulation({
      ...base,
      groups: 4,
      topGroups: 2,
      methods: ["greedy"],
      ep: { ...ep, strategies: ["static", "eplb", "eplb-hierarchical"] },
    });
    // EPLB's global policy is its hierarchical one with 1 group on 1 node:
    // the same plan as eplb's, so the same figures.
    const s = four.methods[0].ep!;
    assert.deepEqual(s["eplb-hierarchical"], s.eplb);
    const line = epLine(four);
    assert.ok(
      line.includes(
        "; eplb-hierarchical takes EPLB's global policy (4 groups are no multiple of 8 nodes);",
      ),
      line,
    );
    assert.doesNotMatch(formatSummaryTable(r), /global policy/);
    // The HTML report says the same in its EP section's lead.
    assert.ok(
      simReportHtml(four).includes(
        "On these nodes: not under static, eplb, eplb-hierarchical (a group's experts on several nodes); eplb-hierarchical takes EPLB's global policy (4 groups are no multiple of 8 nodes).",
      ),
    );
  });

  test("MicroMoE's LP on the hierarchical placement balances at least as well as its equal split", () => {
    for (const m of r.methods) {
      const s = m.ep!;
      assert.ok(
        s["hierarchical-lp"].gpuMaxOverMean <=
          s["eplb-hierarchical"].gpuMaxOverMean + 1e-12,
      );
      for (const name of ep.strategies) {
        assert.ok(
          Math.abs(
            s[name].throughputGain -
              (s.static.stepTimeMs / s[name].stepTimeMs - 1),
          ) < 1e-12,
        );
      }
    }
  });

  test("one node: the same GPU loads, no network, the single-node model", () => {
    for (let m = 0; m < 2; m++) {
      const s = one.methods[m].ep!;
      for (const name of ep.strategies) {
        assert.equal(s[name].interNodeGB, 0);
        assert.equal(s[name].nodesPerToken, 1);
      }
      // Static EP's max/mean is the same on one node and on eight.
      assert.equal(
        s.static.gpuMaxOverMean,
        r.methods[m].ep!.static.gpuMaxOverMean,
      );
      assert.ok(s.static.stepTimeMs < r.methods[m].ep!.static.stepTimeMs);
    }
  });

  test("the rank profile is the table's, sorted per batch", () => {
    const t = r.ep!.table, K = ep.strategies.length, M = 2;
    const profile = new Float64Array(M * K * G);
    for (let row = 0; row < t.tokens.length; row += G) {
      if (t.step[row] < 6) continue;
      const batch = Array.from(t.tokens.subarray(row, row + G)).sort((a, b) =>
        b - a
      );
      const mean = batch.reduce((a, b) => a + b) / G;
      const k = ep.strategies.indexOf(EP_STRATEGIES[t.strategy[row]]);
      batch.forEach((x, g) =>
        profile[(t.method[row] * K + k) * G + g] += x / mean / 12
      );
    }
    profile.forEach((x, i) =>
      assert.ok(Math.abs(x - r.ep!.rankProfile[i]) < 1e-12)
    );
  });

  test("bad node fields name the field and show the value", () => {
    const at = (extra: Record<string, unknown>) => () =>
      runSimulation({ ...base, steps: 2, ep: { ...ep, ...extra } });
    assert.throws(
      at({ gpusPerNode: 3 }),
      /ep\.gpusPerNode must divide ep\.gpus \(16\): current value is 3/,
    );
    assert.throws(at({ redundant: 7 }), /ep\.redundant .* current value is 7/);
    // The experts (base.experts) over 3 GPUs: the field, not the placement's.
    assert.throws(at({ gpus: 3, gpusPerNode: null }), {
      name: "RangeError",
      message:
        `ep.gpus must divide the number of experts (${base.experts}): current value is 3`,
    });
    assert.throws(
      at({ strategies: ["eplb"] }),
      /ep\.strategies must .* starting with "static"/,
    );
    assert.throws(
      at({ strategies: ["static", "eplb-global"] }),
      /ep\.strategies\[1\] must be one of/,
    );
    assert.throws(
      at({ hardware: "b200" }),
      /ep\.hardware must be one of "h100", "h800", "h200": current value is "b200"/,
    );
    assert.throws(at({ overlap: "min" }), /ep\.overlap/);
    assert.throws(
      at({ sampleEvery: 0 }),
      /ep\.sampleEvery must be an integer of at least 1: current value is 0/,
    );
  });
});
