// Buffer pooling: GPU buffers are costly to create, and a simulation routes
// batches of the same shape thousands of times. Buffers are kept by usage
// and size (rounded up to a power of two) and handed out again.

/** A pool of GPU buffers, by usage and size class. */
export class BufferPool {
  #device: GPUDevice;
  #free = new Map<string, GPUBuffer[]>();

  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** A buffer of at least `size` bytes with `usage`, labelled `label`. */
  acquire(size: number, usage: number, label: string): GPUBuffer {
    const bytes = Math.max(16, 2 ** Math.ceil(Math.log2(Math.max(size, 1))));
    const list = this.#free.get(`${usage}:${bytes}`);
    const reused = list?.pop();
    if (reused) {
      reused.label = label;
      return reused;
    }
    return this.#device.createBuffer({ size: bytes, usage, label });
  }

  /** Gives buffers back for reuse (after the work using them is submitted). */
  release(...buffers: GPUBuffer[]): void {
    for (const b of buffers) {
      const key = `${b.usage}:${b.size}`;
      const list = this.#free.get(key);
      if (list) list.push(b);
      else this.#free.set(key, [b]);
    }
  }
}
