import process from "node:process";
import { writeFileSync } from "node:fs";
import { type FlagSpec, parseFlags, UsageError } from "./args.ts";
import { parseWhere, readLoadRows } from "./_loads.ts";
import { checkInteger, checkNumber } from "../validate.ts";
import { adviceHeadline, adviseRecording } from "../placement/advise.ts";
import { adviceReportHtml, adviceTable } from "../report/advise_page.ts";
import { writeFilesAtomically } from "../write_files.ts";
import { checkOutDir } from "./_out.ts";

/** The files `advise --out` writes, replacing the folder as a whole. */
const ADVICE_FILES = ["advice.html", "advice.json"];

const FLAGS: FlagSpec = {
  loads: "string",
  where: "strings",
  experts: "integer",
  gpus: "integer",
  nodes: "integer",
  replicas: "integer",
  groups: "integer",
  interval: "string",
  threshold: "number",
  "micro-replicas": "integer",
  "expert-bytes": "number",
  "min-gain": "number",
  iterations: "integer",
  json: "boolean",
  out: "string",
  help: "boolean",
};

/** The help text of `advise`. */
export const ADVISE_HELP =
  `moelab advise: would EPLB or MicroMoE scheduling help on a recorded workload?

Usage: moelab advise --loads FILE --gpus G --replicas R [--nodes N] [--groups M]
                     [--interval W,...] [--threshold X] [--micro-replicas D]
                     [--expert-bytes B] [--min-gain X] [--json] [--out DIR]

Compares, on the steps of the recording, static EP (the baseline), EPLB
planned on the first half (as it is and without colocated replicas), EPLB
re-planned every W steps on the past W, and MicroMoE scheduling on a
symmetric and an asymmetric placement: GPU max/mean, the engines' balance
figures (vLLM balancedness, SGLang utilisation, TensorRT-LLM imbalance
ratio), estimated step time and gain, experts moved per re-plan, and a
recommendation with its reasons.

  --loads FILE        loads over steps, told apart by content (as for place):
                      a load table, SGLang's expert distribution recording,
                      TensorRT-LLM's load statistics, per-token routed experts
  --where COL=VAL     keep the table rows whose column COL holds VAL
                      (repeatable); needed when the table has other columns
  --experts E         logical experts, where the file lists fewer (the rest
                      get no load; default: the file's, largest id + 1)
  --gpus G            GPUs, a divisor of the experts
  --replicas R        EPLB's physical expert slots, a multiple of G
  --nodes N           nodes, for EPLB's hierarchical policy (default 1)
  --groups M          expert groups (default 1)
  --interval W,...    re-plan intervals in steps (default 1,2,5,10,20,50,...
                      up to half the steps)
  --threshold X       re-plan only when the predicted gain exceeds X (default 0)
  --micro-replicas D  replicas per expert of the MicroMoE placements (default 2)
  --expert-bytes B    bytes of one expert's weights (default 268435456: two
                      4096 x 16384 bf16 matrices, the step-time model's expert)
  --min-gain X        smallest gain worth a change (default 0.05)
  --iterations N      Monte Carlo swaps of the asymmetric placement (default 50)
  --json              print the advice as JSON instead of the table
  --out DIR           also write advice.html (with plots) and advice.json to DIR
  --help              this text
`;

/** Parses `--interval 1,10,100` into positive integers. */
function intervals(text: string): number[] {
  const parts = text.split(",").map((s) => s.trim());
  const out = parts.map(Number);
  if (
    parts.some((s) => s === "") ||
    out.some((w) => !Number.isInteger(w) || w < 1)
  ) {
    throw new UsageError(
      `--interval must be positive integers separated by commas: current value is ${
        JSON.stringify(text)
      }`,
    );
  }
  return out;
}

