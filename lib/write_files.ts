// Writes a run's output folder as a whole: every file goes to a temporary
// folder beside the destination first; only when all are written is that
// folder swapped in for the old one. The destination is thus the previous
// run or the new one, never a mix, and never holds a file of another run
// (an old gpu_loads.parquet when the new run has no EP stage).
import { mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import process from "node:process";

/** A file of a run: its name and how to write it to a given path. */
export type OutputFile = [name: string, write: (path: string) => void];

/**
 * Throws unless `dir` may be replaced by a run whose files are named
 * `names`: it is absent, or a folder holding only such files (an earlier
 * run's), and it is not the working folder or one above it. `what` names
 * the folder in the message (a flag, or an argument).
 */
export function checkReplaceable(
  what: string,
  dir: string,
  names: readonly string[],
): void {
  const path = resolve(dir);
  const cwd = resolve(process.cwd());
  if (cwd === path || cwd.startsWith(path.endsWith("/") ? path : path + "/")) {
    throw new RangeError(
      `${what} must be a folder for the outputs alone, not the working folder or one above it: current value is ${
        JSON.stringify(dir)
      }`,
    );
  }
  let stat;
  try {
    stat = statSync(path);
  } catch {
    return; // absent: created
  }
  if (!stat.isDirectory()) {
    throw new RangeError(
      `${what} must be a folder, but it is an existing file: current value is ${
        JSON.stringify(dir)
      }`,
    );
  }
  const allowed = new Set(names);
  const foreign = readdirSync(path).filter((n) => !allowed.has(n));
  if (foreign.length > 0) {
    throw new RangeError(
      `${what} holds ${
        foreign.slice(0, 3).map((n) => JSON.stringify(n)).join(", ")
      }${
        foreign.length > 3 ? ` and ${foreign.length - 3} more` : ""
      }, which this run does not write, and the run replaces the whole folder: give a new or empty folder, or one an earlier run wrote: current value is ${
        JSON.stringify(dir)
      }`,
    );
  }
}

/**
 * Writes `files` as the whole content of `dir`: into a temporary sibling
 * folder, which then replaces `dir`. `replaces` lists the names an earlier
 * run may have left in `dir` (default: the names of `files`); a folder
 * holding anything else is refused before anything is written (see
 * {@linkcode checkReplaceable}). Returns the paths written.
 */
export function writeFilesAtomically(
  dir: string,
  files: OutputFile[],
  replaces: readonly string[] = files.map(([name]) => name),
): string[] {
  checkReplaceable("dir", dir, [...replaces, ...files.map(([n]) => n)]);
  const stamp = `${Date.now().toString(36)}${
    Math.random().toString(36).slice(2, 8)
  }`;
  const parent = dirname(resolve(dir));
  const tmp = join(parent, `.${basename(resolve(dir))}.tmp-${stamp}`);
  const old = join(parent, `.${basename(resolve(dir))}.old-${stamp}`);
  try {
    mkdirSync(tmp, { recursive: true });
    for (const [name, write] of files) write(join(tmp, name));
    let moved = false;
    try {
      renameSync(dir, old);
      moved = true;
    } catch (e) {
      if ((e as { code?: string }).code !== "ENOENT") throw e;
    }
    try {
      renameSync(tmp, dir);
    } catch (e) {
      if (moved) renameSync(old, dir); // put the earlier run back
      throw e;
    }
    if (moved) rmSync(old, { recursive: true, force: true });
  } catch (e) {
    // A full disk or a lost permission: say where, and that the folder
    // still holds the earlier run (or nothing).
    const code = (e as { code?: unknown }).code;
    if (typeof code !== "string") throw e;
    const err = new Error(
      `cannot write ${JSON.stringify(dir)} (${
        (e as Error).message
      }); it is left as it was`,
    );
    (err as Error & { code: string }).code = code;
    throw err;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return files.map(([name]) => join(dir, name));
}
