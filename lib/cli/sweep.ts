import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { cellCount, checkGrid, type SweepGrid } from "../sweep/grid.ts";
import { listIds, mergeSweep } from "../sweep/merge.ts";
import { gridText, runSweep, type SweepProgress } from "../sweep/run_sweep.ts";
import { K8S_SHARDS_VAR, resolveShard } from "../sweep/shard.ts";
import { k8sManifest, shellQuote, slurmFiles } from "../sweep/job_scripts.ts";
import { type FlagSpec, parseFlags, UsageError } from "./args.ts";
import { checkOutFolder } from "./_out.ts";

/** The help text of `sweep`. */
export const SWEEP_HELP =
  `moelab sweep: run the simulator over a grid of presets, on one machine or many

Usage:
  moelab sweep --grid FILE --out DIR [--shard I/N] [--threads T] [--quiet]
  moelab sweep merge DIR [--allow-incomplete]
  moelab sweep slurm --grid FILE --out DIR --array N [--partition P]
                     [--time T] [--cpus-per-task C] [--mem M] [--account A]
  moelab sweep k8s --grid FILE --out DIR --completions N [--parallelism P]
                   [--image I] [--pvc CLAIM --mount PATH] [--cpus C] [--name N]

The grid file is JSON: { "preset": { ...a sim preset... }, "grid": { "seed":
[1, 2], "topK": [2, 4], "workload.drift": [0, 0.02], "methods": [["greedy"],
["loss-free"]] } }. The cells are the cartesian product of the grid's keys
over the preset (a dotted key reaches into a nested field), numbered from 0
with the keys in the order written and the last key varying fastest; cell i
is written to DIR/cells/<i, zero-padded>/ (sim's files plus cell.json) in one
rename, and a complete cell is skipped, so a re-run resumes. The whole grid
is checked before anything runs, cells that replay a .npy recording against
the recording (its sizes, its logits under the cell's gate).

  --grid FILE       the grid file
  --out DIR         the sweep folder (DIR/grid.json, DIR/cells/)
  --shard I/N       run the cells whose number modulo N is I. Without it:
                    a Slurm array task (SLURM_ARRAY_TASK_ID minus
                    SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT), else a
                    Kubernetes Indexed Job pod (JOB_COMPLETION_INDEX of
                    ${K8S_SHARDS_VAR}), else every cell, on this machine
  --threads T       cells simulated at once, each on a worker thread
                    (default: one per core; 1: one after another, this thread)
  --quiet           no progress on stderr (cells done, running, left, ETA)

merge writes DIR/sweep.parquet (columns cell, one per grid key, method,
figure, value: one row per cell, method and summary figure; wall time left
out, so every way of running a grid gives the same table) and DIR/sweep.json.
It refuses a sweep with missing cells, naming them, unless --allow-incomplete.

slurm writes DIR/slurm/shards.sbatch (array job, task i = shard i of N; re-run
one with sbatch --array=i), merge.sbatch and submit.sh (submits both, the
merge with --dependency=afterok on the array). k8s writes DIR/k8s/job.yaml,
an Indexed Job (the grid in a ConfigMap beside it) whose pods share DIR
through --pvc mounted at --mount; its header says how to merge. --cpus C
sets each pod's CPU request and cells at once.
  --moelab CMD      how the jobs run moelab (default: slurm, this deno and
                    main.ts; k8s, deno run -A jsr:@moelab/balance/cli)
`;

const RUN_FLAGS: FlagSpec = {
  grid: "string",
  out: "string",
  shard: "string",
  threads: "integer",
  quiet: "boolean",
  help: "boolean",
};

