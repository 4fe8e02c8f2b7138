// Routing on several CPU cores: routeParallel() validates once with the
// route op's validator and runs its "cpu-threads" kernel (lib/ops).
import { checkChoice, checkInteger } from "../validate.ts";
import { HOST_BACKENDS, type HostBackend } from "../ops/host.ts";
import type { Routing, ScoreMatrix } from "../types.ts";
import { checkRoutingSizes } from "../select/routing.ts";
import { requireKernel } from "../ops/registry.ts";
import { routeOp, type RouteOptions } from "../ops/route.ts";
import {
  MAX_THREADS,
  sharedRoutingData,
  sharedScoreData,
} from "../ops/route_threads.ts";

/** Options of {@linkcode routeParallel}. */
export interface RouteParallelOptions extends RouteOptions {
  /**
   * Threads to use, the calling thread included. Default: the number of
   * logical cores (`navigator.hardwareConcurrency`).
   */
  threads?: number;
  /**
   * What each thread runs: `"wasm"` (the WebAssembly SIMD kernel, each
   * worker on its own instance, where the engine runs it; the default) or
   * `"cpu"` (the TypeScript kernel, the reference). The same answers.
   */
  host?: HostBackend;
}

const threaded = requireKernel(routeOp, "cpu-threads");

/**
 * Allocates a score matrix on a `SharedArrayBuffer`, so that
 * {@linkcode routeParallel} hands it to its workers without a copy.
 *
 * Where the engine has a shared WebAssembly memory (Deno, Bun), the
 * matrix lives in one (its `data.buffer` is that memory's
 * `SharedArrayBuffer`, larger than the matrix, the matrix at
 * `data.byteOffset`), and every thread's WebAssembly SIMD kernel reads it
 * in place. Its region is returned when `data` is garbage collected: keep
 * `data` itself, not only other views of its buffer, while in use. A matrix
 * that does not fit (the memory holds 4 GiB in all) gets a
 * `SharedArrayBuffer` of its own, which each worker copies from.
 *
 * @param tokens Rows.
 * @param experts Columns.
 * @returns A zero-filled {@linkcode ScoreMatrix}, `tokens x experts`.
 * @throws {RangeError} If a size is not a non-negative integer (`experts >= 1`).
 *
 * @example
 * ```ts
 * import { sharedScores } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const s = sharedScores(2, 3);
 * assert.equal(s.data.length, 6);
 * assert.ok(s.data.buffer instanceof SharedArrayBuffer);
 * ```
 */
export function sharedScores(tokens: number, experts: number): ScoreMatrix {
  checkInteger("tokens", tokens, 0);
  checkInteger("experts", experts, 1);
  return { data: sharedScoreData(tokens * experts), tokens, experts };
}

/**
 * Allocates a {@linkcode Routing} whose experts and weights lie in the
 * same shared WebAssembly memory as {@linkcode sharedScores}' matrices:
 * given as `out` to {@linkcode routeParallel} on such scores, every
 * thread writes its rows' experts and weights there in place, with no
 * copy out after the last block (at 262144 x 8, 16 MiB). Reuse it from
 * batch to batch, as any `out`. Its regions are returned when its
 * `experts` and `weights` arrays are garbage collected (keep them, not
 * only other views of their buffer, while in use). Plain arrays where the
 * engine has no shared WebAssembly memory or it is full.
 *
 * @param tokens Rows.
 * @param k Slots per token.
 * @param experts Experts (the length of `loads`).
 * @returns A zero-filled {@linkcode Routing}.
 * @throws {RangeError} If a size is not an integer in range (`k`,
 * `experts >= 1`).
 *
 * @example
 * ```ts
 * import { routeParallel, sharedRouting, sharedScores } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const s = sharedScores(40000, 8);
 * for (let i = 0; i < s.data.length; i++) s.data[i] = (i * 7919) % 101;
 * const out = sharedRouting(40000, 2, 8);
 * const r = routeParallel(s, { k: 2, threads: 2, out });
 * assert.equal(r, out);
 * assert.equal(out.loads.reduce((a, b) => a + b), 80000);
 * ```
 */
export function sharedRouting(
  tokens: number,
  k: number,
  experts: number,
): Routing {
  checkRoutingSizes(tokens, k, experts);
  return sharedRoutingData(tokens, k, experts);
}

/**
 * Routes a batch like {@linkcode route}, with the same answers bit for bit,
 * on several cores: the rows are split between the calling thread and
 * worker threads (`node:worker_threads`, under Deno and Bun) that share the
 * buffers; the call blocks (Atomics.wait) until all are done, so it is
 * synchronous. Small batches (under 65536 scores) run on the calling
 * thread. Scores from {@linkcode sharedScores} are read in place by every
 * thread (and an `out` from {@linkcode sharedRouting} written in place:
 * where such a call throws, `out` may hold part of the batch's routing);
 * others on a `SharedArrayBuffer` are copied block by block into each
 * thread's WebAssembly memory, and scores not on a `SharedArrayBuffer`
 * are first copied once per call.
 *
 * Each thread runs the WebAssembly SIMD kernel on its own instance
 * (`host: "wasm"`, the default, where the engine runs it) or the
 * TypeScript kernel (`host: "cpu"`). Both collect, without a branch, the
 * entries of a row at or above a threshold guessed from the rows before,
 * then rank those few exactly in float64 (a row where fewer than k pass is
 * scanned in full); with groups, the group scores are exact (the wasm
 * kernel decides from float32 scores only where a proven error bound
 * separates the kept groups). No row copy and no allocation per token.
 *
 * @param scores Scores after the gate, `tokens x experts`.
 * @param options {@linkcode RouteOptions} and `threads`.
 * @returns Experts and weights (tokens x k, best first) and loads (experts).
 * @throws {TypeError} If the scores or `out` have the wrong shape.
 * @throws {RangeError} As {@linkcode route}, or if `threads < 1`.
 * @throws {Error} If a worker fails.
 *
 * @example Same answers as route()
 * ```ts
 * import { route, routeParallel, sharedScores } from "@moelab/balance";
 * import assert from "node:assert/strict";
 *
 * const s = sharedScores(40000, 8);
 * for (let i = 0; i < s.data.length; i++) s.data[i] = (i * 7919) % 101;
 * const a = routeParallel(s, { k: 2, threads: 2 });
 * const b = route(s, { k: 2 });
 * assert.deepEqual(a.experts, b.experts);
 * assert.deepEqual(a.loads, b.loads);
 * ```
 */
export function routeParallel(
  scores: ScoreMatrix,
  options: RouteParallelOptions,
): Routing {
  const args = routeOp.validate({ scores, options });
  const threads = checkThreads(options.threads);
  const host = checkChoice("host", options.host ?? "wasm", HOST_BACKENDS);
  return threaded.run(args, { threads, host });
}

/** The thread count of the options, checked, with its default. */
export function checkThreads(threads: number | undefined): number {
  return checkInteger(
    "threads",
    threads ?? navigator.hardwareConcurrency ?? 1,
    1,
    MAX_THREADS,
  );
}
