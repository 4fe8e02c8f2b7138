// `moelab sim --scores`: the recording fixes the sizes, so the flags that
// would change them are errors naming the flag, not silently ignored.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli } from "./_cli.ts";
import { encodeNpy } from "../mod.ts";

const dir = mkdtempSync(join(tmpdir(), "moelab-sim-scores-"));
const file = join(dir, "logits.npy");
// [steps, tokens, experts] = [4, 32, 8]
const data = new Float32Array(4 * 32 * 8).map((_, x) => ((x * 37) % 17) / 17);
writeFileSync(file, encodeNpy(data, [4, 32, 8]));

/** `sim --scores path`, greedy, top-2 on 2 GPUs, quiet, into `out`. */
function smallRun(path: string, out: string, ...extra: string[]) {
  return cli([
    "sim",
    "--scores",
    path,
    "--methods",
    "greedy",
    "--top-k",
    "2",
    "--gpus",
    "2",
    ...extra,
    "--quiet",
    "--out",
    out,
  ]);
}

describe("moelab sim --scores", () => {
  for (
    const [flag, value] of [
      ["--steps", "10"],
      ["--experts", "64"],
      ["--tokens", "128"],
      ["--layers", "2"],
      ["--drift", "0.1"],
    ]
  ) {
    test(`${flag} is an error naming it`, () => {
      const out = join(dir, `out${flag}`);
      const r = cli([
        "sim",
        "--scores",
        file,
        flag,
        value,
        "--out",
        out,
        "--quiet",
      ]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`^error: ${flag} cannot be used with --scores`),
      );
      assert.match(r.stderr, new RegExp(`current value ${value}`));
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.equal(existsSync(out), false, "nothing written");
    });
  }

  test("a +Infinity logit under softmax: exit 2 before any batch, naming it, nothing written", () => {
    const bad = data.slice();
    bad[2 * 32 * 8 + 17 * 8 + 3] = Infinity; // batch 2, token 17, expert 3
    const path = join(dir, "inf.npy");
    writeFileSync(path, encodeNpy(bad, [4, 32, 8]));
    for (const gate of ["softmax", "sqrtsoftplus"]) {
      const out = join(dir, `inf-${gate}`);
      const r = cli(["sim", "--scores", path, "--gate", gate, "--out", out]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(
        r.stderr,
        /^error: --scores must not hold \+Infinity with the \w+ gate .*value at batch 2, token 17, expert 3 is Infinity$/m,
      );
      assert.equal(existsSync(out), false, "nothing written");
    }
    // The sigmoid maps it to 1: the run goes through.
    const r = smallRun(path, join(dir, "inf-sigmoid"));
    assert.equal(r.code, 0, r.stderr);
  });

  test("a file that is not float32 logits: exit 2, one line naming the file, nothing written", () => {
    const bytes = encodeNpy(data, [4, 32, 8]);
    const header = new TextDecoder().decode(bytes.subarray(0, 128));
    const at = header.indexOf("<f4");
    assert.ok(at > 0);
    const f64 = bytes.slice();
    f64.set(new TextEncoder().encode("<f8"), at); // a float64 header
    const path = join(dir, "float64.npy");
    writeFileSync(path, f64);
    const out = join(dir, "float64-out");
    const r = cli(["sim", "--scores", path, "--out", out]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(
      r.stderr,
      `error: --scores file ${path}: .npy dtype must be float32 ('<f4'): current value is '<f8'\n`,
    );
    assert.equal(existsSync(out), false, "nothing written");
  });

  test("the same file without them runs on the recording's sizes", () => {
    const r = smallRun(file, join(dir, "ok"), "--json");
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.equal(summary.config.steps, 4);
    assert.equal(summary.config.tokens, 32);
    assert.equal(summary.config.experts, 8);
  });
});
