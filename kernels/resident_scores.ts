// A batch of scores resident on the GPU: uploaded once, in chunks of rows
// that each fit one storage binding, and read by every kernel that routes
// or balances that batch (route, dual rounds, Sinkhorn, Expert Choice,
// capacity, metrics). Chunks hold a multiple of 256 rows, so per-token
// outputs bound at a chunk's first row stay 256-byte aligned and the
// 256-row blocks of the column kernels never straddle two chunks.
import type { ScoreMatrix } from "../lib/types.ts";
import type { Gpu } from "./device.ts";
import { type RowChunk, uploadRows } from "./chunks.ts";

/** Rows per chunk are a multiple of this. */
export const ROW_ALIGN = 256;

/** Scores of one batch on the GPU. */
export interface ResidentScores {
  /** Rows (tokens). */
  readonly tokens: number;
  /** Columns (experts). */
  readonly experts: number;
  /** The rows, in chunks of at most one binding. */
  readonly chunks: readonly RowChunk[];
}

/** Uploads `scores` (tokens x experts) in chunks of rows. */
export function uploadScores(gpu: Gpu, scores: ScoreMatrix): ResidentScores {
  return {
    tokens: scores.tokens,
    experts: scores.experts,
    chunks: scores.tokens === 0 ? [] : uploadRows(gpu, scores, ROW_ALIGN),
  };
}

/** Gives the chunks' buffers back to the pool (after the work is submitted). */
export function releaseScores(gpu: Gpu, scores: ResidentScores): void {
  gpu.pool.release(...scores.chunks.map((c) => c.buffer));
}

/** Makes a uniform buffer of `words` (program.ts's `uniformSet().make`). */
export type UniformMaker = (words: ArrayBuffer) => GPUBuffer;

/** Four 32-bit words, each a u32 or, given as `{ f32 }`, a float's bits. */
export function words4(...values: (number | { f32: number })[]): ArrayBuffer {
  const buf = new ArrayBuffer(16);
  const u = new Uint32Array(buf), f = new Float32Array(buf);
  values.forEach((v, i) => {
    if (typeof v === "number") u[i] = v;
    else f[i] = v.f32;
  });
  return buf;
}
