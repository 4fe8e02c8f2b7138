import { test } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../cli/main.ts";
import { checkTransformerPreset } from "./experiment.ts";
import { runTrainExperiment } from "../experiment.ts";

const PRESET = {
  model: "transformer",
  methods: ["none", "loss-free(rate=1e-2)"],
  seeds: [1],
  corpus: { maxFiles: 4, validEvery: 4, vocab: 300 },
  seqLen: 8,
  dim: 8,
  heads: 2,
  layers: 1,
  experts: 4,
  topK: 1,
  hidden: 8,
  steps: 2,
  batchSeqs: 2,
  validTokens: 16,
};

test("moelab train runs a transformer preset and writes its files", async () => {
  const dir = mkdtempSync(join(tmpdir(), "moelab-tt-"));
  try {
    const preset = join(dir, "p.json");
    writeFileSync(preset, JSON.stringify(PRESET));
    const out = join(dir, "out");
    const code = await main([
      "train",
      "--preset",
      preset,
      "--out",
      out,
      "--quiet",
      "--json",
    ]);
    assert.equal(code, 0);
    for (const f of ["summary.json", "runs.json", "table.md"]) {
      assert.ok(existsSync(join(out, f)), f);
    }
    const s = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
    assert.deepEqual(s.methods, ["none", "loss-free(rate=1e-2)"]);
    assert.equal(s.runs.length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("moelab train refuses a bad backend or key before any work", async () => {
  const dir = mkdtempSync(join(tmpdir(), "moelab-tt-"));
  try {
    const preset = join(dir, "p.json");
    writeFileSync(preset, JSON.stringify(PRESET));
    const out = join(dir, "out");
    assert.equal(
      await main([
        "train",
        "--preset",
        preset,
        "--backend",
        "tpu",
        "--out",
        out,
      ]),
      2,
    );
    for (const bad of [{ nope: 1 }, { heads: 3 }, { steps: 0 }]) {
      writeFileSync(preset, JSON.stringify({ ...PRESET, ...bad }));
      assert.equal(await main(["train", "--preset", preset, "--out", out]), 2);
    }
    assert.ok(!existsSync(join(out, "summary.json")));
    // --backend is for transformer presets only.
    assert.equal(
      await main(["train", "--backend", "cpu", "--out", out]),
      2,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("leakage chunks that do not divide a batch are refused before any run", () => {
  // PRESET's batch: 2 sequences of 8 tokens. A chunk of 32 failed in the
  // leakage test, after every method had trained.
  assert.throws(
    () => checkTransformerPreset({ ...PRESET, leakage: { chunks: [16, 32] } }),
    {
      name: "RangeError",
      message:
        "leakage.chunks[1] must divide a batch's tokens (batchSeqs x seqLen = 16): current value is 32",
    },
  );
  assert.throws(
    () => checkTransformerPreset({ ...PRESET, leakage: { chunks: [3] } }),
    /leakage\.chunks\[0\] must divide .* = 16\): current value is 3$/,
  );
  // Dividing chunks pass, and the default batch (8 sequences) counts.
  checkTransformerPreset({ ...PRESET, leakage: { chunks: [16, 8, 4] } });
  const { batchSeqs: _b, ...noBatch } = PRESET;
  checkTransformerPreset({ ...noBatch, leakage: { chunks: [64] } });
});

test("the leakage test's keys, seeds and method are checked with the preset", () => {
  const leak = (leakage: unknown) => () =>
    checkTransformerPreset({ ...PRESET, leakage });
  // A typo was ignored; a seed twice counted twice in the mean and std.
  assert.throws(leak({ chunks: [8], seed: [2] }), {
    name: "RangeError",
    message: 'leakage has no key "seed" (keys: chunks, seeds, method)',
  });
  assert.throws(leak({ chunks: [8], seeds: [1, 1] }), {
    name: "RangeError",
    message: "leakage.seeds must be distinct: 1 appears twice",
  });
  assert.throws(
    leak({ chunks: [8], seeds: [-1] }),
    /^RangeError: leakage\.seeds\[0\]/,
  );
  assert.throws(leak({ chunks: [8], method: "nope" }), {
    name: "RangeError",
    message: /^leakage\.method must be one of /,
  });
  assert.throws(leak([8]), TypeError);
  checkTransformerPreset({
    ...PRESET,
    leakage: { chunks: [8], seeds: [2, 3], method: "expert-choice" },
  });
});

test("a preset's corpus options are checked by name: a typo was ignored and the whole corpus read", () => {
  assert.throws(
    () =>
      checkTransformerPreset({ ...PRESET, corpus: { maxFile: 4 } as never }),
    {
      name: "RangeError",
      message:
        'corpus has no key "maxFile" (keys: dir, validEvery, maxFiles, vocab)',
    },
  );
  assert.throws(
    () => checkTransformerPreset({ ...PRESET, corpus: { vocab: 3 } }),
    {
      name: "RangeError",
      message:
        "corpus.vocab must be an integer in [256, 65536]: current value is 3",
    },
  );
  // The character model's experiment: no BPE vocabulary, same checks.
  assert.throws(
    () =>
      runTrainExperiment({
        steps: 1,
        seeds: [1],
        corpus: { maxFile: 4 } as never,
      }),
    {
      name: "RangeError",
      message: 'corpus has no key "maxFile" (keys: dir, validEvery, maxFiles)',
    },
  );
  assert.throws(
    () => runTrainExperiment({ steps: 1, seeds: [1], corpus: "ca01" as never }),
    TypeError,
  );
});
