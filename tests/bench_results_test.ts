// The results file of `deno task bench`: a run replaces the sections of the
// suites it ran, keeps every other section and the text written by hand,
// and says how, when and where it ran.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { formatSection, replaceSection } from "../bench/results.ts";
import { root } from "./_cli.ts";

const info = {
  command: "deno task bench solve",
  date: new Date(Date.UTC(2026, 10, 30, 9, 5)),
  commit: "abc1234",
  machine: "Some CPU, 2 logical cores",
  seconds: 61.4,
};

test("a section says the command, the date, the commit and the machine", () => {
  const section = formatSection("solve", "exact solver", "| a |\n| - |", info);
  assert.equal(
    section,
    [
      "<!-- bench:solve -->",
      "## solve: exact solver",
      "",
      "`deno task bench solve`, 2026-11-30 09:05 UTC, commit abc1234, 61 s. " +
      "Machine: Some CPU, 2 logical cores.",
      "",
      "| a |\n| - |",
      "",
      "<!-- /bench:solve -->",
    ].join("\n"),
  );
});

test("a run replaces its own section and keeps the rest", () => {
  const old = [
    "# Results",
    "",
    "Notes by hand.",
    "",
    "<!-- bench:route -->\nroute v1\n<!-- /bench:route -->",
    "",
    "<!-- bench:solve -->\nsolve v1\n<!-- /bench:solve -->",
    "",
    "Closing notes.",
    "",
  ].join("\n");
  const next = replaceSection(
    old,
    "route",
    "<!-- bench:route -->\nroute v2\n<!-- /bench:route -->",
  );
  assert.equal(next, old.replace("route v1", "route v2"));
});

test("a new suite goes after the last section, above the notes", () => {
  const old = "# R\n\n<!-- bench:a -->\na\n<!-- /bench:a -->\n\n## Notes\n";
  const s = "<!-- bench:b -->\nb\n<!-- /bench:b -->";
  assert.equal(
    replaceSection(old, "b", s),
    `# R\n\n<!-- bench:a -->\na\n<!-- /bench:a -->\n\n${s}\n\n## Notes\n`,
  );
});

test("a suite without a section is appended; a new file gets a header", () => {
  const s = "<!-- bench:x -->\nx\n<!-- /bench:x -->";
  assert.equal(
    replaceSection("# R\n\nText.\n", "x", s),
    `# R\n\nText.\n\n${s}\n`,
  );
  const fresh = replaceSection("", "x", s);
  assert.ok(fresh.startsWith("# Benchmark results\n"));
  assert.ok(fresh.endsWith(`\n\n${s}\n`));
});

test("bench refuses an unknown suite with exit code 2, before any run", () => {
  const r = spawnSync("deno", [
    "run",
    "-A",
    join(root, "bench/main.ts"),
    "route",
    "nope",
    "--no-results",
  ], { cwd: root, encoding: "utf8" });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown benchmark nope/);
  assert.equal(r.stdout, "");
});
