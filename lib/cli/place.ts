import process from "node:process";
import { type FlagSpec, parseFlags, UsageError } from "./args.ts";
import { readLoadRows } from "./_loads.ts";
import { checkInteger } from "../_validate.ts";
import { rebalanceExperts } from "../placement/eplb.ts";

const FLAGS: FlagSpec = {
  loads: "string",
  replicas: "integer",
  gpus: "integer",
  nodes: "integer",
  groups: "integer",
  json: "boolean",
  help: "boolean",
};

/** The help text of `place`. */
export const PLACE_HELP =
  `moelab place: DeepSeek's EPLB placement for measured loads

Usage: moelab place --loads FILE --replicas R --gpus G [--nodes N] [--groups M] [--json]

  --loads FILE      load table (wide or long, as for schedule); each layer's
                    loads are summed over its steps
  --replicas R      physical expert slots, a multiple of --gpus
  --gpus G          GPUs
  --nodes N         server nodes (default 1)
  --groups M        expert groups (default 1); hierarchical policy when N divides M
  --json            print { phy2log, log2phy, logcnt } instead of text
  --help            this text
`;

/** Runs `place`; returns the exit code. */
export function placeCommand(args: string[]): number {
  const flags = parseFlags(args, FLAGS);
  if (flags.help) {
    process.stdout.write(PLACE_HELP);
    return 0;
  }
  if (typeof flags.loads !== "string") {
    throw new UsageError("--loads FILE is required");
  }
  for (const f of ["replicas", "gpus"]) {
    if (flags[f] === undefined) throw new UsageError(`--${f} is required`);
  }
  const options = {
    replicas: checkInteger("--replicas", flags.replicas, 1),
    gpus: checkInteger("--gpus", flags.gpus, 1),
    nodes: checkInteger("--nodes", flags.nodes ?? 1, 1),
    groups: checkInteger("--groups", flags.groups ?? 1, 1),
  };
  const { experts, rows } = readLoadRows(flags.loads);
  const layers = [...new Set(rows.map((r) => r.layer))].sort((a, b) => a - b);
  const weight = layers.map((l) => {
    const w = new Array<number>(experts).fill(0);
    for (const r of rows) {
      if (r.layer === l) r.loads.forEach((x, e) => w[e] += x);
    }
    return w;
  });
  const result = rebalanceExperts(weight, options);
  if (flags.json) {
    process.stdout.write(JSON.stringify({ layers, ...result }) + "\n");
    return 0;
  }
  layers.forEach((l, i) => {
    process.stdout.write(
      `layer ${l}\n  phy2log ${JSON.stringify(result.phy2log[i])}\n  log2phy ${
        JSON.stringify(result.log2phy[i])
      }\n  logcnt  ${JSON.stringify(result.logcnt[i])}\n`,
    );
  });
  return 0;
}