/** Runs `advise`; returns the exit code. */
export function adviseCommand(args: string[]): number {
  const flags = parseFlags(args, FLAGS);
  if (flags.help) {
    process.stdout.write(ADVISE_HELP);
    return 0;
  }
  if (typeof flags.loads !== "string") {
    throw new UsageError("--loads FILE is required");
  }
  const where = parseWhere(flags.where as string[] | undefined);
  for (const f of ["gpus", "replicas"]) {
    if (flags[f] === undefined) throw new UsageError(`--${f} is required`);
  }
  const G = checkInteger("--gpus", flags.gpus, 1);
  const R = checkInteger("--replicas", flags.replicas, 1);
  const nodes = checkInteger("--nodes", flags.nodes ?? 1, 1);
  const groups = checkInteger("--groups", flags.groups ?? 1, 1);
  const d = checkInteger("--micro-replicas", flags["micro-replicas"] ?? 2, 1);
  const experts = flags.experts === undefined
    ? undefined
    : checkInteger("--experts", flags.experts, 1);
  const options = {
    gpus: G,
    replicas: R,
    nodes,
    groups,
    microReplicas: d,
    threshold: checkNumber("--threshold", flags.threshold ?? 0, 0),
    minGain: checkNumber("--min-gain", flags["min-gain"] ?? 0.05, 0),
    iterations: checkInteger("--iterations", flags.iterations ?? 50, 0),
    ...(flags["expert-bytes"] === undefined ? {} : {
      expertBytes: checkNumber("--expert-bytes", flags["expert-bytes"], 0),
    }),
    ...(flags.interval === undefined
      ? {}
      : { intervals: intervals(String(flags.interval)) }),
  };
  if (R % G !== 0) {
    throw new RangeError(
      `--replicas must be a multiple of --gpus (${G}): current value is ${R}`,
    );
  }
  if (d > G) {
    throw new RangeError(
      `--micro-replicas must be at most --gpus (${G}): current value is ${d}${
        flags["micro-replicas"] === undefined ? " (the default)" : ""
      }`,
    );
  }
  if (nodes > G || G % nodes !== 0) {
    throw new RangeError(
      `--nodes must divide --gpus (${G}): current value is ${nodes}`,
    );
  }
  const out = flags.out;
  if (out !== undefined) checkOutDir("--out", String(out), ADVICE_FILES);
  const { experts: E, rows } = readLoadRows(flags.loads, { experts, where });
  if (E % G !== 0) {
    throw new RangeError(
      `--gpus must divide the number of experts (${E}): current value is ${G}`,
    );
  }
  if (R < E) {
    throw new RangeError(
      `--replicas must be at least the number of experts (${E}): current value is ${R}`,
    );
  }
  if (E % groups !== 0) {
    throw new RangeError(
      `--groups must divide the number of experts (${E}): current value is ${groups}`,
    );
  }
  if ((E * d) % G !== 0) {
    throw new RangeError(
      `--micro-replicas x experts (${E}) must be a multiple of --gpus (${G}): current value is ${d}${
        flags["micro-replicas"] === undefined ? " (the default)" : ""
      }`,
    );
  }
  // Steps in file order, layers ascending; rows of one step and layer (one
  // per data set or rank) are summed, as the engines sum their counters.
  const steps = [...new Set(rows.map((r) => r.step))];
  const layers = [...new Set(rows.map((r) => r.layer))].sort((a, b) => a - b);
  const si = new Map(steps.map((s, i) => [s, i]));
  const li = new Map(layers.map((l, i) => [l, i]));
  const rec = steps.map(() => layers.map(() => new Array<number>(E).fill(0)));
  const seen = steps.map(() => new Uint8Array(layers.length));
  for (const r of rows) {
    const s = si.get(r.step)!, l = li.get(r.layer)!;
    seen[s][l] = 1;
    r.loads.forEach((x, e) => rec[s][l][e] += x);
  }
  seen.forEach((row, s) => {
    const l = row.indexOf(0);
    if (l >= 0) {
      throw new RangeError(
        `--loads has no row for step ${steps[s]}, layer ${
          layers[l]
        }: every step needs every layer`,
      );
    }
  });
  // An interval of the recording's steps or more would give no row.
  for (const w of options.intervals ?? []) {
    if (w >= steps.length) {
      throw new RangeError(
        `--interval must be below the steps of --loads (${steps.length}): current value is ${w}`,
      );
    }
  }
  const advice = adviseRecording(rec, options);
  if (out !== undefined) {
    writeFilesAtomically(String(out), [
      [
        "advice.html",
        (p) =>
          writeFileSync(p, adviceReportHtml(advice, flags.loads as string)),
      ],
      ["advice.json", (p) => writeFileSync(p, JSON.stringify(advice) + "\n")],
    ], ADVICE_FILES);
  }
  if (flags.json) {
    process.stdout.write(JSON.stringify(advice) + "\n");
    return 0;
  }
  const t = adviceTable(advice);
  const cells = [t.columns, ...t.rows.map((r) => r.map(String))];
  const width = t.columns.map((_, c) =>
    Math.max(...cells.map((r) => r[c].length))
  );
  const text = cells.map((r) =>
    r.map((v, c) => c === 0 ? v.padEnd(width[c]) : v.padStart(width[c]))
      .join("  ")
  );
  process.stdout.write(
    `${adviceHeadline(advice)}\n\n` +
      text.join("\n") +
      `\n\nRecommendation: ${advice.recommendation.name}\n` +
      advice.recommendation.reasons.map((r) => `  - ${r}\n`).join("") +
      (out === undefined ? "" : `\nwrote ${out}/advice.html, advice.json\n`),
  );
  return 0;
}
