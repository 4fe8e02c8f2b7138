// GPU programs as small objects (after tfjs's WebGPU backend): WGSL body,
// workgroup size, a structural key, bindings by convention in group 0
// (outputs, then inputs, then the uniforms), sizes passed as uniforms.
// Pipelines are cached by key (pipeline_cache.ts); dispatches can be timed with timestamp
// queries instead of map round trips.
import type { Gpu } from "./device.ts";
import type { GpuProgram } from "./pipeline_cache.ts";

export type { GpuProgram } from "./pipeline_cache.ts";

/**
 * WGSL helper: the global thread index of a dispatch that may be folded
 * into two dimensions (more workgroups than one dimension allows).
 */
export const FLAT_ID = `
fn flat_id(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>, size: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * size + lid.x;
}`;

/** A binding: a whole buffer or a range of one. */
export type Binding = GPUBuffer | {
  buffer: GPUBuffer;
  offset: number;
  size: number;
};

/** The binding of the first `size` bytes of `buffer`. */
export function span(buffer: GPUBuffer, size: number): Binding {
  return { buffer, offset: 0, size };
}

/**
 * Uniform buffers for one submission: `make` fills one from the pool and
 * remembers it, so that all can be released (`buffers`) after the readback.
 */
export function uniformSet(
  gpu: Gpu,
  label: string,
): { make(words: ArrayBuffer): GPUBuffer; buffers: GPUBuffer[] } {
  const buffers: GPUBuffer[] = [];
  return {
    make(words: ArrayBuffer): GPUBuffer {
      const b = uniforms(gpu, label, words);
      buffers.push(b);
      return b;
    },
    buffers,
  };
}

/** Collects timestamp pairs around passes, read back once at the end. */
export class GpuTimer {
  #gpu: Gpu;
  #set: GPUQuerySet | undefined;
  #count = 0;
  readonly capacity: number;

  constructor(gpu: Gpu, capacity = 64) {
    this.#gpu = gpu;
    this.capacity = capacity;
    if (gpu.timestamps) {
      this.#set = gpu.device.createQuerySet({
        label: "moelab timer",
        type: "timestamp",
        count: 2 * capacity,
      });
    }
  }

  /** Timestamp writes for the next pass, or undefined when full or unsupported. */
  next(): GPUComputePassTimestampWrites | undefined {
    if (!this.#set || this.#count >= this.capacity) return undefined;
    const i = this.#count++;
    return {
      querySet: this.#set,
      beginningOfPassWriteIndex: 2 * i,
      endOfPassWriteIndex: 2 * i + 1,
    };
  }

  /** Total GPU time of the timed passes in ms, or NaN without timestamps. */
  async readMs(): Promise<number> {
    if (!this.#set || this.#count === 0) return NaN;
    const { device, pool } = this.#gpu;
    const bytes = 16 * this.#count;
    const resolve = pool.acquire(
      bytes,
      GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      "timer resolve",
    );
    const read = pool.acquire(
      bytes,
      GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      "timer read",
    );
    const enc = device.createCommandEncoder({ label: "timer resolve" });
    enc.resolveQuerySet(this.#set, 0, 2 * this.#count, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, read, 0, bytes);
    device.queue.submit([enc.finish()]);
    await read.mapAsync(GPUMapMode.READ, 0, bytes);
    const t = new BigUint64Array(read.getMappedRange(0, bytes).slice(0));
    read.unmap();
    pool.release(resolve, read);
    let ns = 0;
    for (let i = 0; i < this.#count; i++) ns += Number(t[2 * i + 1] - t[2 * i]);
    this.#count = 0;
    return ns / 1e6;
  }

  /** Frees the query set. */
  destroy(): void {
    this.#set?.destroy();
  }
}

/**
 * Records one dispatch of `program` over `threads` threads into `encoder`,
 * binding `bindings` to 0, 1, ... of group 0 in order.
 */
export function dispatch(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  program: GpuProgram,
  bindings: Binding[],
  threads: number,
  timer?: GpuTimer,
): void {
  const pipeline = gpu.pipelines.get(program);
  const group = gpu.device.createBindGroup({
    label: program.label,
    layout: pipeline.getBindGroupLayout(0),
    entries: bindings.map((b, binding) => ({
      binding,
      resource: "buffer" in b ? b : { buffer: b },
    })),
  });
  const pass = encoder.beginComputePass({
    label: program.label,
    timestampWrites: timer?.next(),
  });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  const groups = Math.max(1, Math.ceil(threads / program.workgroupSize));
  const x = Math.min(groups, gpu.maxGroups);
  pass.dispatchWorkgroups(x, Math.ceil(groups / x));
  pass.end();
}

/** A uniform buffer holding `words` (u32 or f32 bit patterns), from the pool. */
export function uniforms(
  gpu: Gpu,
  label: string,
  words: ArrayBuffer,
): GPUBuffer {
  const b = gpu.pool.acquire(
    Math.max(16, words.byteLength),
    GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    label,
  );
  gpu.device.queue.writeBuffer(b, 0, words);
  return b;
}

/** Copies `bytes` of `source` back to the CPU. */
export async function readBack(
  gpu: Gpu,
  source: GPUBuffer,
  bytes: number,
  offset = 0,
): Promise<ArrayBuffer> {
  const read = gpu.pool.acquire(
    bytes,
    GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    `${source.label} read`,
  );
  const enc = gpu.device.createCommandEncoder({
    label: `${source.label} read`,
  });
  enc.copyBufferToBuffer(source, offset, read, 0, bytes);
  gpu.device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ, 0, bytes);
  const copy = read.getMappedRange(0, bytes).slice(0);
  read.unmap();
  gpu.pool.release(read);
  return copy;
}

/** A storage buffer from the pool, filled with `data` when given. */
export function storage(
  gpu: Gpu,
  label: string,
  bytes: number,
  data?: ArrayBufferView,
): GPUBuffer {
  const b = gpu.pool.acquire(
    bytes,
    GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
    label,
  );
  if (data) {
    gpu.device.queue.writeBuffer(
      b,
      0,
      new Uint8Array(
        data.buffer,
        data.byteOffset,
        data.byteLength,
      ) as BufferSource,
    );
  }
  return b;
}

/**
 * Writes `count` floats of `data` from element `from` to the start of
 * `buffer`. Views over a SharedArrayBuffer (routeParallel's shared scores)
 * are accepted: Deno's writeBuffer takes them as views, not as buffers.
 */
export function writeFloats(
  gpu: Gpu,
  buffer: GPUBuffer,
  data: Float32Array,
  from: number,
  count: number,
): void {
  const view = data.subarray(from, from + count) as BufferSource;
  gpu.device.queue.writeBuffer(buffer, 0, view);
}
