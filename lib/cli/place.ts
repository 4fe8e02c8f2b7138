import process from "node:process";
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { asFlagError, type FlagSpec, parseFlags, UsageError } from "./args.ts";
import { parseWhere, readLoadRows } from "./_loads.ts";
import { checkOutFile } from "./_out.ts";
import { checkChoice, checkInteger } from "../validate.ts";
import { eplbPolicy, rebalanceExperts } from "../placement/eplb.ts";
import { ENGINE_MAP_FORMATS, engineMap } from "../serving/engine_map.ts";

const FLAGS: FlagSpec = {
  loads: "string",
  where: "strings",
  replicas: "integer",
  gpus: "integer",
  nodes: "integer",
  groups: "integer",
  experts: "integer",
  format: "string",
  out: "string",
  json: "boolean",
  help: "boolean",
};

/** The help text of `place`. */
export const PLACE_HELP =
  `moelab place: DeepSeek's EPLB placement for measured loads

Usage: moelab place --loads FILE --replicas R --gpus G [--nodes N] [--groups M]
                    [--json | --format sglang|vllm|trtllm [--out FILE]]

  --loads FILE      loads, told apart by content: a table (CSV, TSV, parquet,
                    JSON; wide or long, as for schedule), SGLang's expert
                    distribution recording (torch.save, stat or per_pass mode),
                    TensorRT-LLM's load statistics (safetensors; a directory
                    of per-rank files is summed), or per-token routed experts
                    int32 [tokens, layers, top_k] (.npy, torch.save,
                    safetensors); each layer's loads are summed over steps
  --where COL=VAL   keep the table rows whose column COL holds VAL, e.g.
                    method=greedy (repeatable); needed when the table has
                    columns place does not use
  --experts E       logical experts, where the file lists fewer (routed
                    experts that never pick the last ones, a table without
                    their columns or rows): the rest get no load (default:
                    the file's, largest id + 1)
  --replicas R      physical expert slots, a multiple of --gpus
  --gpus G          GPUs
  --nodes N         server nodes (default 1)
  --groups M        expert groups (default 1); hierarchical policy when N divides M
  --json            print { layers, policy, phy2log, log2phy, logcnt } instead
                    of text (policy: "hierarchical" or "global")
  --format F        write the map a serving engine loads: sglang
                    (--init-expert-location JSON; one row per layer from 0),
                    vllm (initial expert map JSON, one row per layer),
                    trtllm (moe_load_balancer.yaml keyed by layer id)
  --out FILE        where --format writes (default: standard output); written
                    whole or not at all
  --help            this text
`;

/** Writes `text` to a temporary file beside `path`, then renames it over `path`. */
function writeAtomically(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

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
  const where = parseWhere(flags.where as string[] | undefined);
  for (const f of ["replicas", "gpus"]) {
    if (flags[f] === undefined) throw new UsageError(`--${f} is required`);
  }
  const options = {
    replicas: checkInteger("--replicas", flags.replicas, 1),
    gpus: checkInteger("--gpus", flags.gpus, 1),
    nodes: checkInteger("--nodes", flags.nodes ?? 1, 1),
    groups: checkInteger("--groups", flags.groups ?? 1, 1),
  };
  if (options.gpus % options.nodes !== 0) {
    throw new RangeError(
      `--nodes must divide --gpus (${options.gpus}): current value is ${options.nodes}`,
    );
  }
  const experts = flags.experts === undefined
    ? undefined
    : checkInteger("--experts", flags.experts, 1);
  const format = flags.format === undefined
    ? undefined
    : checkChoice("--format", flags.format, ENGINE_MAP_FORMATS);
  const out = flags.out as string | undefined;
  if (out !== undefined) {
    if (format === undefined) {
      throw new UsageError("--out FILE needs --format sglang|vllm|trtllm");
    }
    checkOutFile("--out", out);
  }
  if (format !== undefined && flags.json) {
    throw new UsageError(
      "--json and --format print different things: give one",
    );
  }
  const { experts: E, rows } = readLoadRows(flags.loads, { experts, where });
  let layers = [...new Set(rows.map((r) => r.layer))].sort((a, b) => a - b);
  // SGLang's map has a row for every layer of the model, dense ones too:
  // layers absent from the loads get zero loads, as SGLang records them.
  if (format === "sglang") {
    layers = Array.from({ length: layers[layers.length - 1] + 1 }, (_, l) => l);
  }
  const weight = layers.map((l) => {
    const w = new Array<number>(E).fill(0);
    for (const r of rows) {
      if (r.layer === l) r.loads.forEach((x, e) => w[e] += x);
    }
    return w;
  });
  let result;
  try {
    result = rebalanceExperts(weight, options);
  } catch (e) {
    throw asFlagError(e, {
      replicas: "--replicas",
      gpus: "--gpus",
      nodes: "--nodes",
      groups: "--groups",
    });
  }
  if (format !== undefined) {
    const text = engineMap(result.phy2log, { format, layers });
    if (out === undefined) process.stdout.write(text);
    else {
      writeAtomically(out, text);
      process.stdout.write(
        `wrote ${format} map (${layers.length} layers x ${options.replicas} slots) to ${out}\n`,
      );
    }
    return 0;
  }
  // EPLB takes its hierarchical policy where the nodes divide the groups,
  // else its global one (DeepSeek's rebalance_experts): say which.
  const { nodes, groups } = options;
  const policy = eplbPolicy(groups, nodes);
  if (flags.json) {
    process.stdout.write(
      JSON.stringify({ layers, policy, ...result }) + "\n",
    );
    return 0;
  }
  process.stdout.write(
    policy === "hierarchical"
      ? `EPLB's hierarchical policy: ${groups} group${
        groups === 1 ? "" : "s"
      } packed onto ${nodes} node${
        nodes === 1 ? "" : "s"
      }, replicas placed within each node\n`
      : `EPLB's global policy: --groups ${groups} is not a multiple of --nodes ${nodes}, so groups are not kept on nodes\n`,
  );
  layers.forEach((l, i) => {
    process.stdout.write(
      `layer ${l}\n  phy2log ${JSON.stringify(result.phy2log[i])}\n  log2phy ${
        JSON.stringify(result.log2phy[i])
      }\n  logcnt  ${JSON.stringify(result.logcnt[i])}\n`,
    );
  });
  return 0;
}
