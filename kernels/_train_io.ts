// Host-array plumbing of the training-op kernels (matmul, attention,
// rms_norm, moe_dispatch): typed arrays up into pooled storage buffers,
// u32 uniforms, one submission, and results read back into the caller's
// arrays. The programs themselves bind whole buffers (or one chunk each),
// so no binding offset needs aligning.
import type { Gpu } from "./device.ts";
import { readBack, storage, uniforms } from "./program.ts";

/** A float32 or int32 array that a kernel moves to or from the GPU. */
export type HostArray = Float32Array | Int32Array;

/** A storage buffer holding `data` (at least 16 bytes). */
export function upload(gpu: Gpu, label: string, data: HostArray): GPUBuffer {
  if (data.length === 0) return storage(gpu, label, 16);
  // Deno's writeBuffer takes views over a SharedArrayBuffer, not the buffer.
  const b = storage(gpu, label, data.byteLength);
  gpu.device.queue.writeBuffer(b, 0, data as unknown as BufferSource);
  return b;
}

/** An uninitialised storage buffer of `count` 4-byte entries. */
export function scratch(gpu: Gpu, label: string, count: number): GPUBuffer {
  return storage(gpu, label, Math.max(16, 4 * count));
}

/** A uniform buffer of u32 words (padded to 16 bytes). */
export function params(gpu: Gpu, label: string, words: number[]): GPUBuffer {
  const padded = new Uint32Array(Math.max(4, Math.ceil(words.length / 4) * 4));
  padded.set(words);
  return uniforms(gpu, label, padded.buffer);
}

/** Reads `buffer` back into `into` (its length in entries). */
export async function download(
  gpu: Gpu,
  buffer: GPUBuffer,
  into: HostArray,
): Promise<void> {
  if (into.length === 0) return;
  const bytes = await readBack(gpu, buffer, into.byteLength);
  if (into instanceof Int32Array) into.set(new Int32Array(bytes));
  else into.set(new Float32Array(bytes));
}

/**
 * Reads several buffers back with one map: each `[buffer, into]` pair
 * copies `into.byteLength` bytes from the start of `buffer` into `into`.
 */
export async function downloadAll(
  gpu: Gpu,
  pairs: [GPUBuffer, HostArray][],
): Promise<void> {
  const live = pairs.filter(([, into]) => into.length > 0);
  if (live.length === 0) return;
  const total = live.reduce((s, [, into]) => s + into.byteLength, 0);
  const read = gpu.pool.acquire(
    total,
    GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    "training op read",
  );
  const enc = gpu.device.createCommandEncoder({ label: "training op read" });
  let at = 0;
  for (const [buffer, into] of live) {
    enc.copyBufferToBuffer(buffer, 0, read, at, into.byteLength);
    at += into.byteLength;
  }
  gpu.device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ, 0, total);
  const bytes = read.getMappedRange(0, total);
  at = 0;
  for (const [, into] of live) {
    const n = into.length;
    if (into instanceof Int32Array) into.set(new Int32Array(bytes, at, n));
    else into.set(new Float32Array(bytes, at, n));
    at += into.byteLength;
  }
  read.unmap();
  gpu.pool.release(read);
}

/** Records `body` into one encoder and submits it. */
export function submit(
  gpu: Gpu,
  label: string,
  body: (encoder: GPUCommandEncoder) => void,
): void {
  const encoder = gpu.device.createCommandEncoder({ label });
  body(encoder);
  gpu.device.queue.submit([encoder.finish()]);
}

/**
 * Throws unless `bytes` fits one storage binding of the device: what a
 * kernel that does not split that tensor requires.
 */
export function checkBinding(
  gpu: Gpu,
  name: string,
  bytes: number,
): void {
  if (bytes > gpu.maxBinding) {
    throw new RangeError(
      `${name} takes ${bytes} bytes, above the device's largest storage binding (${gpu.maxBinding} bytes)`,
    );
  }
}

/**
 * Splits `count` items of `bytesPerItem` each into runs that fit one
 * binding: `[from, to)` pairs.
 */
export function runsOf(
  gpu: Gpu,
  count: number,
  bytesPerItem: number,
): [number, number][] {
  const per = Math.max(
    1,
    Math.floor(gpu.maxBinding / Math.max(1, bytesPerItem)),
  );
  const runs: [number, number][] = [];
  for (let from = 0; from < count; from += per) {
    runs.push([from, Math.min(count, from + per)]);
  }
  return runs;
}
