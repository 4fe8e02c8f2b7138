/**
 * The moelab command line: `moelab <command> [flags]`.
 *
 * ```sh
 * deno run -A jsr:@moelab/balance/cli sim --steps 100 --methods greedy,loss-free
 * ```
 *
 * Exit codes: 0 on success, 2 on bad input (a one-line error on stderr),
 * 1 on an unexpected failure. The same commands run in-process through
 * {@linkcode main}.
 *
 * @example Bad input exits 2 before any work
 * ```ts
 * import { COMMANDS, main } from "@moelab/balance/cli";
 * import assert from "node:assert/strict";
 *
 * assert.ok("sim" in COMMANDS && "train" in COMMANDS);
 * assert.equal(await main(["sim", "--steps", "0"]), 2);
 * ```
 *
 * @module
 */
import process from "node:process";
import { UsageError } from "./args.ts";
import { simCommand } from "./sim.ts";
import { solveCommand } from "./solve.ts";
import { scheduleCommand } from "./schedule.ts";
import { placeCommand } from "./place.ts";
import { adviseCommand } from "./advise.ts";
import { trainCommand } from "./train.ts";
import { sweepCommand } from "./sweep.ts";

/** A subcommand: runs with its arguments and returns the exit code. */
export type Command = (args: string[]) => number | Promise<number>;

/** The subcommands, by name. */
export const COMMANDS: Record<string, { run: Command; summary: string }> = {
  sim: { run: simCommand, summary: "simulate balancing methods side by side" },
  solve: {
    run: solveCommand,
    summary: "exact balanced assignment of a score matrix",
  },
  schedule: {
    run: scheduleCommand,
    summary: "MicroMoE token scheduling of a load table over GPUs",
  },
  place: {
    run: placeCommand,
    summary: "EPLB expert placement for a load table",
  },
  advise: {
    run: adviseCommand,
    summary:
      "would EPLB or MicroMoE help on a recorded workload, and how often to re-plan",
  },
  train: {
    run: trainCommand,
    summary: "train small MoE language models: perplexity against balance",
  },
  sweep: {
    run: sweepCommand,
    summary:
      "sim over a grid of presets, sharded locally, on Slurm or Kubernetes",
  },
};

const HELP = `moelab: load balancing for Mixture-of-Experts models

Usage: moelab <command> [flags]   (moelab <command> --help for its flags)

Commands:
${
  Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(10)}${c.summary}`)
    .join("\n")
}
`;

/**
 * Runs the command line with `args` (without the program name) and returns
 * the exit code; errors are printed on stderr, not thrown.
 *
 * @example
 * ```ts
 * import { main } from "@moelab/balance/cli";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await main(["no-such-command"]), 2);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (
    name === undefined || name === "--help" || name === "-h" || name === "help"
  ) {
    process.stdout.write(HELP);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  try {
    if (!command) {
      throw new UsageError(
        `unknown command ${JSON.stringify(name)} (see --help)`,
      );
    }
    return await command.run(rest);
  } catch (e) {
    const err = e as Error;
    if (
      e instanceof UsageError || e instanceof TypeError ||
      e instanceof RangeError ||
      e instanceof SyntaxError
    ) {
      process.stderr.write(`error: ${err.message}\n`);
      return 2;
    }
    // A closed standard output (`moelab schedule ... | head`) ends the
    // command quietly, as it ends any Unix filter.
    if (isBrokenPipe(e)) return 0;
    // A system error (a full disk, a lost permission) is the machine's,
    // not the program's: one line, no stack trace.
    if (typeof (e as { code?: unknown } | null)?.code === "string") {
      process.stderr.write(`error: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`error: ${err?.stack ?? String(e)}\n`);
    return 1;
  }
}

function isBrokenPipe(e: unknown): boolean {
  return (e as { code?: string } | null)?.code === "EPIPE" ||
    (typeof Deno !== "undefined" && e instanceof Deno.errors.BrokenPipe);
}

if (import.meta.main) {
  // With a listener, a write to a closed pipe is reported here instead of
  // thrown: the reader has all it wants, so stop quietly with success.
  process.stdout.on("error", (e) => {
    if (isBrokenPipe(e)) process.exit(0);
    throw e;
  });
  process.exitCode = await main(process.argv.slice(2));
}
