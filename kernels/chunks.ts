// Scores resident on the GPU in chunks of rows, each within one storage
// binding, for kernels that read the whole batch several times (BIP,
// Sinkhorn). Routing streams its chunks instead (route_topk.ts).
import type { ScoreMatrix } from "../lib/types.ts";
import type { Gpu } from "./device.ts";
import { storage, writeFloats } from "./program.ts";

/** A run of rows `[from, from + rows)` in its own buffer. */
export interface RowChunk {
  buffer: GPUBuffer;
  from: number;
  rows: number;
}

/**
 * Uploads `scores` in chunks of at most one binding, with a row count per
 * chunk that is a multiple of `align`.
 */
export function uploadRows(
  gpu: Gpu,
  scores: ScoreMatrix,
  align: number,
): RowChunk[] {
  const { data, tokens: N, experts: E } = scores;
  const fit = Math.max(
    align,
    Math.floor(gpu.maxBinding / (4 * E) / align) * align,
  );
  const chunks: RowChunk[] = [];
  for (let from = 0; from < N; from += fit) {
    const rows = Math.min(fit, N - from);
    const buffer = storage(gpu, `scores rows ${from}+${rows}`, 4 * rows * E);
    writeFloats(gpu, buffer, data, from * E, rows * E);
    chunks.push({ buffer, from, rows });
  }
  return chunks;
}

/** Four u32 words for a uniform buffer. */
export function words(a: number, b = 0, c = 0, d = 0): ArrayBuffer {
  return new Uint32Array([a, b, c, d]).buffer;
}
