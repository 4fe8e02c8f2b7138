// `moelab solve` end to end: a real process, its JSON, and its exit codes.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { cli } from "./_cli.ts";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeNpy } from "../mod.ts";

const dir = mkdtempSync(join(tmpdir(), "moelab-solve-"));
const file = join(dir, "scores.npy");
// Every token prefers expert 0; capacity 2 sends two elsewhere (hand-solved:
// 0.9 + 0.6 + 0.7 + 0.5 = 2.7).
writeFileSync(
  file,
  encodeNpy(
    new Float32Array([
      0.9,
      0.5,
      0.1,
      0.8,
      0.1,
      0.6,
      0.7,
      0.2,
      0.1,
      0.6,
      0.5,
      0.4,
    ]),
    [4, 3],
  ),
);

function solve(...args: string[]) {
  const r = cli(["solve", ...args]);
  return { status: r.code, stdout: r.stdout, stderr: r.stderr };
}

describe("moelab solve", () => {
  test("--json prints the certified optimum", () => {
    const r = solve("--scores", file, "--top-k", "1", "--json");
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.ok(Math.abs(out.objective - 2.7) < 1e-6);
    assert.deepEqual(out.loads, [2, 1, 1]);
    assert.equal(out.solver, "ssp");
    assert.ok(out.dualityGap <= 1e-9 * out.objective);
    assert.equal(out.expertPrices.length, 3);
  });

  test("bad input exits 2 with a one-line error", () => {
    for (
      const args of [
        ["--scores", file],
        ["--scores", file, "--top-k", "4"],
        ["--scores", join(dir, "missing.npy"), "--top-k", "1"],
        ["--scores", file, "--top-k", "1", "--solver", "cplex"],
        ["--scores", file, "--top-k", "1", "--capacity-factor", "0.5"],
      ]
    ) {
      const r = solve(...args);
      assert.equal(r.status, 2, args.join(" "));
      assert.match(r.stderr, /^error: [^\n]+\n$/);
      assert.equal(r.stdout, "");
    }
  });

  test("errors name the flags as typed, not the solver's options", () => {
    const f64 = join(dir, "f64.npy");
    // A float32 .npy's header with '<f4' made '<f8', and 8-byte values.
    const bytes = encodeNpy(new Float32Array(6), [2, 3]);
    const at = bytes.findIndex((b, i) =>
      b === 0x3c && bytes[i + 1] === 0x66 && bytes[i + 2] === 0x34
    );
    const header = bytes.slice(0, bytes.length - 24);
    header[at + 2] = 0x38;
    writeFileSync(f64, new Uint8Array([...header, ...new Uint8Array(48)]));
    const nan = join(dir, "nan.npy");
    writeFileSync(
      nan,
      encodeNpy(new Float32Array([0.5, NaN, 0.2, 0.1]), [2, 2]),
    );
    for (
      const [args, line] of [
        [
          ["--scores", file, "--top-k", "4"],
          "--top-k must be at most the number of experts (3): current value is 4",
        ],
        [
          ["--scores", file, "--top-k", "1", "--capacity-factor", "0.5"],
          "--capacity-factor is infeasible: tokens x k = 4 x 1 = 4 exceeds experts x capacity = 3 x 1 = 3",
        ],
        [
          ["--scores", file, "--top-k", "1", "--solver", "cplex"],
          '--solver must be one of "auto", "ssp", "glpk", "highs": current value is "cplex"',
        ],
        [
          ["--scores", nan, "--top-k", "1"],
          "--scores must not hold NaN or +Infinity: value at token 0, expert 1 is NaN",
        ],
        [
          ["--scores", f64, "--top-k", "1"],
          `--scores ${f64}: .npy dtype must be float32 ('<f4'): current value is '<f8'`,
        ],
      ] as const
    ) {
      const r = solve(...args);
      assert.equal(r.status, 2, args.join(" "));
      assert.equal(r.stderr, `error: ${line}\n`);
    }
  });

  test("--groups/--top-groups: a bracket that holds the brute-force group-limited optimum", () => {
    // 5 tokens, 6 experts in 3 groups of 2, k = 3 within 2 groups (no
    // triple with one expert of each group), capacity ceil(5 x 3 / 6) = 3.
    const N = 5, E = 6, k = 3, C = 3;
    const data = new Float32Array(N * E);
    let x = 7;
    for (let i = 0; i < data.length; i++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      data[i] = Math.round((x / 2147483648) * 1000) / 1000;
    }
    const grouped = join(dir, "grouped.npy");
    writeFileSync(grouped, encodeNpy(data, [N, E]));
    const all: number[][] = [];
    for (let a = 0; a < E; a++) {
      for (let b = a + 1; b < E; b++) {
        for (let c = b + 1; c < E; c++) all.push([a, b, c]);
      }
    }
    const triples = all.filter((t) => new Set(t.map((j) => j >> 1)).size <= 2);
    const load = new Array(E).fill(0);
    const search = (i: number, sum: number, sets: number[][], top: number) => {
      if (i === N) return Math.max(top, sum);
      for (const t of sets) {
        if (t.some((j) => load[j] === C)) continue;
        for (const j of t) load[j]++;
        top = search(
          i + 1,
          sum + t.reduce((s, j) => s + data[i * E + j], 0),
          sets,
          top,
        );
        for (const j of t) load[j]--;
      }
      return top;
    };
    const best = search(0, 0, triples, -Infinity);
    const free = search(0, 0, all, -Infinity);
    assert.ok(free > best); // the limit binds on this instance
    const limited = (...more: string[]) =>
      solve("--scores", grouped, "--top-k", "3", "--groups", "3", ...more);
    const r = limited("--top-groups", "2", "--json");
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    const eps = 1e-9;
    assert.ok(out.lowerBound <= best + eps && best <= out.upperBound + eps);
    assert.ok(Math.abs(out.relaxation - free) < 1e-6);
    assert.equal(out.objective, out.lowerBound);
    assert.deepEqual([out.groups, out.topGroups], [3, 2]);
    assert.ok(out.loads.every((l: number) => l <= C));
    assert.equal(out.loads.reduce((a: number, b: number) => a + b), N * k);
    const text = limited("--top-groups", "2");
    assert.match(text.stdout, /at most 2 of 3 groups a token\n/);
    assert.match(text.stdout, /\noptimum {5}in \[[\d.]+, [\d.]+\] \(bracket /);
    assert.match(
      text.stdout,
      /\nrelaxation {2}[\d.]+ \(the group limit dropped: an upper bound\)\n/,
    );
    // Without a limit (--top-groups = --groups) it is the plain optimum.
    const plain = JSON.parse(limited("--json").stdout);
    assert.ok(Math.abs(plain.objective - free) < 1e-6);
    assert.equal(plain.lowerBound, undefined);
    for (
      const [args, line] of [
        [
          ["--groups", "4"],
          "--groups must divide the number of experts (6): current value is 4",
        ],
        [["--top-groups", "1"], "--top-groups needs --groups (see --help)"],
        [
          ["--groups", "3", "--top-groups", "1"],
          "--top-groups x group size must be at least k (3): current value is 1 x 2",
        ],
        [
          ["--groups", "3", "--top-groups", "2", "--solver", "highs"],
          "--solver highs: the group-limited bracket is solved by ssp (--solver auto or ssp)",
        ],
      ] as const
    ) {
      const bad = solve("--scores", grouped, "--top-k", "3", ...args);
      assert.equal(bad.status, 2, args.join(" "));
      assert.equal(bad.stderr, `error: ${line}\n`);
    }
  });
});
