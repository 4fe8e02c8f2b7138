// The worker threads of runSimulationParallel: each request runs in a new
// worker of a module beside this one (_sim_worker.ts, _ep_worker.ts), which
// is terminated as soon as it has replied. A run's workers form a group:
// when one of them fails, the run closes the group, so that the others stop
// at once instead of routing (and keeping the process alive) for nothing.
import { errorOf, isErrorReply } from "../worker_reply.ts";

/** Every worker of every group that is running now. */
const running = new Set<Worker>();

/** How many simulation workers are running now, in all groups. */
export function workersRunning(): number {
  return running.size;
}

/** The workers of one run. */
export class WorkerGroup {
  #live = new Set<Worker>();
  #closed = false;

  /**
   * Runs `request` in a new worker of the module `path` (relative to this
   * one); resolves with its reply of `kind` (other replies but errors go
   * to `onOther`), terminating it either way. Rejects without starting a
   * worker once the group is closed.
   */
  run<Q, R extends { kind: string }, K extends R["kind"]>(
    path: string,
    request: Q,
    kind: K,
    onOther?: (reply: R) => void,
  ): Promise<Extract<R, { kind: K }>> {
    if (this.#closed) {
      return Promise.reject(new Error("the run's workers were stopped"));
    }
    return new Promise((resolve, reject) => {
      const worker = new Worker(new URL(path, import.meta.url).href, {
        type: "module",
      });
      this.#live.add(worker);
      running.add(worker);
      const end = () => {
        worker.terminate();
        this.#live.delete(worker);
        running.delete(worker);
      };
      worker.onmessage = (e: MessageEvent<R>) => {
        const reply = e.data;
        if (reply.kind === kind) {
          end();
          resolve(reply as Extract<R, { kind: K }>);
        } else if (isErrorReply(reply)) {
          end();
          reject(errorOf(reply));
        } else onOther?.(reply);
      };
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        end();
        reject(new Error(`simulation worker failed: ${e.message}`));
      };
      worker.postMessage(request);
    });
  }

  /**
   * Terminates the workers still running (their promises never settle)
   * and refuses new ones.
   */
  close(): void {
    this.#closed = true;
    for (const worker of this.#live) {
      worker.terminate();
      running.delete(worker);
    }
    this.#live.clear();
  }
}
