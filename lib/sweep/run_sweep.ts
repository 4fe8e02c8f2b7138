// Runs a sweep's cells (all of them, or one shard's) and writes each to
// DIR/cells/<id>/ in one rename, so that a cell is either complete or
// absent and a re-run resumes where the last one stopped.
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { configChecker, prepareRun } from "../sim/prepare_run.ts";
import { runSimulation, type SimResult } from "../sim/run.ts";
import { checkInteger } from "../validate.ts";
import { errorOf } from "../worker_reply.ts";
import type { CellReply, CellRequest } from "./_cell_worker.ts";
import { writeSimOutputs } from "../report/sim_outputs.ts";
import {
  cellError,
  cellName,
  type SweepCell,
  sweepCells,
  type SweepGrid,
} from "./grid.ts";
import { inShard, type Shard } from "./shard.ts";

/** The file of a sweep folder that holds its grid. */
export const GRID_FILE = "grid.json";
/** The file of a cell's folder that marks it complete (written with the rest). */
export const CELL_FILE = "cell.json";

/** Where a sweep stands, as reported after every cell. */
export interface SweepProgress {
  /** Cells of this shard complete (run here or found complete). */
  done: number;
  /** Cells being simulated now. */
  running: number;
  /** Cells of this shard not yet started. */
  left: number;
  /** Cells of this shard. */
  total: number;
  /** Estimated milliseconds to finish, from the cells run so far; null before the first. */
  etaMs: number | null;
}

/** Options of {@linkcode runSweep}. */
export interface RunSweepOptions {
  /** The shard to run (default: every cell). */
  shard?: Shard;
  /**
   * Cells simulated at once, each on its own worker thread (default: one
   * per core); `1` runs them one after another on this thread.
   */
  threads?: number;
  /** Called when a cell starts or finishes. */
  onProgress?: (progress: SweepProgress) => void;
}

/** What {@linkcode runSweep} did. */
export interface SweepRunReport {
  /** Ids of the cells simulated, in the sweep's order. */
  ran: string[];
  /** Ids of the cells found complete and skipped. */
  skipped: string[];
}

/** The folder of a cell. */
export function cellDir(dir: string, cell: SweepCell): string {
  return join(dir, "cells", cell.id);
}

/** Whether a cell's folder is complete. */
export function isCellComplete(dir: string, cell: SweepCell): boolean {
  return existsSync(join(cellDir(dir, cell), CELL_FILE));
}

/**
 * Runs the cells of `shard`, taken in the sweep's order: `threads` at once,
 * each on a worker thread that simulates the whole cell and hands the
 * result back to this thread, which writes the files.
 * Writes `dir/grid.json` first (a folder holding another grid is refused),
 * then each cell to a temporary folder renamed to `dir/cells/<id>` once all
 * its files are written. A complete cell is skipped.
 *
 * @throws {RangeError} If `dir` holds a different sweep.
 */
