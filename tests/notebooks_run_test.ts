// `deno task notebooks` on a machine without Jupyter: one line naming the
// Debian packages to install, exit 2, before any notebook runs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

test("deno task notebooks without jupyter names the packages to install", {
  skip: isDeno ? false : "runs the notebooks task under deno",
}, () => {
  // A PATH that holds deno and nothing else.
  const bin = mkdtempSync(join(tmpdir(), "moelab-nojupyter-"));
  const deno = (globalThis as unknown as { Deno: { execPath(): string } })
    .Deno.execPath();
  symlinkSync(deno, join(bin, "deno"));
  const r = spawnSync(
    join(bin, "deno"),
    ["run", "-A", "notebooks/_run.ts", "01-loss-free-convergence"],
    {
      cwd: root,
      encoding: "utf8",
      env: { PATH: bin, HOME: bin },
    },
  );
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^error: deno task notebooks needs jupyter/);
  assert.match(
    r.stderr,
    /apt-get install jupyter-nbconvert python3-nbclient jupyter-client/,
  );
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /notebooks: 01/);
});
