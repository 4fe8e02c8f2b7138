// Runs the moelab command line as a real process (the `deno` on PATH, also
// when the tests run under Bun) from the repository root.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const root: string = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Exit code and output of one `moelab` run. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `moelab <args>` and waits for it. */
export function cli(args: string[]): CliRun {
  const r = spawnSync("deno", [
    "run",
    "-A",
    join(root, "lib/cli/main.ts"),
    ...args,
  ], {
    cwd: root,
    encoding: "utf8",
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
