// Compute pipelines cached by program key: a pipeline is compiled once per
// process for each distinct WGSL source (a program's structural key).
// Below device.ts, which gives every device its cache, and program.ts,
// which dispatches through it.

/** A compute program: one entry point `main` in WGSL. */
export interface GpuProgram {
  /** Structural key: programs with the same key have the same WGSL. */
  key: string;
  /** Label for the shader module and pipeline. */
  label: string;
  /** Complete WGSL source. Uses program.ts's `FLAT_ID` for its thread index. */
  wgsl: string;
  /** Threads per workgroup (x only). */
  workgroupSize: number;
}

/** Compute pipelines by program key. */
export class PipelineCache {
  #device: GPUDevice;
  #pipelines = new Map<string, GPUComputePipeline>();

  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** The pipeline of `program`, compiled on first use. */
  get(program: GpuProgram): GPUComputePipeline {
    let p = this.#pipelines.get(program.key);
    if (!p) {
      const module = this.#device.createShaderModule({
        label: program.label,
        code: program.wgsl,
      });
      p = this.#device.createComputePipeline({
        label: program.label,
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
      this.#pipelines.set(program.key, p);
    }
    return p;
  }

  /** Number of pipelines compiled so far. */
  get size(): number {
    return this.#pipelines.size;
  }
}
