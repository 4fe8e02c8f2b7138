import process from "node:process";
import { asFlagError, type FlagSpec, parseFlags, UsageError } from "./args.ts";
import { parseWhere, readLoadRows } from "./_loads.ts";
import { checkChoice, checkInteger } from "../validate.ts";
import { SYMMETRIC_GRAPHS, symmetricPlacement } from "../placement/cayley.ts";
import { randomPlacement } from "../placement/random.ts";
import { asymmetricPlacement } from "../placement/asymmetric.ts";
import {
  checkReplicasFit,
  type Placement,
  placementFromPhy2log,
  staticPlacement,
} from "../placement/placement.ts";
import { eplbPolicy, rebalanceExperts } from "../placement/eplb.ts";
import {
  groupsStayOnNodes,
  NodeLocality,
  nodeTraffic,
} from "../placement/node_traffic.ts";
import { createScheduler, SCHEDULE_SOLVERS } from "../placement/schedule.ts";
import { loadLpSolvers } from "../solve/lp_solvers.ts";

const FLAGS: FlagSpec = {
  loads: "string",
  where: "strings",
  gpus: "integer",
  replicas: "integer",
  placement: "string",
  solver: "string",
  seed: "integer",
  nodes: "integer",
  "top-k": "integer",
  groups: "integer",
  "top-groups": "integer",
  redundant: "integer",
  json: "boolean",
  help: "boolean",
};

const PLACEMENTS = [
  ...SYMMETRIC_GRAPHS,
  "random",
  "static",
  "asymmetric",
  "hierarchical",
] as const;

/** The help text of `schedule`. */
export const SCHEDULE_HELP =
  `moelab schedule: MicroMoE token scheduling, one LP per step and layer

Usage: moelab schedule --loads FILE [--where COL=VAL] [--gpus G] [--replicas D] [--placement P] [--solver S]
                      [--nodes N --top-k K [--groups G --top-groups L]] [--redundant R] [--json]

  --loads FILE      load table (CSV, TSV, parquet, JSON lines): wide (step?, layer?,
                    one column per expert) or long (step, layer, expert, load);
                    loads are integers up to 2^53 - 1
  --where COL=VAL   keep the rows whose column COL holds VAL, e.g. method=greedy
                    for the sim's loads.parquet (repeatable); a table with
                    columns schedule does not use needs it
  --gpus G          GPUs (default 8)
  --replicas D      replicas per expert (default 2)
  --placement P     ${PLACEMENTS.join(", ")} (default complete);
                    asymmetric and hierarchical (EPLB's hierarchical policy:
                    groups packed onto nodes, replicas inside nodes) are built
                    for the mean loads of the file
  --nodes N         nodes the GPUs sit in (default 1): reports each schedule's
                    network traffic, every node's pairs of an expert going to
                    its own replicas first (docs/algorithms.md section 15)
  --top-k K         experts per token (required with --nodes above 1)
  --groups G        routing groups (default 1; hierarchical: default --nodes)
  --top-groups L    groups a token keeps: node-limited dispatch when each group
                    sits on one node (default --groups, no limit)
  --redundant R     redundant slots of asymmetric and hierarchical: E + R slots,
                    a multiple of --gpus (default E x (--replicas - 1))
  --solver S        ${SCHEDULE_SOLVERS.join(", ")} (default auto: exact)
  --seed N          seed of the random and asymmetric placements (default 0)
  --json            print { placement, nodeLimit, rows } instead of the table
                    (nodeLimit: the nodes a token may reach, null for none)
  --help            this text
`;

