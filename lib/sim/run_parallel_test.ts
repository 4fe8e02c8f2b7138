import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeNpy } from "../workload/npy.ts";
import { runSimulationParallel } from "./run_parallel.ts";
import { workersRunning } from "./_workers.ts";

test("a worker's failure stops the run's other workers", async () => {
  const dir = mkdtempSync(join(tmpdir(), "moelab-par-"));
  try {
    // Layer 1's first batch holds a +Infinity logit: under the softmax its
    // scores are NaN and its worker fails at once, while layer 0 has 200
    // batches of greedy, BIP and the exact optimum still to route.
    const [S, L, T, E] = [200, 2, 256, 16];
    const data = Float32Array.from(
      { length: S * L * T * E },
      (_, i) => Math.sin(i * 12.9898) * 3,
    );
    data[1 * T * E + 5] = Infinity;
    const path = join(dir, "logits.npy");
    writeFileSync(path, encodeNpy(data, [S, L, T, E]));
    await assert.rejects(
      runSimulationParallel({
        topK: 2,
        gate: "softmax",
        methods: ["greedy", "bip(T=4)", "exact"],
        workload: { kind: "npy", path },
      }, { threads: 2 }),
      (e: Error) => e instanceof RangeError && /\+Infinity/.test(e.message),
    );
    assert.equal(workersRunning(), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
