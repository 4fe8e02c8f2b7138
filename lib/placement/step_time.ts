import { checkNumber, show } from "../validate.ts";

/** Hardware and model sizes of the step-time model. */
export interface StepTimeModel {
  /** Hidden size `H`. */
  hidden: number;
  /** FFN expansion `alpha`: expert intermediate size over `H`. */
  ffnFactor: number;
  /** Bytes per activation element sent in the all-to-alls (2 for bf16). */
  bytesPerElement: number;
  /** Effective matrix-multiply throughput of one GPU, FLOP/s. */
  flops: number;
  /** Effective all-to-all bandwidth of one GPU, bytes/s in each direction. */
  bandwidth: number;
}

/**
 * One 8-GPU H100 SXM node on NVLink 4, with effective (not peak) rates.
 * `flops`: 989 TFLOP/s is NVIDIA's dense BF16 peak of the H100 SXM (the
 * 1979 figure assumes 2:4 sparsity); MoE expert GEMMs reach roughly 60 %
 * of it, so 593 TFLOP/s. `bandwidth`: NVLink 4 gives 900 GB/s per GPU in
 * both directions together, 450 GB/s each way; all-to-all reaches roughly
 * 80 % of it, so 360 GB/s. The two shares are assumptions, not
 * measurements. Model: `H = 4096`, `alpha = 4`, bf16 activations.
 */
export const H100_NVLINK: Readonly<StepTimeModel> = {
  hidden: 4096,
  ffnFactor: 4,
  bytesPerElement: 2,
  flops: 0.6 * 989e12,
  bandwidth: 0.8 * 450e9,
};

/**
 * The FasterMoE step-time model of one MoE layer, forward and backward
 * (docs/algorithms.md section 15):
 * `3 * (4 * alpha * H^2 / flops) * B_max + 4 * (bytes * H / bandwidth) * C_max`,
 * with `B_max` the tokens of the busiest GPU (two GEMMs of `H x alpha H`,
 * 2 FLOP per multiply-add, three passes: forward and two backward) and
 * `C_max` the most tokens a GPU sends or receives in one all-to-all (four
 * of them: dispatch and combine, forward and backward). FasterMoE sets
 * `C_max = B_max`, the default here.
 *
 * @param maxTokens `B_max`, tokens computed by the busiest GPU.
 * @param options `commTokens` (`C_max`, default `maxTokens`) and `model`
 * (overrides of {@linkcode H100_NVLINK}).
 * @returns Milliseconds.
 * @throws {RangeError} If a count or rate is negative or not finite.
 *
 * @example 4096 tokens on the busiest GPU of an H100 node
 * ```ts
 * import { stepTimeMs } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const ms = stepTimeMs(4096);
 * // compute 3 * 4 * 4 * 4096^2 * 4096 / 593.4e12 = 5.56 ms; a2a 4 * 2 * 4096 * 4096 / 360e9 = 0.37 ms
 * assert.ok(Math.abs(ms - 5.93) < 0.01);
 * ```
 */
export function stepTimeMs(
  maxTokens: number,
  options: { commTokens?: number; model?: Partial<StepTimeModel> } = {},
): number {
  checkNumber("maxTokens", maxTokens, 0);
  const comm = checkNumber("commTokens", options.commTokens ?? maxTokens, 0);
  if (options.model !== undefined && typeof options.model !== "object") {
    throw new TypeError(
      `model must be an object: current value is ${show(options.model)}`,
    );
  }
  const m = { ...H100_NVLINK, ...options.model };
  for (const key of Object.keys(H100_NVLINK) as (keyof StepTimeModel)[]) {
    checkNumber(`model.${key}`, m[key], Number.MIN_VALUE);
  }
  const H = m.hidden;
  const compute = 3 * (4 * m.ffnFactor * H * H / m.flops) * maxTokens;
  const a2a = 4 * (m.bytesPerElement * H / m.bandwidth) * comm;
  return (compute + a2a) * 1e3;
}

/**
 * Throughput gain of a strategy over a baseline from their step times:
 * `baselineMs / ms - 1` (0.25 = 25 % more tokens per second).
 *
 * @param baselineMs Step time of the baseline (static EP).
 * @param ms Step time of the strategy.
 * @returns The relative gain.
 * @throws {RangeError} If a time is not positive.
 *
 * @example
 * ```ts
 * import { throughputGain } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * assert.equal(throughputGain(10, 8), 0.25);
 * ```
 */
export function throughputGain(baselineMs: number, ms: number): number {
  checkNumber("baselineMs", baselineMs, Number.MIN_VALUE);
  checkNumber("ms", ms, Number.MIN_VALUE);
  return baselineMs / ms - 1;
}

