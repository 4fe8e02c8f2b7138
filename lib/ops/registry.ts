// The kernel registry: ops by name, kernels by (op, backend). After
// tfjs-core's kernel_registry.ts, without its engine: nothing is chosen
// behind the caller's back. A public function validates its input once with
// the op's validator and runs the kernel of the backend it picked; balancers
// and the simulator, whose input is already checked, take a kernel and run
// it directly.

/**
 * The backends a kernel is written for: `"cpu"` (TypeScript: the
 * production code and the reference), `"cpu-threads"` (the same rule over
 * worker threads), `"wasm"` (WebAssembly SIMD on the calling thread,
 * lib/wasm/: the same answers as `"cpu"`, bit for bit) and `"webgpu"`
 * (WGSL compute, kernels/).
 */
export type KernelBackend = "cpu" | "cpu-threads" | "wasm" | "webgpu";

/** Every {@linkcode KernelBackend}, the reference first. */
export const KERNEL_BACKENDS: readonly KernelBackend[] = [
  "cpu",
  "cpu-threads",
  "wasm",
  "webgpu",
];

/** Backends whose kernels answer synchronously. */
export type SyncBackend = "cpu" | "cpu-threads" | "wasm";

/** What a kernel of backend `B` returns: `R`, or a promise of it on WebGPU. */
export type KernelResult<R, B extends KernelBackend> = B extends SyncBackend ? R
  : Promise<R>;

/**
 * What a kernel runs with besides its arguments: the thread count of a
 * `"cpu-threads"` kernel; the device of a `"webgpu"` kernel (kernels/
 * device.ts's `Gpu`, opaque here: lib/ops sits below kernels/) and an
 * optional timer for its passes.
 */
export interface KernelEnv {
  /** Threads, the calling one included (`"cpu-threads"`). */
  threads?: number;
  /**
   * What each thread of a `"cpu-threads"` kernel runs: `"wasm"` (its
   * WebAssembly SIMD rows where the op has them; the default) or `"cpu"`
   * (TypeScript). The same answers either way.
   */
  host?: "cpu" | "wasm";
  /** The WebGPU device context (`"webgpu"`). */
  gpu?: unknown;
  /** A GPU pass timer (`"webgpu"`, optional). */
  timer?: unknown;
}

/**
 * An operation: a name, a one-line summary and the one validator of its
 * input. `I` is what a public caller hands in, `A` the checked arguments
 * every kernel takes, `R` what the kernels return.
 */
export interface Op<I, A, R> {
  /** Unique name, e.g. `"route"`. */
  readonly name: string;
  /** One line: what the op computes. */
  readonly summary: string;
  /**
   * Checks `input` and fills its defaults: `TypeError` for a wrong type or
   * shape, `RangeError` for a value out of range, naming the argument and
   * showing the value.
   */
  validate(input: I): A;
  /** Phantom: the result type, for inference only (always undefined). */
  readonly result?: R;
}

/** An op of any input, arguments and result, for enumeration. */
// deno-lint-ignore no-explicit-any
export type AnyOp = Op<any, any, any>;

/** Arguments type of an op. */
export type ArgsOf<O> = O extends Op<unknown, infer A, unknown> ? A : never;
/** Result type of an op. */
export type ResultOf<O> = O extends Op<unknown, unknown, infer R> ? R : never;

/** A kernel of op `O` on backend `B`. */
export interface Kernel<O extends AnyOp, B extends KernelBackend> {
  /** The op it computes. */
  readonly op: O;
  /** The backend it runs on. */
  readonly backend: B;
  /** Runs on arguments the op's validator has checked. */
  run(args: ArgsOf<O>, env: KernelEnv): KernelResult<ResultOf<O>, B>;
  /**
   * Why the kernel does not take these (valid) arguments, or `undefined`
   * when it does (e.g. `k` above what the GPU kernel keeps in registers).
   * Default: takes everything.
   */
  refuses?(args: ArgsOf<O>): string | undefined;
  /**
   * The public paths that dispatch to this kernel (e.g. `"route()"`,
   * `"bip balancer"`), for readers; tests/kernels_conformance_test.ts
   * checks each one against {@linkcode KernelRecord.calls}.
   */
  readonly callers: readonly string[];
}

