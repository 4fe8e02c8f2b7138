// The results file of `deno task bench`: one section per suite, each with
// the command, the date, the commit and the machine it ran on, replaced
// when that suite runs again. Text outside the sections is kept, so notes
// written by hand survive a run.
import os from "node:os";

/** Where `deno task bench` records its tables unless told otherwise. */
export const RESULTS_FILE = "bench/RESULTS.md";

/** What a results section says about the run that produced it. */
export interface RunInfo {
  /** The command as typed, e.g. `deno task bench solve`. */
  command: string;
  /** When the suite finished. */
  date: Date;
  /** Short commit hash, with `+ local changes` when the tree was dirty; `""` if unknown. */
  commit: string;
  /** One line describing the machine ({@linkcode describeMachine}). */
  machine: string;
  /** Seconds the suite took. */
  seconds: number;
}

const HEADER = `# Benchmark results

The latest tables of \`deno task bench\`, one section per suite, each with the
command, the date, the commit and the machine it ran on. A run rewrites the
sections of the suites it ran and keeps the others, and any text outside them.
Speed depends on the machine and on what else it runs: compare rows of one
section (each suite measures its baselines in the same run), not sections.
`;

const open = (name: string) => `<!-- bench:${name} -->`;
const close = (name: string) => `<!-- /bench:${name} -->`;

/**
 * The machine in one line: CPU model and logical cores, memory, OS, Deno
 * and V8 versions, and the load average when the run started (other jobs
 * on the machine slow every figure).
 */
export function describeMachine(): string {
  const cpus = os.cpus();
  const model = cpus[0]?.model?.trim() || "unknown CPU";
  const gib = (os.totalmem() / 2 ** 30).toFixed(1);
  const [load] = os.loadavg();
  const deno = typeof Deno === "undefined"
    ? "no Deno"
    : `Deno ${Deno.version.deno} (V8 ${Deno.version.v8})`;
  return `${model}, ${cpus.length} logical cores, ${gib} GiB; ${os.type()} ${os.release()} ${os.arch()}; ${deno}; load average ${
    load.toFixed(2)
  } at the start`;
}

/** The current commit, short, marked when the tree has local changes. */
export function describeCommit(): string {
  try {
    const git = (...args: string[]) =>
      new TextDecoder().decode(
        new Deno.Command("git", { args, stderr: "null" }).outputSync().stdout,
      ).trim();
    const hash = git("rev-parse", "--short", "HEAD");
    if (!hash) return "";
    return git("status", "--porcelain", "--untracked-files=no")
      ? `${hash} + local changes`
      : hash;
  } catch {
    return "";
  }
}

/**
 * Formats one suite's section: a heading, the line that says how, when
 * and where it ran, then the suite's output as it printed it.
 */
export function formatSection(
  name: string,
  description: string,
  output: string,
  info: RunInfo,
): string {
  const date = info.date.toISOString().slice(0, 16).replace("T", " ");
  const commit = info.commit ? `, commit ${info.commit}` : "";
  return [
    open(name),
    `## ${name}: ${description}`,
    "",
    `\`${info.command}\`, ${date} UTC${commit}, ${
      info.seconds.toFixed(0)
    } s. Machine: ${info.machine}.`,
    "",
    output.trim(),
    "",
    close(name),
  ].join("\n");
}

/**
 * Returns `text` with the section of suite `name` replaced by `section`;
 * a suite without one gets it after the last section (at the end when
 * there is none), so notes written below the sections stay below. A file
 * that does not exist yet (`text` empty) starts with a short header.
 */
export function replaceSection(
  text: string,
  name: string,
  section: string,
): string {
  const base = text.trim() === "" ? HEADER : text;
  const start = base.indexOf(open(name));
  const end = base.indexOf(close(name));
  if (start >= 0 && end > start) {
    return base.slice(0, start) + section +
      base.slice(end + close(name).length);
  }
  const last = base.lastIndexOf("<!-- /bench:");
  if (last < 0) return base.trimEnd() + "\n\n" + section + "\n";
  const after = base.indexOf("-->", last) + "-->".length;
  return base.slice(0, after) + "\n\n" + section + base.slice(after);
}

/**
 * Records one suite's output in the results file, written to a temporary
 * name and renamed, so a failed run never leaves half a file; then
 * formats it with `deno fmt`, so the committed file passes `deno fmt
 * --check`.
 */
export async function recordSection(
  path: string,
  name: string,
  section: string,
): Promise<void> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, replaceSection(text, name, section));
  await Deno.rename(tmp, path);
  await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", path],
    stdout: "null",
    stderr: "null",
  }).output();
}