/** The multi-node step-time model's hardware and sizes ({@linkcode multiNodeStepTimeMs}). */
export interface MultiNodeModel {
  /** Hidden size `H`. */
  hidden: number;
  /** Expert intermediate size over `H`. */
  ffnFactor: number;
  /** Bytes per element of a dispatch (1 for FP8). */
  dispatchBytes: number;
  /** Bytes per element of a combine (2 for BF16). */
  combineBytes: number;
  /** Effective matrix-multiply throughput of one GPU, FLOP/s. */
  flops: number;
  /** Effective NVLink bandwidth of one GPU, bytes/s each way. */
  nvlink: number;
  /** Effective network bandwidth of one GPU's NIC, bytes/s each way. */
  network: number;
  /** `"max"`: NVLink and network overlap (DeepEP); `"sum"`: they do not. */
  overlap: "max" | "sum";
}

/**
 * The step-time model of one MoE layer (forward and backward) on GPUs in
 * nodes: {@linkcode stepTimeMs}'s compute term
 * `3 * (4 * alpha * H^2 / flops) * B_max`, plus two dispatches and two
 * combines (forward and backward), each taking
 * `link(bytes * H * C_max / nvlink, bytes * H * R_max / network)` with
 * `C_max` the most pairs a GPU receives over NVLink and `R_max` the most
 * tokens a NIC receives from other nodes ({@linkcode nodeTraffic}), and
 * `link` the larger of the two (DeepEP forwards network arrivals over
 * NVLink as they come, so the two overlap: DeepSeek-V3 report section
 * 3.2.2) or their sum. On one node (`R_max = 0`, equal bytes) it is
 * {@linkcode stepTimeMs} with `C_max = B_max`, to the last bit.
 *
 * @param maxTokens `B_max`, tokens computed by the busiest GPU.
 * @param traffic `maxGpuPairs` (`C_max`) and `maxNicTokens` (`R_max`).
 * @param model Hardware and sizes.
 * @returns Milliseconds.
 * @throws {RangeError} If a count or rate is negative or not finite.
 *
 * @example DeepSeek-V3 on H800: the network dominates
 * ```ts
 * import { multiNodeStepTimeMs } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const model = { hidden: 7168, ffnFactor: 2048 / 7168, dispatchBytes: 1,
 *   combineBytes: 2, flops: 593.4e12, nvlink: 153e9, network: 50e9, overlap: "max" as const };
 * const ms = multiNodeStepTimeMs(2048, { maxGpuPairs: 2048, maxNicTokens: 896 }, model);
 * // compute 3 * 4 * 2048 * 7168 * 2048 / 593.4e12 = 0.608 ms;
 * // network (1 + 2) * 7168 * 896 / 50e9 = 0.385 ms > NVLink 0.288 ms, twice
 * assert.ok(Math.abs(ms - (0.6080 + 2 * 0.3854)) < 1e-3);
 * ```
 */
export function multiNodeStepTimeMs(
  maxTokens: number,
  traffic: { maxGpuPairs: number; maxNicTokens: number },
  model: MultiNodeModel,
): number {
  checkNumber("maxTokens", maxTokens, 0);
  const C = checkNumber("traffic.maxGpuPairs", traffic?.maxGpuPairs, 0);
  const R = checkNumber("traffic.maxNicTokens", traffic?.maxNicTokens, 0);
  if (model === null || typeof model !== "object") {
    throw new TypeError(
      `model must be an object: current value is ${show(model)}`,
    );
  }
  for (
    const key of [
      "hidden",
      "ffnFactor",
      "dispatchBytes",
      "combineBytes",
      "flops",
      "nvlink",
      "network",
    ] as const
  ) checkNumber(`model.${key}`, model[key], Number.MIN_VALUE);
  if (model.overlap !== "max" && model.overlap !== "sum") {
    throw new RangeError(
      `model.overlap must be "max" or "sum": current value is ${
        show(model.overlap)
      }`,
    );
  }
  const H = model.hidden;
  const compute = 3 * (4 * model.ffnFactor * H * H / model.flops) * maxTokens;
  const link = (bytes: number) => {
    const nvlink = (bytes * H / model.nvlink) * C;
    if (R === 0) return nvlink;
    const network = (bytes * H / model.network) * R;
    return model.overlap === "max"
      ? Math.max(nvlink, network)
      : nvlink + network;
  };
  const a2a = 2 * (link(model.dispatchBytes) + link(model.combineBytes));
  return (compute + a2a) * 1e3;
}