/** Runs `schedule`; returns the exit code. */
export async function scheduleCommand(args: string[]): Promise<number> {
  const flags = parseFlags(args, FLAGS);
  if (flags.help) {
    process.stdout.write(SCHEDULE_HELP);
    return 0;
  }
  if (typeof flags.loads !== "string") {
    throw new UsageError("--loads FILE is required");
  }
  const where = parseWhere(flags.where as string[] | undefined);
  const G = checkInteger("--gpus", flags.gpus ?? 8, 1);
  const d = checkInteger("--replicas", flags.replicas ?? 2, 1);
  checkReplicasFit("--replicas", d, "--gpus", G, flags.replicas === undefined);
  const kind = checkChoice("--placement", flags.placement ?? "complete", [
    ...PLACEMENTS,
  ]);
  const solver = checkChoice("--solver", flags.solver ?? "auto", [
    ...SCHEDULE_SOLVERS,
  ]);
  const seed = (flags.seed as number | undefined) ?? 0;
  const nodes = checkInteger("--nodes", flags.nodes ?? 1, 1, G);
  if (G % nodes !== 0) {
    throw new RangeError(
      `--nodes must divide --gpus (${G}): current value is ${nodes}`,
    );
  }
  if (nodes > 1 && (solver === "glpk" || solver === "highs")) {
    throw new RangeError(
      `--nodes above 1 schedules with the exact solver (intra-node replicas first): --solver is "${solver}"`,
    );
  }
  if (nodes > 1 && flags["top-k"] === undefined) {
    throw new UsageError("--top-k K is required with --nodes above 1");
  }
  const topK = checkInteger("--top-k", flags["top-k"] ?? 1, 1);
  const groups = checkInteger(
    "--groups",
    flags.groups ?? (kind === "hierarchical" ? nodes : 1),
    1,
  );
  const topGroups = checkInteger(
    "--top-groups",
    flags["top-groups"] ?? groups,
    1,
    groups,
  );
  const redundant = flags.redundant === undefined
    ? null
    : checkInteger("--redundant", flags.redundant, 0);
  const { experts: E, rows } = readLoadRows(flags.loads, { where });
  if (E % groups !== 0) {
    throw new RangeError(
      `--groups must divide the experts of --loads (${E}): current value is ${groups}`,
    );
  }
  if (topK > E) {
    throw new RangeError(
      `--top-k must be at most the experts of --loads (${E}): current value is ${topK}`,
    );
  }
  const slots = E + (redundant ?? E * (d - 1));
  if ((kind === "asymmetric" || kind === "hierarchical") && slots % G !== 0) {
    // Without --redundant the slots are its default's: say which.
    throw new RangeError(
      `--redundant must make the slots (${E} experts + ${
        slots - E
      }) a multiple of --gpus (${G}): current value is ${
        redundant ??
          `${
            slots - E
          }, the default (${E} experts x (--replicas ${d} - 1)): give --redundant`
      }`,
    );
  }
  // A schedule counts each GPU's tokens in 32 bits: a row holding more
  // tokens than that is refused rather than wrapped around.
  for (const r of rows) {
    let total = 0;
    for (let e = 0; e < E; e++) total += r.loads[e];
    if (total > 0x7fffffff) {
      throw new RangeError(
        `--loads holds ${total} tokens at step ${r.step}, layer ${r.layer}; schedule counts at most 2^31 - 1 (2147483647) tokens per step and layer`,
      );
    }
  }
  let placement: Placement;
  try {
    placement = makePlacement();
  } catch (e) {
    throw asFlagError(e, {
      gpus: "--gpus",
      replicas: "--replicas",
      experts: "the experts of --loads",
    });
  }
  function meanLoads(): number[] {
    const mean = new Array<number>(E).fill(0);
    for (const r of rows) {
      r.loads.forEach((x, e) => mean[e] += x / rows.length);
    }
    return mean;
  }
  function makePlacement(): Placement {
    let placement: Placement;
    if (kind === "static") placement = staticPlacement(E, G);
    else if (kind === "random") {
      placement = randomPlacement(E, G, { replicas: d, seed });
    } else if (kind === "asymmetric") {
      const mean = meanLoads();
      placement = asymmetricPlacement(mean.map(Math.round), G, {
        slots,
        seed,
      });
    } else if (kind === "hierarchical") {
      placement = placementFromPhy2log(
        rebalanceExperts([meanLoads()], {
          replicas: slots,
          groups,
          nodes,
          gpus: G,
        }).phy2log[0],
        E,
        G,
      );
    } else placement = symmetricPlacement(E, G, { replicas: d, graph: kind });
    return placement;
  }
  if (solver === "glpk" || solver === "highs") await loadLpSolvers();
  const scheduler = createScheduler(
    placement,
    nodes > 1 ? { solver, gpusPerNode: G / nodes } : { solver },
  );
  const gpn = G / nodes;
  const limit = topGroups < groups && groupsStayOnNodes(placement, groups, gpn)
    ? topGroups
    : null;
  // The nodes a token may reach: its groups' nodes, never more than there
  // are.
  const nodeLimit = limit === null ? null : Math.min(limit, nodes);
  const locality = new NodeLocality(placement, gpn);
  const remote = new Float64Array(nodes);
  const out = rows.map(({ step, layer, loads }) => {
    const s = scheduler.schedule(loads);
    const row = {
      step,
      layer,
      optimum: s.optimum,
      maxLoad: s.maxLoad,
      gpuLoads: [...s.gpuLoads],
    };
    if (nodes === 1) return row;
    let pairs = 0;
    for (let e = 0; e < E; e++) pairs += loads[e];
    locality.remote(s.replicaLoads, remote);
    const t = nodeTraffic(s.gpuLoads, {
      gpusPerNode: gpn,
      tokens: Math.round(pairs / topK),
      topK,
      experts: E,
      nodeLimit: limit,
      remotePairs: remote,
    });
    return {
      ...row,
      networkTokens: t.networkTokens,
      maxNicTokens: t.maxNicTokens,
      nodesPerToken: t.nodesPerToken,
    };
  });
  scheduler.dispose?.();
  if (flags.json) {
    const held = Array.from(
      { length: G },
      (
        _,
        g,
      ) => [
        ...placement.slots.subarray(
          g * placement.slotsPerGpu,
          (g + 1) * placement.slotsPerGpu,
        ),
      ],
    );
    process.stdout.write(
      JSON.stringify({ placement: held, nodeLimit, rows: out }) + "\n",
    );
    return 0;
  }
  // Where --top-groups asks for a limit the placement cannot give (a
  // group's experts on more than one node), the traffic is that of
  // dispatch without it: say so rather than print it under the flag.
  const limitNote = nodes === 1 || topGroups === groups
    ? ""
    : nodeLimit === nodes
    ? `; --top-groups ${topGroups} does not limit dispatch: a token's ${topGroups} groups can cover all ${nodes} nodes`
    : nodeLimit !== null
    ? `; node-limited dispatch: a token reaches at most ${nodeLimit} node${
      nodeLimit === 1 ? "" : "s"
    }`
    : `; --top-groups ${topGroups} does not limit dispatch: the ${kind} placement puts a group's experts on more than one node`;
  // EPLB's hierarchical policy needs the nodes to divide the groups; else
  // it takes its global one (DeepSeek's rule), which the name would hide.
  const fellBack =
    kind === "hierarchical" && eplbPolicy(groups, nodes) === "global"
      ? `: EPLB's global policy, --groups ${groups} is not a multiple of --nodes ${nodes}`
      : "";
  process.stdout.write(
    `${rows.length} schedules, ${E} experts on ${G} GPUs${
      nodes > 1 ? ` in ${nodes} nodes` : ""
    } (${kind}${fellBack}, ${
      placement.slots.length / E === d
        ? `${d} replicas`
        : `${placement.slots.length} slots`
    }), solver ${scheduler.solver}${limitNote}\n` +
      "step  layer     optimum  maxLoad  max/mean" +
      (nodes > 1 ? "  net tokens  nodes/token" : "") + "\n",
  );
  for (const r of out) {
    const mean = r.gpuLoads.reduce((a, b) => a + b, 0) / G;
    const net = "networkTokens" in r
      ? `  ${r.networkTokens.toFixed(1).padStart(10)}  ${
        r.nodesPerToken.toFixed(3).padStart(11)
      }`
      : "";
    process.stdout.write(
      `${String(r.step).padStart(4)}  ${String(r.layer).padStart(5)}  ${
        r.optimum.toFixed(2).padStart(10)
      }  ${String(r.maxLoad).padStart(7)}  ${
        (mean === 0 ? 1 : r.maxLoad / mean).toFixed(3).padStart(8)
      }${net}\n`,
    );
  }
  return 0;
}