/** A registered kernel and how many times it ran. */
export interface KernelRecord<
  O extends AnyOp = AnyOp,
  B extends KernelBackend = KernelBackend,
> extends Kernel<O, B> {
  /** Calls of `run` (and {@linkcode KernelRecord.note}s) since the process started. */
  readonly calls: number;
  /**
   * Counts one use of the kernel by another entry point of the same code
   * (a WebGPU kernel's resident-buffer form, which device balancers call
   * without the host round trip of `run`; the batchMetrics CPU kernel's
   * code run for every method of a batch at once by `batchMetricsMany`).
   */
  note(): void;
}

const ops = new Map<string, AnyOp>();
const kernels = new Map<string, KernelRecord>();

/**
 * Defines an op. Names are unique per process.
 *
 * @param spec Name, summary and validator.
 * @returns The op, to register kernels against and to validate with.
 * @throws {Error} If an op of that name exists.
 */
export function defineOp<I, A, R>(
  spec: { name: string; summary: string; validate(input: I): A },
): Op<I, A, R> {
  if (ops.has(spec.name)) throw new Error(`op ${spec.name} is already defined`);
  const op: Op<I, A, R> = Object.freeze({
    name: spec.name,
    summary: spec.summary,
    validate: spec.validate,
  });
  ops.set(op.name, op);
  return op;
}

/**
 * Registers the kernel of `kernel.op` for `kernel.backend`. The module
 * that holds a kernel registers it when imported.
 *
 * @param kernel The op, the backend, `run`, optional `refuses`, `callers`.
 * @returns The registered record (counts its calls).
 * @throws {Error} If the op is not defined here or the pair is registered.
 */
export function registerKernel<O extends AnyOp, B extends KernelBackend>(
  kernel: Kernel<O, B>,
): KernelRecord<O, B> {
  const { op, backend } = kernel;
  if (ops.get(op.name) !== op) {
    throw new Error(`op ${op.name} is not defined by defineOp`);
  }
  const key = `${op.name}/${backend}`;
  if (kernels.has(key)) throw new Error(`kernel ${key} is already registered`);
  const inner = kernel.run;
  const record = {
    op,
    backend,
    refuses: kernel.refuses,
    callers: Object.freeze([...kernel.callers]),
    calls: 0,
    note(): void {
      record.calls++;
    },
    run(args: ArgsOf<O>, env: KernelEnv): KernelResult<ResultOf<O>, B> {
      record.calls++;
      return inner(args, env);
    },
  };
  kernels.set(key, record as unknown as KernelRecord);
  return record;
}

/**
 * The kernel of `op` on `backend`, or `undefined` when none is registered
 * (import the module that holds it first).
 */
export function kernelFor<O extends AnyOp, B extends KernelBackend>(
  op: O,
  backend: B,
): KernelRecord<O, B> | undefined {
  return kernels.get(`${op.name}/${backend}`) as
    | KernelRecord<O, B>
    | undefined;
}

/**
 * The kernel of `op` on `backend`, which must be registered (the CPU
 * kernel of every op is, by the module that defines the op).
 *
 * @throws {Error} If none is registered.
 */
export function requireKernel<O extends AnyOp, B extends KernelBackend>(
  op: O,
  backend: B,
): KernelRecord<O, B> {
  const k = kernelFor(op, backend);
  if (!k) throw new Error(`no ${backend} kernel is registered for ${op.name}`);
  return k;
}

/** Every registered kernel (of `op`, when given), in registration order. */
export function registeredKernels(op?: AnyOp): readonly KernelRecord[] {
  return [...kernels.values()].filter((k) => !op || k.op === op);
}

/** Every defined op, in definition order. */
export function definedOps(): readonly AnyOp[] {
  return [...ops.values()];
}
