// The balance figures the serving engines print, computed from per-GPU
// token counts so that moelab's numbers can be set beside an engine's logs.
import { checkInteger, checkNumber, show } from "../validate.ts";

function rows(name: string, v: unknown): ArrayLike<number>[] {
  if (!Array.isArray(v) || v.length === 0) {
    throw new TypeError(
      `${name} must be a non-empty array of rows: current value is ${show(v)}`,
    );
  }
  const G = (v[0] as ArrayLike<number>)?.length;
  v.forEach((row, i) => {
    if (row === null || typeof row !== "object" || row.length !== G || !G) {
      throw new TypeError(
        `${name} must be rectangular: row ${i} is ${show(row)}, row 0 has ${G}`,
      );
    }
    for (let g = 0; g < G; g++) checkNumber(`${name}[${i}][${g}]`, row[g], 0);
  });
  return v;
}

function mean(row: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < row.length; i++) s += row[i];
  return s / row.length;
}

function max(row: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i]);
  return m;
}

/**
 * Tokens each GPU computes when every expert's load is split equally over
 * its replicas: EPLB's assumption, and TensorRT-LLM's projection of a
 * placement (`examples/ep_load_balancer/report_load_statistics.py`).
 *
 * @param loads Tokens per logical expert.
 * @param phy2log Logical expert of each physical slot; slot `i` is on GPU
 * `floor(i / (slots / gpus))`.
 * @param gpus GPUs, a divisor of the slots.
 * @returns `Float64Array (gpus)`.
 * @throws {RangeError} If `gpus` does not divide the slots, an id is out of
 * range or an expert has no slot while it has load.
 *
 * @example
 * ```ts
 * import { gpuLoadsEqualSplit } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * // expert 0 (load 8) on both GPUs: 4 + 1 and 4 + 3
 * assert.deepEqual([...gpuLoadsEqualSplit([8, 1, 3], [0, 1, 0, 2], 2)], [5, 7]);
 * ```
 */
export function gpuLoadsEqualSplit(
  loads: ArrayLike<number>,
  phy2log: ArrayLike<number>,
  gpus: number,
): Float64Array {
  checkInteger("gpus", gpus, 1);
  if (phy2log.length === 0 || phy2log.length % gpus !== 0) {
    throw new RangeError(
      `phy2log length must be a positive multiple of gpus (${gpus}): current value is ${phy2log.length}`,
    );
  }
  const E = loads.length, per = phy2log.length / gpus;
  const count = new Int32Array(E);
  for (let i = 0; i < phy2log.length; i++) {
    const e = phy2log[i];
    if (!Number.isInteger(e) || e < 0 || e >= E) {
      throw new RangeError(
        `phy2log[${i}] must be an expert id in [0, ${
          E - 1
        }]: current value is ${e}`,
      );
    }
    count[e]++;
  }
  for (let e = 0; e < E; e++) {
    checkNumber(`loads[${e}]`, loads[e], 0);
    if (count[e] === 0 && loads[e] > 0) {
      throw new RangeError(
        `expert ${e} has load ${loads[e]} and no slot in phy2log`,
      );
    }
  }
  const out = new Float64Array(gpus);
  for (let i = 0; i < phy2log.length; i++) {
    out[Math.floor(i / per)] += loads[phy2log[i]] / count[phy2log[i]];
  }
  return out;
}

/**
 * vLLM's EPLB balancedness of one step, as its log line prints it
 * (`vllm/distributed/eplb/eplb_state.py`, `_compute_eplb_load_stats`):
 * the per-layer mean over ranks and maximum over ranks, each summed over
 * the layers, then `avg_tokens / max_tokens` (0 when no tokens). 1 is
 * perfect balance.
 *
 * @param gpuLoads `[layers][gpus]` tokens each rank computed in the step.
 * @returns `sum_l mean_g / sum_l max_g`.
 * @throws {TypeError} If `gpuLoads` is not rectangular.
 *
 * @example
 * ```ts
 * import { vllmBalancedness } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * // layer 0: mean 2, max 3; layer 1: mean 4, max 5 -> 6 / 8
 * assert.equal(vllmBalancedness([[1, 3], [3, 5]]), 0.75);
 * ```
 */
export function vllmBalancedness(gpuLoads: ArrayLike<number>[]): number {
  const r = rows("gpuLoads", gpuLoads);
  let avg = 0, top = 0;
  for (const row of r) avg += mean(row), top += max(row);
  return top > 0 ? avg / top : 0;
}

/**
 * SGLang's expert utilisation rate of one forward pass, as its
 * `[Expert Utilization Rate]` log line prints it
 * (`python/sglang/srt/eplb/expert_distribution.py`,
 * `compute_utilization_rate`, then the mean over layers): per layer
 * `(mean_g + 1e-5) / (max_g + 1e-5)`, averaged over the layers.
 *
 * @param gpuLoads `[layers][gpus]` tokens each GPU computed in the pass.
 * @returns The mean over layers, in `(0, 1]`.
 * @throws {TypeError} If `gpuLoads` is not rectangular.
 *
 * @example
 * ```ts
 * import { sglangUtilizationRate } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * // layer 0: 2 / 3, layer 1: 4 / 4 (up to the 1e-5 terms)
 * const u = sglangUtilizationRate([[1, 3], [4, 4]]);
 * assert.ok(Math.abs(u - (2 / 3 + 1) / 2) < 1e-5);
 * ```
 */
export function sglangUtilizationRate(gpuLoads: ArrayLike<number>[]): number {
  const r = rows("gpuLoads", gpuLoads);
  let s = 0;
  for (const row of r) s += (mean(row) + 1e-5) / (max(row) + 1e-5);
  return s / r.length;
}

/**
 * TensorRT-LLM's imbalance ratio, as its load-statistics report prints it
 * (`examples/ep_load_balancer/report_load_statistics.py`,
 * `calculate_load_statistics`): per layer the mean over iterations of
 * `max_rank / mean_rank - 1`, then the mean over layers (the `average`
 * row). 0 is perfect balance; an iteration with no tokens gives `NaN`, as
 * there.
 *
 * @param gpuLoads `[iterations][layers][gpus]` tokens per rank.
 * @returns The average over layers.
 * @throws {TypeError} If the array is empty or not rectangular.
 *
 * @example
 * ```ts
 * import { trtllmImbalanceRatio } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * // one layer, two iterations: 3 / 2 - 1 = 0.5 and 4 / 4 - 1 = 0
 * assert.equal(trtllmImbalanceRatio([[[1, 3]], [[4, 4]]]), 0.25);
 * ```
 */
export function trtllmImbalanceRatio(gpuLoads: ArrayLike<number>[][]): number {
  if (!Array.isArray(gpuLoads) || gpuLoads.length === 0) {
    throw new TypeError(
      `gpuLoads must be a non-empty array of iterations: current value is ${
        show(gpuLoads)
      }`,
    );
  }
  const steps = gpuLoads.map((s, i) => rows(`gpuLoads[${i}]`, s));
  const L = steps[0].length;
  let total = 0;
  for (let l = 0; l < L; l++) {
    let s = 0;
    for (const [i, step] of steps.entries()) {
      if (step.length !== L) {
        throw new TypeError(
          `gpuLoads must be rectangular: iteration ${i} has ${step.length} layers, iteration 0 ${L}`,
        );
      }
      s += max(step[l]) / mean(step[l]) - 1;
    }
    total += s / steps.length;
  }
  return total / L;
}
