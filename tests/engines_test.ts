// The same seed gives the same bits on Deno and on Bun: training (a
// character model and a transformer), the synthetic workload, Rng's normal
// draws and the Megatron router, fingerprinted by tests/_engine_fingerprint.ts
// in a process of each engine. `Math.exp`, `Math.log`, `Math.cos` and `**`
// differ between the two in the last bit; with them, the character model's
// losses and the normal draws differed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { root } from "./_cli.ts";

const SCRIPT = join(root, "tests/_engine_fingerprint.ts");
const BUN = ["-y", "bun@1.4.4"];

/** Bun through npx, where npx can fetch it; else why not. */
function bunMissing(): string | false {
  if (typeof Deno === "undefined") return "runs under Deno (it starts Bun)";
  const r = spawnSync("npx", [...BUN, "--version"], { encoding: "utf8" });
  return r.status === 0 ? false : `npx cannot run Bun: ${r.stderr.trim()}`;
}

function fingerprint(command: string, args: string[]): Record<string, string> {
  const r = spawnSync(command, [...args, SCRIPT], {
    cwd: root,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, `${command} ${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

test("the same seed, the same bits on Deno and Bun", {
  skip: bunMissing(),
  timeout: 600_000,
}, () => {
  const deno = fingerprint("deno", ["run", "-A"]);
  const bun = fingerprint("npx", [...BUN, "run"]);
  assert.equal(Object.keys(deno).length, 14);
  assert.deepEqual(bun, deno);
});
