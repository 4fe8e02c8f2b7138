import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import process from "node:process";
import { runSimulation } from "./run.ts";
import { formatProfile, LOOP_STAGES } from "./profile.ts";

/** The kernel's figure of this process's peak resident memory, MiB (Linux). */
function vmHwmMiB(): number {
  const kb = /^VmHWM:\s+(\d+) kB/m.exec(
    readFileSync("/proc/self/status", "utf8"),
  )?.[1];
  return Number(kb) / 1024;
}

test(
  "the profile's peak RSS lies between the resident memory before the run and the kernel's peak after it",
  {
    skip: existsSync("/proc/self/status") ? false : "needs Linux /proc",
  },
  () => {
    const before = process.memoryUsage().rss / 2 ** 20;
    const r = runSimulation({
      steps: 4,
      layers: 2,
      tokens: 256,
      experts: 16,
      topK: 2,
      methods: ["greedy", "loss-free"],
    });
    const after = vmHwmMiB();
    const peak = r.profile.peakRssMiB;
    assert.ok(peak >= before - 1, `${peak} MiB >= ${before} MiB`);
    assert.ok(peak <= after + 1, `${peak} MiB <= ${after} MiB`);
    const text = formatProfile(r.profile, [["writing outputs", 12]]);
    for (const stage of LOOP_STAGES) {
      assert.match(
        text,
        new RegExp(`^${stage} `, "m"),
      );
    }
    assert.match(text, /^writing outputs +0\.01 s$/m);
    // 4 steps x 2 layers x 256 tokens x 16 experts x 4 bytes.
    assert.equal(r.profile.scoreBytes, 131072);
    const gbPerS = (131072 / 1e9 / (r.profile.loopMs / 1000)).toPrecision(3);
    assert.match(
      text,
      new RegExp(
        `^scores: 0\\.000131 GB through the loop, ${
          gbPerS.replace(".", "\\.")
        } GB/s of its wall time$`,
        "m",
      ),
    );
    assert.match(
      text,
      new RegExp(
        `^peak RSS once the loop, summaries and EP stage were done: ${
          peak.toFixed(0)
        } MiB$`,
        "m",
      ),
    );
  },
);
