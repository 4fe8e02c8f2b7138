// What the two worker pools of lib/ops (route_threads.ts for routing,
// _ops_pool.ts for the training ops) share: starting a worker from a local
// or remote module, and handing each worker a shared buffer once.
import { type MessagePort, Worker } from "node:worker_threads";

/** A worker of a pool, as its caller sees it. */
export interface PoolWorker {
  port: MessagePort;
  /** Ids of the buffers this worker holds. */
  known: Set<number>;
}

/** A buffer registration: the worker keeps `buffer` under `id`. */
export interface Registration {
  id: number;
  buffer: SharedArrayBuffer;
}

/**
 * Whether a worker module at `url` can be waited for. node:worker_threads
 * starts only file: and data: URLs, so a module loaded over HTTP (as from
 * JSR) starts its workers from a data: URL that imports the worker module.
 * Such a worker cannot fetch its modules while the calling thread blocks in
 * Atomics.wait (Deno fetches on the main thread's event loop), so the caller
 * must not wait for it to start: a job it has not taken when the caller has
 * claimed every block is withdrawn.
 */
export function canWaitForStart(url: URL): boolean {
  return url.protocol === "file:";
}

/** Starts an unref'd worker running the module at `url`. */
export function startWorker(url: URL): Worker {
  const source = `import ${JSON.stringify(url.href)};`;
  const worker = new Worker(
    canWaitForStart(url)
      ? url
      : new URL(`data:text/javascript,${encodeURIComponent(source)}`),
  );
  worker.unref();
  return worker;
}

const ids = new WeakMap<SharedArrayBuffer, number>();
let nextId = 0;

/** Tells a worker about a shared buffer once; returns the buffer's id. */
export function registerBuffer(
  worker: PoolWorker,
  buffer: SharedArrayBuffer,
): number {
  let id = ids.get(buffer);
  if (id === undefined) ids.set(buffer, id = nextId++);
  if (!worker.known.has(id)) {
    const r: Registration = { id, buffer };
    worker.port.postMessage(r);
    worker.known.add(id);
  }
  return id;
}
