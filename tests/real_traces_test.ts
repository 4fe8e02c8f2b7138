// The loaders on the real routing data of ../shared/data (next to the
// repository; never copied into it). Every pinned figure was computed
// independently with Python's csv/json modules or awk on the same files;
// the ranges match docs/algorithms.md section 16.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pl from "nodejs-polars";
import {
  loadImbalance,
  loadVectors,
  moeBeyondBatches,
  olmoeExpertCounts,
  readLoadTable,
  readTokenTrace,
  traceLoads,
} from "../lib/workload/mod.ts";

const DATA = join(dirname(fileURLToPath(import.meta.url)), "../../shared/data");
const skip = existsSync(DATA)
  ? false
  : `real traces not found at ${DATA} (a clean clone has no ../shared/data)`;
if (skip) console.log(`skipping tests/real_traces_test.ts: ${skip}`);

function range(frame: pl.DataFrame): [number, number] {
  const m = frame.getColumn("maxOverMean");
  return [Number(m.min().toFixed(3)), Number(m.max().toFixed(3))];
}

function json(path: string): unknown {
  return JSON.parse(readFileSync(join(DATA, path), "utf8"));
}

describe("real traces", { skip }, () => {
  test("OLMoE expert_counts.json: busiest/mean 2.5 to 7.8 (OLMoE), 1.08 to 1.58 (Mixtral)", () => {
    const t = olmoeExpertCounts(json("olmoe/expert_counts.json"));
    const of = (model: string, counts: string) =>
      loadImbalance(
        t.filter(
          pl.col("model").eq(pl.lit(model)).and(
            pl.col("counts").eq(pl.lit(counts)),
          ),
        ),
      );
    assert.deepEqual(range(of("olmoe", "expert_counts")), [2.499, 7.813]);
    assert.equal(of("olmoe", "expert_counts").height, 18); // 6 domains x 3 layers
    assert.deepEqual(range(of("mistral", "expert_counts")), [1.076, 1.328]);
    assert.deepEqual(range(of("mistral", "expert_counts_top1")), [
      1.155,
      1.577,
    ]);
  });

  test("MoE-Beyond batches: 43 batches x 26 layers, sums = tokens x 6, up to 4.8", () => {
    const t = moeBeyondBatches(json("moe-beyond/batches_4096tok.json"));
    const m = loadImbalance(t);
    assert.equal(m.height, 43 * 26);
    const tokens = [...m.getColumn("batchTokens")];
    assert.deepEqual(
      [...m.getColumn("totalLoad")],
      tokens.map((n) => Number(n) * 6),
    );
    assert.deepEqual(range(m), [1.354, 4.837]);
    const corpus = t.groupBy(["layer", "expert"]).agg(pl.col("load").sum())
      .withColumn(pl.lit(0).alias("step")).select(
        "step",
        "layer",
        "expert",
        "load",
      );
    assert.deepEqual(range(loadImbalance(corpus)), [1.317, 2.632]);
  });

  test("MoE-Beyond prompt CSVs: ids as text, 700128 selections", () => {
    const files = Array.from(
      { length: 60 },
      (_, i) => join(DATA, `moe-beyond/prompt_${i + 1}_data.csv`),
    );
    const trace = readTokenTrace(files, {
      layer: "Layer ID",
      experts: "Activated Expert IDs",
    });
    // 4488 tokens x 26 layers; 4488 x 26 x 6 selections
    assert.equal(trace.height, 116688);
    const loads = traceLoads(trace, { experts: 64 });
    assert.equal(loads.getColumn("load").sum(), 700128);
    assert.deepEqual(range(loadImbalance(loads)), [1.462, 3.819]);
    // awk: prompt_1 holds 5148 ids (858 rows x 6)
    const one = traceLoads(
      readTokenTrace(files[0], {
        layer: "Layer ID",
        experts: "Activated Expert IDs",
      }),
    );
    assert.equal(one.getColumn("load").sum(), 5148);
  });

  test("Mixtral JSON lines: per-expert counts and per-layer balance", () => {
    const gsm = readTokenTrace(
      join(DATA, "mixtral-sample/gsm8k_2_routing.jsonl"),
      {
        token: "token_idx",
        probs: "gating_probs",
      },
    );
    assert.equal(gsm.height, 7889);
    // grep|sort|uniq -c over all layers: 2018 2078 2017 1861 1965 1875 1886 2078
    const all = traceLoads(gsm.withColumn(pl.lit(0).alias("layer")));
    assert.deepEqual(
      [...all.getColumn("load")],
      [2018, 2078, 2017, 1861, 1965, 1875, 1886, 2078],
    );
    const both = readTokenTrace([
      join(DATA, "mixtral-sample/gsm8k_2_routing.jsonl"),
      join(DATA, "mixtral-sample/humaneval_2_routing.jsonl"),
    ], { token: "token_idx" });
    assert.deepEqual(range(loadImbalance(traceLoads(both))), [1.084, 1.78]);
  });

  test("HarMoEny wide CSVs: Qwen1.5-MoE and Switch-128", () => {
    const mapping = {
      ids: ["dataset"],
      step: "iteration",
      layer: "layer_idx",
      experts: "rest" as const,
    };
    const qwen = readLoadTable(
      join(
        DATA,
        "harmoeny/data_processed_expert_freq_qwen_policy_datasets.csv",
      ),
      mapping,
    );
    assert.equal(qwen.height, 960 * 60);
    // awk -F, 'NR>1{for(i=5;i<=NF;i++)s+=$i}END{print s}'
    assert.equal(qwen.getColumn("load").sum(), 94371840);
    assert.deepEqual(range(loadImbalance(qwen)), [3.105, 29.15]);
    const sw = readLoadTable(
      join(DATA, "harmoeny/data_processed_expert_freq_switch128_datasets.csv"),
      mapping,
    );
    assert.equal(sw.getColumn("expert").max(), 127);
    const encoder = loadImbalance(sw.filter(pl.col("layer").lt(6)));
    assert.deepEqual(range(encoder), [5.857, 86.207]);
  });

  test("HarMoEny: static EP on 6 GPUs reproduces the recorded deepspeed counts", () => {
    const ids = {
      step: "iteration",
      layer: "layer_idx",
      experts: "rest" as const,
    };
    const experts = loadVectors(readLoadTable(
      join(
        DATA,
        "harmoeny/data_processed_expert_freq_qwen_policy_datasets.csv",
      ),
      { ids: ["dataset"], ...ids },
    ));
    const recorded = loadVectors(
      readLoadTable(
        join(
          DATA,
          "harmoeny/data_processed_gpu_balance_qwen_policy_datasets.csv",
        ),
        { ids: ["dataset", "scheduling_policy"], ...ids },
      ).filter(pl.col("scheduling_policy").eq(pl.lit("deepspeed"))),
    );
    assert.equal(recorded.length, 960);
    experts.forEach((v, i) => {
      const gpu = Array.from(
        { length: 6 },
        (_, g) => v.loads.subarray(10 * g, 10 * g + 10).reduce((a, b) => a + b),
      );
      assert.deepEqual([v.ids.dataset, v.step, v.layer], [
        recorded[i].ids.dataset,
        recorded[i].step,
        recorded[i].layer,
      ]);
      assert.deepEqual(gpu, [...recorded[i].loads]);
    });
  });
});