/** Runs `sweep` with command-line arguments; returns the exit code. */
export function sweepCommand(args: string[]): number | Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "merge") return mergeCommand(rest);
  if (sub === "slurm") return slurmCommand(rest);
  if (sub === "k8s") return k8sCommand(rest);
  const flags = parseFlags(args, RUN_FLAGS);
  if (flags.help) {
    process.stdout.write(SWEEP_HELP);
    return 0;
  }
  const grid = readGrid(flags.grid);
  const out = checkOutFolder("--out", requireString(flags.out, "--out"));
  const shard = resolveShard(
    flags.shard as string | undefined,
    process.env as Record<string, string | undefined>,
  );
  if (flags.threads !== undefined && (flags.threads as number) < 1) {
    throw new RangeError(
      `--threads must be a positive integer: current value is ${flags.threads}`,
    );
  }
  const quiet = flags.quiet === true;
  const say = (line: string) => {
    if (!quiet) process.stderr.write(`sweep: ${line}\n`);
  };
  // The header comes with the first progress report, once every cell is
  // checked (a refused cell is the one line on stderr).
  let started = false;
  return runSweep(grid, out, {
    shard,
    threads: flags.threads as number | undefined,
    onProgress: quiet ? undefined : (p) => {
      if (!started) {
        started = true;
        say(
          `${
            cellCount(grid)
          } cells; shard ${shard.index}/${shard.count} (${shard.from})`,
        );
      }
      say(progressLine(p));
    },
  }).then((r) => {
    say(
      `ran ${r.ran.length} cells, skipped ${r.skipped.length} complete; cells in ${
        join(out, "cells")
      }`,
    );
    return 0;
  });
}

/** `3/12 cells done, 1 running, 8 left, ETA 1m20s`. */
export function progressLine(p: SweepProgress): string {
  const eta = p.etaMs === null ? "ETA -" : `ETA ${duration(p.etaMs)}`;
  return `${p.done}/${p.total} cells done, ${p.running} running, ${p.left} left, ${eta}`;
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) {
    return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  }
  return `${Math.floor(s / 3600)}h${
    String(Math.floor(s / 60) % 60).padStart(2, "0")
  }m`;
}

function mergeCommand(args: string[]): number {
  const positional = args.filter((a) => !a.startsWith("--"));
  const flags = parseFlags(args.filter((a) => a.startsWith("--")), {
    "allow-incomplete": "boolean",
    quiet: "boolean",
    help: "boolean",
  });
  if (flags.help) {
    process.stdout.write(SWEEP_HELP);
    return 0;
  }
  if (positional.length !== 1) {
    throw new UsageError(
      `sweep merge takes one folder: current value is ${
        JSON.stringify(positional)
      }`,
    );
  }
  const r = mergeSweep(positional[0], {
    allowIncomplete: flags["allow-incomplete"] === true,
  });
  if (r.missing.length > 0) {
    process.stderr.write(
      `sweep merge: ${r.missing.length} cells missing, merged without them: ${
        listIds(r.missing)
      }\n`,
    );
  }
  if (!flags.quiet) {
    process.stderr.write(
      `sweep merge: ${r.cells.length} cells, ${r.rows} rows: ${
        r.files.join(", ")
      }\n`,
    );
  }
  return 0;
}

function slurmCommand(args: string[]): number {
  const flags = parseFlags(args, {
    grid: "string",
    out: "string",
    array: "integer",
    partition: "string",
    time: "string",
    "cpus-per-task": "integer",
    mem: "string",
    account: "string",
    moelab: "string",
    help: "boolean",
  });
  if (flags.help) {
    process.stdout.write(SWEEP_HELP);
    return 0;
  }
  const gridPath = requireString(flags.grid, "--grid");
  const grid = readGrid(gridPath);
  const out = resolve(
    checkOutFolder("--out", requireString(flags.out, "--out")),
  );
  const array = shardCount(flags.array, "--array", grid);
  const sbatch: Record<string, string> = {};
  for (const key of ["partition", "time", "cpus-per-task", "mem", "account"]) {
    if (flags[key] !== undefined) sbatch[key] = String(flags[key]);
  }
  const logs = join(out, "slurm");
  const files = slurmFiles({
    moelab: (flags.moelab as string | undefined) ?? moelabCommand(),
    grid: resolve(gridPath),
    out,
    array,
    workdir: process.cwd(),
    sbatch,
    logs,
  });
  mkdirSync(logs, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    writeFileSync(join(logs, name), text, { mode: 0o755 });
  }
  process.stdout.write(
    `wrote ${
      Object.keys(files).map((f) => join(logs, f)).join(", ")
    }\nsubmit: bash ${join(logs, "submit.sh")}\n`,
  );
  return 0;
}