export async function runSweep(
  grid: SweepGrid,
  dir: string,
  options: RunSweepOptions = {},
): Promise<SweepRunReport> {
  const cells = sweepCells(grid);
  checkRecordings(cells);
  writeGridFile(grid, dir);
  const shard = options.shard ?? { index: 0, count: 1, from: "local" };
  const mine = cells.filter((c) => inShard(c.index, shard));
  const todo = mine.filter((c) => !isCellComplete(dir, c));
  const skipped = mine.filter((c) => isCellComplete(dir, c)).map((c) => c.id);
  const ran: string[] = [];
  const t0 = performance.now();
  let running = 0;
  const report = () =>
    options.onProgress?.({
      done: skipped.length + ran.length,
      running,
      left: todo.length - ran.length - running,
      total: mine.length,
      etaMs: ran.length === 0 ? null : (performance.now() - t0) / ran.length *
        (todo.length - ran.length),
    });
  const cores = typeof navigator !== "undefined" &&
      navigator.hardwareConcurrency > 0
    ? navigator.hardwareConcurrency
    : 1;
  const threads = Math.min(
    checkInteger("threads", options.threads ?? cores, 1),
    Math.max(todo.length, 1),
  );
  report();
  if (threads === 1) {
    for (const cell of todo) {
      running++;
      let result;
      try {
        result = runSimulation(prepareRun(cell.preset));
      } catch (e) {
        throw cellError(e, cell);
      }
      running--;
      writeCell(dir, cell, result);
      ran.push(cell.id);
      report();
    }
    return { ran, skipped };
  }
  // Cells in parallel, one per worker thread; this thread writes the files.
  let next = 0;
  const workers: Worker[] = [];
  try {
    await Promise.all(
      Array.from({ length: threads }, async () => {
        const worker = new Worker(
          new URL("./_cell_worker.ts", import.meta.url).href,
          { type: "module" },
        );
        workers.push(worker);
        while (next < todo.length) {
          const cell = todo[next++];
          running++;
          report();
          const result = await simulateOn(worker, cell);
          running--;
          writeCell(dir, cell, result);
          ran.push(cell.id);
          report();
        }
      }),
    );
  } finally {
    for (const worker of workers) worker.terminate();
  }
  return { ran: ran.sort(), skipped };
}

/**
 * Checks every cell that replays a recording against it (checkGrid checks
 * the configurations alone, reading no file): its sizes, and its logits
 * under the cell's gate, so that a cell the recording fails is refused
 * before any cell runs. The cells are taken grouped by workload, so that
 * each recording is read once and one is held at a time.
 */
function checkRecordings(cells: SweepCell[]): void {
  const check = configChecker();
  const order = cells.map((cell) => ({
    cell,
    key: JSON.stringify(cell.preset.workload ?? null),
  })).sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
  for (const { cell } of order) {
    try {
      check(cell.preset);
    } catch (e) {
      throw cellError(e, cell);
    }
  }
}

function simulateOn(worker: Worker, cell: SweepCell): Promise<SimResult> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<CellReply>) => {
      const reply = e.data;
      if (reply.kind === "done") resolve(reply.result);
      else {
        reject(cellError(errorOf(reply), cell));
      }
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      reject(new Error(`${cellName(cell)}: sweep worker failed: ${e.message}`));
    };
    worker.postMessage({ preset: cell.preset } satisfies CellRequest);
  });
}

function writeCell(dir: string, cell: SweepCell, result: SimResult): void {
  const cells = join(dir, "cells");
  mkdirSync(cells, { recursive: true });
  // Leftovers of this cell from a killed run: only this shard runs it.
  for (const name of readdirSync(cells)) {
    if (name.startsWith(`.${cell.id}.tmp-`)) {
      rmSync(join(cells, name), { recursive: true, force: true });
    }
  }
  const tmp = join(cells, `.${cell.id}.tmp-${tempSuffix()}`);
  try {
    writeSimOutputs(result, tmp);
    writeFileSync(
      join(tmp, CELL_FILE),
      JSON.stringify({ id: cell.id, index: cell.index, values: cell.values }) +
        "\n",
    );
    rmSync(cellDir(dir, cell), { recursive: true, force: true });
    renameSync(tmp, cellDir(dir, cell));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The grid as `grid.json` holds it. */
export function gridText(grid: SweepGrid): string {
  return JSON.stringify({ preset: grid.preset, grid: grid.grid }, null, 2) +
    "\n";
}

function writeGridFile(grid: SweepGrid, dir: string): void {
  const path = join(dir, GRID_FILE);
  const text = gridText(grid);
  if (existsSync(path)) {
    if (readFileSync(path, "utf8") !== text) {
      throw new RangeError(
        `--out ${dir} holds another sweep (its ${GRID_FILE} differs from this grid): use a new folder`,
      );
    }
    return;
  }
  mkdirSync(dir, { recursive: true });
  // Shards may start together: each writes the same text and renames it.
  const tmp = `${path}.tmp-${tempSuffix()}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

function tempSuffix(): string {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}
