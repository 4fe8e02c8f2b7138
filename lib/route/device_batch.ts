// A batch of one layer on the device, shared by every device balancer that
// routes it: the scores go up once, and each balancer's figures come back
// in one report of fixed-size records (loads, the bias that routed the
// batch, the per-batch metrics), read here.
import type { Gpu } from "../../kernels/device.ts";
import { storage } from "../../kernels/program.ts";
import {
  releaseScores,
  type ResidentScores,
  uploadScores,
} from "../../kernels/resident_scores.ts";
import { METRIC_WORDS, readMetrics } from "../../kernels/batch_metrics.ts";
import { badScore } from "../validate.ts";
import type { ScoreMatrix } from "../types.ts";

/** A batch of one layer on the device: its scores, uploaded once. */
export interface DeviceBatch {
  /** The scores on the host (tokens x experts). */
  readonly scores: ScoreMatrix;
  /** The same scores on the GPU. */
  readonly resident: ResidentScores;
  /**
   * One u32: 0xffffffff less the first flat index of a NaN or +Infinity
   * score any route of this batch met, 0 when none (cleared at upload).
   */
  readonly bad: GPUBuffer;
  /**
   * Where the greedy reference routing's selected score sum lies (f32 at
   * `word` of `buffer`), once a greedy balancer recorded this batch: the
   * denominator of every method's score retention.
   */
  reference?: { buffer: GPUBuffer; word: number };
}

/** Uploads a batch's scores (once, for every method that routes it). */
export function uploadBatch(gpu: Gpu, scores: ScoreMatrix): DeviceBatch {
  const bad = storage(gpu, "batch bad score", 4);
  const enc = gpu.device.createCommandEncoder({ label: "batch upload" });
  enc.clearBuffer(bad, 0, 4);
  gpu.device.queue.submit([enc.finish()]);
  return { scores, resident: uploadScores(gpu, scores), bad };
}

/** Gives a batch's buffers back to the pool (after the work is submitted). */
export function releaseBatch(gpu: Gpu, batch: DeviceBatch): void {
  releaseScores(gpu, batch.resident);
  gpu.pool.release(batch.bad);
}

/**
 * Bytes of one method's record in a report: loads (experts, u32), the
 * bias that routed the batch (experts, f32), the metrics words.
 */
export function recordBytes(experts: number): number {
  return 8 * experts + 4 * METRIC_WORDS;
}

/** Where a balancer copies its figures: a buffer (COPY_DST) and a byte offset. */
export interface ReportSlot {
  buffer: GPUBuffer;
  offset: number;
}

/** The figures of one method on one batch, as a simulator records them. */
export interface DeviceStepFigures {
  /** Tokens per expert (experts). */
  loads: Int32Array;
  /** The bias that routed the batch (experts; zeros for methods without one). */
  bias: Float64Array;
  /** The per-batch metrics at the positions of `METRIC` (lib/metrics/batch_metrics.ts). */
  metrics: Float64Array;
  /** Selected score sum (the optimality gap's numerator). */
  scoreSum: number;
}

/** How a method's bias reads from its state buffer. */
export type BiasKind = "none" | "bias" | "negated";

/**
 * Reads one method's record at `offset` of a report's `words` (see
 * {@linkcode recordBytes}) for `experts` experts.
 */
export function readRecord(
  words: ArrayBuffer,
  offset: number,
  experts: number,
  bias: BiasKind,
): DeviceStepFigures {
  const loads = new Int32Array(words.slice(offset, offset + 4 * experts));
  const raw = new Float32Array(words, offset + 4 * experts, experts);
  const b = new Float64Array(experts);
  if (bias === "bias") b.set(raw);
  else if (bias === "negated") {
    for (let j = 0; j < experts; j++) b[j] = -raw[j];
  }
  const m = readMetrics(words, offset + 8 * experts);
  return {
    loads,
    bias: b,
    metrics: Float64Array.from(m.values),
    scoreSum: m.scoreSum,
  };
}

/** Throws the CPU's RangeError when a batch's bad-score word is set. */
export function checkBadWord(word: number, scores: ScoreMatrix): void {
  if (word !== 0) throw badScore("scores", scores, 0xffffffff - word);
}
