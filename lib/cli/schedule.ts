import process from "node:process";
import { asFlagError, type FlagSpec, parseFlags, UsageError } from "./args.ts";
import { parseWhere, readLoadRows } from "./_loads.ts";
import { checkChoice, checkInteger } from "../validate.ts";
import { SYMMETRIC_GRAPHS, symmetricPlacement } from "../placement/cayley.ts";
import { randomPlacement } from "../placement/random.ts";
import { asymmetricPlacement } from "../placement/asymmetric.ts";
import { type Placement, staticPlacement } from "../placement/placement.ts";
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
  json: "boolean",
  help: "boolean",
};

const PLACEMENTS = [
  ...SYMMETRIC_GRAPHS,
  "random",
  "static",
  "asymmetric",
] as const;

/** The help text of `schedule`. */
export const SCHEDULE_HELP =
  `moelab schedule: MicroMoE token scheduling, one LP per step and layer

Usage: moelab schedule --loads FILE [--where COL=VAL] [--gpus G] [--replicas D] [--placement P] [--solver S] [--json]

  --loads FILE      load table (CSV, TSV, parquet, JSON lines): wide (step?, layer?,
                    one column per expert) or long (step, layer, expert, load);
                    loads are integers up to 2^53 - 1
  --where COL=VAL   keep the rows whose column COL holds VAL, e.g. method=greedy
                    for the sim's loads.parquet (repeatable); a table with
                    columns schedule does not use needs it
  --gpus G          GPUs (default 8)
  --replicas D      replicas per expert (default 2)
  --placement P     ${PLACEMENTS.join(", ")} (default complete);
                    asymmetric is built for the mean loads of the file
  --solver S        ${SCHEDULE_SOLVERS.join(", ")} (default auto: exact)
  --seed N          seed of the random and asymmetric placements (default 0)
  --json            print { placement, rows } instead of the table
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
  const d = checkInteger("--replicas", flags.replicas ?? 2, 1, G);
  const kind = checkChoice("--placement", flags.placement ?? "complete", [
    ...PLACEMENTS,
  ]);
  const solver = checkChoice("--solver", flags.solver ?? "auto", [
    ...SCHEDULE_SOLVERS,
  ]);
  const seed = (flags.seed as number | undefined) ?? 0;
  const { experts: E, rows } = readLoadRows(flags.loads, { where });
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
  function makePlacement(): Placement {
    let placement: Placement;
    if (kind === "static") placement = staticPlacement(E, G);
    else if (kind === "random") {
      placement = randomPlacement(E, G, { replicas: d, seed });
    } else if (kind === "asymmetric") {
      const mean = new Array<number>(E).fill(0);
      for (const r of rows) {
        r.loads.forEach((x, e) => mean[e] += x / rows.length);
      }
      placement = asymmetricPlacement(mean.map(Math.round), G, {
        replicas: d,
        seed,
      });
    } else placement = symmetricPlacement(E, G, { replicas: d, graph: kind });
    return placement;
  }
  if (solver === "glpk" || solver === "highs") await loadLpSolvers();
  const scheduler = createScheduler(placement, { solver });
  const out = rows.map(({ step, layer, loads }) => {
    const s = scheduler.schedule(loads);
    return {
      step,
      layer,
      optimum: s.optimum,
      maxLoad: s.maxLoad,
      gpuLoads: [...s.gpuLoads],
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
    process.stdout.write(JSON.stringify({ placement: held, rows: out }) + "\n");
    return 0;
  }
  process.stdout.write(
    `${rows.length} schedules, ${E} experts on ${G} GPUs (${kind}, ${d} replicas), solver ${scheduler.solver}\n` +
      "step  layer     optimum  maxLoad  max/mean\n",
  );
  for (const r of out) {
    const mean = r.gpuLoads.reduce((a, b) => a + b, 0) / G;
    process.stdout.write(
      `${String(r.step).padStart(4)}  ${String(r.layer).padStart(5)}  ${
        r.optimum.toFixed(2).padStart(10)
      }  ${String(r.maxLoad).padStart(7)}  ${
        (mean === 0 ? 1 : r.maxLoad / mean).toFixed(3).padStart(8)
      }\n`,
    );
  }
  return 0;
}
