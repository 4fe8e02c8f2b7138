// The whole transformer against PyTorch: loss and the gradient of every
// tensor on the same float32 weights and batch, PyTorch in float64
// (data/fixtures/make_transformer_fixture.py). Runs the script when
// python3 has torch; otherwise reads the fixture it committed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRouting, routeInto } from "../../route/route.ts";
import type { ScoreMatrix } from "../../types.ts";
import { createTransformer, type TransformerConfig } from "./model.ts";
import {
  createTransformerWorkspace,
  type LmRouterObjective,
  transformerStep,
} from "./step.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;
const SCRIPT = join(ROOT, "data/fixtures/make_transformer_fixture.py");
const FIXTURE = join(ROOT, "data/fixtures/transformer_grads.json");
/** Largest allowed `||g - g_torch||_2 / ||g_torch||_2` per tensor, and relative loss error. */
const TOL = 1e-5;

interface Case {
  name: string;
  config: Required<TransformerConfig>;
  seqs: number;
  objective: LmRouterObjective;
  tokens: number[];
  targets: number[];
  weights: Record<string, number[]>;
  ce: number;
  aux: number;
  grads: Record<string, number[]>;
}

function reference(): { source: string; cases: Case[] } {
  // MOELAB_NO_TORCH=1 reads the committed fixture even where torch exists.
  const pythons = process.env.MOELAB_NO_TORCH
    ? []
    : ["/usr/bin/python3", "python3"];
  for (const python of pythons) {
    const probe = spawnSync(python, ["-c", "import torch, numpy"]);
    if (probe.status !== 0) continue;
    const dir = mkdtempSync(join(tmpdir(), "moelab-torch-"));
    try {
      const out = join(dir, "grads.json");
      const run = spawnSync(python, [SCRIPT, out], { encoding: "utf8" });
      assert.equal(run.status, 0, run.stderr);
      return {
        source: `${python} + torch`,
        cases: JSON.parse(readFileSync(out, "utf8")).cases,
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return {
    source: "committed fixture",
    cases: JSON.parse(readFileSync(FIXTURE, "utf8")).cases,
  };
}

const ref = reference();

for (const fx of ref.cases) {
  test(`${fx.name}: loss and every gradient match PyTorch (${ref.source})`, async () => {
    const model = createTransformer(fx.config, 1);
    for (const t of model.tensors) {
      const w = fx.weights[t.name];
      const size = t.shape.reduce((a, b) => a * b, 1);
      assert.equal(w.length, size, t.name);
      model.params.set(w, t.offset);
    }
    assert.equal(
      Object.keys(fx.weights).length,
      model.tensors.length,
      "same tensors",
    );
    const ws = createTransformerWorkspace(model, fx.seqs);
    ws.tokens.set(fx.tokens);
    ws.targets.set(fx.targets);
    const n = fx.seqs * fx.config.seqLen;
    const routing = createRouting(n, fx.config.topK, fx.config.experts);
    const select = (_l: number, s: ScoreMatrix) => {
      routeInto(s, fx.config.topK, routing);
      return routing;
    };
    const r = await transformerStep(model, ws, fx.seqs, select, fx.objective);
    assert.ok(Math.abs(r.ce - fx.ce) <= TOL * fx.ce, `ce ${r.ce} vs ${fx.ce}`);
    assert.ok(
      Math.abs(r.aux - fx.aux) <= TOL * fx.aux,
      `aux ${r.aux} vs ${fx.aux}`,
    );
    let worst = 0;
    for (const t of model.tensors) {
      const g = fx.grads[t.name];
      let diff = 0, norm = 0;
      for (let i = 0; i < g.length; i++) {
        diff += (ws.grads[t.offset + i] - g[i]) ** 2;
        norm += g[i] ** 2;
      }
      if (g.length === 0) continue;
      assert.ok(norm > 0, `${t.name}: the reference gradient is not zero`);
      const rel = Math.sqrt(diff / norm);
      worst = Math.max(worst, rel);
      assert.ok(rel <= TOL, `${t.name}: relative L2 error ${rel}`);
    }
    console.log(
      `${fx.name}: worst relative L2 gradient error ${worst.toExponential(2)}`,
    );
  });
}
