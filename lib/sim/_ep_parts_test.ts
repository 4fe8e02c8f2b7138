import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { runSimulation } from "./run.ts";
import { runSimulationParallel } from "./run_parallel.ts";
import { mergeEpParts, runEpStage } from "./ep_stage.ts";
import { epLayerStage } from "./_ep_parts.ts";
import { EP_STRATEGIES } from "./ep_config.ts";
import { sampledCount } from "./eval_window.ts";

// Five layers on 4 nodes of 2 GPUs, node-limited routing, every strategy:
// placements re-made every 5 steps, summaries on every other window step.
const config = {
  steps: 20,
  layers: 5,
  tokens: 512,
  experts: 32,
  topK: 4,
  groups: 4,
  topGroups: 2,
  methods: ["greedy", "loss-free"],
  evalFraction: 0.6,
  ep: {
    gpus: 8,
    gpusPerNode: 2,
    redundant: 8,
    strategies: [...EP_STRATEGIES],
    rebalanceEvery: 5,
    sampleEvery: 2,
  },
};

test("the sampled steps of the window: steps 8 to 19, every other one from 8", () => {
  // evalFraction 0.6 of 20 steps: the window is steps 8..19.
  assert.equal(sampledCount(config, 2), 6);
  assert.equal(sampledCount(config, 5), 3);
  assert.equal(sampledCount(config, 1), 12);
  assert.equal(sampledCount(config, 12), 1);
  assert.equal(sampledCount(config, 13), 1);
});

describe("the EP stage in parts of the layers", () => {
  const r = runSimulation(config);
  const M = r.labels.length, c = r.config.ep!;
  const loads = r.tables.loads.load;
  const per = r.config.layers * M * r.config.experts;
  const part = (layers: number[], tableRows: number) => {
    const stage = epLayerStage(r.config, c, M, layers, tableRows);
    for (let s = 0; s < r.config.steps; s++) {
      stage.addStep(s, loads.subarray(s * per, (s + 1) * per));
    }
    return stage.finish();
  };
  const rowsPerStep = 5 * M * c.strategies.length * c.gpus;

  // Every step's rows, the sampled steps' (6 of 20), none.
  for (const tableRows of [1 << 21, 6 * rowsPerStep, 0]) {
    test(`however the layers are split, the merged result is the whole stage's (table limit ${tableRows})`, () => {
      const whole = runEpStage(r.config, loads, M, tableRows)!;
      assert.equal(
        whole.table.tokens.length,
        tableRows === 0 ? 0 : tableRows === 1 << 21 ? 20 * rowsPerStep : 6 *
          rowsPerStep,
      );
      for (
        const split of [
          [[0, 2, 4], [1, 3]],
          [[3], [0, 1], [2, 4]],
          [[0], [1], [2], [3], [4]],
        ]
      ) {
        // The parts in any order: the merge goes by layer.
        const merged = mergeEpParts(
          r.config,
          M,
          split.map((layers) => part(layers, tableRows)).reverse(),
          tableRows,
        );
        assert.deepEqual(merged, whole, JSON.stringify(split));
      }
    });
  }

  test("parts that miss a layer or hold one twice are refused", () => {
    const tableRows = 1 << 21;
    const a = part([0, 1, 2], tableRows), b = part([3, 4], tableRows);
    assert.throws(
      () => mergeEpParts(r.config, M, [a], tableRows),
      /layer 3 is in none/,
    );
    assert.throws(
      () => mergeEpParts(r.config, M, [a, b, part([2], tableRows)], tableRows),
      /layer 2 is in two parts/,
    );
    assert.throws(
      () => epLayerStage(r.config, c, M, [1, 0], tableRows),
      RangeError,
    );
    assert.throws(
      () => epLayerStage(r.config, c, M, [0, 5], tableRows),
      /current value is \[0, 5\]/,
    );
  });

  // Two parallel runs, each starting its loop and EP workers: seconds,
  // more under Bun on a busy machine.
  test(
    "the parallel run places each thread's layers on that thread: the sequential run's EP result",
    {
      timeout: 120_000,
    },
    async () => {
      for (const threads of [2, 3]) {
        const par = await runSimulationParallel(config, { threads });
        assert.deepEqual(par.ep, r.ep, `${threads} threads`);
        assert.equal(par.profile.epThreads, threads);
      }
      assert.equal(r.profile.epThreads, 1);
    },
  );
});
