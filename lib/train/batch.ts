// Filling a workspace with (context, next character) pairs from a text.
import type { Rng } from "../scores/rng.ts";

/**
 * Writes `seqs` sequences of `seqLen` consecutive positions into `ctx`
 * (`seqs*seqLen x context`) and `targets`; sequence `b` starts at
 * `starts(b)`, a position `>= context` so every context is real text.
 */
export function fillSequences(
  text: Uint8Array,
  context: number,
  seqs: number,
  seqLen: number,
  starts: (b: number) => number,
  ctx: Int32Array,
  targets: Int32Array,
): void {
  for (let b = 0; b < seqs; b++) {
    const p0 = starts(b);
    for (let t = 0; t < seqLen; t++) {
      const i = b * seqLen + t, p = p0 + t;
      targets[i] = text[p];
      for (let q = 0; q < context; q++) {
        ctx[i * context + q] = text[p - context + q];
      }
    }
  }
}

/** Random sequence starts for training: uniform over the text. */
export function randomStarts(
  text: Uint8Array,
  context: number,
  seqLen: number,
  rng: Rng,
): (b: number) => number {
  const span = text.length - seqLen - context + 1;
  return () => context + rng.int(span);
}

/** Evenly spaced sequence starts: `count` sequences across the whole text. */
export function evenStarts(
  text: Uint8Array,
  context: number,
  seqLen: number,
  count: number,
): (b: number) => number {
  const span = text.length - seqLen - context;
  return (b) => context + Math.floor((b * span) / Math.max(1, count));
}
