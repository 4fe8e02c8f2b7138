// Checks an output path before any work, so that a run never ends by
// failing to write: an empty value, a path under a file, a folder that
// cannot be written (/proc, a read-only mount, no permission), an existing
// file where a folder goes, or a folder holding files of something else.
import { mkdtempSync, rmdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { checkReplaceable } from "../write_files.ts";
import { UsageError } from "./args.ts";

function quoted(value: string): string {
  return `current value is ${JSON.stringify(value)}`;
}

/**
 * The nearest existing folder at or above `path`; a RangeError naming
 * `flag` when an existing file lies on the way.
 */
function existingAncestor(flag: string, value: string, path: string): string {
  let p = path;
  for (;;) {
    let stat;
    try {
      stat = statSync(p);
    } catch {
      const up = dirname(p);
      if (up === p) return p;
      p = up;
      continue;
    }
    if (stat.isDirectory()) return p;
    throw new RangeError(
      `${flag} lies under ${
        JSON.stringify(p)
      }, which is a file, not a folder: current value is ${
        JSON.stringify(value)
      }`,
    );
  }
}

/** Throws unless a folder can be made in `folder` (and removes the probe). */
function checkWritable(flag: string, value: string, folder: string): void {
  let probe: string;
  try {
    probe = mkdtempSync(join(folder, ".moelab-probe-"));
  } catch (e) {
    throw new RangeError(
      `${flag} cannot be written (${
        (e as { code?: string }).code ?? (e as Error).message
      } in ${JSON.stringify(folder)}): current value is ${
        JSON.stringify(value)
      }`,
    );
  }
  rmdirSync(probe);
}

/**
 * Checks `--out DIR` of a command that writes the files `names` as the
 * whole folder: not empty, not under a file, writable, and either absent
 * or a folder holding only such files.
 */
export function checkOutDir(
  flag: string,
  value: string,
  names: readonly string[],
): string {
  if (value.trim() === "") {
    throw new UsageError(`${flag} must name a folder: ${quoted(value)}`);
  }
  const path = resolve(value);
  checkWritable(flag, value, existingAncestor(flag, value, dirname(path)));
  checkReplaceable(flag, value, names);
  return value;
}

/**
 * Checks `--out DIR` of a folder that a command adds to (a sweep): not
 * empty, not a file, not under a file, writable.
 */
export function checkOutFolder(flag: string, value: string): string {
  if (value.trim() === "") {
    throw new UsageError(`${flag} must name a folder: ${quoted(value)}`);
  }
  const path = resolve(value);
  const at = existingAncestor(flag, value, path);
  if (at !== path) checkWritable(flag, value, at);
  else checkWritable(flag, value, path);
  return value;
}

/**
 * Checks `--out FILE` of a command that writes one file (replaced whole):
 * not empty, not a folder, in an existing writable folder.
 */
export function checkOutFile(flag: string, value: string): string {
  if (value.trim() === "") {
    throw new UsageError(`${flag} must name a file: ${quoted(value)}`);
  }
  const path = resolve(value);
  let stat;
  try {
    stat = statSync(path);
  } catch { /* absent: written */ }
  if (stat?.isDirectory()) {
    throw new RangeError(
      `${flag} must be a file, not a folder: current value is ${
        JSON.stringify(value)
      }`,
    );
  }
  const dir = dirname(path);
  if (existingAncestor(flag, value, dir) !== dir) {
    throw new RangeError(
      `${flag} must be a file in an existing folder: current value is ${
        JSON.stringify(value)
      }`,
    );
  }
  checkWritable(flag, value, dir);
  return value;
}