function k8sCommand(args: string[]): number {
  const flags = parseFlags(args, {
    grid: "string",
    out: "string",
    completions: "integer",
    parallelism: "integer",
    image: "string",
    pvc: "string",
    mount: "string",
    cpus: "string",
    name: "string",
    moelab: "string",
    help: "boolean",
  });
  if (flags.help) {
    process.stdout.write(SWEEP_HELP);
    return 0;
  }
  const gridPath = requireString(flags.grid, "--grid");
  const grid = readGrid(gridPath);
  const out = checkOutFolder("--out", requireString(flags.out, "--out"));
  const completions = shardCount(flags.completions, "--completions", grid);
  const parallelism = flags.parallelism ?? completions;
  if ((parallelism as number) < 1) {
    throw new RangeError(
      `--parallelism must be a positive integer: current value is ${parallelism}`,
    );
  }
  const name = (flags.name as string | undefined) ?? "moelab-sweep";
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) || name.length > 63) {
    throw new RangeError(
      `--name must be a Kubernetes name (lower-case letters, digits, dashes): current value is ${
        JSON.stringify(name)
      }`,
    );
  }
  const yaml = k8sManifest({
    moelab: (flags.moelab as string | undefined) ??
      "deno run -A jsr:@moelab/balance/cli",
    gridText: gridText(grid),
    out,
    completions,
    parallelism: parallelism as number,
    name,
    image: (flags.image as string | undefined) ?? "denoland/deno:2.9.6",
    pvc: (flags.pvc as string | undefined) ?? "",
    mount: (flags.mount as string | undefined) ?? "/sweep",
    cpus: (flags.cpus as string | undefined) ?? "",
  });
  const dir = join(out, "k8s");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "job.yaml"), yaml);
  process.stdout.write(
    `wrote ${join(dir, "job.yaml")}\nrun: kubectl apply -f ${
      join(dir, "job.yaml")
    }; then kubectl wait --for=condition=complete job/${name} and moelab sweep merge ${out}\n`,
  );
  return 0;
}

function requireString(value: unknown, flag: string): string {
  if (typeof value !== "string" || value === "") {
    throw new UsageError(`${flag} is required (see --help)`);
  }
  return value;
}

function shardCount(value: unknown, flag: string, grid: SweepGrid): number {
  if (value === undefined) throw new UsageError(`${flag} N is required`);
  const n = value as number;
  if (n < 1 || n > cellCount(grid)) {
    throw new RangeError(
      `${flag} must be between 1 and the number of cells (${
        cellCount(grid)
      }): current value is ${n}`,
    );
  }
  return n;
}

/** Reads and checks a grid file; every error is one line naming the key. */
function readGrid(path: unknown): SweepGrid {
  const file = requireString(path, "--grid");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(
      `--grid cannot be read: ${file} (${(e as Error).message})`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(
      `--grid ${file} is not valid JSON: ${(e as Error).message}`,
    );
  }
  return checkGrid(value);
}

/** This moelab, as the shell words a job runs: the deno running it and main.ts. */
function moelabCommand(): string {
  const main = new URL("./main.ts", import.meta.url);
  if (main.protocol !== "file:") {
    return "deno run -A jsr:@moelab/balance/cli";
  }
  return `${shellQuote(process.execPath)} run -A ${
    shellQuote(fileURLToPath(main))
  }`;
}
