// Writes a run's output files so that a failure leaves nothing half-written:
// every file goes to a temporary folder beside the destination first, and
// only when all are written are they renamed into place.
import { mkdirSync, renameSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** A file of a run: its name and how to write it to a given path. */
export type OutputFile = [name: string, write: (path: string) => void];

/** Writes `files` into `dir` through a temporary sibling folder; returns their paths. */
export function writeFilesAtomically(
  dir: string,
  files: OutputFile[],
): string[] {
  const tmp = join(
    dirname(dir),
    `.${basename(dir)}.tmp-${Date.now().toString(36)}${
      Math.random().toString(36).slice(2, 8)
    }`,
  );
  mkdirSync(tmp, { recursive: true });
  try {
    for (const [name, write] of files) write(join(tmp, name));
    mkdirSync(dir, { recursive: true });
    for (const [name] of files) renameSync(join(tmp, name), join(dir, name));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return files.map(([name]) => join(dir, name));
}
